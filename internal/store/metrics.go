package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"

	"github.com/audex-dev/audex"
)

// StateCount is how many rows are in one state: exports or purges of a
// status (Queue empty), or River jobs of a queue and state.
type StateCount struct {
	Queue string
	State string
	Count int64
}

// unfinishedJobStates are the states of River jobs that are not finished.
var unfinishedJobStates = []string{
	string(rivertype.JobStateAvailable), string(rivertype.JobStatePending), string(rivertype.JobStateRetryable),
	string(rivertype.JobStateRunning), string(rivertype.JobStateScheduled),
}

// CountExportsByStatus returns how many exports (all tenants) have each
// status, every status included (zero when none), in a fixed order.
func CountExportsByStatus(ctx context.Context, db DBTX) ([]StateCount, error) {
	counts, err := countByStatus(ctx, db, `SELECT status, count(*) FROM exports GROUP BY status`, audex.ExportStatuses)
	if err != nil {
		return nil, fmt.Errorf("count exports: %w", err)
	}
	return counts, nil
}

// CountPurgesByStatus returns how many purges (all tenants) have each
// status, every status included (zero when none), in a fixed order.
func CountPurgesByStatus(ctx context.Context, db DBTX) ([]StateCount, error) {
	counts, err := countByStatus(ctx, db, `SELECT status, count(*) FROM purges GROUP BY status`, audex.PurgeStatuses)
	if err != nil {
		return nil, fmt.Errorf("count purges: %w", err)
	}
	return counts, nil
}

// countByStatus runs query, which returns (status, count) rows, and
// returns a count for each of statuses.
func countByStatus(ctx context.Context, db DBTX, query string, statuses []string) ([]StateCount, error) {
	rows, err := db.Query(ctx, query)
	if err != nil {
		return nil, translate(err)
	}
	found := map[string]int64{}
	var status string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&status, &n}, func() error {
		found[status] = n
		return nil
	}); err != nil {
		return nil, translate(err)
	}
	counts := make([]StateCount, len(statuses))
	for i, s := range statuses {
		counts[i] = StateCount{State: s, Count: found[s]}
	}
	return counts, nil
}

// CountUnfinishedRiverJobs returns how many River jobs are in each state
// that is not finished (available, pending, retryable, running,
// scheduled), for every queue River knows: those in river_queue (a worker
// registers the queues it works), those that hold such a job, and River's
// default queue. A queue and state with no job count zero. Rows are
// ordered by queue, then state.
func CountUnfinishedRiverJobs(ctx context.Context, db DBTX) ([]StateCount, error) {
	return queryAll(ctx, db, "count river jobs", pgx.RowToStructByPos[StateCount], `
		WITH counts AS (
			SELECT queue, state::text AS state, count(*) AS n FROM river_job
			WHERE state = ANY($1::text[]::river_job_state[]) GROUP BY queue, state
		), queues AS (
			SELECT name FROM river_queue UNION SELECT queue FROM counts UNION SELECT 'default'
		)
		SELECT q.name, s.state, coalesce(c.n, 0)
		FROM queues q CROSS JOIN unnest($1::text[]) AS s(state)
		LEFT JOIN counts c ON c.queue = q.name AND c.state = s.state
		ORDER BY q.name, s.state`, unfinishedJobStates)
}
