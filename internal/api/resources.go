package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
)

// The tenant's resources that routes name by id (events, exports, purges)
// are read one way, and the jobs that requests create (exports, purges)
// are created one way.

// byID reads, with get, the tenant's resource that the route's {id} names;
// a malformed or unknown id is the 404 of what.
func byID[T any](s *Server, r *http.Request, tenantID, what string, get func(context.Context, store.DBTX, string, string) (T, error)) (T, error) {
	id := r.PathValue("id")
	if !validEventID(id) {
		var zero T
		return zero, notFound(what)
	}
	v, err := get(r.Context(), s.pool, tenantID, id)
	if errors.Is(err, store.ErrNotFound) {
		return v, notFound(what)
	}
	return v, err
}

// writeByID answers a GET of the resource that the route's {id} names.
func writeByID[T any](s *Server, w http.ResponseWriter, r *http.Request, key audex.APIKey, what string, get func(context.Context, store.DBTX, string, string) (T, error)) error {
	v, err := byID(s, r, key.TenantID, what, get)
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, v)
	return nil
}

// createJob stores a job's row with create (which returns its id), records
// the audit event action on it (a target of type kind) and inserts its
// River job, all in one transaction: a job is never queued without its row
// and its record, nor a row left without its job.
func (s *Server) createJob(ctx context.Context, key audex.APIKey, action, kind string, create func(pgx.Tx) (string, error), job func(id string) river.JobArgs) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		id, err := create(tx)
		if err != nil {
			return err
		}
		if err := store.RecordAuditEvent(ctx, tx, key.TenantID, audex.Event{
			Action: action, Actor: audex.KeyActor(key), Target: audex.NewTarget(kind, id),
		}); err != nil {
			return err
		}
		_, err = s.river.InsertTx(ctx, tx, job(id), nil)
		return err
	})
}

// pageRequest reads the limit and cursor of a list of the tenant's
// resources (jobs, streams, batches): the page size, and the position the
// cursor, signed for scope, continues after (nil: from the start).
func (s *Server) pageRequest(q map[string]string, scope string) (limit int, after *audex.Position, err error) {
	if limit, err = parseLimit(q); err != nil {
		return 0, nil, err
	}
	if q["cursor"] != "" {
		pos, err := s.cursors.decode(q["cursor"], scope)
		if err != nil {
			return 0, nil, err
		}
		after = &pos
	}
	return limit, after, nil
}

// page cuts items, read with limit+1, to a page of limit and says whether
// more follow; next is the cursor of the page's last item (at its position
// pos) in scope, nil on the last page. items is never nil.
func page[T any](s *Server, items []T, limit int, scope string, pos func(T) audex.Position) (kept []T, next *string, hasMore bool) {
	if items == nil {
		items = []T{}
	}
	if len(items) <= limit {
		return items, nil, false
	}
	kept = items[:limit]
	cursor := s.cursors.encode(pos(kept[limit-1]), scope)
	return kept, &cursor, true
}
