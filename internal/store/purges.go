package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audex-dev/audex"
)

const selectPurgeColumns = `id, tenant_id, status, reason, before, deleted, created_at, started_at, completed_at, error`

func scanPurge(row pgx.CollectableRow) (audex.Purge, error) {
	var p audex.Purge
	err := row.Scan(&p.ID, &p.TenantID, &p.Status, &p.Reason, &p.Before, &p.Deleted, &p.CreatedAt, &p.StartedAt, &p.CompletedAt, &p.Error)
	p.Before, p.CreatedAt = p.Before.UTC(), p.CreatedAt.UTC()
	p.StartedAt, p.CompletedAt = utcPtr(p.StartedAt), utcPtr(p.CompletedAt)
	return p, err
}

// CreatePurge inserts a queued purge requested by a client. Callers record
// its audit event and insert its River job in the same transaction.
func CreatePurge(ctx context.Context, db DBTX, p *audex.Purge) error {
	p.ID, p.Status, p.Reason = audex.NewID("prg"), audex.PurgeQueued, audex.PurgeByRequest
	err := db.QueryRow(ctx, `INSERT INTO purges (id, tenant_id, status, reason, before) VALUES ($1, $2, 'queued', 'request', $3)
		RETURNING created_at`, p.ID, p.TenantID, p.Before).Scan(&p.CreatedAt)
	if err != nil {
		return fmt.Errorf("create purge: %w", translate(err))
	}
	p.CreatedAt = p.CreatedAt.UTC()
	return nil
}

// CreateRetentionPurges inserts, for every tenant with a retention policy,
// a queued purge of the events older than its retain_days before now,
// unless the tenant already has a retention purge whose cut-off falls on
// the same UTC day. It returns the new ones.
//
// So a tenant gets one retention purge a day while its policy stays, and a
// changed policy moves the cut-off to another day: the next run applies
// it (a run earlier that day under the old policy does not lock it out).
// Runs take turns on an advisory lock held until db's transaction ends,
// and each looks for the purges of the runs before it only once it holds
// the lock: several processes calling it at once still create one purge.
// Callers insert the purges' jobs in the same transaction.
func CreateRetentionPurges(ctx context.Context, db DBTX, now time.Time) ([]audex.Purge, error) {
	var created []audex.Purge
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('audex_retention', 0))`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, retain_days FROM tenants WHERE retain_days IS NOT NULL ORDER BY id`)
		if err != nil {
			return err
		}
		type policy struct {
			tenant string
			days   int
		}
		var policies []policy
		var pol policy
		if _, err := pgx.ForEachRow(rows, []any{&pol.tenant, &pol.days}, func() error {
			policies = append(policies, pol)
			return nil
		}); err != nil {
			return err
		}
		for _, pol := range policies {
			p := audex.Purge{ID: audex.NewID("prg"), TenantID: pol.tenant, Status: audex.PurgeQueued, Reason: audex.PurgeByRetention,
				Before: now.UTC().Truncate(time.Microsecond).AddDate(0, 0, -pol.days)}
			day := p.Before.Truncate(24 * time.Hour)
			// retention_day (the run's day, unique per tenant) is left
			// NULL: it would allow one purge a day whatever the policy.
			// A partition drop's purge is no run's and does not count.
			err := tx.QueryRow(ctx, `INSERT INTO purges (id, tenant_id, status, reason, before)
				SELECT $1, $2, 'queued', 'retention', $3
				WHERE NOT EXISTS (SELECT 1 FROM purges WHERE tenant_id = $2 AND reason = 'retention'
					AND partition_name IS NULL AND before >= $4 AND before < $5)
				RETURNING created_at`, p.ID, p.TenantID, p.Before, day, day.Add(24*time.Hour)).Scan(&p.CreatedAt)
			if errors.Is(err, pgx.ErrNoRows) {
				continue // this cut-off's day is purged already
			}
			if err != nil {
				return fmt.Errorf("for %s: %w", pol.tenant, err)
			}
			p.CreatedAt = p.CreatedAt.UTC()
			created = append(created, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create retention purges: %w", translate(err))
	}
	return created, nil
}

