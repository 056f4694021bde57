package client_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex/client"
	"github.com/audex-dev/audex/internal/servertest"
	"github.com/audex-dev/audex/internal/storetest"
)

// TestReadReplica runs the api and the worker on a private primary with a
// streaming replica of it (pg_basebackup -R) as their read database:
// lists say the replica served them, and exports and downloads taken
// while events arrive hold exactly the events acknowledged before their
// barrier, with the replica up (and 300 ms behind), stopped part-way and
// back.
func TestReadReplica(t *testing.T) {
	t.Parallel()
	primary := storetest.NewServer(t)
	// The replica applies each commit 300 ms late, as a busy or distant
	// one would: exports and downloads must wait for it.
	standby := primary.NewStandby(t, "recovery_min_apply_delay = '300ms'")
	srv := servertest.StartOn(t, primary.URL, "AUDEX_READ_DATABASE_URL="+standby.URL, "AUDEX_READ_MAX_LAG=3s")
	c, err := client.New(srv.URL, srv.Key, client.WithRetries(8, 50*time.Millisecond))
	require.NoError(t, err)
	ctx := t.Context()
	start := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)

	// Ingest runs in the background through every step: batches of 100
	// events inside the window the exports read.
	stopIngest := make(chan struct{})
	var batches atomic.Int64
	var ingestWG sync.WaitGroup
	ingestWG.Add(1)
	go func() {
		defer ingestWG.Done()
		for batch := 0; ; batch++ {
			select {
			case <-stopIngest:
				return
			default:
			}
			events := make([]client.NewEvent, 100)
			for i := range events {
				events[i] = client.NewEvent{ID: fmt.Sprintf("b%05d-%03d", batch, i), OccurredAt: start.Add(time.Duration(batch*100+i) * time.Millisecond),
					Action: "doc.read", Actor: client.Actor{ID: "u1"}}
			}
			if _, err := c.Events.Ingest(ctx, events); err != nil {
				t.Errorf("ingest: %v", err)
				return
			}
			batches.Add(1)
		}
	}()
	defer func() { close(stopIngest); ingestWG.Wait() }()

	listLag := func() (string, bool) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/audit/events?limit=5", nil)
		req.Header.Set("Authorization", "Bearer "+srv.Key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		lag := resp.Header.Get("Audex-Replica-Lag")
		return lag, lag != ""
	}
	waitList := func(fromReplica bool) {
		t.Helper()
		require.Eventually(t, func() bool { _, ok := listLag(); return ok == fromReplica }, 20*time.Second, 50*time.Millisecond,
			"lists served by the replica: want %v", fromReplica)
	}

	// exact exports the window, once more batches have been ingested
	// since the last, and checks that its parts hold each event
	// received before the export's as_of once, and no other.
	exact := func(step string) {
		t.Helper()
		from := batches.Load()
		require.Eventually(t, func() bool { return batches.Load() >= from+5 }, 20*time.Second, 10*time.Millisecond, "ingest stalled")
		created, err := c.Exports.Create(ctx, client.ExportRequest{Since: start, Until: start.Add(time.Hour), Format: "jsonl", Destination: "local", PartMaxRecords: 2000})
		require.NoError(t, err)
		done, err := c.Exports.Wait(ctx, created.ID, client.WaitOptions{})
		require.NoError(t, err, step)
		require.Equal(t, "completed", done.Status, "%s: %+v", step, done.Error)
		var got []string
		for _, f := range done.Files {
			file, err := os.Open(filepath.Join(srv.Folder, f.Key))
			require.NoError(t, err)
			lines := bufio.NewScanner(file)
			lines.Buffer(nil, 1<<20)
			for lines.Scan() {
				var e struct {
					ID string `json:"id"`
				}
				require.NoError(t, json.Unmarshal(lines.Bytes(), &e))
				got = append(got, e.ID)
			}
			require.NoError(t, lines.Err())
			file.Close()
		}
		rows, err := srv.Pool.Query(ctx, `SELECT id FROM events WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 AND received_at < $4
			ORDER BY occurred_at, id`, srv.Tenant, start, start.Add(time.Hour), done.AsOf)
		require.NoError(t, err)
		var want []string
		for rows.Next() {
			var id string
			require.NoError(t, rows.Scan(&id))
			want = append(want, id)
		}
		require.NoError(t, rows.Err())
		require.NotEmpty(t, want, step)
		require.Equal(t, len(want), len(got), "%s: the export holds %d events, %d were acknowledged before its as_of", step, len(got), len(want))
		require.True(t, slices.Equal(want, got), "%s: the export's events differ from those acknowledged before its as_of", step)

		// A download holds every event acknowledged before it was asked
		// for, each once.
		acked := batches.Load()
		body, err := c.Events.Download(ctx, client.DownloadRequest{Format: "ndjson", Since: start, Until: start.Add(time.Hour)})
		require.NoError(t, err)
		defer body.Close()
		seen := map[string]bool{}
		lines := bufio.NewScanner(body)
		lines.Buffer(nil, 1<<20)
		for lines.Scan() {
			var e struct {
				ID string `json:"id"`
			}
			require.NoError(t, json.Unmarshal(lines.Bytes(), &e))
			require.False(t, seen[e.ID], "%s: the download holds %s twice", step, e.ID)
			seen[e.ID] = true
		}
		require.NoError(t, lines.Err())
		for batch := range acked {
			for i := range 100 {
				id := fmt.Sprintf("b%05d-%03d", batch, i)
				require.True(t, seen[id], "%s: the download misses %s, acknowledged before it", step, id)
			}
		}
	}

	waitList(true)
	exact("replica up")
	require.Contains(t, srv.WorkerLog.String(), `"msg":"events_read_from_replica"`, "the export did not read from the replica")

	standby.Stop(t)
	waitList(false)
	exact("replica stopped")

	standby.Start(t)
	waitList(true)
	exact("replica back")

	// The api's metrics say what happened: the replica usable again, and
	// reads that the primary served while it was down.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var usable, fallbacks float64
	metrics := bufio.NewScanner(resp.Body)
	for metrics.Scan() {
		line := metrics.Text()
		var v float64
		switch {
		case strings.HasPrefix(line, "audex_read_replica_usable{"):
			_, err = fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &v)
			usable += v
		case strings.HasPrefix(line, "audex_read_primary_fallbacks_total{"):
			_, err = fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &v)
			fallbacks += v
		}
		require.NoError(t, err, line)
	}
	require.Equal(t, 1.0, usable, "audex_read_replica_usable")
	require.Positive(t, fallbacks, "audex_read_primary_fallbacks_total")
}
