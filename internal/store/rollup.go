package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/audex-dev/audex"
	"github.com/jackc/pgx/v5"
)

// Kinds of summary_counts rows (see migrations/00006_summary_counts.sql).
const (
	summaryTotal     = 0
	summarySucceeded = 1
	summaryFailed    = 2
	summaryAction    = 3
	summaryActor     = 4
	summaryTarget    = 5
	summaryResource  = 6
	summarySourceIP  = 7
)

// allSummaryKinds lists every kind, so that a day's rows of all kinds are
// found through summary_counts_top_idx (tenant_id, kind, day, ...) as eight
// index ranges rather than a scan of the tenant's rows.
const allSummaryKinds = `'{0,1,2,3,4,5,6,7}'`

// summaryKindValues are the (kind, value) pairs of summary_counts of one
// row of events; pairs whose value is NULL (no target, no resource, no
// source IP, success unknown) are dropped by "k.value IS NOT NULL".
const summaryKindValues = `(0, ''), (1, CASE WHEN success THEN '' END), (2, CASE WHEN NOT success THEN '' END),
		(3, action), (4, actor_id), (5, target_id), (6, resource), (7, ` + summarySourceIPSQL + `)`

// summaryKindsSQL expands each row of events into its summaryKindValues.
const summaryKindsSQL = `CROSS JOIN LATERAL (VALUES ` + summaryKindValues + `) AS k(kind, value)`

// utcDay is the UTC day that holds t, as midnight.
func utcDay(t time.Time) time.Time {
	return t.UTC().Truncate(24 * time.Hour)
}

// summaryMark is a tenant's row of summary_marks: summary_counts holds
// exactly the events received before rolledTo whose day is validFrom or
// later.
type summaryMark struct {
	rolledTo  time.Time
	validFrom time.Time
}

// lockSummaryMark returns the tenant's mark, creating it if needed, locked
// until tx ends: FOR UPDATE for whoever moves it or rewrites counts (the
// rollup, a purge's settlement), FOR SHARE for a deletion that subtracts.
func lockSummaryMark(ctx context.Context, tx pgx.Tx, tenantID string, exclusive bool) (summaryMark, error) {
	var m summaryMark
	if _, err := tx.Exec(ctx, `INSERT INTO summary_marks (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING`, tenantID); err != nil {
		return m, err
	}
	lock := "FOR SHARE"
	if exclusive {
		lock = "FOR UPDATE"
	}
	err := tx.QueryRow(ctx, `SELECT rolled_to, valid_from FROM summary_marks WHERE tenant_id = $1 `+lock, tenantID).Scan(&m.rolledTo, &m.validFrom)
	return m, err
}

// readSummaryMark returns the tenant's mark without locking it; a tenant
// never rolled up has everything still to roll.
func readSummaryMark(ctx context.Context, db DBTX, tenantID string) (summaryMark, error) {
	var m summaryMark
	err := db.QueryRow(ctx, `SELECT rolled_to, valid_from FROM summary_marks WHERE tenant_id = $1`, tenantID).Scan(&m.rolledTo, &m.validFrom)
	if errors.Is(err, pgx.ErrNoRows) {
		return summaryMark{}, nil
	}
	return m, err
}

// addToSummary adds (sign 1) or subtracts (sign -1) the tenant's events
// that cond selects to summary_counts, and returns how many events that
// was. cond uses $1 for the tenant and $2... for args. Rows are written in
// key order, so that concurrent writers lock them in the same order.
func addToSummary(ctx context.Context, tx pgx.Tx, tenantID string, sign int, cond string, args ...any) (int64, error) {
	var n int64
	err := tx.QueryRow(ctx, fmt.Sprintf(`
		WITH counts AS (
			SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, k.kind, k.value, count(*) AS n
			FROM events %s
			WHERE tenant_id = $1 AND %s AND k.value IS NOT NULL
			GROUP BY 1, 2, 3
		), written AS (
			INSERT INTO summary_counts (tenant_id, kind, value, day, events)
			SELECT $1, kind, value, day, %d * n FROM counts ORDER BY kind, value, day
			ON CONFLICT (tenant_id, kind, value, day) DO UPDATE SET events = summary_counts.events + excluded.events
		)
		SELECT coalesce(sum(n), 0) FROM counts WHERE kind = %d`, summaryKindsSQL, cond, sign, summaryTotal),
		append([]any{tenantID}, args...)...).Scan(&n)
	return n, err
}

// staleSummaryBatch is how many stale summary_counts rows one rollup
// deletes at most.
const staleSummaryBatch = 50_000

// rollupBudget is the time budget of each statement of a rollup's
// transaction: it counts up to maxEvents events (500,000 from the job) in
// one statement, which may take a while on a busy database.
const rollupBudget = 10 * time.Minute

