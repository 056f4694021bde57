package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/audex-dev/audex"
)

// eventColumns are the columns of events in the order that scanEvent reads
// and that EventCopyRow writes (after tenant_id).
var eventColumns = []string{
	"id", "occurred_at", "received_at", "action",
	"actor_id", "actor_type", "actor_name",
	"target_id", "target_type", "target_name",
	"resource", "source_ip", "user_agent", "request_id", "method", "path",
	"status_code", "success", "duration_ms", "metadata",
}

// selectEventColumns reads eventColumns, with source_ip as plain text.
var selectEventColumns = strings.Replace(strings.Join(eventColumns, ", "), "source_ip", "host(source_ip)", 1)

// InsertEvents stores a batch of a tenant's events, all or none, in one
// transaction (nested in db's when db is one). Each event must carry its
// id. An event whose id is already stored in the tenant, or repeats an
// earlier id of the same batch, is not stored again: the first stored copy
// wins. It returns, per event, whether it was newly stored, and sets
// ReceivedAt on the stored ones to the transaction's time. Safe to call
// concurrently with the same ids: one caller stores each id.
//
// Most batches hold no id stored before, so their ids are first copied
// into event_ids as they are (a COPY; the dedupe's INSERT ... ON CONFLICT
// costs the database two to four times as much per id). A batch that the
// copy finds an id of stored, or given twice, is run again with the
// dedupe.
func InsertEvents(ctx context.Context, db DBTX, tenantID string, events []audex.Event) ([]bool, error) {
	stored, err := insertEvents(ctx, db, tenantID, events, false)
	if isEventIDConflict(err) {
		stored, err = insertEvents(ctx, db, tenantID, events, true)
	}
	if err != nil {
		return nil, fmt.Errorf("insert events: %w", translate(err))
	}
	return stored, nil
}

// isEventIDConflict reports whether err is a stored (or repeated) event id.
func isEventIDConflict(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "event_ids_pkey"
}

// insertEvents is InsertEvents in one transaction: with dedupe, each id
// is inserted unless it is stored already; without, every id is copied
// in, and a stored or repeated one fails the transaction.
func insertEvents(ctx context.Context, db DBTX, tenantID string, events []audex.Event, dedupe bool) ([]bool, error) {
	stored := make([]bool, len(events))
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		// The shared ingest lock lets an export wait for every ingest that
		// was under way when it was created (WaitForIngests); received_at
		// is read after taking it.
		var receivedAt time.Time
		if err := tx.QueryRow(ctx, `SELECT clock_timestamp() FROM pg_advisory_xact_lock_shared(`+ingestLockKey+`)`, tenantID).Scan(&receivedAt); err != nil {
			return err
		}
		if dedupe {
			if err := insertNewIDs(ctx, tx, tenantID, events, stored); err != nil {
				return err
			}
		} else {
			err := copyEventIDs(ctx, tx, len(events), func(i int) []any { return []any{tenantID, events[i].ID, events[i].OccurredAt} })
			if err != nil {
				return err
			}
			for i := range stored {
				stored[i] = true
			}
		}
		copyRows := make([][]any, 0, len(events))
		for i := range events {
			if stored[i] {
				events[i].ReceivedAt = receivedAt.UTC()
				copyRows = append(copyRows, EventCopyRow(tenantID, &events[i]))
			}
		}
		if len(copyRows) == 0 {
			return nil
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, EventCopyColumns, pgx.CopyFromRows(copyRows)); err != nil {
			return err
		}
		// Last, so that the hot event_values rows stay locked only until
		// the commit that follows.
		return addValueCounts(ctx, tx, tenantID, valueCounts(events, func(i int) bool { return stored[i] }))
	})
	return stored, err
}

