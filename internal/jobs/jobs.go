// Package jobs holds the River workers of audex's job kinds (defined in
// internal/queue) and builds the River client that works them. State lives
// in audex's tables through internal/store; objects are written through
// internal/sinks. It must not import internal/api or cmd/*.
package jobs

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/audex-dev/audex/internal/config"
	"github.com/audex-dev/audex/internal/integrity"
	"github.com/audex-dev/audex/internal/queue"
	"github.com/audex-dev/audex/internal/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
)

// Config is what the worker's River client needs.
type Config struct {
	Pool *pgxpool.Pool
	// Reads serves the event reads of exports and stream batches from a
	// replica when one is configured (nil: Pool).
	Reads  *store.Reads
	Logger *slog.Logger
	// OpenSink opens a configured destination's sink by name.
	OpenSink SinkOpener
	// OpenWebhook opens a configured webhook destination by name.
	OpenWebhook WebhookOpener
	// ExportConcurrency is how many exports one process works at once.
	ExportConcurrency int
	// ExportTiming bounds export attempts (default DefaultExportTiming).
	ExportTiming ExportTiming
	// ReaperInterval is how often stalled exports are looked for. Up to
	// 4 s, the reaper needs no River leader between runs (see
	// ExportReaperWorker).
	ReaperInterval time.Duration
	// RetentionInterval is how often retention purges are created.
	RetentionInterval time.Duration
	// SummaryInterval is how often new events are rolled up into the
	// summary's daily counts.
	SummaryInterval time.Duration
	// ExportsRunningPerTenant is how many of one tenant's exports run at
	// once across all workers (zero: no limit).
	ExportsRunningPerTenant int
	// PurgeBatchBudget is the time budget of each statement of a purge
	// batch (zero: the pool's).
	PurgeBatchBudget time.Duration
	// LogKeys sign the integrity log's checkpoints; nil seals nothing
	// (cmd/worker always has keys).
	LogKeys *integrity.Keys
	// LogName is the integrity log's name (default config.DefaultLogName).
	LogName string
	// SealInterval is how often the integrity log is extended.
	SealInterval time.Duration
}

// reaperRestartInterval is how often River's leader inserts a reaper job,
// which finishes at once while the reaper's loop is alive.
const reaperRestartInterval = 30 * time.Second

// streamSchedulerInterval is how often River's leader starts the due
// streams: a batch starts at most this late.
const streamSchedulerInterval = 2 * time.Second

