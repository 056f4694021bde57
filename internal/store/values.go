package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/audex-dev/audex"
)

// Kinds of event_values rows.
const (
	ValueAction     = "action"
	ValueActorType  = "actor_type"
	ValueTargetType = "target_type"
)

// valueKey is one (kind, value) of event_values.
type valueKey struct{ kind, value string }

// valueCounts tallies the event_values keys of events.
func valueCounts(events []audex.Event, keep func(i int) bool) map[valueKey]int64 {
	counts := map[valueKey]int64{}
	for i := range events {
		if keep != nil && !keep(i) {
			continue
		}
		e := &events[i]
		counts[valueKey{ValueAction, e.Action}]++
		if e.Actor.Type != nil {
			counts[valueKey{ValueActorType, *e.Actor.Type}]++
		}
		if e.Target != nil && e.Target.Type != nil {
			counts[valueKey{ValueTargetType, *e.Target.Type}]++
		}
	}
	return counts
}

// addValueCounts adds counts (negative to subtract) to the tenant's
// event_values in tx. Keys are written in sorted order so that concurrent
// transactions lock rows in the same order and cannot deadlock.
func addValueCounts(ctx context.Context, tx pgx.Tx, tenantID string, counts map[valueKey]int64) error {
	if len(counts) == 0 {
		return nil
	}
	keys := make([]valueKey, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b valueKey) int {
		return cmp.Or(cmp.Compare(a.kind, b.kind), cmp.Compare(a.value, b.value))
	})
	kinds, values, deltas := make([]string, len(keys)), make([]string, len(keys)), make([]int64, len(keys))
	for i, k := range keys {
		kinds[i], values[i], deltas[i] = k.kind, k.value, counts[k]
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO event_values (tenant_id, kind, value, events)
		SELECT $1, u.kind, u.value, u.delta FROM unnest($2::text[], $3::text[], $4::bigint[]) AS u(kind, value, delta)
		ON CONFLICT (tenant_id, kind, value) DO UPDATE SET events = event_values.events + excluded.events`,
		tenantID, kinds, values, deltas)
	return err
}

// EventValues returns, per kind, the distinct values that at least one of
// the tenant's stored events carries, in byte order, at most limit each.
func EventValues(ctx context.Context, db DBTX, tenantID string, limit int) (map[string][]string, error) {
	rows, err := db.Query(ctx, `
		SELECT kind, value FROM (
			SELECT kind, value, row_number() OVER (PARTITION BY kind ORDER BY value) AS n
			FROM event_values WHERE tenant_id = $1 AND events > 0
		) v WHERE n <= $2 ORDER BY kind, value`, tenantID, limit)
	if err != nil {
		return nil, fmt.Errorf("event values: %w", translate(err))
	}
	out := map[string][]string{ValueAction: {}, ValueActorType: {}, ValueTargetType: {}}
	var kind, value string
	_, err = pgx.ForEachRow(rows, []any{&kind, &value}, func() error {
		out[kind] = append(out[kind], value)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("event values: %w", translate(err))
	}
	return out, nil
}
