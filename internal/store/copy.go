package store

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/jackc/pgx/v5"

	"github.com/audex-dev/audex"
)

// EventCopyColumns are the columns of events that a row of EventCopyRow
// fills, in its order: tenant_id, then the event's columns. InsertEvents
// copies with them; a bulk load (cmd/bench) copies with them too, so that
// it writes what ingest writes.
var EventCopyColumns = append([]string{"tenant_id"}, eventColumns...)

// EventCopyRow is e as a row of EventCopyColumns for CopyFrom into events,
// stored as InsertEvents stores an ingested event: no target columns when
// e has no target, metadata {} when it has none. It never fails; an
// unparsable SourceIP is stored as none.
func EventCopyRow(tenantID string, e *audex.Event) []any {
	var sourceIP any
	if e.SourceIP != nil {
		if addr, err := netip.ParseAddr(*e.SourceIP); err == nil {
			sourceIP = netip.PrefixFrom(addr, addr.BitLen())
		}
	}
	var targetID, targetType, targetName *string
	if e.Target != nil {
		targetID, targetType, targetName = e.Target.ID, e.Target.Type, e.Target.Name
	}
	metadata := string(e.Metadata)
	if metadata == "" {
		metadata = "{}"
	}
	return []any{
		tenantID, e.ID, e.OccurredAt, e.ReceivedAt, e.Action,
		e.Actor.ID, e.Actor.Type, e.Actor.Name,
		targetID, targetType, targetName,
		e.Resource, sourceIP, e.UserAgent, e.RequestID, e.Method, e.Path,
		e.StatusCode, e.Success, e.DurationMS, metadata,
	}
}

// CopyEvents writes rows of EventCopyRow (any tenants) into events with
// one COPY and, when withIDs, their event_ids rows with another, in one
// transaction (nested in db's): all or none. It is the bulk load of
// cmd/bench, not ingest: it neither skips ids already stored (one fails
// the whole with ErrConflict) nor keeps the event_values counts
// (RecountEventValues sets them afterwards). Without withIDs the events
// are not findable by id and can be ingested again: for measuring COPY
// alone, in a database of the benchmark's own.
func CopyEvents(ctx context.Context, db DBTX, rows [][]any, withIDs bool) error {
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, EventCopyColumns, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		if !withIDs {
			return nil
		}
		// tenant_id, id and occurred_at lead EventCopyColumns.
		return copyEventIDs(ctx, tx, len(rows), func(i int) []any { return rows[i][:3] })
	})
	if err != nil {
		return fmt.Errorf("copy events: %w", translate(err))
	}
	return nil
}

// copyEventIDs writes n rows of event_ids with one COPY: row(i) is the
// i-th, its tenant_id, id and occurred_at. A stored or repeated id fails
// it (isEventIDConflict).
func copyEventIDs(ctx context.Context, tx pgx.Tx, n int, row func(i int) []any) error {
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"event_ids"}, EventCopyColumns[:3], pgx.CopyFromSlice(n, func(i int) ([]any, error) {
		return row(i), nil
	}))
	return err
}
