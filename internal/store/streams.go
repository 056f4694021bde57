package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audex-dev/audex"
)

const selectStreamColumns = `id, tenant_id, status, format, compression, filters,
	destination_name, destination_type, destination_bucket, destination_prefix, key_prefix,
	interval_seconds, start_at, watermark, pending_through, next_seq, batches_delivered, events_delivered,
	last_batch_at, last_manifest_sha256, failures, error_code, error_message, created_at,
	extract(epoch FROM clock_timestamp() - watermark)::float8`

func scanStream(row pgx.CollectableRow) (audex.Stream, error) {
	var s audex.Stream
	var errCode, errMessage *string
	var lag float64
	err := row.Scan(&s.ID, &s.TenantID, &s.Status, &s.Format, &s.Compression, &s.Filters,
		&s.Destination.Name, &s.Destination.Type, &s.Destination.Bucket, &s.Destination.Prefix, &s.KeyPrefix,
		&s.IntervalSeconds, &s.Start, &s.Watermark, &s.PendingThrough, &s.NextSeq, &s.BatchesDelivered, &s.EventsDelivered,
		&s.LastBatchAt, &s.LastManifestSHA256, &s.Failures, &errCode, &errMessage, &s.CreatedAt, &lag)
	if err != nil {
		return s, err
	}
	s.Start, s.Watermark, s.CreatedAt = s.Start.UTC(), s.Watermark.UTC(), s.CreatedAt.UTC()
	s.PendingThrough, s.LastBatchAt = utcPtr(s.PendingThrough), utcPtr(s.LastBatchAt)
	// Lag: how far behind now the watermark is, to the millisecond; a
	// stream waiting for its next interval lags by up to that interval.
	s.LagSeconds = float64(int64(max(lag, 0)*1000)) / 1000
	if errCode != nil {
		s.Error = &audex.ExportError{Code: *errCode, Message: *errMessage}
	}
	if err := json.Unmarshal(s.Filters, &s.Filter); err != nil {
		return s, fmt.Errorf("stream %s filters: %w", s.ID, err)
	}
	return s, nil
}

// CreateStream inserts an active stream. A zero Start means now (the
// transaction's time): the stream delivers the events received from then
// on. It sets Start, Watermark and CreatedAt: callers create the stream,
// record its audit event and insert its River job in one transaction.
func CreateStream(ctx context.Context, db DBTX, s *audex.Stream) error {
	var start *time.Time
	if !s.Start.IsZero() {
		start = &s.Start
	}
	err := db.QueryRow(ctx, `
		INSERT INTO streams (id, tenant_id, status, format, compression, filters,
			destination_name, destination_type, destination_bucket, destination_prefix, key_prefix,
			interval_seconds, start_at, watermark)
		VALUES ($1, $2, 'active', $3, $4, $5, $6, $7, $8, $9, $10, $11, coalesce($12, now()), coalesce($12, now()))
		RETURNING start_at, created_at`,
		s.ID, s.TenantID, s.Format, s.Compression, s.Filters,
		s.Destination.Name, s.Destination.Type, s.Destination.Bucket, s.Destination.Prefix, s.KeyPrefix,
		s.IntervalSeconds, start,
	).Scan(&s.Start, &s.CreatedAt)
	if err != nil {
		return fmt.Errorf("create stream: %w", translate(err))
	}
	s.Start, s.CreatedAt, s.Status, s.NextSeq = s.Start.UTC(), s.CreatedAt.UTC(), audex.StreamActive, 1
	s.Watermark = s.Start
	return nil
}

// GetStream returns the tenant's stream; another tenant's, a deleted or a
// missing stream is ErrNotFound.
func GetStream(ctx context.Context, db DBTX, tenantID, id string) (audex.Stream, error) {
	return getStream(ctx, db, `id = $1 AND tenant_id = $2 AND status <> 'deleted'`, id, tenantID)
}

// GetStreamByID returns the stream whatever its tenant and status: for
// the worker.
func GetStreamByID(ctx context.Context, db DBTX, id string) (audex.Stream, error) {
	return getStream(ctx, db, `id = $1`, id)
}

func getStream(ctx context.Context, db DBTX, where string, args ...any) (audex.Stream, error) {
	return queryOne(ctx, db, "get stream", scanStream, `SELECT `+selectStreamColumns+` FROM streams WHERE `+where, args...)
}

