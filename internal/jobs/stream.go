package jobs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/config"
	"github.com/audex-dev/audex/internal/format"
	"github.com/audex-dev/audex/internal/metrics"
	"github.com/audex-dev/audex/internal/queue"
	"github.com/audex-dev/audex/internal/sinks"
	"github.com/audex-dev/audex/internal/store"
)

// streamBatchMaxRecords is the most events one batch holds: a backfill or
// a stream that fell behind catches up in batches of this size, each
// delivered well within an attempt.
const streamBatchMaxRecords = 500_000

// streamRetryMax bounds the wait before a failed delivery is tried again
// (it doubles from streamRetryMin with each failure in a row).
const (
	streamRetryMin = 2 * time.Second
	streamRetryMax = time.Minute
)

// StreamWorker delivers a stream's batches. One job per active stream
// (queue.StreamArgs is unique by stream): each run delivers the batches
// that are due, for at most Window, then snoozes until the next is due.
// A paused, failed or deleted stream ends its job; resuming inserts one.
//
// Exactly once: a batch's through is fixed in the stream's row
// (pending_through) before its first object is written, so every attempt
// of batch k writes the same events (received from the watermark on and
// before through, after the as_of barrier that makes them all committed)
// under the same keys; its manifest is written last, and the batch is
// recorded in the transaction that moves the watermark to through, once
// (CommitStreamBatch checks the sequence number).
type StreamWorker struct {
	river.WorkerDefaults[queue.StreamArgs]
	Pool     *pgxpool.Pool
	Logger   *slog.Logger
	OpenSink SinkOpener
	// Window is how long one run delivers before it lets other jobs go.
	Window time.Duration
	// PartMaxRecords and PartMaxBytes cut a batch into parts (zero: the
	// exports' defaults).
	PartMaxRecords int
	PartMaxBytes   int64
}

// Timeout bounds a run: its window, plus a batch of the most records.
func (w *StreamWorker) Timeout(*river.Job[queue.StreamArgs]) time.Duration {
	return w.Window + 5*time.Minute
}

// Work delivers the stream's due batches.
func (w *StreamWorker) Work(ctx context.Context, job *river.Job[queue.StreamArgs]) error {
	log := w.Logger.With(slog.String("stream_id", job.Args.StreamID), slog.Int64("job_id", job.ID))
	deadline := time.Now().Add(w.Window)
	var sink sinks.Sink
	for {
		s, err := store.GetStreamByID(ctx, w.Pool, job.Args.StreamID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil
		case err != nil:
			return err
		case s.Status != audex.StreamActive:
			log.Info("stream_job_ended", slog.String("status", s.Status))
			return nil
		}
		if s.PendingThrough == nil {
			if wait := time.Until(s.Watermark.Add(s.Interval())); wait > 0 {
				return river.JobSnooze(wait)
			}
		}
		if time.Now().After(deadline) {
			return river.JobSnooze(0) // let other jobs go, then go on
		}
		if sink == nil {
			if sink, err = w.OpenSink(ctx, s.Destination.Name); err != nil {
				return w.failed(ctx, log, s, sinkError{err})
			}
		}
		if err := w.deliver(ctx, log, s, sink); err != nil {
			if errors.Is(err, store.ErrConflict) {
				continue // paused or delivered by another attempt: look again
			}
			return w.failed(ctx, log, s, err)
		}
	}
}

// failed records a failed delivery: a permanent one fails the stream, a
// transient one is tried again after a backoff that grows with the
// failures in a row, while the stream lags.
func (w *StreamWorker) failed(ctx context.Context, log *slog.Logger, s audex.Stream, err error) error {
	if ctx.Err() != nil {
		return err // the run was stopped: River retries it
	}
	permanent := sinks.IsPermanent(err) || errors.Is(err, ErrDestinationGone)
	failure := describeFailure(s.Destination, err)
	if !permanent {
		failure = audex.ExportError{Code: "delivery_retrying",
			Message: fmt.Sprintf("delivery to destination %s failed and is retried: %v", s.Destination.Name, err)}
	}
	failures, recordErr := store.RecordStreamFailure(context.WithoutCancel(ctx), w.Pool, s, failure, permanent)
	if recordErr != nil {
		return errors.Join(err, recordErr)
	}
	if permanent {
		log.Warn("stream_failed", slog.String("code", failure.Code), slog.String("reason", failure.Message))
		return nil
	}
	log.Warn("stream_delivery_failed", slog.Int("failures", failures), slog.Any("error", err))
	return river.JobSnooze(min(streamRetryMax, streamRetryMin<<min(failures-1, 10)))
}

