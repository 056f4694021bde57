package audex

import (
	"encoding/json"
	"time"
)

// Bounds of an export's parts, for requests and for the configured
// defaults alike.
const (
	MaxPartMaxRecords = 1_000_000
	MinPartMaxBytes   = 1 << 20
	MaxPartMaxBytes   = 1 << 30
)

// Export statuses.
const (
	ExportQueued    = "queued"
	ExportRunning   = "running"
	ExportCompleted = "completed"
	ExportFailed    = "failed"
	ExportCancelled = "cancelled"
)

// ExportStatuses are every export status, in the order of a job's life.
var ExportStatuses = []string{ExportQueued, ExportRunning, ExportCompleted, ExportFailed, ExportCancelled}

// Export is an export job in the shape of the status route; a completed
// export's manifest.json holds the same object.
type Export struct {
	ID               string            `json:"export_id"`
	Status           string            `json:"status"`
	Format           string            `json:"format"`
	Compression      string            `json:"compression"`
	Since            time.Time         `json:"since"`
	Until            time.Time         `json:"until"`
	Filters          json.RawMessage   `json:"filters"`
	Destination      ExportDestination `json:"destination"`
	PartMaxRecords   int               `json:"part_max_records"`
	PartMaxBytes     int64             `json:"part_max_bytes"`
	EstimatedRecords int64             `json:"estimated_records"`
	Progress         ExportProgress    `json:"progress"`
	RecordCount      *int64            `json:"record_count"`
	Files            []ExportFile      `json:"files"`
	ManifestKey      *string           `json:"manifest_key"`
	AsOf             time.Time         `json:"as_of"`
	Attempts         int               `json:"attempts"`
	Error            *ExportError      `json:"error"`
	CreatedAt        time.Time         `json:"created_at"`
	StartedAt        *time.Time        `json:"started_at"`
	CompletedAt      *time.Time        `json:"completed_at"`
	// Log is what the manifest says of the integrity log; only
	// manifest.json holds it.
	Log *ManifestLog `json:"log,omitempty"`

	// TenantID owns the export.
	TenantID string `json:"-"`
	// KeyPrefix is where its objects go: <destination prefix>/<prefix>/<id>/.
	KeyPrefix string `json:"-"`
	// Filter is Filters parsed, with Since and Until set.
	Filter Filter `json:"-"`
	// Checkpoint is the last exported event; the next part starts after it.
	Checkpoint *Position `json:"-"`
	// EstimateIsLowerBound is true when EstimatedRecords is only a lower
	// bound (the planner's statistics predate the events): the worker
	// counts them before the first part.
	EstimateIsLowerBound bool `json:"-"`
}

// Finished reports whether the export reached a final status.
func (e *Export) Finished() bool {
	return e.Status == ExportCompleted || e.Status == ExportFailed || e.Status == ExportCancelled
}

// ExportDestination says where an export's objects go.
type ExportDestination struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Bucket string `json:"bucket"`
	// Prefix is the destination's configured prefix joined with the
	// request's sub-prefix.
	Prefix string `json:"prefix"`
}

// ExportProgress moves while an export runs.
type ExportProgress struct {
	RecordsExported int64 `json:"records_exported"`
	PartsWritten    int   `json:"parts_written"`
	Percent         int   `json:"percent"`
}

// ExportFile is one written part.
type ExportFile struct {
	Key       string `json:"key"`
	SizeBytes int64  `json:"size_bytes"`
	Records   int64  `json:"records"`
	SHA256    string `json:"sha256"`
}

// ExportError says why an export failed, in words an operator can act on.
type ExportError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}
