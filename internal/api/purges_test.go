package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/jobs"
	"github.com/audex-dev/audex/internal/queue"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

func (b *exportBundle) purge(t *testing.T, before string) string {
	t.Helper()
	res := b.do(t, "POST", "/v1/audit/purge", b.key, map[string]any{"before": before})
	require.Equal(t, http.StatusAccepted, res.status, "%s", res.body)
	var created struct {
		PurgeID string `json:"purge_id"`
		Status  string `json:"status"`
	}
	res.decode(t, &created)
	require.Equal(t, "queued", created.Status)
	return created.PurgeID
}

func (b *exportBundle) waitPurge(t *testing.T, id string) audex.Purge {
	t.Helper()
	var p audex.Purge
	require.Eventually(t, func() bool {
		b.do(t, "GET", "/v1/audit/purges/"+id, b.key, nil).decode(t, &p)
		return p.Finished()
	}, 4*time.Minute, 50*time.Millisecond)
	require.Equal(t, audex.PurgeCompleted, p.Status, "error: %v", p.Error)
	return p
}

func (b *exportBundle) dryRun(t *testing.T, before string) int64 {
	t.Helper()
	res := b.do(t, "POST", "/v1/audit/purge", b.key, map[string]any{"before": before, "dry_run": true})
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	var answer struct {
		DryRun  bool  `json:"dry_run"`
		Deleted int64 `json:"deleted"`
	}
	res.decode(t, &answer)
	require.True(t, answer.DryRun)
	return answer.Deleted
}

