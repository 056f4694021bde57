// Command bench measures audex on synthetic data and prints the figures
// of BENCHMARKS.md as markdown on stdout (progress goes to stderr). `make
// bench` runs it against a fresh database; see scripts/bench.sh. `bench
// load` (`make load`) runs the load test of RELIABILITY.md instead.
//
// It loads a big tenant and nine smaller ones with COPY, then measures,
// through the real HTTP handler on a loopback listener, the first page of
// list for many filter shapes, and ingest against a raw COPY baseline.
// Then it builds and starts the real api and worker commands as processes
// of their own (so that their memory can be read from /proc) and measures
// through them the summary, streaming downloads and export jobs against
// COPY ... TO STDOUT of the same rows, and a purge with ingest alongside.
//
// The SQL here (COPY, VACUUM, EXPLAIN, counts) is measurement and setup
// only, so it stays out of internal/store; the statements being measured
// are the store's own, captured as they run (see recordingDB). It writes
// only to a database whose name contains "bench".
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/audex-dev/audex/internal/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// defaultDatabaseURL is the database that `make bench` creates.
const defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/audex_bench?sslmode=disable"

// config is the benchmark's settings, from BENCH_* variables.
type config struct {
	databaseURL    string
	events         int // events of the big tenant; the small ones share another tenth
	ingestEvents   int
	ingestClients  int
	ingestBatch    int
	ingestRounds   int
	listRequests   int
	seed           uint64
	timeout        time.Duration
	listTargetP99  time.Duration
	ingestTargetRx float64

	summaryRequests  int
	exportJobs       int  // small exports timed from POST to running
	export5M         bool // also load a 5,000,000-event tenant and export it once
	purgeEvents      int
	purgeIngestRate  int    // events/s offered by the ingest clients around the purge; 0: as fast as they go
	streamSeconds    int    // how long the streams phase ingests beside a stream (BENCH_STREAM_SECONDS)
	chromium         string // headless Chromium for the console phase (BENCH_CHROMIUM)
	s3Endpoint       string
	s3Region         string
	s3AccessKeyIDEnv string // names of the variables that hold MinIO's keys (the worker reads them)
	s3SecretKeyEnv   string
	s3AccessKeyID    string // their values, to create the bucket
	s3SecretKey      string
	phases           []string // the phases after list and ingest that run (BENCH_PHASES)
}

// laterPhases are the phases that run after list and ingest, in order.
var laterPhases = []string{"summary", "console", "download", "exports", "workers", "replicas", "streams", "log", "purge"}

// runs reports whether the phase named is to run.
func (c config) runs(phase string) bool {
	return slices.Contains(c.phases, phase)
}

