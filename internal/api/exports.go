package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/queue"
	"github.com/audex-dev/audex/internal/store"
)

// exportCapRetryAfter is the Retry-After of an export refused because its
// tenant has as many as it may.
const exportCapRetryAfter = 30 * time.Second

// maxPrefixLength bounds a destination prefix of a request. (The bounds of
// parts are audex.MaxPartMaxRecords and the like; the server's floor on
// part_max_records is ExportLimits.MinPartMaxRecords.)
const maxPrefixLength = 512

type exportRequest struct {
	Since          *string         `json:"since"`
	Until          *string         `json:"until"`
	Format         *string         `json:"format"`
	Compression    *string         `json:"compression"`
	Filters        json.RawMessage `json:"filters"`
	Destination    json.RawMessage `json:"destination"`
	PartMaxRecords *jsonInt        `json:"part_max_records"`
	PartMaxBytes   *jsonInt        `json:"part_max_bytes"`
}

type exportCreated struct {
	ExportID         string `json:"export_id"`
	Status           string `json:"status"`
	EstimatedRecords int64  `json:"estimated_records"`
}

func (s *Server) handleCreateExport(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	var req exportRequest
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	e, err := s.parseExport(req, key.TenantID)
	if err != nil {
		return err
	}
	estimate, err := store.EstimateEvents(r.Context(), s.pool, key.TenantID, e.Filter)
	if err != nil {
		return err
	}
	e.EstimatedRecords, e.EstimateIsLowerBound = estimate.Records, estimate.LowerBound
	err = s.createJob(r.Context(), key, "audit.export_created", "export", func(tx pgx.Tx) (string, error) {
		return e.ID, store.CreateExport(r.Context(), tx, &e, s.exports.MaxActivePerTenant)
	}, func(id string) river.JobArgs { return queue.ExportArgs{ExportID: id} })
	if errors.Is(err, store.ErrTooManyExports) {
		return &Error{Code: CodeRateLimited, RetryAfter: exportCapRetryAfter, Message: fmt.Sprintf("this tenant already has %d queued or running exports, the most it may; retry when one has finished (Retry-After) or cancel one", s.exports.MaxActivePerTenant)}
	}
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/audit/exports/"+e.ID)
	s.writeJSON(w, http.StatusAccepted, exportCreated{ExportID: e.ID, Status: e.Status, EstimatedRecords: e.EstimatedRecords})
	return nil
}

// parseExport validates an export request into a new export.
func (s *Server) parseExport(req exportRequest, tenantID string) (audex.Export, error) {
	e := audex.Export{ID: audex.NewID("exp"), TenantID: tenantID, Compression: "none",
		PartMaxRecords: s.exports.PartMaxRecords, PartMaxBytes: s.exports.PartMaxBytes}
	since, until, err := parseBounds(req.Since, req.Until)
	if err != nil {
		return e, err
	}
	e.Since, e.Until = *since, *until
	if e.Format, e.Compression, err = parseJobFormat(req.Format, req.Compression); err != nil {
		return e, err
	}
	if req.PartMaxRecords != nil {
		if *req.PartMaxRecords < jsonInt(s.exports.MinPartMaxRecords) || *req.PartMaxRecords > audex.MaxPartMaxRecords {
			return e, invalid("part_max_records", "part_max_records must be from %d (this server's floor, so that part counts stay sane) to %d", s.exports.MinPartMaxRecords, audex.MaxPartMaxRecords)
		}
		e.PartMaxRecords = int(*req.PartMaxRecords)
	}
	if req.PartMaxBytes != nil {
		if *req.PartMaxBytes < audex.MinPartMaxBytes || *req.PartMaxBytes > audex.MaxPartMaxBytes {
			return e, invalid("part_max_bytes", "part_max_bytes must be from %d (1 MiB) to %d (1 GiB)", audex.MinPartMaxBytes, audex.MaxPartMaxBytes)
		}
		e.PartMaxBytes = int64(*req.PartMaxBytes)
	}
	if e.Filter, err = parseBodyFilters(req.Filters); err != nil {
		return e, err
	}
	if e.Filters, err = json.Marshal(e.Filter); err != nil {
		return e, err
	}
	e.Filter.Since, e.Filter.Until = since, until
	dest, prefix, err := s.resolveDestination(req.Destination, tenantID)
	if err != nil {
		return e, err
	}
	if !dest.ServesExports() {
		return e, invalid("destination", "destination %s is a webhook, which takes streams only", dest.Name)
	}
	e.Destination = audex.ExportDestination{Name: dest.Name, Type: dest.Type, Bucket: dest.Bucket, Prefix: joinKey(dest.Prefix, prefix)}
	e.KeyPrefix = joinKey(e.Destination.Prefix, e.ID) + "/"
	return e, nil
}

