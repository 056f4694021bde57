package jobs

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
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
	"github.com/audex-dev/audex/internal/webhook"
)

// WebhookOpener opens a configured webhook destination by name; a name
// that is not configured is an error wrapping ErrDestinationGone.
type WebhookOpener func(ctx context.Context, destination string) (*webhook.Client, error)

// streamBatchMaxRecords is the most events one batch holds: a backfill or
// a stream that fell behind catches up in batches of this size, each
// delivered well within an attempt.
const streamBatchMaxRecords = 500_000

// A failed delivery is tried again after streamRetryMin, doubling with
// each failure in a row up to streamRetryMax.
const (
	streamRetryMin = 2 * time.Second
	streamRetryMax = time.Minute
)

// StreamWorker delivers a stream's due batches, one run per job: the
// StreamSchedulerWorker inserts a job for each active stream whose next
// batch (or retry) is due and whose lease is free, claiming the lease for
// it. The run holds the stream's lease (renewed every third of LeaseTTL)
// while it delivers, for at most Window, and releases it when it ends; a
// run that dies leaves the lease to expire, and the scheduler starts
// another. A paused, failed or deleted stream is not delivered.
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
	Pool *pgxpool.Pool
	// Reads serves the batches' event reads from a replica when one is
	// configured (nil: Pool).
	Reads    *store.Reads
	Logger   *slog.Logger
	OpenSink SinkOpener
	// Window is how long one run delivers before it lets other jobs go.
	Window time.Duration
	// OpenWebhook opens a configured webhook destination by name.
	OpenWebhook WebhookOpener
	// LeaseTTL is how long a silent run keeps its claim on the stream.
	LeaseTTL time.Duration
	// PartMaxRecords and PartMaxBytes cut a batch into parts (zero: the
	// exports' defaults).
	PartMaxRecords int
	PartMaxBytes   int64
	// Sealer puts the integrity log's checkpoint in each batch's manifest
	// and signs it (nil: neither).
	Sealer *LogSealer
}

// Timeout bounds a run: its window, then a batch of the most records
// (a lost lease stops it sooner).
func (w *StreamWorker) Timeout(*river.Job[queue.StreamArgs]) time.Duration {
	return w.Window + 5*time.Minute
}

// Work delivers the stream's due batches while it holds the stream's
// lease.
func (w *StreamWorker) Work(ctx context.Context, job *river.Job[queue.StreamArgs]) error {
	id := job.Args.StreamID
	owner := fmt.Sprintf("%s:%d:job%d:%d", hostname(), os.Getpid(), job.ID, job.Attempt)
	log := w.Logger.With(slog.String("stream_id", id), slog.Int64("job_id", job.ID))
	s, err := store.AcquireStreamLease(ctx, w.Pool, id, owner, w.LeaseTTL)
	switch {
	case errors.Is(err, store.ErrLeaseLost), errors.Is(err, store.ErrNotFound):
		return nil // another run delivers it, or it is not active
	case err != nil:
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		w.keepStreamLease(ctx, id, owner, cancel)
	}()
	err = w.run(ctx, log, s)
	cancel(nil)
	<-renewed
	if err != nil && errors.Is(context.Cause(ctx), store.ErrLeaseLost) {
		// Another run took the stream over (this one was too slow to
		// renew): it delivers the batch, the same objects.
		log.Warn("stream_lease_lost", slog.Any("error", err))
		err = nil
	}
	if releaseErr := store.ReleaseStreamLease(context.WithoutCancel(ctx), w.Pool, id, owner); releaseErr != nil {
		log.Warn("stream_lease_not_released", slog.Any("error", releaseErr))
	}
	return err
}

// keepStreamLease renews the lease every third of its TTL until ctx ends,
// and cancels the run with ErrLeaseLost when it no longer can.
func (w *StreamWorker) keepStreamLease(ctx context.Context, id, owner string, cancel context.CancelCauseFunc) {
	tick := time.NewTicker(w.LeaseTTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := store.RenewStreamLease(ctx, w.Pool, id, owner, w.LeaseTTL); err != nil && ctx.Err() == nil {
				cancel(store.ErrLeaseLost)
				return
			}
		}
	}
}