// RollUpSummary adds to summary_counts the tenant's events received since
// its last rollup, at most maxEvents of them (the oldest received), and
// deletes a batch of the rows that a purge left stale. It returns how many
// events it rolled up and whether more are waiting. Safe to run
// concurrently (the tenant's mark serialises rollups) and to retry.
func RollUpSummary(ctx context.Context, db DBTX, tenantID string, maxEvents int) (int64, bool, error) {
	// The mark's values go in as parameters, so that the plan is made for
	// them: with the mark in a subquery the stale-row check was planned
	// for an unknown day and scanned all of a tenant's counts.
	m, err := readSummaryMark(ctx, db, tenantID)
	if err != nil {
		return 0, false, wrapRollup(err)
	}
	var pending bool
	err = db.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM events WHERE tenant_id = $1 AND received_at >= $2)
		OR EXISTS (SELECT 1 FROM summary_counts WHERE tenant_id = $1 AND kind = ANY(`+allSummaryKinds+`) AND day < $3)`,
		tenantID, m.rolledTo, m.validFrom).Scan(&pending)
	if err != nil || !pending {
		return 0, false, wrapRollup(err)
	}
	// Every event received before `to` is committed once the ingests under
	// way have finished (the same barrier as an export's as_of).
	to, err := IngestBarrier(ctx, db, tenantID)
	if err != nil {
		return 0, false, wrapRollup(err)
	}
	var rolled int64
	var more bool
	err = withBudget(ctx, db, rollupBudget, func(tx pgx.Tx) error {
		m, err := lockSummaryMark(ctx, tx, tenantID, true)
		if err != nil {
			return err
		}
		if !to.After(m.rolledTo) {
			return nil // a concurrent rollup went further
		}
		// At most maxEvents.
		if to, more, err = arrivalsEnd(ctx, tx, tenantID, audex.Filter{}, m.rolledTo, to, maxEvents); err != nil {
			return err
		}
		if rolled, err = addToSummary(ctx, tx, tenantID, 1, `received_at >= $2 AND received_at < $3 AND occurred_at >= $4`,
			m.rolledTo, to, m.validFrom); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE summary_marks SET rolled_to = $2 WHERE tenant_id = $1`, tenantID, to); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM summary_counts WHERE ctid IN (
			SELECT ctid FROM summary_counts WHERE tenant_id = $1 AND kind = ANY(`+allSummaryKinds+`) AND day < $2 LIMIT $3)`,
			tenantID, m.validFrom, staleSummaryBatch)
		return err
	})
	if err != nil {
		return 0, false, wrapRollup(err)
	}
	return rolled, more, nil
}

func wrapRollup(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("roll up summary: %w", translate(err))
}

// RollUpAllSummaries rolls up every tenant's new events, maxEvents per
// transaction, until none is left or ctx ends, and returns how many
// events it rolled up.
func RollUpAllSummaries(ctx context.Context, db DBTX, maxEvents int) (int64, error) {
	// The tenants with events or with counts.
	tenants, err := queryAll(ctx, db, "roll up summary", pgx.RowTo[string], tenantsWithEvents+` UNION SELECT tenant_id FROM summary_marks ORDER BY 1`)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, t := range tenants {
		for more := true; more; {
			var n int64
			if n, more, err = RollUpSummary(ctx, db, t, maxEvents); err != nil {
				return total, err
			}
			total += n
		}
	}
	// After a big rollup, statistics at once: without them the planner
	// takes the new days for empty and reads a top list's candidates
	// through the wrong index (seconds instead of milliseconds).
	if total >= analyzeAfterEvents {
		if _, err := db.Exec(ctx, `ANALYZE summary_counts`); err != nil {
			return total, wrapRollup(err)
		}
	}
	return total, nil
}

// tenantsWithEvents selects every tenant that stored an event (a skip
// scan of event_ids' primary key).
const tenantsWithEvents = `
	WITH RECURSIVE t AS (
		SELECT min(tenant_id) AS id FROM event_ids
		UNION ALL
		SELECT (SELECT min(tenant_id) FROM event_ids WHERE tenant_id > t.id) FROM t WHERE t.id IS NOT NULL
	)
	SELECT id FROM t WHERE id IS NOT NULL`

// analyzeAfterEvents is the size of a rollup after which summary_counts is
// analysed at once rather than when autovacuum gets to it.
const analyzeAfterEvents = 100_000

// subtractEventFromSummary takes one event, about to be deleted in tx,
// out of summary_counts if a rollup counted it.
func subtractEventFromSummary(ctx context.Context, tx pgx.Tx, tenantID string, occurredAt time.Time, id string) error {
	m, err := lockSummaryMark(ctx, tx, tenantID, false)
	if err != nil {
		return err
	}
	_, err = addToSummary(ctx, tx, tenantID, -1, `occurred_at = $2 AND id = $3 AND received_at < $4 AND occurred_at >= $5`,
		occurredAt, id, m.rolledTo, m.validFrom)
	return err
}

// settleSummaryAfterPurge makes summary_counts exact again after some of
// the tenant's events before `before` were deleted in bulk (a purge
// completed or failed part-way, a partition was dropped): the days before
// before's day are handed over to events (valid_from moves there; the
// rollup deletes their rows later, off the purge's clock), and before's
// own day is counted again unless before is its midnight. It is exact
// whatever is left of those days, only slower to read while much is.
func settleSummaryAfterPurge(ctx context.Context, tx pgx.Tx, tenantID string, before time.Time) error {
	m, err := lockSummaryMark(ctx, tx, tenantID, true)
	if err != nil {
		return err
	}
	day := utcDay(before)
	if day.Before(m.validFrom) {
		return nil
	}
	if before.After(day) {
		if _, err := tx.Exec(ctx, `DELETE FROM summary_counts WHERE tenant_id = $1 AND kind = ANY(`+allSummaryKinds+`) AND day = $2`,
			tenantID, day); err != nil {
			return err
		}
		if _, err := addToSummary(ctx, tx, tenantID, 1, `occurred_at >= $2 AND occurred_at < $3 AND received_at < $4`,
			day, day.AddDate(0, 0, 1), m.rolledTo); err != nil {
			return err
		}
	}
	_, err = tx.Exec(ctx, `UPDATE summary_marks SET valid_from = $2 WHERE tenant_id = $1`, tenantID, day)
	return err
}
