package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/format"
	"github.com/audex-dev/audex/internal/metrics"
	"github.com/audex-dev/audex/internal/store"
)

// Ingest limits (docs/api.md, plus bounds on free-text fields so that one
// event cannot bloat every index it is in). Text lengths count characters,
// as the document's maxLength does (checkText).
const (
	maxBatchEvents   = 1000
	maxMetadataBytes = 16 << 10
	maxMetadataDepth = 64
	maxIDLength      = 128
	maxActionLength  = 128
	maxNameLength    = 512  // actor/target id, type and name, request_id
	maxTextLength    = 2048 // resource, path, user_agent
	maxMethodLength  = 32
	// maxResourceBytes bounds resource in bytes of UTF-8 too: it is a key
	// of a B-tree index (events_resource_idx), whose rows hold at most
	// 2704 bytes with the tenant, the time and the id beside it, so 2048
	// characters of 4 bytes each would fail in the database. Every other
	// indexed text is at most 512 characters (2048 bytes) and fits.
	maxResourceBytes = 2400
)

type ingestRequest struct {
	Events []json.RawMessage `json:"events"`
}

type ingestResponse struct {
	IDs        []string `json:"ids"`
	Accepted   int      `json:"accepted"`
	Duplicates int      `json:"duplicates"`
}

// eventInput is one event as a client sends it. Pointers tell "not given"
// (or null) from an empty value.
type eventInput struct {
	ID         *string         `json:"id"`
	OccurredAt *string         `json:"occurred_at"`
	ReceivedAt json.RawMessage `json:"received_at"`
	Action     *string         `json:"action"`
	Actor      json.RawMessage `json:"actor"`
	Target     json.RawMessage `json:"target"`
	Resource   *string         `json:"resource"`
	SourceIP   *string         `json:"source_ip"`
	UserAgent  *string         `json:"user_agent"`
	RequestID  *string         `json:"request_id"`
	Method     *string         `json:"method"`
	Path       *string         `json:"path"`
	StatusCode *jsonInt        `json:"status_code"`
	Success    *bool           `json:"success"`
	DurationMS *jsonInt        `json:"duration_ms"`
	Metadata   json.RawMessage `json:"metadata"`
}

type partyInput struct {
	ID   *string `json:"id"`
	Type *string `json:"type"`
	Name *string `json:"name"`
}

func (s *Server) handleIngest(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	events, err := parseIngestBody(body, time.Now().UTC().Truncate(time.Microsecond))
	if err != nil {
		return err
	}
	stored, err := store.InsertEvents(r.Context(), s.pool, key.TenantID, events)
	if err != nil {
		return err
	}
	resp := ingestResponse{IDs: make([]string, len(events))}
	for i, e := range events {
		resp.IDs[i] = e.ID
		if stored[i] {
			resp.Accepted++
		} else {
			resp.Duplicates++
		}
	}
	metrics.EventsIngested.Add(float64(resp.Accepted))
	s.writeJSON(w, http.StatusCreated, resp)
	return nil
}

// parseIngestBody returns the events of an ingest request's body, each
// validated (eventFrom). Most bodies are decoded in one pass, every event
// in place (decodeEventsOnce); a body that pass does not take whole is
// parsed as a raw value per event (parseEventsByRawValue), which names
// the field at fault. Both give the same events and the same errors
// (FuzzParseIngestBody); the first decodes each event once, not three
// times (about half the API's JSON work per event).
func parseIngestBody(body []byte, now time.Time) ([]audex.Event, error) {
	inputs, ok := decodeEventsOnce(body)
	if !ok {
		return parseEventsByRawValue(body, now)
	}
	return batchOf(len(inputs), func(i int, field string) (audex.Event, error) { return eventFrom(field, inputs[i], now) })
}

// parseEventsByRawValue is parseIngestBody for any body: the body decoded
// into a raw value per event, and each event parsed from its own.
func parseEventsByRawValue(body []byte, now time.Time) ([]audex.Event, error) {
	var req ingestRequest
	if err := decodeStrict("", body, &req); err != nil {
		return nil, err
	}
	return batchOf(len(req.Events), func(i int, field string) (audex.Event, error) { return parseEvent(field, req.Events[i], now) })
}

