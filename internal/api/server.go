// Package api is audex's HTTP API: routing, authentication, validation and
// the mapping of errors to the contract's error shape. It reads and writes
// through internal/store and enqueues through internal/queue; it must not
// import cmd/*, sinks or job workers (TestArrows).
package api

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/config"
	"github.com/audex-dev/audex/internal/metrics"
	"github.com/audex-dev/audex/internal/store"
)

// Config is what a Server needs.
type Config struct {
	// Pool serves requests; its sessions' statement budget is the list
	// budget.
	Pool *pgxpool.Pool
	// DownloadPool serves the pages of downloads, so that they never take
	// the connections of interactive requests (nil: Pool).
	DownloadPool *pgxpool.Pool
	// Reads serves the reads of events (lists, gets, filters, summaries,
	// trails) from a read replica when one is configured (nil: Pool), and
	// DownloadReads the pages of downloads (nil: DownloadPool).
	Reads, DownloadReads *store.Reads
	Logger               *slog.Logger
	CursorSecret         []byte
	// River inserts jobs (an insert-only client is enough).
	River *river.Client[pgx.Tx]
	// Destinations are the export destinations the operator configured.
	Destinations []config.Destination
	// Exports are the part limits of exports that give none, and the caps
	// on what a request may ask.
	Exports ExportLimits
	// StreamMinInterval is the least interval a stream may ask for
	// (zero: config.DefaultStreamMinInterval).
	StreamMinInterval time.Duration
	// LogVerifierKeys are the integrity log's verifier keys, oldest first,
	// served by GET /v1/audit/log/public-key.
	LogVerifierKeys []string
	// Limits are the per-tenant caps and budgets of requests.
	Limits Limits
	// RateLimit limits each API key's requests to this process (zero: no
	// limit).
	RateLimit RateLimit
	// RiverUI serves River's web UI under /admin/river/ (NewRiverUI); nil
	// answers that route 404.
	RiverUI http.Handler
}

// ExportLimits are the part limits of an export request that gives none,
// the least part_max_records a request may give (zero: 1) and the cap on a
// tenant's queued and running exports (zero: none).
type ExportLimits struct {
	PartMaxRecords     int
	PartMaxBytes       int64
	MinPartMaxRecords  int
	MaxActivePerTenant int
}

// Server serves the audex API. Create it with New.
type Server struct {
	pool          *pgxpool.Pool
	downloadPool  *pgxpool.Pool
	reads         *store.Reads
	downloadReads *store.Reads
	logger        *slog.Logger
	cursors       cursorSigner
	mux           *http.ServeMux
	river         *river.Client[pgx.Tx]

	metrics      http.Handler
	riverUI      http.Handler
	destinations []config.Destination
	exports      ExportLimits
	// streamMinInterval is the least interval a stream may ask for.
	streamMinInterval time.Duration
	// logVerifierKeys are the integrity log's verifier keys.
	logVerifierKeys []string
	limits          Limits
	admission       *admission

	touchMu     sync.Mutex
	lastTouched map[string]time.Time

	limiters *rateLimiters
}

// Route is one entry of the router's table.
type Route struct {
	Method  string // empty for every method
	Pattern string // net/http pattern path, e.g. /v1/audit/events/{id}
	Scope   string // required scope; empty for routes without auth
	// Query is true for routes that take query parameters; the others
	// refuse a query string.
	Query bool
	// Work is the kind of work of the route, for admission (default:
	// interactive).
	Work   work
	handle handlerFunc
}

// handlerFunc is a route's handler. key is the authenticated key (zero for
// routes without a scope); a returned error is sent as the error body.
type handlerFunc func(w http.ResponseWriter, r *http.Request, key audex.APIKey) error

// New returns a Server with every route registered.
func New(cfg Config) *Server {
	s := &Server{
		pool:        cfg.Pool,
		logger:      cfg.Logger,
		cursors:     cursorSigner{secret: cfg.CursorSecret},
		mux:         http.NewServeMux(),
		river:       cfg.River,
		lastTouched: map[string]time.Time{},

		downloadPool:      cfg.DownloadPool,
		reads:             cfg.Reads,
		downloadReads:     cfg.DownloadReads,
		destinations:      cfg.Destinations,
		exports:           cfg.Exports,
		streamMinInterval: cfg.StreamMinInterval,
		logVerifierKeys:   cfg.LogVerifierKeys,
		limits:            cfg.Limits,
		admission:         newAdmission(cfg.Limits),
		limiters:          newRateLimiters(cfg.RateLimit),
		metrics:           metrics.Handler(cfg.Pool, cfg.Logger, cfg.Reads, cfg.DownloadReads),
		riverUI:           cfg.RiverUI,
	}
	if s.downloadPool == nil {
		s.downloadPool = s.pool
	}
	if s.limits.DownloadMinRate <= 0 {
		s.limits.DownloadMinRate = config.DefaultLimits.DownloadMinRate
	}
	if s.exports.PartMaxRecords == 0 {
		s.exports.PartMaxRecords = config.DefaultExports.PartMaxRecords
	}
	if s.exports.PartMaxBytes == 0 {
		s.exports.PartMaxBytes = config.DefaultExports.PartMaxBytes
	}
	s.exports.MinPartMaxRecords = max(s.exports.MinPartMaxRecords, 1)
	if s.streamMinInterval <= 0 {
		s.streamMinInterval = config.DefaultStreamMinInterval
	}
	for _, rt := range s.Routes() {
		s.mux.Handle(strings.TrimSpace(rt.Method+" "+rt.Pattern), s.wrap(rt))
	}
	return s
}