// insertNewIDs inserts into event_ids the ids of events that are not
// stored yet, the first of any id the batch repeats, and marks their
// events in stored.
func insertNewIDs(ctx context.Context, tx pgx.Tx, tenantID string, events []audex.Event, stored []bool) error {
	ids := make([]string, len(events))
	times := make([]time.Time, len(events))
	for i, e := range events {
		ids[i], times[i] = e.ID, e.OccurredAt
	}
	// unnest keeps array order, so of two rows with one id the first is
	// inserted and the second meets the conflict.
	rows, err := tx.Query(ctx, `
		INSERT INTO event_ids (tenant_id, id, occurred_at)
		SELECT $1, u.id, u.occurred_at FROM unnest($2::text[], $3::timestamptz[]) AS u(id, occurred_at)
		ON CONFLICT DO NOTHING
		RETURNING id`, tenantID, ids, times)
	if err != nil {
		return err
	}
	inserted, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	fresh := make(map[string]bool, len(inserted))
	for _, id := range inserted {
		fresh[id] = true
	}
	for i := range events {
		if fresh[events[i].ID] {
			delete(fresh, events[i].ID)
			stored[i] = true
		}
	}
	return nil
}

// ingestLockKey is the advisory lock key, from the tenant id in $1, that
// every ingest transaction holds shared and whose holders WaitForIngests
// waits for.
const ingestLockKey = `hashtextextended('audex_ingest:' || $1, 0)`

// IngestBarrier returns a time before which every event of the tenant is
// committed, and after which every event still to come is received: the
// database's clock, read before waiting for the tenant's ingests under
// way to end (WaitForIngests). Exports' as_of, downloads, stream batches,
// rollups and seals all stop there.
func IngestBarrier(ctx context.Context, db DBTX, tenantID string) (time.Time, error) {
	var at time.Time
	if err := db.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&at); err != nil {
		return at, translate(err)
	}
	return at, WaitForIngests(ctx, db, tenantID)
}

// WaitForIngests returns once every ingest transaction of the tenant that
// was under way when it was called has ended; an ingest that starts
// meanwhile is not waited for, and gets a later received_at. An export
// created at as_of calls it after as_of, and then every event with
// received_at before as_of is committed. It waits for the holders of the
// tenant's ingest lock without asking for the lock: an exclusive request
// would make every new ingest of the tenant, and every self-audit event,
// queue behind the slowest ingest under way (migration 00016).
func WaitForIngests(ctx context.Context, db DBTX, tenantID string) error {
	if _, err := db.Exec(ctx, `SELECT audex_wait_for_lock_holders(`+ingestLockKey+`)`, tenantID); err != nil {
		return fmt.Errorf("wait for ingests: %w", translate(err))
	}
	return nil
}

// scanEventAnd is scanEvent for a row whose selectEventColumns are followed
// by more columns, scanned into extra.
func scanEventAnd(row pgx.Row, extra ...any) (audex.Event, error) {
	var e audex.Event
	var target audex.Target
	var metadata []byte
	err := row.Scan(append([]any{
		&e.ID, &e.OccurredAt, &e.ReceivedAt, &e.Action,
		&e.Actor.ID, &e.Actor.Type, &e.Actor.Name,
		&target.ID, &target.Type, &target.Name,
		&e.Resource, &e.SourceIP, &e.UserAgent, &e.RequestID, &e.Method, &e.Path,
		&e.StatusCode, &e.Success, &e.DurationMS, &metadata,
	}, extra...)...)
	if err != nil {
		return e, err
	}
	e.OccurredAt, e.ReceivedAt = e.OccurredAt.UTC(), e.ReceivedAt.UTC()
	if target.ID != nil || target.Type != nil || target.Name != nil {
		e.Target = &target
	}
	// jsonb's text (a space after every separator, <, >, &, U+2028 and
	// U+2029 raw), kept as read: the event's encoder writes it in the
	// canonical form (audex.Event.AppendMetadata), in one pass with the
	// rest of the event, so nothing is done twice.
	e.Metadata = json.RawMessage(metadata)
	return e, nil
}

// GetEvent returns one of the tenant's events, or ErrNotFound.
func GetEvent(ctx context.Context, db DBTX, tenantID, id string) (audex.Event, error) {
	// The event_ids row says which partition holds the event; the planner
	// prunes the others at run time.
	return queryOne(ctx, db, "get event", scanEvent, `
		SELECT `+selectEventColumns+` FROM events
		WHERE tenant_id = $1 AND id = $2
		  AND occurred_at = (SELECT occurred_at FROM event_ids WHERE tenant_id = $1 AND id = $2)`, tenantID, id)
}