// deliver delivers the stream's next batch: the pending one, or a new one
// up to now (capped at streamBatchMaxRecords).
func (w *StreamWorker) deliver(ctx context.Context, log *slog.Logger, s audex.Stream, sink sinks.Sink) error {
	through := s.PendingThrough
	if through == nil {
		t, err := w.batchEnd(ctx, s)
		if err != nil {
			return err
		}
		if t, err = store.PendStreamBatch(ctx, w.Pool, s.ID, t); err != nil {
			return err
		}
		through = &t
	}
	b := audex.StreamBatch{StreamID: s.ID, Seq: s.NextSeq, After: s.Watermark, Through: *through,
		Files: []audex.ExportFile{}, PreviousManifestSHA256: s.LastManifestSHA256}
	base := batchKeyBase(s, b)
	if err := w.writeParts(ctx, s, sink, &b, base); err != nil {
		return err
	}
	if err := removeStaleParts(ctx, sink, base, b.Files); err != nil {
		return err
	}
	if b.RecordCount > 0 {
		b.DeliveredAt = time.Now().UTC().Truncate(time.Microsecond)
		manifestKey := base + "manifest.json"
		b.ManifestKey = &manifestKey
		manifest, err := json.Marshal(b)
		if err != nil {
			return err
		}
		obj, err := sink.Put(ctx, manifestKey, bytes.NewReader(manifest))
		if err != nil {
			return fmt.Errorf("upload %s: %w", manifestKey, err)
		}
		b.ManifestSHA256 = obj.SHA256
	}
	if err := store.CommitStreamBatch(ctx, w.Pool, b); err != nil {
		return err
	}
	if b.RecordCount > 0 {
		metrics.StreamedEvents.WithLabelValues(s.Destination.Type).Add(float64(b.RecordCount))
		metrics.StreamBatches.WithLabelValues(s.Destination.Type).Inc()
		log.Info("stream_batch_delivered", slog.Int64("seq", b.Seq), slog.Int64("records", b.RecordCount), slog.Int("parts", len(b.Files)))
	}
	return nil
}

// batchEnd returns the through of a new batch: now, once every ingest
// under way has committed (the as_of barrier of exports), or earlier when
// more than streamBatchMaxRecords events wait.
func (w *StreamWorker) batchEnd(ctx context.Context, s audex.Stream) (time.Time, error) {
	var now time.Time
	if err := w.Pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&now); err != nil {
		return now, err
	}
	if err := store.WaitForIngests(ctx, w.Pool, s.TenantID); err != nil {
		return now, err
	}
	return store.StreamBatchEnd(ctx, w.Pool, s, now, streamBatchMaxRecords)
}

// batchKeyBase is what the keys of batch b's objects start with:
// <key prefix>dt=YYYY-MM-DD/hour=HH/batch-000001-, by the batch's through
// in UTC (Hive-style partitions that query engines prune by).
func batchKeyBase(s audex.Stream, b audex.StreamBatch) string {
	t := b.Through.UTC()
	return fmt.Sprintf("%sdt=%s/hour=%02d/batch-%06d-", s.KeyPrefix, t.Format(time.DateOnly), t.Hour(), b.Seq)
}

// streamPageSize is how many events a batch reads per statement.
const streamPageSize = 2000

