package format

import (
	"errors"
	"io"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/audex-dev/audex"
)

// Parquet is the format name of Parquet parts (export jobs and streams;
// not downloads).
const Parquet = "parquet"

// parquetRow is an event as one Parquet row: the columns of CSV, typed.
// Times are UTC timestamps in microseconds (the database's precision),
// numbers integers, success a boolean, absent values nulls, and metadata
// the bytes of its canonical JSON as a string. Columns of few distinct
// values are dictionary-encoded.
type parquetRow struct {
	ID         string  `parquet:"id"`
	OccurredAt int64   `parquet:"occurred_at,timestamp(microsecond:utc)"`
	ReceivedAt int64   `parquet:"received_at,timestamp(microsecond:utc)"`
	Action     string  `parquet:"action,dict"`
	ActorID    string  `parquet:"actor_id"`
	ActorType  *string `parquet:"actor_type,optional,dict"`
	ActorName  *string `parquet:"actor_name,optional"`
	TargetID   *string `parquet:"target_id,optional"`
	TargetType *string `parquet:"target_type,optional,dict"`
	TargetName *string `parquet:"target_name,optional"`
	Resource   *string `parquet:"resource,optional"`
	SourceIP   *string `parquet:"source_ip,optional"`
	UserAgent  *string `parquet:"user_agent,optional"`
	RequestID  *string `parquet:"request_id,optional"`
	Method     *string `parquet:"method,optional,dict"`
	Path       *string `parquet:"path,optional"`
	StatusCode *int32  `parquet:"status_code,optional"`
	Success    *bool   `parquet:"success,optional"`
	DurationMS *int64  `parquet:"duration_ms,optional"`
	Metadata   string  `parquet:"metadata"`
}

// parquetRowGroup is the most rows of a row group: readers (DuckDB,
// Spark, Athena) work a row group per thread, and the writer holds one
// in memory, so groups of 16,384 events (about 8 MiB before compression)
// keep both the readers busy and the worker's memory flat.
const parquetRowGroup = 16_384

// ParquetPart writes one Parquet file of events, zstd-compressed, row
// group after row group: it holds at most one row group in memory.
type ParquetPart struct {
	w    *parquet.GenericWriter[parquetRow]
	rows []parquetRow
	meta []byte
}

// NewParquetPart returns a Parquet file writer to w.
func NewParquetPart(w io.Writer) *ParquetPart {
	return &ParquetPart{
		w: parquet.NewGenericWriter[parquetRow](w, parquet.Compression(&zstd.Codec{Level: zstd.SpeedFastest}),
			parquet.MaxRowsPerRowGroup(parquetRowGroup), parquet.CreatedBy("audex", "1", "")),
		rows: make([]parquetRow, 0, 256),
	}
}

// Write adds one event.
func (p *ParquetPart) Write(e *audex.Event) error {
	r := parquetRow{ID: e.ID, OccurredAt: e.OccurredAt.UnixMicro(), ReceivedAt: e.ReceivedAt.UnixMicro(),
		Action: e.Action, ActorID: e.Actor.ID, ActorType: e.Actor.Type, ActorName: e.Actor.Name,
		Resource: e.Resource, SourceIP: e.SourceIP, UserAgent: e.UserAgent, RequestID: e.RequestID,
		Method: e.Method, Path: e.Path, Success: e.Success, DurationMS: e.DurationMS}
	if e.Target != nil {
		r.TargetID, r.TargetType, r.TargetName = e.Target.ID, e.Target.Type, e.Target.Name
	}
	if e.StatusCode != nil {
		code := int32(*e.StatusCode) // ingest bounds it to 100..599
		r.StatusCode = &code
	}
	p.meta = e.AppendMetadata(p.meta[:0])
	r.Metadata = string(p.meta)
	p.rows = append(p.rows, r)
	if len(p.rows) == cap(p.rows) {
		return p.flushRows()
	}
	return nil
}

// flushRows hands the rows gathered to the writer.
func (p *ParquetPart) flushRows() error {
	_, err := p.w.Write(p.rows)
	clear(p.rows)
	p.rows = p.rows[:0]
	return err
}

// Close writes the rows left and the file's footer. It does not close the
// underlying writer.
func (p *ParquetPart) Close() error {
	if err := p.flushRows(); err != nil {
		return err
	}
	return p.w.Close()
}

// ReadParquetPart calls fn with each event of the Parquet part in r (of
// size bytes), as it was written (Write's inverse: a target when any of
// its columns is set), and returns how many it read.
func ReadParquetPart(r io.ReaderAt, size int64, fn func(e *audex.Event)) (int64, error) {
	f, err := parquet.OpenFile(r, size)
	if err != nil {
		return 0, err
	}
	reader := parquet.NewGenericReader[parquetRow](f)
	defer reader.Close()
	rows := make([]parquetRow, 256)
	var count int64
	for {
		n, err := reader.Read(rows)
		for i := range rows[:n] {
			e := rows[i].event()
			fn(&e)
		}
		count += int64(n)
		if errors.Is(err, io.EOF) {
			return count, nil
		}
		if err != nil {
			return count, err
		}
	}
}

// event is the event of row r.
func (r *parquetRow) event() audex.Event {
	e := audex.Event{ID: r.ID, OccurredAt: time.UnixMicro(r.OccurredAt).UTC(), ReceivedAt: time.UnixMicro(r.ReceivedAt).UTC(),
		Action: r.Action, Actor: audex.Actor{ID: r.ActorID, Type: r.ActorType, Name: r.ActorName},
		Resource: r.Resource, SourceIP: r.SourceIP, UserAgent: r.UserAgent, RequestID: r.RequestID,
		Method: r.Method, Path: r.Path, Success: r.Success, DurationMS: r.DurationMS, Metadata: []byte(r.Metadata)}
	if r.TargetID != nil || r.TargetType != nil || r.TargetName != nil {
		e.Target = &audex.Target{ID: r.TargetID, Type: r.TargetType, Name: r.TargetName}
	}
	if r.StatusCode != nil {
		code := int(*r.StatusCode)
		e.StatusCode = &code
	}
	return e
}
