package api

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/config"
)

// destinationRef is how an export or stream request names a destination.
type destinationRef struct {
	Name   *string `json:"name"`
	Type   *string `json:"type"`
	Bucket *string `json:"bucket"`
	Prefix *string `json:"prefix"`
}

// destinationInfo is one destination the tenant may use, as
// GET /v1/audit/destinations lists it.
type destinationInfo struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Exports bool   `json:"exports"`
	Streams bool   `json:"streams"`
}

// handleListDestinations lists the configured destinations the key's
// tenant may use, in the configuration's order: their names and types,
// never their buckets, endpoints or credentials.
func (s *Server) handleListDestinations(w http.ResponseWriter, _ *http.Request, key audex.APIKey) error {
	out := []destinationInfo{}
	for _, d := range s.destinations {
		if allowsTenant(d, key.TenantID) {
			out = append(out, destinationInfo{Name: d.Name, Type: d.Type, Exports: d.ServesExports(), Streams: true})
		}
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"destinations": out})
	return nil
}

// resolveDestination finds the configured destination a request names
// (by name, or by type and bucket) that the tenant may use, and checks
// the request's sub-prefix.
func (s *Server) resolveDestination(raw json.RawMessage, tenantID string) (config.Destination, string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return config.Destination{}, "", invalid("destination", `destination is required, e.g. {"name": "local"}`)
	}
	var ref destinationRef
	if err := decodeStrict("destination", raw, &ref); err != nil {
		return config.Destination{}, "", err
	}
	prefix := ""
	if ref.Prefix != nil {
		prefix = *ref.Prefix
		if err := checkPrefix(prefix); err != nil {
			return config.Destination{}, "", err
		}
	}
	for _, d := range s.destinations {
		var match bool
		switch {
		case ref.Name != nil:
			match = d.Name == *ref.Name && (ref.Type == nil || *ref.Type == d.Type) && (ref.Bucket == nil || *ref.Bucket == d.Bucket)
		case ref.Type != nil && ref.Bucket != nil:
			match = d.Type == *ref.Type && d.Bucket == *ref.Bucket
		default:
			return config.Destination{}, "", invalid("destination", "destination needs a name, or a type and a bucket")
		}
		if match && allowsTenant(d, tenantID) {
			return d, prefix, nil
		}
	}
	// One answer for "not configured" and "not allowed", so that a tenant
	// learns nothing of other tenants' destinations.
	return config.Destination{}, "", invalid("destination", "no such destination is configured for this tenant")
}

func allowsTenant(d config.Destination, tenantID string) bool {
	return len(d.Tenants) == 0 || slices.Contains(d.Tenants, "*") || slices.Contains(d.Tenants, tenantID)
}
