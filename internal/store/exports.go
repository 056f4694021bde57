package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audex-dev/audex"
)

// ErrLeaseLost means another attempt holds the lease of the export (or
// stream); the caller must stop working it.
var ErrLeaseLost = errors.New("lease held by another attempt")

const selectExportColumns = `id, tenant_id, status, format, compression, since, until, filters,
	destination_name, destination_type, destination_bucket, destination_prefix, key_prefix,
	part_max_records, part_max_bytes, as_of, estimated_records, last_occurred_at, last_id,
	records_exported, parts_written, manifest_key, attempts, error_code, error_message,
	created_at, started_at, completed_at, estimate_is_lower_bound`

func scanExport(row pgx.CollectableRow) (audex.Export, error) {
	var e audex.Export
	var lastAt *time.Time
	var lastID, errCode, errMessage *string
	err := row.Scan(&e.ID, &e.TenantID, &e.Status, &e.Format, &e.Compression, &e.Since, &e.Until, &e.Filters,
		&e.Destination.Name, &e.Destination.Type, &e.Destination.Bucket, &e.Destination.Prefix, &e.KeyPrefix,
		&e.PartMaxRecords, &e.PartMaxBytes, &e.AsOf, &e.EstimatedRecords, &lastAt, &lastID,
		&e.Progress.RecordsExported, &e.Progress.PartsWritten, &e.ManifestKey, &e.Attempts, &errCode, &errMessage,
		&e.CreatedAt, &e.StartedAt, &e.CompletedAt, &e.EstimateIsLowerBound)
	if err != nil {
		return e, err
	}
	e.Since, e.Until, e.AsOf, e.CreatedAt = e.Since.UTC(), e.Until.UTC(), e.AsOf.UTC(), e.CreatedAt.UTC()
	e.StartedAt, e.CompletedAt = utcPtr(e.StartedAt), utcPtr(e.CompletedAt)
	if lastAt != nil && lastID != nil {
		e.Checkpoint = &audex.Position{OccurredAt: lastAt.UTC(), ID: *lastID}
	}
	if errCode != nil {
		e.Error = &audex.ExportError{Code: *errCode, Message: *errMessage}
	}
	if err := json.Unmarshal(e.Filters, &e.Filter); err != nil {
		return e, fmt.Errorf("export %s filters: %w", e.ID, err)
	}
	e.Filter.Since, e.Filter.Until, e.Filter.ReceivedBefore = &e.Since, &e.Until, &e.AsOf
	e.Progress.Percent = percent(e)
	if e.Status == audex.ExportCompleted {
		n := e.Progress.RecordsExported
		e.RecordCount = &n
	}
	e.Files = []audex.ExportFile{}
	return e, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// percent is the export's progress against its estimate: 100 when
// completed, at most 99 before.
func percent(e audex.Export) int {
	switch {
	case e.Status == audex.ExportCompleted:
		return 100
	case e.EstimatedRecords <= 0:
		return 0
	}
	return int(min(99, e.Progress.RecordsExported*100/e.EstimatedRecords))
}

// ErrTooManyExports means the tenant already has as many queued and
// running exports as it may.
var ErrTooManyExports = errors.New("too many queued and running exports")

// CreateExport inserts a queued export. It sets AsOf and CreatedAt to the
// transaction's time: callers create the export, record its audit event and
// insert its River job in one transaction. With maxActive above zero it
// returns ErrTooManyExports when the tenant has that many queued and
// running exports already (concurrent creations of one tenant take turns
// when db is a transaction, so the cap holds).
func CreateExport(ctx context.Context, db DBTX, e *audex.Export, maxActive int) error {
	if maxActive > 0 {
		// The count is a statement of its own after the lock, so that its
		// snapshot sees the exports of creations that went before.
		var active int
		_, err := db.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('audex_exports:' || $1, 0))`, e.TenantID)
		if err == nil {
			err = db.QueryRow(ctx, `SELECT count(*) FROM exports WHERE tenant_id = $1 AND status IN ('queued', 'running')`, e.TenantID).Scan(&active)
		}
		if err != nil {
			return fmt.Errorf("create export: %w", translate(err))
		}
		if active >= maxActive {
			return fmt.Errorf("create export: %w (%d)", ErrTooManyExports, active)
		}
	}
	err := db.QueryRow(ctx, `
		INSERT INTO exports (id, tenant_id, status, format, compression, since, until, filters,
			destination_name, destination_type, destination_bucket, destination_prefix, key_prefix,
			part_max_records, part_max_bytes, as_of, estimated_records, estimate_is_lower_bound)
		VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, now(), $15, $16)
		RETURNING as_of, created_at`,
		e.ID, e.TenantID, e.Format, e.Compression, e.Since, e.Until, e.Filters,
		e.Destination.Name, e.Destination.Type, e.Destination.Bucket, e.Destination.Prefix, e.KeyPrefix,
		e.PartMaxRecords, e.PartMaxBytes, e.EstimatedRecords, e.EstimateIsLowerBound,
	).Scan(&e.AsOf, &e.CreatedAt)
	if err != nil {
		return fmt.Errorf("create export: %w", translate(err))
	}
	e.AsOf, e.CreatedAt, e.Status = e.AsOf.UTC(), e.CreatedAt.UTC(), audex.ExportQueued
	return nil
}

// GetExport returns the tenant's export with its recorded parts; another
// tenant's export is ErrNotFound.
func GetExport(ctx context.Context, db DBTX, tenantID, id string) (audex.Export, error) {
	return getExport(ctx, db, `id = $1 AND tenant_id = $2`, id, tenantID)
}

// GetExportByID returns the export with its recorded parts whatever its
// tenant: for the worker, which works every tenant's exports.
func GetExportByID(ctx context.Context, db DBTX, id string) (audex.Export, error) {
	return getExport(ctx, db, `id = $1`, id)
}

func getExport(ctx context.Context, db DBTX, where string, args ...any) (audex.Export, error) {
	e, err := queryOne(ctx, db, "get export", scanExport, `SELECT `+selectExportColumns+` FROM exports WHERE `+where, args...)
	if err != nil {
		return audex.Export{}, err
	}
	exports := []audex.Export{e}
	if err := fillExportFiles(ctx, db, exports); err != nil {
		return audex.Export{}, err
	}
	return exports[0], nil
}

// ListExports returns up to limit of the tenant's exports, newest first,
// after the (created_at, id) position after, with status if not empty.
// Files are not filled in.
func ListExports(ctx context.Context, db DBTX, tenantID, status string, after *audex.Position, limit int) ([]audex.Export, error) {
	var q queryBuilder
	q.where("tenant_id = " + q.arg(tenantID))
	if status != "" {
		q.where("status = " + q.arg(status))
	}
	if after != nil {
		q.where(fmt.Sprintf("(created_at, id) < (%s, %s)", q.arg(after.OccurredAt), q.arg(after.ID)))
	}
	exports, err := queryAll(ctx, db, "list exports", scanExport, fmt.Sprintf(`SELECT %s FROM exports WHERE %s ORDER BY created_at DESC, id DESC LIMIT %s`,
		selectExportColumns, strings.Join(q.conds, " AND "), q.arg(limit)), q.args...)
	if err != nil {
		return nil, err
	}
	if err := fillExportFiles(ctx, db, exports); err != nil {
		return nil, err
	}
	return exports, nil
}

// fillExportFiles reads the recorded parts of exports in one query.
func fillExportFiles(ctx context.Context, db DBTX, exports []audex.Export) error {
	if len(exports) == 0 {
		return nil
	}
	index := make(map[string]int, len(exports))
	ids := make([]string, len(exports))
	for i, e := range exports {
		index[e.ID], ids[i] = i, e.ID
	}
	rows, err := db.Query(ctx, `SELECT export_id, key, size_bytes, records, sha256 FROM export_parts
		WHERE export_id = ANY($1) ORDER BY export_id, part_number`, ids)
	if err != nil {
		return fmt.Errorf("export parts: %w", translate(err))
	}
	var exportID string
	var f audex.ExportFile
	_, err = pgx.ForEachRow(rows, []any{&exportID, &f.Key, &f.SizeBytes, &f.Records, &f.SHA256}, func() error {
		e := &exports[index[exportID]]
		e.Files = append(e.Files, f)
		return nil
	})
	if err != nil {
		return fmt.Errorf("export parts: %w", translate(err))
	}
	return nil
}

// CancelExport marks a queued or running export cancelled and records
// audit.export_cancelled by actor, in db's transaction. ErrNotFound for
// another tenant's or a missing export, ErrConflict when it already
// finished. The worker notices and deletes the parts.
func CancelExport(ctx context.Context, db DBTX, tenantID, id string, actor audex.Actor) error {
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, `SELECT status FROM exports WHERE id = $1 AND tenant_id = $2 FOR UPDATE`, id, tenantID).Scan(&status)
		if err != nil {
			return err
		}
		if status != audex.ExportQueued && status != audex.ExportRunning {
			return fmt.Errorf("%w: export is already %s", ErrConflict, status)
		}
		if _, err := tx.Exec(ctx, `UPDATE exports SET status = 'cancelled', completed_at = now(), lease_owner = NULL WHERE id = $1`, id); err != nil {
			return err
		}
		return RecordAuditEvent(ctx, tx, tenantID, audex.Event{
			Action: "audit.export_cancelled", Actor: actor, Target: audex.NewTarget("export", id),
		})
	})
	if err != nil {
		return fmt.Errorf("cancel export: %w", translate(err))
	}
	return nil
}

// AcquireExportLease makes owner the only attempt working the export for
// ttl: it succeeds when the export is queued or running and nobody else
// holds an unexpired lease, moves it to running (setting started_at once)
// and records attempt (River's attempt number; snoozed continuations keep
// it). It returns ErrLeaseLost when another attempt holds it, and the
// export (with parts) otherwise, finished or not.
//
// With runningPerTenant above zero, the lease is also refused, with
// ErrTenantBusy, while that many other exports of the same tenant hold
// live leases: a tenant's exports take turns, so that its backlog never
// holds another tenant's export for more than one attempt. Acquisitions of
// one tenant take turns, so the cap holds across workers.
func AcquireExportLease(ctx context.Context, db DBTX, id, owner string, attempt int, ttl time.Duration, runningPerTenant int) (audex.Export, error) {
	var leased, busy bool
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if runningPerTenant > 0 {
			var tenantID string
			if err := tx.QueryRow(ctx, `SELECT tenant_id FROM exports WHERE id = $1`, id).Scan(&tenantID); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('audex_export_run:' || $1, 0))`, tenantID); err != nil {
				return err
			}
			var running int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM exports WHERE tenant_id = $1 AND id <> $2
				AND status = 'running' AND lease_owner IS NOT NULL AND lease_until >= clock_timestamp()`, tenantID, id).Scan(&running); err != nil {
				return err
			}
			if busy = running >= runningPerTenant; busy {
				return nil
			}
		}
		tag, err := tx.Exec(ctx, `
			UPDATE exports SET lease_owner = $2, lease_until = now() + $3::interval,
				status = 'running', started_at = coalesce(started_at, now()), attempts = greatest(attempts, $4)
			WHERE id = $1 AND status IN ('queued', 'running')
			  AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until < now())`, id, owner, ttl, attempt)
		leased = err == nil && tag.RowsAffected() > 0
		return err
	})
	if err != nil {
		return audex.Export{}, fmt.Errorf("lease export: %w", translate(err))
	}
	e, err := GetExportByID(ctx, db, id)
	if err != nil {
		return e, err
	}
	switch {
	case e.Finished():
		return e, nil
	case busy:
		return e, ErrTenantBusy
	case !leased:
		return e, ErrLeaseLost
	}
	return e, nil
}

// ErrTenantBusy means another export of the same tenant holds the turn;
// the caller waits and tries again.
var ErrTenantBusy = errors.New("the tenant's other exports hold its turn")

// ReleaseExportLease gives up owner's lease, so that the next attempt can
// start at once.
func ReleaseExportLease(ctx context.Context, db DBTX, id, owner string) error {
	_, err := db.Exec(ctx, `UPDATE exports SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2`, id, owner)
	if err != nil {
		return fmt.Errorf("release export lease: %w", translate(err))
	}
	return nil
}

// RecordExportPart records an uploaded part and moves the export's
// checkpoint past its last event, in one transaction, and renews owner's
// lease for ttl. It returns the export's status after the change:
// a cancelled export's status is returned with no part recorded.
// ErrLeaseLost when owner no longer holds the lease.
func RecordExportPart(ctx context.Context, db DBTX, id, owner string, ttl time.Duration, number int, file audex.ExportFile, last audex.Position) (string, error) {
	var status string
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var leaseOwner *string
		err := tx.QueryRow(ctx, `SELECT status, lease_owner FROM exports WHERE id = $1 FOR UPDATE`, id).Scan(&status, &leaseOwner)
		if err != nil {
			return err
		}
		if status != audex.ExportRunning {
			return nil
		}
		if leaseOwner == nil || *leaseOwner != owner {
			return ErrLeaseLost
		}
		if _, err := tx.Exec(ctx, `INSERT INTO export_parts (export_id, part_number, key, size_bytes, records, sha256)
			VALUES ($1, $2, $3, $4, $5, $6)`, id, number, file.Key, file.SizeBytes, file.Records, file.SHA256); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE exports SET last_occurred_at = $2, last_id = $3,
			records_exported = records_exported + $4, parts_written = $5, lease_until = now() + $6::interval
			WHERE id = $1`, id, last.OccurredAt, last.ID, file.Records, number, ttl)
		return err
	})
	if err != nil && !errors.Is(err, ErrLeaseLost) {
		return "", fmt.Errorf("record export part: %w", translate(err))
	}
	return status, err
}

