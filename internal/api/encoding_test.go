package api_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// awkwardMetadata is metadata as clients send it, chosen to differ between
// PostgreSQL's jsonb text and the canonical encoding: nesting, spaces,
// <, > and &, U+2028 and U+2029 (raw and escaped), other unicode, numbers
// jsonb rewrites or keeps, an empty object, escaped quotes and
// backslashes.
var awkwardMetadata = []string{
	`{"nested": {"a": [1, [2, {"b": null}], {}], "o": {"p": {"q": true}}}, "list": [ "x" , 2 , false ]}`,
	`{"spaces": "a  b ", "  key with spaces ": 1, "tabs":	"x"}`,
	`{"html": "<script>alert('x')</script> & <b>", "<": ">", "&amp;": "&"}`,
	`{"ls": "line` + "\u2028" + `sep` + "\u2029" + `para", "escaped": "a\u2028b\u2029c"}`,
	`{"unicode": "é ü 日本 😀 \u00e9 \ud83d\ude00", "rtl": "\u202e", "nbsp": "` + "\u00a0" + `"}`,
	`{"numbers": [1e3, 1.50, -0, 0.1, 12345678901234567890, 1E-7, -2.5e+2, 100]}`,
	`{}`,
	`{"quotes": "say \"hi\"", "backslash": "C:\\path\\to", "both": "\\\"", "ctl": "\n\t\b\f\r\u0001", "slash": "\/"}`,
}

// encodingBundle is a tenant holding one event per awkward metadata, and
// each event's canonical encoding: the body of GET /v1/audit/events/{id}.
type encodingBundle struct {
	ids       []string          // in (occurred_at, id) order
	canonical map[string][]byte // id -> GET body without its line end
}

const encodingSince, encodingUntil = "2026-04-01T00:00:00Z", "2026-04-02T00:00:00Z"

// ingestAwkward ingests the awkward events (sent as raw JSON, so that the
// server sees the clients' own spacing and escapes) and reads each back
// with GET.
func ingestAwkward(t *testing.T, b *testBundle) *encodingBundle {
	t.Helper()
	e := &encodingBundle{canonical: map[string][]byte{}}
	var events []string
	for i, m := range awkwardMetadata {
		id := fmt.Sprintf("enc-%d", i)
		e.ids = append(e.ids, id)
		events = append(events, fmt.Sprintf(`{"id": %q, "occurred_at": "2026-04-01T10:00:%02d.123456Z", "action": "doc.read",
			"actor": {"id": "alice", "name": "<b>Alice</b> & co `+"\u2028"+`"}, "resource": "=1+2", "metadata": %s}`, id, i, m))
	}
	res := b.do(t, "POST", "/v1/audit/events", b.key, `{"events": [`+strings.Join(events, ",")+`]}`)
	require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
	for _, id := range e.ids {
		res := b.do(t, "GET", "/v1/audit/events/"+id, b.key, nil)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		body, ok := bytes.CutSuffix(res.body, []byte("\n"))
		require.True(t, ok, "the body ends with a line end")
		requireCanonical(t, body)
		e.canonical[id] = body
	}
	return e
}

// requireCanonical requires body to be compact JSON with <, >, &, U+2028
// and U+2029 escaped: what json.Compact and json.HTMLEscape leave as it is.
func requireCanonical(t *testing.T, body []byte) {
	t.Helper()
	require.True(t, json.Valid(body), "%s", body)
	var compact, escaped bytes.Buffer
	require.NoError(t, json.Compact(&compact, body))
	require.Equal(t, string(body), compact.String(), "compact")
	json.HTMLEscape(&escaped, body)
	require.Equal(t, string(body), escaped.String(), "escaped")
	for _, r := range []string{"<", ">", "&", "\u2028", "\u2029", "\n"} {
		require.NotContains(t, string(body), r)
	}
}

