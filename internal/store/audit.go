package store

import (
	"context"

	"github.com/audex-dev/audex"
)

// RecordAuditEvent writes one audit.* event (the record of a change that
// is not an ingest) in db's transaction. It fills in occurred_at
// (the transaction's time) and, when they are unset, the id and empty
// metadata.
func RecordAuditEvent(ctx context.Context, db DBTX, tenantID string, e audex.Event) error {
	if e.ID == "" {
		e.ID = audex.NewID("evt")
	}
	if err := db.QueryRow(ctx, `SELECT now()`).Scan(&e.OccurredAt); err != nil {
		return err
	}
	e.OccurredAt = e.OccurredAt.UTC()
	if e.Metadata == nil {
		e.Metadata = []byte("{}")
	}
	_, err := InsertEvents(ctx, db, tenantID, []audex.Event{e})
	return err
}
