// Package audex holds the domain types that every other package shares:
// events, filters, API keys and scopes. It imports no other audex package
// and does no I/O.
package audex

import (
	"crypto/rand"
	"encoding/json"
	"net/netip"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// Event is one stored audit event, in the shape of the API.
type Event struct {
	ID         string          `json:"id"`
	OccurredAt time.Time       `json:"occurred_at"`
	ReceivedAt time.Time       `json:"received_at"`
	Action     string          `json:"action"`
	Actor      Actor           `json:"actor"`
	Target     *Target         `json:"target"`
	Resource   *string         `json:"resource"`
	SourceIP   *string         `json:"source_ip"`
	UserAgent  *string         `json:"user_agent"`
	RequestID  *string         `json:"request_id"`
	Method     *string         `json:"method"`
	Path       *string         `json:"path"`
	StatusCode *int            `json:"status_code"`
	Success    *bool           `json:"success"`
	DurationMS *int64          `json:"duration_ms"`
	Metadata   json.RawMessage `json:"metadata"`
}

// Actor is who did what an event records.
type Actor struct {
	ID   string  `json:"id"`
	Type *string `json:"type"`
	Name *string `json:"name"`
}

// Target is what an event's action was done to.
type Target struct {
	ID   *string `json:"id"`
	Type *string `json:"type"`
	Name *string `json:"name"`
}

// Order is the direction of a listing by (occurred_at, id).
type Order string

// The two orders; OrderDesc (newest first) is the default.
const (
	OrderAsc  Order = "asc"
	OrderDesc Order = "desc"
)

// Filter selects a tenant's events. Nil fields do not filter. Since is
// inclusive and Until exclusive.
type Filter struct {
	Since          *time.Time    `json:"since,omitempty"`
	Until          *time.Time    `json:"until,omitempty"`
	Actions        []string      `json:"action,omitempty"`
	ActionPrefix   *string       `json:"action_prefix,omitempty"`
	ActorID        *string       `json:"actor_id,omitempty"`
	ActorType      *string       `json:"actor_type,omitempty"`
	TargetID       *string       `json:"target_id,omitempty"`
	TargetType     *string       `json:"target_type,omitempty"`
	ResourcePrefix *string       `json:"resource_prefix,omitempty"`
	Success        *bool         `json:"success,omitempty"`
	SourceIP       *netip.Prefix `json:"source_ip,omitempty"`
	RequestID      *string       `json:"request_id,omitempty"`
	// ReceivedBefore keeps events received before it (an export's as_of).
	// Not a list filter; it takes no part in cursors.
	ReceivedBefore *time.Time `json:"-"`
}

// Position is a place in the (occurred_at, id) order: the last event of a
// page, after which the next page starts.
type Position struct {
	OccurredAt time.Time
	ID         string
}

// Scopes an API key can carry.
const (
	ScopeWrite    = "audit:write"
	ScopeRead     = "audit:read"
	ScopeExport   = "audit:export"
	ScopeAdmin    = "audit:admin"
	ScopeOperator = "operator"
)

// AllScopes lists every scope in the order documented in docs/api.md.
var AllScopes = []string{ScopeWrite, ScopeRead, ScopeExport, ScopeAdmin, ScopeOperator}

// ValidScope reports whether s is one of AllScopes.
func ValidScope(s string) bool {
	for _, v := range AllScopes {
		if v == s {
			return true
		}
	}
	return false
}

// APIKey is a stored key, without its secret.
type APIKey struct {
	ID         string     `json:"id"`
	TenantID   string     `json:"tenant"`
	Name       string     `json:"name"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

// HasScope reports whether the key carries scope.
func (k APIKey) HasScope(scope string) bool {
	for _, s := range k.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// ReservedActionPrefix starts the actions of the events that audex writes
// itself; clients cannot ingest them or delete them one by one.
const ReservedActionPrefix = "audit."

// PlainKeyPrefix starts every plain API key, so that secret scanners and
// people can recognise one.
const PlainKeyPrefix = "adx_"

// NewID returns a new time-ordered id: prefix, "_", then a 26-character ULID.
func NewID(prefix string) string {
	return prefix + "_" + ulid.MustNew(ulid.Now(), rand.Reader).String()
}

// The type and id (and name) of the system actor, the actor of events
// that audex itself writes.
const (
	SystemActorType = "system"
	SystemActorID   = "audex"
)

// SystemActor is the actor of events that audex itself writes.
func SystemActor() Actor {
	name, typ := SystemActorID, SystemActorType
	return Actor{ID: SystemActorID, Type: &typ, Name: &name}
}

// IsSystem reports whether a is, or would pass for, the system actor:
// type SystemActorType and id SystemActorID, compared ignoring case
// (Unicode simple folding), so that "System"/"AUDEX" count too. The name
// does not matter. Ingest refuses such actors.
func (a Actor) IsSystem() bool {
	return a.Type != nil && strings.EqualFold(*a.Type, SystemActorType) && strings.EqualFold(a.ID, SystemActorID)
}

// KeyActor is the actor of events written on behalf of an API key.
func KeyActor(k APIKey) Actor {
	typ, name := "api_key", k.Name
	return Actor{ID: k.ID, Type: &typ, Name: &name}
}

// NewTarget returns a target of the given type and id with no name.
func NewTarget(typ, id string) *Target {
	return &Target{ID: &id, Type: &typ}
}
