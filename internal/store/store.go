// Package store holds every SQL statement of audex: events, API keys,
// settings, partitions and migrations, on PostgreSQL through pgx. It knows
// no HTTP, no sinks and no River workers; callers pass a DBTX (a pool or a
// transaction) so that several calls and a River InsertTx can share one
// transaction.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DBTX is what the store needs of a pool or a transaction.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Errors that store functions return, wrapped; test with errors.Is.
var (
	// ErrNotFound means the row does not exist (in the caller's tenant).
	ErrNotFound = errors.New("not found")
	// ErrConflict means a unique constraint or a state rule refused the change.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable means the database could not be reached or is shutting
	// down; the same call may succeed later.
	ErrUnavailable = errors.New("database unavailable")
	// ErrInvalid means the database refused a value as malformed (a data
	// exception) that validation upstream should have caught.
	ErrInvalid = errors.New("invalid value")
)

// translate maps pgx errors to the store's sentinel errors, once, at the
// edge. Other errors pass through unchanged.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "57014" && strings.Contains(pgErr.Message, "statement timeout"):
			return fmt.Errorf("%w: %s", ErrBudget, pgErr.Message)
		case pgErr.Code == "23505":
			return fmt.Errorf("%w: %s", ErrConflict, pgErr.ConstraintName)
		case pgErr.Code[:2] == "22":
			return fmt.Errorf("%w: %s", ErrInvalid, pgErr.Message)
		case pgErr.Code[:2] == "08", pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03":
			return fmt.Errorf("%w: %s", ErrUnavailable, pgErr.Message)
		}
		return err
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) || pgconn.SafeToRetry(err) {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}

// Open connects a pool to databaseURL and checks that the database answers.
// Plans are made for each query's actual values (plan_cache_mode), because
// tenants differ in size by orders of magnitude and a generic plan that
// suits one tenant can scan the whole of another (ListEvents, whose
// statements are written for the plan it chose, keeps generic plans).
func Open(ctx context.Context, databaseURL string, opts ...OpenOption) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx's parse errors can quote the URL, password included.
		return nil, errors.New("parse database url: malformed DATABASE_URL")
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolConfig(cfg, opts))
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s:%d/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, redactedConnectError(err))
	}
	return pool, nil
}

// poolConfig is cfg with audex's session settings and then opts.
func poolConfig(cfg *pgxpool.Config, opts []OpenOption) *pgxpool.Config {
	cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	for _, opt := range opts {
		opt(cfg)
	}
	return cfg
}

// OpenOption changes how Open connects.
type OpenOption func(*pgxpool.Config)

// apiApplicationName names the API's database sessions (application_name),
// so that background work can tell them apart (OtherSessionsActive).
const apiApplicationName = "audex-api"

// ServingRequests marks the pool's sessions as the API's, serving clients:
// a purge gives way to them.
func ServingRequests() OpenOption {
	return func(cfg *pgxpool.Config) {
		cfg.ConnConfig.RuntimeParams["application_name"] = apiApplicationName
	}
}

// redactedConnectError keeps the cause of a failed connection but not the
// connection string that pgx may include in it.
func redactedConnectError(err error) error {
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) && connectErr.Unwrap() != nil {
		return connectErr.Unwrap()
	}
	return err
}

// Ping reports whether the database answers; errors wrap ErrUnavailable.
func Ping(ctx context.Context, db DBTX) error {
	var one int
	if err := db.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// queryAll runs query and collects every row with scan; what names the
// operation in its errors.
func queryAll[T any](ctx context.Context, db DBTX, what string, scan pgx.RowToFunc[T], query string, args ...any) ([]T, error) {
	rows, err := db.Query(ctx, query, args...)
	if err == nil {
		var all []T
		if all, err = pgx.CollectRows(rows, scan); err == nil {
			return all, nil
		}
	}
	return nil, fmt.Errorf("%s: %w", what, translate(err))
}

// queryOne is queryAll for a query of exactly one row: none is
// ErrNotFound.
func queryOne[T any](ctx context.Context, db DBTX, what string, scan pgx.RowToFunc[T], query string, args ...any) (T, error) {
	rows, err := db.Query(ctx, query, args...)
	if err == nil {
		var one T
		if one, err = pgx.CollectExactlyOneRow(rows, scan); err == nil {
			return one, nil
		}
	}
	var zero T
	return zero, fmt.Errorf("%s: %w", what, translate(err))
}
