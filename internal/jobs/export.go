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
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/format"
	"github.com/audex-dev/audex/internal/metrics"
	"github.com/audex-dev/audex/internal/sinks"
	"github.com/audex-dev/audex/internal/store"
)

// ExportArgs asks for an export to be worked (or continued).
type ExportArgs struct {
	ExportID string `json:"export_id"`
}

// Kind is the job's stable name.
func (ExportArgs) Kind() string { return "export" }

// InsertOpts puts exports on their own queue, so that their concurrency is
// set apart from other jobs.
func (ExportArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: QueueExports} }

// QueueExports is the River queue of export jobs.
const QueueExports = "exports"

// ErrDestinationGone is returned by a SinkOpener for a destination that is
// no longer configured.
var ErrDestinationGone = errors.New("destination is no longer configured")

// SinkOpener returns the sink of a configured destination by name, or an
// error wrapping ErrDestinationGone.
type SinkOpener func(ctx context.Context, destination string) (sinks.Sink, error)

// ExportTiming bounds export attempts. River rescues a job left running
// longer than RescueStuckJobsAfter, so an attempt works at most Window and
// then snoozes to continue; the lease (renewed after every part and status
// check) keeps two attempts from working one export at once.
type ExportTiming struct {
	// Window is how long one attempt works before it checkpoints and
	// snoozes.
	Window time.Duration
	// LeaseTTL is how long an attempt's claim lasts without renewal; a
	// dead worker's export is resumed by another after it.
	LeaseTTL time.Duration
}

// DefaultExportTiming suits production: an attempt of 40 s, a lease of
// 30 s, River's rescue after 140 s (see NewClient).
var DefaultExportTiming = ExportTiming{Window: 40 * time.Second, LeaseTTL: 30 * time.Second}

// ExportWorker writes an export's parts and manifest to its destination.
type ExportWorker struct {
	river.WorkerDefaults[ExportArgs]
	Pool     *pgxpool.Pool
	Logger   *slog.Logger
	OpenSink SinkOpener
	Timing   ExportTiming
	// RunningPerTenant is how many of one tenant's exports run at once
	// across all workers (zero: no limit).
	RunningPerTenant int
}

// tenantTurnWait is how long an export whose tenant has its exports
// running waits before it looks for its turn again.
const tenantTurnWait = 3 * time.Second

// Timeout bounds one attempt; it is below River's rescue time.
func (w *ExportWorker) Timeout(*river.Job[ExportArgs]) time.Duration {
	return w.Timing.Window + w.Timing.LeaseTTL
}

// statusCheckPages is how many pages of events pass between checks for a
// cancel (each renews the lease).
const statusCheckPages = 5

// exportPageSize is how many events one query reads.
const exportPageSize = 2000

// errCancelled stops an attempt whose export was cancelled.
var errCancelled = errors.New("export cancelled")

