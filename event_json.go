package audex

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// MarshalJSON encodes the event in the API's shape through AppendJSON, so
// that the list and get routes, downloads and exports share one encoding.
// encoding/json leaves its output as it is: it is already compact and
// escaped as encoding/json escapes.
func (e Event) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(make([]byte, 0, 512)), nil
}

// AppendJSON appends the event's canonical encoding (docs/api.md, "One event,
// one encoding"): one compact JSON object in the API's shape, keys in the
// order of the Event section, absent optional fields as null, times in UTC
// with Z, metadata as AppendMetadata writes it, strings escaped as
// encoding/json escapes them, so <, >, &, U+2028 and U+2029 are \u003c,
// \u003e, \u0026, \u2028, \u2029 wherever they occur. These are the bytes of GET /v1/audit/events/{id}, of every line of
// an NDJSON download or export part and of every element of a JSON array
// download. It never fails.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"occurred_at":`...)
	b = appendTime(b, e.OccurredAt)
	b = append(b, `,"received_at":`...)
	b = appendTime(b, e.ReceivedAt)
	b = append(b, `,"action":`...)
	b = appendString(b, e.Action)
	b = append(b, `,"actor":{"id":`...)
	b = appendString(b, e.Actor.ID)
	b = append(b, `,"type":`...)
	b = appendOptString(b, e.Actor.Type)
	b = append(b, `,"name":`...)
	b = appendOptString(b, e.Actor.Name)
	b = append(b, `},"target":`...)
	if e.Target == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"id":`...)
		b = appendOptString(b, e.Target.ID)
		b = append(b, `,"type":`...)
		b = appendOptString(b, e.Target.Type)
		b = append(b, `,"name":`...)
		b = appendOptString(b, e.Target.Name)
		b = append(b, '}')
	}
	b = append(b, `,"resource":`...)
	b = appendOptString(b, e.Resource)
	b = append(b, `,"source_ip":`...)
	b = appendOptString(b, e.SourceIP)
	b = append(b, `,"user_agent":`...)
	b = appendOptString(b, e.UserAgent)
	b = append(b, `,"request_id":`...)
	b = appendOptString(b, e.RequestID)
	b = append(b, `,"method":`...)
	b = appendOptString(b, e.Method)
	b = append(b, `,"path":`...)
	b = appendOptString(b, e.Path)
	b = append(b, `,"status_code":`...)
	if e.StatusCode == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, int64(*e.StatusCode), 10)
	}
	b = append(b, `,"success":`...)
	if e.Success == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendBool(b, *e.Success)
	}
	b = append(b, `,"duration_ms":`...)
	if e.DurationMS == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, *e.DurationMS, 10)
	}
	b = append(b, `,"metadata":`...)
	b = e.AppendMetadata(b)
	return append(b, '}')
}

// AppendMetadata appends the event's metadata as it appears in the
// canonical encoding ({} when there is none): Metadata with the whitespace
// between its tokens removed and <, >, &, U+2028 and U+2029 in its strings
// escaped, byte for byte what encoding/json makes of it (json.Compact, then
// json.HTMLEscape). Everything else is kept as it is: PostgreSQL's jsonb
// text (a space after every separator, those characters raw) becomes the
// compact form, and already compact metadata is copied. CSV's metadata
// cell holds these bytes. Metadata must be valid JSON, as the store always
// returns it; it never fails.
func (e *Event) AppendMetadata(b []byte) []byte {
	if len(e.Metadata) == 0 {
		return append(b, "{}"...)
	}
	return appendCanonicalJSON(b, e.Metadata)
}

// Byte classes of appendCanonicalJSON: outside strings, a quote or JSON
// whitespace ends a run of bytes copied as they are; inside strings, a
// quote, a backslash, <, >, & or 0xE2 (the first byte of U+2028 and
// U+2029) does.
var jsonOutsideStop, jsonInsideStop [256]bool

func init() {
	for _, c := range []byte{'"', ' ', '\t', '\n', '\r'} {
		jsonOutsideStop[c] = true
	}
	for _, c := range []byte{'"', '\\', '<', '>', '&', 0xE2} {
		jsonInsideStop[c] = true
	}
}

// appendCanonicalJSON appends the valid JSON src compacted and escaped in
// one pass, copying the runs between the bytes it must drop or escape
// whole (a jsonb text of a few keys is a handful of runs).
func appendCanonicalJSON(b, src []byte) []byte {
	start, i, n := 0, 0, len(src)
	for i < n {
		for i < n && !jsonOutsideStop[src[i]] {
			i++
		}
		if i == n {
			break
		}
		if src[i] != '"' { // whitespace between tokens: dropped
			b = append(b, src[start:i]...)
			i++
			start = i
			continue
		}
		// A string, from after its opening quote to its closing one.
		i++
	str:
		for i < n {
			for i < n && !jsonInsideStop[src[i]] {
				i++
			}
			if i == n {
				break
			}
			switch c := src[i]; c {
			case '"':
				i++
				break str
			case '\\': // an escape: the byte after the backslash is part of it
				i += 2
			case '<', '>', '&':
				b = append(b, src[start:i]...)
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
				i++
				start = i
			default: // 0xE2
				if i+2 < n && src[i+1] == 0x80 && src[i+2]&^1 == 0xA8 {
					b = append(b, src[start:i]...)
					b = append(b, '\\', 'u', '2', '0', '2', hexDigits[src[i+2]&0xF])
					i += 3
					start = i
				} else {
					i++
				}
			}
		}
	}
	return append(b, src[start:]...)
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

func appendOptString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendString(b, *s)
}

const hexDigits = "0123456789abcdef"

// jsonSafe holds the ASCII bytes that appendString copies as they are:
// printable, and not a quote, a backslash, <, > or &. Bytes from 0x80 are
// not in it: they start runes, which are checked one by one.
var jsonSafe [256]bool

func init() {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		jsonSafe[c] = true
	}
	for _, c := range []byte{'"', '\\', '<', '>', '&'} {
		jsonSafe[c] = false
	}
}

// appendString appends s as a JSON string, escaping as encoding/json does
// (including <, > and & for HTML safety, and U+2028/U+2029). Runs of safe
// bytes are copied whole.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		for i < len(s) && jsonSafe[s[i]] {
			i++
		}
		if i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
