package audex

import (
	"encoding/json"
	"time"
)

// Stream statuses. A deleted stream is kept for its batches but no route
// shows it.
const (
	StreamActive  = "active"
	StreamPaused  = "paused"
	StreamFailed  = "failed"
	StreamDeleted = "deleted"
)

// Bounds of a stream's interval, in seconds; the operator may raise the
// minimum (its default is config.DefaultStreamMinInterval).
const (
	MaxStreamIntervalSeconds     = 86_400
	DefaultStreamIntervalSeconds = 300
)

// Stream is an export stream in the shape of the status route.
type Stream struct {
	ID               string            `json:"stream_id"`
	Status           string            `json:"status"`
	Destination      ExportDestination `json:"destination"`
	Format           string            `json:"format"`
	Compression      string            `json:"compression"`
	Filters          json.RawMessage   `json:"filters"`
	IntervalSeconds  int               `json:"interval_seconds"`
	Start            time.Time         `json:"start"`
	Watermark        time.Time         `json:"watermark"`
	LagSeconds       float64           `json:"lag_seconds"`
	BatchesDelivered int64             `json:"batches_delivered"`
	EventsDelivered  int64             `json:"events_delivered"`
	LastBatchAt      *time.Time        `json:"last_batch_at"`
	Error            *ExportError      `json:"error"`
	CreatedAt        time.Time         `json:"created_at"`

	// TenantID owns the stream.
	TenantID string `json:"-"`
	// KeyPrefix is where its objects go: <destination prefix>/<prefix>/<id>/.
	KeyPrefix string `json:"-"`
	// Filter is Filters parsed.
	Filter Filter `json:"-"`
	// NextSeq is the sequence number of the next batch.
	NextSeq int64 `json:"-"`
	// PendingThrough is the through of the batch being delivered, fixed
	// before its first object was written; nil when none is.
	PendingThrough *time.Time `json:"-"`
	// LastManifestSHA256 is the last delivered batch's manifest_sha256.
	LastManifestSHA256 *string `json:"-"`
	// Failures counts the deliveries that failed in a row.
	Failures int `json:"-"`
}

// Interval is the stream's interval between batches.
func (s *Stream) Interval() time.Duration { return time.Duration(s.IntervalSeconds) * time.Second }

// StreamBatch is one delivered batch of a stream, in the shape of the
// batches route; its manifest object holds the same object.
type StreamBatch struct {
	StreamID               string       `json:"stream_id"`
	Seq                    int64        `json:"seq"`
	After                  time.Time    `json:"after"`
	Through                time.Time    `json:"through"`
	RecordCount            int64        `json:"record_count"`
	Files                  []ExportFile `json:"files"`
	ManifestKey            *string      `json:"manifest_key"`
	ManifestSHA256         string       `json:"manifest_sha256,omitempty"`
	PreviousManifestSHA256 *string      `json:"previous_manifest_sha256"`
	DeliveredAt            time.Time    `json:"delivered_at"`
	// Log is what the manifest says of the integrity log; only the
	// manifest object holds it.
	Log *ManifestLog `json:"log,omitempty"`
}
