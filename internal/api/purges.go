package api

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/queue"
	"github.com/audex-dev/audex/internal/store"
)

// Bounds of retain_days (docs/api.md).
const (
	minRetainDays = 1
	maxRetainDays = 36500
)

type purgeRequest struct {
	Before *string `json:"before"`
	DryRun *bool   `json:"dry_run"`
}

type purgeCreated struct {
	PurgeID string `json:"purge_id"`
	Status  string `json:"status"`
}

type purgeDryRun struct {
	DryRun  bool  `json:"dry_run"`
	Deleted int64 `json:"deleted"`
}

// handlePurge answers POST /v1/audit/purge: a dry run counts at once; a
// real purge is queued as a job with its row and audit event in one
// transaction.
func (s *Server) handlePurge(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	var req purgeRequest
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	if req.Before == nil {
		return invalid("before", "before is required: events that occurred strictly before it are deleted")
	}
	before, err := parseTime("before", *req.Before)
	if err != nil {
		return err
	}
	if req.DryRun != nil && *req.DryRun {
		n, err := store.CountEventsBefore(r.Context(), s.pool, key.TenantID, before)
		if err != nil {
			return err
		}
		s.writeJSON(w, http.StatusOK, purgeDryRun{DryRun: true, Deleted: n})
		return nil
	}
	p := audex.Purge{TenantID: key.TenantID, Before: before}
	err = s.createJob(r.Context(), key, "audit.purge_created", "purge", func(tx pgx.Tx) (string, error) {
		err := store.CreatePurge(r.Context(), tx, &p)
		return p.ID, err
	}, func(id string) river.JobArgs { return queue.PurgeArgs{PurgeID: id} })
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/audit/purges/"+p.ID)
	s.writeJSON(w, http.StatusAccepted, purgeCreated{PurgeID: p.ID, Status: p.Status})
	return nil
}

func (s *Server) handleGetPurge(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	return writeByID(s, w, r, key, "purge", store.GetPurge)
}

// retentionPolicy is the body of the retention routes; null keeps events
// forever.
type retentionPolicy struct {
	RetainDays *int `json:"retain_days"`
}

func (s *Server) handleGetRetention(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	days, err := store.RetentionDays(r.Context(), s.pool, key.TenantID)
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, retentionPolicy{RetainDays: days})
	return nil
}

func (s *Server) handlePutRetention(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	var body map[string]json.RawMessage
	if err := decodeBody(w, r, &body); err != nil {
		return err
	}
	raw, ok := body["retain_days"]
	delete(body, "retain_days")
	if len(body) > 0 {
		name := slices.Sorted(maps.Keys(body))[0]
		return invalid(name, "unknown field %s", name)
	}
	if !ok {
		return invalid("retain_days", "retain_days is required: a number of days from %d to %d, or null to keep events forever", minRetainDays, maxRetainDays)
	}
	var days *jsonInt
	if err := json.Unmarshal(raw, &days); err != nil || days != nil && (*days < minRetainDays || *days > maxRetainDays) {
		return invalid("retain_days", "retain_days must be a whole number of days from %d to %d, or null to keep events forever", minRetainDays, maxRetainDays)
	}
	var policy retentionPolicy
	if days != nil {
		d := int(*days)
		policy.RetainDays = &d
	}
	if err := store.SetRetentionDays(r.Context(), s.pool, key.TenantID, policy.RetainDays, audex.KeyActor(key)); err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, policy)
	return nil
}