// LockStalledExports returns up to limit running exports whose lease
// expired more than grace ago (their attempt's worker died, or lost the
// database), locked until tx ends, and ends their leases, so that once tx
// commits no caller finds them again: the caller inserts one job for each
// in tx, and that job takes the lease that is now free. Rows that another
// transaction holds are skipped, so concurrent callers never return the
// same export.
func LockStalledExports(ctx context.Context, tx pgx.Tx, grace time.Duration, limit int) ([]string, error) {
	ids, err := queryAll(ctx, tx, "lock stalled exports", pgx.RowTo[string], `
		UPDATE exports SET lease_owner = NULL, lease_until = NULL
		WHERE id IN (SELECT id FROM exports WHERE status = 'running' AND lease_until < now() - $1::interval
			ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
		  AND status = 'running' AND lease_until < now() - $1::interval
		RETURNING id`, grace, limit)
	if err != nil {
		return nil, err
	}
	slices.Sort(ids)
	return ids, nil
}

// RenewExportLease extends owner's lease on the export to ttl from now
// and reports whether owner held it (the export running and leased to
// owner); the export's status is returned either way. A lease that owner
// no longer holds is left as it is.
func RenewExportLease(ctx context.Context, db DBTX, id, owner string, ttl time.Duration) (status string, held bool, err error) {
	err = db.QueryRow(ctx, `
		WITH renewed AS (
			UPDATE exports SET lease_until = now() + $3::interval
			WHERE id = $1 AND lease_owner = $2 AND status = 'running' RETURNING id
		)
		SELECT status, EXISTS (SELECT 1 FROM renewed) FROM exports WHERE id = $1`, id, owner, ttl).Scan(&status, &held)
	if err != nil {
		return "", false, fmt.Errorf("renew export lease: %w", translate(err))
	}
	return status, held, nil
}

