package client

import (
	"context"
	"iter"
	"net/http"
	"net/url"
	"time"

	"github.com/audex-dev/audex"
)

// Export is an export job's status and manifest.
type Export = audex.Export

// ExportFile is one part of a completed export, as its manifest lists it:
// the object's key relative to the destination's bucket (or folder), its
// size, SHA-256 and record count.
type ExportFile = audex.ExportFile

// ExportRequest asks for an export job (docs/api.md, "Export jobs").
type ExportRequest struct {
	Since, Until time.Time
	// Format is "jsonl", "csv" or "parquet".
	Format string
	// Compression is "none" (default) or "gzip".
	Compression string
	Filters     Filters
	// Destination names a destination the server's operator configured;
	// Prefix is an optional sub-prefix under it.
	Destination, Prefix string
	// PartMaxRecords and PartMaxBytes bound each part (0: the server's
	// defaults).
	PartMaxRecords int
	PartMaxBytes   int64
}

// CreatedExport is the answer to a new export job.
type CreatedExport struct {
	ID               string `json:"export_id"`
	Status           string `json:"status"`
	EstimatedRecords int64  `json:"estimated_records"`
}

// ExportsService is the export-job routes; get it as Client.Exports.
type ExportsService struct{ c *Client }

// Create queues an export job.
func (s *ExportsService) Create(ctx context.Context, r ExportRequest) (CreatedExport, error) {
	dest := map[string]any{"name": r.Destination}
	if r.Prefix != "" {
		dest["prefix"] = r.Prefix
	}
	body := map[string]any{"since": timeParam(r.Since), "until": timeParam(r.Until), "format": r.Format,
		"filters": r.Filters, "destination": dest}
	if r.Compression != "" {
		body["compression"] = r.Compression
	}
	if r.PartMaxRecords > 0 {
		body["part_max_records"] = r.PartMaxRecords
	}
	if r.PartMaxBytes > 0 {
		body["part_max_bytes"] = r.PartMaxBytes
	}
	var created CreatedExport
	err := s.c.do(ctx, request{method: http.MethodPost, path: "/v1/audit/exports", body: body, want: http.StatusAccepted}, &created)
	return created, err
}

// Destination is a destination the tenant may use, as
// GET /v1/audit/destinations lists it (never its bucket or credentials).
type Destination struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Exports is false for a webhook, which takes streams only.
	Exports bool `json:"exports"`
	Streams bool `json:"streams"`
}

// Destinations lists the destinations the operator configured that the
// key's tenant may use, in the configuration's order.
func (s *ExportsService) Destinations(ctx context.Context) ([]Destination, error) {
	var out struct {
		Destinations []Destination `json:"destinations"`
	}
	err := s.c.do(ctx, request{method: http.MethodGet, path: "/v1/audit/destinations", idempotent: true, want: http.StatusOK}, &out)
	return out.Destinations, err
}

// Get returns an export job's status and manifest.
func (s *ExportsService) Get(ctx context.Context, id string) (Export, error) {
	var e Export
	err := s.c.do(ctx, request{method: http.MethodGet, path: "/v1/audit/exports/" + url.PathEscape(id), idempotent: true, want: http.StatusOK}, &e)
	return e, err
}

// Cancel cancels a queued or running export and returns its status; a
// finished one is a 409 Error.
func (s *ExportsService) Cancel(ctx context.Context, id string) (Export, error) {
	var e Export
	err := s.c.do(ctx, request{method: http.MethodPost, path: "/v1/audit/exports/" + url.PathEscape(id) + "/cancel", idempotent: true, want: http.StatusOK}, &e)
	return e, err
}

// List returns the tenant's export jobs, newest first, following cursors;
// status "" lists all, else only those in that status.
func (s *ExportsService) List(ctx context.Context, status string) iter.Seq2[Export, error] {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	return follow[Export](ctx, s.c, "/v1/audit/exports", q, func() *exportsPage { return &exportsPage{} })
}

// exportsPage is an answer of GET /v1/audit/exports.
type exportsPage struct {
	Exports []Export `json:"exports"`
	cursorPage
}

func (p *exportsPage) items() []Export { return p.Exports }

// WaitOptions tune Wait.
type WaitOptions struct {
	// Progress, when set, is called with every status read, the last
	// (finished) one included.
	Progress func(Export)
	// FirstPoll is the first pause between two reads (default 200 ms); it
	// grows by half each time up to MaxPoll (default 5 s).
	FirstPoll, MaxPoll time.Duration
}

// Wait polls the export until it is completed, failed or cancelled and
// returns its last status; ctx bounds the wait. A failed or cancelled
// export is returned without an error: look at its Status and Error.
func (s *ExportsService) Wait(ctx context.Context, id string, o WaitOptions) (Export, error) {
	pause, maxPause := o.FirstPoll, o.MaxPoll
	if pause <= 0 {
		pause = 200 * time.Millisecond
	}
	if maxPause <= 0 {
		maxPause = 5 * time.Second
	}
	for {
		e, err := s.Get(ctx, id)
		if err != nil {
			return e, err
		}
		if o.Progress != nil {
			o.Progress(e)
		}
		if e.Finished() {
			return e, nil
		}
		select {
		case <-ctx.Done():
			return e, ctx.Err()
		case <-time.After(pause):
		}
		pause = min(pause*3/2, maxPause)
	}
}
