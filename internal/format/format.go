// Package format encodes events for downloads and export parts: NDJSON
// (JSONL), CSV with formula neutralising, and one JSON array. The download
// route and the export worker share it, so both write the same bytes for
// the same events. It imports only the audex domain package.
package format

import (
	"bufio"
	"encoding/csv"
	"fmt"
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

// Encoder writes a sequence of events in one format. Call Write for each
// event and Close once at the end; neither flushes the underlying writer
// beyond its own buffer until Close.
type Encoder interface {
	// Write encodes one event.
	Write(e *audex.Event) error
	// Close writes what ends the document (the closing bracket of a JSON
	// array) and flushes the encoder's buffer. It does not close w.
	Close() error
}

// NewEncoder returns an encoder of format writing to w. CSV starts with the
// header row. It panics on an unknown format: callers parse it first.
func NewEncoder(format string, w io.Writer) Encoder {
	bw := bufio.NewWriterSize(w, 64<<10)
	switch format {
	case NDJSON:
		return &ndjsonEncoder{w: bw}
	case JSON:
		return &jsonArrayEncoder{w: bw}
	case CSV:
		return newCSVEncoder(bw)
	}
	panic("format: unknown format " + strconv.Quote(format))
}

type ndjsonEncoder struct {
	w   *bufio.Writer
	buf []byte
}

func (n *ndjsonEncoder) Write(e *audex.Event) error {
	n.buf = append(e.AppendJSON(n.buf[:0]), '\n')
	_, err := n.w.Write(n.buf)
	return err
}

func (n *ndjsonEncoder) Close() error { return n.w.Flush() }

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

// CSVColumns are the columns of CSV downloads and export parts (API.md).
var CSVColumns = []string{
	"id", "occurred_at", "received_at", "action", "actor_id", "actor_type", "actor_name",
	"target_id", "target_type", "target_name", "resource", "source_ip", "user_agent",
	"request_id", "method", "path", "status_code", "success", "duration_ms", "metadata",
}

type csvEncoder struct {
	bw        *bufio.Writer
	w         *csv.Writer
	row       []string
	wroteHead bool
}

func newCSVEncoder(bw *bufio.Writer) *csvEncoder {
	return &csvEncoder{bw: bw, w: csv.NewWriter(bw), row: make([]string, len(CSVColumns))}
}

func (c *csvEncoder) header() error {
	if c.wroteHead {
		return nil
	}
	c.wroteHead = true
	return c.w.Write(CSVColumns)
}

// Write writes one row. Text cells a spreadsheet would run as a formula
// are neutralised (Neutralise); ids, times, numbers and booleans are
// written plainly; absent values are empty cells.
func (c *csvEncoder) Write(e *audex.Event) error {
	if err := c.header(); err != nil {
		return err
	}
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
	r[19] = "{}"
	if len(e.Metadata) > 0 {
		r[19] = Neutralise(string(e.Metadata))
	}
	return c.w.Write(r)
}

func (c *csvEncoder) Close() error {
	if err := c.header(); err != nil {
		return err
	}
	c.w.Flush()
	if err := c.w.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return c.bw.Flush()
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

// Neutralise returns s with a leading ' when it starts with a character
// that makes a spreadsheet treat the cell as a formula (=, +, -, @, tab,
// carriage return), as OWASP's CSV injection guidance recommends. Other
// text is returned unchanged. RFC 4180 quoting is the CSV writer's job.
func Neutralise(s string) string {
	if s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0 {
		return "'" + s
	}
	return s
}
