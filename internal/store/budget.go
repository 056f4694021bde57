package store

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Every statement audex runs has a time budget, PostgreSQL's
// statement_timeout, by the kind of work it does (docs/design.md, "Budgets
// and fairness"): a pool's sessions start with the budget of the work the
// pool serves (StatementTimeout), and work of another kind sets its own in
// its transaction (withBudget). A statement past its budget is stopped by
// the server and its caller gets ErrBudget.

// ErrBudget means a statement ran past its time budget and the database
// stopped it; the same request would need narrowing (a shorter range, more
// filters) to succeed.
var ErrBudget = errors.New("statement exceeded its time budget")

// StatementTimeout gives every statement on the pool's sessions budget d
// unless its transaction sets another (zero: no budget).
func StatementTimeout(d time.Duration) OpenOption {
	return func(cfg *pgxpool.Config) {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(d.Milliseconds(), 10)
	}
}

// MaxConns caps the pool's connections.
func MaxConns(n int) OpenOption {
	return func(cfg *pgxpool.Config) { cfg.MaxConns = int32(n) }
}

// setBudget gives the rest of tx's statements budget d each (zero: no
// budget, for maintenance that must not be cut short).
func setBudget(ctx context.Context, tx pgx.Tx, d time.Duration) error {
	_, err := tx.Exec(ctx, "SELECT set_config('statement_timeout', $1, true)", strconv.FormatInt(d.Milliseconds(), 10))
	return err
}

// withBudget runs fn in a transaction (nested in db's when db is one)
// whose statements each have budget d.
func withBudget(ctx context.Context, db DBTX, d time.Duration, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if err := setBudget(ctx, tx, d); err != nil {
			return err
		}
		return fn(tx)
	})
}