// Routes is the router's table: every route the server answers.
func (s *Server) Routes() []Route {
	return []Route{
		{Method: "GET", Pattern: "/healthz", handle: s.handleHealthz},
		{Method: "GET", Pattern: "/readyz", handle: s.handleReadyz},
		{Method: "GET", Pattern: "/openapi.json", handle: s.handleOpenAPI},
		{Method: "GET", Pattern: "/metrics", handle: s.handleMetrics},
		{Method: "GET", Pattern: "/console/", Query: true, handle: s.handleConsolePage},
		{Method: "GET", Pattern: "/console/assets/{name}", handle: s.handleConsoleAsset},
		{Method: "GET", Pattern: "/console/session", handle: s.handleConsoleSession},
		{Method: "POST", Pattern: "/console/session", handle: s.handleConsoleSignIn},
		{Method: "DELETE", Pattern: "/console/session", handle: s.handleConsoleSignOut},
		{Pattern: "/admin/river/", Scope: audex.ScopeOperator, Query: true, handle: s.handleRiverUI},
		{Method: "POST", Pattern: "/v1/audit/events", Scope: audex.ScopeWrite, handle: s.handleIngest},
		{Method: "GET", Pattern: "/v1/audit/events", Scope: audex.ScopeRead, Query: true, handle: s.handleListEvents},
		{Method: "GET", Pattern: "/v1/audit/events/{id}", Scope: audex.ScopeRead, handle: s.handleGetEvent},
		{Method: "DELETE", Pattern: "/v1/audit/events/{id}", Scope: audex.ScopeWrite, handle: s.handleDeleteEvent},
		{Method: "GET", Pattern: "/v1/audit/events/{id}/proof", Scope: audex.ScopeRead, Query: true, handle: s.handleEventProof},
		{Method: "GET", Pattern: "/v1/audit/log/public-key", handle: s.handleLogPublicKey},
		{Method: "GET", Pattern: "/v1/audit/log/checkpoint", Scope: audex.ScopeRead, Query: true, handle: s.handleLogCheckpoint},
		{Method: "GET", Pattern: "/v1/audit/log/consistency", Scope: audex.ScopeRead, Query: true, handle: s.handleLogConsistency},
		{Method: "GET", Pattern: "/v1/audit/filters", Scope: audex.ScopeRead, handle: s.handleFilters},
		{Method: "GET", Pattern: "/v1/audit/summary", Scope: audex.ScopeRead, Query: true, Work: workSummary, handle: s.handleSummary},
		{Method: "GET", Pattern: "/v1/audit/actors/{actor_id}", Scope: audex.ScopeRead, Query: true, Work: workSummary, handle: s.handleActorTrail},
		{Method: "GET", Pattern: "/v1/audit/targets/{target_id}", Scope: audex.ScopeRead, Query: true, Work: workSummary, handle: s.handleTargetTrail},
		{Method: "POST", Pattern: "/v1/audit/export", Scope: audex.ScopeExport, Work: workDownload, handle: s.handleDownload},
		{Method: "GET", Pattern: "/v1/audit/destinations", Scope: audex.ScopeExport, handle: s.handleListDestinations},
		{Method: "POST", Pattern: "/v1/audit/exports", Scope: audex.ScopeExport, handle: s.handleCreateExport},
		{Method: "GET", Pattern: "/v1/audit/exports", Scope: audex.ScopeExport, Query: true, handle: s.handleListExports},
		{Method: "GET", Pattern: "/v1/audit/exports/{id}", Scope: audex.ScopeExport, handle: s.handleGetExport},
		{Method: "POST", Pattern: "/v1/audit/exports/{id}/cancel", Scope: audex.ScopeExport, handle: s.handleCancelExport},
		{Method: "POST", Pattern: "/v1/audit/streams", Scope: audex.ScopeExport, handle: s.handleCreateStream},
		{Method: "GET", Pattern: "/v1/audit/streams", Scope: audex.ScopeExport, Query: true, handle: s.handleListStreams},
		{Method: "GET", Pattern: "/v1/audit/streams/{id}", Scope: audex.ScopeExport, handle: s.handleGetStream},
		{Method: "PATCH", Pattern: "/v1/audit/streams/{id}", Scope: audex.ScopeExport, handle: s.handlePatchStream},
		{Method: "DELETE", Pattern: "/v1/audit/streams/{id}", Scope: audex.ScopeExport, handle: s.handleDeleteStream},
		{Method: "GET", Pattern: "/v1/audit/streams/{id}/batches", Scope: audex.ScopeExport, Query: true, handle: s.handleListStreamBatches},
		{Method: "POST", Pattern: "/v1/audit/purge", Scope: audex.ScopeAdmin, handle: s.handlePurge},
		{Method: "GET", Pattern: "/v1/audit/purges/{id}", Scope: audex.ScopeAdmin, handle: s.handleGetPurge},
		{Method: "GET", Pattern: "/v1/audit/retention", Scope: audex.ScopeAdmin, handle: s.handleGetRetention},
		{Method: "PUT", Pattern: "/v1/audit/retention", Scope: audex.ScopeAdmin, handle: s.handlePutRetention},
	}
}

