// Package format encodes events for downloads and export parts: NDJSON
// (JSONL), CSV with formula neutralising, and one JSON array. The download
// route and the export worker share it, so both write the same bytes for
// the same events: each NDJSON line and JSON array element is the event's
// canonical encoding (audex.Event.AppendJSON, the body of
// GET /v1/audit/events/{id}), and CSV's metadata cell its metadata bytes.
// It imports only the audex domain package.
package format

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/audex-dev/audex"
)

// Format names.
const (
	CSV    = "csv"
	NDJSON = "ndjson"
	JSON   = "json"
)

// Parse returns the canonical format name for name, accepting jsonl as a
// synonym of ndjson. ok is false for an unknown name.
func Parse(name string) (canonical string, ok bool) {
	switch name {
	case CSV, NDJSON, JSON:
		return name, true
	case "jsonl":
		return NDJSON, true
	}
	return "", false
}

// ContentType returns the media type of a format.
func ContentType(format string) string {
	switch format {
	case CSV:
		return "text/csv; charset=utf-8"
	case NDJSON:
		return "application/x-ndjson"
	}
	return "application/json"
}

// Extension returns the file extension of a format, without the dot.
func Extension(format string) string {
	if format == NDJSON {
		return "jsonl"
	}
	return format
}

// Rows encodes events one at a time into bytes, so that a caller can
// measure each row before writing it (export parts are cut by size).
type Rows interface {
	// Header returns what starts every document (CSV's header row), or nil.
	Header() []byte
	// AppendRow appends one event's row, with its line end, to dst.
	AppendRow(dst []byte, e *audex.Event) []byte
}

// NewRows returns the row encoder of format: NDJSON or CSV. JSON arrays
// are not row formats (use NewEncoder). It panics on another format:
// callers parse it first.
func NewRows(format string) Rows {
	switch format {
	case NDJSON:
		return ndjsonRows{}
	case CSV:
		return newCSVRows()
	}
	panic("format: no row encoder for " + strconv.Quote(format))
}

// Encoder writes a sequence of events in one format.
type Encoder interface {
	// Write encodes one event.
	Write(e *audex.Event) error
	// Close writes what ends the document (the header of an empty CSV, the
	// brackets of a JSON array) and flushes the encoder's buffer. It does
	// not close the underlying writer.
	Close() error
}

// NewEncoder returns an encoder of format writing to w through a 64 KiB
// buffer. It panics on an unknown format: callers parse it first.
func NewEncoder(format string, w io.Writer) Encoder {
	bw := bufio.NewWriterSize(w, 64<<10)
	if format == JSON {
		return &jsonArrayEncoder{w: bw}
	}
	return &rowEncoder{w: bw, rows: NewRows(format)}
}

// rowEncoder writes a row format: the header, then one row per event.
type rowEncoder struct {
	w          *bufio.Writer
	rows       Rows
	buf        []byte
	headerDone bool
}

func (r *rowEncoder) header() error {
	if r.headerDone {
		return nil
	}
	r.headerDone = true
	_, err := r.w.Write(r.rows.Header())
	return err
}

func (r *rowEncoder) Write(e *audex.Event) error {
	if err := r.header(); err != nil {
		return err
	}
	r.buf = r.rows.AppendRow(r.buf[:0], e)
	_, err := r.w.Write(r.buf)
	return err
}

func (r *rowEncoder) Close() error {
	if err := r.header(); err != nil {
		return err
	}
	return r.w.Flush()
}

type ndjsonRows struct{}

func (ndjsonRows) Header() []byte { return nil }

func (ndjsonRows) AppendRow(dst []byte, e *audex.Event) []byte {
	return append(e.AppendJSON(dst), '\n')
}

type jsonArrayEncoder struct {
	w     *bufio.Writer
	buf   []byte
	count int
}

func (j *jsonArrayEncoder) Write(e *audex.Event) error {
	j.buf = j.buf[:0]
	if j.count == 0 {
		j.buf = append(j.buf, "[\n"...)
	} else {
		j.buf = append(j.buf, ",\n"...)
	}
	j.count++
	j.buf = e.AppendJSON(j.buf)
	_, err := j.w.Write(j.buf)
	return err
}

