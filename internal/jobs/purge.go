package jobs

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/metrics"
	"github.com/audex-dev/audex/internal/queue"
	"github.com/audex-dev/audex/internal/store"
)

// purgeBatchSize is how many events one purge transaction deletes: small
// enough that row locks (on event_values, which ingest also updates) are
// held for milliseconds.
const purgeBatchSize = 5000

// purgeWaitForExports is how long a purge waits before looking again for
// overlapping exports.
const purgeWaitForExports = 5 * time.Second

// PurgeWorker deletes a purge's events in short batches. Retrying is safe:
// the count is committed with each batch, so a purge that dies resumes and
// ends with the right total.
type PurgeWorker struct {
	river.WorkerDefaults[queue.PurgeArgs]
	Pool   *pgxpool.Pool
	Logger *slog.Logger
	// Window bounds one attempt; the purge then continues in a new one.
	Window time.Duration
	// BatchBudget is the time budget of each statement of a batch (zero:
	// the pool's).
	BatchBudget time.Duration
	// Sealer seals the tenant's integrity log before the purge deletes,
	// so that every deleted event keeps its leaf.
	Sealer *LogSealer
}

// Timeout bounds one attempt, below River's rescue time.
func (w *PurgeWorker) Timeout(*river.Job[queue.PurgeArgs]) time.Duration {
	// The last batch an attempt starts within its window may take its
	// whole budget: a shorter timeout would cut every batch slower than
	// the window off, and the purge would never move.
	if w.BatchBudget > 0 {
		return w.Window + w.BatchBudget
	}
	return 2 * w.Window
}

// Work starts the purge (waiting while an export overlaps its range),
// deletes batches until none is left or the window is used, and completes
// it. An error on the job's last attempt fails the purge: a purge left
// running with no job to end it would hold every export of its range
// for good.
func (w *PurgeWorker) Work(ctx context.Context, job *river.Job[queue.PurgeArgs]) error {
	log := w.Logger.With(slog.String("purge_id", job.Args.PurgeID), slog.Int64("job_id", job.ID))
	err := w.work(ctx, log, job)
	var snooze *river.JobSnoozeError
	var cancel *river.JobCancelError
	// An attempt stopped by its timeout or a shutdown fails nothing: the
	// purge resumes, from a job of the reaper's when River has none left.
	if err == nil || job.Attempt < job.MaxAttempts || errors.As(err, &snooze) || errors.As(err, &cancel) || ctx.Err() != nil {
		return err
	}
	if failErr := store.FailPurge(context.WithoutCancel(ctx), w.Pool, job.Args.PurgeID, "gave up after repeated errors: "+err.Error()); failErr != nil {
		log.Error("purge_not_failed", slog.Any("error", failErr))
	}
	return err
}

// work is Work but for what the job's last attempt does with an error.
func (w *PurgeWorker) work(ctx context.Context, log *slog.Logger, job *river.Job[queue.PurgeArgs]) error {
	id := job.Args.PurgeID
	p, blocked, err := store.StartPurge(ctx, w.Pool, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return river.JobCancel(err)
	case err != nil:
		return err
	case blocked:
		log.Info("purge_waits_for_export_or_stream")
		return river.JobSnooze(purgeWaitForExports)
	case p.Finished():
		return nil
	}
	// Every event the purge may delete (received before it was asked
	// for) becomes a leaf first: deleting it removes its body, never its
	// leaf.
	if err := w.Sealer.SealTenantBefore(ctx, w.Pool, p.TenantID, p.CreatedAt); err != nil {
		return err
	}
	deadline := time.Now().Add(w.Window)
	var after *audex.Position
	for {
		// A stream created since the purge started may backfill what it
		// deletes: the purge waits until the stream has delivered it.
		if behind, err := store.StreamsBehind(ctx, w.Pool, p.TenantID, p.CreatedAt); err != nil || behind {
			if err == nil {
				log.Info("purge_waits_for_stream")
				err = river.JobSnooze(purgeWaitForExports)
			}
			return err
		}
		started := time.Now()
		deleted, next, err := store.PurgeBatch(ctx, w.Pool, p, after, purgeBatchSize, w.BatchBudget)
		if err != nil {
			return err
		}
		metrics.PurgedEvents.Add(float64(deleted))
		if next == nil {
			break // the batch took what was left
		}
		after = next
		if err := w.yield(ctx, min(time.Since(started), time.Until(deadline))); err != nil {
			return err
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return river.JobSnooze(0)
		}
	}
	done, err := store.CompletePurge(ctx, w.Pool, id)
	if err != nil {
		return err
	}
	log.Info("purge_completed", slog.Int64("deleted", done.Deleted), slog.String("reason", done.Reason))
	return nil
}

// yield gives way to the API: when one of its sessions is running a
// statement (ingest, most likely), the purge pauses for pause (as long as
// its last batch took, within the attempt's window), so that it takes at
// most about half of a database busy serving clients. Otherwise it purges
// at full speed.
func (w *PurgeWorker) yield(ctx context.Context, pause time.Duration) error {
	busy, err := store.APIBusy(ctx, w.Pool)
	if err != nil || !busy {
		return err
	}
	select {
	case <-ctx.Done():
	case <-time.After(pause):
	}
	return nil
}

// RetentionWorker creates a purge per tenant with a retention policy (one
// a day while the policy stays, and one at the next run after it
// changes), with its job, in one transaction.
type RetentionWorker struct {
	river.WorkerDefaults[queue.RetentionArgs]
	Pool   *pgxpool.Pool
	Logger *slog.Logger
	// Sealer seals every tenant's integrity log before partitions are
	// dropped, so that every dropped event keeps its leaf.
	Sealer *LogSealer
}

// Work first drops the monthly partitions that every tenant in them has let
// expire (cheap, and no dead rows), then creates the purges for the rest; a
// tenant that has a retention purge whose cut-off falls on the same UTC day
// is skipped (store.CreateRetentionPurges).
func (w *RetentionWorker) Work(ctx context.Context, _ *river.Job[queue.RetentionArgs]) error {
	if _, err := w.Sealer.SealAll(ctx, w.Pool); err != nil {
		return err
	}
	dropped, err := store.DropExpiredPartitions(ctx, w.Pool, time.Now())
	for _, d := range dropped {
		w.Logger.Info("retention_partition_dropped", slog.String("partition", d.Name), slog.Any("deleted", d.Deleted))
		for _, n := range d.Deleted {
			metrics.PurgedEvents.Add(float64(n))
		}
	}
	if err != nil {
		return err
	}
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return err
	}
	tx, err := w.Pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
	purges, err := store.CreateRetentionPurges(ctx, tx, time.Now())
	if err != nil {
		return err
	}
	for _, p := range purges {
		if _, err := client.InsertTx(ctx, tx, queue.PurgeArgs{PurgeID: p.ID}, nil); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	for _, p := range purges {
		w.Logger.Info("retention_purge_created", slog.String("purge_id", p.ID), slog.String("tenant_id", p.TenantID), slog.Time("before", p.Before))
	}
	return nil
}
