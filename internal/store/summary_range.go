package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audex-dev/audex"
)

// How summarizeRange answers [since, until) exactly from daily counts
// (docs/design.md, "Summaries"):
//
//   - A day inside the range is read from summary_counts ("rollup days"),
//     and so is a partial day at either end when fewer of its events are
//     expected outside the range than inside (cheaperToSubtract): those
//     outside are read from events and subtracted. Today's part after now
//     holds no events, so a range up to now reads today from the counts.
//   - Another partial day, and any day before the tenant's valid_from, is
//     read from events.
//   - Events that the rollup has not reached yet (received since
//     rolled_to) are read from events for the rollup days.
//
// All of it in one read-only repeatable-read snapshot, so that a rollup
// committing meanwhile is seen entirely or not at all.
//
// Totals and actions are summed outright. Each top list is found with the
// threshold algorithm: the m best values of every rollup day and of the
// events read are the candidates, their exact totals are summed, and the
// ten best stand if the tenth beats the most that any other value could
// have (the sum of each list's (m+1)-th count); else m grows, up to all
// values.

// summaryRounds are the candidates taken from each list in turn; 0 means
// all of them.
var summaryRounds = []int{20, 200, 0}

// timeInterval is [from, to).
type timeInterval struct{ from, to time.Time }

// summaryPlan says where each part of a range is read from.
type summaryPlan struct {
	// rollupFrom and rollupTo bound the rollup days [rollupFrom, rollupTo)
	// (empty when equal).
	rollupFrom, rollupTo time.Time
	// scan are read from events and added; subtract are read from events
	// and taken off the rollup days.
	scan, subtract []timeInterval
}

// planSummary splits [since, until) for a tenant whose counts are valid
// from validFrom on; now tells which part of a day can hold events.
func planSummary(since, until, validFrom, now time.Time) summaryPlan {
	var p summaryPlan
	addScan := func(from, to time.Time) {
		if !from.Before(to) {
			return
		}
		if n := len(p.scan); n > 0 && p.scan[n-1].to.Equal(from) {
			p.scan[n-1].to = to
			return
		}
		p.scan = append(p.scan, timeInterval{from, to})
	}
	start := utcDay(since)
	if start.Before(validFrom) {
		start = validFrom
	}
	addScan(since, earliest(start, until))
	if !start.Before(until) {
		return p
	}
	end := utcDay(until.Add(-time.Microsecond)).AddDate(0, 0, 1) // the end of the last day touched
	// Whole days from the first to the last, then each end decided.
	p.rollupFrom, p.rollupTo = start, end
	first := timeInterval{latest(since, start), earliest(until, start.AddDate(0, 0, 1))}
	if first.from.After(start) || first.to.Before(start.AddDate(0, 0, 1)) {
		if cheaperToSubtract(start, first, now) {
			p.subtract = appendInterval(p.subtract, start, first.from)
			p.subtract = appendInterval(p.subtract, first.to, start.AddDate(0, 0, 1))
		} else {
			addScan(first.from, first.to)
			p.rollupFrom = start.AddDate(0, 0, 1)
		}
	}
	lastDay := end.AddDate(0, 0, -1)
	if lastDay.After(start) && until.Before(end) {
		if cheaperToSubtract(lastDay, timeInterval{lastDay, until}, now) {
			p.subtract = appendInterval(p.subtract, until, end)
		} else {
			addScan(lastDay, until)
			p.rollupTo = lastDay
		}
	}
	if !p.rollupFrom.Before(p.rollupTo) {
		p.rollupFrom, p.rollupTo = time.Time{}, time.Time{}
	}
	return p
}

