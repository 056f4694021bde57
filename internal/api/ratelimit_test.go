package api_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/api"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

func TestRateLimit(t *testing.T) {
	t.Parallel()

	t.Run("AKeyOverItsBucketGets429WithRetryAfterAndOthersGoOn", func(t *testing.T) {
		t.Parallel()
		pool := storetest.Pool(t)
		secret, err := store.CursorSecret(t.Context(), pool)
		require.NoError(t, err)
		// A bucket of 3 refilled once a minute: the 4th request in a row
		// is over, whatever the machine's speed.
		srv := api.New(api.Config{Pool: pool, Logger: slog.New(slog.DiscardHandler), CursorSecret: secret,
			RateLimit: api.RateLimit{PerSecond: 1.0 / 60, Burst: 3}})
		ts := serve(t, srv, slog.New(slog.DiscardHandler))
		tenant := storetest.NewTenant(t)
		b := &testBundle{url: ts.URL, pool: pool, server: srv, tenant: tenant}
		busy, calm := storetest.NewKey(t, pool, tenant, audex.ScopeRead), storetest.NewKey(t, pool, tenant, audex.ScopeRead)

		for range 3 {
			require.Equal(t, http.StatusOK, b.do(t, "GET", "/v1/audit/events", busy, "").status)
		}
		res := b.do(t, "GET", "/v1/audit/filters", busy, "")
		require.Equal(t, http.StatusTooManyRequests, res.status)
		require.Equal(t, api.CodeRateLimited, res.errorBody(t).Code)
		retry, err := strconv.Atoi(res.header.Get("Retry-After"))
		require.NoError(t, err)
		require.InDelta(t, 60, retry, 1, "the next token is a minute away")

		require.Equal(t, http.StatusOK, b.do(t, "GET", "/v1/audit/events", calm, "").status, "another key has its own bucket")
		require.Equal(t, http.StatusUnauthorized, b.do(t, "GET", "/v1/audit/events", "", "").status, "no key is refused before any bucket")
		require.Equal(t, http.StatusOK, b.do(t, "GET", "/healthz", "", "").status, "routes without a key are not limited")
	})

	// Failed authentications are counted per client address, given here
	// as the RemoteAddr of requests sent to the handler itself.

	t.Run("AnAddressThatFailsTooOftenGets429EvenWithAGoodKeyAndOthersGoOn", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		h := checkedAgainstSpec(t, b.server)
		const attacker, bystander = "203.0.113.7:50000", "198.51.100.9:50000"

		for i := range 20 {
			res := serveFrom(t, h, attacker, "GET", "/v1/audit/events", "adx_guess_"+strconv.Itoa(i), "")
			require.Equal(t, http.StatusUnauthorized, res.status, "failure %d is within the budget", i+1)
		}
		res := serveFrom(t, h, attacker, "GET", "/v1/audit/events", "adx_guess_21", "")
		require.Equal(t, http.StatusTooManyRequests, res.status, "body: %s", res.body)
		require.Equal(t, api.CodeRateLimited, res.errorBody(t).Code)
		retry, err := strconv.Atoi(res.header.Get("Retry-After"))
		require.NoError(t, err, "Retry-After: %q", res.header.Get("Retry-After"))
		require.InDelta(t, 3, retry, 1, "20 a minute refill one every 3 seconds")

		res = serveFrom(t, h, "203.0.113.7:50001", "GET", "/v1/audit/events", b.key, "")
		require.Equal(t, http.StatusTooManyRequests, res.status, "a good key from that address waits too (another port is the same address)")
		res = serveFrom(t, h, attacker, "GET", "/v1/audit/events", "", "")
		require.Equal(t, http.StatusTooManyRequests, res.status, "no key at all waits too")
		forwarded := httptest.NewRequestWithContext(t.Context(), "GET", "/v1/audit/events", nil)
		forwarded.RemoteAddr = attacker
		forwarded.Header.Set("Authorization", "Bearer adx_guess_22")
		forwarded.Header.Set("X-Forwarded-For", "198.51.100.10")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, forwarded)
		require.Equal(t, http.StatusTooManyRequests, rec.Code, "X-Forwarded-For is not trusted")

		require.Equal(t, http.StatusOK, serveFrom(t, h, bystander, "GET", "/v1/audit/events", b.key, "").status, "another address is not held up")
		require.Equal(t, http.StatusUnauthorized, serveFrom(t, h, bystander, "GET", "/v1/audit/events", "adx_typo", "").status, "and has a budget of its own")
		require.Equal(t, http.StatusOK, serveFrom(t, h, bystander, "GET", "/v1/audit/events", b.key, "").status)
	})

	t.Run("IPv6AddressesAreCountedByTheirSlash64", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		h := checkedAgainstSpec(t, b.server)
		for i := range 20 {
			addr := fmt.Sprintf("[2001:db8:1:2::%x]:443", i+1) // a fresh address of one /64 each time
			require.Equal(t, http.StatusUnauthorized, serveFrom(t, h, addr, "GET", "/v1/audit/filters", "adx_guess", "").status)
		}
		require.Equal(t, http.StatusTooManyRequests, serveFrom(t, h, "[2001:db8:1:2:ffff::1]:443", "GET", "/v1/audit/filters", b.key, "").status)
		require.Equal(t, http.StatusOK, serveFrom(t, h, "[2001:db8:1:3::1]:443", "GET", "/v1/audit/filters", b.key, "").status, "the next /64 is another client")
	})

	t.Run("ConcurrentFailuresCannotOverdrawTheBudget", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		h := checkedAgainstSpec(t, b.server)
		const addr = "203.0.113.99:1"
		require.Equal(t, http.StatusUnauthorized, serveFrom(t, h, addr, "GET", "/v1/audit/events", "adx_guess", "").status)
		counts := concurrently(60, func() int {
			return serveFrom(t, h, addr, "GET", "/v1/audit/events", "adx_guess", "").status
		})
		require.Equal(t, 60, counts[http.StatusUnauthorized]+counts[http.StatusTooManyRequests], "%v", counts)
		require.GreaterOrEqual(t, counts[http.StatusUnauthorized], 19, "%v", counts)
		require.LessOrEqual(t, counts[http.StatusUnauthorized], 20, "19 left, and at most one refilled while the test ran: %v", counts)
	})

	t.Run("ABusyClientThatNeverFailsIsNeverHeldUp", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		h := checkedAgainstSpec(t, b.server)
		counts := concurrently(60, func() int {
			return serveFrom(t, h, "203.0.113.100:1", "GET", "/v1/audit/filters", b.key, "").status
		})
		require.Equal(t, map[int]int{http.StatusOK: 60}, counts)
	})

	t.Run("AKeyWithoutTheScopeIsNotAFailedAuthentication", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		h := checkedAgainstSpec(t, b.server)
		reader := storetest.NewKey(t, b.pool, b.tenant, audex.ScopeRead)
		for range 25 {
			res := serveFrom(t, h, "203.0.113.50:1", "POST", "/v1/audit/events", reader, ingestBody(nil))
			require.Equal(t, http.StatusForbidden, res.status, "body: %s", res.body)
		}
		require.Equal(t, http.StatusCreated, serveFrom(t, h, "203.0.113.50:1", "POST", "/v1/audit/events", b.key, ingestBody(nil)).status)
	})
}

// concurrently runs do n times at once and counts the statuses it
// returns.
func concurrently(n int, do func() int) map[int]int {
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range statuses {
		wg.Go(func() { statuses[i] = do() })
	}
	wg.Wait()
	counts := map[int]int{}
	for _, s := range statuses {
		counts[s]++
	}
	return counts
}

// serveFrom sends a request from client address addr (host:port) to h
// itself, with key (if not empty) and a JSON body (if not empty).
func serveFrom(t *testing.T, h http.Handler, addr, method, path, key, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequestWithContext(t.Context(), method, path, rd)
	req.RemoteAddr = addr
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}
