package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/api"
	"github.com/audex-dev/audex/internal/store"
)

// Tenants that the benchmark writes. bigTenant holds cfg.events events.
const (
	bigTenant        = "bench_big"
	ingestTenant     = "bench_ingest_http"
	copyTenant       = "bench_copy_events"
	copyBothTenant   = "bench_copy_both"
	copyParallTenant = "bench_copy_parallel"
	fourIndexTenant  = "bench_copy_four_indexes"
)

// bench is one run of the benchmark.
type bench struct {
	cfg    config
	pool   *pgxpool.Pool
	logger *slog.Logger
	out    io.Writer // the report
	stderr io.Writer // the server's log

	baseURL string
	client  *http.Client
}

func (b *bench) run(ctx context.Context) error {
	facts, err := b.machineFacts(ctx)
	if err != nil {
		return err
	}
	b.printf("# audex benchmark\n\n")
	for _, f := range facts {
		b.printf("- %s\n", f)
	}

	// The read key exists before the load so that its audit.key_created
	// event is simply the tenant's oldest.
	readKey, err := b.newKey(ctx, bigTenant, audex.ScopeRead)
	if err != nil {
		return err
	}
	ld, err := b.load(ctx)
	if err != nil {
		return err
	}
	stop, err := b.startServer(ctx)
	if err != nil {
		return err
	}
	defer stop()
	// Lists right after the load, before statistics; then the statistics.
	fresh, err := b.list(ctx, readKey, ld.stats, true)
	if err != nil {
		return err
	}
	if ld.vacuumTime, err = b.vacuumAnalyze(ctx); err != nil {
		return err
	}
	b.printLoad(ld)
	b.printList(fresh, true)

	lists, err := b.list(ctx, readKey, ld.stats, false)
	if err != nil {
		return err
	}
	b.printList(lists, false)
	// Before ingest, which would push the tenant's pages out of the cache.
	if err := b.printPlans(ctx, lists); err != nil {
		return err
	}

	res := results{lists: lists, freshLists: fresh}
	if res.ingest, err = b.ingest(ctx); err != nil {
		return err
	}
	b.printIngest(res.ingest)
	if res.missedLists, err = b.listMissed(ctx, ld.stats); err != nil {
		return err
	}
	b.printMissedLists(res.missedLists, res.ingest.events*b.cfg.ingestRounds)

	if len(b.cfg.phases) == 0 {
		b.printTargets(res)
		return nil
	}
	// The 5,000,000-event tenant is loaded before the services start, as
	// the big one is, so that the first seal below makes every one of its
	// events a leaf (loaded beside a running worker, most of its events
	// came in behind the worker's seals and never became leaves).
	var big5M *tenant5M
	if b.cfg.export5M && (b.cfg.runs("exports") || b.cfg.runs("streams")) {
		if big5M, err = b.loadTenant5M(ctx); err != nil {
			return err
		}
	}
	// The ingest rounds added more rows than the load: the statistics that
	// autovacuum would soon gather, gathered now, so that it does not start
	// in the middle of a later measurement and the plans see the rows.
	vacuumed, err := b.vacuumAnalyze(ctx)
	if err != nil {
		return err
	}
	// Whatever the phases, the first rollup runs here: the worker would
	// otherwise run it (a minute of CPU per few million events) in the
	// middle of the first measurements.
	rolled, err := b.rollUpSummaries(ctx)
	if err != nil {
		return err
	}
	// The later phases go through the real api and worker commands.
	svc, err := b.startServices(ctx)
	defer svc.stop(ctx, b)
	if err != nil {
		return err
	}
	b.printf("\n## The api and worker processes\n\n")
	b.printf("The phases below go through the api and worker commands of this checkout, built with `go build` (%.0f s) and run as processes of their own on the same database, configured with a local folder destination", svc.buildTime.Seconds())
	if svc.s3Bucket != "" {
		b.printf(" and an S3 one (a fresh bucket on MinIO)")
	}
	b.printf("; the api listens on %s. Before them, `VACUUM (ANALYZE) events, event_ids` (%.1f s) gathers the statistics that autovacuum would after the ingest rounds, so that plans see those rows and no autovacuum starts in the middle of a measurement, and the integrity log's first seal of every event so far runs in the benchmark's process (`store.SealAllLogs`, 500,000 leaves a transaction, as the worker's seal job, then `ANALYZE log_leaves`, as autovacuum would after so many new rows: %s leaves in %.1f s, %s leaves/s), so that the worker's does not run in the middle of one.\n",
		strings.TrimPrefix(svc.apiURL, "http://"), vacuumed.Seconds(), thousands(svc.sealed), svc.sealTime.Seconds(), thousands(int64(float64(svc.sealed)/max(svc.sealTime.Seconds(), 0.001))))
	// Its audit event occurs after the loaded month, which the downloads
	// and exports read.
	exportKey, err := b.newKey(ctx, bigTenant, audex.ScopeExport)
	if err != nil {
		return err
	}
	if b.cfg.runs("summary") {
		summary, err := b.summary(ctx, svc, readKey, rolled)
		if err != nil {
			return err
		}
		b.printSummary(summary)
		res.summary = &summary
	}
	win, err := b.newWindow(ctx, bigTenant, ld.stats.end.AddDate(0, 0, -loadDays), ld.stats.end)
	if err != nil {
		return err
	}
	if b.cfg.runs("console") {
		c, err := b.console(ctx, svc, readKey)
		if err != nil {
			return err
		}
		b.printConsole(c)
		res.console = &c
	}
	if b.cfg.runs("download") {
		download, err := b.download(ctx, svc, exportKey, win)
		if err != nil {
			return err
		}
		b.printDownload(download)
		res.download = &download
	}
	if b.cfg.runs("exports") {
		exports, err := b.exports(ctx, svc, exportKey, win, big5M)
		if err != nil {
			return err
		}
		b.printExports(exports)
		res.exports = &exports
	}
	if b.cfg.runs("workers") {
		runs, err := b.workersPhase(ctx, svc, exportKey, win)
		if err != nil {
			return err
		}
		b.printWorkers(runs)
	}
	if b.cfg.runs("replicas") {
		replicas, err := b.replicas(ctx, svc, readKey, exportKey, win)
		if err != nil {
			return err
		}
		b.printReplicas(replicas)
	}
	if b.cfg.runs("streams") {
		streams, err := b.streams(ctx, svc, exportKey, win, big5M)
		if err != nil {
			return err
		}
		b.printStreams(streams)
		res.streams = &streams
	}
	if b.cfg.runs("log") {
		log, err := b.integrityLog(ctx, svc, readKey, exportKey, win)
		if err != nil {
			return err
		}
		b.printLog(log)
		res.log = &log
	}
	if b.cfg.runs("purge") {
		purge, err := b.purge(ctx, svc)
		if err != nil {
			return err
		}
		b.printPurge(purge)
		res.purge = &purge
	}

	b.printTargets(res)
	return nil
}

