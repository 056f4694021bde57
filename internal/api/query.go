package api

import (
	"net/http"
	"time"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
)

// defaultSummaryWindow is the summary's time range when none is given.
const defaultSummaryWindow = 30 * 24 * time.Hour

// maxFilterValues caps each list of values in GET /filters.
const maxFilterValues = 1000

// filterInfo describes one list filter in GET /filters.
type filterInfo struct {
	Name      string   `json:"name"`
	Type      string   `json:"type"`
	Operators []string `json:"operators"`
	Aliases   []string `json:"aliases"`
}

// listFilters is the filter metadata of GET /filters, in documentation
// order.
var listFilters = []filterInfo{
	{"since", "time", []string{"gte"}, []string{"from"}},
	{"until", "time", []string{"lt"}, []string{"to"}},
	{"action", "string", []string{"eq", "in"}, []string{}},
	{"action_prefix", "string", []string{"prefix"}, []string{}},
	{"actor_id", "string", []string{"eq"}, []string{"identity_id"}},
	{"actor_type", "string", []string{"eq"}, []string{"identity_type"}},
	{"target_id", "string", []string{"eq"}, []string{}},
	{"target_type", "string", []string{"eq"}, []string{}},
	{"resource_prefix", "string", []string{"prefix"}, []string{"path_prefix"}},
	{"success", "boolean", []string{"eq"}, []string{}},
	{"source_ip", "ip", []string{"eq", "cidr"}, []string{}},
	{"request_id", "string", []string{"eq"}, []string{}},
}

type sortInfo struct {
	Fields       []string `json:"fields"`
	Orders       []string `json:"orders"`
	DefaultOrder string   `json:"default_order"`
}

func (s *Server) handleFilters(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	var values map[string][]string
	err := s.read(w, func(db store.DBTX) error {
		var err error
		values, err = store.EventValues(r.Context(), db, key.TenantID, maxFilterValues)
		return err
	})
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, map[string]any{
		"filters": listFilters,
		"sort":    sortInfo{Fields: []string{"occurred_at", "timestamp"}, Orders: []string{"asc", "desc"}, DefaultOrder: "desc"},
		"values":  values,
	})
	return nil
}

// summaryResponse is a summary with the window it covers.
type summaryResponse struct {
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	audex.Summary
}

// summaryWindow fills in the summary's default time range: the last 30
// days; with only since, until is now; with only until, since is 30 days
// before it.
func summaryWindow(f audex.Filter, now time.Time) (audex.Filter, error) {
	if f.Until == nil {
		until := now.UTC().Truncate(time.Microsecond)
		if f.Since != nil && !until.After(*f.Since) {
			return f, invalid("since", "since must be before now when until is not given")
		}
		f.Until = &until
	}
	if f.Since == nil {
		since := f.Until.Add(-defaultSummaryWindow)
		if since.Before(minTime) {
			return f, invalid("since", "since defaults to 30 days before until, which is before %s; give since", minTime.Format(time.RFC3339))
		}
		f.Since = &since
	}
	return f, nil
}

func (s *Server) summarize(r *http.Request, db store.DBTX, tenantID string, f audex.Filter) (summaryResponse, error) {
	f, err := summaryWindow(f, time.Now())
	if err != nil {
		return summaryResponse{}, err
	}
	sum, err := store.SummarizeEvents(r.Context(), db, tenantID, f, s.limits.SummaryBudget)
	if err != nil {
		return summaryResponse{}, err
	}
	return summaryResponse{Since: *f.Since, Until: *f.Until, Summary: sum}, nil
}

func (s *Server) handleSummary(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	q, err := parseListQuery(r.URL.RawQuery, pagingParams...)
	if err != nil {
		return err
	}
	var resp summaryResponse
	err = s.read(w, func(db store.DBTX) error {
		resp, err = s.summarize(r, db, key.TenantID, q.filter)
		return err
	})
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, resp)
	return nil
}

// trailResponse is an actor's or a target's trail.
type trailResponse struct {
	ActorID    string          `json:"actor_id,omitempty"`
	TargetID   string          `json:"target_id,omitempty"`
	Summary    summaryResponse `json:"summary"`
	Events     []audex.Event   `json:"events"`
	NextCursor *string         `json:"next_cursor"`
	HasMore    bool            `json:"has_more"`
}

func (s *Server) handleActorTrail(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	return s.trail(w, r, key, "actor_id")
}

func (s *Server) handleTargetTrail(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	return s.trail(w, r, key, "target_id")
}

// trail answers GET /actors/{actor_id} or /targets/{target_id}: a page of
// the events (list's filters, no default time window) and their summary
// (the same filters over since/until, or the last 30 days).
func (s *Server) trail(w http.ResponseWriter, r *http.Request, key audex.APIKey, by string) error {
	id := r.PathValue(by)
	if err := checkText(by, id, maxParamLength); err != nil || id == "" {
		return notFound(by[:len(by)-3])
	}
	q, err := parseListQuery(r.URL.RawQuery, by)
	if err != nil {
		return err
	}
	resp := trailResponse{}
	if by == "actor_id" {
		q.filter.ActorID, resp.ActorID = &id, id
	} else {
		q.filter.TargetID, resp.TargetID = &id, id
	}
	var page listResponse
	err = s.read(w, func(db store.DBTX) error {
		if resp.Summary, err = s.summarize(r, db, key.TenantID, q.filter); err != nil {
			return err
		}
		page, err = s.listPage(r, db, key.TenantID, q, by)
		return err
	})
	if err != nil {
		return err
	}
	resp.Events, resp.NextCursor, resp.HasMore = page.Events, page.NextCursor, page.HasMore
	s.writeJSON(w, http.StatusOK, resp)
	return nil
}
