package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

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

// ErrDestinationGone is returned by a SinkOpener for a destination that is
// no longer configured.
var ErrDestinationGone = errors.New("destination is no longer configured")

// SinkOpener returns the sink of a configured destination by name, or an
// error wrapping ErrDestinationGone.
type SinkOpener func(ctx context.Context, destination string) (sinks.Sink, error)

// ExportTiming bounds export attempts. River rescues a job left running
// longer than RescueStuckJobsAfter, so an attempt works at most Window and
// then snoozes to continue. Its lease on the export, which a goroutine of
// the attempt renews every third of LeaseTTL, keeps two attempts from
// working one export at once, and lets a dead worker's export resume
// soon after the lease runs out.
type ExportTiming struct {
	// Window is how long one attempt works before it checkpoints and
	// snoozes.
	Window time.Duration
	// LeaseTTL is how long an attempt's claim lasts without renewal; a
	// dead worker's export is resumed by another after it (and the
	// reaper's grace). An attempt that cannot renew its lease stops a
	// third of it before the lease can run out. An open part closes half
	// of it past the window, and the attempt has three of it past its
	// window in all to upload and record that part.
	LeaseTTL time.Duration
}

// DefaultExportTiming suits production: an attempt of 40 s, a lease of
// 10 s renewed every 3.3 s, an attempt timeout of 70 s and River's rescue
// after 140 s (see NewClient).
var DefaultExportTiming = ExportTiming{Window: time.Duration(config.DefaultExports.AttemptWindow), LeaseTTL: time.Duration(config.DefaultExports.LeaseTTL)}

// attemptTimeout is the longest an attempt lasts: its window, then up to
// half a lease until its open part closes, then the part's upload and
// record. Three leases past the window (30 s by default, as when the lease
// was 30 s and the timeout one lease past the window) leave the upload
// 25 s. River's JobTimeout and RescueStuckJobsAfter are set from it.
func (t ExportTiming) attemptTimeout() time.Duration { return t.Window + 3*t.LeaseTTL }

// ExportWorker writes an export's parts and manifest to its destination.
type ExportWorker struct {
	river.WorkerDefaults[queue.ExportArgs]
	Pool *pgxpool.Pool
	// Reads serves the export's event reads from a replica when one is
	// configured (nil: Pool).
	Reads    *store.Reads
	Logger   *slog.Logger
	OpenSink SinkOpener
	Timing   ExportTiming
	// RunningPerTenant is how many of one tenant's exports run at once
	// across all workers (zero: no limit).
	RunningPerTenant int
	// Sealer puts the integrity log's checkpoint in each manifest and
	// signs it (nil: neither).
	Sealer *LogSealer
}

// tenantTurnWait is how long an export whose tenant has its exports
// running waits before it looks for its turn again.
const tenantTurnWait = 3 * time.Second

// Timeout bounds one attempt; it is below River's rescue time.
func (w *ExportWorker) Timeout(*river.Job[queue.ExportArgs]) time.Duration {
	return w.Timing.attemptTimeout()
}

// statusCheckPages is how many pages of events pass between checks for a
// cancel (a read: the lease is renewed by the attempt's lease keeper).
const statusCheckPages = 5

// exportPageSize is how many events one query reads.
const exportPageSize = 2000

// errCancelled stops an attempt whose export was cancelled.
var errCancelled = errors.New("export cancelled")

// errWaitForPurge ends an attempt whose range a running purge deletes
// from.
var errWaitForPurge = errors.New("a running purge deletes from the export's range")

// sinkError is a failure to open the export's destination: permanent.
type sinkError struct{ err error }

func (e sinkError) Error() string { return e.err.Error() }
func (e sinkError) Unwrap() error { return e.err }