// ListEvents returns up to limit of the tenant's events that match f, in
// order by (occurred_at, id), starting after the position after when it is
// given. A page filtered by a range of one column (a prefix, an address
// block) or by values of the keys index (actions, types, a request id) is
// planned here rather than left to the planner's estimates alone
// (list_ranges.go, list_keys.go).
func ListEvents(ctx context.Context, db DBTX, tenantID string, f audex.Filter, order audex.Order, after *audex.Position, limit int) ([]audex.Event, error) {
	var events []audex.Event
	err := withListPlans(ctx, db, func(tx pgx.Tx) (err error) {
		events, err = listEvents(ctx, tx, tenantID, f, order, after, limit)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list events: %w", translate(err))
	}
	return events, nil
}

// The statements of a list are planned for the way listEvents chose to
// read (list_ranges.go, list_keys.go): down an index in list order, a
// range's or the keys index's matches sorted. The planner's estimates
// must not turn a read down an index into a read of all the tenant's
// rows and a sort: after a tenant's bulk ingest, statistics gathered
// before it say the tenant holds next to nothing (when other tenants
// were all there was), both plans look as cheap, and a first page of no
// filter read and sorted all of a tenant's 1,000,000 events (815 ms).
// listPlanSettings rule that out (a sort costs more than any read in
// order; statements that must sort still do), and rule out parallel
// workers and JIT, which a guess of many rows starts for a small read
// (4-5 ms to start workers for 240 rows; 15-30 ms to compile a plan for
// 259). As the plans are the list's, not the values', each statement is
// planned once per connection (a generic plan), not at every call:
// planning a statement on the partitioned events, every partition's
// indexes weighed, cost 0.5-2.5 ms, more than most of them take to run.
var listPlanSettings = localSettings("enable_sort", "off", "plan_cache_mode", "force_generic_plan",
	"max_parallel_workers_per_gather", "0", "jit", "off")

// withListPlans runs read with listPlanSettings (withSettings).
func withListPlans(ctx context.Context, db DBTX, read func(tx pgx.Tx) error) error {
	return withSettings(ctx, db, listPlanSettings, read)
}

// localSettings is the statement that sets the settings of pairs (name,
// value, name, value, ...: constants of this package) for the rest of
// the transaction.
func localSettings(pairs ...string) string {
	calls := make([]string, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		calls = append(calls, fmt.Sprintf("set_config('%s', '%s', true)", pairs[i], pairs[i+1]))
	}
	return "SELECT " + strings.Join(calls, ", ")
}

// withSettings runs read in a transaction (a savepoint when db is a
// transaction already) with settings, a localSettings statement. It is
// rolled back, never committed: a savepoint's release would keep the
// settings for the rest of the caller's transaction. From a pool the
// settings go with the BEGIN, in one round trip.
func withSettings(ctx context.Context, db DBTX, settings string, read func(tx pgx.Tx) error) error {
	tx, err := beginWith(ctx, db, settings)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	return read(tx)
}

// beginWith begins a transaction of db (a savepoint when db is one) and
// runs settings in it.
func beginWith(ctx context.Context, db DBTX, settings string) (pgx.Tx, error) {
	if pool, ok := db.(interface {
		BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error)
	}); ok {
		return pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: "BEGIN; " + settings})
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, settings); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return nil, err
	}
	return tx, nil
}