// results are the measurements that the targets are checked against.
type results struct {
	lists      []listResult
	freshLists []listResult // before VACUUM (ANALYZE)
	// missedLists are of a tenant ingested after the statistics.
	missedLists []listResult
	ingest      ingestResult
	summary     *summaryResult
	console     *consoleResult
	download    *downloadResult
	exports     *exportResult
	streams     *streamResult
	log         *logResult
	purge       *purgeResult
}

func (b *bench) printf(format string, args ...any) {
	fmt.Fprintf(b.out, format, args...)
}

// checkBenchDatabase refuses a database that does not look like a
// benchmark's own, or that already holds benchmark data: the load would
// collide with it and the figures would not be comparable.
func checkBenchDatabase(ctx context.Context, pool *pgxpool.Pool) error {
	var name string
	if err := pool.QueryRow(ctx, `SELECT current_database()`).Scan(&name); err != nil {
		return fmt.Errorf("check database: %w", err)
	}
	if !strings.Contains(name, "bench") {
		return fmt.Errorf("database %q: bench writes millions of rows and only into a database whose name contains \"bench\" (make bench creates audex_bench)", name)
	}
	var migrated, exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('event_ids') IS NOT NULL`).Scan(&migrated); err != nil {
		return fmt.Errorf("check database: %w", err)
	}
	if !migrated {
		return nil
	}
	err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM event_ids WHERE tenant_id LIKE 'bench\_%')`).Scan(&exists)
	if err != nil {
		return fmt.Errorf("check database: %w", err)
	}
	if exists {
		return fmt.Errorf("database %q already holds benchmark data; start from a fresh one (make bench does)", name)
	}
	return nil
}

// newKey creates an API key for tenant and returns the plain key.
func (b *bench) newKey(ctx context.Context, tenant string, scopes ...string) (string, error) {
	plain, hash := audex.NewPlainKey()
	if _, err := store.CreateAPIKey(ctx, b.pool, tenant, "bench", scopes, hash); err != nil {
		return "", err
	}
	return plain, nil
}