func (b *exportBundle) countSQL(t *testing.T, where string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM events WHERE tenant_id = $1 AND `+where, append([]any{b.tenant}, args...)...).Scan(&n))
	return n
}

func TestPurge(t *testing.T) {
	t.Parallel()

	t.Run("DryRunCountIsWhatThePurgeDeletesAndOtherTenantsKeepTheirs", func(t *testing.T) {
		t.Parallel()
		b := setupExports(t, true)
		other := &exportBundle{testBundle: &testBundle{url: b.url, pool: b.pool, server: b.server, tenant: storetest.NewTenant(t)}}
		other.key = storetest.NewKey(t, b.pool, other.tenant, audex.ScopeWrite, audex.ScopeRead)
		end := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
		b.seed(t, 20_000, end)
		other.seed(t, 3_000, end)
		otherBefore := other.countSQL(t, "true")
		cut := "2026-04-20T00:00:00Z"

		want := b.countSQL(t, "occurred_at < $2", time.Date(2026, 4, 20, 0, 0, 0, 0, time.UTC))
		require.Positive(t, want)
		require.Equal(t, want, b.dryRun(t, cut))
		require.Equal(t, want, b.dryRun(t, cut), "a dry run changes nothing")

		p := b.waitPurge(t, b.purge(t, cut))
		require.Equal(t, want, p.Deleted)
		require.Equal(t, cut, p.Before.Format(time.RFC3339))
		require.NotNil(t, p.CompletedAt)
		require.Zero(t, b.countSQL(t, "occurred_at < $2", time.Date(2026, 4, 20, 0, 0, 0, 0, time.UTC)))
		require.Equal(t, otherBefore, other.countSQL(t, "true"))
		var orphans int64
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM event_ids i WHERE tenant_id = $1
			AND NOT EXISTS (SELECT 1 FROM events e WHERE e.tenant_id = i.tenant_id AND e.id = i.id)`, b.tenant).Scan(&orphans))
		require.Zero(t, orphans, "purged ids are forgotten")

		var record listAnswer
		b.do(t, "GET", "/v1/audit/events?action=audit.purge_completed", b.key, nil).decode(t, &record)
		require.Len(t, record.Events, 1)
		// This server seals no log: no deleted event was a leaf.
		require.JSONEq(t, fmt.Sprintf(`{"before":"%s","deleted":%d,"reason":"request","leaves":[]}`, cut, want), string(record.Events[0].Metadata))
	})

	t.Run("APurgeOfEverythingKeepsItsOwnRecordsAndTheFiltersStayExact", func(t *testing.T) {
		t.Parallel()
		b := setupExports(t, true)
		e := event("secret.thing", "alice")
		e["actor"] = map[string]any{"id": "alice", "type": "robot"}
		b.ingest(t, e, event("doc.read", "bob"))
		id := b.purge(t, time.Now().Add(24*time.Hour).UTC().Format(time.RFC3339))
		p := b.waitPurge(t, id)
		require.Positive(t, p.Deleted)
		// Its audit.purge_created was received after the purge was asked
		// for (in the same transaction), and audit.purge_completed after
		// it ended: a purge deletes only events received before it was
		// asked for.
		left := b.listAllWithAudit(t, "limit=100&order=asc")
		require.Len(t, left, 2)
		require.Equal(t, "audit.purge_created", left[0].Action)
		require.Equal(t, "audit.purge_completed", left[1].Action)
		for _, e := range left {
			require.Equal(t, id, *e.Target.ID)
		}

		var filters struct {
			Values map[string][]string `json:"values"`
		}
		b.do(t, "GET", "/v1/audit/filters", b.key, nil).decode(t, &filters)
		require.Equal(t, []string{"audit.purge_completed", "audit.purge_created"}, filters.Values["action"])
		require.Equal(t, []string{"api_key", "system"}, filters.Values["actor_type"])
	})

	t.Run("APurgeThatDiedMidwayResumesWithTheRightCount", func(t *testing.T) {
		t.Parallel()
		b := setupExports(t, false)
		b.seed(t, 23_000, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
		want := b.dryRun(t, "2026-04-25")
		id := b.purge(t, "2026-04-25")
		// A worker that started the purge and died after two batches.
		p, blocked, err := store.StartPurge(t.Context(), b.pool, id)
		require.NoError(t, err)
		require.False(t, blocked)
		for range 2 {
			n, _, err := store.PurgeBatch(t.Context(), b.pool, p, nil, 5000, 0)
			require.NoError(t, err)
			require.EqualValues(t, 5000, n)
		}
		// A new worker picks up the purge's job.
		client, err := jobs.NewClient(jobs.Config{Pool: b.pool, Logger: discardLogger()})
		require.NoError(t, err)
		require.NoError(t, client.Start(context.WithoutCancel(t.Context())))
		t.Cleanup(func() { _ = client.Stop(context.Background()) })
		done := b.waitPurge(t, id)
		require.Equal(t, want, done.Deleted)
	})

	t.Run("AnExportOverlappingAPurgeEndsExact", func(t *testing.T) {
		t.Parallel()
		b := setupExports(t, true)
		b.seed(t, 40_000, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
		wantIDs := ids(b.listAll(t, "order=asc&limit=1000&action_prefix=doc."))
		exportID := b.createExport(t, map[string]any{"since": "2020-01-01", "until": "2100-01-01", "format": "jsonl",
			"destination": map[string]any{"name": "local"}, "part_max_records": 300, "filters": map[string]any{"action_prefix": "doc."}})
		require.Eventually(t, func() bool {
			var e audex.Export
			b.do(t, "GET", "/v1/audit/exports/"+exportID, b.key, nil).decode(t, &e)
			return e.Progress.PartsWritten >= 2
		}, 30*time.Second, 5*time.Millisecond)
		purgeID := b.purge(t, "2026-04-28")
		e := b.waitExport(t, exportID)
		require.Equal(t, "completed", e.Status)
		requireSameIDs(t, wantIDs, b.readParts(t, e))
		p := b.waitPurge(t, purgeID)
		require.Positive(t, p.Deleted)
		require.True(t, p.StartedAt.After(*e.CompletedAt) || p.StartedAt.Equal(*e.CompletedAt), "the purge waited for the export")
	})

	t.Run("IngestGoesOnDuringAPurgeOfHalfTheEvents", func(t *testing.T) {
		t.Parallel()
		b := setupExports(t, true)
		// 1,000,000 events (500,000 purged) with AUDEX_TEST_LARGE=1; a
		// fifth of that by default, to keep make test quick on 2 cores.
		total := 200_000
		if os.Getenv("AUDEX_TEST_LARGE") == "1" {
			total = 1_000_000
		}
		b.seed(t, total, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
		cut := time.Date(2026, 4, 18, 12, 0, 0, 0, time.UTC)
		want := b.countSQL(t, "occurred_at < $2", cut)
		require.InDelta(t, total/2, want, float64(total)*0.06)
		keep := b.countSQL(t, "occurred_at >= $2 AND action NOT LIKE 'audit.%'", cut)

		var ingested, failures atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for c := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					batch := make([]map[string]any, 100)
					for i := range batch {
						batch[i] = map[string]any{"id": fmt.Sprintf("live-%d-%d-%d", c, n, i), "action": "live.event",
							"actor": map[string]any{"id": "writer"}, "occurred_at": "2026-04-29T00:00:00Z"}
					}
					// No require here: this goroutine outlives a failed test.
					data, _ := json.Marshal(map[string]any{"events": batch})
					req, _ := http.NewRequest("POST", b.url+"/v1/audit/events", bytes.NewReader(data))
					req.Header.Set("Authorization", "Bearer "+b.key)
					req.Header.Set("Content-Type", "application/json")
					res, err := http.DefaultClient.Do(req)
					if err != nil {
						failures.Add(1)
						continue
					}
					res.Body.Close()
					if res.StatusCode != http.StatusCreated {
						failures.Add(1)
						continue
					}
					ingested.Add(100)
				}
			}()
		}
		p := b.waitPurge(t, b.purge(t, cut.Format(time.RFC3339)))
		close(stop)
		wg.Wait()
		require.Zero(t, failures.Load(), "no ingest request failed")
		require.Positive(t, ingested.Load())
		require.Equal(t, want, p.Deleted)
		require.Equal(t, keep, b.countSQL(t, "occurred_at >= $2 AND action <> 'live.event' AND action NOT LIKE 'audit.%'", cut), "no event newer than before was lost")
		require.Equal(t, ingested.Load(), b.countSQL(t, "action = 'live.event'"))
	})
}