// Work runs one attempt: take the lease (kept by a goroutine while the
// attempt runs), wait for in-flight ingests (the as_of barrier), then
// write parts from the checkpoint on until the export is done, the window
// is used up (snooze) or an error ends it. Retrying is always safe: part
// keys are deterministic, a part is recorded with the checkpoint past its
// events in one transaction, an unrecorded part is overwritten, and the
// manifest is written last.
func (w *ExportWorker) Work(ctx context.Context, job *river.Job[queue.ExportArgs]) error {
	id := job.Args.ExportID
	owner := fmt.Sprintf("%s:%d:job%d:%d", hostname(), os.Getpid(), job.ID, job.Attempt)
	log := w.Logger.With(slog.String("export_id", id), slog.Int64("job_id", job.ID))
	asked := time.Now()
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
	if e.Finished() {
		if e.Status != audex.ExportCompleted {
			w.deleteParts(ctx, log, &e, nil)
		}
		return nil
	}
	lease := w.keepLease(ctx, id, owner, asked)
	if err := ensureReaper(lease.ctx); err != nil {
		log.Warn("export_reaper_not_started", slog.Any("error", err))
	}
	sink, err := w.prepare(lease.ctx, log, &e)
	if err == nil {
		err = w.run(lease.ctx, log, &e, sink, owner, lease)
	}
	if lost := lease.stop(); err != nil && lost != nil && ctx.Err() == nil {
		err = lost // the keeper stopped the attempt: say why
	}
	return w.settle(ctx, log, job, &e, sink, owner, err)
}

// prepare readies an attempt that holds the lease: it waits while a
// running purge deletes from the export's range, opens the sink, waits for
// in-flight ingests (the as_of barrier) and counts the export's events
// when the estimate at POST was the planner's.
func (w *ExportWorker) prepare(ctx context.Context, log *slog.Logger, e *audex.Export) (sinks.Sink, error) {
	// A running purge of the range would delete events under the export:
	// wait for it (a purge waits in turn for exports that started first).
	if ok, err := store.ExportMayRun(ctx, w.Pool, e.TenantID, e.Since); err != nil || !ok {
		if err != nil {
			return nil, err
		}
		return nil, errWaitForPurge
	}
	sink, err := w.OpenSink(ctx, e.Destination.Name)
	if err != nil {
		return nil, sinkError{err}
	}
	if err := store.WaitForIngests(ctx, w.Pool, e.TenantID); err != nil {
		return sink, err
	}
	if e.EstimateIsLowerBound && e.Progress.PartsWritten == 0 {
		// Every event before as_of is committed now: count them, so that
		// the export's percent and ETA mean something (a count costs
		// about 5% of the export, so a planner's estimate is kept).
		n, err := store.CountExportEvents(ctx, w.Pool, *e)
		switch {
		case errors.Is(err, store.ErrBudget):
			// Too many to count within a statement's budget: the
			// planner's estimate stays.
			log.Info("export_count_skipped", slog.Int64("estimated", e.EstimatedRecords))
		case err != nil:
			return sink, err
		default:
			log.Info("export_counted", slog.Int64("estimated", e.EstimatedRecords), slog.Int64("records", n))
			e.EstimatedRecords = n
		}
	}
	return sink, nil
}

// settle ends an attempt that held the lease according to err, what its
// work returned: it gives the lease back when the export continues
// elsewhere or later, and tells River what happens next.
func (w *ExportWorker) settle(ctx context.Context, log *slog.Logger, job *river.Job[queue.ExportArgs], e *audex.Export, sink sinks.Sink, owner string, err error) error {
	release := func() {
		_ = store.ReleaseExportLease(context.WithoutCancel(ctx), w.Pool, e.ID, owner)
	}
	var opening sinkError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errWaitForPurge):
		release()
		log.Info("export_waits_for_purge")
		return river.JobSnooze(purgeWaitForExports)
	case errors.Is(err, errSnooze):
		release()
		return river.JobSnooze(0)
	case errors.Is(err, errCancelled):
		metrics.ExportsFinished.WithLabelValues(audex.ExportCancelled).Inc()
		w.deleteParts(ctx, log, e, sink)
		return nil
	case errors.Is(err, store.ErrLeaseLost):
		// Another attempt holds the lease, or this one could not renew it
		// in time: this job looks again later.
		log.Info("export_lease_lost")
		return river.JobSnooze(w.Timing.LeaseTTL / 2)
	case errors.As(err, &opening):
		return w.fail(ctx, log, e, nil, opening.err)
	case ctx.Err() != nil:
		// Shutting down or timed out: give the export back at once.
		release()
		return river.JobSnooze(0)
	case sinks.IsPermanent(err) || job.Attempt >= job.MaxAttempts:
		return w.fail(ctx, log, e, sink, err)
	}
	release()
	log.Warn("export_attempt_failed", slog.Int("attempt", job.Attempt), slog.Any("error", err))
	return err
}

