package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/api"
	"github.com/audex-dev/audex/internal/config"
	"github.com/audex-dev/audex/internal/integrity"
	"github.com/audex-dev/audex/internal/jobs"
	"github.com/audex-dev/audex/internal/logtest"
	"github.com/audex-dev/audex/internal/queue"
	"github.com/audex-dev/audex/internal/sinks/sinktest"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// workerBinary builds this command once per test run.
func workerBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "audex-worker-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "worker")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

// processBundle is an isolated database, an API to create exports, a
// local-folder destination and the configuration worker processes use.
type processBundle struct {
	pool   *pgxpool.Pool
	dbURL  string
	folder string
	config string
	api    string
	key    string
	tenant string
	// logKey signs the integrity log's checkpoints.
	logKey string
	// destinations are YAML entries of destinations that writeConfig
	// lists after the local one.
	destinations string
	// env adds NAME=value settings to the processes started later.
	env []string
}

func setupProcesses(t *testing.T) *processBundle {
	t.Helper()
	return setupProcessesOn(t, storetest.IsolatedDatabaseURL(t))
}

// setupProcessesOn is setupProcesses on the migrated database of dbURL.
func setupProcessesOn(t *testing.T, dbURL string) *processBundle {
	t.Helper()
	b := &processBundle{dbURL: dbURL, folder: t.TempDir(), tenant: storetest.NewTenant(t), logKey: storetest.LogKey(t)}
	var err error
	b.pool, err = store.Open(t.Context(), b.dbURL)
	require.NoError(t, err)
	t.Cleanup(b.pool.Close)
	b.config = filepath.Join(t.TempDir(), "audex.yaml")
	b.writeConfig(t, shortTimings)
	cfg, err := config.Load(func(k string) string { return map[string]string{"AUDEX_CONFIG": b.config}[k] })
	require.NoError(t, err)
	logger := slog.New(slog.DiscardHandler)
	insert, err := queue.NewInsertClient(b.pool, logger)
	require.NoError(t, err)
	secret, err := store.CursorSecret(t.Context(), b.pool)
	require.NoError(t, err)
	ts := httptest.NewServer(api.New(api.Config{Pool: b.pool, Logger: logger, CursorSecret: secret, River: insert, Destinations: cfg.Destinations}))
	t.Cleanup(ts.Close)
	b.api = ts.URL
	b.key = storetest.NewKey(t, b.pool, b.tenant, audex.ScopeExport, audex.ScopeRead)
	return b
}

// shortTimings are the export timings of the process tests: attempts of
// 1 s, leases of 2 s, the reaper every second.
const shortTimings = `
  attempt_window: 1s
  lease_ttl: 2s
  reaper_interval: 1s
`

// writeConfig writes the configuration that workers started later read:
// the local destination and b.destinations, and the exports section with timings (YAML lines
// of the section, or "" for the defaults).
func (b *processBundle) writeConfig(t *testing.T, timings string) {
	t.Helper()
	require.NoError(t, os.WriteFile(b.config, fmt.Appendf(nil, `
destinations:
  - name: local
    type: file
    bucket: %s
%s
exports:
  concurrency: 2
  running_per_tenant: 2
%s`, b.folder, b.destinations, timings), 0o600))
}

// seal seals every tenant's events into the integrity log with the
// workers' key, as the worker's seal job does.
func (b *processBundle) seal(t *testing.T) {
	t.Helper()
	keys, err := integrity.ParseKeys(b.logKey)
	require.NoError(t, err)
	_, err = store.SealAllLogs(t.Context(), b.pool, config.DefaultLogName, 500_000, keys.Sign)
	require.NoError(t, err)
}

// seed stores n events spread over April 2026, actions alternating.
func (b *processBundle) seed(t *testing.T, n int) {
	t.Helper()
	b.seedMonth(t, time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), "e", n)
}

// seedMonth stores n events with ids prefix0000000... spread over the 29
// days from start, actions alternating.
func (b *processBundle) seedMonth(t *testing.T, start time.Time, prefix string, n int) {
	t.Helper()
	for from := 0; from < n; from += 1000 {
		batch := make([]audex.Event, 0, 1000)
		for i := from; i < min(from+1000, n); i++ {
			batch = append(batch, audex.Event{
				ID: fmt.Sprintf("%s%07d", prefix, i), OccurredAt: start.Add(time.Duration(i*17%(29*86400)) * time.Second),
				Action: fmt.Sprintf("act.%d", i%20), Actor: audex.Actor{ID: "a"}, Metadata: []byte(`{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`),
			})
		}
		_, err := store.InsertEvents(t.Context(), b.pool, b.tenant, batch)
		require.NoError(t, err)
	}
}

