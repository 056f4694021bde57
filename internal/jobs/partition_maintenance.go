package jobs

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/audex-dev/audex/internal/store"
)

// PartitionMaintenanceArgs asks for the monthly event partitions around
// now to exist, so that new months never land in the default partition.
type PartitionMaintenanceArgs struct{}

// Kind is the job's stable name.
func (PartitionMaintenanceArgs) Kind() string { return "partition_maintenance" }

// PartitionMaintenanceWorker creates missing event partitions. Idempotent.
type PartitionMaintenanceWorker struct {
	river.WorkerDefaults[PartitionMaintenanceArgs]
	Pool *pgxpool.Pool
}

// Work creates the partitions; errors are returned for River to retry.
func (w *PartitionMaintenanceWorker) Work(ctx context.Context, _ *river.Job[PartitionMaintenanceArgs]) error {
	return store.EnsureEventPartitions(ctx, w.Pool, time.Now())
}