// GetPurge returns the tenant's purge; another tenant's purge is
// ErrNotFound.
func GetPurge(ctx context.Context, db DBTX, tenantID, id string) (audex.Purge, error) {
	return getPurge(ctx, db, `id = $1 AND tenant_id = $2`, id, tenantID)
}

// GetPurgeByID returns the purge whatever its tenant: for the worker.
func GetPurgeByID(ctx context.Context, db DBTX, id string) (audex.Purge, error) {
	return getPurge(ctx, db, `id = $1`, id)
}

func getPurge(ctx context.Context, db DBTX, where string, args ...any) (audex.Purge, error) {
	return queryOne(ctx, db, "get purge", scanPurge, `SELECT `+selectPurgeColumns+` FROM purges WHERE `+where, args...)
}

// CountEventsBefore returns how many of the tenant's events occurred
// strictly before before: what a purge would delete now.
func CountEventsBefore(ctx context.Context, db DBTX, tenantID string, before time.Time) (int64, error) {
	var n int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM events WHERE tenant_id = $1 AND occurred_at < $2`, tenantID, before).Scan(&n); err != nil {
		return 0, fmt.Errorf("count events: %w", translate(err))
	}
	return n, nil
}

// lockTenant serialises, per tenant, the checks that keep purges and
// exports apart (StartPurge, ExportMayRun).
func lockTenant(ctx context.Context, tx pgx.Tx, tenantID string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('audex_purge_export:' || $1, 0))`, tenantID)
	return err
}

// StartPurge moves a queued purge to running unless an export of the
// tenant that is queued or running covers time before the purge's cut-off,
// or an active stream of the tenant has not delivered every event received
// before the purge was asked for: then it returns blocked and changes
// nothing (the purge waits, so that no export or stream loses events). A
// running purge is returned as it is.
func StartPurge(ctx context.Context, db DBTX, id string) (p audex.Purge, blocked bool, err error) {
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if p, err = GetPurgeByID(ctx, tx, id); err != nil || p.Status != audex.PurgeQueued {
			return err
		}
		if err := lockTenant(ctx, tx, p.TenantID); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM exports WHERE tenant_id = $1
			AND status IN ('queued', 'running') AND since < $2)`, p.TenantID, p.Before).Scan(&blocked); err != nil || blocked {
			return err
		}
		if blocked, err = StreamsBehind(ctx, tx, p.TenantID, p.CreatedAt); err != nil || blocked {
			return err
		}
		now := time.Now().UTC()
		p.Status, p.StartedAt = audex.PurgeRunning, &now
		_, err := tx.Exec(ctx, `UPDATE purges SET status = 'running', started_at = $2 WHERE id = $1`, id, now)
		return err
	})
	if err != nil {
		return p, false, fmt.Errorf("start purge: %w", translate(err))
	}
	return p, blocked, nil
}

// ExportMayRun reports whether no running purge of the tenant deletes
// events that an export from since on could read; an export waits while
// one does.
func ExportMayRun(ctx context.Context, db DBTX, tenantID string, since time.Time) (bool, error) {
	var blocked bool
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if err := lockTenant(ctx, tx, tenantID); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM purges WHERE tenant_id = $1 AND status = 'running' AND before > $2)`,
			tenantID, since).Scan(&blocked)
	})
	if err != nil {
		return false, fmt.Errorf("check purges: %w", translate(err))
	}
	return !blocked, nil
}

