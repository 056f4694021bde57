package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/audex-dev/audex/internal/integrity"
	"github.com/audex-dev/audex/internal/queue"
	"github.com/audex-dev/audex/internal/store"
)

// sealChunk is how many leaves one seal transaction adds at most, so that
// a first seal of millions of events commits as it goes.
const sealChunk = 500_000

// SealWorker appends every tenant's new events to its integrity log and
// signs a checkpoint of each log that grew. Idempotent and safe beside
// another run: each tenant's log_state row serialises them.
type SealWorker struct {
	river.WorkerDefaults[queue.SealArgs]
	Pool   *pgxpool.Pool
	Logger *slog.Logger
	// LogName is the first part of every checkpoint's origin.
	LogName string
	// Keys sign the checkpoints.
	Keys *integrity.Keys
}

// Timeout allows a first seal of tens of millions of events.
func (w *SealWorker) Timeout(*river.Job[queue.SealArgs]) time.Duration {
	return time.Hour
}

// Work seals; errors are returned for River to retry.
func (w *SealWorker) Work(ctx context.Context, _ *river.Job[queue.SealArgs]) error {
	started := time.Now()
	n, err := store.SealAllLogs(ctx, w.Pool, w.LogName, sealChunk, w.Keys.Sign)
	if n > 0 {
		w.Logger.Info("log_sealed", slog.Int64("leaves", n), slog.Duration("took", time.Since(started)))
	}
	return err
}