// ListStreams returns up to limit of the tenant's streams (not deleted),
// newest first, after the (created_at, id) position after.
func ListStreams(ctx context.Context, db DBTX, tenantID string, after *audex.Position, limit int) ([]audex.Stream, error) {
	var q queryBuilder
	q.where("tenant_id = " + q.arg(tenantID))
	q.where("status <> 'deleted'")
	if after != nil {
		q.where(fmt.Sprintf("(created_at, id) < (%s, %s)", q.arg(after.OccurredAt), q.arg(after.ID)))
	}
	return queryAll(ctx, db, "list streams", scanStream, fmt.Sprintf(`SELECT %s FROM streams WHERE %s ORDER BY created_at DESC, id DESC LIMIT %s`,
		selectStreamColumns, strings.Join(q.conds, " AND "), q.arg(limit)), q.args...)
}

// StreamChange is what a PATCH of a stream changes; nil fields stay.
type StreamChange struct {
	Status          *string // active or paused
	IntervalSeconds *int
}

// UpdateStream applies change to the tenant's stream and records
// audit.stream_updated by actor, in db's transaction. Resuming a failed
// stream clears its error. ErrNotFound for another tenant's, a deleted or
// a missing stream. It returns the stream as changed.
func UpdateStream(ctx context.Context, db DBTX, tenantID, id string, change StreamChange, actor audex.Actor) (audex.Stream, error) {
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE streams SET
				status = coalesce($3, status),
				interval_seconds = coalesce($4, interval_seconds),
				failures = CASE WHEN $3 = 'active' AND status <> 'active' THEN 0 ELSE failures END,
				retry_at = CASE WHEN $3 = 'active' AND status <> 'active' THEN NULL ELSE retry_at END,
				error_code = CASE WHEN $3 = 'active' AND status <> 'active' THEN NULL ELSE error_code END,
				error_message = CASE WHEN $3 = 'active' AND status <> 'active' THEN NULL ELSE error_message END,
				updated_at = now()
			WHERE id = $1 AND tenant_id = $2 AND status <> 'deleted'`, id, tenantID, change.Status, change.IntervalSeconds)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return pgx.ErrNoRows
		}
		return RecordAuditEvent(ctx, tx, tenantID, audex.Event{
			Action: "audit.stream_updated", Actor: actor, Target: audex.NewTarget("stream", id),
		})
	})
	if err != nil {
		return audex.Stream{}, fmt.Errorf("update stream: %w", translate(err))
	}
	return GetStream(ctx, db, tenantID, id)
}

// DeleteStream stops the tenant's stream for good and records
// audit.stream_deleted by actor, in db's transaction; what it delivered
// stays. ErrNotFound for another tenant's, a deleted or a missing stream.
func DeleteStream(ctx context.Context, db DBTX, tenantID, id string, actor audex.Actor) error {
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE streams SET status = 'deleted', updated_at = now()
			WHERE id = $1 AND tenant_id = $2 AND status <> 'deleted'`, id, tenantID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return pgx.ErrNoRows
		}
		return RecordAuditEvent(ctx, tx, tenantID, audex.Event{
			Action: "audit.stream_deleted", Actor: actor, Target: audex.NewTarget("stream", id),
		})
	})
	if err != nil {
		return fmt.Errorf("delete stream: %w", translate(err))
	}
	return nil
}

