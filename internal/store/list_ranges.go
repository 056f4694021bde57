package store

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audex-dev/audex"
)

// A list filtered by a range of one column (resource_prefix, a source_ip
// block) has an index that serves each value
// of the column in list order, (tenant_id, column, occurred_at, id), but
// none that serves the range in list order. The planner then picks
// between reading the time index and dropping what does not match (good
// when the range matches much) and reading the whole range from the
// column's index and sorting it (good when it matches little), from its
// estimate of the range's share; right after a bulk ingest, before
// statistics, that estimate is a default guess, and a first page of a
// range matching 22% of 200,000 events took 171 ms sorting 44,000 rows.
//
// A list by such a range is read one of three ways, by what the range
// holds. A range of few events (a rare or medium prefix or block) is read
// whole from its own index, keys only, and sorted (sortedRangeList); a
// statement counts its index entries first, up to a bound. A range of more
// is read down the list order first (wideRangeList), where a common range
// fills the page at once; when it does not, a range of few distinct values
// gives each value's page from its own index range, merged
// (mergedValuesList: at most values x limit rows, whatever the range's
// share), and one of many values is read on down the list order or from
// its own index a few days at a time (listRangeByDays), by its share
// among the rows read.

// maxRangeValues is the most distinct values that mergedValuesList merges, and
// rangeRowBudget the most rows it may read for a page (values x limit):
// a page of 100 merges up to 64 values, a page of 2,000 (an export's) 10.
const (
	maxRangeValues = 64
	rangeRowBudget = 20_000
)

// A selection is the part of a list's filter that an index serves out of
// list order: a range of one column (columnRange), or values of the keys
// index (eventKeys). Its condition is checked on the rows read down the
// list order (walkSelection).
type selection interface {
	condition(q *queryBuilder) string
}

// columnRange is a range filter on one column of events.
type columnRange struct {
	column string // resource or source_ip
	typ    string // its SQL type
	lower  string // the least value, inclusive
	upper  string // for text: the bound, exclusive ("": none)
	block  string // for source_ip: the block (the range is <<= block)
	last   string // for source_ip: the block's last address
}

// singleColumnRange returns f's one range filter and f without it; ok is
// false when f has none, or more than one (then the planner decides).
func singleColumnRange(f audex.Filter) (r columnRange, rest audex.Filter, ok bool) {
	rest = f
	n := 0
	if f.ResourcePrefix != nil && *f.ResourcePrefix != "" {
		n++
		r, rest.ResourcePrefix = textRange("resource", *f.ResourcePrefix), nil
	}
	if f.SourceIP != nil && !f.SourceIP.IsSingleIP() {
		n++
		r = blockRange(*f.SourceIP)
		rest.SourceIP = nil
	}
	if n != 1 {
		return columnRange{}, f, false
	}
	return r, rest, true
}

// textRange is the range of a text column's values that start with p.
func textRange(column, p string) columnRange {
	r := columnRange{column: column, typ: "text", lower: p}
	if upper, ok := prefixUpperBound(p); ok {
		r.upper = upper
	}
	return r
}

// blockRange is the range of source_ip addresses in the block p: the
// bounds are the range of the column's index that holds the block, which
// the planner derives from <<= only when the block is a constant, not a
// parameter of a generic plan.
func blockRange(p netip.Prefix) columnRange {
	block := p.Masked()
	return columnRange{column: "source_ip", typ: "inet", lower: block.Addr().String(), block: block.String(), last: lastAddr(block).String()}
}

// lastAddr is the last address of the block p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(a)*8; i++ {
		a[i/8] |= 0x80 >> (i % 8)
	}
	last, _ := netip.AddrFromSlice(a)
	return last.Unmap()
}

// bound is the condition of the column's index that holds r past
// the lower bound, as SQL, with its arguments added to q.
func (r columnRange) bound(q *queryBuilder) string {
	switch {
	case r.block != "":
		return fmt.Sprintf(" AND %[1]s <= %[2]s::inet AND %[1]s <<= %[3]s::inet", r.column, q.arg(r.last), q.arg(r.block))
	case r.upper != "":
		return fmt.Sprintf(" AND %s < %s", r.column, q.arg(r.upper))
	}
	return ""
}