// NewClient returns a River client that works every audex job kind and
// schedules the periodic ones. Settings left at zero take their defaults
// from internal/config. River runs periodic jobs on its elected
// leader only, so several worker processes do not double them.
func NewClient(cfg Config) (*river.Client[pgx.Tx], error) {
	timing := cfg.ExportTiming
	if timing.Window <= 0 {
		timing.Window = DefaultExportTiming.Window
	}
	if timing.LeaseTTL <= 0 {
		timing.LeaseTTL = DefaultExportTiming.LeaseTTL
	}
	var sealer *LogSealer
	if cfg.LogKeys != nil {
		sealer = &LogSealer{Name: cmp.Or(cfg.LogName, config.DefaultLogName), Keys: cfg.LogKeys}
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &PartitionMaintenanceWorker{Pool: cfg.Pool})
	river.AddWorker(workers, &ExportWorker{Pool: cfg.Pool, Reads: cfg.Reads, Logger: cfg.Logger, OpenSink: cfg.OpenSink, Timing: timing, RunningPerTenant: cfg.ExportsRunningPerTenant, Sealer: sealer})
	reaperInterval := cfg.ReaperInterval
	if reaperInterval <= 0 {
		reaperInterval = time.Duration(config.DefaultExports.ReaperInterval)
	}
	// An attempt that cannot renew its lease stops a third of the TTL
	// before the lease runs out; the grace adds a fifth of it before
	// another attempt is started.
	river.AddWorker(workers, &ExportReaperWorker{Pool: cfg.Pool, Logger: cfg.Logger, Grace: timing.LeaseTTL / 5, Interval: reaperInterval})
	river.AddWorker(workers, &PurgeWorker{Pool: cfg.Pool, Logger: cfg.Logger, Window: timing.Window, BatchBudget: cfg.PurgeBatchBudget, Sealer: sealer})
	river.AddWorker(workers, &StreamWorker{Pool: cfg.Pool, Reads: cfg.Reads, Logger: cfg.Logger, OpenSink: cfg.OpenSink, OpenWebhook: cfg.OpenWebhook, Window: timing.Window, LeaseTTL: timing.LeaseTTL, Sealer: sealer})
	river.AddWorker(workers, &StreamSchedulerWorker{Pool: cfg.Pool, LeaseTTL: timing.LeaseTTL})
	river.AddWorker(workers, &RetentionWorker{Pool: cfg.Pool, Logger: cfg.Logger, Sealer: sealer})
	river.AddWorker(workers, &SummaryRollupWorker{Pool: cfg.Pool, Logger: cfg.Logger})
	retentionInterval := cfg.RetentionInterval
	if retentionInterval <= 0 {
		retentionInterval = config.DefaultRetentionInterval
	}
	summaryInterval := cfg.SummaryInterval
	if summaryInterval <= 0 {
		summaryInterval = config.DefaultSummaryInterval
	}
	// One job of a periodic kind queued or running at a time: a slow run
	// is not queued again behind itself.
	single := &river.InsertOpts{UniqueOpts: river.UniqueOpts{
		ByState: []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning, rivertype.JobStateScheduled, rivertype.JobStateRetryable},
	}}
	periodic := []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(24*time.Hour), func() (river.JobArgs, *river.InsertOpts) {
			return queue.PartitionMaintenanceArgs{}, nil
		}, &river.PeriodicJobOpts{RunOnStart: true}),
		// The reaper is a loop of its own (see ExportReaperWorker): this
		// starts it, or restarts it after its job died.
		river.NewPeriodicJob(river.PeriodicInterval(max(reaperInterval, reaperRestartInterval)), func() (river.JobArgs, *river.InsertOpts) {
			return queue.ExportReaperArgs{}, nil
		}, &river.PeriodicJobOpts{RunOnStart: true}),
		river.NewPeriodicJob(river.PeriodicInterval(streamSchedulerInterval), func() (river.JobArgs, *river.InsertOpts) {
			return queue.StreamSchedulerArgs{}, nil
		}, &river.PeriodicJobOpts{RunOnStart: true}),
		river.NewPeriodicJob(river.PeriodicInterval(retentionInterval), func() (river.JobArgs, *river.InsertOpts) {
			return queue.RetentionArgs{}, nil
		}, &river.PeriodicJobOpts{RunOnStart: true}),
		river.NewPeriodicJob(river.PeriodicInterval(summaryInterval), func() (river.JobArgs, *river.InsertOpts) {
			return queue.SummaryRollupArgs{}, single
		}, &river.PeriodicJobOpts{RunOnStart: true}),
	}
	if sealer != nil {
		sealInterval := cfg.SealInterval
		if sealInterval <= 0 {
			sealInterval = config.DefaultSealInterval
		}
		river.AddWorker(workers, &SealWorker{Pool: cfg.Pool, Logger: cfg.Logger, Sealer: sealer})
		periodic = append(periodic, river.NewPeriodicJob(river.PeriodicInterval(sealInterval), func() (river.JobArgs, *river.InsertOpts) {
			return queue.SealArgs{}, single
		}, &river.PeriodicJobOpts{RunOnStart: true}))
	}
	concurrency := cfg.ExportConcurrency
	if concurrency <= 0 {
		concurrency = config.DefaultExports.Concurrency
	}
	client, err := river.NewClient(riverpgxv5.New(cfg.Pool), &river.Config{
		Logger: queue.Quiet(cfg.Logger),
		Queues: map[string]river.QueueConfig{
			river.QueueDefault: {MaxWorkers: 2},
			queue.Exports:      {MaxWorkers: concurrency},
			queue.Reaper:       {MaxWorkers: 1},
			queue.Streams:      {MaxWorkers: concurrency},
		},
		Workers: workers,
		// An export attempt lasts at most Window + 3 LeaseTTL (its
		// Timeout); a job running longer than twice that belongs to a dead
		// worker. The reaper resumes such exports sooner, once their lease
		// ran out.
		JobTimeout:           timing.attemptTimeout(),
		RescueStuckJobsAfter: 2 * timing.attemptTimeout(),
		PeriodicJobs:         periodic,
	})
	if err != nil {
		return nil, fmt.Errorf("create river client: %w", err)
	}
	return client, nil
}

// eventReader returns where a job reads events committed before the
// call: a replica of reads that has replayed them (waiting for it if
// need be; logged to log), else pool, the primary.
func eventReader(ctx context.Context, reads *store.Reads, pool *pgxpool.Pool, log *slog.Logger) (store.DBTX, error) {
	if reads == nil {
		return pool, nil
	}
	db, src, err := reads.ReaderAfter(ctx)
	if err == nil && src.Replica != "" {
		log.Info("events_read_from_replica", slog.String("replica", src.Replica), slog.Duration("waited", src.Waited))
	}
	return db, err
}