// PurgeBatch deletes up to limit of the purge's events, oldest first and
// after the position after (nil: from the start), with their event_ids
// rows, subtracts them from event_values and adds them to the purge's
// count, in one short transaction. It returns how many it deleted and the
// position to go on from: nil when the batch took all that was left.
//
// The batch is one key range of the time index, bounded by plain column
// conditions on occurred_at at both ends as well as by the row
// comparisons: the index scan of each partition starts where the last
// batch stopped (not at the entries earlier batches left dead) and stops at
// the batch's last event, found first.
//
// Each statement of the batch may take budget (zero: the session's).
func PurgeBatch(ctx context.Context, db DBTX, p audex.Purge, after *audex.Position, limit int, budget time.Duration) (int64, *audex.Position, error) {
	var deleted int64
	var next *audex.Position
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if budget > 0 {
			if err := setBudget(ctx, tx, budget); err != nil {
				return err
			}
		}
		var q queryBuilder
		q.where("tenant_id = " + q.arg(p.TenantID))
		q.where("occurred_at < " + q.arg(p.Before))
		// Events received since the purge was asked for stay: an active
		// stream may not have delivered them yet (StreamsBehind).
		q.where("received_at < " + q.arg(p.CreatedAt))
		if after != nil {
			q.where("occurred_at >= " + q.arg(after.OccurredAt))
			q.where(fmt.Sprintf("(occurred_at, id) > (%s, %s)", q.arg(after.OccurredAt), q.arg(after.ID)))
		}
		var last audex.Position
		err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT occurred_at, id FROM events WHERE %s ORDER BY occurred_at, id OFFSET %d LIMIT 1`,
			strings.Join(q.conds, " AND "), limit-1), q.args...).Scan(&last.OccurredAt, &last.ID)
		switch {
		case errors.Is(err, pgx.ErrNoRows): // fewer than limit are left: this batch takes them all
		case err != nil:
			return err
		default:
			q.where("occurred_at <= " + q.arg(last.OccurredAt))
			q.where(fmt.Sprintf("(occurred_at, id) <= (%s, %s)", q.arg(last.OccurredAt), q.arg(last.ID)))
			next = &last
		}
		purgeID := q.arg(p.ID)
		rows, err := tx.Query(ctx, fmt.Sprintf(`
			WITH gone AS (
				DELETE FROM events WHERE %s
				RETURNING id, action, actor_type, target_type
			), ids AS (
				DELETE FROM event_ids WHERE tenant_id = $1 AND id = ANY(ARRAY(SELECT id FROM gone))
			), leaves AS (
				-- A join, not = ANY(ARRAY(...)): a plan that scans the log
				-- for each of an array's ids would take the batch's budget.
				UPDATE log_leaves l SET deleted_by = %s FROM gone g
				WHERE l.tenant_id = $1 AND l.event_id = g.id AND l.deleted_by IS NULL
			)
			SELECT action, actor_type, target_type, count(*) FROM gone GROUP BY 1, 2, 3`, strings.Join(q.conds, " AND "), purgeID), q.args...)
		if err != nil {
			return err
		}
		counts := map[valueKey]int64{}
		var action string
		var actorType, targetType *string
		var n int64
		_, err = pgx.ForEachRow(rows, []any{&action, &actorType, &targetType, &n}, func() error {
			deleted += n
			counts[valueKey{ValueAction, action}] -= n
			if actorType != nil {
				counts[valueKey{ValueActorType, *actorType}] -= n
			}
			if targetType != nil {
				counts[valueKey{ValueTargetType, *targetType}] -= n
			}
			return nil
		})
		if err != nil || deleted == 0 {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE purges SET deleted = deleted + $2 WHERE id = $1`, p.ID, deleted); err != nil {
			return err
		}
		return addValueCounts(ctx, tx, p.TenantID, counts)
	})
	if err != nil {
		return 0, nil, fmt.Errorf("purge batch: %w", translate(err))
	}
	return deleted, next, nil
}

// PurgesDeleting reports whether one of the tenant's purges named by ids
// is running, and so will record its deletions when it ends. With a
// stream id, a purge that waits for that stream to deliver what it
// deletes (StreamsBehind) does not count: the stream must not wait for
// it in turn.
func PurgesDeleting(ctx context.Context, db DBTX, tenantID string, ids []string, streamID string) (bool, error) {
	var deleting bool
	err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM purges p WHERE p.tenant_id = $1 AND p.id = ANY($2) AND p.status = 'running'
			AND NOT EXISTS (SELECT 1 FROM streams s WHERE s.id = $3 AND s.status = 'active' AND s.watermark < p.created_at))`,
		tenantID, ids, streamID).Scan(&deleting)
	if err != nil {
		return false, fmt.Errorf("purges deleting: %w", translate(err))
	}
	return deleting, nil
}

// APIBusy reports whether a session of the API (opened with
// ServingRequests) is running a statement now: the signal on which a purge
// gives way to the clients being served. Background work (River, rollups,
// other jobs) does not count.
func APIBusy(ctx context.Context, db DBTX) (bool, error) {
	var busy bool
	err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = $1 AND state = 'active')`, apiApplicationName).Scan(&busy)
	if err != nil {
		return false, fmt.Errorf("database activity: %w", translate(err))
	}
	return busy, nil
}

