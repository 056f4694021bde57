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
// A client address that has failed authentication too often (401s, see
// authFailureBurst) gets 429 with a retry-after instead, before its key
// is looked up, until its budget refills.
func (s *Server) authenticate(r *http.Request, scope string) (audex.APIKey, error) {
	return s.authenticateWith(r, func() (audex.APIKey, error) { return s.lookupKey(r, scope) })
}

// authenticateWith is authenticate with the key found by lookup, under
// the same failure budget.
func (s *Server) authenticateWith(r *http.Request, lookup func() (audex.APIKey, error)) (audex.APIKey, error) {
	failures := s.limiters.authFailures
	// An address that failed lately has its failure's token taken before
	// the lookup, and given back unless it fails, so that concurrent
	// attempts cannot overdraw what is left of its budget. An address
	// with a clean record is charged after a failure only, so that a busy
	// client with many requests in flight is never held up.
	addr, now := clientAddress(r), time.Now()
	res, wait := failures.hold(addr, now)
	if wait > 0 {
		return audex.APIKey{}, &Error{Code: CodeRateLimited, RetryAfter: wait,
			Message: "too many failed authentications from this address; retry after the time in Retry-After"}
	}
	key, err := lookup()
	switch apiErr := (*Error)(nil); {
	case !errors.As(err, &apiErr) || apiErr.Code != CodeUnauthenticated:
		giveBack(res, now)
	case res == nil:
		failures.take(addr, time.Now())
	}
	return key, err
}

// lookupKey is authenticate without the failure budget. A request with
// no key but the console's session cookie is the session's key (not on
// operator routes).
func (s *Server) lookupKey(r *http.Request, scope string) (audex.APIKey, error) {
	if scope != audex.ScopeOperator && !hasKeyHeader(r) {
		switch session, _, err := s.consoleSession(r, true); {
		case err == nil:
			return s.checkKey(r, session.Key, scope)
		case !errors.Is(err, errNoConsoleSession):
			return audex.APIKey{}, err
		}
	}
	plain, apiErr := bearerKey(r, scope == audex.ScopeOperator)
	if apiErr != nil {
		return audex.APIKey{}, apiErr
	}
	return s.keyOf(r, plain, scope)
}

// keyOf returns the stored key whose plain text is plain, if it is not
// revoked and carries scope (none: any).
func (s *Server) keyOf(r *http.Request, plain, scope string) (audex.APIKey, error) {
	key, err := store.APIKeyByHash(r.Context(), s.pool, audex.HashKey(plain))
	if errors.Is(err, store.ErrNotFound) {
		return audex.APIKey{}, &Error{Code: CodeUnauthenticated, Message: "unknown API key"}
	}
	if err != nil {
		return audex.APIKey{}, err
	}
	return s.checkKey(r, key, scope)
}

// checkKey refuses a revoked key and one without scope (none: any), and
// records that the key was used.
func (s *Server) checkKey(r *http.Request, key audex.APIKey, scope string) (audex.APIKey, error) {
	if key.RevokedAt != nil {
		return audex.APIKey{}, &Error{Code: CodeUnauthenticated, Message: "API key has been revoked"}
	}
	if scope != "" && !key.HasScope(scope) {
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
