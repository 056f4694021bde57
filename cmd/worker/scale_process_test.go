package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/logtest"
	"github.com/audex-dev/audex/internal/servertest"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

// startAPI starts an api process on the bundle's database and
// configuration and returns its base URL.
func (b *processBundle) startAPI(t *testing.T) string {
	t.Helper()
	log := &logtest.Buffer{}
	cmd := exec.Command(filepath.Join(servertest.Binaries(t), "api"))
	cmd.Env = append(append(os.Environ(), "DATABASE_URL="+b.dbURL, "AUDEX_CONFIG="+b.config, "AUDEX_LOG_KEY="+b.logKey,
		"AUDEX_LISTEN=127.0.0.1:0"), b.env...)
	cmd.Stderr = log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	require.Eventually(t, func() bool { return log.ListenAddr("api_listening") != "" }, 20*time.Second, 20*time.Millisecond, "%s", log)
	return "http://" + log.ListenAddr("api_listening")
}

// call sends a JSON request to an api with key and decodes a 2xx answer
// into out (nil: none); it returns the status.
func call(t *testing.T, method, url, key string, body, out any) int {
	t.Helper()
	var data []byte
	if body != nil {
		var err error
		data, err = json.Marshal(body)
		require.NoError(t, err)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(data))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	if out != nil && res.StatusCode/100 == 2 {
		require.NoError(t, json.NewDecoder(res.Body).Decode(out))
	}
	return res.StatusCode
}