// leaseKeeper renews an attempt's lease on its export every third of the
// lease's TTL while the attempt runs, and stops the attempt (cancels ctx
// with the cause) when the lease is lost, when the export was cancelled,
// or when renewals failed until a third of the TTL was left of the last
// lease it knows of. The attempt stops before its lease can run out, so
// that whoever takes the lease next never works beside it.
type leaseKeeper struct {
	// ctx is the attempt's context: cancelled by stop, by the keeper, or
	// when the job's context ends.
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}
	// start is when the keeper began; valid holds, as time since start
	// (monotonic), until when the lease is surely held: TTL after the
	// moment the last renewal that succeeded was sent.
	start time.Time
	valid atomic.Int64
	// lost is why the keeper stopped the attempt (nil: it did not).
	lost error
}

// keepLease starts keeping the lease that owner took, with a statement
// sent at asked.
func (w *ExportWorker) keepLease(ctx context.Context, id, owner string, asked time.Time) *leaseKeeper {
	k := &leaseKeeper{done: make(chan struct{}), start: asked}
	k.ctx, k.cancel = context.WithCancelCause(ctx)
	k.valid.Store(int64(w.Timing.LeaseTTL))
	go k.run(w.Pool, id, owner, w.Timing.LeaseTTL)
	return k
}

// stopBy returns how long is left until the attempt must stop: a third
// of the TTL before the lease it knows of can run out.
func (k *leaseKeeper) stopBy(ttl time.Duration) time.Duration {
	return time.Duration(k.valid.Load()) - ttl/3 - time.Since(k.start)
}

func (k *leaseKeeper) run(pool *pgxpool.Pool, id, owner string, ttl time.Duration) {
	defer close(k.done)
	timer := time.NewTimer(ttl / 3)
	defer timer.Stop()
	for {
		select {
		case <-k.ctx.Done():
			return
		case <-timer.C:
		}
		left := k.stopBy(ttl)
		if left <= 0 {
			k.stopAttempt(store.ErrLeaseLost)
			return
		}
		sent := time.Since(k.start)
		renewCtx, cancel := context.WithTimeout(k.ctx, left)
		status, held, err := store.RenewExportLease(renewCtx, pool, id, owner, ttl)
		cancel()
		switch {
		case k.ctx.Err() != nil:
			return
		case err != nil:
			// The database did not answer: try again soon, until the
			// lease may be about to run out.
			timer.Reset(max(0, min(ttl/10, k.stopBy(ttl))))
			continue
		case status == audex.ExportCancelled:
			k.stopAttempt(errCancelled)
			return
		case !held:
			k.stopAttempt(store.ErrLeaseLost)
			return
		}
		k.valid.Store(int64(sent + ttl))
		timer.Reset(ttl / 3)
	}
}

// stopAttempt cancels the attempt with cause.
func (k *leaseKeeper) stopAttempt(cause error) {
	k.lost = cause
	k.cancel(cause)
}

// held returns nil while the attempt may go on writing: its context is
// live and its lease surely held for a third of the TTL more. Writers ask
// before each step, so that an attempt whose keeper could not run (a
// process paused for longer than the lease) stops too.
func (k *leaseKeeper) held(ttl time.Duration) error {
	if err := context.Cause(k.ctx); err != nil {
		return err
	}
	if k.stopBy(ttl) <= 0 {
		return store.ErrLeaseLost
	}
	return nil
}

// stop ends the keeping and returns why the keeper stopped the attempt,
// or nil.
func (k *leaseKeeper) stop() error {
	k.cancel(nil)
	<-k.done
	return k.lost
}

// errSnooze ends an attempt whose window is used up.
var errSnooze = errors.New("attempt window used up")