// cheaperToSubtract reports whether, for the part in of day, reading the
// day's events outside it is expected to read no more events than reading
// those inside. Events are taken as spread evenly over the past, and
// absent after now: so the rest of today costs nothing to subtract.
func cheaperToSubtract(day time.Time, in timeInterval, now time.Time) bool {
	past := func(from, to time.Time) time.Duration {
		to = earliest(to, now)
		if !from.Before(to) {
			return 0
		}
		return to.Sub(from)
	}
	outside := past(day, in.from) + past(in.to, day.AddDate(0, 0, 1))
	return outside <= past(in.from, in.to)
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func appendInterval(list []timeInterval, from, to time.Time) []timeInterval {
	if from.Before(to) {
		list = append(list, timeInterval{from, to})
	}
	return list
}

// Pseudo-kinds of the counts that summarizeRange reads, beside those of
// summary_counts: the events and the failed events of a UTC day (value:
// the day as 2006-01-02). From the rollup days they are the day's kind 0
// and kind 2 rows; from events, eventCountKindsSQL adds them.
const (
	summaryDayEvents = -1
	summaryDayFailed = -2
)

// eventCountKindsSQL expands each row of events into its (kind, value)
// pairs of summary_counts and of the day pseudo-kinds.
const eventCountKindsSQL = `CROSS JOIN LATERAL (VALUES ` + summaryKindValues + `,
		(-1, ` + summaryDaySQL + `), (-2, CASE WHEN NOT success THEN ` + summaryDaySQL + ` END)) AS k(kind, value)`

// valueCountsByKind are counts of summary values: kind -> value -> events.
type valueCountsByKind map[int]map[string]int64

func (c valueCountsByKind) add(kind int, value string, n int64) {
	if c[kind] == nil {
		c[kind] = map[string]int64{}
	}
	c[kind][value] += n
}

// summarizeRange is SummarizeEvents for a plain time range, from the
// daily counts.
func summarizeRange(ctx context.Context, db DBTX, tenantID string, since, until time.Time, budget time.Duration) (audex.Summary, error) {
	s := emptySummary()
	err := inSnapshot(ctx, db, budget, func(tx pgx.Tx) error {
		m, err := readSummaryMark(ctx, tx, tenantID)
		if err != nil {
			return err
		}
		p := planSummary(since, until, m.validFrom, time.Now())
		// Events read from the table: added (scans, not yet rolled up) and
		// subtracted (the ends of partial rollup days).
		added, subtracted := valueCountsByKind{}, valueCountsByKind{}
		if err := countEventsIn(ctx, tx, added, tenantID, p.scan); err != nil {
			return err
		}
		if p.rollupFrom.Before(p.rollupTo) {
			if err := countEventValues(ctx, tx, added, `received_at >= $2 AND occurred_at >= $3 AND occurred_at < $4`,
				tenantID, m.rolledTo, p.rollupFrom, p.rollupTo); err != nil {
				return err
			}
		}
		if err := countEventsIn(ctx, tx, subtracted, tenantID, p.subtract); err != nil {
			return err
		}
		// Totals, actions and days: every rollup row of those kinds, then
		// the events read.
		small := valueCountsByKind{}
		if p.rollupFrom.Before(p.rollupTo) {
			rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT kind, value, sum(events)::bigint FROM summary_counts
				WHERE tenant_id = $1 AND kind = ANY('{0,1,2,3}') AND day >= $2 AND day < $3 GROUP BY 1, 2
				UNION ALL
				SELECT CASE kind WHEN 0 THEN %d ELSE %d END, to_char(day, %s), sum(events)::bigint FROM summary_counts
				WHERE tenant_id = $1 AND kind = ANY('{0,2}') AND day >= $2 AND day < $3 GROUP BY 1, 2`, summaryDayEvents, summaryDayFailed, summaryDayFormat),
				tenantID, p.rollupFrom, p.rollupTo)
			if err != nil {
				return err
			}
			var kind int
			var value string
			var n int64
			if _, err := pgx.ForEachRow(rows, []any{&kind, &value, &n}, func() error {
				small.add(kind, value, n)
				return nil
			}); err != nil {
				return err
			}
		}
		for _, kind := range []int{summaryTotal, summarySucceeded, summaryFailed, summaryAction, summaryDayEvents, summaryDayFailed} {
			for v, n := range added[kind] {
				small.add(kind, v, n)
			}
			for v, n := range subtracted[kind] {
				small.add(kind, v, -n)
			}
		}
		s.TotalEvents, s.SuccessfulEvents, s.FailedEvents = small[summaryTotal][""], small[summarySucceeded][""], small[summaryFailed][""]
		for v, n := range small[summaryAction] {
			if n > 0 {
				s.ActionsBreakdown[v] = n
			}
		}
		for day, n := range small[summaryDayEvents] {
			if n > 0 {
				s.EventsPerDay = append(s.EventsPerDay, audex.DayCount{Day: day, Events: n, Failed: small[summaryDayFailed][day]})
			}
		}
		slices.SortFunc(s.EventsPerDay, func(a, b audex.DayCount) int { return cmp.Compare(a.Day, b.Day) })
		tops := map[int][]valueCount{}
		for _, kind := range []int{summaryActor, summaryTarget, summaryResource, summarySourceIP} {
			if tops[kind], err = topValues(ctx, tx, tenantID, kind, p, added[kind], subtracted[kind]); err != nil {
				return err
			}
		}
		s.TopActors = mapSlice(tops[summaryActor], func(c valueCount) audex.ActorCount { return audex.ActorCount{ActorID: c.value, Count: c.n} })
		s.TopTargets = mapSlice(tops[summaryTarget], func(c valueCount) audex.TargetCount { return audex.TargetCount{TargetID: c.value, Count: c.n} })
		s.TopResources = mapSlice(tops[summaryResource], func(c valueCount) audex.ResourceCount { return audex.ResourceCount{Resource: c.value, Count: c.n} })
		s.TopSourceIPs = mapSlice(tops[summarySourceIP], func(c valueCount) audex.SourceIPCount { return audex.SourceIPCount{SourceIP: c.value, Count: c.n} })
		return nil
	})
	if err != nil {
		return audex.Summary{}, fmt.Errorf("summarize events: %w", translate(err))
	}
	return s, nil
}

// countEventValues adds to into the (kind, value) counts, day
// pseudo-kinds included, of the tenant's events that cond selects ($1 is
// the tenant).
func countEventValues(ctx context.Context, tx pgx.Tx, into valueCountsByKind, cond string, args ...any) error {
	rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT k.kind, k.value, count(*) FROM events %s
		WHERE tenant_id = $1 AND (%s) AND k.value IS NOT NULL GROUP BY 1, 2`, eventCountKindsSQL, cond), args...)
	if err != nil {
		return err
	}
	var kind int
	var value string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&kind, &value, &n}, func() error {
		into.add(kind, value, n)
		return nil
	})
	return err
}

