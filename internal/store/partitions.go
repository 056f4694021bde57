package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/audex-dev/audex"
)

// DroppedPartition reports a monthly partition that retention dropped
// whole, and how many events of each tenant went with it.
type DroppedPartition struct {
	Name    string
	Deleted map[string]int64 // tenant -> events
}

// partitionPattern matches the monthly partitions that
// audex_ensure_event_partition creates.
const partitionPattern = `^events_[0-9]{4}_[0-9]{2}$`

// DropExpiredPartitions drops the monthly partitions of events whose every
// row is past its tenant's retention cut-off at now: every tenant with rows
// in the partition has a policy whose cut-off (now - retain_days) is at or
// after the partition's end, no queued or running export of those
// tenants starts before that end, and no active stream of theirs has yet
// to deliver an event of it. For each, in order:
//
//  1. it detaches the partition in a short transaction that gives up after
//     a second if other statements hold the table (it is tried again on
//     the next run), so ingest is never queued behind it for long;
//  2. then, in one transaction, it deletes the partition's event_ids rows,
//     subtracts its events from event_values, records a completed
//     retention purge per tenant with its audit.purge_completed event, and
//     drops the table.
//
// A run that dies between the two steps leaves a detached table, which
// the next run finishes first. It returns what it dropped.
func DropExpiredPartitions(ctx context.Context, db DBTX, now time.Time) ([]DroppedPartition, error) {
	var dropped []DroppedPartition
	detached, err := detachedPartitions(ctx, db)
	if err != nil {
		return nil, err
	}
	for _, name := range detached {
		d, err := finishDrop(ctx, db, name)
		if err != nil {
			return dropped, err
		}
		dropped = append(dropped, d)
	}
	candidates, err := expiredPartitions(ctx, db, now)
	if err != nil {
		return dropped, err
	}
	for _, c := range candidates {
		name := c.name
		ok, err := detachPartition(ctx, db, name, c.end)
		if err != nil {
			return dropped, err
		}
		if !ok {
			continue // busy: next run
		}
		d, err := finishDrop(ctx, db, name)
		if err != nil {
			return dropped, err
		}
		dropped = append(dropped, d)
	}
	return dropped, nil
}

// detachedPartitions lists monthly event tables that are no longer
// attached to events: drops that a previous run did not finish.
func detachedPartitions(ctx context.Context, db DBTX) ([]string, error) {
	return queryAll(ctx, db, "detached partitions", pgx.RowTo[string], `
		SELECT c.relname FROM pg_class c
		WHERE c.relkind = 'r' AND c.relname ~ $1 AND c.relnamespace = current_schema()::regnamespace
		  AND NOT c.relispartition ORDER BY c.relname`, partitionPattern)
}

// partitionTenants is the start of a query about the tenants with rows in
// a partition (%[1]s): the CTE present, their distinct ids. It skips
// through the partition's tenant_id-led indexes, one probe per tenant,
// rather than reading every row (0.1 s instead of 1.1 s for a partition
// of 1,054,388 rows and 10 tenants).
const partitionTenants = `WITH RECURSIVE skip AS (
		(SELECT tenant_id FROM %[1]s ORDER BY tenant_id LIMIT 1)
		UNION ALL
		SELECT (SELECT e.tenant_id FROM %[1]s e WHERE e.tenant_id > s.tenant_id ORDER BY e.tenant_id LIMIT 1)
		FROM skip s WHERE s.tenant_id IS NOT NULL
	), present AS (SELECT tenant_id FROM skip WHERE tenant_id IS NOT NULL)`

// expiringPartition is a partition that DropExpiredPartitions may drop.
type expiringPartition struct {
	name string
	end  time.Time
}

// expiredPartitions lists the attached monthly partitions, oldest first,
// that DropExpiredPartitions may drop at now.
func expiredPartitions(ctx context.Context, db DBTX, now time.Time) ([]expiringPartition, error) {
	names, err := queryAll(ctx, db, "list partitions", pgx.RowTo[string], `
		SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'events'::regclass AND c.relname ~ $1 ORDER BY c.relname`, partitionPattern)
	if err != nil {
		return nil, err
	}
	var expired []expiringPartition
	for _, name := range names {
		month, err := time.Parse("events_2006_01", name)
		if err != nil {
			continue
		}
		end := month.AddDate(0, 1, 0)
		if end.After(now) {
			continue
		}
		var blocked bool
		// Every tenant in the partition must have let all of it expire, no
		// export of theirs may still read it, and no active stream of
		// theirs may still have to deliver its events. An empty partition stays:
		// dropping it gains nothing.
		err = db.QueryRow(ctx, fmt.Sprintf(partitionTenants+`
			SELECT NOT EXISTS (SELECT 1 FROM present) OR EXISTS (
				SELECT 1 FROM present p LEFT JOIN tenants t ON t.id = p.tenant_id
				WHERE t.retain_days IS NULL OR $1::timestamptz - make_interval(days => t.retain_days) < $2
			) OR EXISTS (
				SELECT 1 FROM exports x JOIN present p ON p.tenant_id = x.tenant_id
				WHERE x.status IN ('queued', 'running') AND x.since < $2
			) OR EXISTS (
				SELECT 1 FROM streams s JOIN present p ON p.tenant_id = s.tenant_id
				WHERE s.status = 'active' AND s.watermark <= (SELECT max(received_at) FROM %[1]s e WHERE e.tenant_id = s.tenant_id)
			)`, pgx.Identifier{name}.Sanitize()), now, end).Scan(&blocked)
		if err != nil {
			return nil, fmt.Errorf("check partition %s: %w", name, translate(err))
		}
		if !blocked {
			expired = append(expired, expiringPartition{name: name, end: end})
		}
	}
	return expired, nil
}