// backgroundIngest calls send(0), send(1), ... every interval until the
// returned stop is called; send ingests batch n and returns its ids and
// whether it was acknowledged. stop returns every acknowledged id, in
// order.
func backgroundIngest(interval time.Duration, send func(n int) ([]string, bool)) (stop func() []string) {
	var mu sync.Mutex
	var ids []string
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for n := 0; ; n++ {
			select {
			case <-done:
				return
			case <-time.After(interval):
			}
			if batch, ok := send(n); ok {
				mu.Lock()
				ids = append(ids, batch...)
				mu.Unlock()
			}
		}
	}()
	var once sync.Once
	stop = func() []string {
		once.Do(func() { close(done); <-ended })
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), ids...)
	}
	return stop
}

// worker is a running worker process.
type worker struct {
	cmd    *exec.Cmd
	stderr *logtest.Buffer
}

func (b *processBundle) startWorker(t *testing.T) *worker {
	t.Helper()
	return b.startWorkerUnder(t)
}

// startWorkerUnder starts a worker process through the command wrapper
// (the worker's path is its last argument) and waits until it works.
func (b *processBundle) startWorkerUnder(t *testing.T, wrapper ...string) *worker {
	t.Helper()
	argv := append(wrapper, workerBinary(t))
	w := &worker{cmd: exec.Command(argv[0], argv[1:]...), stderr: &logtest.Buffer{}}
	w.cmd.Env = append(append(os.Environ(), "DATABASE_URL="+b.dbURL, "AUDEX_CONFIG="+b.config, "AUDEX_LOG_KEY="+b.logKey), b.env...)
	w.cmd.Stderr = w.stderr
	require.NoError(t, w.cmd.Start())
	t.Cleanup(func() { _ = w.cmd.Process.Kill(); _ = w.cmd.Wait() })
	require.Eventually(t, func() bool { return strings.Contains(w.stderr.String(), "worker_started") }, 20*time.Second, 20*time.Millisecond)
	return w
}

func (w *worker) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, w.cmd.Process.Signal(syscall.SIGKILL))
	_ = w.cmd.Wait()
}

// exportsCompleted counts the exports this process completed, from its log.
func (w *worker) exportsCompleted() int {
	return strings.Count(w.stderr.String(), `"msg":"export_completed"`)
}

func (b *processBundle) createExport(t *testing.T, body string) string {
	t.Helper()
	var created struct {
		ExportID string `json:"export_id"`
	}
	b.postAccepted(t, b.key, "/v1/audit/exports", body, &created)
	return created.ExportID
}

// postAccepted posts the JSON body to path with key, requires a 202 and
// decodes the answer into out.
func (b *processBundle) postAccepted(t *testing.T, key, path, body string, out any) {
	t.Helper()
	req, _ := http.NewRequest("POST", b.api+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	require.Equal(t, http.StatusAccepted, res.StatusCode, "%s", data)
	require.NoError(t, json.Unmarshal(data, out))
}

func (b *processBundle) status(t *testing.T, id string) audex.Export {
	t.Helper()
	e, err := store.GetExport(t.Context(), b.pool, b.tenant, id)
	require.NoError(t, err)
	return e
}

func (b *processBundle) waitCompleted(t *testing.T, id string, within time.Duration) audex.Export {
	t.Helper()
	var e audex.Export
	require.Eventually(t, func() bool {
		e = b.status(t, id)
		return e.Finished()
	}, within, 50*time.Millisecond)
	require.Equal(t, audex.ExportCompleted, e.Status, "error: %+v", e.Error)
	return e
}

// requireExact checks that the export's parts hold exactly the events the
// same selection returns from SQL, in order, that the folder holds
// nothing else of it but the manifest, its signature and its leaves, and
// that the signed manifest verifies against the integrity log.
func (b *processBundle) requireExact(t *testing.T, e audex.Export, where string) {
	t.Helper()
	rows, err := b.pool.Query(t.Context(), `SELECT id FROM events WHERE tenant_id = $1 AND received_at < $2 AND `+where+` ORDER BY occurred_at, id`, b.tenant, e.AsOf)
	require.NoError(t, err)
	var want []string
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		want = append(want, id)
	}
	require.NoError(t, rows.Err())
	var got []string
	for _, f := range e.Files {
		file, err := os.Open(filepath.Join(b.folder, filepath.FromSlash(f.Key)))
		require.NoError(t, err)
		sc := bufio.NewScanner(file)
		n := int64(0)
		for sc.Scan() {
			var ev audex.Event
			require.NoError(t, json.Unmarshal(sc.Bytes(), &ev))
			got = append(got, ev.ID)
			n++
		}
		file.Close()
		require.Equal(t, f.Records, n, f.Key)
	}
	require.Equal(t, len(want), len(got))
	require.Equal(t, want, got, "every event once, in order")
	entries, err := os.ReadDir(filepath.Join(b.folder, e.ID))
	require.NoError(t, err)
	var names []string
	for _, entry := range entries {
		if !strings.HasPrefix(entry.Name(), ".") { // a killed write's temporary file
			names = append(names, entry.Name())
		}
	}
	require.Len(t, names, len(e.Files)+3, "the recorded parts, the manifest, its signature and its leaves: %v", names)
	keys, err := integrity.ParseKeys(b.logKey)
	require.NoError(t, err)
	v := sinktest.CheckSignedManifest(t, b.folderSink(t), *e.ManifestKey, keys.VerifierKeys())
	require.Empty(t, v.Problems)
	require.EqualValues(t, len(want), v.Matched, "every record a leaf of the signed log")
}

