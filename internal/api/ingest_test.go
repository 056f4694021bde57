package api

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
)

// benchmarkEvent is an event with every field, an actor, a target and
// metadata.
var benchmarkEvent = json.RawMessage(`{"id":"evt_01JT0000000000000000000000","occurred_at":"2026-12-05T10:00:00.123Z",` +
	`"action":"document.update","actor":{"id":"user-1234","type":"user","name":"Alice"},` +
	`"target":{"id":"doc-98765","type":"document","name":"Q3 plan"},"resource":"projects/p1/docs/d1",` +
	`"source_ip":"10.1.2.3","user_agent":"Mozilla/5.0","request_id":"req_abc","method":"PUT",` +
	`"path":"/v1/docs/d1","status_code":200,"success":true,"duration_ms":12,"metadata":{"fields":["title"],"size":1234}}`)

// BenchmarkParseEvent is the API's work per ingested event before the
// database: one event with every field, an actor, a target and metadata,
// parsed from the raw value that the body's decoder hands over.
func BenchmarkParseEvent(b *testing.B) {
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseEvent("events[0]", benchmarkEvent, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseIngestBody is the API's work for a body of 500 such
// events: decoded in one pass (as the API does) and by a raw value per
// event (as it does for a body that the one pass does not take).
func BenchmarkParseIngestBody(b *testing.B) {
	body := []byte(`{"events":[` + strings.Repeat(string(benchmarkEvent)+",", 499) + string(benchmarkEvent) + `]}`)
	now := time.Now()
	for name, parse := range map[string]func([]byte, time.Time) ([]audex.Event, error){
		"OnePass": parseIngestBody, "ByRawValue": parseEventsByRawValue,
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := parse(body, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPlainIngestBodiesAreDecodedOnce checks that the bodies that clients
// send (an object of events, with any spacing) take the one pass.
func TestPlainIngestBodiesAreDecodedOnce(t *testing.T) {
	for _, body := range []string{
		`{"events":[` + string(benchmarkEvent) + `,{"action":"a","actor":{"id":"x"}}]}`,
		" {\n  \"events\" : [ {\"action\":\"a\", \"actor\": {\"id\": \"x\"}} ]\n}\n",
	} {
		inputs, ok := decodeEventsOnce([]byte(body))
		require.True(t, ok, body)
		require.NotEmpty(t, inputs)
		require.Equal(t, "a", *inputs[len(inputs)-1].Action)
	}
}

// TestParsePartyNamesItsFirstBadField checks that a party with two bad
// fields names the first of id, type and name, every time (they were
// checked in a map's random order).
func TestParsePartyNamesItsFirstBadField(t *testing.T) {
	long := strings.Repeat("x", maxNameLength+1)
	raw := json.RawMessage(`{"name":"` + long + `","type":"` + long + `","id":"ok"}`)
	for range 50 {
		_, given, err := parseParty("events[0].actor", raw)
		require.True(t, given)
		var apiErr *Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, "events[0].actor.type", apiErr.Field)
	}
}

// TestParseMetadataRefusals checks each of the refusals of metadata, and
// that text which only looks like them is kept.
func TestParseMetadataRefusals(t *testing.T) {
	for raw, want := range map[string]string{
		`{"a":{"b":` + strings.Repeat("[", maxMetadataDepth) + strings.Repeat("]", maxMetadataDepth) + `}}`: "metadata nests deeper than 64 levels",
		`{"s":"a\u0000b"}`:           "metadata must not contain NUL characters",
		`{"a\u0000":1}`:              "metadata must not contain NUL characters",
		`{"n":[1,2,3e1001]}`:         "metadata holds a number out of range: 3e1001",
		`{"n":-2E-1001}`:             "metadata holds a number out of range: -2E-1001",
		`[1]`:                        "metadata must be a JSON object",
		`{"s":"a\\u0000b"}`:          "",
		`{"n":1e1000, "m":-1E-1000}`: "",
		`{"d":` + strings.Repeat("[", maxMetadataDepth-1) + strings.Repeat("]", maxMetadataDepth-1) + `}`: "",
	} {
		out, err := parseMetadata("events[0].metadata", json.RawMessage(raw))
		if want == "" {
			require.NoError(t, err, raw)
			require.True(t, json.Valid(out), raw)
			continue
		}
		var apiErr *Error
		require.ErrorAs(t, err, &apiErr, raw)
		require.Equal(t, "events[0].metadata", apiErr.Field, raw)
		require.Contains(t, apiErr.Message, want, raw)
	}
}
