package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
)

// touchInterval bounds how often one process writes a key's last_used_at.
const touchInterval = time.Minute

// authenticate returns the request's API key if it is known, not revoked
// and carries scope: 401 otherwise, or 403 when only the scope is missing.
func (s *Server) authenticate(r *http.Request, scope string) (audex.APIKey, error) {
	plain, apiErr := bearerKey(r, scope == audex.ScopeOperator)
	if apiErr != nil {
		return audex.APIKey{}, apiErr
	}
	key, err := store.APIKeyByHash(r.Context(), s.pool, audex.HashKey(plain))
	if errors.Is(err, store.ErrNotFound) {
		return audex.APIKey{}, &Error{Code: CodeUnauthenticated, Message: "unknown API key"}
	}
	if err != nil {
		return audex.APIKey{}, err
	}
	if key.RevokedAt != nil {
		return audex.APIKey{}, &Error{Code: CodeUnauthenticated, Message: "API key has been revoked"}
	}
	if !key.HasScope(scope) {
		return audex.APIKey{}, &Error{Code: CodePermissionDenied, Message: "API key lacks the scope " + scope}
	}
	s.touch(r.Context(), key)
	return key, nil
}

// touch records that key was used, at most once per touchInterval per
// process so that busy keys do not turn every request into a write.
func (s *Server) touch(ctx context.Context, key audex.APIKey) {
	now := time.Now()
	s.touchMu.Lock()
	last, seen := s.lastTouched[key.ID]
	due := !seen || now.Sub(last) >= touchInterval
	if due {
		s.lastTouched[key.ID] = now
	}
	s.touchMu.Unlock()
	if !due {
		return
	}
	if err := store.TouchAPIKey(ctx, s.pool, key.ID); err != nil {
		s.logger.WarnContext(ctx, "touch_api_key_failed", slog.String("key_id", key.ID), slog.Any("error", err))
	}
}
