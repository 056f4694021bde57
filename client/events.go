package client

import (
	"context"
	"encoding/json"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/audex-dev/audex"
)

// Event is a stored event as the API returns it.
type Event = audex.Event

// Actor and Target are the parties of an event.
type (
	Actor  = audex.Actor
	Target = audex.Target
)

// NewEvent is an event to ingest. Only Action and Actor.ID are required.
type NewEvent struct {
	// ID makes the ingest idempotent: an event whose id is stored already
	// is reported as a duplicate, not stored twice. Empty: the server
	// assigns one (the Emitter always sets one).
	ID string
	// OccurredAt is when it happened; zero: when the server receives it.
	OccurredAt time.Time
	Action     string
	Actor      Actor
	Target     *Target
	Resource   string
	SourceIP   string
	UserAgent  string
	RequestID  string
	Method     string
	Path       string
	StatusCode *int
	Success    *bool
	DurationMS *int64
	// Metadata is any JSON object (at most 16 KiB); nil: {}.
	Metadata map[string]any
}

// MarshalJSON encodes the event as POST /v1/audit/events takes it,
// leaving out what is not set.
func (e NewEvent) MarshalJSON() ([]byte, error) {
	type wire struct {
		ID         string         `json:"id,omitempty"`
		OccurredAt string         `json:"occurred_at,omitempty"`
		Action     string         `json:"action"`
		Actor      Actor          `json:"actor"`
		Target     *Target        `json:"target,omitempty"`
		Resource   string         `json:"resource,omitempty"`
		SourceIP   string         `json:"source_ip,omitempty"`
		UserAgent  string         `json:"user_agent,omitempty"`
		RequestID  string         `json:"request_id,omitempty"`
		Method     string         `json:"method,omitempty"`
		Path       string         `json:"path,omitempty"`
		StatusCode *int           `json:"status_code,omitempty"`
		Success    *bool          `json:"success,omitempty"`
		DurationMS *int64         `json:"duration_ms,omitempty"`
		Metadata   map[string]any `json:"metadata,omitempty"`
	}
	w := wire{ID: e.ID, Action: e.Action, Actor: e.Actor, Target: e.Target, Resource: e.Resource, SourceIP: e.SourceIP,
		UserAgent: e.UserAgent, RequestID: e.RequestID, Method: e.Method, Path: e.Path, StatusCode: e.StatusCode,
		Success: e.Success, DurationMS: e.DurationMS, Metadata: e.Metadata}
	if !e.OccurredAt.IsZero() {
		w.OccurredAt = timeParam(e.OccurredAt)
	}
	return json.Marshal(w)
}

// IngestResult is the answer to an ingest: the ids of the events in the
// order sent (given or assigned), how many were stored and how many were
// stored already.
type IngestResult struct {
	IDs        []string `json:"ids"`
	Accepted   int      `json:"accepted"`
	Duplicates int      `json:"duplicates"`
}

