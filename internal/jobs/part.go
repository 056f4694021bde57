package jobs

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/format"
	"github.com/audex-dev/audex/internal/sinks"
)

// partBufferSize is the buffer between the encoder and the upload: one
// write to the sink per 256 KiB rather than one per event.
const partBufferSize = 256 << 10

// partBody is where the rows of one part (of an export or a stream batch)
// go: through a buffer, and gzip when asked, or into a Parquet file of the
// events. Its rows are those of partRows, which measure a part's size
// before compression in every format.
type partBody struct {
	buffered *bufio.Writer
	body     io.Writer
	gz       *gzip.Writer
	pq       *format.ParquetPart
}

// newPartBody returns the body of a part of format (an export's or
// stream's format name) and compression ("gzip" or "none") written to out,
// with its header (CSV's) written.
func newPartBody(out io.Writer, formatName, compression string, rows format.Rows) (*partBody, error) {
	p := &partBody{buffered: bufio.NewWriterSize(out, partBufferSize)}
	p.body = p.buffered
	switch {
	case formatName == format.Parquet:
		p.pq = format.NewParquetPart(p.buffered)
	case compression == "gzip":
		p.gz, _ = gzip.NewWriterLevel(p.buffered, gzip.BestSpeed)
		p.body = p.gz
	}
	_, err := p.body.Write(rows.Header())
	return p, err
}

// partRows returns the row encoder of a part of format: its rows for
// NDJSON and CSV; for Parquet, whose file is no sequence of rows, the
// NDJSON rows of its events, by which the part's size is measured.
func partRows(formatName string) format.Rows {
	if formatName == format.Parquet {
		return format.NewRows(format.NDJSON)
	}
	return format.NewRows(formatName)
}

// write adds event e, whose row (of partRows) is row.
func (p *partBody) write(row []byte, e *audex.Event) error {
	if p.pq != nil {
		return p.pq.Write(e)
	}
	_, err := p.body.Write(row)
	return err
}

// finish ends the part (the Parquet footer, the gzip trailer) and flushes
// its buffer; it does not close out.
func (p *partBody) finish() error {
	if p.pq != nil {
		if err := p.pq.Close(); err != nil {
			return err
		}
	}
	if p.gz != nil {
		if err := p.gz.Close(); err != nil {
			return err
		}
	}
	return p.buffered.Flush()
}

// errUploadEnded tells the producer of a part that the upload stopped
// reading.
var errUploadEnded = errors.New("upload ended")

// uploadPart uploads to key what produce writes, while it writes (through
// a pipe: a part is never whole in memory). produce's own error
// (cancelled, lease lost, database) wins over the upload's.
func uploadPart(ctx context.Context, sink sinks.Sink, key string, produce func(io.Writer) error) (sinks.Object, error) {
	pr, pw := io.Pipe()
	produced := make(chan error, 1)
	go func() {
		err := produce(pw)
		pw.CloseWithError(err) // nil closes cleanly
		produced <- err
	}()
	obj, putErr := sink.Put(ctx, key, pr)
	pr.CloseWithError(errUploadEnded) // unblock the producer if Put stopped reading
	if err := <-produced; err != nil && !errors.Is(err, errUploadEnded) {
		return obj, err
	}
	if putErr != nil {
		return obj, fmt.Errorf("upload %s: %w", key, putErr)
	}
	return obj, nil
}
