package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audex-dev/audex"
)

// Actions, actor types, target types and request ids have no B-tree index
// of their own: one GIN index, events_keys_idx (migration 00015), holds
// each event's values of the four as keys of its UTC day. A value that
// matches few events in all (a rare one, as event_values counts it) is
// read from the keys index whole at once (maxReadKeys days x values at a
// time), sorted; one that matches too few for a read down the list order
// to fill a page cheaply (a medium one), when nothing else filters rows,
// a day at a time, then 8, 64, ... days (dayChunkGrowth). A page of a
// list filtered by others is read down the list order first (probeRowsPerPageRow rows per page row), where a common
// value fills the page at once; then from the keys index, on from where
// that read stopped, each read sorted, until the page is full or the
// filter's days are done. The share found in the first read, with the
// tenant's size, says how many days a read covers: a value with few
// matches (a request id, which event_values does not count) is read whole
// at once; one that matches
// more (a medium one, 0.3% of a tenant's events, say) a day first, then
// 8, 64, ... days (dayChunkGrowth), and fills a page from a day or two.
// Days that hold none of the tenant's events are skipped. An
// action_prefix becomes the tenant's actions that start with it (from
// event_values, which ingest, purges and retention keep exact), as several
// actions.

// keysIndexed is the expression that events_keys_idx indexes.
const keysIndexed = "audex_event_keys(tenant_id, occurred_at, action, actor_type, target_type, request_id)"

const (
	// maxPrefixActions is the most actions an action_prefix is turned
	// into; a prefix of more is only checked row by row.
	maxPrefixActions = 1000
	// maxReadKeys bounds the keys that one read of the keys index asks
	// for: days x the values of a set.
	maxReadKeys = 128
	// fewKeyMatchesPerPageRow is how many matches in all, per row of the
	// page, a value may have for all its days to be read at once: sorting
	// 1,000 rows found through the keys index costs about 4 ms (each is a
	// heap fetch of its own), 6,000 about 20.
	fewKeyMatchesPerPageRow = 10
	// keysWalkRowsPerPageRow is how many rows, per row of the page, a
	// list by values of the keys index reads on down the list order
	// after its first read, rather than read the keys index: a value of
	// 3% of a tenant's 10,000,000 events sorted a day's 11,000 matches
	// (20 ms) for the 70 rows that 2,300 more rows down the list order
	// held.
	keysWalkRowsPerPageRow = 50
	// sortedRowCost is about what a row read from the keys index and
	// sorted costs, in rows read down the list order (4 ms for 1,000
	// sorted, 8-11 ms for 5,000 to 9,000 read in order).
	sortedRowCost = 3
	// minKeysWindow is the fewest rows that the first read down the list
	// order looks at, so that its share says something for short pages.
	minKeysWindow = 1000
	// dayChunkGrowth is how much longer each read of days is than the
	// last.
	dayChunkGrowth = 8
)

// keySet is values of one column of the keys index ("a" action, "y" actor
// type, "z" target type, "r" request id: audex_event_key's kinds), of
// which an event must hold one.
type keySet struct {
	kind   string
	values []string
}

// countedKinds are the event_values kinds of the keys index's kinds that
// event_values counts (request ids it does not).
var countedKinds = map[string]string{"a": ValueAction, "y": ValueActorType, "z": ValueTargetType}

// eventKeys is the part of a list's filter that the keys index serves.
type eventKeys struct {
	tenantID string
	// filter holds the part's conditions as they are checked on a row.
	filter audex.Filter
	// sets must each hold one of the event's keys.
	sets []keySet
	// narrow are the sets that reads of the keys index ask for (nil: all
	// of them); rows are checked against every set anyway.
	narrow []keySet
}

// narrowSetFactor is how many times as many events as the set of fewest
// matches another set may count and still be asked of the keys index: a
// common value costs more entries of the index's posting lists than the
// rows it would spare (a common actor type with a rare action: 5-7 ms
// for the page, most of it the actor type's entries).
const narrowSetFactor = 16