// seedFiftyDays ingests 200 events for b's tenant, one every 6 hours back
// from now, and the same events for a new tenant with no retention
// policy, whose id it returns. That tenant keeps every partition they
// fall in from being dropped whole, whatever the day of the month, so
// that retention deletes b's events by a purge of rows.
func seedFiftyDays(t *testing.T, b *exportBundle) (forever string) {
	t.Helper()
	now := time.Now().UTC()
	var events []map[string]any
	for i := range 200 {
		e := event("doc.read", "alice")
		e["occurred_at"] = now.Add(-time.Duration(i) * 6 * time.Hour).Format(time.RFC3339Nano)
		events = append(events, e)
	}
	b.ingest(t, events...)
	other := &exportBundle{testBundle: &testBundle{url: b.url, pool: b.pool, server: b.server, tenant: storetest.NewTenant(t)}}
	other.key = storetest.NewKey(t, b.pool, other.tenant, audex.ScopeWrite)
	other.ingest(t, events...)
	return other.tenant
}

func TestRetention(t *testing.T) {
	t.Parallel()

	t.Run("PolicyRoundTripsAndIsAudited", func(t *testing.T) {
		t.Parallel()
		b := setupExports(t, false)
		res := b.do(t, "GET", "/v1/audit/retention", b.key, nil)
		require.JSONEq(t, `{"retain_days":null}`, string(res.body))
		res = b.do(t, "PUT", "/v1/audit/retention", b.key, map[string]any{"retain_days": 30})
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		require.JSONEq(t, `{"retain_days":30}`, string(res.body))
		require.JSONEq(t, `{"retain_days":30}`, string(b.do(t, "GET", "/v1/audit/retention", b.key, nil).body))
		res = b.do(t, "PUT", "/v1/audit/retention", b.key, `{"retain_days":null}`)
		require.JSONEq(t, `{"retain_days":null}`, string(res.body))
		var updates listAnswer
		b.do(t, "GET", "/v1/audit/events?action=audit.retention_updated", b.key, nil).decode(t, &updates)
		require.Len(t, updates.Events, 2)
		for body, field := range map[string]string{
			`{}`:                      "retain_days",
			`{"retain_days":0}`:       "retain_days",
			`{"retain_days":36501}`:   "retain_days",
			`{"retain_days":"30"}`:    "retain_days",
			`{"retain_days":1.5}`:     "retain_days",
			`{"retain_days":3,"x":1}`: "x",
		} {
			res := b.do(t, "PUT", "/v1/audit/retention", b.key, body)
			require.Equal(t, http.StatusBadRequest, res.status, body)
			require.Equal(t, field, res.errorBody(t).Field, body)
		}
	})

	t.Run("TheScheduledRunDeletesExactlyTheExpiredEventsOncePerDay", func(t *testing.T) {
		t.Parallel()
		b := setupExports(t, true)
		forever := seedFiftyDays(t, b)

		require.Equal(t, http.StatusOK, b.do(t, "PUT", "/v1/audit/retention", b.key, map[string]any{"retain_days": 10}).status)
		cut := time.Now().UTC().AddDate(0, 0, -10)
		expired := b.countSQL(t, "occurred_at < $2", cut)
		require.InDelta(t, 160, expired, 2)

		// Two schedulers firing at once (as two worker processes would).
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := b.river.Insert(context.Background(), queue.RetentionArgs{}, nil)
				require.NoError(t, err)
			}()
		}
		wg.Wait()
		var purgeIDs []string
		require.Eventually(t, func() bool {
			rows, err := b.pool.Query(t.Context(), `SELECT id FROM purges WHERE tenant_id = $1 AND reason = 'retention' AND status = 'completed'`, b.tenant)
			require.NoError(t, err)
			purgeIDs = purgeIDs[:0]
			for rows.Next() {
				var id string
				require.NoError(t, rows.Scan(&id))
				purgeIDs = append(purgeIDs, id)
			}
			return len(purgeIDs) > 0
		}, 30*time.Second, 50*time.Millisecond)
		time.Sleep(300 * time.Millisecond)
		var purges int
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM purges WHERE tenant_id = $1`, b.tenant).Scan(&purges))
		require.Equal(t, 1, purges, "one purge per tenant and day")
		p := b.waitPurge(t, purgeIDs[0])
		require.Equal(t, "retention", p.Reason)
		require.InDelta(t, expired, p.Deleted, 1, "the cut-off moved on a little between count and run")
		require.Zero(t, b.countSQL(t, "occurred_at < $2 AND action NOT LIKE 'audit.%'", cut.Add(-time.Minute)))
		require.Equal(t, int64(200)-p.Deleted, b.countSQL(t, "action = 'doc.read'"))
		var forevers int64
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM events WHERE tenant_id = $1 AND action = 'doc.read'`, forever).Scan(&forevers))
		require.EqualValues(t, 200, forevers, "a tenant without a policy keeps everything")
		var record listAnswer
		b.do(t, "GET", "/v1/audit/events?action=audit.purge_completed", b.key, nil).decode(t, &record)
		require.Len(t, record.Events, 1)
		require.Contains(t, string(record.Events[0].Metadata), `"reason":"retention"`)
	})
	t.Run("AShorterPolicyIsAppliedByTheNextRunTheSameDay", func(t *testing.T) {
		t.Parallel()
		b := setupExports(t, true)
		seedFiftyDays(t, b)
		// completedRun waits for the retention purge that the scheduled
		// run just fired completes and returns it.
		completed := map[string]bool{}
		completedRun := func() audex.Purge {
			t.Helper()
			_, err := b.river.Insert(context.Background(), queue.RetentionArgs{}, nil)
			require.NoError(t, err)
			var id string
			require.Eventually(t, func() bool {
				rows, err := b.pool.Query(t.Context(), `SELECT id FROM purges WHERE tenant_id = $1 AND reason = 'retention' AND status = 'completed'`, b.tenant)
				require.NoError(t, err)
				for rows.Next() {
					var got string
					require.NoError(t, rows.Scan(&got))
					if !completed[got] {
						id = got
					}
				}
				return id != ""
			}, 30*time.Second, 50*time.Millisecond)
			completed[id] = true
			return b.waitPurge(t, id)
		}

		require.Equal(t, http.StatusOK, b.do(t, "PUT", "/v1/audit/retention", b.key, map[string]any{"retain_days": 40}).status)
		first := completedRun()
		require.InDelta(t, 40, first.Deleted, 1)
		require.Equal(t, http.StatusOK, b.do(t, "PUT", "/v1/audit/retention", b.key, map[string]any{"retain_days": 10}).status)
		cut := time.Now().UTC().AddDate(0, 0, -10)
		expired := b.countSQL(t, "occurred_at < $2 AND action = 'doc.read'", cut)
		require.InDelta(t, 120, expired, 2)
		second := completedRun()
		require.InDelta(t, expired, second.Deleted, 1, "the cut-off moved on a little between count and run")
		require.Zero(t, b.countSQL(t, "occurred_at < $2 AND action NOT LIKE 'audit.%'", cut.Add(-time.Minute)),
			"no event older than the shorter policy is left")
	})
}

func TestPurgeBadRequests(t *testing.T) {
	t.Parallel()
	b := setupExports(t, false)
	for body, field := range map[string]string{
		`{}`:                                  "before",
		`{"before":"yesterday"}`:              "before",
		`{"before":"2026-01-01","dry_run":1}`: "dry_run",
		`{"before":"2026-01-01","after":1}`:   "after",
	} {
		res := b.do(t, "POST", "/v1/audit/purge", b.key, body)
		require.Equal(t, http.StatusBadRequest, res.status, body)
		require.Equal(t, field, res.errorBody(t).Field, body)
	}
	require.Equal(t, http.StatusNotFound, b.do(t, "GET", "/v1/audit/purges/prg_nope", b.key, nil).status)
}
