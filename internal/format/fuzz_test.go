package format_test

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/format"
)

// FuzzCSVRow holds a CSV row, whatever its text, to three promises: it
// reads back (RFC 4180) as one record of every column holding the
// neutralised values, no text cell starts with a character that makes a
// spreadsheet run it as a formula, and ReadCSVPart gives the event back.
func FuzzCSVRow(f *testing.F) {
	for _, s := range []string{"plain", "=cmd|' /C calc'!A0", "+1", "-1", "@SUM(1)", "\tx", "\rline", "a,\"b\"\nc", "\r\n", "", "ünï", "'", "'=1", "''+", "\\.", " x"} {
		f.Add(s, "doc.read", s)
	}
	at := time.Date(2026, 4, 23, 19, 2, 11, 512000000, time.UTC)
	f.Fuzz(func(t *testing.T, actor, action, text string) {
		if !utf8.ValidString(actor + action + text) {
			t.Skip("ingest stores UTF-8 only")
		}
		e := audex.Event{ID: "e1", OccurredAt: at, ReceivedAt: at, Action: action, Actor: audex.Actor{ID: actor, Name: &text},
			Resource: &text, UserAgent: &text, Metadata: []byte(`{}`)}
		rows := format.NewRows(format.CSV)
		data := rows.AppendRow(bytes.Clone(rows.Header()), &e)
		records, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
		if err != nil || len(records) != 2 || len(records[1]) != len(format.CSVColumns) {
			t.Fatalf("row %q does not read back as one record: %v, %q", data, err, records)
		}
		want := map[string]string{"actor_id": actor, "action": action, "actor_name": text, "resource": text, "user_agent": text}
		for i, name := range format.CSVColumns {
			cell := records[1][i]
			if v, ok := want[name]; ok {
				// encoding/csv reads a quoted \r\n back as \n.
				if exp := strings.ReplaceAll(format.Neutralise(v), "\r\n", "\n"); cell != exp {
					t.Fatalf("%s: %q read back as %q, want %q", name, v, cell, exp)
				}
			}
			if cell != "" && strings.IndexByte("=+-@\t\r", cell[0]) >= 0 {
				t.Fatalf("%s: cell %q would run as a formula", name, cell)
			}
		}
		var back []byte
		if _, err := format.ReadCSVPart(bytes.NewReader(data), func(r *audex.Event) { back = r.AppendJSON(nil) }); err != nil ||
			!bytes.Equal(back, e.AppendJSON(nil)) {
			t.Fatalf("row %q reads back as %s (%v), want %s", data, back, err, e.AppendJSON(nil))
		}
	})
}