// ServeHTTP answers every request; requests that match no route get the
// API's error shape (404, or 405 with Allow) rather than net/http's text.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer s.recoverPanic(w, r)
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		s.mux.ServeHTTP(w, r) // the mux, not h, fills in r.PathValue
		return
	}
	// Let the mux decide between 404 and 405, then answer in our shape.
	start := time.Now()
	rec := &headerRecorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	if rec.code == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", rec.header.Get("Allow"))
		s.writeError(w, r, &Error{Code: CodeMethodNotAllowed, Message: "method " + r.Method + " is not allowed on " + r.URL.Path})
	} else {
		s.writeError(w, r, &Error{Code: CodeNotFound, Message: "no route " + r.Method + " " + r.URL.Path})
	}
	observeRequest(unmatchedRoute, r.Method, rec.code, start)
}

// headerRecorder keeps the status and headers of the mux's own 404 or 405
// answer and drops its text body, which ServeHTTP replaces.
type headerRecorder struct {
	header http.Header
	code   int
}

func (h *headerRecorder) Header() http.Header         { return h.header }
func (h *headerRecorder) Write(p []byte) (int, error) { return len(p), nil }
func (h *headerRecorder) WriteHeader(code int)        { h.code = code }

// unmatchedRoute is the route label of requests that match no route.
const unmatchedRoute = "unmatched"

// observeRequest records a request's latency in the request histogram.
// The method label is one of a fixed few, so that clients cannot grow the
// label set.
func observeRequest(route, method string, status int, start time.Time) {
	switch method {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
	default:
		method = "other"
	}
	metrics.RequestDuration.WithLabelValues(route, method, strconv.Itoa(status)).Observe(time.Since(start).Seconds())
}

func (s *Server) recoverPanic(w http.ResponseWriter, r *http.Request) {
	if v := recover(); v != nil {
		if v == http.ErrAbortHandler {
			panic(v)
		}
		s.logger.ErrorContext(r.Context(), "handler_panic", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("panic", v))
		s.writeJSON(w, http.StatusInternalServerError, map[string]*Error{"error": {Code: CodeInternal, Message: "internal error"}})
	}
}

// wrap authenticates (when the route has a scope), refuses a query string
// that the route does not take, turns a returned error into the error
// body, and records the request in the latency histogram.
func (s *Server) wrap(rt Route) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := &statusRecorder{ResponseWriter: rw}
		defer func(start time.Time) { observeRequest(rt.Pattern, r.Method, w.statusCode(), start) }(time.Now())
		var key audex.APIKey
		if rt.Scope != "" {
			var err error
			if key, err = s.authenticate(r, rt.Scope); err != nil {
				if apiErr := (*Error)(nil); rt.Scope == audex.ScopeOperator && errors.As(err, &apiErr) && apiErr.Code == CodeUnauthenticated {
					// A browser asks for the key as a Basic password.
					w.Header().Set("WWW-Authenticate", `Basic realm="audex operator", charset="UTF-8"`)
				}
				s.writeError(w, r, err)
				return
			}
			if err := s.rateLimited(key.ID); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		if !rt.Query && r.URL.RawQuery != "" {
			s.writeError(w, r, invalid("", "this route takes no query parameters"))
			return
		}
		if rt.Scope != "" && rt.Scope != audex.ScopeOperator {
			release, err := s.admission.admit(r.Context(), key.TenantID, rt.Work)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			defer release()
		}
		if err := rt.handle(w, r, key); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// bearerKey returns the API key a request presents: Authorization: Bearer,
// else X-API-Key; where basicAllowed (operator routes, which browsers
// open), also the password of HTTP Basic auth.
func bearerKey(r *http.Request, basicAllowed bool) (string, *Error) {
	if h := r.Header.Get("Authorization"); h != "" {
		if basicAllowed {
			if _, password, ok := r.BasicAuth(); ok && password != "" {
				return password, nil
			}
		}
		scheme, key, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(key) == "" {
			msg := "Authorization must be \"Bearer <api key>\""
			if basicAllowed {
				msg += " or HTTP Basic with the API key as the password"
			}
			return "", &Error{Code: CodeUnauthenticated, Message: msg, Field: "Authorization"}
		}
		return strings.TrimSpace(key), nil
	}
	if key := r.Header.Get("X-API-Key"); key != "" {
		return key, nil
	}
	return "", &Error{Code: CodeUnauthenticated, Message: "an API key is required (Authorization: Bearer <api key>)"}
}

// statusRecorder remembers the status code a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// statusCode is the answer's status; 200 when nothing was written.
func (w *statusRecorder) statusCode() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}
