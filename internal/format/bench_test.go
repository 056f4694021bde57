package format_test

import (
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/format"
)

// benchEvents are events as the store reads them: every field set, and
// metadata of a few keys in PostgreSQL's jsonb text (a space after each
// separator), like cmd/bench's generator stores.
func benchEvents(n int) []audex.Event {
	metadata := []string{
		`{"client": "scaivault-python", "version": 12}`,
		`{"mfa": true, "method": "passkey"}`,
		`{"scopes": ["read", "write"], "grant_type": "client_credentials"}`,
		`{"tool": "search", "tokens": 1532}`,
		`{}`,
	}
	at := time.Date(2026, 4, 23, 19, 2, 11, 512345000, time.UTC)
	events := make([]audex.Event, n)
	for i := range events {
		events[i] = audex.Event{
			ID:         fmt.Sprintf("evt_01JT3Q6Y8V2K7W3M5N9P0R%04d", i),
			OccurredAt: at.Add(time.Duration(i) * time.Millisecond),
			ReceivedAt: at.Add(time.Duration(i)*time.Millisecond + 18*time.Millisecond),
			Action:     "agent.token_issued",
			Actor:      audex.Actor{ID: fmt.Sprintf("agent_%d", i%97), Type: ptr("agent"), Name: ptr("billing-bot")},
			Target:     &audex.Target{ID: ptr("tok_123"), Type: ptr("token"), Name: ptr("")},
			Resource:   ptr("integrations/salesforce/oauth"),
			SourceIP:   ptr("10.0.1.50"),
			UserAgent:  ptr("scaivault-python/1.0"),
			RequestID:  ptr("req_xyz"),
			Method:     ptr("POST"),
			Path:       ptr("/oauth/token"),
			StatusCode: ptr(200),
			Success:    ptr(true),
			DurationMS: ptr(int64(12)),
			Metadata:   json.RawMessage(metadata[i%len(metadata)]),
		}
	}
	return events
}

// BenchmarkEncoders measures each download/export format on 1,000 events
// per operation; ns/event is the cost of one event.
func BenchmarkEncoders(b *testing.B) {
	events := benchEvents(1000)
	for _, f := range []string{format.NDJSON, format.JSON, format.CSV} {
		b.Run(f, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				enc := format.NewEncoder(f, io.Discard)
				for i := range events {
					if err := enc.Write(&events[i]); err != nil {
						b.Fatal(err)
					}
				}
				if err := enc.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/event")
		})
	}
}

// BenchmarkRows measures Rows.AppendRow alone, as the export worker calls
// it.
func BenchmarkRows(b *testing.B) {
	events := benchEvents(1000)
	for _, f := range []string{format.NDJSON, format.CSV} {
		b.Run(f, func(b *testing.B) {
			b.ReportAllocs()
			rows := format.NewRows(f)
			var buf []byte
			for b.Loop() {
				for i := range events {
					buf = rows.AppendRow(buf[:0], &events[i])
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/event")
		})
	}
}
