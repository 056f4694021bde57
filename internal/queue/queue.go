// Package queue holds the River job kinds of audex (their arguments, names
// and queues) and the insert-only River client, so that a process that
// only enqueues (the API) needs River and nothing else: the workers that
// run these jobs live in internal/jobs, with the sinks and their cloud
// SDKs. Args carry ids only; state lives in audex's tables. It imports
// River alone (TestArrows in the module's root keeps it so).
package queue

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// Exports is the River queue of export jobs, set apart so that their
// concurrency is configured on its own.
const Exports = "exports"

// Reaper is the River queue of the export reaper, so that long purges or
// exports holding the other queues' workers never delay it.
const Reaper = "export_reaper"

// Streams is the River queue of stream jobs, so that streams waiting on a
// slow destination never hold the export or default queues' workers.
const Streams = "streams"

// ExportArgs asks for an export to be worked (or continued).
type ExportArgs struct {
	ExportID string `json:"export_id"`
}

// Kind is the job's stable name.
func (ExportArgs) Kind() string { return "export" }

// InsertOpts puts exports on the Exports queue.
func (ExportArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: Exports} }

// ExportReaperArgs asks for exports whose worker died, or whose job is
// gone, to be resumed.
type ExportReaperArgs struct{}

// Kind is the job's stable name.
func (ExportReaperArgs) Kind() string { return "export_reaper" }

// InsertOpts puts the reaper on the Reaper queue.
func (ExportReaperArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: Reaper} }

// PurgeArgs asks for a purge to be worked (or continued).
type PurgeArgs struct {
	PurgeID string `json:"purge_id"`
}

// Kind is the job's stable name.
func (PurgeArgs) Kind() string { return "purge" }

// StreamArgs asks for a stream's due batches to be delivered. The
// stream's lease, not River, keeps two attempts from working one stream:
// a job that finds it held by another ends.
type StreamArgs struct {
	StreamID string `json:"stream_id"`
}

// Kind is the job's stable name.
func (StreamArgs) Kind() string { return "stream" }

// InsertOpts puts streams on the Streams queue.
func (StreamArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: Streams} }

// StreamSchedulerArgs asks for a stream job for every active stream whose
// next batch (or retry) is due and whose lease is free.
type StreamSchedulerArgs struct{}

// Kind is the job's stable name.
func (StreamSchedulerArgs) Kind() string { return "stream_scheduler" }

// InsertOpts puts the scheduler on the Reaper queue, whose short jobs
// never wait behind long purges or exports.
func (StreamSchedulerArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: Reaper} }

// RetentionArgs asks for the retention purges that the policies in force
// call for to be created.
type RetentionArgs struct{}

// Kind is the job's stable name.
func (RetentionArgs) Kind() string { return "retention" }

// SummaryRollupArgs asks for the events received since the last rollup to
// be added to the summary's daily counts.
type SummaryRollupArgs struct{}

// Kind is the job's stable name.
func (SummaryRollupArgs) Kind() string { return "summary_rollup" }

// SealArgs asks for every tenant's newly received events to be appended
// to its integrity log and a checkpoint of each grown log to be signed.
type SealArgs struct{}

// Kind is the job's stable name.
func (SealArgs) Kind() string { return "seal" }

// PartitionMaintenanceArgs asks for the monthly event partitions around
// now to exist, so that new months never land in the default partition.
type PartitionMaintenanceArgs struct{}

// Kind is the job's stable name.
func (PartitionMaintenanceArgs) Kind() string { return "partition_maintenance" }

// NewInsertClient returns a River client that only inserts jobs (the API's).
func NewInsertClient(pool *pgxpool.Pool, logger *slog.Logger) (*river.Client[pgx.Tx], error) {
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: Quiet(logger)})
	if err != nil {
		return nil, fmt.Errorf("create river client: %w", err)
	}
	return client, nil
}

// Quiet returns logger for River itself: warnings and errors only, since
// River reports routine work (job counts, elections) at info level.
func Quiet(logger *slog.Logger) *slog.Logger {
	return slog.New(minLevelHandler{Handler: logger.Handler(), min: slog.LevelWarn})
}

// minLevelHandler drops records below min.
type minLevelHandler struct {
	slog.Handler
	min slog.Level
}

func (h minLevelHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= h.min && h.Handler.Enabled(ctx, level)
}

func (h minLevelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevelHandler{Handler: h.Handler.WithAttrs(attrs), min: h.min}
}

func (h minLevelHandler) WithGroup(name string) slog.Handler {
	return minLevelHandler{Handler: h.Handler.WithGroup(name), min: h.min}
}