// CompletePurge marks the purge completed and records audit.purge_completed
// (for a retention purge only when it deleted anything), in one
// transaction. The event occurs after the cut-off's deletions, so the purge
// never removes its own record.
func CompletePurge(ctx context.Context, db DBTX, id string) (audex.Purge, error) {
	var p audex.Purge
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE purges SET status = 'completed', completed_at = now()
			WHERE id = $1 AND status = 'running' RETURNING `+selectPurgeColumns, id)
		if err != nil {
			return err
		}
		if p, err = pgx.CollectExactlyOneRow(rows, scanPurge); err != nil {
			return err
		}
		if err := settleSummaryAfterPurge(ctx, tx, p.TenantID, p.Before); err != nil {
			return err
		}
		if p.Reason == audex.PurgeByRetention && p.Deleted == 0 {
			return nil
		}
		return recordPurgeEnd(ctx, tx, p, "audit.purge_completed", nil)
	})
	if err != nil {
		return p, fmt.Errorf("complete purge: %w", translate(err))
	}
	return p, nil
}

// FailPurge marks a purge failed with a message for operators, makes the
// summary counts exact for the events it did delete and records
// audit.purge_failed: the deletion record of those events' leaves, which
// manifests of the integrity log need as much as a completed purge's.
func FailPurge(ctx context.Context, db DBTX, id, message string) error {
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE purges SET status = 'failed', error = $2, completed_at = now()
			WHERE id = $1 AND status IN ('queued', 'running') RETURNING `+selectPurgeColumns, id, message)
		if err != nil {
			return err
		}
		p, err := pgx.CollectExactlyOneRow(rows, scanPurge)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := settleSummaryAfterPurge(ctx, tx, p.TenantID, p.Before); err != nil {
			return err
		}
		return recordPurgeEnd(ctx, tx, p, "audit.purge_failed", map[string]any{"error": message})
	})
	if err != nil {
		return fmt.Errorf("fail purge: %w", translate(err))
	}
	return nil
}

// recordPurgeEnd records the end of purge p as an audit event of action,
// with the purge's cut-off, count, reason, the leaves it deleted (which
// make it the deletion record of the integrity log) and extra metadata.
func recordPurgeEnd(ctx context.Context, tx pgx.Tx, p audex.Purge, action string, extra map[string]any) error {
	leaves, err := deletedLeaves(ctx, tx, p.TenantID, p.ID)
	if err != nil {
		return err
	}
	metadata := map[string]any{"before": p.Before, "deleted": p.Deleted, "reason": p.Reason, "leaves": leaves}
	maps.Copy(metadata, extra)
	return RecordAuditEvent(ctx, tx, p.TenantID, audex.Event{
		Action: action, Actor: audex.SystemActor(), Target: audex.NewTarget("purge", p.ID), Metadata: mustJSON(metadata),
	})
}

// RetentionDays returns the tenant's retention policy: nil keeps forever.
func RetentionDays(ctx context.Context, db DBTX, tenantID string) (*int, error) {
	var days *int
	err := db.QueryRow(ctx, `SELECT retain_days FROM tenants WHERE id = $1`, tenantID).Scan(&days)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("retention policy: %w", translate(err))
	}
	return days, nil
}

// SetRetentionDays sets the tenant's retention policy (nil: keep forever)
// and records audit.retention_updated by actor, in one transaction.
func SetRetentionDays(ctx context.Context, db DBTX, tenantID string, days *int, actor audex.Actor) error {
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var old *int
		err := tx.QueryRow(ctx, `
			WITH prev AS (SELECT retain_days FROM tenants WHERE id = $1 FOR UPDATE)
			UPDATE tenants SET retain_days = $2 WHERE id = $1 RETURNING (SELECT retain_days FROM prev)`, tenantID, days).Scan(&old)
		if err != nil {
			return err
		}
		return RecordAuditEvent(ctx, tx, tenantID, audex.Event{
			Action: "audit.retention_updated", Actor: actor, Target: audex.NewTarget("tenant", tenantID),
			Metadata: mustJSON(map[string]any{"retain_days": days, "previous_retain_days": old}),
		})
	})
	if err != nil {
		return fmt.Errorf("set retention policy: %w", translate(err))
	}
	return nil
}