// decodeEventsOnce decodes a body of the plainest form, an object whose
// only key is "events" (spelt so, as often as given: the last counts)
// holding an array of event objects, into those events in one pass, as
// strictly as decodeStrict. ok is false for any other body, even one
// that decodeStrict takes (another spelling of the key, an event that is
// null), and for every error: the caller then parses it by raw values,
// which tells the error.
func decodeEventsOnce(body []byte) (inputs []*eventInput, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	for dec.More() {
		if t, err := dec.Token(); err != nil || t != "events" {
			return nil, false
		}
		inputs = nil // a repeated key replaces the events, as decodeStrict's do
		if err := dec.Decode(&inputs); err != nil {
			return nil, false
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	for _, in := range inputs {
		if in == nil {
			return nil, false
		}
	}
	return inputs, true
}

// batchOf returns a batch of n events, the i-th from parse (given its
// name in errors, events[i]); a batch of no events or too many is refused.
func batchOf(n int, parse func(i int, field string) (audex.Event, error)) ([]audex.Event, error) {
	if n == 0 || n > maxBatchEvents {
		return nil, invalid("events", "events must hold 1 to %d events", maxBatchEvents)
	}
	events := make([]audex.Event, n)
	for i := range events {
		e, err := parse(i, "events["+strconv.Itoa(i)+"]")
		if err != nil {
			return nil, err
		}
		events[i] = e
	}
	return events, nil
}

// parseEvent decodes one ingested event from its raw value and validates
// it (eventFrom).
func parseEvent(field string, raw json.RawMessage, now time.Time) (audex.Event, error) {
	var in eventInput
	if err := decodeStrict(field, raw, &in); err != nil {
		return audex.Event{}, err
	}
	return eventFrom(field, &in, now)
}

// eventFrom validates one ingested event, decoded, and returns it ready
// to store, with a server id when the client gave none and occurred_at
// defaulting to now.
func eventFrom(field string, in *eventInput, now time.Time) (audex.Event, error) {
	f := func(name string) string { return field + "." + name }
	if len(in.ReceivedAt) > 0 {
		return audex.Event{}, invalid(f("received_at"), "received_at is set by the server and cannot be given")
	}
	e := audex.Event{OccurredAt: now}
	if in.ID != nil {
		if !validEventID(*in.ID) || format.FormulaStart(*in.ID) {
			return e, invalid(f("id"), "id must be 1 to %d characters of A-Z a-z 0-9 _ . : - and must not start with -", maxIDLength)
		}
		e.ID = *in.ID
	} else {
		e.ID = audex.NewID("evt")
	}
	if in.OccurredAt != nil {
		t, err := parseTime(f("occurred_at"), *in.OccurredAt)
		if err != nil {
			return e, err
		}
		e.OccurredAt = t
	}
	if in.Action == nil || *in.Action == "" {
		return e, invalid(f("action"), "action is required")
	}
	if !validAction(*in.Action) {
		return e, invalid(f("action"), "action must be 1 to %d characters of a-z 0-9 _ . : - and must not start with -", maxActionLength)
	}
	if strings.HasPrefix(*in.Action, audex.ReservedActionPrefix) {
		return e, invalid(f("action"), "actions starting with %q are reserved for audex", audex.ReservedActionPrefix)
	}
	e.Action = *in.Action

	actor, given, err := parseParty(f("actor"), in.Actor)
	if err != nil {
		return e, err
	}
	if !given || actor.ID == nil || *actor.ID == "" {
		return e, invalid(f("actor.id"), "actor.id is required")
	}
	e.Actor = audex.Actor{ID: *actor.ID, Type: actor.Type, Name: actor.Name}
	if e.Actor.IsSystem() {
		return e, invalid(f("actor"), "the actor {type %q, id %q} is reserved for audex's own events (in any letter case)", audex.SystemActorType, audex.SystemActorID)
	}
	target, given, err := parseParty(f("target"), in.Target)
	if err != nil {
		return e, err
	}
	if given && (target.ID != nil || target.Type != nil || target.Name != nil) {
		e.Target = &audex.Target{ID: target.ID, Type: target.Type, Name: target.Name}
	}

	for _, t := range []struct {
		name string
		v    *string
		max  int
	}{
		{"resource", in.Resource, maxTextLength},
		{"user_agent", in.UserAgent, maxTextLength},
		{"request_id", in.RequestID, maxNameLength},
		{"method", in.Method, maxMethodLength},
		{"path", in.Path, maxTextLength},
	} {
		if t.v != nil {
			if err := checkText(f(t.name), *t.v, t.max); err != nil {
				return e, err
			}
		}
	}
	if in.Resource != nil && len(*in.Resource) > maxResourceBytes {
		return e, invalid(f("resource"), "resource is longer than %d bytes of UTF-8 (the database indexes it)", maxResourceBytes)
	}
	e.Resource, e.UserAgent, e.RequestID, e.Method, e.Path = in.Resource, in.UserAgent, in.RequestID, in.Method, in.Path

	if in.SourceIP != nil {
		addr, err := netip.ParseAddr(*in.SourceIP)
		if err != nil || addr.Zone() != "" {
			return e, invalid(f("source_ip"), "source_ip must be an IPv4 or IPv6 address")
		}
		ip := addr.String()
		e.SourceIP = &ip
	}
	if in.StatusCode != nil {
		if *in.StatusCode < 100 || *in.StatusCode > 599 {
			return e, invalid(f("status_code"), "status_code must be an HTTP status from 100 to 599")
		}
		code := int(*in.StatusCode)
		e.StatusCode = &code
	}
	if in.DurationMS != nil {
		if *in.DurationMS < 0 {
			return e, invalid(f("duration_ms"), "duration_ms must not be negative")
		}
		ms := int64(*in.DurationMS)
		e.DurationMS = &ms
	}
	e.Success = in.Success

	metadata, err := parseMetadata(f("metadata"), in.Metadata)
	if err != nil {
		return e, err
	}
	e.Metadata = metadata
	return e, nil
}

// parseParty decodes an actor or target object; given is false when it is
// absent or null.
func parseParty(field string, raw json.RawMessage) (p partyInput, given bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return p, false, nil
	}
	if err := decodeStrict(field, raw, &p); err != nil {
		return p, true, err
	}
	// In a fixed order, so that a party with two bad fields always names
	// the same one.
	for _, t := range [...]struct {
		name string
		v    *string
	}{{"id", p.ID}, {"type", p.Type}, {"name", p.Name}} {
		if t.v != nil {
			if err := checkText(field+"."+t.name, *t.v, maxNameLength); err != nil {
				return p, true, err
			}
		}
	}
	if p.ID != nil && format.FormulaStart(*p.ID) {
		return p, true, invalid(field+".id", "%s.id must not start with =, +, -, @, a tab or a carriage return (a spreadsheet would read it as a formula, and CSV must not change an id)", field)
	}
	return p, true, nil
}

// parseMetadata checks that metadata is a JSON object of at most
// maxMetadataBytes that PostgreSQL's jsonb can store (no NUL characters,
// numbers in numeric's range, bounded nesting) and returns it compacted;
// absent or null becomes {}.
func parseMetadata(field string, raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage("{}"), nil
	}
	if len(raw) > maxMetadataBytes {
		return nil, invalid(field, "metadata must be at most %d bytes of JSON", maxMetadataBytes)
	}
	if raw[0] != '{' {
		return nil, invalid(field, "metadata must be a JSON object")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return nil, invalid(field, "metadata is malformed JSON")
	}
	if err := checkMetadataValues(field, compact.Bytes()); err != nil {
		return nil, err
	}
	return compact.Bytes(), nil
}

