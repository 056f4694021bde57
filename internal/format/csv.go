package format

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/audex-dev/audex"
)

// CSVColumns are the columns of CSV downloads and export parts (docs/api.md).
var CSVColumns = []string{
	"id", "occurred_at", "received_at", "action", "actor_id", "actor_type", "actor_name",
	"target_id", "target_type", "target_name", "resource", "source_ip", "user_agent",
	"request_id", "method", "path", "status_code", "success", "duration_ms", "metadata",
}

// csvRows encodes CSV rows (RFC 4180) that keep every event whole, so that
// ReadCSVPart gives each event back exactly: an absent value is an empty
// cell and an empty text a quoted one ("", as PostgreSQL's COPY writes
// them), and formula neutralising can be undone (Neutralise).
type csvRows struct {
	header   []byte
	metadata []byte
}

func newCSVRows() *csvRows {
	return &csvRows{header: []byte(strings.Join(CSVColumns, ",") + "\n")}
}

func (c *csvRows) Header() []byte { return c.header }

// AppendRow appends one row. Text cells a spreadsheet would run as a
// formula are neutralised (Neutralise); times, numbers and booleans are
// written plainly; absent values are empty cells, and empty texts "".
func (c *csvRows) AppendRow(dst []byte, e *audex.Event) []byte {
	dst = appendCell(dst, Neutralise(e.ID), true)
	dst = append(dst, ',')
	dst = e.OccurredAt.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, ',')
	dst = e.ReceivedAt.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, ',')
	dst = appendCell(dst, Neutralise(e.Action), true)
	dst = append(dst, ',')
	dst = appendCell(dst, Neutralise(e.Actor.ID), true)
	dst = appendText(dst, e.Actor.Type)
	dst = appendText(dst, e.Actor.Name)
	if e.Target != nil {
		dst = appendText(dst, e.Target.ID)
		dst = appendText(dst, e.Target.Type)
		dst = appendText(dst, e.Target.Name)
	} else {
		dst = append(dst, ",,,"...)
	}
	dst = appendText(dst, e.Resource)
	dst = append(dst, ',')
	if e.SourceIP != nil { // an address, never a formula nor empty
		dst = append(dst, *e.SourceIP...)
	}
	dst = appendText(dst, e.UserAgent)
	dst = appendText(dst, e.RequestID)
	dst = appendText(dst, e.Method)
	dst = appendText(dst, e.Path)
	dst = append(dst, ',')
	if e.StatusCode != nil {
		dst = strconv.AppendInt(dst, int64(*e.StatusCode), 10)
	}
	dst = append(dst, ',')
	if e.Success != nil {
		dst = strconv.AppendBool(dst, *e.Success)
	}
	dst = append(dst, ',')
	if e.DurationMS != nil {
		dst = strconv.AppendInt(dst, *e.DurationMS, 10)
	}
	dst = append(dst, ',')
	// The metadata cell holds the metadata's bytes of the canonical
	// encoding (AppendJSON), so that it equals what the other routes
	// write. An object starts with {, so it is never neutralised.
	c.metadata = e.AppendMetadata(c.metadata[:0])
	dst = appendCell(dst, c.metadata, true)
	return append(dst, '\n')
}

// appendText appends a comma and an optional text cell: nothing when s is
// nil, s neutralised otherwise ("" when it is empty).
func appendText(dst []byte, s *string) []byte {
	dst = append(dst, ',')
	if s == nil {
		return dst
	}
	return appendCell(dst, Neutralise(*s), true)
}

// appendCell appends s as one RFC 4180 field, quoted when it must be, as
// encoding/csv quotes: when it holds a comma, a quote, CR or LF, starts
// with a space, or is PostgreSQL's end of data \. ; an empty s is quoted
// too when given says it is a value, not an absent one.
func appendCell[T string | []byte](dst []byte, s T, given bool) []byte {
	if !cellNeedsQuotes(s, given) {
		return append(dst, s...)
	}
	dst = append(dst, '"')
	for i := range len(s) {
		if s[i] == '"' {
			dst = append(dst, '"')
		}
		dst = append(dst, s[i])
	}
	return append(dst, '"')
}

func cellNeedsQuotes[T string | []byte](s T, given bool) bool {
	if len(s) == 0 {
		return given
	}
	for i := range len(s) {
		switch s[i] {
		case ',', '"', '\r', '\n':
			return true
		}
	}
	r, _ := utf8.DecodeRune([]byte(s[:min(len(s), utf8.UTFMax)]))
	return unicode.IsSpace(r) || string(s) == `\.`
}

// FormulaStart reports whether s starts with a character that makes a
// spreadsheet treat a cell as a formula: =, +, -, @, tab or carriage
// return (OWASP's CSV injection guidance). Ingest refuses identifiers that
// do, so that CSV never has to change them.
func FormulaStart(s string) bool {
	return s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0
}

// needsNeutralising reports whether Neutralise prefixes s: when it starts
// like a formula, or with a ' followed by what needs it, so that a text
// that already starts with the prefix keeps it when read back.
func needsNeutralising(s string) bool {
	for s != "" && s[0] == '\'' {
		s = s[1:]
	}
	return FormulaStart(s)
}

// Neutralise returns s with a leading ' when it starts with a character
// that makes a spreadsheet run it as a formula, as OWASP's CSV injection
// guidance recommends, or with 's before such a character, so that
// Unneutralise gives every text back. Other text is
// returned unchanged. RFC 4180 quoting is the CSV writer's job.
func Neutralise(s string) string {
	if needsNeutralising(s) {
		return "'" + s
	}
	return s
}