func listEvents(ctx context.Context, db DBTX, tenantID string, f audex.Filter, order audex.Order, after *audex.Position, limit int) ([]audex.Event, error) {
	// A page of a list route (at most 1,000 and the one that tells
	// has_more) is planned here; the long reads of exports and downloads,
	// which go on to the end of what matches, are the planner's but for
	// the filters of the keys index.
	page := limit <= maxPlannedPage
	if page {
		if events, ok, err := rareValueList(ctx, db, tenantID, f, order, after, limit); err != nil || ok {
			return events, err
		}
	}
	// Filters of the keys index are planned for the long reads too: no
	// index serves them in list order.
	if events, ok, err := keysList(ctx, db, tenantID, f, order, after, limit); err != nil || ok {
		return events, err
	}
	if r, rest, ok := singleColumnRange(f); ok {
		if page {
			return rangePage(ctx, db, tenantID, r, rest, order, after, limit)
		}
		events, ok, err := mergedValuesList(ctx, db, tenantID, r, rest, order, after, limit)
		if err != nil || ok {
			return events, err
		}
		// A long read of a range of many values is the planner's to the
		// end, for the range's values: it may sort a rare range rather
		// than walk the whole list, and walk the list for a common one.
		if _, err := db.Exec(ctx, localSettings("enable_sort", "on", "plan_cache_mode", "force_custom_plan")); err != nil {
			return nil, err
		}
	} else if indexedFilters(f) > 1 {
		// The planner weighs one value's index against another's by
		// their statistics: planned for these values.
		if _, err := db.Exec(ctx, localSettings("plan_cache_mode", "force_custom_plan")); err != nil {
			return nil, err
		}
	}
	return plannedList(ctx, db, tenantID, f, order, after, limit)
}

// indexedFilters is how many of f's filters have a B-tree index of their
// own (an actor, a target, a resource prefix, a source address).
func indexedFilters(f audex.Filter) int {
	n := 0
	for _, set := range []bool{f.ActorID != nil, f.TargetID != nil, f.ResourcePrefix != nil && *f.ResourcePrefix != "", f.SourceIP != nil} {
		if set {
			n++
		}
	}
	return n
}

// maxPlannedPage is the largest page that listEvents plans itself: a list
// route's page of 1,000 and the row that tells has_more.
const maxPlannedPage = 1001

// plannedList is the list statement as the planner plans it.
func plannedList(ctx context.Context, db DBTX, tenantID string, f audex.Filter, order audex.Order, after *audex.Position, limit int) ([]audex.Event, error) {
	var q queryBuilder
	rows, err := db.Query(ctx, q.list(tenantID, f, order, after, limit), q.args...)
	if err != nil {
		return nil, err
	}
	// Room for a whole page of an export at once, rather than grown to it
	// by doubling (twice the bytes, and a copy at each step).
	return pgx.AppendRows(make([]audex.Event, 0, min(limit, maxPreallocatedPage)), rows, scanEvent)
}

// maxPreallocatedPage is the most events that plannedList makes room for
// before it reads: an export's page.
const maxPreallocatedPage = 2000

// list returns the list statement: the tenant's events that match f after
// the position after, in order, at most limit.
func (q *queryBuilder) list(tenantID string, f audex.Filter, order audex.Order, after *audex.Position, limit int) string {
	return q.listOf(selectEventColumns, "occurred_at", tenantID, f, order, after, limit)
}

// listOf is list selecting columns, ordered by sortKey (occurred_at, or
// an expression of it that no index serves), then id.
func (q *queryBuilder) listOf(columns, sortKey, tenantID string, f audex.Filter, order audex.Order, after *audex.Position, limit int) string {
	dir := q.page(tenantID, f, order, after)
	return fmt.Sprintf("SELECT %s FROM %s WHERE %s ORDER BY %s %s, id %s LIMIT %s",
		columns, q.source(), strings.Join(q.conds, " AND "), sortKey, dir, dir, q.arg(limit))
}

// page adds the conditions of the tenant's events that f selects after
// the position after (nil: from the first) in order, and returns order's
// SQL direction.
func (q *queryBuilder) page(tenantID string, f audex.Filter, order audex.Order, after *audex.Position) (dir string) {
	q.where("tenant_id = " + q.arg(tenantID))
	q.filter(f)
	dir, cmp := "ASC", ">"
	if order == audex.OrderDesc {
		dir, cmp = "DESC", "<"
	}
	if after != nil {
		q.where(fmt.Sprintf("(occurred_at, id) %s (%s, %s)", cmp, q.arg(after.OccurredAt), q.arg(after.ID)))
	}
	return dir
}