// Work runs one attempt: take the lease, wait for in-flight ingests (the
// as_of barrier), then write parts from the checkpoint on until the export
// is done, the window is used up (snooze) or an error ends it. Retrying is
// always safe: part keys are deterministic, a part is recorded with the
// checkpoint past its events in one transaction, an unrecorded part is
// overwritten, and the manifest is written last.
func (w *ExportWorker) Work(ctx context.Context, job *river.Job[ExportArgs]) error {
	id := job.Args.ExportID
	owner := fmt.Sprintf("%s:%d:job%d:%d", hostname(), os.Getpid(), job.ID, job.Attempt)
	log := w.Logger.With(slog.String("export_id", id), slog.Int64("job_id", job.ID))
	e, err := store.AcquireExportLease(ctx, w.Pool, id, owner, job.Attempt, w.Timing.LeaseTTL, w.RunningPerTenant)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return river.JobCancel(err)
	case errors.Is(err, store.ErrTenantBusy):
		// Behind this job in the queue may be another tenant's export:
		// it goes first while this one waits for its tenant's turn.
		log.Debug("export_waits_for_tenant_turn")
		return river.JobSnooze(tenantTurnWait)
	case errors.Is(err, store.ErrLeaseLost):
		return river.JobSnooze(w.Timing.LeaseTTL / 2)
	case err != nil:
		return err
	}
	release := func() {
		_ = store.ReleaseExportLease(context.WithoutCancel(ctx), w.Pool, id, owner)
	}
	if e.Finished() {
		if e.Status != audex.ExportCompleted {
			w.deleteParts(ctx, log, &e, nil)
		}
		return nil
	}
	// A running purge of the range would delete events under the export:
	// wait for it (a purge waits in turn for exports that started first).
	if ok, err := store.ExportMayRun(ctx, w.Pool, e.TenantID, e.Since); err != nil || !ok {
		release()
		if err != nil {
			return err
		}
		log.Info("export_waits_for_purge")
		return river.JobSnooze(purgeWaitForExports)
	}
	sink, err := w.OpenSink(ctx, e.Destination.Name)
	if err != nil {
		return w.fail(ctx, log, &e, nil, err)
	}
	if err := store.WaitForIngests(ctx, w.Pool, e.TenantID); err != nil {
		release()
		return err
	}
	if store.EstimateIsLowerBound(e.EstimatedRecords) && e.Progress.PartsWritten == 0 {
		// Every event before as_of is committed now: count them, so that
		// the export's percent and ETA mean something (a count costs
		// about 5% of the export, so a planner's estimate is kept).
		n, err := store.CountExportEvents(ctx, w.Pool, e)
		switch {
		case errors.Is(err, store.ErrBudget):
			// Too many to count within a statement's budget: the
			// planner's estimate stays.
			log.Info("export_count_skipped", slog.Int64("estimated", e.EstimatedRecords))
		case err != nil:
			release()
			return err
		default:
			log.Info("export_counted", slog.Int64("estimated", e.EstimatedRecords), slog.Int64("records", n))
			e.EstimatedRecords = n
		}
	}
	err = w.run(ctx, log, &e, sink, owner)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errSnooze):
		release()
		return river.JobSnooze(0)
	case errors.Is(err, errCancelled):
		metrics.ExportsFinished.WithLabelValues(audex.ExportCancelled).Inc()
		w.deleteParts(ctx, log, &e, sink)
		return nil
	case errors.Is(err, store.ErrLeaseLost):
		return river.JobSnooze(w.Timing.LeaseTTL / 2)
	case ctx.Err() != nil:
		// Shutting down or timed out: give the export back at once.
		release()
		return river.JobSnooze(0)
	case sinks.IsPermanent(err) || job.Attempt >= job.MaxAttempts:
		return w.fail(ctx, log, &e, sink, err)
	}
	release()
	log.Warn("export_attempt_failed", slog.Int("attempt", job.Attempt), slog.Any("error", err))
	return err
}

// errUploadEnded tells the producer of a part that the upload stopped
// reading.
var errUploadEnded = errors.New("upload ended")

// errSnooze ends an attempt whose window is used up.
var errSnooze = errors.New("attempt window used up")

// run writes parts until the export is complete.
func (w *ExportWorker) run(ctx context.Context, log *slog.Logger, e *audex.Export, sink sinks.Sink, owner string) error {
	deadline := time.Now().Add(w.Timing.Window)
	// A part still open half a lease past the window closes early, so that
	// the attempt records it before its timeout (Window + LeaseTTL) cuts it
	// off: else a part too big for one attempt would restart forever.
	closePartBy := deadline.Add(w.Timing.LeaseTTL / 2)
	rows := format.NewRows(formatName(e.Format))
	for {
		number := e.Progress.PartsWritten + 1
		part, err := w.writePart(ctx, e, sink, owner, rows, number, closePartBy)
		if err != nil {
			return err
		}
		if part.records == 0 {
			return w.complete(ctx, log, e, sink, owner)
		}
		status, err := store.RecordExportPart(ctx, w.Pool, e.ID, owner, w.Timing.LeaseTTL, number, part.file, part.last)
		if err != nil {
			return err
		}
		if status != audex.ExportRunning {
			return errCancelled
		}
		e.Progress.PartsWritten, e.Progress.RecordsExported = number, e.Progress.RecordsExported+part.records
		metrics.ExportedRecords.WithLabelValues(e.Destination.Type).Add(float64(part.records))
		metrics.ExportedBytes.WithLabelValues(e.Destination.Type).Add(float64(part.file.SizeBytes))
		e.Checkpoint = &part.last
		log.Info("export_part_written", slog.Int("part", number), slog.Int64("records", part.records))
		if !part.full {
			return w.complete(ctx, log, e, sink, owner)
		}
		if time.Now().After(deadline) {
			return errSnooze
		}
	}
}

// writtenPart is the outcome of writePart.
type writtenPart struct {
	file    audex.ExportFile
	records int64
	last    audex.Position
	// full is true when the part closed at a limit, so more events may follow.
	full bool
}