// countRange counts r's entries in its column's index (keys only, where
// the visibility map allows), up to cap+1.
func countRange(ctx context.Context, db DBTX, tenantID string, r columnRange, cap int) (int, error) {
	var q queryBuilder
	tenant := q.arg(tenantID)
	// In the column's order, so that the column's index is read.
	sql := fmt.Sprintf(`SELECT count(*) FROM (SELECT 1 FROM events WHERE tenant_id = %s AND %s ORDER BY %s LIMIT %d) e`,
		tenant, r.condition(&q), r.column, cap+1)
	var n int
	err := db.QueryRow(ctx, sql, q.args...).Scan(&n)
	return n, err
}

// rangeValues reads r's distinct values (as text, in index order) with a
// skip scan of the column's index, one probe per value, up to most+1 of
// them; ok is true when there are most or fewer.
func rangeValues(ctx context.Context, db DBTX, tenantID string, r columnRange, most int) (values []string, ok bool, err error) {
	var q queryBuilder
	tenant, lower := q.arg(tenantID), q.arg(r.lower)+"::"+r.typ
	bound := r.bound(&q)
	sql := fmt.Sprintf(`WITH RECURSIVE v(val) AS (
			(SELECT %[1]s FROM events WHERE tenant_id = %[2]s AND %[1]s >= %[3]s%[4]s ORDER BY %[1]s LIMIT 1)
			UNION ALL
			SELECT (SELECT %[1]s FROM events WHERE tenant_id = %[2]s AND %[1]s > v.val%[4]s ORDER BY %[1]s LIMIT 1)
			FROM v WHERE v.val IS NOT NULL)
		SELECT val::text FROM v WHERE val IS NOT NULL LIMIT %[5]d`, r.column, tenant, lower, bound, most+1)
	rows, err := db.Query(ctx, sql, q.args...)
	if err != nil {
		return nil, false, err
	}
	values, err = pgx.CollectRows(rows, pgx.RowTo[string])
	return values, err == nil && len(values) <= most, err
}

// A range of few events (a rare or medium prefix or block) is read whole
// from its own index and sorted (sortedRangeList): for a page of 100, the
// 5,000 index entries that the most such a range holds cost about what
// the first window down the list order costs alone (1,000 rows), before
// the statements that would follow it. countRange counts the range's
// entries up to that many.

// fewRangeEntriesPerPageRow is that many entries per row of the page.
const fewRangeEntriesPerPageRow = 50

// rangePage is ListEvents for a page of a filter whose one range is r
// and whose other conditions are rest: read whole and sorted when the
// range has few events, else down the list order first (wideRangeList).
func rangePage(ctx context.Context, db DBTX, tenantID string, r columnRange, rest audex.Filter, order audex.Order, after *audex.Position, limit int) ([]audex.Event, error) {
	cap := fewRangeEntriesPerPageRow * limit
	n, err := countRange(ctx, db, tenantID, r, cap)
	if err != nil {
		return nil, err
	}
	if n <= cap {
		return sortedRangeList(ctx, db, tenantID, r, rest, order, after, limit)
	}
	return wideRangeList(ctx, db, tenantID, r, rest, order, after, limit)
}

// mergedValuesList is ListEvents for a filter whose one range is r and
// whose other conditions are rest, when the range has few values: the
// page of each value, merged (valuesList). ok is false when it has more
// values than mostMergedValues (the caller lists another way).
func mergedValuesList(ctx context.Context, db DBTX, tenantID string, r columnRange, rest audex.Filter, order audex.Order, after *audex.Position, limit int) (events []audex.Event, ok bool, err error) {
	most := mostMergedValues(limit)
	if most < 2 {
		return nil, false, nil // pages too long to merge
	}
	values, ok, err := rangeValues(ctx, db, tenantID, r, most)
	if err != nil || !ok {
		return nil, false, err
	}
	return valuesList(ctx, db, tenantID, r.column, r.typ, values, rest, order, after, limit)
}

// mostMergedValues is how many values' pages valuesList merges at most
// for pages of limit.
func mostMergedValues(limit int) int { return min(maxRangeValues, rangeRowBudget/max(limit, 1)) }