// checkMetadataValues refuses, in compacted metadata (valid JSON with no
// space between tokens), what jsonb cannot store or what bounds it:
// nesting deeper than maxMetadataDepth, a NUL character (\u0000) in a
// string, a number out of numeric's range. It reads the bytes once, in
// order, so the first of them is the one named.
func checkMetadataValues(field string, b []byte) error {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			for i++; b[i] != '"'; i++ {
				if b[i] != '\\' {
					continue
				}
				i++ // the escaped character; \u's four hex digits are read on as text
				if b[i] == 'u' && string(b[i+1:i+5]) == "0000" {
					return invalid(field, "metadata must not contain NUL characters (\\u0000)")
				}
			}
		case c == '{' || c == '[':
			if depth++; depth > maxMetadataDepth {
				return invalid(field, "metadata nests deeper than %d levels", maxMetadataDepth)
			}
		case c == '}' || c == ']':
			depth--
		case c == '-' || c >= '0' && c <= '9':
			end := i + 1
			for end < len(b) && strings.IndexByte("+-.eE0123456789", b[end]) >= 0 {
				end++
			}
			if n := string(b[i:end]); !numericInRange(n) {
				return invalid(field, "metadata holds a number out of range: %.40s", n)
			}
			i = end - 1
		}
	}
	return nil
}

// numericInRange reports whether a JSON number's exponent is small enough
// for PostgreSQL's numeric type.
func numericInRange(n string) bool {
	i := strings.IndexAny(n, "eE")
	if i < 0 {
		return true
	}
	exp, err := strconv.Atoi(n[i+1:])
	return err == nil && exp >= -1000 && exp <= 1000
}

// validEventID reports whether id is 1 to 128 characters of A-Z a-z 0-9 _ . : -.
// (Ingest also refuses a leading -: format.FormulaStart.)
func validEventID(id string) bool {
	if len(id) == 0 || len(id) > maxIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// validAction reports whether a is 1 to 128 characters of a-z 0-9 _ . : -,
// not starting with - (format.FormulaStart: CSV writes actions unchanged).
func validAction(a string) bool {
	if len(a) == 0 || len(a) > maxActionLength || format.FormulaStart(a) {
		return false
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}