// writePart uploads the next part from the checkpoint, closing it at
// closeBy if it is still open then. It returns zero records (and uploads
// nothing) when no event is left.
func (w *ExportWorker) writePart(ctx context.Context, e *audex.Export, sink sinks.Sink, owner string, rows format.Rows, number int, closeBy time.Time) (writtenPart, error) {
	var part writtenPart
	after := e.Checkpoint
	page, err := store.ListEvents(ctx, w.Pool, e.TenantID, e.Filter, audex.OrderAsc, after, min(exportPageSize, e.PartMaxRecords))
	if err != nil || len(page) == 0 {
		return part, err
	}
	key := partKey(e, number)
	pr, pw := io.Pipe()
	produced := make(chan error, 1)
	go func() {
		err := w.produce(ctx, e, owner, rows, page, &part, pw, closeBy)
		pw.CloseWithError(err) // nil closes cleanly
		produced <- err
	}()
	obj, putErr := sink.Put(ctx, key, pr)
	pr.CloseWithError(errUploadEnded) // unblock the producer if Put stopped reading
	if err := <-produced; err != nil && !errors.Is(err, errUploadEnded) {
		return part, err // the producer's own error: cancelled, lease lost, database
	}
	if putErr != nil {
		return part, fmt.Errorf("upload %s: %w", key, putErr)
	}
	part.file = audex.ExportFile{Key: key, SizeBytes: obj.Size, Records: part.records, SHA256: obj.SHA256}
	return part, nil
}

// partBufferSize is the buffer between the encoder and the upload: one
// write to the sink per 256 KiB rather than one per event.
const partBufferSize = 256 << 10

// produce encodes events from the first page on into out (through gzip
// when asked), until the part is full, closeBy has passed or the events
// run out.
func (w *ExportWorker) produce(ctx context.Context, e *audex.Export, owner string, rows format.Rows, page []audex.Event, part *writtenPart, out io.Writer, closeBy time.Time) error {
	buffered := bufio.NewWriterSize(out, partBufferSize)
	var body io.Writer = buffered
	var gz *gzip.Writer
	if e.Compression == "gzip" {
		gz, _ = gzip.NewWriterLevel(buffered, gzip.BestSpeed)
		body = gz
	}
	finish := func() error {
		if gz != nil {
			if err := gz.Close(); err != nil {
				return err
			}
		}
		return buffered.Flush()
	}
	header := rows.Header()
	written := int64(len(header))
	if _, err := body.Write(header); err != nil {
		return err
	}
	var buf []byte
	pages := 0
	var next *nextPage
	defer func() {
		if next != nil {
			next.discard() // the part ended before the page read ahead
		}
	}()
	for len(page) > 0 {
		// The next page is read while this one is encoded: the database
		// and the encoder each keep a core busy.
		next = w.prefetch(ctx, e, page, part.records)
		for i := range page {
			buf = rows.AppendRow(buf[:0], &page[i])
			if part.records >= int64(e.PartMaxRecords) || part.records > 0 && written+int64(len(buf)) > e.PartMaxBytes {
				part.full = true
				return finish()
			}
			if _, err := body.Write(buf); err != nil {
				return err
			}
			written += int64(len(buf))
			part.records++
			part.last = audex.Position{OccurredAt: page[i].OccurredAt, ID: page[i].ID}
		}
		if pages++; pages%statusCheckPages == 0 {
			status, leased, err := store.ExportStatus(ctx, w.Pool, e.ID, owner, w.Timing.LeaseTTL)
			switch {
			case err != nil:
				return err
			case status != audex.ExportRunning:
				return errCancelled
			case !leased:
				return store.ErrLeaseLost
			}
		}
		if time.Now().After(closeBy) {
			part.full = true
			return finish()
		}
		var err error
		page, err = next.wait()
		next = nil
		if err != nil {
			return err
		}
	}
	return finish()
}

// nextPage is a page of events being read ahead.
type nextPage struct {
	done   chan struct{}
	page   []audex.Event
	err    error
	cancel context.CancelFunc
}

// prefetch starts reading the page that follows page, for a part that
// will hold written+len(page) records once page is written: at most
// exportPageSize events, and at most what the part still takes (but one,
// to tell a full part from the end).
func (w *ExportWorker) prefetch(ctx context.Context, e *audex.Export, page []audex.Event, written int64) *nextPage {
	ctx, cancel := context.WithCancel(ctx)
	n := &nextPage{done: make(chan struct{}), cancel: cancel}
	after := audex.Position{OccurredAt: page[len(page)-1].OccurredAt, ID: page[len(page)-1].ID}
	remaining := max(1, int64(e.PartMaxRecords)-written-int64(len(page)))
	go func() {
		defer close(n.done)
		n.page, n.err = store.ListEvents(ctx, w.Pool, e.TenantID, e.Filter, audex.OrderAsc, &after, int(min(exportPageSize, remaining)))
	}()
	return n
}

// wait returns the page read ahead.
func (n *nextPage) wait() ([]audex.Event, error) {
	<-n.done
	n.cancel()
	return n.page, n.err
}

// discard stops a read ahead that is not needed and waits for it to end.
func (n *nextPage) discard() {
	n.cancel()
	<-n.done
}

