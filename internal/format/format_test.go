package format_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/format"
)

func ptr[T any](v T) *T { return &v }

func sampleEvents() []audex.Event {
	at := time.Date(2026, 4, 23, 19, 2, 11, 512000000, time.UTC)
	return []audex.Event{
		{ID: "e1", OccurredAt: at, ReceivedAt: at, Action: "doc.read", Actor: audex.Actor{ID: "=cmd|' /C calc'!A0", Type: ptr("user")},
			Target: &audex.Target{ID: ptr("+1"), Name: ptr("-1")}, Resource: ptr("@SUM(1)"), SourceIP: ptr("10.0.0.1"),
			StatusCode: ptr(200), Success: ptr(true), DurationMS: ptr(int64(-0)), Metadata: json.RawMessage(`{"k": "=1+2", "q": "a,\"b\"\nc"}`)},
		{ID: "e2", OccurredAt: at, ReceivedAt: at, Action: "doc.write", Actor: audex.Actor{ID: "bob"}, UserAgent: ptr("\tx"), Path: ptr("\rline")},
	}
}

func encode(t *testing.T, f string, events []audex.Event) string {
	t.Helper()
	var buf bytes.Buffer
	enc := format.NewEncoder(f, &buf)
	for i := range events {
		require.NoError(t, enc.Write(&events[i]))
	}
	require.NoError(t, enc.Close())
	return buf.String()
}

func TestCSV(t *testing.T) {
	t.Parallel()

	t.Run("NeutralisesFormulasAndQuotesPerRFC4180", func(t *testing.T) {
		t.Parallel()
		rows, err := csv.NewReader(strings.NewReader(encode(t, format.CSV, sampleEvents()))).ReadAll()
		require.NoError(t, err)
		require.Len(t, rows, 3)
		require.Equal(t, format.CSVColumns, rows[0])
		col := func(row []string, name string) string {
			for i, c := range format.CSVColumns {
				if c == name {
					return row[i]
				}
			}
			t.Fatalf("no column %s", name)
			return ""
		}
		first, second := rows[1], rows[2]
		require.Equal(t, "'=cmd|' /C calc'!A0", col(first, "actor_id"))
		require.Equal(t, "'+1", col(first, "target_id"))
		require.Equal(t, "'-1", col(first, "target_name"))
		require.Equal(t, "'@SUM(1)", col(first, "resource"))
		require.Equal(t, `{"k":"=1+2","q":"a,\"b\"\nc"}`, col(first, "metadata"), "compact, as every route writes it")
		require.Equal(t, "200", col(first, "status_code"))
		require.Equal(t, "true", col(first, "success"))
		require.Equal(t, "2026-04-23T19:02:11.512Z", col(first, "occurred_at"))
		require.Equal(t, "'\tx", col(second, "user_agent"))
		require.Equal(t, "'\rline", col(second, "path"))
		require.Equal(t, "", col(second, "target_id"))
		require.Equal(t, "", col(second, "success"))
		require.Equal(t, "{}", col(second, "metadata"))
	})

	t.Run("NoEventsIsJustTheHeader", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, strings.Join(format.CSVColumns, ",")+"\n", encode(t, format.CSV, nil))
	})
}

func TestJSONFormats(t *testing.T) {
	t.Parallel()
	events := sampleEvents()

	t.Run("NDJSONIsOneUnchangedEventPerLine", func(t *testing.T) {
		t.Parallel()
		lines := strings.Split(strings.TrimSuffix(encode(t, format.NDJSON, events), "\n"), "\n")
		require.Len(t, lines, 2)
		var first map[string]any
		require.NoError(t, json.Unmarshal([]byte(lines[0]), &first))
		require.Equal(t, "=cmd|' /C calc'!A0", first["actor"].(map[string]any)["id"])
		require.Equal(t, "@SUM(1)", first["resource"])
	})

	t.Run("JSONIsOneArray", func(t *testing.T) {
		t.Parallel()
		var back []audex.Event
		require.NoError(t, json.Unmarshal([]byte(encode(t, format.JSON, events)), &back))
		require.Len(t, back, 2)
		require.Equal(t, "e2", back[1].ID)
		var empty []audex.Event
		require.NoError(t, json.Unmarshal([]byte(encode(t, format.JSON, nil)), &empty))
		require.Empty(t, empty)
	})

	t.Run("EveryFormatWritesTheCanonicalEncoding", func(t *testing.T) {
		t.Parallel()
		// Metadata as PostgreSQL's jsonb text writes it: spaces after
		// separators, <, >, &, U+2028 and U+2029 raw.
		e := sampleEvents()[1]
		e.Metadata = json.RawMessage(`{"a": [1, {"b": "<i>&"}], "ls": "x` + "\u2028y\u2029" + `z", "n": 1.50}`)
		const meta = `{"a":[1,{"b":"\u003ci\u003e\u0026"}],"ls":"x\u2028y\u2029z","n":1.50}`
		canonical := string(e.AppendJSON(nil))
		require.Contains(t, canonical, `,"metadata":`+meta+`}`)
		want, err := json.Marshal(e)
		require.NoError(t, err)
		require.Equal(t, string(want), canonical, "the get route's body")

		events := []audex.Event{e, e}
		require.Equal(t, canonical+"\n"+canonical+"\n", encode(t, format.NDJSON, events))
		require.Equal(t, "[\n"+canonical+",\n"+canonical+"\n]\n", encode(t, format.JSON, events))
		rows, err := csv.NewReader(strings.NewReader(encode(t, format.CSV, events))).ReadAll()
		require.NoError(t, err)
		require.Equal(t, meta, rows[1][len(format.CSVColumns)-1])
		require.Equal(t, meta, rows[2][len(format.CSVColumns)-1])
	})

	t.Run("JSONLIsASynonym", func(t *testing.T) {
		t.Parallel()
		f, ok := format.Parse("jsonl")
		require.True(t, ok)
		require.Equal(t, format.NDJSON, f)
		_, ok = format.Parse("xml")
		require.False(t, ok)
	})
}

