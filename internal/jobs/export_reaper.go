package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/audex-dev/audex/internal/queue"
	"github.com/audex-dev/audex/internal/store"
)

// DefaultJoblessGrace is ExportReaperWorker.JoblessGrace when it is zero.
const DefaultJoblessGrace = time.Minute

// joblessBatch bounds how many jobless exports one run requeues; the next
// run takes the rest.
const joblessBatch = 100

// stalledBatch bounds how many stalled exports one run resumes; the next
// run takes the rest.
const stalledBatch = 100

// joblessEvery is how often one process looks for jobless exports: the
// look joins River's jobs, and a jobless export has waited a minute
// already.
const joblessEvery = 15 * time.Second

// reaperTimeout bounds one run. A reaper job left running longer belongs to
// a dead worker, and the next reaper job takes over the loop.
const reaperTimeout = 30 * time.Second

// ExportReaperWorker resumes exports that nothing would otherwise resume.
//
// Stalled exports: it resumes them at once rather than after River's
// rescuer (which waits RescueStuckJobsAfter and then runs every 30 s): for
// each running export whose lease expired more than Grace ago, it ends
// the lease and inserts a new export job, in one transaction, so that
// two reapers never insert two. The dead attempt stopped before its lease
// ran out; the old job, when River rescues it, finds the lease taken and
// waits.
//
// Jobless exports: a queued or running export whose export job was deleted
// (from River's UI) or finalized (cancelled, discarded, or completed while
// the export was not) would stay queued forever. It gets a new export job,
// which resumes from the export's checkpoint: export work is idempotent,
// and an operator who wants an export stopped cancels it through the API.
// A jobless purge gets a new purge job likewise (a purge resumes where its
// batches stopped): left running, it would hold every export of its range.
//
// It runs as a loop that needs no leader: after each run the job snoozes
// until its next turn, at most 1.25 Interval away, and a snooze no longer
// than River's scheduler interval (5 s, so with Interval up to 4 s) makes
// the job available again at once, for any worker process to fetch when
// it is due; so a dead worker's exports resume even when the dead worker
// was River's leader, which River replaces only after up to about 20 s. The two oldest live reaper jobs carry the loop
// (reaperLoops), so that a worker dying in the middle of a run does not
// stop it; a carrier that finds the other gone starts a new one. River's
// leader inserts a reaper job periodically (at start and then every
// reaperRestartInterval), and so does an export attempt that finds fewer
// than two live, to start the loop where none runs; any other reaper job
// finishes at its first run.
type ExportReaperWorker struct {
	river.WorkerDefaults[queue.ExportReaperArgs]
	Pool   *pgxpool.Pool
	Logger *slog.Logger
	// Grace is how long past its lease an export counts as stalled.
	Grace time.Duration
	// Interval is how long the loop waits between runs (zero: a job runs
	// once and finishes).
	Interval time.Duration
	// JoblessGrace is how old an export must be before a missing or
	// finalized job counts as lost (default DefaultJoblessGrace). The
	// API inserts an export and its job in one transaction, so this is
	// a margin, not a race.
	JoblessGrace time.Duration

	mu          sync.Mutex
	lastJobless time.Time // when this process last looked for jobless exports
}

// Timeout bounds one run.
func (w *ExportReaperWorker) Timeout(*river.Job[queue.ExportReaperArgs]) time.Duration {
	return reaperTimeout
}

// Work runs the loop once: unless reaperLoops older jobs carry it, it
// starts the carriers missing, resumes stalled exports, requeues jobless
// ones (at most every joblessEvery in this process), and snoozes until its
// next turn. Stalled exports go first: the jobs inserted for them are
// live, so that the jobless pass does not insert a second. A failed run is
// logged and the loop goes on.
func (w *ExportReaperWorker) Work(ctx context.Context, job *river.Job[queue.ExportReaperArgs]) error {
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return err
	}
	rank := 0 // this job's place among the loop's carriers
	if w.Interval > 0 {
		live, older, err := liveReapers(ctx, client, job.ID)
		if err != nil {
			return w.next(ctx, rank, err)
		}
		if older >= reaperLoops {
			return nil // older jobs carry the loop
		}
		rank = older
		// Too few: start the others (one died with its worker, or this
		// is the first).
		for ; live < reaperLoops-1; live++ {
			if _, err := client.Insert(ctx, queue.ExportReaperArgs{}, nil); err != nil {
				return w.next(ctx, rank, fmt.Errorf("start the export reaper: %w", err))
			}
		}
	}
	if err := w.resumeStalled(ctx, client); err != nil {
		return w.next(ctx, rank, err)
	}
	w.mu.Lock()
	due := time.Since(w.lastJobless) >= joblessEvery
	if due {
		w.lastJobless = time.Now()
	}
	w.mu.Unlock()
	if due || w.Interval <= 0 {
		if err := w.requeueJobless(ctx, client); err != nil {
			return w.next(ctx, rank, err)
		}
	}
	return w.next(ctx, rank, nil)
}