// complete writes the manifest (last) and marks the export completed.
func (w *ExportWorker) complete(ctx context.Context, log *slog.Logger, e *audex.Export, sink sinks.Sink, owner string) error {
	done, err := store.GetExport(ctx, w.Pool, "", e.ID)
	if err != nil {
		return err
	}
	if done.Status != audex.ExportRunning {
		return errCancelled
	}
	completedAt := time.Now().UTC().Truncate(time.Microsecond)
	manifestKey := e.KeyPrefix + "manifest.json"
	count := done.Progress.RecordsExported
	done.Status, done.CompletedAt, done.ManifestKey, done.RecordCount = audex.ExportCompleted, &completedAt, &manifestKey, &count
	done.Progress.Percent = 100
	manifest, err := json.MarshalIndent(done, "", "  ")
	if err != nil {
		return err
	}
	if _, err := sink.Put(ctx, manifestKey, bytes.NewReader(manifest)); err != nil {
		return fmt.Errorf("upload %s: %w", manifestKey, err)
	}
	if err := store.CompleteExport(ctx, w.Pool, e.ID, owner, manifestKey, completedAt); err != nil {
		if errors.Is(err, store.ErrLeaseLost) {
			// Cancelled while the manifest went up: no manifest may stay.
			_ = sink.Delete(context.WithoutCancel(ctx), manifestKey)
			return errCancelled
		}
		return err
	}
	metrics.ExportsFinished.WithLabelValues(audex.ExportCompleted).Inc()
	log.Info("export_completed", slog.Int64("records", count), slog.Int("parts", done.Progress.PartsWritten))
	return nil
}

// fail records a permanent failure in operator words, deletes the parts
// and cancels the job so that River does not retry it.
func (w *ExportWorker) fail(ctx context.Context, log *slog.Logger, e *audex.Export, sink sinks.Sink, cause error) error {
	failure := describeFailure(e, cause)
	log.Warn("export_failed", slog.String("code", failure.Code), slog.String("reason", failure.Message))
	if err := store.FailExport(context.WithoutCancel(ctx), w.Pool, e.ID, failure); err != nil {
		return err
	}
	metrics.ExportsFinished.WithLabelValues(audex.ExportFailed).Inc()
	w.deleteParts(ctx, log, e, sink)
	return river.JobCancel(cause)
}

// describeFailure turns an error into words an operator can act on,
// without secrets (sinks keep credentials out of their errors).
func describeFailure(e *audex.Export, err error) audex.ExportError {
	d := e.Destination
	switch {
	case errors.Is(err, ErrDestinationGone):
		return audex.ExportError{Code: "destination_not_configured", Message: fmt.Sprintf("destination %s is no longer configured on this server", d.Name)}
	case errors.Is(err, sinks.ErrBucketNotFound):
		return audex.ExportError{Code: "bucket_not_found", Message: fmt.Sprintf("bucket %s of destination %s does not exist", d.Bucket, d.Name)}
	case errors.Is(err, sinks.ErrAccessDenied):
		return audex.ExportError{Code: "access_denied", Message: fmt.Sprintf("destination %s (bucket %s) refused the credentials or lacks a permission", d.Name, d.Bucket)}
	case errors.Is(err, sinks.ErrNoSpace):
		return audex.ExportError{Code: "destination_full", Message: fmt.Sprintf("destination %s (bucket %s) has no space left; the parts written were deleted", d.Name, d.Bucket)}
	}
	return audex.ExportError{Code: "export_failed", Message: fmt.Sprintf("gave up after repeated errors writing to destination %s: %v", d.Name, err)}
}

// deleteParts removes what a cancelled or failed export wrote (best
// effort) and notes on the export when that failed.
func (w *ExportWorker) deleteParts(ctx context.Context, log *slog.Logger, e *audex.Export, sink sinks.Sink) {
	ctx = context.WithoutCancel(ctx)
	if sink == nil {
		var err error
		if sink, err = w.OpenSink(ctx, e.Destination.Name); err != nil {
			_ = store.SetExportCleanupError(ctx, w.Pool, e.ID, "its parts could not be deleted: "+err.Error())
			return
		}
	}
	objects, err := sink.List(ctx, e.KeyPrefix)
	for _, o := range objects {
		if err == nil {
			err = sink.Delete(ctx, o.Key)
		}
	}
	if err != nil {
		log.Warn("export_cleanup_failed", slog.Any("error", err))
		_ = store.SetExportCleanupError(ctx, w.Pool, e.ID, "some parts could not be deleted: "+err.Error())
	}
}

// partKey is the deterministic key of an export's part.
func partKey(e *audex.Export, number int) string {
	key := fmt.Sprintf("%spart-%05d.%s", e.KeyPrefix, number, format.Extension(formatName(e.Format)))
	if e.Compression == "gzip" {
		key += ".gz"
	}
	return key
}

// formatName maps an export's format to the format package's name.
func formatName(exportFormat string) string {
	if f, ok := format.Parse(exportFormat); ok {
		return f
	}
	return exportFormat
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "worker"
	}
	return h
}