// ExportStatus returns the export's status and whether owner holds its
// lease. It only reads: leases are renewed by RenewExportLease.
func ExportStatus(ctx context.Context, db DBTX, id, owner string) (status string, leased bool, err error) {
	err = db.QueryRow(ctx, `SELECT status, coalesce(lease_owner = $2, false) FROM exports WHERE id = $1`, id, owner).Scan(&status, &leased)
	if err != nil {
		return "", false, fmt.Errorf("export status: %w", translate(err))
	}
	return status, leased, nil
}

// CompleteExport marks the export completed at completedAt with its
// manifest key and records audit.export_completed, in one transaction.
// ErrLeaseLost when owner no longer holds the lease or the export is no
// longer running (cancelled meanwhile).
func CompleteExport(ctx context.Context, db DBTX, id, owner, manifestKey string, completedAt time.Time) error {
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var tenantID string
		err := tx.QueryRow(ctx, `
			UPDATE exports SET status = 'completed', manifest_key = $3, completed_at = $4, lease_owner = NULL, lease_until = NULL
			WHERE id = $1 AND lease_owner = $2 AND status = 'running' RETURNING tenant_id`, id, owner, manifestKey, completedAt).Scan(&tenantID)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrLeaseLost
		}
		if err != nil {
			return err
		}
		return RecordAuditEvent(ctx, tx, tenantID, audex.Event{
			Action: "audit.export_completed", Actor: audex.SystemActor(), Target: audex.NewTarget("export", id),
		})
	})
	if err != nil && !errors.Is(err, ErrLeaseLost) {
		return fmt.Errorf("complete export: %w", translate(err))
	}
	return err
}

