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
// target_id, resource, source IP, day): a set bit is a column not grouped
// by).
const (
	groupTotal    = 0b111111
	groupAction   = 0b011111
	groupActor    = 0b101111
	groupTarget   = 0b110111
	groupResource = 0b111011
	groupSourceIP = 0b111101
	groupDay      = 0b111110
)

// summarySourceIPSQL is a row's source IP as a summary value, and
// summaryDaySQL its UTC day as text (summaryDayFormat: 2006-01-02).
const (
	summarySourceIPSQL = `host(source_ip)`
	summaryDayFormat   = `'YYYY-MM-DD'`
	summaryDaySQL      = `to_char(occurred_at AT TIME ZONE 'UTC', ` + summaryDayFormat + `)`
)

// SummarizeEvents aggregates the tenant's events that match f: totals,
// every action's count, the top actors, targets, resources and source IPs
// (most events first, ties in byte order of the value), and the events
// and failures per UTC day. Events without a target, resource or source
// IP do not count in those lists. A plain time range (Since and
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
	// Source IPs and days are grouped as inet and date, and made text
	// only for the rows that come out (host() and to_char() on every row
	// cost more than the grouping).
	sql := fmt.Sprintf(`
		WITH groups AS (
			SELECT GROUPING(action, actor_id, target_id, resource, source_ip, day) AS g,
			       coalesce(action, actor_id, target_id, resource) AS value, source_ip, day,
			       count(*) AS n,
			       count(*) FILTER (WHERE success) AS ok,
			       count(*) FILTER (WHERE NOT success) AS failed
			FROM (SELECT action, actor_id, target_id, resource, source_ip, success, (occurred_at AT TIME ZONE 'UTC')::date AS day
			      FROM events WHERE %[1]s) e
			GROUP BY GROUPING SETS ((), (action), (actor_id), (target_id), (resource), (source_ip), (day))
		), named AS (
			SELECT g, coalesce(value, %[6]s, to_char(day, %[7]s)) COLLATE "C" AS value, n, ok, failed
			FROM groups WHERE g IN (%[2]d, %[3]d) OR value IS NOT NULL OR source_ip IS NOT NULL
		)
		SELECT g, value, n, ok, failed FROM (
			SELECT *, row_number() OVER (PARTITION BY g ORDER BY n DESC, value) AS rank FROM named
		) ranked
		WHERE g IN (%[2]d, %[4]d, %[3]d) OR rank <= %[5]d`,
		strings.Join(q.conds, " AND "), groupTotal, groupDay, groupAction, SummaryTopN, summarySourceIPSQL, summaryDayFormat)
	rows, err := db.Query(ctx, sql, q.args...)
	if err != nil {
		return audex.Summary{}, fmt.Errorf("summarize events: %w", translate(err))
	}
	s := emptySummary()
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
		case groupSourceIP:
			s.TopSourceIPs = append(s.TopSourceIPs, audex.SourceIPCount{SourceIP: *value, Count: n})
		case groupDay:
			s.EventsPerDay = append(s.EventsPerDay, audex.DayCount{Day: *value, Events: n, Failed: failed})
		}
		return nil
	})
	if err != nil {
		return audex.Summary{}, fmt.Errorf("summarize events: %w", translate(err))
	}
	sortTop(s.TopActors, func(c audex.ActorCount) (int64, string) { return c.Count, c.ActorID })
	sortTop(s.TopTargets, func(c audex.TargetCount) (int64, string) { return c.Count, c.TargetID })
	sortTop(s.TopResources, func(c audex.ResourceCount) (int64, string) { return c.Count, c.Resource })
	sortTop(s.TopSourceIPs, func(c audex.SourceIPCount) (int64, string) { return c.Count, c.SourceIP })
	slices.SortFunc(s.EventsPerDay, func(a, b audex.DayCount) int { return cmp.Compare(a.Day, b.Day) })
	return s, nil
}

// emptySummary is a summary of no events, its maps and lists empty rather
// than nil (they are JSON arrays and objects).
func emptySummary() audex.Summary {
	return audex.Summary{ActionsBreakdown: map[string]int64{}, TopActors: []audex.ActorCount{}, TopTargets: []audex.TargetCount{},
		TopResources: []audex.ResourceCount{}, TopSourceIPs: []audex.SourceIPCount{}, EventsPerDay: []audex.DayCount{}}
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