// next ends a run: the loop snoozes until its next turn (after logging
// err), and a job that is no loop returns err.
//
// The carriers take turns at fixed points of the clock, Interval /
// reaperLoops apart, rather than each an Interval after its last run: so
// they do not drift together, and one worker rarely holds them both when
// it dies (a job stays running in River's eyes for a moment after its run).
func (w *ExportReaperWorker) next(ctx context.Context, rank int, err error) error {
	if w.Interval <= 0 {
		return err
	}
	if err != nil && ctx.Err() == nil {
		w.Logger.Warn("export_reaper_failed", slog.Any("error", err))
	}
	now := time.Now()
	turn := now.Truncate(w.Interval).Add(time.Duration(rank) * w.Interval / reaperLoops)
	for turn.Before(now.Add(w.Interval / 4)) {
		turn = turn.Add(w.Interval)
	}
	return river.JobSnooze(turn.Sub(now))
}

// reaperLoops is how many reaper jobs carry the loop at once: the
// reaperLoops oldest live ones. A worker runs one reaper job at a time
// (its queue has one worker), so a worker that dies in the middle of a
// run, leaving its job running in River's eyes until River's rescuer
// comes, stops at most one of them: the other goes on.
const reaperLoops = 2

// liveReapers returns how many reaper jobs other than id are live (wait
// their turn, or run now and started within reaperTimeout: an older one
// died with its worker), and how many of those have a smaller id.
func liveReapers(ctx context.Context, client *river.Client[pgx.Tx], id int64) (live, older int, err error) {
	res, err := client.JobList(ctx, river.NewJobListParams().Kinds(queue.ExportReaperArgs{}.Kind()).
		States(rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable, rivertype.JobStateRunning, rivertype.JobStateScheduled).
		First(100))
	if err != nil {
		return 0, 0, fmt.Errorf("list reaper jobs: %w", err)
	}
	for _, j := range res.Jobs {
		if j.ID == id || j.State == rivertype.JobStateRunning && (j.AttemptedAt == nil || time.Since(*j.AttemptedAt) >= reaperTimeout) {
			continue
		}
		live++
		if j.ID < id {
			older++
		}
	}
	return live, older, nil
}

// ensureReaper starts the reaper's loop when fewer than reaperLoops live
// jobs carry it: a worker may die before River's leader started it, and a
// dead worker's export is resumed by it. Jobs started at the same time
// elsewhere finish at their first run.
func ensureReaper(ctx context.Context) error {
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return err
	}
	live, _, err := liveReapers(ctx, client, 0)
	if err != nil {
		return err
	}
	for ; live < reaperLoops; live++ {
		if _, err := client.Insert(ctx, queue.ExportReaperArgs{}, nil); err != nil {
			return fmt.Errorf("start the export reaper: %w", err)
		}
	}
	return nil
}

// resumeStalled inserts an export job for each stalled export, in the
// transaction that found it and ended its lease, so that two reapers
// never insert two.
func (w *ExportReaperWorker) resumeStalled(ctx context.Context, client *river.Client[pgx.Tx]) error {
	var resumed []string
	err := pgx.BeginFunc(ctx, w.Pool, func(tx pgx.Tx) error {
		ids, err := store.LockStalledExports(ctx, tx, w.Grace, stalledBatch)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := client.InsertTx(ctx, tx, queue.ExportArgs{ExportID: id}, nil); err != nil {
				return fmt.Errorf("resume export %s: %w", id, err)
			}
		}
		resumed = ids
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range resumed {
		w.Logger.Info("export_resumed", slog.String("export_id", id))
	}
	return nil
}

// joblessKinds are the work that the reaper gives a new job when it has
// none: exports and purges, each found by its store function and named by
// its job's args.
var joblessKinds = []struct {
	kind string
	lock func(context.Context, pgx.Tx, string, time.Duration, int) ([]store.Jobless, error)
	args func(id string) river.JobArgs
}{
	{queue.ExportArgs{}.Kind(), store.LockJoblessExports, func(id string) river.JobArgs { return queue.ExportArgs{ExportID: id} }},
	{queue.PurgeArgs{}.Kind(), store.LockJoblessPurges, func(id string) river.JobArgs { return queue.PurgeArgs{PurgeID: id} }},
}

// requeueJobless inserts an export job for each jobless export, and a
// purge job for each jobless purge, in the transaction that found and
// locked it, so that two reapers never insert two.
func (w *ExportReaperWorker) requeueJobless(ctx context.Context, client *river.Client[pgx.Tx]) error {
	grace := w.JoblessGrace
	if grace <= 0 {
		grace = DefaultJoblessGrace
	}
	type requeued struct {
		msg, key string
		row      store.Jobless
		jobID    int64
	}
	var done []requeued
	err := pgx.BeginFunc(ctx, w.Pool, func(tx pgx.Tx) error {
		for _, k := range joblessKinds {
			rows, err := k.lock(ctx, tx, k.kind, grace, joblessBatch)
			if err != nil {
				return err
			}
			for _, r := range rows {
				res, err := client.InsertTx(ctx, tx, k.args(r.ID), nil)
				if err != nil {
					return fmt.Errorf("requeue %s %s: %w", k.kind, r.ID, err)
				}
				done = append(done, requeued{k.kind + "_job_requeued", k.kind + "_id", r, res.Job.ID})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range done {
		w.Logger.Info(r.msg, slog.String(r.key, r.row.ID), slog.String("tenant_id", r.row.TenantID), slog.Int64("job_id", r.jobID))
	}
	return nil
}