// queryBuilder collects the conditions and positional arguments of one
// statement.
type queryBuilder struct {
	conds []string
	args  []any
	// from is what the statement reads: events when empty, else a
	// subquery of it named events.
	from string
}

// arg adds a positional argument and returns its placeholder.
func (q *queryBuilder) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

func (q *queryBuilder) where(cond string) { q.conds = append(q.conds, cond) }

// source is what q's statement reads: from, or events.
func (q *queryBuilder) source() string {
	if q.from == "" {
		return "events"
	}
	return q.from
}

// joined runs add on a builder that shares q's arguments and returns the
// conditions that add wrote, joined by AND ("" for none).
func (q *queryBuilder) joined(add func(*queryBuilder)) string {
	c := queryBuilder{args: q.args}
	add(&c)
	q.args = c.args
	return strings.Join(c.conds, " AND ")
}

// filter adds the conditions of f. Prefix filters become index ranges.
func (q *queryBuilder) filter(f audex.Filter) {
	if f.Since != nil {
		q.where("occurred_at >= " + q.arg(*f.Since))
	}
	if f.Until != nil {
		q.where("occurred_at < " + q.arg(*f.Until))
	}
	switch len(f.Actions) {
	case 0:
	case 1:
		q.where("action = " + q.arg(f.Actions[0]))
	default:
		q.where("action = ANY(" + q.arg(f.Actions) + "::text[])")
	}
	q.prefix("action", f.ActionPrefix)
	q.equal("actor_id", f.ActorID)
	q.equal("actor_type", f.ActorType)
	q.equal("target_id", f.TargetID)
	q.equal("target_type", f.TargetType)
	q.prefix("resource", f.ResourcePrefix)
	if f.Success != nil {
		q.where("success = " + q.arg(*f.Success))
	}
	if f.SourceIP != nil {
		// One address is an equality, which the (tenant_id, source_ip,
		// occurred_at, id) index serves in list order; a block is a range.
		if f.SourceIP.IsSingleIP() {
			q.where("source_ip = " + q.arg(*f.SourceIP) + "::inet")
		} else {
			q.where(blockRange(*f.SourceIP).condition(q))
		}
	}
	q.equal("request_id", f.RequestID)
	if f.ReceivedBefore != nil {
		q.where("received_at < " + q.arg(*f.ReceivedBefore))
	}
}

func (q *queryBuilder) equal(column string, value *string) {
	if value != nil {
		q.where(column + " = " + q.arg(*value))
	}
}

// prefix matches column values that start with value, as a range that a
// btree index on the "C"-collated column serves (textRange).
func (q *queryBuilder) prefix(column string, value *string) {
	if value == nil || *value == "" {
		return
	}
	q.where(textRange(column, *value).condition(q))
}

// prefixUpperBound returns the least valid UTF-8 string that is greater, in
// byte order, than every string starting with p: p with its last code point
// replaced by the next one (dropping trailing U+10FFFF). ok is false when no
// such string exists.
func prefixUpperBound(p string) (string, bool) {
	for len(p) > 0 {
		r, size := utf8.DecodeLastRuneInString(p)
		p = p[:len(p)-size]
		if r == utf8.MaxRune {
			continue
		}
		next := r + 1
		if next == 0xD800 { // skip the surrogates, which UTF-8 cannot hold
			next = 0xE000
		}
		return p + string(next), true
	}
	return "", false
}

// ErrProtected means the event is audex's own record of a change (an
// audit.* event), which cannot be deleted one by one.
var ErrProtected = fmt.Errorf("%w: audit.* events cannot be deleted one by one", ErrConflict)

