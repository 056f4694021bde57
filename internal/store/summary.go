package store

import (
	"cmp"
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audex-dev/audex"
)

// SummaryTopN is how many entries each top list of a summary holds.
const SummaryTopN = 10

// Grouping-set numbers of the summary query (GROUPING(action, actor_id,
// target_id, resource): a set bit is a column not grouped by).
const (
	groupTotal    = 0b1111
	groupAction   = 0b0111
	groupActor    = 0b1011
	groupTarget   = 0b1101
	groupResource = 0b1110
)

// SummarizeEvents aggregates the tenant's events that match f: totals,
// every action's count, and the top actors, targets and resources (most
// events first, ties in byte order of the id). Events without a target or
// resource do not count in those lists. A plain time range (Since and
// Until, no other filter) is answered from the daily counts of
// summary_counts (summarizeRange); any other filter scans the events.
// Each statement may take budget; past it the summary fails with
// ErrBudget.
func SummarizeEvents(ctx context.Context, db DBTX, tenantID string, f audex.Filter, budget time.Duration) (audex.Summary, error) {
	if f.Since != nil && f.Until != nil && timeRangeOnly(f) {
		return summarizeRange(ctx, db, tenantID, *f.Since, *f.Until, budget)
	}
	var s audex.Summary
	err := withBudget(ctx, db, budget, func(tx pgx.Tx) error {
		var err error
		s, err = scanSummary(ctx, tx, tenantID, f)
		return err
	})
	return s, translate(err)
}

// timeRangeOnly reports whether f selects by time alone. Every other field
// counts, so a filter added later can never be answered by the rollups by
// mistake.
func timeRangeOnly(f audex.Filter) bool {
	f.Since, f.Until = nil, nil
	return reflect.ValueOf(f).IsZero()
}

// scanSummary is SummarizeEvents in one scan of the matching events.
func scanSummary(ctx context.Context, db DBTX, tenantID string, f audex.Filter) (audex.Summary, error) {
	var q queryBuilder
	q.where("tenant_id = " + q.arg(tenantID))
	q.filter(f)
	sql := fmt.Sprintf(`
		WITH groups AS (
			SELECT GROUPING(action, actor_id, target_id, resource) AS g,
			       coalesce(action, actor_id, target_id, resource) AS value,
			       count(*) AS n,
			       count(*) FILTER (WHERE success) AS ok,
			       count(*) FILTER (WHERE NOT success) AS failed
			FROM events WHERE %s
			GROUP BY GROUPING SETS ((), (action), (actor_id), (target_id), (resource))
		)
		SELECT g, value, n, ok, failed FROM (
			SELECT *, row_number() OVER (PARTITION BY g ORDER BY n DESC, value) AS rank
			FROM groups WHERE value IS NOT NULL OR g = %d
		) ranked
		WHERE g IN (%d, %d) OR rank <= %d`,
		strings.Join(q.conds, " AND "), groupTotal, groupTotal, groupAction, SummaryTopN)
	rows, err := db.Query(ctx, sql, q.args...)
	if err != nil {
		return audex.Summary{}, fmt.Errorf("summarize events: %w", translate(err))
	}
	s := audex.Summary{ActionsBreakdown: map[string]int64{}, TopActors: []audex.ActorCount{}, TopTargets: []audex.TargetCount{}, TopResources: []audex.ResourceCount{}}
	var (
		group         int
		value         *string
		n, ok, failed int64
	)
	_, err = pgx.ForEachRow(rows, []any{&group, &value, &n, &ok, &failed}, func() error {
		switch group {
		case groupTotal:
			s.TotalEvents, s.SuccessfulEvents, s.FailedEvents = n, ok, failed
		case groupAction:
			s.ActionsBreakdown[*value] = n
		case groupActor:
			s.TopActors = append(s.TopActors, audex.ActorCount{ActorID: *value, Count: n})
		case groupTarget:
			s.TopTargets = append(s.TopTargets, audex.TargetCount{TargetID: *value, Count: n})
		case groupResource:
			s.TopResources = append(s.TopResources, audex.ResourceCount{Resource: *value, Count: n})
		}
		return nil
	})
	if err != nil {
		return audex.Summary{}, fmt.Errorf("summarize events: %w", translate(err))
	}
	sortTop(s.TopActors, func(c audex.ActorCount) (int64, string) { return c.Count, c.ActorID })
	sortTop(s.TopTargets, func(c audex.TargetCount) (int64, string) { return c.Count, c.TargetID })
	sortTop(s.TopResources, func(c audex.ResourceCount) (int64, string) { return c.Count, c.Resource })
	return s, nil
}

// sortTop orders a top list by count, highest first, then by id in byte
// order (the window function ranked them so, but rows arrive unordered).
func sortTop[T any](list []T, key func(T) (int64, string)) {
	slices.SortFunc(list, func(a, b T) int {
		na, ia := key(a)
		nb, ib := key(b)
		return cmp.Or(cmp.Compare(nb, na), cmp.Compare(ia, ib))
	})
}