// Filters select events by the list filters (docs/api.md); zero values do not
// filter.
type Filters struct {
	Actions        []string `json:"action,omitempty"`
	ActionPrefix   string   `json:"action_prefix,omitempty"`
	ActorID        string   `json:"actor_id,omitempty"`
	ActorType      string   `json:"actor_type,omitempty"`
	TargetID       string   `json:"target_id,omitempty"`
	TargetType     string   `json:"target_type,omitempty"`
	ResourcePrefix string   `json:"resource_prefix,omitempty"`
	Success        *bool    `json:"success,omitempty"`
	// SourceIP is an address or a CIDR range.
	SourceIP  string `json:"source_ip,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// values adds the filters to a query.
func (f Filters) values(q url.Values) {
	for _, a := range f.Actions {
		q.Add("action", a)
	}
	for name, v := range map[string]string{"action_prefix": f.ActionPrefix, "actor_id": f.ActorID, "actor_type": f.ActorType,
		"target_id": f.TargetID, "target_type": f.TargetType, "resource_prefix": f.ResourcePrefix,
		"source_ip": f.SourceIP, "request_id": f.RequestID} {
		if v != "" {
			q.Set(name, v)
		}
	}
	if f.Success != nil {
		q.Set("success", strconv.FormatBool(*f.Success))
	}
}

// ListParams choose the events of a list.
type ListParams struct {
	Filters
	// Since (inclusive) and Until (exclusive) bound occurred_at; zero:
	// unbounded.
	Since, Until time.Time
	// Ascending lists oldest first; the default is newest first.
	Ascending bool
	// PageSize is how many events each request asks for (1-1000; 0: the
	// server's default). The iterator follows cursors whatever it is.
	PageSize int
}

func (p ListParams) values() url.Values {
	q := url.Values{}
	p.Filters.values(q)
	if !p.Since.IsZero() {
		q.Set("since", timeParam(p.Since))
	}
	if !p.Until.IsZero() {
		q.Set("until", timeParam(p.Until))
	}
	if p.Ascending {
		q.Set("order", "asc")
	}
	if p.PageSize > 0 {
		q.Set("limit", strconv.Itoa(p.PageSize))
	}
	return q
}

// eventsPage is an answer of GET /v1/audit/events.
type eventsPage struct {
	Events []Event `json:"events"`
	cursorPage
}

func (p *eventsPage) items() []Event { return p.Events }

// EventsService is the events routes; get it as Client.Events.
type EventsService struct{ c *Client }

// List returns every event that p selects, page after page: the
// iterator follows the cursors until the last page, or stops at the first
// error, which it yields with a zero Event.
func (s *EventsService) List(ctx context.Context, p ListParams) iter.Seq2[Event, error] {
	return s.ListQuery(ctx, p.values())
}

// ListQuery is List with the query parameters of GET /v1/audit/events
// given as they are (docs/api.md's names or aliases; limit is the page size),
// for callers that take them from people, such as a command line: the
// server validates them, and a bad one is yielded as its invalid_argument
// Error. q is not modified.
func (s *EventsService) ListQuery(ctx context.Context, q url.Values) iter.Seq2[Event, error] {
	return follow[Event](ctx, s.c, "/v1/audit/events", q, func() *eventsPage { return &eventsPage{} })
}

// Get returns one event; IsNotFound(err) when there is none of that id.
func (s *EventsService) Get(ctx context.Context, id string) (Event, error) {
	var ev Event
	err := s.c.do(ctx, request{method: http.MethodGet, path: "/v1/audit/events/" + url.PathEscape(id), idempotent: true, want: http.StatusOK}, &ev)
	return ev, err
}

// Delete deletes one event (the deletion is itself recorded).
func (s *EventsService) Delete(ctx context.Context, id string) error {
	return s.c.do(ctx, request{method: http.MethodDelete, path: "/v1/audit/events/" + url.PathEscape(id), idempotent: true, want: http.StatusNoContent}, nil)
}

// Ingest stores 1 to 1000 events, all or none. It is sent again on 429
// and 503; when every event has an ID it is also sent again when no answer
// came back, since the server then stores each at most once.
func (s *EventsService) Ingest(ctx context.Context, events []NewEvent) (IngestResult, error) {
	idempotent := true
	for _, e := range events {
		idempotent = idempotent && e.ID != ""
	}
	var res IngestResult
	err := s.c.do(ctx, request{method: http.MethodPost, path: "/v1/audit/events", body: map[string]any{"events": events},
		idempotent: idempotent, want: http.StatusCreated}, &res)
	return res, err
}

// DownloadRequest is a synchronous download of a time range.
type DownloadRequest struct {
	// Format is "csv" (default), "ndjson" (or "jsonl") or "json".
	Format       string
	Since, Until time.Time
	Filters      Filters
}

// Download streams the events of the range, oldest first, in the format
// asked for. The caller reads and closes the body; it is not bound by the
// client's timeout.
func (s *EventsService) Download(ctx context.Context, d DownloadRequest) (io.ReadCloser, error) {
	body := map[string]any{"since": timeParam(d.Since), "until": timeParam(d.Until), "filters": d.Filters}
	if d.Format != "" {
		body["format"] = d.Format
	}
	c := *s.c
	c.http = &http.Client{Transport: s.c.http.Transport, CheckRedirect: s.c.http.CheckRedirect, Jar: s.c.http.Jar}
	resp, err := c.send(ctx, request{method: http.MethodPost, path: "/v1/audit/export", body: body, idempotent: true, want: http.StatusOK})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Summary is the answer of GET /v1/audit/summary: totals, every action's
// count, the top-10 actors, targets, resources and source IPs, and the
// events per day.
type Summary = audex.Summary

// ActorCount, TargetCount, ResourceCount and SourceIPCount are the
// entries of a summary's top-10 lists; DayCount of its events per day.
type (
	ActorCount    = audex.ActorCount
	TargetCount   = audex.TargetCount
	ResourceCount = audex.ResourceCount
	SourceIPCount = audex.SourceIPCount
	DayCount      = audex.DayCount
)

// Summary summarises the events that p selects (its page size and order
// do not matter). Without Since and Until: the last 30 days.
func (s *EventsService) Summary(ctx context.Context, p ListParams) (Summary, error) {
	p.PageSize, p.Ascending = 0, false
	var sum Summary
	err := s.c.do(ctx, request{method: http.MethodGet, path: "/v1/audit/summary", query: p.values(), idempotent: true, want: http.StatusOK}, &sum)
	return sum, err
}
