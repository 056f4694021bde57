package api

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"

	"github.com/audex-dev/audex"
)

// The operator routes: the OpenAPI document, Prometheus metrics and
// River's web UI (API.md, "operator routes").

// openAPIDocument is the OpenAPI 3.1 document of every route. The API tests
// check each request they make, and its answer, against it.
//
//go:embed openapi.json
var openAPIDocument []byte

// handleOpenAPI serves the OpenAPI document (GET /openapi.json, no key).
func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request, _ audex.APIKey) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPIDocument)
	return nil
}

// handleMetrics serves the process's Prometheus metrics (GET /metrics, no
// key).
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request, _ audex.APIKey) error {
	s.metrics.ServeHTTP(w, r)
	return nil
}

// riverUIPrefix is where River's web UI is mounted.
const riverUIPrefix = "/admin/river"

// maxRiverUIBody bounds the bodies of the UI's JSON API (job ids, queue
// names).
const maxRiverUIBody = 1 << 20

// handleRiverUI serves River's web UI and its JSON API (/admin/river/,
// scope operator).
func (s *Server) handleRiverUI(w http.ResponseWriter, r *http.Request, _ audex.APIKey) error {
	if s.riverUI == nil {
		return &Error{Code: CodeNotFound, Message: "the River UI is not enabled on this server"}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRiverUIBody)
	s.riverUI.ServeHTTP(w, r)
	return nil
}

// NewRiverUI returns River's web UI for Config.RiverUI, showing the jobs
// of client's database; its background services run until ctx ends.
func NewRiverUI(ctx context.Context, client *river.Client[pgx.Tx], logger *slog.Logger) (http.Handler, error) {
	h, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Prefix:    riverUIPrefix,
		Logger:    logger,
	})
	if err != nil {
		return nil, fmt.Errorf("create River UI: %w", err)
	}
	if err := h.Start(ctx); err != nil {
		return nil, fmt.Errorf("start River UI: %w", err)
	}
	return h, nil
}