// detachPartition detaches name from events, giving up (false) when the
// lock is not granted within a second or an export of one of its tenants
// appeared meanwhile. In the same transaction it records a running
// retention purge per tenant for the partition: exports wait for it as for
// any running purge (ExportMayRun).
func detachPartition(ctx context.Context, db DBTX, name string, end time.Time) (bool, error) {
	errBusy := errors.New("partition busy")
	table := pgx.Identifier{name}.Sanitize()
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '1s'`); err != nil {
			return err
		}
		// No late ingest may add a tenant to the partition while it goes.
		if _, err := tx.Exec(ctx, `LOCK TABLE `+table+` IN SHARE MODE`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, fmt.Sprintf(partitionTenants+` SELECT tenant_id FROM present ORDER BY 1`, table))
		if err != nil {
			return err
		}
		tenants, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, t := range tenants {
			if err := lockTenant(ctx, tx, t); err != nil {
				return err
			}
			var exporting bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM exports WHERE tenant_id = $1
				AND status IN ('queued', 'running') AND since < $2)`, t, end).Scan(&exporting); err != nil {
				return err
			}
			if exporting {
				return errBusy
			}
			if _, err := tx.Exec(ctx, `INSERT INTO purges (id, tenant_id, status, reason, before, started_at, partition_name)
				VALUES ($1, $2, 'running', 'retention', $3, now(), $4)`, audex.NewID("prg"), t, end, name); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `ALTER TABLE events DETACH PARTITION `+table)
		return err
	})
	var pgErr *pgconn.PgError
	if errors.Is(err, errBusy) || errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("detach %s: %w", name, translate(err))
	}
	return true, nil
}

// finishDrop removes what a detached partition's events left elsewhere
// (event_ids rows, event_values counts), completes the partition's
// retention purges with their audit.purge_completed events, and drops the
// table, in one transaction.
func finishDrop(ctx context.Context, db DBTX, name string) (DroppedPartition, error) {
	d := DroppedPartition{Name: name, Deleted: map[string]int64{}}
	table := pgx.Identifier{name}.Sanitize()
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT tenant_id, action, actor_type, target_type, count(*) FROM `+table+` GROUP BY 1, 2, 3, 4`)
		if err != nil {
			return err
		}
		counts := map[string]map[valueKey]int64{}
		var tenant, action string
		var actorType, targetType *string
		var n int64
		if _, err := pgx.ForEachRow(rows, []any{&tenant, &action, &actorType, &targetType, &n}, func() error {
			if counts[tenant] == nil {
				counts[tenant] = map[valueKey]int64{}
			}
			c := counts[tenant]
			d.Deleted[tenant] += n
			c[valueKey{ValueAction, action}] -= n
			if actorType != nil {
				c[valueKey{ValueActorType, *actorType}] -= n
			}
			if targetType != nil {
				c[valueKey{ValueTargetType, *targetType}] -= n
			}
			return nil
		}); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM event_ids i USING `+table+` e WHERE i.tenant_id = e.tenant_id AND i.id = e.id`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE log_leaves l SET deleted_by = p.id FROM `+table+` e, purges p
			WHERE p.partition_name = $1 AND p.status = 'running' AND p.tenant_id = e.tenant_id
				AND l.tenant_id = e.tenant_id AND l.event_id = e.id AND l.deleted_by IS NULL`, name); err != nil {
			return err
		}
		for _, t := range slices.Sorted(maps.Keys(counts)) {
			if err := addValueCounts(ctx, tx, t, counts[t]); err != nil {
				return err
			}
		}
		rows, err = tx.Query(ctx, `UPDATE purges SET status = 'completed', completed_at = now(),
			deleted = coalesce(($2::jsonb ->> tenant_id)::bigint, 0)
			WHERE partition_name = $1 AND status = 'running' RETURNING `+selectPurgeColumns, name, mustJSON(d.Deleted))
		if err != nil {
			return err
		}
		purges, err := pgx.CollectRows(rows, scanPurge)
		if err != nil {
			return err
		}
		for _, p := range purges {
			if err := settleSummaryAfterPurge(ctx, tx, p.TenantID, p.Before); err != nil {
				return err
			}
			if err := recordPurgeEnd(ctx, tx, p, "audit.purge_completed", map[string]any{"partition": name}); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `DROP TABLE `+table)
		return err
	})
	if err != nil {
		return d, fmt.Errorf("drop partition %s: %w", name, translate(err))
	}
	return d, nil
}
