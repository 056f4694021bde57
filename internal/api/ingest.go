package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"reflect"
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
	maxBodyBytes     = 5 << 20
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
	if err := requireJSON(r); err != nil {
		return err
	}
	var req ingestRequest
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	if len(req.Events) == 0 || len(req.Events) > maxBatchEvents {
		return invalid("events", "events must hold 1 to %d events", maxBatchEvents)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	events := make([]audex.Event, len(req.Events))
	for i, raw := range req.Events {
		e, err := parseEvent(fmt.Sprintf("events[%d]", i), raw, now)
		if err != nil {
			return err
		}
		events[i] = e
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

// requireJSON checks that the request body is declared as JSON.
func requireJSON(r *http.Request) error {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "application/json" {
		return invalid("Content-Type", "Content-Type must be application/json")
	}
	return nil
}

// decodeBody reads a JSON object of at most maxBodyBytes into v, rejecting
// unknown fields and trailing data.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var maxBytes *http.MaxBytesError
		if errors.As(err, &maxBytes) {
			return &Error{Code: CodePayloadTooLarge, Message: fmt.Sprintf("request body is larger than %d bytes", maxBodyBytes)}
		}
		return invalid("", "could not read the request body")
	}
	return decodeStrict("", body, v)
}

// decodeStrict decodes one JSON object from data into v. Errors name the
// offending field below prefix.
func decodeStrict(prefix string, data []byte, v any) error {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return invalid(prefix, "%s must be a JSON object", nameOr(prefix, "the body"))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(prefix, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid(prefix, "%s has data after the JSON object", nameOr(prefix, "the body"))
	}
	return nil
}

// jsonError turns an encoding/json error into an invalid_argument error.
func jsonError(prefix string, err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return invalid(prefix, "malformed JSON: %v", err)
	case errors.As(err, &typ):
		field := joinField(prefix, typ.Field)
		return invalid(field, "%s must be %s", field, jsonTypeName(typ.Type.String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		field := joinField(prefix, name)
		return invalid(field, "unknown field %s", field)
	}
	return invalid(prefix, "malformed JSON")
}

// jsonInt is an integer field of a request body. JSON Schema, and so the
// document, counts every number whose fraction is zero as an integer
// (200.0, 2e2), which encoding/json refuses for a Go int; this type takes
// them. A fraction, or a value beyond int64, is a *json.UnmarshalTypeError,
// which encoding/json names the field of and jsonError turns into a 400.
type jsonInt int64

func (n *jsonInt) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil // as for any Go value: null leaves it unchanged
	}
	v, ok := parseJSONInteger(string(data))
	if !ok {
		what := "number " + string(data)
		if data[0] != '-' && (data[0] < '0' || data[0] > '9') {
			what = "non-number"
		}
		return &json.UnmarshalTypeError{Value: what, Type: reflect.TypeFor[int64]()}
	}
	*n = jsonInt(v)
	return nil
}

// parseJSONInteger returns the value of a JSON number literal whose
// fraction is zero (200, 200.0, 2E+2, -0.0, 1.5e1); ok is false for a
// fraction, a value beyond int64 or anything but a number. It works on the
// digits, so no exponent, however large, costs more than the literal's
// length.
func parseJSONInteger(lit string) (n int64, ok bool) {
	if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
		return n, true
	}
	mantissa, exp := lit, 0
	if i := strings.IndexAny(lit, "eE"); i >= 0 {
		mantissa = lit[:i]
		var err error
		if exp, err = strconv.Atoi(lit[i+1:]); err != nil {
			if !errors.Is(err, strconv.ErrRange) {
				return 0, false
			}
			exp = 1 << 30 // beyond any literal's digits; the sign is kept below
			if strings.HasPrefix(lit[i+1:], "-") {
				exp = -exp
			}
		}
	}
	sign := ""
	if strings.HasPrefix(mantissa, "-") {
		sign, mantissa = "-", mantissa[1:]
	}
	whole, frac, _ := strings.Cut(mantissa, ".")
	all := whole + frac
	if all == "" || strings.Trim(all, "0123456789") != "" {
		return 0, false
	}
	digits := strings.TrimLeft(all, "0")
	if digits == "" {
		return 0, true // zero, whatever its exponent
	}
	// point is where the decimal point falls in digits.
	point := len(whole) + exp - (len(all) - len(digits))
	if point < len(digits) {
		if point <= 0 || strings.Trim(digits[point:], "0") != "" {
			return 0, false // a fraction
		}
		digits = digits[:point]
	}
	if point > 19 {
		return 0, false // at least 10^19: beyond int64
	}
	digits += strings.Repeat("0", point-len(digits))
	n, err := strconv.ParseInt(sign+digits, 10, 64)
	return n, err == nil
}

func jsonTypeName(goType string) string {
	switch {
	case strings.Contains(goType, "string"):
		return "a string"
	case strings.Contains(goType, "bool"):
		return "a boolean"
	case strings.Contains(goType, "int"):
		return "an integer"
	case strings.Contains(goType, "[]"):
		return "an array"
	}
	return "an object"
}

func joinField(prefix, name string) string {
	switch {
	case prefix == "":
		return name
	case name == "":
		return prefix
	}
	return prefix + "." + name
}

func nameOr(field, fallback string) string {
	if field == "" {
		return fallback
	}
	return field
}

// parseEvent validates one ingested event and returns it ready to store,
// with a server id when the client gave none and occurred_at defaulting to
// now.
func parseEvent(field string, raw json.RawMessage, now time.Time) (audex.Event, error) {
	var in eventInput
	if err := decodeStrict(field, raw, &in); err != nil {
		return audex.Event{}, err
	}
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
	for name, v := range map[string]*string{"id": p.ID, "type": p.Type, "name": p.Name} {
		if v != nil {
			if err := checkText(field+"."+name, *v, maxNameLength); err != nil {
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
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	depth := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, invalid(field, "metadata is malformed JSON")
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				depth++
				if depth > maxMetadataDepth {
					return nil, invalid(field, "metadata nests deeper than %d levels", maxMetadataDepth)
				}
			} else {
				depth--
			}
		case string:
			if strings.IndexByte(v, 0) >= 0 {
				return nil, invalid(field, "metadata must not contain NUL characters (\\u0000)")
			}
		case json.Number:
			if !numericInRange(string(v)) {
				return nil, invalid(field, "metadata holds a number out of range: %.40s", string(v))
			}
		}
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return nil, invalid(field, "metadata is malformed JSON")
	}
	return compact.Bytes(), nil
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