// ListStreamBatches returns up to limit of the stream's delivered
// batches with seq above afterSeq, in ascending seq.
func ListStreamBatches(ctx context.Context, db DBTX, streamID string, afterSeq int64, limit int) ([]audex.StreamBatch, error) {
	rows, err := db.Query(ctx, `SELECT stream_id, seq, after, through, record_count, files, manifest_key,
			manifest_sha256, previous_manifest_sha256, delivered_at
		FROM stream_batches WHERE stream_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, streamID, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("list stream batches: %w", translate(err))
	}
	batches, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (audex.StreamBatch, error) {
		var b audex.StreamBatch
		var files []byte
		err := row.Scan(&b.StreamID, &b.Seq, &b.After, &b.Through, &b.RecordCount, &files, &b.ManifestKey,
			&b.ManifestSHA256, &b.PreviousManifestSHA256, &b.DeliveredAt)
		if err != nil {
			return b, err
		}
		b.After, b.Through, b.DeliveredAt = b.After.UTC(), b.Through.UTC(), b.DeliveredAt.UTC()
		return b, json.Unmarshal(files, &b.Files)
	})
	if err != nil {
		return nil, fmt.Errorf("list stream batches: %w", translate(err))
	}
	return batches, nil
}

// PendStreamBatch fixes the through of the stream's next batch: the one
// already pending, if an earlier attempt fixed it, else through. Every
// attempt of a batch then delivers the same events under the same keys.
// ErrConflict when the stream is no longer active.
func PendStreamBatch(ctx context.Context, db DBTX, id string, through time.Time) (time.Time, error) {
	var pending time.Time
	err := db.QueryRow(ctx, `UPDATE streams SET pending_through = coalesce(pending_through, $2)
		WHERE id = $1 AND status = 'active' RETURNING pending_through`, id, through).Scan(&pending)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, fmt.Errorf("pend stream batch: %w: stream is not active", ErrConflict)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("pend stream batch: %w", translate(err))
	}
	return pending.UTC(), nil
}

// StreamBatchEnd returns the through of a batch of at most most of the
// stream's events received from after on and before through (arrivalsEnd),
// read down the received_at index.
func StreamBatchEnd(ctx context.Context, db DBTX, s audex.Stream, through time.Time, most int) (time.Time, error) {
	end := through
	err := inArrivalOrder(ctx, db, func(tx pgx.Tx) error {
		var err error
		end, _, err = arrivalsEnd(ctx, tx, s.TenantID, s.Filter, s.Watermark, through, most)
		return err
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("stream batch end: %w", translate(err))
	}
	return end, nil
}

// arrivalsEnd returns where a run over at most most of the tenant's events
// that f matches, received from from on and before through, ends: through
// itself when there are no more (cut false), else the received_at of the
// first event past most (cut true; the run ends before it, and holds at
// least the events of one received_at, all of an ingest's). Streams,
// rollups and seals cut their work with it.
func arrivalsEnd(ctx context.Context, db DBTX, tenantID string, f audex.Filter, from, through time.Time, most int) (time.Time, bool, error) {
	var q queryBuilder
	arrivals(&q, tenantID, f, from, through)
	var next time.Time
	err := db.QueryRow(ctx, fmt.Sprintf(`SELECT received_at FROM events WHERE %s ORDER BY received_at OFFSET %s LIMIT 1`,
		strings.Join(q.conds, " AND "), q.arg(most)), q.args...).Scan(&next)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return through, false, nil
	case err != nil:
		return time.Time{}, false, err
	case next.After(from):
		return next.UTC(), true, nil
	}
	return through, false, nil
}

// Arrival is an event's place in arrival order.
type Arrival struct {
	ReceivedAt time.Time
	ID         string
}

// ListArrivals returns up to limit of the tenant's events that f matches
// and that were received from from on and before through, after the
// arrival position after (nil: from the first), in arrival order
// (received_at, id).
func ListArrivals(ctx context.Context, db DBTX, tenantID string, f audex.Filter, from, through time.Time, after *Arrival, limit int) ([]audex.Event, error) {
	var q queryBuilder
	arrivals(&q, tenantID, f, from, through)
	if after != nil {
		// The plain bound starts the index scan where the last page ended
		// (the row comparison alone would be a filter over the whole
		// batch, page after page).
		at := q.arg(after.ReceivedAt)
		q.where("received_at >= " + at)
		q.where(fmt.Sprintf("(received_at, id) > (%s, %s)", at, q.arg(after.ID)))
	}
	var events []audex.Event
	err := inArrivalOrder(ctx, db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT %s FROM events WHERE %s ORDER BY received_at, id LIMIT %s`,
			selectEventColumns, strings.Join(q.conds, " AND "), q.arg(limit)), q.args...)
		if err != nil {
			return err
		}
		events, err = pgx.CollectRows(rows, scanEvent)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list arrivals: %w", translate(err))
	}
	return events, nil
}

