package api_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
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
		ts := httptest.NewServer(checkedAgainstSpec(t, srv))
		t.Cleanup(ts.Close)
		tenant := storetest.NewTenant(t)
		b := &testBundle{url: ts.URL, pool: pool, server: srv, tenant: tenant}
		busy, calm := storetest.NewKey(t, pool, tenant, audex.ScopeRead), storetest.NewKey(t, pool, tenant, audex.ScopeRead)

		for range 3 {
			require.Equal(t, http.StatusOK, b.do(t, "GET", "/v1/audit/events", busy, nil).status)
		}
		res := b.do(t, "GET", "/v1/audit/filters", busy, nil)
		require.Equal(t, http.StatusTooManyRequests, res.status)
		require.Equal(t, api.CodeRateLimited, res.errorBody(t).Code)
		retry, err := strconv.Atoi(res.header.Get("Retry-After"))
		require.NoError(t, err)
		require.InDelta(t, 60, retry, 1, "the next token is a minute away")

		require.Equal(t, http.StatusOK, b.do(t, "GET", "/v1/audit/events", calm, nil).status, "another key has its own bucket")
		require.Equal(t, http.StatusUnauthorized, b.do(t, "GET", "/v1/audit/events", "", nil).status, "no key is refused before any bucket")
		require.Equal(t, http.StatusOK, b.do(t, "GET", "/healthz", "", nil).status, "routes without a key are not limited")
	})
}