// countEventsIn adds to into the (kind, value) counts of the tenant's
// events that occurred within any of the intervals (none: nothing read).
func countEventsIn(ctx context.Context, tx pgx.Tx, into valueCountsByKind, tenantID string, intervals []timeInterval) error {
	if len(intervals) == 0 {
		return nil
	}
	var q queryBuilder
	q.arg(tenantID) // $1, as countEventValues expects
	var conds []string
	for _, in := range intervals {
		conds = append(conds, fmt.Sprintf("(occurred_at >= %s AND occurred_at < %s)", q.arg(in.from), q.arg(in.to)))
	}
	return countEventValues(ctx, tx, into, strings.Join(conds, " OR "), q.args...)
}

// valueCount is one value of a top list.
type valueCount struct {
	value string
	n     int64
}

// topValues returns the SummaryTopN values of a kind with the most events
// in the plan's range: the rollup days plus added minus subtracted.
func topValues(ctx context.Context, tx pgx.Tx, tenantID string, kind int, p summaryPlan, added, subtracted map[string]int64) ([]valueCount, error) {
	// The added events as one more list, most events first.
	extra := make([]valueCount, 0, len(added))
	for v, n := range added {
		extra = append(extra, valueCount{v, n})
	}
	sortValueCounts(extra)
	for _, m := range summaryRounds {
		candidates := map[string]bool{}
		var bound int64
		take := func(i int, c valueCount) {
			switch {
			case m == 0 || i < m:
				candidates[c.value] = true
			case i == m:
				bound += max(c.n, 0)
			}
		}
		for i, c := range extra {
			take(i, c)
		}
		if p.rollupFrom.Before(p.rollupTo) {
			limit := any(nil)
			if m > 0 {
				limit = m + 1
			}
			// The days that have counts are found by a skip scan of the
			// day index (one probe per such day), so that the cost grows
			// with the days that hold events, never with the span: a
			// range of ten thousand empty years costs one probe.
			rows, err := tx.Query(ctx, `WITH RECURSIVE days(day) AS (
					(SELECT day FROM summary_counts WHERE tenant_id = $1 AND kind = $2 AND day >= $3 AND day < $4 ORDER BY day LIMIT 1)
					UNION ALL
					SELECT (SELECT s.day FROM summary_counts s WHERE s.tenant_id = $1 AND s.kind = $2 AND s.day > days.day AND s.day < $4 ORDER BY s.day LIMIT 1)
					FROM days WHERE days.day IS NOT NULL)
				SELECT d.day, c.value, c.events FROM days d
				CROSS JOIN LATERAL (SELECT value, events FROM summary_counts
					WHERE tenant_id = $1 AND kind = $2 AND day = d.day ORDER BY events DESC, value LIMIT $5) c
				WHERE d.day IS NOT NULL
				ORDER BY 1, c.events DESC, c.value`, tenantID, kind, p.rollupFrom, p.rollupTo, limit)
			if err != nil {
				return nil, err
			}
			// Rows come day by day, each day's best first.
			var day, prev time.Time
			var c valueCount
			i := 0
			if _, err := pgx.ForEachRow(rows, []any{&day, &c.value, &c.n}, func() error {
				if !day.Equal(prev) {
					prev, i = day, 0
				}
				take(i, c)
				i++
				return nil
			}); err != nil {
				return nil, err
			}
		}
		totals, err := candidateTotals(ctx, tx, tenantID, kind, p, candidates)
		if err != nil {
			return nil, err
		}
		var ranked []valueCount
		for v := range candidates {
			if n := totals[v] + added[v] - subtracted[v]; n > 0 {
				ranked = append(ranked, valueCount{v, n})
			}
		}
		sortValueCounts(ranked)
		if m == 0 || len(ranked) >= SummaryTopN && ranked[SummaryTopN-1].n > bound || len(ranked) < SummaryTopN && bound == 0 {
			return ranked[:min(len(ranked), SummaryTopN)], nil
		}
	}
	panic("unreachable: the last round takes every value")
}

