package store

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/audex-dev/audex"
)

// Reading events is most of what an export, a download or a list spends
// in Go: pgx's Scan decodes each column through a scan plan and allocates
// each optional text on its own (2.4 us an event, BENCHMARKS.md, "Exports:
// where the time goes"). decodeEvent reads a row of selectEventColumns
// from its raw binary values instead, with one allocation for all of its
// text, one for its optional values and one for its metadata.

// eventColumnTypes are the types that decodeEvent reads for the columns
// of selectEventColumns: text and jsonb in either format (text is the same
// bytes in both), the others in binary.
var eventColumnTypes = []uint32{
	pgtype.TextOID, pgtype.TimestamptzOID, pgtype.TimestamptzOID, pgtype.TextOID,
	pgtype.TextOID, pgtype.TextOID, pgtype.TextOID,
	pgtype.TextOID, pgtype.TextOID, pgtype.TextOID,
	pgtype.TextOID, pgtype.TextOID, pgtype.TextOID, pgtype.TextOID, pgtype.TextOID, pgtype.TextOID,
	pgtype.Int4OID, pgtype.BoolOID, pgtype.Int8OID, pgtype.JSONBOID,
}

// Positions of selectEventColumns.
const (
	colID = iota
	colOccurredAt
	colReceivedAt
	colAction
	colActorID
	colActorType // the first optional text
	colActorName
	colTargetID
	colTargetType
	colTargetName
	colResource
	colSourceIP
	colUserAgent
	colRequestID
	colMethod
	colPath // the last optional text
	colStatusCode
	colSuccess
	colDurationMS
	colMetadata
)

// optionalTexts is the number of optional text columns.
const optionalTexts = colPath - colActorType + 1

// eventOptionals holds an event's optional values, one allocation for all.
type eventOptionals struct {
	texts      [optionalTexts]string
	target     audex.Target
	statusCode int
	success    bool
	durationMS int64
}

// postgresEpoch is where PostgreSQL's binary timestamps count from
// (2000-01-01 UTC), in Unix seconds.
const postgresEpoch = 946_684_800

// scanEvent reads one row of selectEventColumns: decoded from its raw
// values when they are in the types and formats decodeEvent knows (always,
// with pgx's extended protocol), else through Scan.
func scanEvent(row pgx.CollectableRow) (audex.Event, error) {
	if e, ok := decodeEvent(row.FieldDescriptions(), row.RawValues()); ok {
		return e, nil
	}
	return scanEventAnd(row)
}

// decodeEvent decodes a row of selectEventColumns from its raw values; ok
// is false when a column is not of the type (and format) that
// eventColumnTypes names, or holds a value that decodeEvent does not read
// (an infinite timestamp, a binary jsonb of another version).
func decodeEvent(fields []pgconn.FieldDescription, raw [][]byte) (e audex.Event, ok bool) {
	if len(fields) != len(eventColumnTypes) || len(raw) != len(eventColumnTypes) {
		return e, false
	}
	size := 0
	for i, f := range fields {
		// Text and jsonb come as text (pgx asks so), the rest in binary.
		textual := f.DataTypeOID == pgtype.TextOID || f.DataTypeOID == pgtype.JSONBOID
		if f.DataTypeOID != eventColumnTypes[i] || !textual && f.Format != pgx.BinaryFormatCode {
			return e, false
		}
		if eventColumnTypes[i] == pgtype.TextOID {
			size += len(raw[i])
		}
	}
	// Every text of the row in one string, cut into its columns.
	buf := make([]byte, 0, size)
	for i, t := range eventColumnTypes {
		if t == pgtype.TextOID {
			buf = append(buf, raw[i]...)
		}
	}
	// buf is never written again: its bytes are the string's, uncopied.
	all := unsafe.String(unsafe.SliceData(buf), len(buf))
	var texts [colMetadata + 1]string
	at := 0
	for i, t := range eventColumnTypes {
		if t == pgtype.TextOID {
			texts[i] = all[at : at+len(raw[i])]
			at += len(raw[i])
		}
	}
	if raw[colID] == nil || raw[colAction] == nil || raw[colActorID] == nil {
		return e, false
	}
	occurred, ok1 := decodeTimestamptz(raw[colOccurredAt])
	received, ok2 := decodeTimestamptz(raw[colReceivedAt])
	if !ok1 || !ok2 {
		return e, false
	}
	o := new(eventOptionals)
	e = audex.Event{ID: texts[colID], OccurredAt: occurred, ReceivedAt: received, Action: texts[colAction], Actor: audex.Actor{ID: texts[colActorID]}}
	optional := func(col int) *string {
		if raw[col] == nil {
			return nil
		}
		p := &o.texts[col-colActorType]
		*p = texts[col]
		return p
	}
	e.Actor.Type, e.Actor.Name = optional(colActorType), optional(colActorName)
	o.target = audex.Target{ID: optional(colTargetID), Type: optional(colTargetType), Name: optional(colTargetName)}
	if o.target.ID != nil || o.target.Type != nil || o.target.Name != nil {
		e.Target = &o.target
	}
	e.Resource, e.SourceIP, e.UserAgent = optional(colResource), optional(colSourceIP), optional(colUserAgent)
	e.RequestID, e.Method, e.Path = optional(colRequestID), optional(colMethod), optional(colPath)
	if v := raw[colStatusCode]; v != nil {
		if len(v) != 4 {
			return e, false
		}
		o.statusCode = int(int32(binary.BigEndian.Uint32(v)))
		e.StatusCode = &o.statusCode
	}
	if v := raw[colSuccess]; v != nil {
		if len(v) != 1 {
			return e, false
		}
		o.success = v[0] != 0
		e.Success = &o.success
	}
	if v := raw[colDurationMS]; v != nil {
		if len(v) != 8 {
			return e, false
		}
		o.durationMS = int64(binary.BigEndian.Uint64(v))
		e.DurationMS = &o.durationMS
	}
	// jsonb's text, kept as read (see scanEventAnd); its binary form is a
	// version byte (1) and the same text.
	if v := raw[colMetadata]; v != nil {
		if fields[colMetadata].Format == pgx.BinaryFormatCode {
			if len(v) == 0 || v[0] != 1 {
				return e, false
			}
			v = v[1:]
		}
		e.Metadata = json.RawMessage(append([]byte(nil), v...))
	}
	return e, true
}

// decodeTimestamptz decodes a binary timestamptz (microseconds since
// postgresEpoch) as UTC; ok is false for the infinities and a wrong size.
func decodeTimestamptz(v []byte) (time.Time, bool) {
	if len(v) != 8 {
		return time.Time{}, false
	}
	us := int64(binary.BigEndian.Uint64(v))
	if us == math.MaxInt64 || us == math.MinInt64 {
		return time.Time{}, false
	}
	return time.Unix(postgresEpoch+us/1e6, us%1e6*1e3).UTC(), true
}