// TestManyProcessesOnAPrimaryAndAReplica runs three api and three worker
// processes on one private primary, with a streaming replica of it
// (pg_basebackup -R, applying commits 100 ms late) as their read
// database. Under ingest through every api, three exports, a stream and a
// purge run; part-way one worker is killed and the replica stopped, then
// started again. Every export and the stream must be exact, and the
// purge complete.
//
// It is not parallel: its eight processes and two servers would slow the
// timing-sensitive process tests of this package beside it.
func TestManyProcessesOnAPrimaryAndAReplica(t *testing.T) {
	primary := storetest.NewServer(t)
	standby := primary.NewStandby(t, "recovery_min_apply_delay = '100ms'")
	b := setupProcessesOn(t, primary.URL)
	b.writeConfig(t, shortTimings+"  min_part_max_records: 1\n")
	b.env = []string{"AUDEX_READ_DATABASE_URL=" + standby.URL, "AUDEX_READ_MAX_LAG=3s", "AUDEX_STREAM_MIN_INTERVAL=1s", "AUDEX_SEAL_INTERVAL=1s"}
	key := storetest.NewKey(t, b.pool, b.tenant, audex.ScopeRead, audex.ScopeWrite, audex.ScopeExport, audex.ScopeAdmin)
	var apis []string
	for range 3 {
		apis = append(apis, b.startAPI(t))
	}
	workers := []*worker{b.startWorker(t), b.startWorker(t), b.startWorker(t)}

	// Old events, for the purge.
	b.seedMonth(t, time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), "old", 3000)

	var stream struct {
		ID string `json:"stream_id"`
	}
	require.Equal(t, http.StatusCreated, call(t, "POST", apis[0]+"/v1/audit/streams", key,
		map[string]any{"destination": map[string]string{"name": "local"}, "format": "jsonl", "interval_seconds": 1}, &stream))

	// Ingest through each api in turn: batches of 50 in the last hour;
	// every acknowledged id is kept.
	window := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	stopIngest := backgroundIngest(20*time.Millisecond, func(n int) ([]string, bool) {
		batch := make([]map[string]any, 50)
		ids := make([]string, len(batch))
		for i := range batch {
			ids[i] = fmt.Sprintf("n%05d-%02d", n, i)
			batch[i] = map[string]any{"id": ids[i], "occurred_at": window.Add(time.Duration(n*50+i) * time.Millisecond),
				"action": "doc.read", "actor": map[string]string{"id": "u1"}}
		}
		return ids, call(t, "POST", apis[n%3]+"/v1/audit/events", key, map[string]any{"events": batch}, nil) == http.StatusCreated
	})
	defer stopIngest()
	time.Sleep(2 * time.Second)

	// Three exports of the window, one through each api, in small parts.
	var exports []string
	for i, api := range apis {
		var created struct {
			ID string `json:"export_id"`
		}
		require.Equal(t, http.StatusAccepted, call(t, "POST", api+"/v1/audit/exports", key, map[string]any{
			"since": window, "until": window.Add(2 * time.Hour), "format": "jsonl", "destination": map[string]string{"name": "local"},
			"part_max_records": 200 + 100*i}, &created))
		exports = append(exports, created.ID)
	}
	var purge struct {
		ID string `json:"purge_id"`
	}
	require.Equal(t, http.StatusAccepted, call(t, "POST", apis[2]+"/v1/audit/purge", key, map[string]any{"before": "2026-05-01"}, &purge))

	// Part-way: the worker that runs the first export dies (its lease
	// owner names its process), and the replica stops, for a while.
	var victim int
	require.Eventually(t, func() bool {
		owner := b.leaseOwner(t, exports[0])
		for i, w := range workers {
			if owner != "" && b.status(t, exports[0]).Progress.PartsWritten > 0 && strings.Contains(owner, fmt.Sprintf(":%d:", w.cmd.Process.Pid)) {
				victim = i
				return true
			}
		}
		return false
	}, 30*time.Second, 10*time.Millisecond, "the first export runs and has written a part")
	workers[victim].kill(t)
	standby.Stop(t)
	time.Sleep(2 * time.Second)
	standby.Start(t)

	// An export whose leaves range around the old events completes once
	// the purge has recorded deleting them (its manifest waits for the
	// purge, which waits for the stream): the bound catches a hang only.
	for _, id := range exports {
		e := b.waitCompleted(t, id, 4*time.Minute)
		b.requireExact(t, e, fmt.Sprintf("occurred_at >= '%s' AND occurred_at < '%s'", window.Format(time.RFC3339Nano), window.Add(2*time.Hour).Format(time.RFC3339Nano)))
	}
	read := false
	for _, w := range workers {
		read = read || strings.Contains(w.stderr.String(), `"msg":"events_read_from_replica"`)
	}
	require.True(t, read, "no worker read events from the replica")

	// The purge waits, 5 s at a time, until the stream has delivered what
	// was received before it, and it may have been on the killed worker
	// (River rescues it); on a busy two-core machine it once took more
	// than a minute. The bounds below catch a hang only.
	var p audex.Purge
	require.Eventually(t, func() bool {
		return call(t, "GET", apis[1]+"/v1/audit/purges/"+purge.ID, key, nil, &p) == http.StatusOK && p.Status == "completed"
	}, 4*time.Minute, 50*time.Millisecond, "the purge completes")
	old, err := store.CountEventsBefore(t.Context(), b.pool, b.tenant, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	require.Zero(t, old, "events left before the purge's cut-off")

	// The stream: every acknowledged event once.
	want := stopIngest()
	s, err := store.GetStreamByID(t.Context(), b.pool, stream.ID)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		s, err = store.GetStreamByID(t.Context(), b.pool, stream.ID)
		require.NoError(t, err)
		return s.EventsDelivered >= int64(len(want))
	}, 4*time.Minute, 100*time.Millisecond, "the stream catches up")
	ids, _ := b.streamedIDs(t, s, b.folderSink(t))
	var delivered []string
	for _, id := range ids {
		if strings.HasPrefix(id, "n") {
			delivered = append(delivered, id)
		}
	}
	require.Len(t, delivered, len(want), "no ingested event doubled or lost in the stream")
	require.ElementsMatch(t, want, delivered)

	// Three workers sealed the integrity log, each second: no event is a
	// leaf twice.
	var doubled int
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM (SELECT event_id FROM log_leaves WHERE tenant_id = $1
		GROUP BY event_id HAVING count(*) > 1) d`, b.tenant).Scan(&doubled))
	require.Zero(t, doubled, "events sealed into the log twice")
}
