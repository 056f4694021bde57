package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/api"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

// Tenants are walls under load too (docs/api.md): budgets, caps and downloads
// that hold nothing of the database while their client is slow.

// requireRetryAfter checks an answer's status, code and Retry-After.
func requireRetryAfter(t *testing.T, res response, status int, code string) {
	t.Helper()
	require.Equal(t, status, res.status, "%s", res.body)
	require.Equal(t, code, res.errorBody(t).Code)
	seconds, err := strconv.Atoi(res.header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After: %q", res.header.Get("Retry-After"))
	require.Positive(t, seconds)
}

func TestStatementBudgets(t *testing.T) {
	t.Parallel()

	t.Run("SummaryPastItsBudgetIs503WithRetryAfter", func(t *testing.T) {
		t.Parallel()
		b := setupWith(t, api.Config{Pool: storetest.Pool(t), Limits: api.Limits{SummaryBudget: time.Millisecond}})
		b.seed(t, 30_000, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
		// A filter other than time scans 30,000 events: far more than 1 ms.
		res := b.do(t, "GET", "/v1/audit/summary?since=2026-01-01&until=2026-06-01&success=true", b.key, nil)
		requireRetryAfter(t, res, http.StatusServiceUnavailable, api.CodeUnavailable)
		require.Contains(t, res.errorBody(t).Message, "budget")
	})

	t.Run("SummaryOfTheWidestSpanAnswers", func(t *testing.T) {
		t.Parallel()
		b := setupWith(t, api.Config{Pool: storetest.Pool(t), Limits: api.Limits{SummaryBudget: 3 * time.Second}})
		b.seed(t, 2000, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
		_, err := store.RollUpAllSummaries(t.Context(), b.pool, 100_000)
		require.NoError(t, err)
		res := b.do(t, "GET", "/v1/audit/summary?since=0001-01-01&until=9999-12-31T23:59:59Z", b.key, nil)
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		var sum audex.Summary
		res.decode(t, &sum)
		var stored int64
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM events WHERE tenant_id = $1`, b.tenant).Scan(&stored))
		require.Equal(t, stored, sum.TotalEvents, "the seeded events and the key's audit.key_created")
	})
}

func TestExportCaps(t *testing.T) {
	t.Parallel()

	request := func(partMaxRecords int) map[string]any {
		return map[string]any{"since": "2026-04-01", "until": "2026-05-01", "format": "jsonl",
			"destination": map[string]any{"name": "local"}, "part_max_records": partMaxRecords}
	}

	t.Run("PartMaxRecordsBelowTheServersFloorIsRefused", func(t *testing.T) {
		t.Parallel()
		b := newExportBundle(t, exportOptions{exports: api.ExportLimits{MinPartMaxRecords: 1000}})
		res := b.do(t, "POST", "/v1/audit/exports", b.key, request(999))
		require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
		require.Equal(t, "part_max_records", res.errorBody(t).Field)
		require.Contains(t, res.errorBody(t).Message, "1000")
		b.createExport(t, request(1000))
	})

	t.Run("ExportsPastTheTenantsCapAre429UntilOneFinishes", func(t *testing.T) {
		t.Parallel()
		b := newExportBundle(t, exportOptions{exports: api.ExportLimits{MaxActivePerTenant: 2}})
		first := b.createExport(t, request(1000))
		b.createExport(t, request(1000))
		requireRetryAfter(t, b.do(t, "POST", "/v1/audit/exports", b.key, request(1000)), http.StatusTooManyRequests, api.CodeRateLimited)

		other := storetest.NewTenant(t)
		otherKey := storetest.NewKey(t, b.pool, other, audex.ScopeExport)
		res := b.do(t, "POST", "/v1/audit/exports", otherKey, request(1000))
		require.Equal(t, http.StatusAccepted, res.status, "another tenant's cap is its own: %s", res.body)

		res = b.do(t, "POST", "/v1/audit/exports/"+first+"/cancel", b.key, nil)
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		b.createExport(t, request(1000))
	})
}

// stalledDownload starts a download whose client reads nothing, on a
// socket with a small receive buffer so that the server's writes block
// soon, and returns the response once its headers are in.
func stalledDownload(t *testing.T, b *testBundle) *http.Response {
	t.Helper()
	dialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		_ = c.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return err
	}}
	client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext, DisableCompression: true}}
	body, _ := json.Marshal(map[string]any{"format": "ndjson", "since": "2026-01-01", "until": "2026-06-01"})
	req, err := http.NewRequestWithContext(t.Context(), "POST", b.url+"/v1/audit/export", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+b.key)
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	t.Cleanup(func() { res.Body.Close() })
	return res
}

func TestDownloadWalls(t *testing.T) {
	t.Parallel()

	t.Run("StalledDownloadsHoldNoConnectionAreCappedAndCutOff", func(t *testing.T) {
		t.Parallel()
		// A pool of the server's own, so that its connections are its.
		pool, err := store.Open(t.Context(), storetest.DatabaseURL(t), store.MaxConns(4))
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		b := setupWith(t, api.Config{Pool: pool, Limits: api.Limits{TenantDownloads: 2, Downloads: 3, DownloadMinRate: 1 << 20}})
		// About 18 MB of CSV: more than loopback's socket buffers can
		// take, so that a stalled download cannot end before it is cut
		// off (with 40,000 events one did, once).
		b.seed(t, 120_000, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))

		stalled := []*http.Response{stalledDownload(t, b), stalledDownload(t, b)}
		// Both wait on their clients, and neither holds a connection (the
		// pool is the server's; a page's read takes one for milliseconds).
		// Once their writes block (on a busy machine they may fill the
		// socket buffers for a while first), half a second passes with no
		// connection held.
		quiet := func() bool {
			for range 20 {
				if pool.Stat().AcquiredConns() > 0 {
					return false
				}
				time.Sleep(25 * time.Millisecond)
			}
			return true
		}
		require.Eventually(t, quiet, 20*time.Second, 10*time.Millisecond, "a stalled download holds a database connection")
		// Both are now blocked in a write whose deadline (the least window,
		// 10 s, for pages this small) was set before this moment.
		bothBlocked := time.Now()

		res := b.do(t, "POST", "/v1/audit/export", b.key, map[string]any{"format": "csv", "since": "2026-01-01", "until": "2026-06-01"})
		requireRetryAfter(t, res, http.StatusTooManyRequests, api.CodeRateLimited)
		// Another tenant downloads meanwhile, and its lists answer.
		other := storetest.NewTenant(t)
		otherKey := storetest.NewKey(t, pool, other, audex.ScopeExport, audex.ScopeRead)
		res = b.do(t, "POST", "/v1/audit/export", otherKey, map[string]any{"format": "csv", "since": "2026-01-01", "until": "2026-06-01"})
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		res = b.do(t, "GET", "/v1/audit/events?limit=1", otherKey, nil)
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)

		// Slower than the minimum rate: cut off (the least window is 10 s),
		// and the slots are free again.
		require.Eventually(t, func() bool {
			res := b.do(t, "POST", "/v1/audit/export", b.key, map[string]any{"format": "csv", "since": "2026-04-30", "until": "2026-05-01"})
			return res.status == http.StatusOK
		}, 30*time.Second, 200*time.Millisecond)
		// One cut-off frees the slot the loop above waits for; the other
		// comes up to a window later (on a loaded machine their writes
		// block at different times). Reading before it would let it go on.
		time.Sleep(time.Until(bothBlocked.Add(12 * time.Second)))
		for _, s := range stalled {
			_, err := io.Copy(io.Discard, s.Body)
			require.Error(t, err, "a stalled download is cut off, not ended as if complete")
		}
	})
}