// inArrivalOrder runs fn in a transaction whose plans read events in
// arrival order from the received_at index: with sorting off, a range of
// arrivals is read down the index (a Merge Append of the partitions, ties
// sorted incrementally) and stops at the LIMIT. Left to its estimates,
// the planner, whose statistics predate the newest arrivals, read and
// sorted the whole rest of a batch for each page: 0.9 s a page of a
// 550,000-event batch, where the index takes 5 ms.
func inArrivalOrder(ctx context.Context, db DBTX, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL enable_sort = off`); err != nil {
			return err
		}
		return fn(tx)
	})
}

// arrivals adds to q the conditions of the tenant's events that f matches
// received from from on and before through.
func arrivals(q *queryBuilder, tenantID string, f audex.Filter, from, through time.Time) {
	q.where("tenant_id = " + q.arg(tenantID))
	q.filter(f)
	q.where("received_at >= " + q.arg(from))
	q.where("received_at < " + q.arg(through))
}

// CommitStreamBatch records batch b as delivered and moves its stream's
// watermark to b.Through, in one transaction. It does nothing and returns
// ErrConflict when the stream's next batch is no longer b.Seq (another
// attempt recorded it). A batch of no record is not recorded: only the
// watermark moves.
func CommitStreamBatch(ctx context.Context, db DBTX, b audex.StreamBatch) error {
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var seq int64
		err := tx.QueryRow(ctx, `SELECT next_seq FROM streams WHERE id = $1 FOR UPDATE`, b.StreamID).Scan(&seq)
		if err != nil {
			return err
		}
		if seq != b.Seq {
			return fmt.Errorf("%w: batch %d of stream %s is already recorded", ErrConflict, b.Seq, b.StreamID)
		}
		if b.RecordCount == 0 {
			_, err := tx.Exec(ctx, `UPDATE streams SET watermark = $2, pending_through = NULL, failures = 0,
				retry_at = NULL, error_code = NULL, error_message = NULL WHERE id = $1`, b.StreamID, b.Through)
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO stream_batches (stream_id, seq, after, through, record_count, files,
				manifest_key, manifest_sha256, previous_manifest_sha256, delivered_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			b.StreamID, b.Seq, b.After, b.Through, b.RecordCount, mustJSON(b.Files),
			b.ManifestKey, b.ManifestSHA256, b.PreviousManifestSHA256, b.DeliveredAt); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE streams SET watermark = $2, pending_through = NULL, next_seq = next_seq + 1,
				batches_delivered = batches_delivered + 1, events_delivered = events_delivered + $3,
				last_batch_at = $4, last_manifest_sha256 = $5, failures = 0, retry_at = NULL, error_code = NULL, error_message = NULL
			WHERE id = $1`, b.StreamID, b.Through, b.RecordCount, b.DeliveredAt, b.ManifestSHA256)
		return err
	})
	if err != nil {
		return fmt.Errorf("commit stream batch: %w", translate(err))
	}
	return nil
}

