package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/audex-dev/audex"
)

// cursorSigner issues and checks pagination cursors: the position of a
// page's last row plus a fingerprint of the tenant, filters and order it
// was issued for, signed with HMAC-SHA256 so that clients cannot forge or
// edit one.
type cursorSigner struct {
	secret []byte
}

type cursorPayload struct {
	OccurredAt int64  `json:"t"` // Unix microseconds
	ID         string `json:"i"`
	Scope      string `json:"f"` // fingerprint of what the cursor is bound to
}

// scopeFingerprint identifies the tenant, filters and order a cursor
// belongs to. Filter values are normalised by the parser, so equal filters
// give equal fingerprints.
func scopeFingerprint(tenantID string, parts ...any) string {
	b, _ := json.Marshal(append([]any{tenantID}, parts...))
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

func (c cursorSigner) sign(payload []byte) []byte {
	mac := hmac.New(sha256.New, c.secret)
	mac.Write(payload)
	return mac.Sum(nil)[:16]
}

// encode returns the cursor that continues after pos.
func (c cursorSigner) encode(pos audex.Position, scope string) string {
	payload, _ := json.Marshal(cursorPayload{OccurredAt: pos.OccurredAt.UnixMicro(), ID: pos.ID, Scope: scope})
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(c.sign(payload))
}

// decode checks a cursor's signature and that it was issued for scope.
func (c cursorSigner) decode(cursor, scope string) (audex.Position, error) {
	bad := invalid("cursor", "cursor is malformed or was not issued by this server")
	p64, s64, ok := strings.Cut(cursor, ".")
	if !ok {
		return audex.Position{}, bad
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	sig, err2 := base64.RawURLEncoding.DecodeString(s64)
	if err1 != nil || err2 != nil || !hmac.Equal(sig, c.sign(payload)) {
		return audex.Position{}, bad
	}
	var p cursorPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return audex.Position{}, bad
	}
	if p.Scope != scope {
		return audex.Position{}, invalid("cursor", "cursor was issued for other filters or order; start again without it")
	}
	return audex.Position{OccurredAt: time.UnixMicro(p.OccurredAt).UTC(), ID: p.ID}, nil
}
