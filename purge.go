package audex

import "time"

// Purge statuses.
const (
	PurgeQueued    = "queued"
	PurgeRunning   = "running"
	PurgeCompleted = "completed"
	PurgeFailed    = "failed"
)

// PurgeStatuses are every purge status, in the order of a purge's life.
var PurgeStatuses = []string{PurgeQueued, PurgeRunning, PurgeCompleted, PurgeFailed}

// Purge reasons.
const (
	PurgeByRequest   = "request"
	PurgeByRetention = "retention"
)

// Purge deletes a tenant's events that occurred strictly before Before.
type Purge struct {
	ID          string     `json:"purge_id"`
	Status      string     `json:"status"`
	Reason      string     `json:"reason"`
	Before      time.Time  `json:"before"`
	Deleted     int64      `json:"deleted"`
	CreatedAt   time.Time  `json:"created_at"`
	StartedAt   *time.Time `json:"started_at"`
	CompletedAt *time.Time `json:"completed_at"`
	Error       *string    `json:"error"`

	TenantID string `json:"-"`
}

// Finished reports whether the purge reached a final status.
func (p *Purge) Finished() bool {
	return p.Status == PurgeCompleted || p.Status == PurgeFailed
}