// exportUpdates records, through a trigger, every update of an export row
// of the bundle's database.
type exportUpdates struct{ b *processBundle }

func (b *processBundle) recordExportUpdates(t *testing.T) exportUpdates {
	t.Helper()
	_, err := b.pool.Exec(t.Context(), `
		CREATE TABLE test_export_updates (
			at timestamptz NOT NULL DEFAULT clock_timestamp(),
			export_id text NOT NULL,
			lease_only boolean NOT NULL
		);
		CREATE FUNCTION test_note_export_update() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO test_export_updates (export_id, lease_only) VALUES (NEW.id,
				to_jsonb(NEW) - 'lease_owner' - 'lease_until' - 'attempts' = to_jsonb(OLD) - 'lease_owner' - 'lease_until' - 'attempts');
			RETURN NULL;
		END $$;
		CREATE TRIGGER test_note_export_update AFTER UPDATE ON exports FOR EACH ROW EXECUTE FUNCTION test_note_export_update();`)
	require.NoError(t, err)
	return exportUpdates{b}
}

// leaseOnly returns when each update of the export between from and to
// that changed nothing but its lease (and the attempt number taken with
// it) was made, in order.
func (u exportUpdates) leaseOnly(t *testing.T, id string, from, to time.Time) []time.Time {
	t.Helper()
	rows, err := u.b.pool.Query(t.Context(), `SELECT at FROM test_export_updates
		WHERE export_id = $1 AND lease_only AND at >= $2 AND at < $3 ORDER BY at`, id, from, to)
	require.NoError(t, err)
	at, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	require.NoError(t, err)
	return at
}

