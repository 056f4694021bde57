package jobs

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/audex-dev/audex/internal/queue"
	"github.com/audex-dev/audex/internal/store"
)

// PartitionMaintenanceWorker creates missing event partitions. Idempotent.
type PartitionMaintenanceWorker struct {
	river.WorkerDefaults[queue.PartitionMaintenanceArgs]
	Pool *pgxpool.Pool
}

// Work creates the partitions; errors are returned for River to retry.
func (w *PartitionMaintenanceWorker) Work(ctx context.Context, _ *river.Job[queue.PartitionMaintenanceArgs]) error {
	return store.EnsureEventPartitions(ctx, w.Pool, time.Now())
}