// run writes parts until the export is complete.
func (w *ExportWorker) run(ctx context.Context, log *slog.Logger, e *audex.Export, sink sinks.Sink, owner string, lease *leaseKeeper) error {
	deadline := time.Now().Add(w.Timing.Window)
	// A part still open half a lease past the window closes early, so that
	// the attempt records it before its timeout (attemptTimeout) cuts it
	// off: else a part too big for one attempt would restart forever.
	closePartBy := deadline.Add(w.Timing.LeaseTTL / 2)
	rows := partRows(formatName(e.Format))
	// An attempt that writes every part of an export selected by time
	// alone tallies its records' ids, so that the manifest's leaves can
	// come from the log alone, checked against them, rather than from a
	// second read of the records.
	var recordIDs *store.IDMultiset
	if e.Checkpoint == nil && w.Sealer != nil && store.SelectsByTime(e.Filter) {
		recordIDs = store.NewIDMultiset()
	}
	// What the manifest says of the integrity log depends on the export's
	// selection alone: it is worked out while the parts are written.
	manifestLog := w.startManifestLog(ctx, log, e, sink, recordIDs)
	defer manifestLog.stop()
	for {
		number := e.Progress.PartsWritten + 1
		part, err := w.writePart(ctx, e, sink, owner, rows, number, closePartBy, lease, recordIDs)
		if err != nil {
			return err
		}
		if part.records == 0 {
			return w.complete(ctx, log, e, sink, owner, lease, manifestLog)
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
			return w.complete(ctx, log, e, sink, owner, lease, manifestLog)
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
// closeBy if it is still open then, and adds its records' ids to
// recordIDs when not nil. It returns zero records (and uploads nothing)
// when no event is left.
func (w *ExportWorker) writePart(ctx context.Context, e *audex.Export, sink sinks.Sink, owner string, rows format.Rows, number int, closeBy time.Time, lease *leaseKeeper, recordIDs *store.IDMultiset) (writtenPart, error) {
	var part writtenPart
	events, err := eventReader(ctx, w.Reads, w.Pool, w.Logger.With(slog.String("export_id", e.ID), slog.Int("part", number)))
	if err != nil {
		return part, err
	}
	page, err := store.ListEvents(ctx, events, e.TenantID, e.Filter, audex.OrderAsc, e.Checkpoint, min(exportPageSize, e.PartMaxRecords))
	if err != nil || len(page) == 0 {
		return part, err
	}
	key := partKey(e, number)
	obj, err := uploadPart(ctx, sink, key, func(out io.Writer) error {
		return w.produce(ctx, e, owner, rows, events, page, &part, out, closeBy, lease, recordIDs)
	})
	if err != nil {
		return part, err
	}
	part.file = audex.ExportFile{Key: key, SizeBytes: obj.Size, Records: part.records, SHA256: obj.SHA256}
	return part, nil
}

// produce encodes events from the first page on into out (through gzip
// when asked), until the part is full, closeBy has passed or the events
// run out. It stops with the lease keeper's cause when the lease may no
// longer be held: before each page and before the part is closed, so that
// the upload fails instead of storing a part another attempt may write.
// It adds each record's id to recordIDs when not nil.
func (w *ExportWorker) produce(ctx context.Context, e *audex.Export, owner string, rows format.Rows, events store.DBTX, page []audex.Event, part *writtenPart, out io.Writer, closeBy time.Time, lease *leaseKeeper, recordIDs *store.IDMultiset) error {
	body, err := newPartBody(out, formatName(e.Format), e.Compression, rows)
	if err != nil {
		return err
	}
	finish := func() error {
		if err := lease.held(w.Timing.LeaseTTL); err != nil {
			return err
		}
		return body.finish()
	}
	written := int64(len(rows.Header()))
	var buf []byte
	pages := 0
	var next *nextPage
	defer func() {
		if next != nil {
			next.discard() // the part ended before the page read ahead
		}
	}()
	for len(page) > 0 {
		if err := lease.held(w.Timing.LeaseTTL); err != nil {
			return err
		}
		// The next page is read while this one is encoded: the database
		// and the encoder each keep a core busy.
		next = prefetch(ctx, events, e, page, part.records)
		for i := range page {
			buf = rows.AppendRow(buf[:0], &page[i])
			if part.records >= int64(e.PartMaxRecords) || part.records > 0 && written+int64(len(buf)) > e.PartMaxBytes {
				part.full = true
				return finish()
			}
			if err := body.write(buf, &page[i]); err != nil {
				return err
			}
			written += int64(len(buf))
			part.records++
			if recordIDs != nil {
				recordIDs.Add(page[i].ID)
			}
			part.last = audex.Position{OccurredAt: page[i].OccurredAt, ID: page[i].ID}
		}
		if pages++; pages%statusCheckPages == 0 {
			status, leased, err := store.ExportStatus(ctx, w.Pool, e.ID, owner)
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
func prefetch(ctx context.Context, events store.DBTX, e *audex.Export, page []audex.Event, written int64) *nextPage {
	ctx, cancel := context.WithCancel(ctx)
	n := &nextPage{done: make(chan struct{}), cancel: cancel}
	after := audex.Position{OccurredAt: page[len(page)-1].OccurredAt, ID: page[len(page)-1].ID}
	remaining := max(1, int64(e.PartMaxRecords)-written-int64(len(page)))
	go func() {
		defer close(n.done)
		n.page, n.err = store.ListEvents(ctx, events, e.TenantID, e.Filter, audex.OrderAsc, &after, int(min(exportPageSize, remaining)))
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
func (w *ExportWorker) complete(ctx context.Context, log *slog.Logger, e *audex.Export, sink sinks.Sink, owner string, lease *leaseKeeper, manifestLog *pendingLog) error {
	done, err := store.GetExportByID(ctx, w.Pool, e.ID)
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
	if done.Log, err = w.checkedManifestLog(ctx, log, e, sink, manifestLog); err != nil {
		return err
	}
	manifest, err := json.MarshalIndent(done, "", "  ")
	if err != nil {
		return err
	}
	if err := lease.held(w.Timing.LeaseTTL); err != nil {
		return err
	}
	if _, err := w.Sealer.putManifest(ctx, sink, e.TenantID, manifestKey, manifest); err != nil {
		return err
	}
	err = store.CompleteExport(ctx, w.Pool, e.ID, owner, manifestKey, completedAt)
	if errors.Is(err, store.ErrLeaseLost) {
		now, getErr := store.GetExportByID(context.WithoutCancel(ctx), w.Pool, e.ID)
		if getErr == nil && now.Status == audex.ExportCancelled {
			// Cancelled while the manifest went up: no manifest may stay.
			_ = sink.Delete(context.WithoutCancel(ctx), manifestKey)
			return errCancelled
		}
		// Another attempt took the lease: the manifest is its to write
		// (its own overwrites this one), and deleting it could remove
		// the one it wrote.
		return err
	}
	// The answer to the commit can be lost while the commit holds (the
	// attempt stopped as it committed): then this attempt completed the
	// export all the same, and says so, as no later attempt will.
	if err != nil && !completedAtTime(ctx, w.Pool, e.ID, completedAt) {
		return err
	}
	metrics.ExportsFinished.WithLabelValues(audex.ExportCompleted).Inc()
	log.Info("export_completed", slog.Int64("records", count), slog.Int("parts", done.Progress.PartsWritten))
	return nil
}

// completedAtTime reports whether the export is completed, at
// completedAt (by the attempt that chose that time).
func completedAtTime(ctx context.Context, db store.DBTX, id string, completedAt time.Time) bool {
	now, err := store.GetExportByID(context.WithoutCancel(ctx), db, id)
	return err == nil && now.Status == audex.ExportCompleted && now.CompletedAt != nil && now.CompletedAt.Equal(completedAt)
}

// pendingLog is what a manifest will say of the integrity log, being
// worked out.
type pendingLog struct {
	done   chan struct{}
	cancel context.CancelFunc
	log    *audex.ManifestLog
	err    error
	// recordIDs are the records' ids as the parts are written, and
	// leafIDs the event ids of the leaves found from the log alone; both
	// nil when the leaves are found from the records.
	recordIDs, leafIDs *store.IDMultiset
}

// startManifestLog works out what export e's manifest says of the
// integrity log (LogSealer.manifestLog) in the background: with
// recordIDs, from the log alone (see checkedManifestLog).
func (w *ExportWorker) startManifestLog(ctx context.Context, log *slog.Logger, e *audex.Export, sink sinks.Sink, recordIDs *store.IDMultiset) *pendingLog {
	ctx, cancel := context.WithCancel(ctx)
	p := &pendingLog{done: make(chan struct{}), cancel: cancel, recordIDs: recordIDs}
	if recordIDs != nil {
		p.leafIDs = recordIDs.Like()
	}
	go func() {
		defer close(p.done)
		started := time.Now()
		p.log, p.err = w.Sealer.manifestLog(ctx, log, w.Pool, sink, e.TenantID, "", e.KeyPrefix+leavesObject, e.Filter, time.Time{}, e.AsOf, p.leafIDs)
		if p.log != nil {
			log.Info("export_log_written", slog.Int64("leaves", p.log.EndLeaf-p.log.FirstLeaf), slog.Duration("took", time.Since(started)))
		}
	}()
	return p
}

// wait returns the manifest's log once it is worked out.
func (p *pendingLog) wait() (*audex.ManifestLog, error) {
	<-p.done
	return p.log, p.err
}

// checkedManifestLog returns what export e's manifest says of the
// integrity log, once every part is written: p's, unless its leaves came
// from the log alone and their event ids are not the records' (an event
// deleted, inserted or ingested again behind audex's back, a leaf sealed
// before leaves kept their event's time); then the log is worked out
// again from the records, which names such leaves.
func (w *ExportWorker) checkedManifestLog(ctx context.Context, log *slog.Logger, e *audex.Export, sink sinks.Sink, p *pendingLog) (*audex.ManifestLog, error) {
	m, err := p.wait()
	if err != nil || p.recordIDs == nil || p.recordIDs.Equal(p.leafIDs) {
		return m, err
	}
	log.Info("export_log_from_records", slog.String("reason", "the leaves of the records' times are not the records'"))
	return w.Sealer.manifestLog(ctx, log, w.Pool, sink, e.TenantID, "", e.KeyPrefix+leavesObject, e.Filter, time.Time{}, e.AsOf, nil)
}

// stop ends the work (an attempt that ends before the export completes
// does it again in the next one) and waits for it.
func (p *pendingLog) stop() {
	p.cancel()
	<-p.done
}

// fail records a permanent failure in operator words, deletes the parts
// and cancels the job so that River does not retry it.
func (w *ExportWorker) fail(ctx context.Context, log *slog.Logger, e *audex.Export, sink sinks.Sink, cause error) error {
	failure := describeFailure(e.Destination, cause)
	log.Warn("export_failed", slog.String("code", failure.Code), slog.String("reason", failure.Message))
	if err := store.FailExport(context.WithoutCancel(ctx), w.Pool, e.ID, failure); err != nil {
		return err
	}
	metrics.ExportsFinished.WithLabelValues(audex.ExportFailed).Inc()
	w.deleteParts(ctx, log, e, sink)
	return river.JobCancel(cause)
}

// describeFailure turns an error writing to destination d into words an
// operator can act on, without secrets (sinks keep credentials out of
// their errors).
func describeFailure(d audex.ExportDestination, err error) audex.ExportError {
	switch {
	case errors.Is(err, ErrDestinationGone):
		return audex.ExportError{Code: "destination_not_configured", Message: fmt.Sprintf("destination %s is no longer configured on this server", d.Name)}
	case errors.Is(err, sinks.ErrBucketNotFound):
		return audex.ExportError{Code: "bucket_not_found", Message: fmt.Sprintf("bucket %s of destination %s does not exist", d.Bucket, d.Name)}
	case errors.Is(err, sinks.ErrAccessDenied):
		return audex.ExportError{Code: "access_denied", Message: fmt.Sprintf("destination %s (bucket %s) refused the credentials or lacks a permission", d.Name, d.Bucket)}
	case errors.Is(err, sinks.ErrNoSpace):
		return audex.ExportError{Code: "destination_full", Message: fmt.Sprintf("destination %s (bucket %s) has no space left", d.Name, d.Bucket)}
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