// valuesList is ListEvents for a filter whose column is one of values (of
// SQL type typ) and whose other conditions are rest: the page of each
// value from the column's index, in list order, merged. ok is false when
// there are more values than mostMergedValues.
func valuesList(ctx context.Context, db DBTX, tenantID, column, typ string, values []string, rest audex.Filter, order audex.Order, after *audex.Position, limit int) (events []audex.Event, ok bool, err error) {
	if len(values) > mostMergedValues(limit) {
		return nil, false, nil
	}
	if len(values) == 0 {
		return []audex.Event{}, true, nil
	}
	var q queryBuilder
	dir := q.page(tenantID, rest, order, after)
	q.where(column + " = v.val")
	list := q.arg(values)
	n := q.arg(limit)
	sql := fmt.Sprintf(`SELECT e.* FROM unnest(%s::text[]::%s[]) AS v(val)
		CROSS JOIN LATERAL (SELECT %s FROM events WHERE %s ORDER BY occurred_at %s, id %s LIMIT %s) e
		ORDER BY e.occurred_at %s, e.id %s LIMIT %s`,
		list, typ, selectEventColumns, strings.Join(q.conds, " AND "), dir, dir, n, dir, dir, n)
	rows, err := db.Query(ctx, sql, q.args...)
	if err != nil {
		return nil, true, err
	}
	events, err = pgx.CollectRows(rows, scanEvent)
	return events, true, err
}

// A range of many values (a common prefix, a /16) is read one of two ways:
// down the list's own order (the time index, or rest's), keeping what is
// in the range, which costs about limit / share rows; or from the column's
// index, which costs at most share x the tenant's events. Right
// after a bulk ingest the planner has no statistics to weigh the share
// with, and its default guess made a /16 holding 22% of a tenant's events
// sort 225,000 rows for a page of 100. wideRangeList measures the share
// instead: it reads down the list's order for at most probeRows rows,
// which ends the page at once when the range is common; otherwise a range
// of few values gives the rest of the page by merging each value's
// (mergedValuesList), and the share of one of many among those rows says
// which way the rest of the page is cheaper, and it continues that way:
// from the column's index, it reads a day's entries first, then more
// days (listRangeByDays).

// probeRowsPerPageRow is how many rows, per row of the page, the first
// read down the list order may look at: a page of 100 fills from those
// 1,000 rows when the range holds 10% or more of them.
const probeRowsPerPageRow = 10

// wideRangeList is ListEvents for a page of a filter whose one range r
// has more than few events, its other conditions being rest.
func wideRangeList(ctx context.Context, db DBTX, tenantID string, r columnRange, rest audex.Filter, order audex.Order, after *audex.Position, limit int) ([]audex.Event, error) {
	window := limit * probeRowsPerPageRow
	events, end, err := walkSelection(ctx, db, tenantID, r, rest, order, after, window, limit)
	if err != nil || end == nil {
		return events, err
	}
	if more, ok, err := mergedValuesList(ctx, db, tenantID, r, rest, order, end, limit-len(events)); err != nil || ok {
		return append(events, more...), err
	}
	// The tenant's size, with the share of the range among the rows read,
	// says which way the rest of the page costs less.
	total, err := tenantEvents(ctx, db, tenantID)
	if err != nil {
		return nil, err
	}
	walked := window
	for end != nil {
		need := limit - len(events)
		share := float64(len(events)) / float64(walked)
		walk := float64(need) / share // rows to read on down the list order
		if len(events) == 0 || walk > share*float64(total) {
			more, err := listRangeByDays(ctx, db, tenantID, r, rest, order, end, need)
			return append(events, more...), err
		}
		// Reading on down the list's order costs less: about walk rows,
		// read with room to spare.
		window = int(min(2*walk, float64(total))) + limit
		more, next, err := walkSelection(ctx, db, tenantID, r, rest, order, end, window, need)
		if err != nil {
			return nil, err
		}
		events, end, walked = append(events, more...), next, walked+window
	}
	return events, nil
}

// A range of many events that is not common (a medium project's prefix,
// a /23 of 30,000 events at 10,000,000) is read from its own index a day
// at a time, then 8 days, 64, ... (listByDays): each read walks the
// range's index entries but fetches the rows of its days alone, where
// reading the whole range sorted fetched every row of it (180 ms right
// after a bulk ingest, when no visibility map lets the index be read
// alone).

