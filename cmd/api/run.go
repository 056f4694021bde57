package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/audex-dev/audex/internal/api"
	"github.com/audex-dev/audex/internal/config"
	"github.com/audex-dev/audex/internal/integrity"
	"github.com/audex-dev/audex/internal/queue"
	"github.com/audex-dev/audex/internal/store"
)

const usage = `usage:
  api [serve]                 serve the HTTP API (AUDEX_LISTEN, default 127.0.0.1:8080)
  api migrate                 bring the database (audex's and River's tables) up to date,
                              and create the log signing key file when missing
  api log-key                 print the integrity log's verifier keys, oldest first
  api log-key rotate          add a new signing key to the key file (the older keys stay published)
  api keys create --tenant T --scopes s1,s2 [--name N]
                              create a key; prints only the plain key
  api keys list [--tenant T]  list keys (never the key itself)
  api keys revoke KEY_OR_ID   revoke a key by id or plain key
  api keys check KEY          exit 0 if KEY is an active key`

// run is the whole command, with its environment passed in so that tests
// can run it in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, cfg, logger)
	case "migrate":
		return migrate(ctx, cfg, stdout)
	case "keys":
		return keys(ctx, cfg, args, stdout)
	case "log-key":
		return logKey(cfg, args, stdout)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", cmd, usage)
}

func migrate(ctx context.Context, cfg config.Config, stdout io.Writer) error {
	created, err := store.CreateDatabaseIfMissing(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintln(stdout, "created the database")
	}
	pool, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := store.Migrate(ctx, pool); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "database is up to date")
	if cfg.LogKey == "" {
		created, err := integrity.EnsureKeyFile(cfg.LogKeyFile, cfg.LogName)
		if err != nil {
			return err
		}
		if created {
			fmt.Fprintf(stdout, "created the log signing key file %s (keep it secret; `api log-key` prints its public key)\n", cfg.LogKeyFile)
		}
	}
	return nil
}

// logKey prints the integrity log's verifier keys, or rotates its
// signing key.
func logKey(cfg config.Config, args []string, stdout io.Writer) error {
	switch {
	case len(args) == 1 && args[0] == "rotate":
		if cfg.LogKey != "" {
			return errors.New("AUDEX_LOG_KEY holds the signing keys: add a new key as its last line instead")
		}
		if err := integrity.AddKey(cfg.LogKeyFile, cfg.LogName); err != nil {
			return err
		}
	case len(args) > 0:
		return fmt.Errorf("log-key takes no arguments or rotate\n%s", usage)
	}
	keys, err := integrity.LoadKeys(cfg.LogKey, cfg.LogKeyFile)
	if err != nil {
		return err
	}
	for _, k := range keys.VerifierKeys() {
		fmt.Fprintln(stdout, k)
	}
	return nil
}

// openMigrated opens the database and refuses an out-of-date schema.
func openMigrated(ctx context.Context, cfg config.Config, opts ...store.OpenOption) (*pgxpool.Pool, error) {
	pool, err := store.Open(ctx, cfg.DatabaseURL, opts...)
	if err != nil {
		return nil, err
	}
	if err := store.CheckSchema(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

func serve(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	limits := cfg.Limits
	pool, err := openMigrated(ctx, cfg, store.ServingRequests(),
		store.MaxConns(limits.PoolSize), store.StatementTimeout(time.Duration(limits.ListTimeout)))
	if err != nil {
		return err
	}
	defer pool.Close()
	// Downloads read their pages on connections of their own, so that
	// they never take those of interactive requests.
	downloadPool, err := store.Open(ctx, cfg.DatabaseURL, store.ServingRequests(),
		store.MaxConns(limits.DownloadPoolSize), store.StatementTimeout(time.Duration(limits.DownloadPageTimeout)))
	if err != nil {
		return err
	}
	defer downloadPool.Close()
	// Read replicas, when configured, serve the reads of events: lists and
	// the like on one set of pools, downloads on another.
	reads, err := store.OpenReads(ctx, pool, cfg.ReadDatabaseURLs, cfg.ReadMaxLag, logger, store.ServingRequests(),
		store.MaxConns(limits.PoolSize), store.StatementTimeout(time.Duration(limits.ListTimeout)))
	if err != nil {
		return err
	}
	defer reads.Close()
	downloadReads, err := store.OpenReads(ctx, downloadPool, cfg.ReadDatabaseURLs, cfg.ReadMaxLag, logger, store.ServingRequests(),
		store.MaxConns(limits.DownloadPoolSize), store.StatementTimeout(time.Duration(limits.DownloadPageTimeout)))
	if err != nil {
		return err
	}
	defer downloadReads.Close()
	go reads.Run(ctx)
	go downloadReads.Run(ctx)
	secret := []byte(cfg.CursorSecret)
	if len(secret) == 0 {
		if secret, err = store.CursorSecret(ctx, pool); err != nil {
			return err
		}
	}
	logKeys, err := integrity.LoadKeys(cfg.LogKey, cfg.LogKeyFile)
	if err != nil {
		return err
	}
	riverClient, err := queue.NewInsertClient(pool, logger)
	if err != nil {
		return err
	}
	riverUI, err := api.NewRiverUI(ctx, riverClient, logger)
	if err != nil {
		return err
	}
	handler := api.New(api.Config{
		Pool:              pool,
		DownloadPool:      downloadPool,
		Reads:             reads,
		DownloadReads:     downloadReads,
		Logger:            logger,
		CursorSecret:      secret,
		River:             riverClient,
		Destinations:      cfg.Destinations,
		StreamMinInterval: cfg.StreamMinInterval,
		LogVerifierKeys:   logKeys.VerifierKeys(),
		Exports: api.ExportLimits{PartMaxRecords: cfg.Exports.PartMaxRecords, PartMaxBytes: cfg.Exports.PartMaxBytes,
			MinPartMaxRecords: cfg.Exports.MinPartMaxRecords, MaxActivePerTenant: cfg.Exports.MaxActivePerTenant},
		Limits: api.Limits{TenantRequests: limits.TenantRequests, TenantSummaries: limits.TenantSummaries, Requests: limits.Requests, TenantDownloads: limits.TenantDownloads, Downloads: limits.Downloads,
			DownloadMinRate: limits.DownloadMinRate, SummaryBudget: time.Duration(limits.SummaryTimeout)},
		RateLimit: api.RateLimit{PerSecond: cfg.RateLimit.PerSecond, Burst: cfg.RateLimit.Burst},
		RiverUI:   riverUI,
	})
	srv := api.NewHTTPServer(handler, logger)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	logger.Info("api_listening", slog.String("addr", ln.Addr().String()))
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	logger.Info("api_shutting_down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}
