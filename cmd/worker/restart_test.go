package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

// ingestClients post batches of new events to the API until stopped and
// keep what each answer said.
type ingestClients struct {
	api, key string
	stop     chan struct{}
	wg       sync.WaitGroup

	mu       sync.Mutex
	acked    []string       // ids of batches answered 201
	statuses map[int]int    // answers by status
	codes    map[string]int // error codes of the answers that were not 201
	bodies   []string       // the first bodies of unexpected answers
}

func startIngest(t *testing.T, api, key string, clients int) *ingestClients {
	t.Helper()
	c := &ingestClients{api: api, key: key, stop: make(chan struct{}), statuses: map[int]int{}, codes: map[string]int{}}
	for n := range clients {
		c.wg.Go(func() { c.run(n) })
	}
	t.Cleanup(c.halt)
	return c
}

// run posts batches of 20 events (ids unique to this client) one after
// the other; an answer that is no answer (the server gone) counts as 0.
func (c *ingestClients) run(client int) {
	httpc := &http.Client{Timeout: 10 * time.Second}
	for batch := 0; ; batch++ {
		select {
		case <-c.stop:
			return
		default:
		}
		ids := make([]string, 20)
		events := make([]map[string]any, len(ids))
		for i := range ids {
			ids[i] = fmt.Sprintf("live-%d-%06d-%02d", client, batch, i)
			events[i] = map[string]any{"id": ids[i], "action": "doc.read", "actor": map[string]any{"id": "u1"}}
		}
		body, _ := json.Marshal(map[string]any{"events": events})
		req, _ := http.NewRequest(http.MethodPost, c.api+"/v1/audit/events", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+c.key)
		req.Header.Set("Content-Type", "application/json")
		status, answer := 0, []byte(nil)
		if res, err := httpc.Do(req); err == nil {
			status = res.StatusCode
			answer, _ = io.ReadAll(res.Body)
			res.Body.Close()
		}
		c.record(status, answer, ids)
		if status != http.StatusCreated {
			time.Sleep(50 * time.Millisecond) // as a client backs off
		}
	}
}

func (c *ingestClients) record(status int, answer []byte, ids []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.statuses[status]++
	if status == http.StatusCreated {
		c.acked = append(c.acked, ids...)
		return
	}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(answer, &e)
	c.codes[e.Error.Code]++
	if status != http.StatusServiceUnavailable && len(c.bodies) < 5 {
		c.bodies = append(c.bodies, fmt.Sprintf("%d %s", status, answer))
	}
}

func (c *ingestClients) halt() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.wg.Wait()
}

// count returns how many answers had status.
func (c *ingestClients) count(status int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.statuses[status]
}

