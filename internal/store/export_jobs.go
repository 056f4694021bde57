package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Jobless is a queued or running export or purge that no River job works.
type Jobless struct {
	ID       string
	TenantID string
}

// joblessWhere selects, from w (exports or purges), the queued or running
// rows created more than $1 ago without a live River job of kind $2 whose
// args name them under argKey. A job that is gone (deleted from River's
// UI, or cleaned up by River) and a finalized one (completed, cancelled or
// discarded) both leave the row unworked. River's tables are in the
// search path, as River's client is configured without a schema.
func joblessWhere(argKey string) string {
	return `w.status IN ('queued', 'running')
	AND w.created_at < now() - $1::interval
	AND NOT EXISTS (
		SELECT 1 FROM river_job j
		WHERE j.kind = $2 AND j.args @> jsonb_build_object('` + argKey + `', w.id)
		  AND j.state NOT IN ('completed', 'cancelled', 'discarded'))`
}

// LockJoblessExports returns up to limit queued or running exports older
// than grace (oldest first) that have no live River job of kind (the
// export job's kind, with args {"export_id": id}), and locks their rows
// until tx ends, so that the caller can insert their jobs in tx. Rows that
// another transaction holds are skipped, so concurrent callers never
// return the same export; an export whose job another caller inserted and
// committed while this call waited is left out too.
//
// The grace keeps exports out whose job a transaction other than the
// export's own would insert; the API inserts both in one transaction.
// It takes a transaction, not a DBTX: the locks are what keep two callers
// from inserting two jobs for one export.
func LockJoblessExports(ctx context.Context, tx pgx.Tx, kind string, grace time.Duration, limit int) ([]Jobless, error) {
	return lockJobless(ctx, tx, "exports", "export_id", kind, grace, limit)
}

// LockJoblessPurges is LockJoblessExports for purges (args
// {"purge_id": id}): a purge left running with no job would also hold
// every export of its range.
func LockJoblessPurges(ctx context.Context, tx pgx.Tx, kind string, grace time.Duration, limit int) ([]Jobless, error) {
	return lockJobless(ctx, tx, "purges", "purge_id", kind, grace, limit)
}

// lockJobless is LockJoblessExports for the rows of table (exports or
// purges), whose jobs name them under argKey.
func lockJobless(ctx context.Context, tx pgx.Tx, table, argKey, kind string, grace time.Duration, limit int) ([]Jobless, error) {
	where := joblessWhere(argKey)
	what := "lock jobless " + table
	locked, err := queryAll(ctx, tx, what, pgx.RowToStructByPos[Jobless], `SELECT w.id, w.tenant_id FROM `+table+` w WHERE `+where+`
		ORDER BY w.created_at, w.id LIMIT $3 FOR UPDATE OF w SKIP LOCKED`, grace, kind, limit)
	if err != nil {
		return nil, err
	}
	if len(locked) == 0 {
		return nil, nil
	}
	// The statement above judged the jobs by its snapshot, taken before
	// it locked the rows: another caller may have inserted a job and
	// committed in between. A new statement sees that job.
	ids := make([]string, len(locked))
	for i, e := range locked {
		ids[i] = e.ID
	}
	return queryAll(ctx, tx, what, pgx.RowToStructByPos[Jobless],
		`SELECT w.id, w.tenant_id FROM `+table+` w WHERE w.id = ANY($3) AND `+where+`
		ORDER BY w.created_at, w.id`, grace, kind, ids)
}