// requireLines requires data to be one canonical event per line, in order.
func (e *encodingBundle) requireLines(t *testing.T, data []byte) {
	t.Helper()
	lines, ok := bytes.CutSuffix(data, []byte("\n"))
	require.True(t, ok, "the last line ends too")
	got := bytes.Split(lines, []byte("\n"))
	require.Len(t, got, len(e.ids))
	for i, id := range e.ids {
		require.Equal(t, string(e.canonical[id]), string(got[i]), "line %d (%s)", i+1, id)
	}
	// What Python's str.splitlines() does to a JSONL file.
	require.Len(t, strings.FieldsFunc(string(data), func(r rune) bool { return r == '\n' || r == '\u2028' || r == '\u2029' }), len(e.ids))
}

// requireCSVMetadata requires each CSV row's metadata cell to hold the
// metadata bytes of the event's canonical encoding.
func (e *encodingBundle) requireCSVMetadata(t *testing.T, data []byte) {
	t.Helper()
	rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, len(e.ids)+1)
	require.Equal(t, "metadata", rows[0][len(rows[0])-1])
	for i, id := range e.ids {
		var event struct {
			Metadata json.RawMessage `json:"metadata"`
		}
		require.NoError(t, json.Unmarshal(e.canonical[id], &event))
		require.Equal(t, id, rows[i+1][0])
		require.Equal(t, string(event.Metadata), rows[i+1][len(rows[i+1])-1], "metadata of %s", id)
	}
}

func TestOneEventOneEncoding(t *testing.T) {
	t.Parallel()

	t.Run("ListAndDownloadsWriteTheGetBody", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		e := ingestAwkward(t, b)

		res := b.do(t, "GET", "/v1/audit/events?order=asc&action=doc.read&since="+encodingSince+"&until="+encodingUntil, b.key, nil)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		var page struct {
			Events []json.RawMessage `json:"events"`
		}
		res.decode(t, &page)
		require.Len(t, page.Events, len(e.ids))
		for i, id := range e.ids {
			require.Equal(t, string(e.canonical[id]), string(page.Events[i]), "list element %d (%s)", i, id)
		}

		request := func(f string) map[string]any {
			return map[string]any{"format": f, "since": encodingSince, "until": encodingUntil,
				"filters": map[string]any{"action": []string{"doc.read"}}}
		}
		for _, gz := range []bool{false, true} {
			res, body := b.download(t, request("ndjson"), gz)
			require.Equal(t, http.StatusOK, res.StatusCode, "%s", body)
			e.requireLines(t, body)

			res, body = b.download(t, request("json"), gz)
			require.Equal(t, http.StatusOK, res.StatusCode, "%s", body)
			var elements []json.RawMessage
			require.NoError(t, json.Unmarshal(body, &elements))
			require.Len(t, elements, len(e.ids))
			for i, id := range e.ids {
				require.Equal(t, string(e.canonical[id]), string(elements[i]), "array element %d (%s)", i, id)
			}

			res, body = b.download(t, request("csv"), gz)
			require.Equal(t, http.StatusOK, res.StatusCode, "%s", body)
			e.requireCSVMetadata(t, body)
		}
	})

	t.Run("ExportPartsWriteTheGetBody", func(t *testing.T) {
		t.Parallel()
		b := setupExports(t, true)
		e := ingestAwkward(t, b.testBundle)
		for _, f := range []string{"jsonl", "csv"} {
			id := b.createExport(t, map[string]any{"since": encodingSince, "until": encodingUntil, "format": f,
				"filters":     map[string]any{"action": []string{"doc.read"}},
				"destination": map[string]any{"name": "local"}})
			export := b.waitExport(t, id)
			require.Equal(t, "completed", export.Status, "error: %+v", export.Error)
			require.Len(t, export.Files, 1)
			part := b.readObject(t, "local", export.Files[0].Key)
			if f == "jsonl" {
				e.requireLines(t, part)
			} else {
				e.requireCSVMetadata(t, part)
			}
		}
	})
}