// checkPrefix accepts a relative object-key prefix of plain path segments:
// ASCII letters, digits and - _ . = between single slashes, no segment . or
// .., no leading slash, so that it cannot escape its destination.
func checkPrefix(p string) error {
	bad := invalid("destination.prefix", "prefix must be relative path segments of A-Z a-z 0-9 - _ . = separated by single slashes, without . or .. segments, at most %d characters", maxPrefixLength)
	if len(p) > maxPrefixLength || strings.HasPrefix(p, "/") {
		return bad
	}
	for _, seg := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
		if p == "" {
			break
		}
		if seg == "" || seg == "." || seg == ".." {
			return bad
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '=') {
				return bad
			}
		}
	}
	return nil
}

// joinKey joins non-empty key parts with single slashes.
func joinKey(parts ...string) string {
	var kept []string
	for _, p := range parts {
		if p = strings.Trim(p, "/"); p != "" {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, "/")
}

type exportList struct {
	Exports    []audex.Export `json:"exports"`
	NextCursor *string        `json:"next_cursor"`
	HasMore    bool           `json:"has_more"`
}

func (s *Server) handleListExports(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	q, err := parseSimpleQuery(r.URL.RawQuery, "status", "limit", "cursor")
	if err != nil {
		return err
	}
	status := q["status"]
	if status != "" && !slices.Contains(audex.ExportStatuses, status) {
		return invalid("status", "status must be one of %s", strings.Join(audex.ExportStatuses, ", "))
	}
	scope := scopeFingerprint(key.TenantID, "exports", status)
	limit, after, err := s.pageRequest(q, scope)
	if err != nil {
		return err
	}
	exports, err := store.ListExports(r.Context(), s.pool, key.TenantID, status, after, limit+1)
	if err != nil {
		return err
	}
	var resp exportList
	resp.Exports, resp.NextCursor, resp.HasMore = page(s, exports, limit, scope, func(e audex.Export) audex.Position {
		return audex.Position{OccurredAt: e.CreatedAt, ID: e.ID}
	})
	s.writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) handleGetExport(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	return writeByID(s, w, r, key, "export", store.GetExport)
}

// getExport reads the tenant's export that the route's {id} names.
func (s *Server) getExport(r *http.Request, tenantID string) (audex.Export, error) {
	return byID(s, r, tenantID, "export", store.GetExport)
}

func (s *Server) handleCancelExport(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	e, err := s.getExport(r, key.TenantID)
	if err != nil {
		return err
	}
	err = store.CancelExport(r.Context(), s.pool, key.TenantID, e.ID, audex.KeyActor(key))
	switch {
	case errors.Is(err, store.ErrConflict):
		return &Error{Code: CodeConflict, Message: "export " + e.ID + " already finished; only queued or running exports can be cancelled"}
	case errors.Is(err, store.ErrNotFound):
		return notFound("export")
	case err != nil:
		return err
	}
	if e, err = s.getExport(r, key.TenantID); err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, e)
	return nil
}