// candidateTotals sums the rollup days' counts of the candidate values.
func candidateTotals(ctx context.Context, tx pgx.Tx, tenantID string, kind int, p summaryPlan, candidates map[string]bool) (map[string]int64, error) {
	totals := map[string]int64{}
	if len(candidates) == 0 || !p.rollupFrom.Before(p.rollupTo) {
		return totals, nil
	}
	values := make([]string, 0, len(candidates))
	for v := range candidates {
		values = append(values, v)
	}
	rows, err := tx.Query(ctx, `SELECT value, sum(events)::bigint FROM summary_counts
		WHERE tenant_id = $1 AND kind = $2 AND value = ANY($3) AND day >= $4 AND day < $5 GROUP BY 1`,
		tenantID, kind, values, p.rollupFrom, p.rollupTo)
	if err != nil {
		return nil, err
	}
	var v string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&v, &n}, func() error {
		totals[v] = n
		return nil
	})
	return totals, err
}

// sortValueCounts orders most events first, then values in byte order.
func sortValueCounts(list []valueCount) {
	slices.SortFunc(list, func(a, b valueCount) int {
		return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.value, b.value))
	})
}

func mapSlice[T, U any](in []T, f func(T) U) []U {
	out := make([]U, 0, len(in))
	for _, v := range in {
		out = append(out, f(v))
	}
	return out
}

// inSnapshot runs fn in a read-only repeatable-read transaction, so that
// all its statements see one snapshot of the database, each within
// budget.
func inSnapshot(ctx context.Context, db DBTX, budget time.Duration, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`); err != nil {
			return err
		}
		if err := setBudget(ctx, tx, budget); err != nil {
			return err
		}
		return fn(tx)
	})
}