// keysOf returns the part of f that the keys index serves, and f without
// it; ok is false when f has none. An action_prefix is looked up in
// event_values.
func keysOf(ctx context.Context, db DBTX, tenantID string, f audex.Filter) (k eventKeys, rest audex.Filter, ok bool, err error) {
	k.tenantID, rest = tenantID, f
	k.filter = audex.Filter{Actions: f.Actions, ActionPrefix: f.ActionPrefix, ActorType: f.ActorType, TargetType: f.TargetType, RequestID: f.RequestID}
	rest.Actions, rest.ActionPrefix, rest.ActorType, rest.TargetType, rest.RequestID = nil, nil, nil, nil, nil
	if len(f.Actions) > 0 {
		k.sets = append(k.sets, keySet{"a", f.Actions})
	}
	for _, v := range []struct {
		kind  string
		value *string
	}{{"y", f.ActorType}, {"z", f.TargetType}, {"r", f.RequestID}} {
		if v.value != nil {
			k.sets = append(k.sets, keySet{v.kind, []string{*v.value}})
		}
	}
	if p := f.ActionPrefix; p != nil && *p != "" {
		actions, err := prefixActions(ctx, db, tenantID, *p)
		if err != nil {
			return k, f, false, err
		}
		if len(actions) <= maxPrefixActions {
			k.sets = append(k.sets, keySet{"a", actions})
		}
	}
	if len(k.sets) == 0 {
		return eventKeys{}, f, false, nil
	}
	return k, rest, true, nil
}

