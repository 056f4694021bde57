package api

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkParseEvent is the API's work per ingested event before the
// database: one event with every field, an actor, a target and metadata,
// parsed from the raw value that the body's decoder hands over.
func BenchmarkParseEvent(b *testing.B) {
	raw := json.RawMessage(`{"id":"evt_01JT0000000000000000000000","occurred_at":"2026-12-05T10:00:00.123Z",` +
		`"action":"document.update","actor":{"id":"user-1234","type":"user","name":"Alice"},` +
		`"target":{"id":"doc-98765","type":"document","name":"Q3 plan"},"resource":"projects/p1/docs/d1",` +
		`"source_ip":"10.1.2.3","user_agent":"Mozilla/5.0","request_id":"req_abc","method":"PUT",` +
		`"path":"/v1/docs/d1","status_code":200,"success":true,"duration_ms":12,"metadata":{"fields":["title"],"size":1234}}`)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseEvent("events[0]", raw, now); err != nil {
			b.Fatal(err)
		}
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