func loadConfig(getenv func(string) string) (config, error) {
	cfg := config{
		databaseURL:    defaultDatabaseURL,
		listTargetP99:  20 * time.Millisecond,
		ingestTargetRx: 0.6,
	}
	if v := getenv("DATABASE_URL"); v != "" {
		cfg.databaseURL = v
	}
	var seed, timeoutMinutes, export5M int
	err := readInts(getenv, []intSetting{
		{"BENCH_EVENTS", &cfg.events, 1_000_000, 10_000, 0},
		{"BENCH_INGEST_EVENTS", &cfg.ingestEvents, 200_000, 1_000, 0},
		{"BENCH_INGEST_CLIENTS", &cfg.ingestClients, 4, 1, 0},
		{"BENCH_INGEST_BATCH", &cfg.ingestBatch, 500, 1, 0},
		{"BENCH_INGEST_ROUNDS", &cfg.ingestRounds, 3, 1, 0},
		{"BENCH_LIST_REQUESTS", &cfg.listRequests, 200, 10, 0},
		{"BENCH_SEED", &seed, 1, 0, 0},
		{"BENCH_TIMEOUT_MINUTES", &timeoutMinutes, 60, 1, 0},
		{"BENCH_SUMMARY_REQUESTS", &cfg.summaryRequests, 20, 1, 0},
		{"BENCH_EXPORT_JOBS", &cfg.exportJobs, 20, 1, 0},
		{"BENCH_EXPORT_5M", &export5M, 0, 0, 0},
		{"BENCH_PURGE_EVENTS", &cfg.purgeEvents, 1_000_000, 10_000, 0},
		{"BENCH_PURGE_INGEST_RATE", &cfg.purgeIngestRate, 10_000, 0, 0},
		{"BENCH_STREAM_SECONDS", &cfg.streamSeconds, 60, 5, 0},
	})
	if err != nil {
		return cfg, err
	}
	cfg.seed, cfg.timeout = uint64(seed), time.Duration(timeoutMinutes)*time.Minute
	cfg.export5M = export5M != 0
	// The S3 rows run against the server that scripts/emulators.sh
	// started (bench.sh starts it); without it they are skipped.
	cfg.s3Endpoint, cfg.s3Region = getenv("AUDEX_TEST_S3_ENDPOINT"), getenv("AUDEX_TEST_S3_REGION")
	cfg.chromium = getenv("BENCH_CHROMIUM")
	cfg.s3AccessKeyIDEnv, cfg.s3SecretKeyEnv = "AUDEX_TEST_S3_ACCESS_KEY_ID", "AUDEX_TEST_S3_SECRET_ACCESS_KEY"
	cfg.s3AccessKeyID, cfg.s3SecretKey = getenv(cfg.s3AccessKeyIDEnv), getenv(cfg.s3SecretKeyEnv)
	cfg.phases = laterPhases
	if v := getenv("BENCH_PHASES"); v != "" {
		cfg.phases = nil
		for p := range strings.SplitSeq(v, ",") {
			switch {
			case p == "none":
			case slices.Contains(laterPhases, p):
				cfg.phases = append(cfg.phases, p)
			default:
				return cfg, fmt.Errorf("BENCH_PHASES: %q is not one of %s or none", p, strings.Join(laterPhases, ", "))
			}
		}
	}
	// The list target is 20 ms at 1,000,000 events and 50 ms at
	// 10,000,000.
	if cfg.events >= 10_000_000 {
		cfg.listTargetP99 = 50 * time.Millisecond
	}
	if cfg.s3Region == "" {
		cfg.s3Region = "us-east-1"
	}
	if cfg.ingestBatch > 1000 {
		return cfg, errors.New("BENCH_INGEST_BATCH: the API takes at most 1000 events per request")
	}
	return cfg, nil
}

// intSetting is an integer setting of the environment: def when unset,
// else at least min and, when max is not 0, at most max. Underscores
// group digits (1_000_000).
type intSetting struct {
	name          string
	dst           *int
	def, min, max int
}

// readInts sets each setting's dst from getenv.
func readInts(getenv func(string) string, settings []intSetting) error {
	for _, v := range settings {
		*v.dst = v.def
		raw := strings.ReplaceAll(getenv(v.name), "_", "")
		if raw == "" {
			continue
		}
		n, err := strconv.Atoi(raw)
		switch {
		case v.max == 0 && (err != nil || n < v.min):
			return fmt.Errorf("%s: %q is not an integer of at least %d", v.name, getenv(v.name), v.min)
		case v.max != 0 && (err != nil || n < v.min || n > v.max):
			return fmt.Errorf("%s: %q is not an integer from %d to %d", v.name, getenv(v.name), v.min, v.max)
		}
		*v.dst = n
	}
	return nil
}

// run is the whole command, with its environment passed in.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	mode := ""
	if len(args) == 1 && (args[0] == "load" || args[0] == "hostile") {
		mode = args[0]
	} else if len(args) > 0 {
		return fmt.Errorf("bench takes no arguments but load or hostile (settings are BENCH_* and LOAD_* variables, see BENCHMARKS.md and RELIABILITY.md), got %q", args)
	}
	loadMode := mode != ""
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	var load loadSettings
	if loadMode {
		if load, err = loadLoadSettings(getenv); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	pool, err := store.Open(ctx, cfg.databaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := checkBenchDatabase(ctx, pool); err != nil {
		return err
	}
	logger.Info("migrating")
	if err := store.Migrate(ctx, pool); err != nil {
		return err
	}
	b := &bench{cfg: cfg, pool: pool, logger: logger, out: stdout, stderr: stderr}
	switch mode {
	case "load":
		return b.loadTest(ctx, load)
	case "hostile":
		return b.hostileTest(ctx, load)
	}
	return b.run(ctx)
}