// prefixActions returns the tenant's actions that start with p, up to
// maxPrefixActions+1 of them.
func prefixActions(ctx context.Context, db DBTX, tenantID, p string) ([]string, error) {
	var q queryBuilder
	q.where("tenant_id = " + q.arg(tenantID))
	q.where("kind = " + q.arg(ValueAction))
	q.prefix("value", &p)
	rows, err := db.Query(ctx, fmt.Sprintf(`SELECT value FROM event_values WHERE %s AND events > 0 ORDER BY value LIMIT %d`,
		strings.Join(q.conds, " AND "), maxPrefixActions+1), q.args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// none is true when some set has no value: no event matches (an
// action_prefix of none of the tenant's actions).
func (k eventKeys) none() bool {
	for _, s := range k.sets {
		if len(s.values) == 0 {
			return true
		}
	}
	return false
}

// counted returns how many of the tenant's events k may match at most and
// how many the tenant holds, from event_values, which counts them by
// action, actor type and target type exactly: the least of k's sets'
// counts. ok is false when k has only request ids, which it does not
// count. When it counts every set, it narrows the reads of the keys
// index to the sets of narrowSetFactor times that least count or fewer.
func (k *eventKeys) counted(ctx context.Context, db DBTX) (matches, total int64, ok bool, err error) {
	var q queryBuilder
	tenant := q.arg(k.tenantID)
	var counts []string
	var counted []keySet
	for _, s := range k.sets {
		if kind, ok := countedKinds[s.kind]; ok {
			counts = append(counts, fmt.Sprintf("(SELECT coalesce(sum(events), 0) FROM event_values WHERE tenant_id = %s AND kind = %s AND value = ANY(%s))",
				tenant, q.arg(kind), q.arg(s.values)))
			counted = append(counted, s)
		}
	}
	if len(counts) == 0 {
		return 0, 0, false, nil
	}
	values := make([]int64, len(counts))
	dest := []any{&total}
	for i := range values {
		dest = append(dest, &values[i])
	}
	err = db.QueryRow(ctx, fmt.Sprintf("SELECT (%s), %s", tenantEventsQuery(&q, tenant), strings.Join(counts, ", ")), q.args...).Scan(dest...)
	if err != nil {
		return 0, 0, false, err
	}
	matches = slices.Min(values)
	if len(counted) == len(k.sets) && len(counted) > 1 {
		for i, s := range counted {
			if values[i] <= narrowSetFactor*max(matches, 1) {
				k.narrow = append(k.narrow, s)
			}
		}
	}
	return matches, total, true, nil
}

// indexSets are the sets that a read of the keys index asks for.
func (k eventKeys) indexSets() []keySet {
	if k.narrow != nil {
		return k.narrow
	}
	return k.sets
}

// rowFilters reports whether f selects events by more than their times.
func rowFilters(f audex.Filter) bool {
	f.Since, f.Until, f.ReceivedBefore = nil, nil, nil
	var q queryBuilder
	q.filter(f)
	return len(q.conds) > 0
}

// condition is k's conditions as they are checked on a row.
func (k eventKeys) condition(q *queryBuilder) string {
	return q.joined(func(c *queryBuilder) { c.filter(k.filter) })
}

// indexed is k's condition on the keys index for events of the UTC days
// of first to last.
func (k eventKeys) indexed(q *queryBuilder, first, last time.Time) string {
	tenant := q.arg(k.tenantID)
	days := fmt.Sprintf("generate_series(audex_event_day(%s::timestamptz), audex_event_day(%s::timestamptz)) d", q.arg(first), q.arg(last))
	sets := k.indexSets()
	conds := make([]string, len(sets))
	for i, s := range sets {
		conds[i] = fmt.Sprintf("%s && ARRAY(SELECT audex_event_key(%s, d::integer, '%s', v) FROM %s, unnest(%s::text[]) v)",
			keysIndexed, tenant, s.kind, days, q.arg(s.values))
	}
	return strings.Join(conds, " AND ")
}

// fenced is a source of statements (queryBuilder.from): the events that
// the keys index gives for k's sets on the UTC days of first to last.
// The fence (OFFSET 0) keeps the statement's other conditions out of the
// index read, so that the planner neither ANDs it with a read of another
// index nor reads another index instead: right after a bulk ingest, the
// tenant's whole arrival index (a count of a rare action read 31,000
// rows of a partition whose statistics said it was empty). No bounds on
// occurred_at there either: with statistics, the planner ANDed the keys
// with a scan of the whole time index for them (occurred_at is not its
// first column: 660 ms for 8 days at 10,000,000 events); each
// partition's keys index answers for days it does not hold at the cost
// of a probe per key.
func (k eventKeys) fenced(q *queryBuilder, first, last time.Time) string {
	return fmt.Sprintf("(SELECT * FROM events WHERE %s OFFSET 0) events", k.indexed(q, first, last))
}

// maxDays is the most days that one read of the keys index may cover.
func (k eventKeys) maxDays() int {
	most := 1
	for _, s := range k.indexSets() {
		most = max(most, len(s.values))
	}
	return max(1, maxReadKeys/most)
}

// filterDays returns the first and last UTC days of f's range that hold
// the tenant's events; ok is false when there are none.
func filterDays(ctx context.Context, db DBTX, tenantID string, f audex.Filter) (first, last time.Time, ok bool, err error) {
	// Each an ordered read of the time index (min and max, without
	// statistics of the tenant, were planned as a read of all its rows).
	var oldest, newest *time.Time
	if err := db.QueryRow(ctx, `SELECT
		(SELECT occurred_at FROM events WHERE tenant_id = $1 ORDER BY occurred_at LIMIT 1),
		(SELECT occurred_at FROM events WHERE tenant_id = $1 ORDER BY occurred_at DESC LIMIT 1)`, tenantID).Scan(&oldest, &newest); err != nil || oldest == nil {
		return first, last, false, err
	}
	if f.Since != nil && f.Since.After(*oldest) {
		oldest = f.Since
	}
	if f.Until != nil {
		if u := f.Until.Add(-time.Microsecond); u.Before(*newest) {
			newest = &u
		}
	}
	if oldest.After(*newest) {
		return first, last, false, nil
	}
	return utcDay(*oldest), utcDay(*newest), true, nil
}

// nextEventDay returns the nearest UTC day past day, in order, that holds
// one of the tenant's events in f's range; ok is false when none does.
// (It lets a list skip the days that hold nothing.)
func nextEventDay(ctx context.Context, db DBTX, tenantID string, f audex.Filter, order audex.Order, day time.Time) (next time.Time, ok bool, err error) {
	var q queryBuilder
	q.where("tenant_id = " + q.arg(tenantID))
	q.filter(audex.Filter{Since: f.Since, Until: f.Until})
	dir := "DESC"
	if order == audex.OrderDesc {
		q.where("occurred_at < " + q.arg(day))
	} else {
		dir = "ASC"
		q.where("occurred_at >= " + q.arg(day.AddDate(0, 0, 1)))
	}
	var t time.Time
	err = db.QueryRow(ctx, fmt.Sprintf("SELECT occurred_at FROM events WHERE %s ORDER BY occurred_at %s LIMIT 1", strings.Join(q.conds, " AND "), dir), q.args...).Scan(&t)
	if errors.Is(err, pgx.ErrNoRows) {
		return next, false, nil
	}
	if err != nil {
		return next, false, err
	}
	return utcDay(t), true, nil
}

// readDays reads, through the keys index, up to limit of the events that
// f selects (k being a part of it) after the position after, of the UTC
// days of first to last, in list order.
func (k eventKeys) readDays(ctx context.Context, db DBTX, f audex.Filter, order audex.Order, after *audex.Position, first, last time.Time, limit int) ([]audex.Event, error) {
	var q queryBuilder
	q.from = k.fenced(&q, first, last)
	sql := q.listOf(selectEventColumns, "occurred_at", k.tenantID, f, order, after, limit)
	rows, err := db.Query(ctx, sql, q.args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanEvent)
}

// keysList is ListEvents for a page of a filter f that the keys index
// serves in part; ok is false when it serves none of f.
func keysList(ctx context.Context, db DBTX, tenantID string, f audex.Filter, order audex.Order, after *audex.Position, limit int) (events []audex.Event, ok bool, err error) {
	k, rest, ok, err := keysOf(ctx, db, tenantID, f)
	if err != nil || !ok {
		return nil, false, err
	}
	if k.none() {
		return []audex.Event{}, true, nil
	}
	// As event_values counts them: few matches in all are read from the
	// keys index all days at once; matches too few for a read down the
	// list order to fill the page cheaply (when nothing else filters
	// rows), a day at a time. A read down the list order would find next
	// to none of either.
	matches, total, counted, err := k.counted(ctx, db)
	if err != nil {
		return nil, true, err
	}
	page := pageWeight(limit)
	switch {
	case counted && matches <= fewKeyMatchesPerPageRow*page:
		events, err := k.listDays(ctx, db, f, order, after, k.maxDays(), 1, limit)
		return events, true, err
	case counted && !rowFilters(rest):
		byDays, err := k.cheaperByDays(ctx, db, limit, matches, total)
		if err != nil {
			return nil, true, err
		}
		if byDays {
			events, err := k.listDays(ctx, db, f, order, after, 1, dayChunkGrowth, limit)
			return events, true, err
		}
	}
	window := max(limit*probeRowsPerPageRow, minKeysWindow)
	events, end, err := walkSelection(ctx, db, tenantID, k, rest, order, after, window, limit)
	if err != nil || end == nil {
		return events, true, err
	}
	// Few matches in all, by the share in the window (at least one row of
	// it, when it held none), and the tenant's size (for request ids,
	// which event_values does not count): read all days at once; else a
	// day first, then more.
	if !counted {
		if total, err = tenantEvents(ctx, db, tenantID); err != nil {
			return nil, true, err
		}
	}
	share := float64(max(len(events), 1)) / float64(window)
	size, growth := k.maxDays(), 1
	if share*float64(total) > float64(fewKeyMatchesPerPageRow*pageWeight(limit)) {
		size, growth = 1, dayChunkGrowth
		// Common enough that reading on down the list order for the
		// rest of the page costs little: do so (with room to spare).
		if need := float64(limit - len(events)); len(events) > 0 && need/share <= float64(keysWalkRowsPerPageRow*pageWeight(limit)) {
			more, next, err := walkSelection(ctx, db, tenantID, k, rest, order, end, int(2*need/share)+limit, limit-len(events))
			if events = append(events, more...); err != nil || next == nil {
				return events, true, err
			}
			end = next
		}
	}
	more, err := k.listDays(ctx, db, f, order, end, size, growth, limit-len(events))
	return append(events, more...), true, err
}

// pageWeight is the rows that the keys index's rules weigh a page of
// limit rows at: its limit, and at least 100, so that a shorter page
// chooses its read as a page of 100 would.
func pageWeight(limit int) int64 { return int64(max(limit, 100)) }

// cheaperByDays reports whether a page of limit events of k's values,
// which match matches of the tenant's total events, when nothing else
// filters rows, is cheaper read from the keys index a day at a time than
// down the list order: when the rows that a read down the list order
// looks at for the page (limit x total / matches) are more than
// keysWalkRowsPerPageRow per page row, or more than sortedRowCost times
// the matches of a day (over the days from the tenant's first event to
// its last). The second is for a tenant of few events a day: a value of
// 2% of 33,000 events a day sorted a day's 680 matches (3 ms) where a
// read down the list order looked at 5,000 rows and more (8-11 ms).
func (k eventKeys) cheaperByDays(ctx context.Context, db DBTX, limit int, matches, total int64) (bool, error) {
	walk := int64(limit) * total / matches
	if walk > keysWalkRowsPerPageRow*pageWeight(limit) {
		return true, nil
	}
	first, last, ok, err := filterDays(ctx, db, k.tenantID, audex.Filter{})
	if err != nil || !ok {
		return false, err
	}
	days := int64(last.Sub(first)/(24*time.Hour)) + 1
	return walk > sortedRowCost*matches/days, nil
}

// listDays reads up to limit of the events that f selects (k being a
// part of it) after the position after (nil: from the range's first day),
// in list order, from the keys index: size days at first, each read
// growth times as many days as the last (listByDays).
func (k eventKeys) listDays(ctx context.Context, db DBTX, f audex.Filter, order audex.Order, after *audex.Position, size, growth, limit int) ([]audex.Event, error) {
	return listByDays(ctx, db, k.tenantID, f, order, after, size, growth, k.maxDays(), limit,
		func(from, to time.Time, limit int) ([]audex.Event, error) {
			return k.readDays(ctx, db, f, order, after, from, to, limit)
		})
}

// listByDays reads up to limit of the tenant's events in f's range after
// the position after (nil: from the range's first day), in list order,
// through read, which lists those of the UTC days from to to (up to a
// limit): size days at first, each read growth times as many days as the
// last, at most most days, skipping days that hold none of the tenant's
// events.
func listByDays(ctx context.Context, db DBTX, tenantID string, f audex.Filter, order audex.Order, after *audex.Position, size, growth, most, limit int, read func(from, to time.Time, limit int) ([]audex.Event, error)) ([]audex.Event, error) {
	step := -1
	if order == audex.OrderAsc {
		step = 1
	}
	// The days of the range that hold the tenant's events: each key of
	// a read of the keys index costs a scan of its pending list, so no
	// read asks for days before or after them.
	first, last, ok, err := filterDays(ctx, db, tenantID, f)
	if err != nil || !ok {
		return []audex.Event{}, err
	}
	near, far := last, first
	if step > 0 {
		near, far = first, last
	}
	if after != nil {
		near = utcDay(after.OccurredAt)
	}
	events := []audex.Event{}
	for ; ; size *= growth {
		edge := near.AddDate(0, 0, step*(min(size, most)-1))
		end := step < 0 && !edge.After(far) || step > 0 && !edge.Before(far)
		if end {
			edge = far
		}
		from, to := near, edge
		if step < 0 {
			from, to = edge, near
		}
		more, err := read(from, to, limit-len(events))
		if err != nil {
			return nil, err
		}
		if events = append(events, more...); len(events) >= limit || end {
			return events, nil
		}
		next, ok, err := nextEventDay(ctx, db, tenantID, f, order, edge)
		if err != nil || !ok {
			return events, err
		}
		near = next
	}
}
