package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/audex-dev/audex/internal/store"
)

// ExportReaperArgs asks for exports whose worker died, or whose job is
// gone, to be resumed.
type ExportReaperArgs struct{}

// Kind is the job's stable name.
func (ExportReaperArgs) Kind() string { return "export_reaper" }

// DefaultJoblessGrace is ExportReaperWorker.JoblessGrace when it is zero.
const DefaultJoblessGrace = time.Minute

// joblessBatch bounds how many jobless exports one run requeues; the next
// run takes the rest.
const joblessBatch = 100

// ExportReaperWorker resumes exports that nothing would otherwise resume.
//
// Stalled exports: it resumes them at once rather than after River's
// rescuer (which waits RescueStuckJobsAfter and then runs every 30 s): for
// each running export whose lease expired, it inserts a new export job.
// The lease keeps the old job, when River rescues it, from working the
// export at the same time.
//
// Jobless exports: a queued or running export whose export job was deleted
// (from River's UI) or finalized (cancelled, discarded, or completed while
// the export was not) would stay queued forever. It gets a new export job,
// which resumes from the export's checkpoint: export work is idempotent,
// and an operator who wants an export stopped cancels it through the API.
type ExportReaperWorker struct {
	river.WorkerDefaults[ExportReaperArgs]
	Pool   *pgxpool.Pool
	Logger *slog.Logger
	// Grace is how long past its lease an export counts as stalled.
	Grace time.Duration
	// JoblessGrace is how old an export must be before a missing or
	// finalized job counts as lost (default DefaultJoblessGrace). The
	// API inserts an export and its job in one transaction, so this is
	// a margin, not a race.
	JoblessGrace time.Duration
}

// Work inserts one export job per stalled export, then one per jobless
// export. Stalled exports go first: the jobs inserted for them are live,
// so that the jobless pass does not insert a second.
func (w *ExportReaperWorker) Work(ctx context.Context, _ *river.Job[ExportReaperArgs]) error {
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return err
	}
	ids, err := store.StalledExports(ctx, w.Pool, w.Grace)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := client.Insert(ctx, ExportArgs{ExportID: id}, nil); err != nil {
			return err
		}
		w.Logger.Info("export_resumed", slog.String("export_id", id))
	}
	return w.requeueJobless(ctx, client)
}

// requeueJobless inserts an export job for each jobless export, in the
// transaction that found and locked it, so that two reapers never insert
// two.
func (w *ExportReaperWorker) requeueJobless(ctx context.Context, client *river.Client[pgx.Tx]) error {
	grace := w.JoblessGrace
	if grace <= 0 {
		grace = DefaultJoblessGrace
	}
	type requeued struct {
		export store.JoblessExport
		jobID  int64
	}
	var done []requeued
	err := pgx.BeginFunc(ctx, w.Pool, func(tx pgx.Tx) error {
		jobless, err := store.LockJoblessExports(ctx, tx, ExportArgs{}.Kind(), grace, joblessBatch)
		if err != nil {
			return err
		}
		for _, e := range jobless {
			res, err := client.InsertTx(ctx, tx, ExportArgs{ExportID: e.ID}, nil)
			if err != nil {
				return fmt.Errorf("requeue export %s: %w", e.ID, err)
			}
			done = append(done, requeued{e, res.Job.ID})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range done {
		w.Logger.Info("export_job_requeued", slog.String("export_id", r.export.ID), slog.String("tenant_id", r.export.TenantID), slog.Int64("job_id", r.jobID))
	}
	return nil
}
