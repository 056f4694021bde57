package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/audex-dev/audex/internal/store"
)

// ExportReaperArgs asks for exports whose worker died to be resumed.
type ExportReaperArgs struct{}

// Kind is the job's stable name.
func (ExportReaperArgs) Kind() string { return "export_reaper" }

// ExportReaperWorker resumes stalled exports at once rather than after
// River's rescuer (which waits RescueStuckJobsAfter and then runs every
// 30 s): for each running export whose lease expired, it inserts a new
// export job. The lease keeps the old job, when River rescues it, from
// working the export at the same time.
type ExportReaperWorker struct {
	river.WorkerDefaults[ExportReaperArgs]
	Pool   *pgxpool.Pool
	Logger *slog.Logger
	// Grace is how long past its lease an export counts as stalled.
	Grace time.Duration
}

// Work inserts one export job per stalled export.
func (w *ExportReaperWorker) Work(ctx context.Context, _ *river.Job[ExportReaperArgs]) error {
	ids, err := store.StalledExports(ctx, w.Pool, w.Grace)
	if err != nil || len(ids) == 0 {
		return err
	}
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := client.Insert(ctx, ExportArgs{ExportID: id}, nil); err != nil {
			return err
		}
		w.Logger.Info("export_resumed", slog.String("export_id", id))
	}
	return nil
}