// startServer serves the real API handler on a loopback port and returns
// the function that shuts it down.
func (b *bench) startServer(ctx context.Context) (stop func(), err error) {
	secret, err := store.CursorSecret(ctx, b.pool)
	if err != nil {
		return nil, err
	}
	// Only warnings and errors: a log line per request would be measured too.
	logger := slog.New(slog.NewTextHandler(b.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := api.NewHTTPServer(api.New(api.Config{Pool: b.pool, Logger: logger, CursorSecret: secret}), logger)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on 127.0.0.1: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	b.baseURL = "http://" + ln.Addr().String()
	b.client = &http.Client{
		Timeout:   2 * time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
	}
	return func() {
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			b.logger.Warn("server_shutdown_failed", slog.Any("error", err))
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			b.logger.Warn("server_failed", slog.Any("error", err))
		}
	}, nil
}

// machineFacts describes where the figures come from.
func (b *bench) machineFacts(ctx context.Context) ([]string, error) {
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimLeft(name, " \t:"))
				break
			}
		}
	}
	mem := "unknown"
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(data), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	kernel := runtime.GOOS
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel += " " + strings.TrimSpace(string(data))
	}
	var version string
	if err := b.pool.QueryRow(ctx, `SHOW server_version`).Scan(&version); err != nil {
		return nil, fmt.Errorf("read postgres version: %w", err)
	}
	names := []string{"shared_buffers", "effective_cache_size", "work_mem", "max_wal_size",
		"synchronous_commit", "fsync", "random_page_cost", "max_parallel_workers_per_gather", "jit", "autovacuum"}
	rows, err := b.pool.Query(ctx, `SELECT name, current_setting(name) FROM unnest($1::text[]) AS name`, names)
	if err != nil {
		return nil, fmt.Errorf("read postgres settings: %w", err)
	}
	var settings []string
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read postgres settings: %w", err)
		}
		settings = append(settings, name+"="+value)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read postgres settings: %w", err)
	}
	c := b.cfg
	return []string{
		"date: " + time.Now().UTC().Format(time.RFC3339),
		fmt.Sprintf("machine: %d CPUs (nproc) %s, %s RAM, %s; load average %s at the start", runtime.NumCPU(), cpu, mem, kernel, loadAverage()),
		fmt.Sprintf("PostgreSQL %s on the same machine (%s)", version, strings.Join(settings, ", ")),
		"Go " + runtime.Version(),
		fmt.Sprintf("settings: BENCH_EVENTS=%d BENCH_INGEST_EVENTS=%d BENCH_INGEST_CLIENTS=%d BENCH_INGEST_BATCH=%d BENCH_INGEST_ROUNDS=%d BENCH_LIST_REQUESTS=%d BENCH_SEED=%d",
			c.events, c.ingestEvents, c.ingestClients, c.ingestBatch, c.ingestRounds, c.listRequests, c.seed),
		fmt.Sprintf("settings of the later phases: BENCH_SUMMARY_REQUESTS=%d BENCH_EXPORT_JOBS=%d BENCH_EXPORT_5M=%d BENCH_PURGE_EVENTS=%d BENCH_PURGE_INGEST_RATE=%d BENCH_STREAM_SECONDS=%d; S3: %s",
			c.summaryRequests, c.exportJobs, boolInt(c.export5M), c.purgeEvents, c.purgeIngestRate, c.streamSeconds, s3Fact(c)),
		"code: " + codeVersion(ctx),
	}, nil
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

func s3Fact(c config) string {
	if c.s3Endpoint == "" {
		return "none (AUDEX_TEST_S3_ENDPOINT unset; the S3 rows are skipped)"
	}
	return "MinIO at " + c.s3Endpoint + " (scripts/emulators.sh), same machine"
}

// codeVersion names the commit that the api and worker are built from,
// and whether the checkout has uncommitted changes (read-only git calls).
func codeVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown (not a git checkout)"
	}
	v := "commit " + strings.TrimSpace(string(out))
	if status, err := exec.CommandContext(ctx, "git", "status", "--porcelain").Output(); err == nil && len(status) > 0 {
		v += fmt.Sprintf(" with uncommitted changes in %d files", strings.Count(string(status), "\n"))
	}
	return v
}

// loadAverage is the 1, 5 and 15 minute load averages of the machine: a
// busy machine makes slower figures.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	if f := strings.Fields(string(data)); len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// waitQuiet waits, for at most a minute, until no autovacuum worker runs
// in the database, so that one does not land in the middle of a
// measurement. It also asks for a checkpoint (superusers only; best
// effort) so that the previous phase's writes are flushed first.
func (b *bench) waitQuiet(ctx context.Context) {
	if _, err := b.pool.Exec(ctx, `CHECKPOINT`); err != nil {
		b.logger.Info("checkpoint_skipped", slog.Any("error", err))
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var n int
		err := b.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE backend_type = 'autovacuum worker' AND datname = current_database()`).Scan(&n)
		if err != nil || n == 0 {
			return
		}
		b.logger.Info("waiting_for_autovacuum", slog.Int("workers", n))
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}

// timeCalls makes warmup untimed calls of call, then n timed ones, one
// at a time, and returns the n calls' times; i counts all calls from 0.
// It stops at the first error.
func timeCalls(warmup, n int, call func(i int) error) ([]time.Duration, error) {
	times := make([]time.Duration, 0, n)
	for i := range warmup + n {
		start := time.Now()
		if err := call(i); err != nil {
			return times, err
		}
		if i >= warmup {
			times = append(times, time.Since(start))
		}
	}
	return times, nil
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 1) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// ms formats d in milliseconds.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))
}

// thousands formats n with comma separators.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