// run delivers the stream's due batches, for at most Window.
func (w *StreamWorker) run(ctx context.Context, log *slog.Logger, s audex.Stream) error {
	deadline := time.Now().Add(w.Window)
	out, err := w.openBatchWriter(ctx, s.Destination)
	if err != nil {
		return w.failed(ctx, log, s, sinkError{err})
	}
	for {
		if s.PendingThrough == nil && time.Now().Before(s.Watermark.Add(s.Interval())) {
			return nil // not due: the scheduler starts the next run
		}
		if err := w.deliver(ctx, log, s, out); err != nil && !errors.Is(err, store.ErrConflict) {
			return w.failed(ctx, log, s, err)
		}
		if time.Now().After(deadline) {
			return nil
		}
		if s, err = store.GetStreamByID(ctx, w.Pool, s.ID); err != nil {
			return err
		}
		if s.Status != audex.StreamActive {
			return nil // paused, failed or deleted meanwhile
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
	var opening sinkError
	permanent := sinks.IsPermanent(err) || errors.Is(err, ErrDestinationGone) || errors.Is(err, webhook.ErrRejected) || errors.As(err, &opening)
	failure := describeFailure(s.Destination, err)
	switch {
	case errors.Is(err, webhook.ErrRejected):
		failure = audex.ExportError{Code: "webhook_rejected", Message: err.Error()}
	case errors.As(err, &opening) && !errors.Is(err, ErrDestinationGone):
		failure = audex.ExportError{Code: "destination_unusable", Message: err.Error()}
	}
	if !permanent {
		failure = audex.ExportError{Code: "delivery_retrying",
			Message: fmt.Sprintf("delivery to destination %s failed and is retried: %v", s.Destination.Name, err)}
	}
	failures, recordErr := store.RecordStreamFailure(context.WithoutCancel(ctx), w.Pool, s, failure, permanent, streamRetryAfter)
	if recordErr != nil {
		return errors.Join(err, recordErr)
	}
	if permanent {
		log.Warn("stream_failed", slog.String("code", failure.Code), slog.String("reason", failure.Message))
		return nil
	}
	log.Warn("stream_delivery_failed", slog.Int("failures", failures), slog.Any("error", err))
	return nil // the scheduler starts the retry when it is due
}

// streamRetryAfter is the wait before a stream that failed failures times
// in a row is tried again.
func streamRetryAfter(failures int) time.Duration {
	return min(streamRetryMax, streamRetryMin<<min(max(failures-1, 0), 10))
}

// batchWriter delivers the events of a batch to a destination.
type batchWriter interface {
	// maxRecords is the most events a batch may hold.
	maxRecords() int
	// write delivers the events of b (received from b.After on and before
	// b.Through), sets its files, record count and manifest, and leaves
	// nothing of an earlier attempt beside them. A batch of no event
	// writes nothing.
	write(ctx context.Context, w *StreamWorker, s audex.Stream, b *audex.StreamBatch) error
}

// openBatchWriter returns the writer of destination d: its webhook, or
// its sink's objects.
func (w *StreamWorker) openBatchWriter(ctx context.Context, d audex.ExportDestination) (batchWriter, error) {
	if d.Type == "webhook" {
		if w.OpenWebhook == nil {
			return nil, fmt.Errorf("%w: %s", ErrDestinationGone, d.Name)
		}
		c, err := w.OpenWebhook(ctx, d.Name)
		return webhookWriter{c}, err
	}
	sink, err := w.OpenSink(ctx, d.Name)
	return objectWriter{sink}, err
}

// deliver delivers the stream's next batch: the pending one, or a new one
// up to now (capped at out's most records).
func (w *StreamWorker) deliver(ctx context.Context, log *slog.Logger, s audex.Stream, out batchWriter) error {
	through := s.PendingThrough
	if through == nil {
		t, err := w.batchEnd(ctx, s, out.maxRecords())
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
	if err := out.write(ctx, w, s, &b); err != nil {
		return err
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
// more than most events wait.
func (w *StreamWorker) batchEnd(ctx context.Context, s audex.Stream, most int) (time.Time, error) {
	now, err := store.IngestBarrier(ctx, w.Pool, s.TenantID)
	if err != nil {
		return now, err
	}
	return store.StreamBatchEnd(ctx, w.Pool, s, now, most)
}

// objectWriter writes a batch as parts and a manifest to a sink.
type objectWriter struct{ sink sinks.Sink }

func (objectWriter) maxRecords() int { return streamBatchMaxRecords }

func (o objectWriter) write(ctx context.Context, w *StreamWorker, s audex.Stream, b *audex.StreamBatch) error {
	base := batchKeyBase(s, *b)
	if err := w.writeParts(ctx, s, o.sink, b, base); err != nil {
		return err
	}
	if err := removeStaleParts(ctx, o.sink, base, b.Files); err != nil {
		return err
	}
	if b.RecordCount == 0 {
		return nil
	}
	var err error
	if b.Log, err = w.Sealer.manifestLog(ctx, w.Logger.With(slog.String("stream_id", s.ID)), w.Pool, o.sink, s.TenantID, s.ID, base+leavesObject, s.Filter, b.After, b.Through, nil); err != nil {
		return err
	}
	b.DeliveredAt = time.Now().UTC().Truncate(time.Microsecond)
	manifestKey := base + "manifest.json"
	b.ManifestKey = &manifestKey
	manifest, err := json.Marshal(b)
	if err != nil {
		return err
	}
	obj, err := w.Sealer.putManifest(ctx, o.sink, s.TenantID, manifestKey, manifest)
	if err != nil {
		return err
	}
	b.ManifestSHA256 = obj.SHA256
	return nil
}

// webhookBatchMaxRecords is the most events one webhook POST carries.
const webhookBatchMaxRecords = 10_000

// webhookWriter POSTs a batch to a webhook as one gzipped NDJSON body.
// The batch's one file is that body (its key the batch id), and its
// manifest, which no object holds, still chains the batches by its
// sha256.
type webhookWriter struct{ client *webhook.Client }

func (webhookWriter) maxRecords() int { return webhookBatchMaxRecords }

func (h webhookWriter) write(ctx context.Context, w *StreamWorker, s audex.Stream, b *audex.StreamBatch) error {
	var body bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&body, gzip.BestSpeed)
	rows := format.NewRows(format.NDJSON)
	var buf []byte
	pages, stop := w.batchPages(ctx, s, *b)
	defer stop()
	for {
		page, err := pages()
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		for i := range page {
			buf = rows.AppendRow(buf[:0], &page[i])
			if _, err := zw.Write(buf); err != nil {
				return err
			}
		}
		b.RecordCount += int64(len(page))
	}
	if b.RecordCount == 0 {
		return nil
	}
	if err := zw.Close(); err != nil {
		return err
	}
	id := fmt.Sprintf("%s-%06d", s.ID, b.Seq)
	if err := h.client.Deliver(ctx, webhook.Batch{StreamID: s.ID, Seq: b.Seq, ID: id, Body: body.Bytes()}); err != nil {
		return err
	}
	sum := sha256.Sum256(body.Bytes())
	b.Files = []audex.ExportFile{{Key: id, SizeBytes: int64(body.Len()), Records: b.RecordCount, SHA256: hex.EncodeToString(sum[:])}}
	b.DeliveredAt = time.Now().UTC().Truncate(time.Microsecond)
	manifest, err := json.Marshal(b)
	if err != nil {
		return err
	}
	sum = sha256.Sum256(manifest)
	b.ManifestSHA256 = hex.EncodeToString(sum[:])
	return nil
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

// arrivalPage is a page of a batch's events, or the error reading it.
type arrivalPage struct {
	events []audex.Event
	err    error
}

// batchPages reads the events of batch b page after page, in arrival
// order, one page ahead of the caller (the database and the encoder each
// keep a core busy). next returns the next page, empty after the last;
// stop ends the reading (call it when done).
func (w *StreamWorker) batchPages(ctx context.Context, s audex.Stream, b audex.StreamBatch) (next func() ([]audex.Event, error), stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	pages := make(chan arrivalPage, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(pages)
		db, err := eventReader(ctx, w.Reads, w.Pool, w.Logger.With(slog.String("stream_id", s.ID), slog.Int64("seq", b.Seq)))
		if err != nil {
			select {
			case pages <- arrivalPage{nil, err}:
			case <-ctx.Done():
			}
			return
		}
		var after *store.Arrival
		for {
			events, err := store.ListArrivals(ctx, db, s.TenantID, s.Filter, b.After, b.Through, after, streamPageSize)
			select {
			case pages <- arrivalPage{events, err}:
			case <-ctx.Done():
				return
			}
			if err != nil || len(events) < streamPageSize {
				return
			}
			last := events[len(events)-1]
			after = &store.Arrival{ReceivedAt: last.ReceivedAt, ID: last.ID}
		}
	}()
	next = func() ([]audex.Event, error) {
		p := <-pages // a closed channel: no more events
		return p.events, p.err
	}
	return next, func() { cancel(); <-done }
}

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
	rows := partRows(formatName(s.Format))
	pages, stop := w.batchPages(ctx, s, *b)
	defer stop()
	var page []audex.Event
	next := func() error {
		var err error
		page, err = pages()
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
		obj, err := uploadPart(ctx, sink, key, func(out io.Writer) error {
			return writePart(out, formatName(s.Format), s.Compression, rows, maxRecords, maxBytes, &page, &records, next)
		})
		if err != nil {
			return err
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
func writePart(out io.Writer, formatName, compression string, rows format.Rows, maxRecords int, maxBytes int64, page *[]audex.Event, records *int64, next func() error) error {
	body, err := newPartBody(out, formatName, compression, rows)
	if err != nil {
		return err
	}
	written := int64(len(rows.Header()))
	var buf []byte
	for len(*page) > 0 {
		for i := range *page {
			buf = rows.AppendRow(buf[:0], &(*page)[i])
			if *records >= int64(maxRecords) || *records > 0 && written+int64(len(buf)) > maxBytes {
				*page = (*page)[i:]
				return body.finish()
			}
			if err := body.write(buf, &(*page)[i]); err != nil {
				return err
			}
			written += int64(len(buf))
			*records++
		}
		if err := next(); err != nil {
			return err
		}
	}
	return body.finish()
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

// streamClaimBatch bounds how many streams one scheduler run starts; the
// next run takes the rest.
const streamClaimBatch = 500

// StreamSchedulerWorker starts the due streams: it claims the lease of
// each active stream whose next batch (or retry) is due and whose lease is
// free or expired (its run died), and inserts its job, in one
// transaction. River runs it periodically on its leader.
type StreamSchedulerWorker struct {
	river.WorkerDefaults[queue.StreamSchedulerArgs]
	Pool *pgxpool.Pool
	// LeaseTTL is how long a claim waits for its job to start.
	LeaseTTL time.Duration
}

// Work claims and inserts.
func (w *StreamSchedulerWorker) Work(ctx context.Context, _ *river.Job[queue.StreamSchedulerArgs]) error {
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, w.Pool, func(tx pgx.Tx) error {
		ids, err := store.ClaimDueStreams(ctx, tx, w.LeaseTTL, streamClaimBatch)
		if err != nil || len(ids) == 0 {
			return err
		}
		params := make([]river.InsertManyParams, len(ids))
		for i, id := range ids {
			params[i] = river.InsertManyParams{Args: queue.StreamArgs{StreamID: id}}
		}
		_, err = client.InsertManyTx(ctx, tx, params)
		return err
	})
}
