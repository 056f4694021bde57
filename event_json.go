package audex

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// MarshalJSON encodes the event in the API's shape through AppendJSON, so
// that the list route, downloads and exports share one encoding.
func (e Event) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(make([]byte, 0, 512)), nil
}

// AppendJSON appends the event as one compact JSON object in the API's
// shape: absent optional fields as null, times in UTC with Z, metadata as
// stored (always an object). It never fails.
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
	if len(e.Metadata) == 0 {
		b = append(b, "{}"...)
	} else {
		b = append(b, e.Metadata...)
	}
	return append(b, '}')
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

// appendString appends s as a JSON string, escaping as encoding/json does
// (including <, > and & for HTML safety, and U+2028/U+2029).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
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