func TestCSVRoundTrip(t *testing.T) {
	t.Parallel()
	events := sampleEvents()
	// Texts CSV could confuse: empty ones (not absent), ones that start
	// with the neutralising ' already, RFC 4180's specials, PostgreSQL's
	// end of data.
	events[1].Target = &audex.Target{ID: ptr(""), Type: ptr("'=x"), Name: ptr("''")}
	events[1].Actor.Type, events[1].Actor.Name = ptr("'"), ptr(" lead")
	events[1].Resource, events[1].RequestID, events[1].Method = ptr(`\.`), ptr("a\r\nb"), ptr("")
	events[1].Metadata = json.RawMessage(`{"s": "x,\"y\""}`)
	events = append(events, audex.Event{ID: "e3", OccurredAt: events[0].OccurredAt, ReceivedAt: events[0].ReceivedAt,
		Action: "doc.read", Actor: audex.Actor{ID: "'-1"}, Target: &audex.Target{Name: ptr("n")}})
	doc := encode(t, format.CSV, events)
	require.Contains(t, doc, `,"",`, "an empty text is a quoted empty field")
	var read []string
	n, err := format.ReadCSVPart(strings.NewReader(doc), func(e *audex.Event) {
		read = append(read, string(e.AppendJSON(nil)))
	})
	require.NoError(t, err)
	require.EqualValues(t, len(events), n)
	for i := range events {
		require.Equal(t, string(events[i].AppendJSON(nil)), read[i], "event %d reads back to its canonical encoding", i)
	}

	for name, bad := range map[string]string{
		"no header":        "id,occurred_at\n",
		"short row":        strings.Join(format.CSVColumns, ",") + "\ne1,2026-04-23T19:02:11Z\n",
		"open quote":       strings.Join(format.CSVColumns, ",") + "\n\"e1\n",
		"bad time":         strings.Join(format.CSVColumns, ",") + "\ne1,yesterday" + strings.Repeat(",", len(format.CSVColumns)-2) + "\n",
		"stray quote":      strings.Join(format.CSVColumns, ",") + "\ne\"1" + strings.Repeat(",", len(format.CSVColumns)-1) + "\n",
		"text after quote": strings.Join(format.CSVColumns, ",") + "\n\"e1\"x" + strings.Repeat(",", len(format.CSVColumns)-1) + "\n",
	} {
		_, err := format.ReadCSVPart(strings.NewReader(bad), func(*audex.Event) {})
		require.Error(t, err, name)
	}
}

func TestParquetRoundTrip(t *testing.T) {
	t.Parallel()
	events := sampleEvents()
	events[1].Target = &audex.Target{Type: ptr("doc")} // a target of a type alone
	var buf bytes.Buffer
	p := format.NewParquetPart(&buf)
	for i := range events {
		require.NoError(t, p.Write(&events[i]))
	}
	require.NoError(t, p.Close())
	var read [][]byte
	n, err := format.ReadParquetPart(bytes.NewReader(buf.Bytes()), int64(buf.Len()), func(e *audex.Event) {
		read = append(read, e.AppendJSON(nil))
	})
	require.NoError(t, err)
	require.EqualValues(t, len(events), n)
	for i := range events {
		require.Equal(t, string(events[i].AppendJSON(nil)), string(read[i]), "event %d reads back to its canonical encoding", i)
	}
}
