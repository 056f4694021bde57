package api

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"mime"
	"net/http"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"

	"github.com/audex-dev/audex"
)

// The operator routes: the OpenAPI document, Prometheus metrics and
// River's web UI (docs/api.md, "operator routes").

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
// scope operator). Writes must pass checkRiverUIWrite first.
func (s *Server) handleRiverUI(w http.ResponseWriter, r *http.Request, _ audex.APIKey) error {
	if s.riverUI == nil {
		return &Error{Code: CodeNotFound, Message: "the River UI is not enabled on this server"}
	}
	if err := checkRiverUIWrite(r); err != nil {
		return err
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRiverUIBody)
	s.riverUI.ServeHTTP(w, r)
	return nil
}

// riverUICrossOrigin refuses the cross-origin writes of browsers. A
// browser resends an operator's HTTP Basic credentials on its own with any
// request to this host, one made by another site's page included, so the
// key alone does not show that the operator meant a write (CSRF).
var riverUICrossOrigin = http.NewCrossOriginProtection()

// checkRiverUIWrite refuses, as permission_denied, a write (any method but
// GET, HEAD and OPTIONS, which change nothing and stay as they are) to the
// River UI that a browser sends from another origin: Sec-Fetch-Site other
// than same-origin or none, or else an Origin whose host is not this
// request's Host (net/http's CrossOriginProtection).
//
// A write must also either say Content-Type: application/json, which
// another site's page cannot send without a CORS preflight that this
// server never grants, or come with Sec-Fetch-Site: same-origin, which
// only the browser sets and no page can forge. The second way is the UI's
// own: River UI v0.22 posts its JSON bodies (job cancel, delete, retry)
// without a Content-Type, so that browsers label them text/plain, and
// pauses or resumes a queue with an empty PUT. This covers browsers that
// send neither Sec-Fetch-Site nor Origin, where CrossOriginProtection lets
// a form or text/plain post through. Non-browser clients (a Bearer key,
// neither header) write with Content-Type: application/json.
func checkRiverUIWrite(r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	if err := riverUICrossOrigin.Check(r); err != nil {
		return &Error{Code: CodePermissionDenied, Message: "the River UI takes no writes from another site's page; open it at this server's own address"}
	}
	if r.Header.Get("Sec-Fetch-Site") == "same-origin" {
		return nil
	}
	if mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mediaType != "application/json" {
		return &Error{Code: CodePermissionDenied, Message: "writes to the River UI's API must be sent with Content-Type: application/json"}
	}
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
