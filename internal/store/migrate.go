package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/audex-dev/audex/migrations"
)

// ErrSchemaOutdated means the database lacks migrations that this binary
// needs. Its message tells the operator what to run.
var ErrSchemaOutdated = errors.New("database schema is out of date: run `api migrate` (make run does it for you)")

// Migrate brings the database fully up to date: audex's tables (goose
// migrations from the migrations package), River's tables (rivermigrate),
// the cursor-signing secret and the event partitions around now. It is
// idempotent and safe to run from several processes at once.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	// One migrator at a time: a session advisory lock on a connection of its
	// own, released when that connection goes back to the pool.
	lockConn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", translate(err))
	}
	defer lockConn.Release()
	if _, err := lockConn.Exec(ctx, `SELECT pg_advisory_lock(hashtext('audex_migrate'))`); err != nil {
		return fmt.Errorf("migrate: take lock: %w", translate(err))
	}
	defer lockConn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext('audex_migrate'))`) //nolint:errcheck // released with the session anyway

	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	provider, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS)
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("apply audex migrations: %w", err)
	}
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return fmt.Errorf("load river migrations: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("apply river migrations: %w", err)
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	if _, err := pool.Exec(ctx, `INSERT INTO settings (name, value) VALUES ('cursor_secret', $1) ON CONFLICT DO NOTHING`, secret); err != nil {
		return fmt.Errorf("store cursor secret: %w", translate(err))
	}
	if err := EnsureEventPartitions(ctx, pool, time.Now()); err != nil {
		return err
	}
	return nil
}

// CheckSchema returns ErrSchemaOutdated unless both audex's and River's
// migrations are all applied.
func CheckSchema(ctx context.Context, pool *pgxpool.Pool) error {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	provider, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS)
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	pending, err := provider.HasPending(ctx)
	if err != nil {
		return fmt.Errorf("%w (%v)", ErrSchemaOutdated, err)
	}
	if pending {
		return ErrSchemaOutdated
	}
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return fmt.Errorf("load river migrations: %w", err)
	}
	res, err := migrator.Validate(ctx, nil)
	if err != nil {
		return fmt.Errorf("check river migrations: %w", err)
	}
	if !res.OK {
		return fmt.Errorf("%w: river: %v", ErrSchemaOutdated, res.Messages)
	}
	return nil
}

// CursorSecret returns the installation's cursor-signing secret, written
// by Migrate.
func CursorSecret(ctx context.Context, db DBTX) ([]byte, error) {
	var secret []byte
	err := db.QueryRow(ctx, `SELECT value FROM settings WHERE name = 'cursor_secret'`).Scan(&secret)
	if err != nil {
		return nil, fmt.Errorf("read cursor secret: %w", translate(err))
	}
	return secret, nil
}

// EnsureEventPartitions creates the monthly partitions of events from the
// month before now to three months after it, where missing. Idempotent.
func EnsureEventPartitions(ctx context.Context, db DBTX, now time.Time) error {
	start := time.Date(now.UTC().Year(), now.UTC().Month(), 1, 0, 0, 0, 0, time.UTC)
	for i := -1; i <= 3; i++ {
		month := start.AddDate(0, i, 0)
		// No budget: creating a partition moves its rows out of the
		// default partition, which must not be cut short half-way.
		err := withBudget(ctx, db, 0, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `SELECT audex_ensure_event_partition($1)`, month)
			return err
		})
		if err != nil {
			return fmt.Errorf("ensure partition %s: %w", month.Format("2006-01"), translate(err))
		}
	}
	return nil
}

// CreateDatabaseIfMissing creates the database that databaseURL names when
// the server answers that it does not exist, connecting to the server's
// "postgres" database to do so. It reports whether it created it.
func CreateDatabaseIfMissing(ctx context.Context, databaseURL string) (bool, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return false, errors.New("parse database url: malformed DATABASE_URL")
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		return false, conn.Close(ctx)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" { // invalid_catalog_name
		return false, fmt.Errorf("connect to database %s:%d/%s: %w", cfg.Host, cfg.Port, cfg.Database, redactedConnectError(err))
	}
	name := cfg.Database
	cfg.Database = "postgres"
	conn, err = pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("connect to database %s:%d/postgres: %w", cfg.Host, cfg.Port, redactedConnectError(err))
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // created meanwhile
			return false, nil
		}
		return false, fmt.Errorf("create database %s: %w", name, err)
	}
	return true, nil
}