// RecordStreamFailure records a failed delivery of the stream: its error,
// one more failure in a row, and the time of the next try, backoff from
// now. A permanent one also fails the stream and records
// audit.stream_failed by the system, when it was active. It returns the
// failures in a row.
func RecordStreamFailure(ctx context.Context, db DBTX, s audex.Stream, failure audex.ExportError, permanent bool, backoff func(failures int) time.Duration) (int, error) {
	var failures int
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		status := "o.status"
		if permanent {
			status = "CASE WHEN o.status = 'active' THEN 'failed' ELSE o.status END"
		}
		var was string
		err := tx.QueryRow(ctx, `UPDATE streams n SET failures = n.failures + 1, error_code = $2, error_message = $3,
				status = `+status+`, updated_at = now()
			FROM streams o WHERE n.id = $1 AND o.id = n.id RETURNING n.failures, o.status`,
			s.ID, failure.Code, failure.Message).Scan(&failures, &was)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE streams SET retry_at = clock_timestamp() + $2::interval WHERE id = $1`,
			s.ID, backoff(failures).String()); err != nil {
			return err
		}
		if !permanent || was != audex.StreamActive {
			return nil
		}
		metadata, err := json.Marshal(map[string]string{"code": failure.Code, "message": failure.Message})
		if err != nil {
			return err
		}
		return RecordAuditEvent(ctx, tx, s.TenantID, audex.Event{
			Action: "audit.stream_failed", Actor: audex.SystemActor(), Target: audex.NewTarget("stream", s.ID),
			Metadata: metadata,
		})
	})
	if err != nil {
		return 0, fmt.Errorf("record stream failure: %w", translate(err))
	}
	return failures, nil
}

// schedulerOwner is the lease owner of a stream that ClaimDueStreams
// claimed for a job not yet started.
const schedulerOwner = "scheduler"

// ClaimDueStreams claims, for ttl, up to limit active streams whose lease
// is free or expired and whose next batch is due (a batch pending, or an
// interval passed since the watermark) and whose retry time has come, and
// returns their ids: the caller inserts their jobs in db's transaction.
func ClaimDueStreams(ctx context.Context, db DBTX, ttl time.Duration, limit int) ([]string, error) {
	return queryAll(ctx, db, "claim due streams", pgx.RowTo[string], `UPDATE streams SET lease_owner = $1, lease_until = clock_timestamp() + $2::interval
		WHERE id IN (SELECT id FROM streams WHERE status = 'active'
			AND (lease_until IS NULL OR lease_until < clock_timestamp())
			AND (retry_at IS NULL OR retry_at <= clock_timestamp())
			AND (pending_through IS NOT NULL OR watermark + make_interval(secs => interval_seconds) <= clock_timestamp())
			ORDER BY watermark LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING id`, schedulerOwner, ttl.String(), limit)
}

// AcquireStreamLease makes owner the attempt delivering the active stream
// for ttl, when its lease is free, expired, or claimed by the scheduler
// for a job; it returns the stream, and ErrLeaseLost when another attempt
// holds the lease or the stream is not active.
func AcquireStreamLease(ctx context.Context, db DBTX, id, owner string, ttl time.Duration) (audex.Stream, error) {
	tag, err := db.Exec(ctx, `UPDATE streams SET lease_owner = $2, lease_until = clock_timestamp() + $3::interval
		WHERE id = $1 AND status = 'active'
			AND (lease_until IS NULL OR lease_until < clock_timestamp() OR lease_owner IN ($2, $4))`,
		id, owner, ttl.String(), schedulerOwner)
	if err != nil {
		return audex.Stream{}, fmt.Errorf("acquire stream lease: %w", translate(err))
	}
	if tag.RowsAffected() == 0 {
		return audex.Stream{}, ErrLeaseLost
	}
	return GetStreamByID(ctx, db, id)
}

// RenewStreamLease extends owner's lease of the stream by ttl; it returns
// ErrLeaseLost when owner no longer holds it.
func RenewStreamLease(ctx context.Context, db DBTX, id, owner string, ttl time.Duration) error {
	tag, err := db.Exec(ctx, `UPDATE streams SET lease_until = clock_timestamp() + $3::interval
		WHERE id = $1 AND lease_owner = $2`, id, owner, ttl.String())
	if err != nil {
		return fmt.Errorf("renew stream lease: %w", translate(err))
	}
	if tag.RowsAffected() == 0 {
		return ErrLeaseLost
	}
	return nil
}

// ReleaseStreamLease ends owner's lease of the stream, if it still holds
// it, so that the scheduler may claim the stream as soon as it is due.
func ReleaseStreamLease(ctx context.Context, db DBTX, id, owner string) error {
	_, err := db.Exec(ctx, `UPDATE streams SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2`, id, owner)
	if err != nil {
		return fmt.Errorf("release stream lease: %w", translate(err))
	}
	return nil
}

// StreamLag is how far behind now an active stream's watermark is.
type StreamLag struct {
	StreamID string
	Seconds  float64
}

// ActiveStreamLags returns the lag of every active stream, by id.
func ActiveStreamLags(ctx context.Context, db DBTX) ([]StreamLag, error) {
	return queryAll(ctx, db, "stream lags", pgx.RowToStructByPos[StreamLag], `SELECT id, greatest(extract(epoch FROM clock_timestamp() - watermark), 0)::float8
		FROM streams WHERE status = 'active' ORDER BY id`)
}

// StreamsBehind reports whether an active stream of the tenant has not yet
// delivered every event received before t (its watermark is earlier).
func StreamsBehind(ctx context.Context, db DBTX, tenantID string, t time.Time) (bool, error) {
	var behind bool
	err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM streams WHERE tenant_id = $1 AND status = 'active' AND watermark < $2)`,
		tenantID, t).Scan(&behind)
	if err != nil {
		return false, fmt.Errorf("streams behind: %w", translate(err))
	}
	return behind, nil
}
