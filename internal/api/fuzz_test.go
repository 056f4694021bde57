package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/audex-dev/audex"
)

// The fuzz targets of the request parsers. `make test` runs each over its
// seeds (and testdata/fuzz); `make fuzz` explores for FUZZTIME each. No
// input may panic, and every refusal must be the API's own error type (a
// 400), never something that would become a 500.

// requireClientError fails unless err is nil or an *Error of code
// invalid_argument.
func requireClientError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Code != CodeInvalidArgument {
		t.Fatalf("not a client error: %#v", err)
	}
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-04-20", "2026-04-20T00:00:00Z", "2026-04-20T10:11:12.123456789+02:00", "0000-01-01", "9999-12-31T23:59:59Z", "2026-02-30", "", "now"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTime("since", s)
		requireClientError(t, err)
		if err != nil {
			return
		}
		if got.Location() != time.UTC || got.Nanosecond()%1000 != 0 {
			t.Fatalf("%q gave %v: not UTC microseconds", s, got)
		}
		again, err := parseTime("since", got.Format(time.RFC3339Nano))
		if err != nil || !again.Equal(got) {
			t.Fatalf("%q gave %v, which does not parse back (%v, %v)", s, got, again, err)
		}
	})
}

func FuzzParseListQuery(f *testing.F) {
	for _, s := range []string{"", "limit=10&order=asc", "since=2026-01-01&until=2026-02-01&action=a,b&action=c", "source_ip=10.0.0.0/8",
		"cursor=abc", "limit=0", "limit=1001", "x=1", "since=2026-02-01&until=2026-01-01", "%zz", "action_prefix=%00", "sort_by=timestamp&sort_order=desc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseListQuery(raw)
		requireClientError(t, err)
		if err != nil {
			return
		}
		if q.limit < 1 || q.limit > 1000 {
			t.Fatalf("%q: limit %d accepted", raw, q.limit)
		}
		if f := q.filter; f.Since != nil && f.Until != nil && !f.Until.After(*f.Since) {
			t.Fatalf("%q: until %v not after since %v", raw, f.Until, f.Since)
		}
	})
}

func FuzzCursor(f *testing.F) {
	signer := cursorSigner{secret: []byte("a fuzzing secret of enough bytes!")}
	issuedPos := audex.Position{OccurredAt: time.Date(2026, 4, 20, 1, 2, 3, 4000, time.UTC), ID: "evt_1"}
	valid := signer.encode(issuedPos, "scope")
	for _, s := range []string{valid, valid + "x", strings.Replace(valid, ".", "..", 1), "", ".", "e30.e30", "abc"} {
		f.Add(s, int64(0), "id")
	}
	f.Fuzz(func(t *testing.T, cursor string, micros int64, id string) {
		// Only the issued cursor's position can come out of an accepted
		// cursor (another spelling of its base64 may decode to it).
		decoded, err := signer.decode(cursor, "scope")
		requireClientError(t, err)
		if err == nil && (decoded.ID != issuedPos.ID || !decoded.OccurredAt.Equal(issuedPos.OccurredAt)) {
			t.Fatalf("a cursor this server did not issue was accepted: %q gave %+v", cursor, decoded)
		}
		// What the server issues, it takes back unchanged, and only for
		// the scope it was issued for.
		pos := audex.Position{OccurredAt: time.UnixMicro(micros).UTC(), ID: id}
		issued := signer.encode(pos, "scope")
		got, err := signer.decode(issued, "scope")
		if err != nil || !got.OccurredAt.Equal(pos.OccurredAt) || got.ID != pos.ID && utf8.ValidString(id) {
			t.Fatalf("round trip of %+v: %+v, %v", pos, got, err)
		}
		if _, err := signer.decode(issued, "other scope"); err == nil {
			t.Fatal("a cursor was accepted for another scope")
		}
	})
}

func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{
		`{"action":"user.login","actor":{"id":"alice"}}`,
		`{"id":"req-1","action":"agent.token_issued","actor":{"id":"a","type":"agent","name":"b"},"target":{"id":"t","type":"token"},"resource":"x/y","source_ip":"10.0.1.50","success":true,"metadata":{"k":[1,2,{"z":null}]},"occurred_at":"2026-04-20T09:00:00Z"}`,
		`{"action":"a","actor":{"id":"a"},"metadata":{"n":1e400}}`,
		`{"action":"a","actor":{"id":"a"},"received_at":"2026-01-01"}`,
		`{"action":"a","actor":{"id":"a"},"extra":1}`,
		`{"action":"a\u0000","actor":{"id":"a"}}`,
		`[]`, `null`, `{`, `{"action":1}`,
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := parseEvent("events[0]", json.RawMessage(raw), now)
		requireClientError(t, err)
		if err != nil {
			return
		}
		if !validAction(e.Action) || e.Actor.ID == "" || !json.Valid(e.Metadata) {
			t.Fatalf("%s was accepted as %+v", raw, e)
		}
		for _, s := range []string{e.ID, e.Action, e.Actor.ID} {
			if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
				t.Fatalf("%s was accepted with text %q", raw, s)
			}
		}
	})
}

