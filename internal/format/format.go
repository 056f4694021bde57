// Package format encodes events for downloads and export parts: NDJSON
// (JSONL), CSV with formula neutralising, one JSON array, and Parquet;
// CSV and Parquet parts read back to their events (ReadCSVPart,
// ReadParquetPart). The download route and the export worker share it, so
// both write the same bytes for the same events: each NDJSON line and JSON
// array element is the event's canonical encoding (audex.Event.AppendJSON,
// the body of GET /v1/audit/events/{id}), and CSV's metadata cell its
// metadata bytes.
// It imports only the audex domain package.
package format

import (
	"bufio"
	"io"
	"strconv"

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