// writeParts writes the batch's events in parts, each cut at the part
// limits, and adds them to b.
func (w *StreamWorker) writeParts(ctx context.Context, s audex.Stream, sink sinks.Sink, b *audex.StreamBatch, base string) error {
	maxRecords, maxBytes := w.PartMaxRecords, w.PartMaxBytes
	if maxRecords <= 0 {
		maxRecords = config.DefaultExports.PartMaxRecords
	}
	if maxBytes <= 0 {
		maxBytes = config.DefaultExports.PartMaxBytes
	}
	rows := format.NewRows(formatName(s.Format))
	var after *store.Arrival
	var page []audex.Event
	next := func() error {
		var err error
		page, err = store.ListArrivals(ctx, w.Pool, s.TenantID, s.Filter, b.After, b.Through, after, streamPageSize)
		if len(page) > 0 {
			last := page[len(page)-1]
			after = &store.Arrival{ReceivedAt: last.ReceivedAt, ID: last.ID}
		}
		return err
	}
	if err := next(); err != nil {
		return err
	}
	for number := 1; len(page) > 0; number++ {
		key := fmt.Sprintf("%spart-%05d.%s", base, number, format.Extension(formatName(s.Format)))
		if s.Compression == "gzip" {
			key += ".gz"
		}
		var records int64
		pr, pw := io.Pipe()
		produced := make(chan error, 1)
		go func() {
			err := writePart(pw, rows, s.Compression == "gzip", maxRecords, maxBytes, &page, &records, next)
			pw.CloseWithError(err)
			produced <- err
		}()
		obj, putErr := sink.Put(ctx, key, pr)
		pr.CloseWithError(errUploadEnded)
		if err := <-produced; err != nil && !errors.Is(err, errUploadEnded) {
			return err
		}
		if putErr != nil {
			return fmt.Errorf("upload %s: %w", key, putErr)
		}
		b.Files = append(b.Files, audex.ExportFile{Key: key, SizeBytes: obj.Size, Records: records, SHA256: obj.SHA256})
		b.RecordCount += records
	}
	return nil
}

// writePart encodes events from *page on into out until the part is full
// (maxRecords, or maxBytes before compression) or the events run out,
// calling next for each following page. It leaves in *page the events
// that did not fit.
func writePart(out io.Writer, rows format.Rows, gz bool, maxRecords int, maxBytes int64, page *[]audex.Event, records *int64, next func() error) error {
	buffered := bufio.NewWriterSize(out, partBufferSize)
	var body io.Writer = buffered
	var zw *gzip.Writer
	if gz {
		zw, _ = gzip.NewWriterLevel(buffered, gzip.BestSpeed)
		body = zw
	}
	header := rows.Header()
	written := int64(len(header))
	if _, err := body.Write(header); err != nil {
		return err
	}
	var buf []byte
	for len(*page) > 0 {
		for i := range *page {
			buf = rows.AppendRow(buf[:0], &(*page)[i])
			if *records >= int64(maxRecords) || *records > 0 && written+int64(len(buf)) > maxBytes {
				*page = (*page)[i:]
				return finishPart(zw, buffered)
			}
			if _, err := body.Write(buf); err != nil {
				return err
			}
			written += int64(len(buf))
			*records++
		}
		if err := next(); err != nil {
			return err
		}
	}
	return finishPart(zw, buffered)
}

// finishPart closes a part's gzip stream, if any, and flushes its buffer.
func finishPart(zw *gzip.Writer, buffered *bufio.Writer) error {
	if zw != nil {
		if err := zw.Close(); err != nil {
			return err
		}
	}
	return buffered.Flush()
}

// removeStaleParts deletes the batch's part objects that are not among
// files: parts that an earlier attempt wrote past the count this one
// wrote (when an event of the batch was deleted in between), so that a
// retried batch never adds objects.
func removeStaleParts(ctx context.Context, sink sinks.Sink, base string, files []audex.ExportFile) error {
	objects, err := sink.List(ctx, base+"part-")
	if err != nil {
		return fmt.Errorf("list %spart-: %w", base, err)
	}
	kept := make(map[string]bool, len(files))
	for _, f := range files {
		kept[f.Key] = true
	}
	for _, o := range objects {
		if !kept[o.Key] && strings.HasPrefix(o.Key, base) {
			if err := sink.Delete(ctx, o.Key); err != nil {
				return fmt.Errorf("delete %s: %w", o.Key, err)
			}
		}
	}
	return nil
}

// StreamSchedulerWorker inserts a stream job for every active stream: the
// unique job kind adds none where one is already queued, running or
// snoozed, so this only restarts streams whose job was lost.
type StreamSchedulerWorker struct {
	river.WorkerDefaults[queue.StreamSchedulerArgs]
	Pool *pgxpool.Pool
}

// Work inserts the jobs.
func (w *StreamSchedulerWorker) Work(ctx context.Context, _ *river.Job[queue.StreamSchedulerArgs]) error {
	ids, err := store.ActiveStreamIDs(ctx, w.Pool)
	if err != nil || len(ids) == 0 {
		return err
	}
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return err
	}
	params := make([]river.InsertManyParams, len(ids))
	for i, id := range ids {
		params[i] = river.InsertManyParams{Args: queue.StreamArgs{StreamID: id}}
	}
	_, err = client.InsertMany(ctx, params)
	return err
}