func TestDatabaseRestart(t *testing.T) {
	t.Parallel()
	server := storetest.NewServer(t)
	b := setupProcessesOn(t, server.URL)
	b.seed(t, 100_000)
	// March's events are purged while April's are exported: a purge waits
	// only for exports of its range, so both run when the database goes.
	const purged = 200_000
	b.seedMonth(t, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), "m", purged)
	// The seeded events are sealed into the integrity log up front, as a
	// worker running all along would have: else the purge, which seals
	// first, would still be sealing 300,000 events when the database goes.
	b.seal(t)
	writeKey := storetest.NewKey(t, b.pool, b.tenant, audex.ScopeWrite)
	adminKey := storetest.NewKey(t, b.pool, b.tenant, audex.ScopeAdmin)
	// A stream of the ingest clients' events, every second.
	s := audex.Stream{ID: audex.NewID("str"), TenantID: b.tenant, Format: "jsonl", Compression: "none",
		Filters: []byte(`{"actor_id":"u1"}`), Filter: audex.Filter{ActorID: ptr("u1")}, IntervalSeconds: 1,
		Destination: audex.ExportDestination{Name: "local", Type: "file", Bucket: b.folder}}
	s.KeyPrefix = s.ID + "/"
	require.NoError(t, store.CreateStream(t.Context(), b.pool, &s))
	wk := b.startWorker(t)
	t.Cleanup(func() {
		if t.Failed() {
			var jobs string
			_ = b.pool.QueryRow(context.Background(), `SELECT string_agg(kind || ' ' || state || ', attempt ' || attempt || ': ' || coalesce(errors::text, ''), E'\n')
				FROM river_job WHERE kind IN ('purge', 'seal')`).Scan(&jobs)
			t.Logf("the purge and seal jobs:\n%s\nthe worker's log:\n%s", jobs, wk.stderr.String())
		}
	})
	ingest := startIngest(t, b.api, writeKey, 2)
	require.Eventually(t, func() bool { return ingest.count(http.StatusCreated) >= 10 }, 30*time.Second, 10*time.Millisecond)
	// 1,000 parts of 100: the export is still running when the database
	// goes (the test fails otherwise).
	id := b.createExport(t, `{"since":"2026-04-01","until":"2026-05-01","format":"jsonl","destination":{"name":"local"},"part_max_records":100}`)
	require.Eventually(t, func() bool { return b.status(t, id).Progress.PartsWritten >= 3 }, time.Minute, 5*time.Millisecond)
	partsBefore := b.status(t, id).Progress.PartsWritten
	purgeID := b.createPurge(t, adminKey, "2026-04-01")
	require.Eventually(t, func() bool { return b.purge(t, purgeID).Deleted >= 5000 }, time.Minute, 2*time.Millisecond)
	purgeBefore := b.purge(t, purgeID)
	require.Equal(t, audex.PurgeRunning, purgeBefore.Status)
	require.Less(t, purgeBefore.Deleted, int64(purged), "the purge is part-way when the database goes")

	server.Stop(t)
	stoppedAt := time.Now()
	require.Eventually(t, func() bool { return ingest.count(http.StatusServiceUnavailable) >= 10 }, 20*time.Second, 10*time.Millisecond,
		"the API answers 503 while the database is down")
	time.Sleep(time.Until(stoppedAt.Add(3 * time.Second)))
	ackedWhileDown := ingest.count(http.StatusCreated)
	server.Start(t)
	restartedAt := time.Now()

	require.Eventually(t, func() bool { return ingest.count(http.StatusCreated) >= ackedWhileDown+20 }, 30*time.Second, 10*time.Millisecond,
		"ingest recovers by itself")
	t.Logf("ingest recovered %s after the restart", time.Since(restartedAt).Round(time.Millisecond))
	ingest.halt()

	ingest.mu.Lock()
	statuses, codes, bodies, acked := ingest.statuses, ingest.codes, ingest.bodies, ingest.acked
	ingest.mu.Unlock()
	t.Logf("answers by status: %v; error codes: %v", statuses, codes)
	for status := range statuses {
		require.Contains(t, []int{http.StatusCreated, http.StatusServiceUnavailable}, status, "only 201 or 503: %v", bodies)
	}
	require.Equal(t, statuses[http.StatusServiceUnavailable], codes["unavailable"], "every 503 has the code unavailable")

	var stored, distinct int
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*), count(DISTINCT id) FROM events WHERE tenant_id = $1 AND id = ANY($2)`,
		b.tenant, acked).Scan(&stored, &distinct))
	require.Equal(t, len(acked), stored, "every acknowledged event is stored")
	require.Equal(t, len(acked), distinct, "and once")

	// 1,000 parts in attempts of a second (each one its barrier and the
	// manifest's log again) take about two minutes on a busy two-core
	// machine: the bound is for a hang, not a speed.
	e := b.waitCompleted(t, id, 4*time.Minute)
	require.Greater(t, e.Progress.PartsWritten, partsBefore)
	b.requireExact(t, e, "occurred_at >= '2026-04-01Z' AND occurred_at < '2026-05-01Z'")

	var p audex.Purge
	require.Eventually(t, func() bool { p = b.purge(t, purgeID); return p.Finished() }, 2*time.Minute, 50*time.Millisecond)
	t.Logf("the purge had deleted %d of %d events when the database stopped", purgeBefore.Deleted, purged)
	if p.Error != nil {
		t.Logf("purge error: %s", *p.Error)
	}
	require.Equal(t, audex.PurgeCompleted, p.Status)
	require.EqualValues(t, purged, p.Deleted, "the resumed purge counts every event once")
	var march, april int
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FILTER (WHERE occurred_at < '2026-04-01Z'),
		count(*) FILTER (WHERE occurred_at >= '2026-04-01Z' AND occurred_at < '2026-05-01Z') FROM events WHERE tenant_id = $1`,
		b.tenant).Scan(&march, &april))
	require.Zero(t, march, "nothing before the cut-off is left")
	require.Equal(t, 100_000, april, "nothing after it is touched")

	// The stream holds every stored event of the ingest clients, once.
	rows, err := b.pool.Query(t.Context(), `SELECT id FROM events WHERE tenant_id = $1 AND actor_id = 'u1'`, b.tenant)
	require.NoError(t, err)
	live, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st, err := store.GetStreamByID(t.Context(), b.pool, s.ID)
		require.NoError(t, err)
		return st.EventsDelivered >= int64(len(live))
	}, time.Minute, 50*time.Millisecond, "the stream catches up")
	delivered, _ := b.streamedIDs(t, s, b.folderSink(t))
	require.ElementsMatch(t, live, delivered, "every stored event once")
}

func ptr[T any](v T) *T { return &v }

// createPurge starts a purge of the tenant's events before before and
// returns its id.
func (b *processBundle) createPurge(t *testing.T, key, before string) string {
	t.Helper()
	var created struct {
		PurgeID string `json:"purge_id"`
	}
	b.postAccepted(t, key, "/v1/audit/purge", `{"before":"`+before+`"}`, &created)
	return created.PurgeID
}

// purge reads a purge's status from the database.
func (b *processBundle) purge(t *testing.T, id string) audex.Purge {
	t.Helper()
	p, err := store.GetPurge(t.Context(), b.pool, b.tenant, id)
	require.NoError(t, err)
	return p
}
