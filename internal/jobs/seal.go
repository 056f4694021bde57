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

// LogSealer extends tenants' integrity logs and signs their checkpoints:
// the seal job's work, and what a purge and retention do before they
// delete, so that no event is deleted before it is a leaf. A nil
// *LogSealer seals nothing (a worker without log keys, in tests).
type LogSealer struct {
	// Name is the first part of every checkpoint's origin.
	Name string
	// Keys sign the checkpoints.
	Keys *integrity.Keys
}

// SealTenant seals every event of the tenant received so far.
func (s *LogSealer) SealTenant(ctx context.Context, db store.DBTX, tenantID string) error {
	for more := s != nil; more; {
		var err error
		if _, more, err = store.SealLog(ctx, db, tenantID, s.Name, sealChunk, s.Keys.Sign); err != nil {
			return err
		}
	}
	return nil
}

// SealTenantBefore seals the tenant's events when some received before t
// may not be leaves yet (the log's last seal ended before t): what a
// purge of the events received before t needs, without a seal of its own
// when the seal job or a stream sealed past t already.
func (s *LogSealer) SealTenantBefore(ctx context.Context, db store.DBTX, tenantID string, t time.Time) error {
	if s == nil {
		return nil
	}
	sealedTo, err := store.LogSealedTo(ctx, db, tenantID)
	if err != nil || !sealedTo.Before(t) {
		return err
	}
	return s.SealTenant(ctx, db, tenantID)
}

// SealAll seals every tenant's events received so far and returns how
// many leaves it added.
func (s *LogSealer) SealAll(ctx context.Context, db store.DBTX) (int64, error) {
	if s == nil {
		return 0, nil
	}
	return store.SealAllLogs(ctx, db, s.Name, sealChunk, s.Keys.Sign)
}

// SealWorker appends every tenant's new events to its integrity log and
// signs a checkpoint of each log that grew. Idempotent and safe beside
// another run: each tenant's log_state row serialises them.
type SealWorker struct {
	river.WorkerDefaults[queue.SealArgs]
	Pool   *pgxpool.Pool
	Logger *slog.Logger
	Sealer *LogSealer
}

// Timeout allows a first seal of tens of millions of events.
func (w *SealWorker) Timeout(*river.Job[queue.SealArgs]) time.Duration {
	return time.Hour
}

// Work seals; errors are returned for River to retry.
func (w *SealWorker) Work(ctx context.Context, _ *river.Job[queue.SealArgs]) error {
	started := time.Now()
	n, err := w.Sealer.SealAll(ctx, w.Pool)
	if n > 0 {
		w.Logger.Info("log_sealed", slog.Int64("leaves", n), slog.Duration("took", time.Since(started)))
	}
	return err
}