// maxRangeDays is the most days that one read of a range covers: any.
const maxRangeDays = 1 << 16

// listRangeByDays reads up to limit of the events in the range r that
// rest selects after the position after, in list order, from the range's
// index: a day first, then dayChunkGrowth times as many days each read.
func listRangeByDays(ctx context.Context, db DBTX, tenantID string, r columnRange, rest audex.Filter, order audex.Order, after *audex.Position, limit int) ([]audex.Event, error) {
	return listByDays(ctx, db, tenantID, rest, order, after, 1, dayChunkGrowth, maxRangeDays, limit,
		func(from, to time.Time, limit int) ([]audex.Event, error) {
			return sortedRangeList(ctx, db, tenantID, r, daysOf(rest, from, to), order, after, limit)
		})
}

// daysOf is f narrowed to the UTC days from to to.
func daysOf(f audex.Filter, from, to time.Time) audex.Filter {
	end := to.AddDate(0, 0, 1)
	if f.Since == nil || f.Since.Before(from) {
		f.Since = &from
	}
	if f.Until == nil || f.Until.After(end) {
		f.Until = &end
	}
	return f
}

// tenantEvents is how many events the tenant holds.
func tenantEvents(ctx context.Context, db DBTX, tenantID string) (int64, error) {
	var q queryBuilder
	sql := tenantEventsQuery(&q, q.arg(tenantID))
	var total int64
	err := db.QueryRow(ctx, sql, q.args...).Scan(&total)
	return total, err
}

// tenantEventsQuery is the statement of how many events the tenant of
// the placeholder tenant holds (from event_values: one action each).
func tenantEventsQuery(q *queryBuilder, tenant string) string {
	return fmt.Sprintf("SELECT coalesce(sum(events), 0) FROM event_values WHERE tenant_id = %s AND kind = %s", tenant, q.arg(ValueAction))
}

// sortedRangeList reads the page from the range's own index, all of the
// range (with rest), sorted. The keys are read in the column's order,
// which only the column's index serves (and lists run with sorts ruled
// out where an index serves the order: listPlanSettings), so that the
// planner reads the range rather than walk the time index, whatever its
// statistics say; conditions on occurred_at (rest's range, the days of
// listRangeByDays) pass over the range's other entries in the index.
// Only the keys are sorted, read from the index alone where the table's
// visibility map allows (the index holds occurred_at and id), before the
// page's rows are fetched by key: a range of 3,000 events costs 3,000
// index entries, not 3,000 rows.
func sortedRangeList(ctx context.Context, db DBTX, tenantID string, r columnRange, rest audex.Filter, order audex.Order, after *audex.Position, limit int) ([]audex.Event, error) {
	var q queryBuilder
	dir := q.page(tenantID, rest, order, after)
	q.where(r.condition(&q))
	// (A subquery with an ORDER BY or a LIMIT is not merged into the
	// statement around it: each runs as written.)
	sql := fmt.Sprintf(`SELECT %[3]s FROM (SELECT * FROM (SELECT tenant_id, occurred_at, id FROM events WHERE %[1]s ORDER BY %[2]s) k
			ORDER BY occurred_at %[4]s, id %[4]s LIMIT %[5]s) p
		JOIN events e USING (tenant_id, occurred_at, id) ORDER BY occurred_at %[4]s, id %[4]s`,
		strings.Join(q.conds, " AND "), r.column, selectEventColumns, dir, q.arg(limit))
	rows, err := db.Query(ctx, sql, q.args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanEvent)
}

