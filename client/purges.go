package client

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/audex-dev/audex"
)

// Purge is a purge's status.
type Purge = audex.Purge

// PurgesService is the purge and retention routes (scope audit:admin);
// get it as Client.Purges.
type PurgesService struct{ c *Client }

// DryRun counts the events a purge before before would delete now,
// changing nothing.
func (s *PurgesService) DryRun(ctx context.Context, before time.Time) (int64, error) {
	var res struct {
		Deleted int64 `json:"deleted"`
	}
	err := s.c.do(ctx, request{method: http.MethodPost, path: "/v1/audit/purge",
		body: map[string]any{"before": timeParam(before), "dry_run": true}, idempotent: true, want: http.StatusOK}, &res)
	return res.Deleted, err
}

// Create queues a purge of the tenant's events that occurred strictly
// before before and returns its id.
func (s *PurgesService) Create(ctx context.Context, before time.Time) (string, error) {
	var res struct {
		ID string `json:"purge_id"`
	}
	err := s.c.do(ctx, request{method: http.MethodPost, path: "/v1/audit/purge",
		body: map[string]any{"before": timeParam(before)}, want: http.StatusAccepted}, &res)
	return res.ID, err
}

// Get returns a purge's status and how many events it deleted so far.
func (s *PurgesService) Get(ctx context.Context, id string) (Purge, error) {
	var p Purge
	err := s.c.do(ctx, request{method: http.MethodGet, path: "/v1/audit/purges/" + url.PathEscape(id), idempotent: true, want: http.StatusOK}, &p)
	return p, err
}

// Wait polls the purge every poll (0: 500 ms) until it is completed or
// failed and returns its last status; ctx bounds the wait.
func (s *PurgesService) Wait(ctx context.Context, id string, poll time.Duration) (Purge, error) {
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	for {
		p, err := s.Get(ctx, id)
		if err != nil || p.Finished() {
			return p, err
		}
		select {
		case <-ctx.Done():
			return p, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// Retention returns the tenant's retention policy in days; nil keeps
// events forever.
func (s *PurgesService) Retention(ctx context.Context) (*int, error) {
	var res struct {
		RetainDays *int `json:"retain_days"`
	}
	err := s.c.do(ctx, request{method: http.MethodGet, path: "/v1/audit/retention", idempotent: true, want: http.StatusOK}, &res)
	return res.RetainDays, err
}

// SetRetention sets the retention policy: days from 1 to 36500, or nil
// to keep events forever.
func (s *PurgesService) SetRetention(ctx context.Context, days *int) error {
	return s.c.do(ctx, request{method: http.MethodPut, path: "/v1/audit/retention",
		body: map[string]any{"retain_days": days}, idempotent: true, want: http.StatusOK}, nil)
}