// leaseOwner returns the export's lease owner, "" when none.
func (b *processBundle) leaseOwner(t *testing.T, id string) string {
	t.Helper()
	var owner *string
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT lease_owner FROM exports WHERE id = $1`, id).Scan(&owner))
	if owner == nil {
		return ""
	}
	return *owner
}

func TestWorkerProcesses(t *testing.T) {
	t.Parallel()

	t.Run("KilledMidExportResumesAndIsExact", func(t *testing.T) {
		t.Parallel()
		b := setupProcesses(t)
		b.seed(t, 120_000)
		id := b.createExport(t, `{"since":"2026-04-01","until":"2026-05-01","format":"jsonl","destination":{"name":"local"},"part_max_records":1000}`)
		w := b.startWorker(t)
		for _, threshold := range []int{5, 40, 80} {
			require.Eventually(t, func() bool { return b.status(t, id).Progress.PartsWritten >= threshold },
				60*time.Second, 5*time.Millisecond, "reaching part %d", threshold)
			w.kill(t)
			killedAt, partsAtKill := time.Now(), b.status(t, id).Progress.PartsWritten
			w = b.startWorker(t)
			require.Eventually(t, func() bool {
				e := b.status(t, id)
				return e.Progress.PartsWritten > partsAtKill || e.Finished()
			}, 2*time.Minute, 20*time.Millisecond, "resumes within 2 minutes")
			t.Logf("killed at part %d; resumed after %s", partsAtKill, time.Since(killedAt).Round(time.Millisecond))
		}
		e := b.waitCompleted(t, id, 2*time.Minute)
		b.requireExact(t, e, "occurred_at >= '2026-04-01Z' AND occurred_at < '2026-05-01Z'")
	})

	t.Run("KilledMidExportWithTheDefaultTimingsResumesWithin20Seconds", func(t *testing.T) {
		t.Parallel()
		b := setupProcesses(t)
		b.writeConfig(t, "") // no attempt_window, lease_ttl or reaper_interval
		b.seed(t, 300_000)
		updates := b.recordExportUpdates(t)
		// An ingest under way holds the export at its as_of barrier, with
		// its lease taken: a quiet period longer than the lease's TTL.
		ingest := storetest.HoldIngest(t, b.pool, b.tenant)
		id := b.createExport(t, `{"since":"2026-04-01","until":"2026-05-01","format":"jsonl","destination":{"name":"local"},"part_max_records":20000}`)
		w := b.startWorker(t)
		var owner string
		require.Eventually(t, func() bool {
			owner = b.leaseOwner(t, id)
			return owner != ""
		}, 20*time.Second, 10*time.Millisecond, "the attempt takes the lease")
		quietFrom := time.Now()
		time.Sleep(jobs.DefaultExportTiming.LeaseTTL + time.Second)
		require.Equal(t, owner, b.leaseOwner(t, id), "the attempt keeps its lease past the TTL")
		quiet := updates.leaseOnly(t, id, quietFrom, time.Now())
		t.Logf("lease writes in a quiet period of %s: %d", time.Since(quietFrom).Round(time.Millisecond), len(quiet))
		require.LessOrEqual(t, len(quiet), int(time.Since(quietFrom)/time.Second), "at most one lease write a second")
		require.NoError(t, ingest.Commit(t.Context()))

		require.Eventually(t, func() bool { return b.status(t, id).Progress.PartsWritten >= 2 },
			60*time.Second, 5*time.Millisecond, "reaching part 2")
		w.kill(t)
		killedAt, atKill := time.Now(), b.status(t, id)
		require.False(t, atKill.Finished(), "killed mid-export")
		partsAtKill := atKill.Progress.PartsWritten
		w = b.startWorker(t)
		require.Eventually(t, func() bool {
			e := b.status(t, id)
			return e.Progress.PartsWritten > partsAtKill || e.Finished()
		}, 20*time.Second-time.Since(killedAt), 20*time.Millisecond, "resumes within 20 s of the kill")
		t.Logf("killed at part %d; resumed after %s", partsAtKill, time.Since(killedAt).Round(time.Millisecond))
		e := b.waitCompleted(t, id, 2*time.Minute)
		b.requireExact(t, e, "occurred_at >= '2026-04-01Z' AND occurred_at < '2026-05-01Z'")
		require.Contains(t, w.stderr.String(), `"msg":"export_resumed","export_id":"`+id+`"`, "the reaper resumed it")

		// Over the export's whole run, no 10 s hold more than 10 lease
		// writes (renewals, takes and releases of the lease).
		all := updates.leaseOnly(t, id, time.Time{}, time.Now())
		most := 0
		for i := range all {
			n := 0
			for _, at := range all[i:] {
				if at.Sub(all[i]) < 10*time.Second {
					n++
				}
			}
			most = max(most, n)
		}
		t.Logf("lease writes: %d in all, at most %d in 10 s", len(all), most)
		require.LessOrEqual(t, most, 10)
	})

	t.Run("TwoProcessesShareTwentyExportsAndEachIsExact", func(t *testing.T) {
		t.Parallel()
		b := setupProcesses(t)
		b.seed(t, 40_000)
		w1, w2 := b.startWorker(t), b.startWorker(t)
		ids := make([]string, 20)
		for i := range ids {
			ids[i] = b.createExport(t, fmt.Sprintf(`{"since":"2026-04-01","until":"2026-05-01","format":"jsonl","destination":{"name":"local"},"part_max_records":500,"filters":{"action":"act.%d"}}`, i))
		}
		for i, id := range ids {
			e := b.waitCompleted(t, id, 2*time.Minute)
			b.requireExact(t, e, fmt.Sprintf("occurred_at >= '2026-04-01Z' AND occurred_at < '2026-05-01Z' AND action = 'act.%d'", i))
		}
		// A worker logs export_completed after the completion commits,
		// which the loop above may see first: the last line can lag.
		require.Eventually(t, func() bool { return w1.exportsCompleted()+w2.exportsCompleted() >= 20 }, 30*time.Second, 10*time.Millisecond)
		require.Equal(t, 20, w1.exportsCompleted()+w2.exportsCompleted())
		require.Positive(t, w1.exportsCompleted(), "the first process did work")
		require.Positive(t, w2.exportsCompleted(), "the second process did work")
	})
}