// walkSelection reads the tenant's events that match rest after the
// position after, in list order, for at most window rows, and returns
// those that s selects, at most limit. end is nil when that is the whole
// answer (the page is full, or fewer than window rows were left);
// otherwise it is the position of the window's last row, from where the
// rest of the page is to be found.
func walkSelection(ctx context.Context, db DBTX, tenantID string, s selection, rest audex.Filter, order audex.Order, after *audex.Position, window, limit int) (events []audex.Event, end *audex.Position, err error) {
	// The window's LIMIT keeps the selection out of the inner statement, so
	// that it is read in list order; row_number() numbers the rows in that
	// order as they stream, and the outer LIMIT stops the read as soon as
	// the page is full. The window's last row comes too, matching or not,
	// to say where the window ended.
	var q queryBuilder
	inner := q.listOf("*", "occurred_at", tenantID, rest, order, after, window)
	// (A row without the column's value is not in the range: the
	// condition is NULL there.)
	sql := fmt.Sprintf(`SELECT %s, in_range, n FROM (SELECT *, coalesce(%s, false) AS in_range, row_number() OVER () AS n FROM (%s) w) x
		WHERE in_range OR n = %d LIMIT %s`,
		selectEventColumns, s.condition(&q), inner, window, q.arg(limit))
	rows, err := db.Query(ctx, sql, q.args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var inRange bool
		var n int
		e, err := scanEventAnd(rows, &inRange, &n)
		if err != nil {
			return nil, nil, err
		}
		if inRange {
			events = append(events, e)
		}
		if n == window && len(events) < limit {
			end = &audex.Position{OccurredAt: e.OccurredAt, ID: e.ID}
		}
	}
	return events, end, rows.Err()
}

// condition adds r's arguments to q and returns r's condition.
func (r columnRange) condition(q *queryBuilder) string {
	return fmt.Sprintf("%s >= %s::%s", r.column, q.arg(r.lower), r.typ) + r.bound(q)
}

// A list by an actor or a target and more (an action, a range, success)
// is served in list order by one index only, and which one the planner
// walks rests on its estimates; right after a bulk ingest, with none, it
// walked a common action's index filtering a rare actor (p50 15 ms on
// 1,000,000 events). rareValueList counts the actor's (or target's) events
// in the time range first, from its index and only up to a cap: when they
// are fewer, it reads them all from that index and keeps, in order, those
// that the rest of the filter selects.

// rareRowsPerPageRow is the cap of that count, per row of the page: an
// actor of under 1,000 events in the range is read whole for a page of
// 100. (The count costs a common actor's list that many index entries.)
const rareRowsPerPageRow = 10

// rareValueList is ListEvents for a filter with an actor or target id and
// another condition; ok is false when the filter is not such, or its
// actor and target each have cap events or more (the caller lists
// otherwise).
func rareValueList(ctx context.Context, db DBTX, tenantID string, f audex.Filter, order audex.Order, after *audex.Position, limit int) (events []audex.Event, ok bool, err error) {
	rest := f
	rest.Since, rest.Until, rest.ActorID, rest.TargetID = nil, nil, nil, nil
	var conds queryBuilder
	if conds.filter(rest); len(conds.conds) == 0 {
		return nil, false, nil // one index serves it in list order
	}
	most := limit * rareRowsPerPageRow
	for _, one := range []audex.Filter{{ActorID: f.ActorID}, {TargetID: f.TargetID}} {
		if one.ActorID == nil && one.TargetID == nil {
			continue
		}
		one.Since, one.Until = f.Since, f.Until
		var q queryBuilder
		inner := q.listOf("1", "occurred_at", tenantID, one, order, after, most)
		var n int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM (`+inner+`) c`, q.args...).Scan(&n); err != nil {
			return nil, false, err
		}
		if n >= most {
			continue
		}
		// All of its n events, then the rest of the filter over them.
		others := f
		others.Since, others.Until = nil, nil
		var r queryBuilder
		all := r.listOf("*", "occurred_at", tenantID, one, order, after, most)
		outer := queryBuilder{args: r.args}
		outer.filter(others)
		where := "true"
		if len(outer.conds) > 0 {
			where = strings.Join(outer.conds, " AND ")
		}
		dir := "ASC"
		if order == audex.OrderDesc {
			dir = "DESC"
		}
		sql := fmt.Sprintf(`WITH k AS MATERIALIZED (%s) SELECT %s FROM k WHERE %s ORDER BY occurred_at %s, id %s LIMIT %s`,
			all, selectEventColumns, where, dir, dir, outer.arg(limit))
		rows, err := db.Query(ctx, sql, outer.args...)
		if err != nil {
			return nil, true, err
		}
		events, err = pgx.CollectRows(rows, scanEvent)
		return events, true, err
	}
	return nil, false, nil
}
