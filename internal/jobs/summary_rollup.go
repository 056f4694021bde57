package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/audex-dev/audex/internal/queue"
	"github.com/audex-dev/audex/internal/store"
)

// summaryRollupChunk is how many events one rollup transaction adds at
// most, so that a first rollup of millions of events commits as it goes.
const summaryRollupChunk = 500_000

// SummaryRollupWorker rolls up every tenant's new events. Idempotent and
// safe beside another run: each tenant's mark serialises them.
type SummaryRollupWorker struct {
	river.WorkerDefaults[queue.SummaryRollupArgs]
	Pool   *pgxpool.Pool
	Logger *slog.Logger
}

// Timeout allows a first rollup of tens of millions of events.
func (w *SummaryRollupWorker) Timeout(*river.Job[queue.SummaryRollupArgs]) time.Duration {
	return time.Hour
}

// Work rolls up; errors are returned for River to retry.
func (w *SummaryRollupWorker) Work(ctx context.Context, _ *river.Job[queue.SummaryRollupArgs]) error {
	started := time.Now()
	n, err := store.RollUpAllSummaries(ctx, w.Pool, summaryRollupChunk)
	if n > 0 {
		w.Logger.Info("summary_rolled_up", slog.Int64("events", n), slog.Duration("took", time.Since(started)))
	}
	return err
}