// FuzzParseIngestBody checks that an ingest body parsed in one pass
// (parseIngestBody) gives what parsing it by a raw value per event gives:
// the same error, or the same events (ids that the server made aside).
func FuzzParseIngestBody(f *testing.F) {
	for _, s := range []string{
		`{"events":[{"action":"a","actor":{"id":"x"}},{"id":"e2","action":"b","actor":{"id":"y","type":"user"},"target":{"id":"t"},"metadata":{"k":[1]}}]}`,
		`{"events":[{"id":"e1","action":"a","actor":{"id":"x"}}],"events":[{"action":"b","actor":{"id":"y"}}]}`,
		`{"events":[{"action":"a","actor":{"id":"x","type":"user"},"actor":{"id":"y"}}]}`,
		`{"Events":[{"action":"a","actor":{"id":"x"}}]}`,
		`{"events":[null]}`, `{"events":null}`, `{"events":[]}`, `{"events":[1]}`, `{"events":{}}`,
		`{"events":[{"action":"a","actor":{"id":"x"}}]} {}`, `{"events":[{"action":"a","actor":{"id":"x"}}],"more":1}`,
		`{"events":[{"action":"a","actor":{"id":"x"}},{"action":"a","actor":{"id":"x"},"extra":true}]}`,
		`{"events":[{"action":"a","actor":{"id":"x"}},{"action":7}]}`,
		`{"events":[{"action":"a","actor":{"id":"x"}},{"action":"audex.x","actor":{"id":"x"}}]}`,
		` { "events" : [ { "action" : "a" , "actor" : { "id" : "x" } } ] } `,
		`{"events":[{"action":"a","actor":{"id":"x"}}]`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		once, err := parseIngestBody(body, now)
		byRaw, rawErr := parseEventsByRawValue(body, now)
		requireClientError(t, err)
		if (err == nil) != (rawErr == nil) || err != nil && err.Error() != rawErr.Error() {
			t.Fatalf("%s: one pass: %v; by raw values: %v", body, err, rawErr)
		}
		if len(once) != len(byRaw) {
			t.Fatalf("%s: one pass: %d events; by raw values: %d", body, len(once), len(byRaw))
		}
		for i := range once {
			if a, b := once[i], byRaw[i]; a.ID != b.ID {
				if !serverMadeID(a.ID) || !serverMadeID(b.ID) {
					t.Fatalf("%s: event %d: id %q and %q", body, i, a.ID, b.ID)
				}
				once[i].ID, byRaw[i].ID = "", ""
			}
		}
		if !reflect.DeepEqual(once, byRaw) {
			t.Fatalf("%s: one pass: %+v; by raw values: %+v", body, once, byRaw)
		}
	})
}

// FuzzParseMetadata checks parseMetadata's one read of the bytes against
// a walk of the metadata's tokens (metadataProblemByTokens): the same
// refusal, or none, for any JSON object.
func FuzzParseMetadata(f *testing.F) {
	for _, s := range []string{
		`{"k":[1,2,{"z":null}],"s":"a\\u0000b","n":-1.5e3}`, `{"n":1e400}`, `{"n":1E-1001}`, `{"a\u0000":1}`,
		`{"s":"\\\u0000"}`, `{"a":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`,
		`{"a":[1e999,"\u0000"]}`, `{ "t" : true , "f" : false , "x" : [ 0 , -0.0 ] }`, `{"u":"\u00001"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) || len(raw) == 0 || raw[0] != '{' || len(raw) > maxMetadataBytes {
			return
		}
		_, err := parseMetadata("metadata", raw)
		want := metadataProblemByTokens(raw)
		if got := errorText(err); got != want {
			t.Fatalf("%s: %q, want %q", raw, got, want)
		}
	})
}

// metadataProblemByTokens is what parseMetadata refuses in valid JSON,
// found by walking its tokens: the first of a nesting too deep, a NUL
// character and a number out of numeric's range ("" for none).
func metadataProblemByTokens(raw []byte) string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				if depth++; depth > maxMetadataDepth {
					return errorText(invalid("metadata", "metadata nests deeper than %d levels", maxMetadataDepth))
				}
			} else {
				depth--
			}
		case string:
			if strings.IndexByte(v, 0) >= 0 {
				return errorText(invalid("metadata", "metadata must not contain NUL characters (\\u0000)"))
			}
		case json.Number:
			if !numericInRange(string(v)) {
				return errorText(invalid("metadata", "metadata holds a number out of range: %.40s", string(v)))
			}
		}
	}
}

// errorText is err's text, "" for nil.
func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// serverMadeID reports whether id has the form of an id that the server
// makes for an event given without one.
func serverMadeID(id string) bool {
	return strings.HasPrefix(id, "evt_") && len(id) == len("evt_")+26
}

func FuzzCheckPrefix(f *testing.F) {
	for _, s := range []string{"april", "a/b/c", "a/", "", "../x", "a/../b", "/abs", "a//b", "./a", "ä", "a\\b", strings.Repeat("a", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		err := checkPrefix(p)
		requireClientError(t, err)
		if err != nil {
			return
		}
		key := joinKey("exports", p, "exp_1", "part-00001.csv")
		if !strings.HasPrefix(key, "exports/") || strings.ContainsAny(key, "\\\x00") {
			t.Fatalf("prefix %q escapes its root: %q", p, key)
		}
		for seg := range strings.SplitSeq(key, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("prefix %q gives the key %q, with a %q segment", p, key, seg)
			}
		}
	})
}