func (j *jsonArrayEncoder) Close() error {
	end := "\n]\n"
	if j.count == 0 {
		end = "[]\n"
	}
	if _, err := j.w.WriteString(end); err != nil {
		return err
	}
	return j.w.Flush()
}

// CSVColumns are the columns of CSV downloads and export parts (docs/api.md).
var CSVColumns = []string{
	"id", "occurred_at", "received_at", "action", "actor_id", "actor_type", "actor_name",
	"target_id", "target_type", "target_name", "resource", "source_ip", "user_agent",
	"request_id", "method", "path", "status_code", "success", "duration_ms", "metadata",
}

// csvRows encodes CSV rows through encoding/csv (RFC 4180 quoting) into a
// reusable buffer.
type csvRows struct {
	out      bytes.Buffer
	w        *csv.Writer
	row      []string
	header   []byte
	metadata []byte
}

func newCSVRows() *csvRows {
	c := &csvRows{row: make([]string, len(CSVColumns))}
	c.w = csv.NewWriter(&c.out)
	_ = c.w.Write(CSVColumns)
	c.w.Flush()
	c.header = bytes.Clone(c.out.Bytes())
	c.out.Reset()
	return c
}

func (c *csvRows) Header() []byte { return c.header }

// AppendRow appends one row. Text cells a spreadsheet would run as a
// formula are neutralised (Neutralise); times, numbers and booleans are
// written plainly; absent values are empty cells.
func (c *csvRows) AppendRow(dst []byte, e *audex.Event) []byte {
	r := c.row
	r[0] = Neutralise(e.ID)
	r[1] = e.OccurredAt.UTC().Format(time.RFC3339Nano)
	r[2] = e.ReceivedAt.UTC().Format(time.RFC3339Nano)
	r[3] = Neutralise(e.Action)
	r[4] = Neutralise(e.Actor.ID)
	r[5] = text(e.Actor.Type)
	r[6] = text(e.Actor.Name)
	r[7], r[8], r[9] = "", "", ""
	if e.Target != nil {
		r[7], r[8], r[9] = text(e.Target.ID), text(e.Target.Type), text(e.Target.Name)
	}
	r[10] = text(e.Resource)
	r[11] = plain(e.SourceIP)
	r[12] = text(e.UserAgent)
	r[13] = text(e.RequestID)
	r[14] = text(e.Method)
	r[15] = text(e.Path)
	r[16], r[17], r[18] = "", "", ""
	if e.StatusCode != nil {
		r[16] = strconv.Itoa(*e.StatusCode)
	}
	if e.Success != nil {
		r[17] = strconv.FormatBool(*e.Success)
	}
	if e.DurationMS != nil {
		r[18] = strconv.FormatInt(*e.DurationMS, 10)
	}
	// The metadata cell holds the metadata's bytes of the canonical
	// encoding (AppendJSON), so that it equals what the other routes
	// write. An object starts with {, so it is never neutralised.
	c.metadata = e.AppendMetadata(c.metadata[:0])
	r[19] = string(c.metadata)
	c.out.Reset()
	_ = c.w.Write(r) // writes to a bytes.Buffer, which cannot fail
	c.w.Flush()
	return append(dst, c.out.Bytes()...)
}

func text(s *string) string {
	if s == nil {
		return ""
	}
	return Neutralise(*s)
}

func plain(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// FormulaStart reports whether s starts with a character that makes a
// spreadsheet treat a cell as a formula: =, +, -, @, tab or carriage
// return (OWASP's CSV injection guidance). Ingest refuses identifiers that
// do, so that CSV never has to change them.
func FormulaStart(s string) bool {
	return s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0
}

// Neutralise returns s with a leading ' when FormulaStart(s), as OWASP's
// CSV injection guidance recommends. Other text is returned unchanged.
// RFC 4180 quoting is the CSV writer's job.
func Neutralise(s string) string {
	if FormulaStart(s) {
		return "'" + s
	}
	return s
}
