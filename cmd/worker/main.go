// Command worker works audex's background jobs through River: export jobs
// (and the reaper that resumes those whose worker died), purges, the
// scheduled retention runs, the summary rollup and partition maintenance.
// It takes no arguments; with AUDEX_WORKER_METRICS_LISTEN it also serves
// GET /metrics.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/audex-dev/audex/internal/config"
	"github.com/audex-dev/audex/internal/integrity"
	"github.com/audex-dev/audex/internal/jobs"
	"github.com/audex-dev/audex/internal/metrics"
	"github.com/audex-dev/audex/internal/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// drainTimeout is how long a stopping worker lets running jobs finish
// before cancelling them (they resume elsewhere).
const drainTimeout = 30 * time.Second

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("worker takes no arguments, got %q", args[0])
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	// The worker's statements have the export page's budget unless they
	// set their own (purge batches, rollups, partition maintenance). The
	// pool has room for every job at once (an export holds up to two
	// connections: its barrier or page, and its lease's renewal) beside
	// River's own (its listener, fetches, election, the reaper's loop), so
	// that a renewal never waits behind the work it guards: pgx's default
	// of max(4, CPUs) could starve it.
	pool, err := store.Open(ctx, cfg.DatabaseURL, store.StatementTimeout(time.Duration(cfg.Limits.ExportPageTimeout)),
		store.MaxConns(workerPoolSize(cfg.Exports.Concurrency)))
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := store.CheckSchema(ctx, pool); err != nil {
		return err
	}
	// Read replicas, when configured, serve the event reads of exports
	// and stream batches, each once the replica has replayed past its
	// barrier.
	reads, err := store.OpenReads(ctx, pool, cfg.ReadDatabaseURLs, cfg.ReadMaxLag, logger,
		store.StatementTimeout(time.Duration(cfg.Limits.ExportPageTimeout)), store.MaxConns(workerPoolSize(cfg.Exports.Concurrency)))
	if err != nil {
		return err
	}
	defer reads.Close()
	checkCtx, stopChecks := context.WithCancel(context.WithoutCancel(ctx))
	defer stopChecks()
	go reads.Run(checkCtx)
	if getenv("AUDEX_CONFIG") == "" {
		// The built-in "local" destination works with no setup: make its
		// folder. Configured folders must exist (a missing one is an
		// operator's mistake that exports report).
		for _, d := range cfg.Destinations {
			if err := os.MkdirAll(d.Bucket, 0o750); err != nil {
				return fmt.Errorf("create the local export folder %s: %w", d.Bucket, err)
			}
		}
	}
	logKeys, err := integrity.LoadKeys(cfg.LogKey, cfg.LogKeyFile)
	if err != nil {
		return err
	}
	client, err := jobs.NewClient(jobs.Config{
		Pool:              pool,
		Reads:             reads,
		Logger:            logger,
		OpenSink:          sinkOpener(cfg.Destinations, getenv),
		OpenWebhook:       webhookOpener(cfg.Destinations, getenv),
		ExportConcurrency: cfg.Exports.Concurrency,
		ExportTiming:      jobs.ExportTiming{Window: time.Duration(cfg.Exports.AttemptWindow), LeaseTTL: time.Duration(cfg.Exports.LeaseTTL)},
		ReaperInterval:    time.Duration(cfg.Exports.ReaperInterval),
		RetentionInterval: cfg.RetentionInterval,
		SummaryInterval:   cfg.SummaryInterval,
		LogKeys:           logKeys,
		LogName:           cfg.LogName,
		SealInterval:      cfg.SealInterval,

		ExportsRunningPerTenant: cfg.Exports.RunningPerTenant,
		PurgeBatchBudget:        time.Duration(cfg.Limits.PurgeBatchTimeout),
	})
	if err != nil {
		return err
	}
	// Start gets a context that outlives the signal: cancelling Start's
	// context would cancel running jobs instead of letting them drain.
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start river: %w", err)
	}
	logger.Info("worker_started")
	if cfg.WorkerMetricsListen != "" {
		stopMetrics, err := serveMetrics(cfg.WorkerMetricsListen, pool, reads, logger)
		if err != nil {
			_ = client.Stop(context.WithoutCancel(ctx))
			return err
		}
		defer stopMetrics()
	}
	<-ctx.Done()
	logger.Info("worker_stopping")
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	defer cancel()
	if err := client.Stop(stopCtx); err != nil {
		logger.Warn("worker_drain_timeout", slog.Any("error", err))
		return client.StopAndCancel(context.WithoutCancel(ctx))
	}
	return nil
}

// serveMetrics serves the worker's Prometheus metrics at GET /metrics on
// addr until the returned function is called.
func serveMetrics(addr string, pool *pgxpool.Pool, reads *store.Reads, logger *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("AUDEX_WORKER_METRICS_LISTEN: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(pool, logger, reads))
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("worker_metrics_listening", slog.String("addr", ln.Addr().String()))
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, nil
}

// workerPoolSize is the worker's connections for exportConcurrency
// exports and as many streams: two per export, one per stream, two for
// purges and the rollup (the default queue's workers), one for the
// reaper and four for River itself.
func workerPoolSize(exportConcurrency int) int { return 3*exportConcurrency + 2 + 1 + 4 }