// Unneutralise is Neutralise's inverse: it removes the ' that Neutralise
// added.
func Unneutralise(s string) string {
	if s != "" && s[0] == '\'' && needsNeutralising(s[1:]) {
		return s[1:]
	}
	return s
}

// ReadCSVPart calls fn with each event of the CSV document in r, as it
// was written (AppendRow's inverse: a target when any of its cells is a
// value), and returns how many it read. The document must start with the
// header row of CSVColumns.
func ReadCSVPart(r io.Reader, fn func(e *audex.Event)) (int64, error) {
	cr := csvReader{r: bufio.NewReaderSize(r, 256<<10)}
	ok, err := cr.next()
	if err != nil {
		return 0, err
	}
	if !ok || !slices.Equal(cr.fields(), CSVColumns) {
		return 0, errors.New("the first row is not the header row")
	}
	var n int64
	for {
		ok, err := cr.next()
		if err != nil {
			return n, fmt.Errorf("record %d: %w", n+1, err)
		}
		if !ok {
			return n, nil
		}
		e, err := cr.event()
		if err != nil {
			return n, fmt.Errorf("record %d: %w", n+1, err)
		}
		n++
		fn(&e)
	}
}

// csvReader reads RFC 4180 rows and keeps, for each field, whether it was
// quoted: encoding/csv does not say, and it tells an empty text ("") from
// an absent value (nothing).
type csvReader struct {
	r      *bufio.Reader
	text   []byte
	ends   []int  // the end of each field in text
	quoted []bool // whether each field was quoted
}

// next reads one row; ok is false at the end of the document.
func (c *csvReader) next() (ok bool, err error) {
	c.text, c.ends, c.quoted = c.text[:0], c.ends[:0], c.quoted[:0]
	b, err := c.r.ReadByte()
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	for {
		quoted := err == nil && b == '"'
		if quoted {
			for {
				if b, err = c.r.ReadByte(); err != nil {
					return false, errors.New("a quoted field does not end")
				}
				if b == '"' {
					if b, err = c.r.ReadByte(); err != nil || b != '"' {
						break // b is the byte after the closing quote
					}
				}
				c.text = append(c.text, b)
			}
		} else {
			for err == nil && b != ',' && b != '\n' {
				if b == '"' {
					return false, errors.New("a quote inside an unquoted field")
				}
				c.text = append(c.text, b)
				b, err = c.r.ReadByte()
			}
		}
		c.ends = append(c.ends, len(c.text))
		c.quoted = append(c.quoted, quoted)
		switch {
		case errors.Is(err, io.EOF), err == nil && b == '\n':
			return true, nil
		case err != nil:
			return false, err
		case b != ',':
			return false, fmt.Errorf("%q after a quoted field", b)
		}
		b, err = c.r.ReadByte()
	}
}

// field returns field i's text.
func (c *csvReader) field(i int) string { return string(c.raw(i)) }

func (c *csvReader) raw(i int) []byte {
	start := 0
	if i > 0 {
		start = c.ends[i-1]
	}
	return c.text[start:c.ends[i]]
}

func (c *csvReader) fields() []string {
	out := make([]string, len(c.ends))
	for i := range out {
		out[i] = c.field(i)
	}
	return out
}

// optional returns field i as an optional value: nil when it is an
// unquoted empty field.
func (c *csvReader) optional(i int) *string {
	if !c.quoted[i] && len(c.raw(i)) == 0 {
		return nil
	}
	s := c.field(i)
	return &s
}

// optionalText returns an optional text field, its neutralising undone.
func (c *csvReader) optionalText(i int) *string {
	s := c.optional(i)
	if s != nil {
		*s = Unneutralise(*s)
	}
	return s
}

// event decodes the row as an event (columns in CSVColumns' order).
func (c *csvReader) event() (audex.Event, error) {
	if len(c.ends) != len(CSVColumns) {
		return audex.Event{}, fmt.Errorf("%d fields, want %d", len(c.ends), len(CSVColumns))
	}
	var e audex.Event
	var err error
	at := func(i int) time.Time {
		t, perr := time.Parse(time.RFC3339Nano, c.field(i))
		if perr != nil && err == nil {
			err = fmt.Errorf("%s: %w", CSVColumns[i], perr)
		}
		return t
	}
	integer := func(i int) *int64 {
		s := c.optional(i)
		if s == nil {
			return nil
		}
		v, perr := strconv.ParseInt(*s, 10, 64)
		if perr != nil && err == nil {
			err = fmt.Errorf("%s: %w", CSVColumns[i], perr)
		}
		return &v
	}
	e.ID = Unneutralise(c.field(0))
	e.OccurredAt, e.ReceivedAt = at(1), at(2)
	e.Action = Unneutralise(c.field(3))
	e.Actor = audex.Actor{ID: Unneutralise(c.field(4)), Type: c.optionalText(5), Name: c.optionalText(6)}
	if id, typ, name := c.optionalText(7), c.optionalText(8), c.optionalText(9); id != nil || typ != nil || name != nil {
		e.Target = &audex.Target{ID: id, Type: typ, Name: name}
	}
	e.Resource, e.SourceIP, e.UserAgent = c.optionalText(10), c.optional(11), c.optionalText(12)
	e.RequestID, e.Method, e.Path = c.optionalText(13), c.optionalText(14), c.optionalText(15)
	if code := integer(16); code != nil {
		v := int(*code)
		e.StatusCode = &v
	}
	if s := c.optional(17); s != nil {
		v, perr := strconv.ParseBool(*s)
		if perr != nil && err == nil {
			err = fmt.Errorf("success: %w", perr)
		}
		e.Success = &v
	}
	e.DurationMS = integer(18)
	e.Metadata = slices.Clone(c.raw(19))
	return e, err
}
