package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// RecountEventValues sets the tenant's event_values (the counts behind
// GET /v1/audit/filters) to exactly what its stored events carry, in one
// transaction. It is for events that were bulk-loaded without
// InsertEvents, as cmd/bench loads them with COPY; ingest, deletion and
// purges keep the counts exact by themselves. Idempotent. It reads all of
// the tenant's events, so it is not for a request path.
func RecountEventValues(ctx context.Context, db DBTX, tenantID string) error {
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		// The lock that InsertEvents takes shared: no ingest of the tenant
		// can add to the counts between the delete and the recount.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(`+ingestLockKey+`)`, tenantID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM event_values WHERE tenant_id = $1`, tenantID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO event_values (tenant_id, kind, value, events)
			SELECT $1, kind, value, count(*) FROM (
				SELECT $2::text AS kind, action AS value FROM events WHERE tenant_id = $1
				UNION ALL
				SELECT $3, actor_type FROM events WHERE tenant_id = $1 AND actor_type IS NOT NULL
				UNION ALL
				SELECT $4, target_type FROM events WHERE tenant_id = $1 AND target_type IS NOT NULL
			) v GROUP BY kind, value`, tenantID, ValueAction, ValueActorType, ValueTargetType)
		return err
	})
	if err != nil {
		return fmt.Errorf("recount event values: %w", translate(err))
	}
	return nil
}
