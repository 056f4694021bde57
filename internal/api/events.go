package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
)

// listResponse is the body of a page of events.
type listResponse struct {
	Events     []audex.Event `json:"events"`
	NextCursor *string       `json:"next_cursor"`
	HasMore    bool          `json:"has_more"`
}

func (s *Server) handleListEvents(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	q, err := parseListQuery(r.URL.RawQuery)
	if err != nil {
		return err
	}
	var page listResponse
	err = s.read(w, func(db store.DBTX) error {
		page, err = s.listPage(r, db, key.TenantID, q, "events")
		return err
	})
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, page)
	return nil
}

// listPage reads one page of a listing: limit+1 rows tell whether there is
// more, and the cursor is bound to the tenant, filters, order and route.
func (s *Server) listPage(r *http.Request, db store.DBTX, tenantID string, q listQuery, route string) (listResponse, error) {
	scope := scopeFingerprint(tenantID, route, q.filter, q.order)
	var after *audex.Position
	if q.cursor != "" {
		pos, err := s.cursors.decode(q.cursor, scope)
		if err != nil {
			return listResponse{}, err
		}
		after = &pos
	}
	events, err := store.ListEvents(r.Context(), db, tenantID, q.filter, q.order, after, q.limit+1)
	if err != nil {
		return listResponse{}, err
	}
	page := listResponse{Events: events}
	if len(events) > q.limit {
		page.Events = events[:q.limit]
		last := page.Events[q.limit-1]
		next := s.cursors.encode(audex.Position{OccurredAt: last.OccurredAt, ID: last.ID}, scope)
		page.NextCursor, page.HasMore = &next, true
	}
	if page.Events == nil {
		page.Events = []audex.Event{}
	}
	return page, nil
}

func (s *Server) handleGetEvent(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	return s.read(w, func(db store.DBTX) error {
		return writeByID(s, w, r, key, "event", func(ctx context.Context, _ store.DBTX, tenantID, id string) (audex.Event, error) {
			return store.GetEvent(ctx, db, tenantID, id)
		})
	})
}

func (s *Server) handleDeleteEvent(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	id := r.PathValue("id")
	if !validEventID(id) {
		return notFound("event")
	}
	err := store.DeleteEvent(r.Context(), s.pool, key.TenantID, id, audex.KeyActor(key))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("event")
	case errors.Is(err, store.ErrProtected):
		return &Error{Code: CodeConflict, Message: "audit.* events record changes to audex itself and cannot be deleted one by one; they age out through purges"}
	case err != nil:
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
