// Package jobs holds audex's River job kinds and their workers, and builds
// the River client that works them. Args carry ids only; state lives in
// audex's tables through internal/store. It must not import internal/api
// or cmd/*.
package jobs

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// Config is what the worker's River client needs.
type Config struct {
	Pool   *pgxpool.Pool
	Logger *slog.Logger
	// MaintenanceInterval is how often partitions are topped up.
	MaintenanceInterval time.Duration
}

// NewClient returns a River client that works every audex job kind and
// schedules the periodic ones. River runs periodic jobs on its elected
// leader only, so several worker processes do not double them.
func NewClient(cfg Config) (*river.Client[pgx.Tx], error) {
	workers := river.NewWorkers()
	river.AddWorker(workers, &PartitionMaintenanceWorker{Pool: cfg.Pool})
	interval := cfg.MaintenanceInterval
	if interval <= 0 {
		interval = 24 * time.Hour
	}
	client, err := river.NewClient(riverpgxv5.New(cfg.Pool), &river.Config{
		Logger:  cfg.Logger,
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 4}},
		Workers: workers,
		PeriodicJobs: []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(interval), func() (river.JobArgs, *river.InsertOpts) {
				return PartitionMaintenanceArgs{}, nil
			}, &river.PeriodicJobOpts{RunOnStart: true}),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("create river client: %w", err)
	}
	return client, nil
}