// FailExport marks a queued or running export failed with an operator's
// explanation and records audit.export_failed, in one transaction. A
// finished export is left as it is.
func FailExport(ctx context.Context, db DBTX, id string, cause audex.ExportError) error {
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var tenantID string
		err := tx.QueryRow(ctx, `
			UPDATE exports SET status = 'failed', error_code = $2, error_message = $3, completed_at = now(),
				lease_owner = NULL, lease_until = NULL
			WHERE id = $1 AND status IN ('queued', 'running') RETURNING tenant_id`, id, cause.Code, cause.Message).Scan(&tenantID)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		return RecordAuditEvent(ctx, tx, tenantID, audex.Event{
			Action: "audit.export_failed", Actor: audex.SystemActor(), Target: audex.NewTarget("export", id),
			Metadata: mustJSON(map[string]string{"code": cause.Code, "message": cause.Message}),
		})
	})
	if err != nil {
		return fmt.Errorf("fail export: %w", translate(err))
	}
	return nil
}

// SetExportCleanupError notes on a failed or cancelled export that its
// parts could not all be deleted.
func SetExportCleanupError(ctx context.Context, db DBTX, id, message string) error {
	_, err := db.Exec(ctx, `UPDATE exports SET error_code = coalesce(error_code, 'cleanup_failed'),
		error_message = coalesce(error_message || '; ', '') || $2 WHERE id = $1`, id, message)
	if err != nil {
		return fmt.Errorf("note export cleanup: %w", translate(err))
	}
	return nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// CountExportEvents counts exactly the events that export e selects (its
// range and filters, received before its as_of) and records the count as
// its estimated_records while it is running, so that its progress is
// exact from then on.
func CountExportEvents(ctx context.Context, db DBTX, e audex.Export) (int64, error) {
	n, err := CountEvents(ctx, db, e.TenantID, e.Filter)
	if err != nil {
		return 0, fmt.Errorf("count export events: %w", err)
	}
	if _, err := db.Exec(ctx, `UPDATE exports SET estimated_records = $2, estimate_is_lower_bound = false WHERE id = $1 AND status = 'running'`, e.ID, n); err != nil {
		return 0, fmt.Errorf("record export count: %w", translate(err))
	}
	return n, nil
}

// CountEvents counts exactly the tenant's events that f matches (a full
// scan of what matches: for exports and the benchmark, not for requests).
func CountEvents(ctx context.Context, db DBTX, tenantID string, f audex.Filter) (int64, error) {
	q, keyed, err := countConditions(ctx, db, tenantID, f)
	if err != nil {
		return 0, translate(err)
	}
	n, err := countOf(ctx, db, keyed, `SELECT count(*) FROM `+q.source()+` WHERE `+strings.Join(q.conds, " AND "), q.args)
	if err != nil {
		return 0, translate(err)
	}
	return n, nil
}

// countOf runs the count statement sql. A count that reads the keys
// index (keyed) runs as a list's statements do (withListPlans): planned
// for the statement, not for statistics that may predate the tenant's
// events (with which the count of a rare action on a tenant ingested
// after them read all of its rows in a partition).
func countOf(ctx context.Context, db DBTX, keyed bool, sql string, args []any) (n int64, err error) {
	if !keyed {
		err = db.QueryRow(ctx, sql, args...).Scan(&n)
		return n, err
	}
	err = withListPlans(ctx, db, func(tx pgx.Tx) error { return tx.QueryRow(ctx, sql, args...).Scan(&n) })
	return n, err
}

// countConditions is the conditions of a count of the tenant's events
// that f matches (f's) and what it reads (q.source()): the events that
// the keys index gives for f's values when it serves f (keyed), so that
// a rare action or type is counted from that index rather than by
// reading the tenant's events.
func countConditions(ctx context.Context, db DBTX, tenantID string, f audex.Filter) (q queryBuilder, keyed bool, err error) {
	q.where("tenant_id = " + q.arg(tenantID))
	q.filter(f)
	k, _, ok, err := keysOf(ctx, db, tenantID, f)
	if err != nil || !ok {
		return q, false, err
	}
	// Read in order, as a list's are, whatever the statistics say.
	var first, last time.Time
	err = withListPlans(ctx, db, func(tx pgx.Tx) (err error) {
		first, last, ok, err = filterDays(ctx, tx, tenantID, f)
		return err
	})
	if err == nil && ok && last.Sub(first) < time.Duration(k.maxDays())*24*time.Hour {
		q.from, keyed = k.fenced(&q, first, last), true
	}
	return q, keyed, err
}

// estimateExactUpTo is the size up to which EstimateEvents counts exactly.
const estimateExactUpTo = 100_000

// Estimate is a count of events that EstimateEvents gives.
type Estimate struct {
	Records int64
	// LowerBound is true when there are more than Records: more events
	// than it counts exactly, which the planner thought fewer (its
	// statistics predate them).
	LowerBound bool
}

// EstimateEvents returns the number of the tenant's events that match f:
// exact up to 100,000, beyond that the planner's estimate (or, when the
// planner thinks fewer, a lower bound), so that it stays fast on any
// range.
func EstimateEvents(ctx context.Context, db DBTX, tenantID string, f audex.Filter) (Estimate, error) {
	q, keyed, err := countConditions(ctx, db, tenantID, f)
	if err != nil {
		return Estimate{}, fmt.Errorf("estimate events: %w", translate(err))
	}
	where := strings.Join(q.conds, " AND ")
	n, err := countOf(ctx, db, keyed, fmt.Sprintf(`SELECT count(*) FROM (SELECT 1 FROM %s WHERE %s LIMIT %d) capped`, q.source(), where, estimateExactUpTo+1), q.args)
	if err != nil {
		return Estimate{}, fmt.Errorf("estimate events: %w", translate(err))
	}
	if n <= estimateExactUpTo {
		return Estimate{Records: n}, nil
	}
	bound := Estimate{Records: n, LowerBound: true}
	var plan []struct {
		Plan struct {
			Rows float64 `json:"Plan Rows"`
		} `json:"Plan"`
	}
	var raw []byte
	if err := db.QueryRow(ctx, `EXPLAIN (FORMAT JSON) SELECT 1 FROM `+q.source()+` WHERE `+where, q.args...).Scan(&raw); err != nil {
		return bound, nil //nolint:nilerr // the capped count is a fair estimate
	}
	if json.Unmarshal(raw, &plan) != nil || len(plan) == 0 || int64(plan[0].Plan.Rows) <= n {
		return bound, nil
	}
	return Estimate{Records: int64(plan[0].Plan.Rows)}, nil
}
