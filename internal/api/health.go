package api

import (
	"context"
	"net/http"
	"time"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
)

// handleHealthz answers GET /healthz: the process is up (it asks nothing
// of the database).
func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request, _ audex.APIKey) error {
	s.writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// readyTimeout bounds the database check of GET /readyz.
const readyTimeout = 2 * time.Second

// handleReadyz answers GET /readyz: the database answers within
// readyTimeout.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request, _ audex.APIKey) error {
	// A database that does not answer within readyTimeout is not ready,
	// rather than a probe left hanging.
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := store.Ping(ctx, s.pool); err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}