// DeleteEvent deletes one of the tenant's events and records
// audit.event_deleted by actor, in one transaction. ErrNotFound when the
// tenant has no such event, ErrProtected for an audit.* event. The id may
// be ingested again afterwards.
func DeleteEvent(ctx context.Context, db DBTX, tenantID, id string, actor audex.Actor) error {
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			DELETE FROM event_ids WHERE tenant_id = $1 AND id = $2 RETURNING occurred_at`, tenantID, id)
		if err != nil {
			return err
		}
		occurredAt, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[time.Time])
		if err != nil {
			return err
		}
		if err := subtractEventFromSummary(ctx, tx, tenantID, occurredAt, id); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `
			DELETE FROM events WHERE tenant_id = $1 AND occurred_at = $2 AND id = $3
			RETURNING `+selectEventColumns, tenantID, occurredAt, id)
		if err != nil {
			return err
		}
		deleted, err := pgx.CollectExactlyOneRow(rows, scanEvent)
		if err != nil {
			return err
		}
		if strings.HasPrefix(deleted.Action, audex.ReservedActionPrefix) {
			return ErrProtected // rolls the deletion back
		}
		counts := valueCounts([]audex.Event{deleted}, nil)
		for k := range counts {
			counts[k] = -counts[k]
		}
		if err := addValueCounts(ctx, tx, tenantID, counts); err != nil {
			return err
		}
		// Its leaf, when it was sealed (the newest: the id may have been
		// deleted and ingested before), names this deletion.
		record := audex.Event{ID: audex.NewID("evt"), Action: "audit.event_deleted", Actor: actor, Target: audex.NewTarget("event", id)}
		if _, err := tx.Exec(ctx, `UPDATE log_leaves SET deleted_by = $3 WHERE tenant_id = $1 AND event_id = $2 AND deleted_by IS NULL`,
			tenantID, id, record.ID); err != nil {
			return err
		}
		leaves, err := deletedLeaves(ctx, tx, tenantID, record.ID)
		if err != nil {
			return err
		}
		record.Metadata = mustJSON(map[string]any{"leaves": leaves})
		return RecordAuditEvent(ctx, tx, tenantID, record)
	})
	if errors.Is(err, ErrProtected) {
		return err
	}
	if err != nil {
		return fmt.Errorf("delete event: %w", translate(err))
	}
	return nil
}

// streamEventsPageSize is how many events StreamEvents reads per statement.
const streamEventsPageSize = 2000

// StreamEvents calls fn with each page of the tenant's events that match
// f and were received before the call (the as-of barrier of exports:
// every event acknowledged before it, and none after), in ascending
// (occurred_at, id) order. Each page is one statement in index order
// (keyset, like ListEvents), and no connection or transaction is held
// while fn runs, so that a slow reader of the pages holds nothing of the
// database: the first events go out at once, whatever the size of the
// result, and memory holds one page. An event deleted before its page is
// read is left out. When fn returns an error or ctx ends, no statement is
// left running and the error is returned.
//
// The barrier is taken on db, the primary; the pages are read from the
// database that reads returns once the barrier holds (nil: db), such as
// a replica that has replayed every event before it (Reads.ReaderAfter).
func StreamEvents(ctx context.Context, db DBTX, reads func(context.Context) (DBTX, error), tenantID string, f audex.Filter, fn func([]audex.Event) error) error {
	asOf, err := IngestBarrier(ctx, db, tenantID)
	if err != nil {
		return fmt.Errorf("stream events: %w", err)
	}
	if reads != nil {
		if db, err = reads(ctx); err != nil {
			return fmt.Errorf("stream events: %w", err)
		}
	}
	if f.ReceivedBefore == nil || asOf.Before(*f.ReceivedBefore) {
		f.ReceivedBefore = &asOf
	}
	var after *audex.Position
	for {
		page, err := ListEvents(ctx, db, tenantID, f, audex.OrderAsc, after, streamEventsPageSize)
		if err != nil {
			return fmt.Errorf("stream events: %w", err)
		}
		if len(page) > 0 {
			if err := fn(page); err != nil {
				return err
			}
		}
		if len(page) < streamEventsPageSize {
			return nil
		}
		last := page[len(page)-1]
		after = &audex.Position{OccurredAt: last.OccurredAt, ID: last.ID}
	}
}
