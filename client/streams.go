package client

import (
	"context"
	"iter"
	"net/http"
	"net/url"
	"time"

	"github.com/audex-dev/audex"
)

// Stream is an export stream's status.
type Stream = audex.Stream

// StreamBatch is a delivered batch of a stream, as its manifest holds it.
type StreamBatch = audex.StreamBatch

// StreamRequest asks for an export stream.
type StreamRequest struct {
	// Format is "jsonl", "csv" or "parquet".
	Format string
	// Compression is "none" (default) or "gzip" (not with parquet).
	Compression string
	Filters     Filters
	// Destination names a destination the server's operator configured;
	// Prefix is an optional sub-prefix under it.
	Destination, Prefix string
	// Interval is the time between batches, whole seconds (0: the
	// server's default, 5 minutes).
	Interval time.Duration
	// Start, when not zero, is a past time: the stream delivers every
	// matching event received from then on (a backfill). Zero: from now.
	Start time.Time
}

// StreamChange is what Update changes: a nil field stays.
type StreamChange struct {
	// Status is "paused" or "active" (resume).
	Status *string
	// Interval is the new time between batches, whole seconds.
	Interval *time.Duration
}

// StreamsService is the stream routes; get it as Client.Streams.
type StreamsService struct{ c *Client }

// Create starts a stream and returns its status.
func (s *StreamsService) Create(ctx context.Context, r StreamRequest) (Stream, error) {
	dest := map[string]any{"name": r.Destination}
	if r.Prefix != "" {
		dest["prefix"] = r.Prefix
	}
	body := map[string]any{"format": r.Format, "filters": r.Filters, "destination": dest}
	if r.Compression != "" {
		body["compression"] = r.Compression
	}
	if r.Interval > 0 {
		body["interval_seconds"] = int64(r.Interval / time.Second)
	}
	if !r.Start.IsZero() {
		body["start"] = timeParam(r.Start)
	}
	var st Stream
	err := s.c.do(ctx, request{method: http.MethodPost, path: "/v1/audit/streams", body: body, want: http.StatusCreated}, &st)
	return st, err
}

// Get returns a stream's status.
func (s *StreamsService) Get(ctx context.Context, id string) (Stream, error) {
	var st Stream
	err := s.c.do(ctx, request{method: http.MethodGet, path: streamPath(id), idempotent: true, want: http.StatusOK}, &st)
	return st, err
}

// Update pauses or resumes a stream, or changes its interval, and returns
// its status.
func (s *StreamsService) Update(ctx context.Context, id string, ch StreamChange) (Stream, error) {
	body := map[string]any{}
	if ch.Status != nil {
		body["status"] = *ch.Status
	}
	if ch.Interval != nil {
		body["interval_seconds"] = int64(*ch.Interval / time.Second)
	}
	var st Stream
	err := s.c.do(ctx, request{method: http.MethodPatch, path: streamPath(id), body: body, idempotent: true, want: http.StatusOK}, &st)
	return st, err
}

// Delete stops a stream for good; what it delivered stays.
func (s *StreamsService) Delete(ctx context.Context, id string) error {
	return s.c.do(ctx, request{method: http.MethodDelete, path: streamPath(id), idempotent: true, want: http.StatusNoContent}, nil)
}

// List returns the tenant's streams, newest first, following cursors.
func (s *StreamsService) List(ctx context.Context) iter.Seq2[Stream, error] {
	return follow[Stream](ctx, s.c, "/v1/audit/streams", url.Values{}, func() *streamsPage { return &streamsPage{} })
}

// Batches returns the stream's delivered batches, in sequence, following
// cursors.
func (s *StreamsService) Batches(ctx context.Context, id string) iter.Seq2[StreamBatch, error] {
	return follow[StreamBatch](ctx, s.c, streamPath(id)+"/batches", url.Values{}, func() *batchesPage { return &batchesPage{} })
}

func streamPath(id string) string { return "/v1/audit/streams/" + url.PathEscape(id) }

// streamsPage is an answer of GET /v1/audit/streams.
type streamsPage struct {
	Streams []Stream `json:"streams"`
	cursorPage
}

func (p *streamsPage) items() []Stream { return p.Streams }

// batchesPage is an answer of GET /v1/audit/streams/{id}/batches.
type batchesPage struct {
	Batches []StreamBatch `json:"batches"`
	cursorPage
}

func (p *batchesPage) items() []StreamBatch { return p.Batches }
