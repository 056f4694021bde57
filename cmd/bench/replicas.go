package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/client"
	"github.com/audex-dev/audex/internal/pgserver"
	"github.com/audex-dev/audex/internal/store"
)

// The replicas phase: a streaming replica of the benchmark's database
// server (pg_basebackup -R, started as a hot standby), a second api
// process that reads from it, and the same reads through both apis.

// replicaListSeconds is how long each api serves the list load.
const replicaListSeconds = 10

// replicaListClients is how many clients send list requests at once.
const replicaListClients = 4

// replicaWaits is how many barrier waits the phase times.
const replicaWaits = 50

// replicaResult is what the replicas phase measured.
type replicaResult struct {
	skipped              string // why the phase did not run; "" when it did
	backupTime           time.Duration
	lists                [2]listLoad // primary, replica
	downloads            [2]rate
	waitsIdle, waitsBusy []time.Duration
	replicaServed        bool // the replica api's lists carried Audex-Replica-Lag
}

// listLoad is the outcome of replicaListClients clients sending list
// requests for replicaListSeconds.
type listLoad struct {
	requests  int
	latencies []time.Duration
	elapsed   time.Duration
}

// startStandby makes a base backup of the benchmark's server and starts
// it as a hot standby on a free port of 127.0.0.1.
func (b *bench) startStandby(ctx context.Context) (*pgserver.Server, error) {
	out, err := exec.CommandContext(ctx, "scripts/postgres.sh", "--bindir").Output()
	if err != nil {
		return nil, fmt.Errorf("scripts/postgres.sh --bindir: %w", err)
	}
	s, err := pgserver.Standby(strings.TrimSpace(string(out)), b.cfg.databaseURL)
	if err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		s.Remove()
		return nil, err
	}
	return s, nil
}

// replicas runs the phase: list load and a download through the api on
// the primary and through an api reading from a standby, and the time an
// export's read waits for the standby after its barrier, idle and under
// ingest.
func (b *bench) replicas(ctx context.Context, svc *services, readKey, exportKey string, win window) (replicaResult, error) {
	var res replicaResult
	start := time.Now()
	sb, err := b.startStandby(ctx)
	if err != nil {
		// A server that takes no replication connections (no
		// "replication" line in pg_hba.conf) cannot be measured here.
		res.skipped = err.Error()
		b.logger.Warn("replicas_skipped", slog.String("reason", res.skipped))
		return res, nil
	}
	defer sb.Remove()
	res.backupTime = time.Since(start)
	// The benchmark's database and user, on the standby.
	u, _ := url.Parse(b.cfg.databaseURL)
	standby, _ := url.Parse(sb.URL)
	standby.User, standby.Path = u.User, u.Path
	standbyURL := standby.String()

	apiEnv := append(serviceEnv(b.cfg.databaseURL, svc.configPath, "bench-api-replica"), "AUDEX_LISTEN=127.0.0.1:0", "AUDEX_READ_DATABASE_URL="+standbyURL)
	api2, ready, err := b.startProcess(ctx, "api-replica", filepath.Join(svc.dir, "bin", "api"), apiEnv, "api_listening")
	if api2 != nil {
		defer api2.stop()
	}
	if err != nil {
		return res, err
	}
	addr, _ := ready["addr"].(string)
	onReplica := *svc
	onReplica.api, onReplica.apiURL = api2, "http://"+addr

	for i, s := range []*services{svc, &onReplica} {
		b.logger.Info("list_load", slog.String("api", s.apiURL))
		load, lagged, err := b.listLoad(ctx, s.apiURL, readKey, win)
		if err != nil {
			return res, err
		}
		res.lists[i] = load
		if i == 1 {
			res.replicaServed = lagged
		}
		if res.downloads[i], err = b.downloadHTTP(ctx, s, exportKey, win, "ndjson", false); err != nil {
			return res, err
		}
	}

	// The wait of an export's read for the standby after its barrier
	// (store.Reads.ReaderAfter), idle and while events are ingested.
	pool, err := store.Open(ctx, b.cfg.databaseURL)
	if err != nil {
		return res, err
	}
	defer pool.Close()
	reads, err := store.OpenReads(ctx, pool, []string{standbyURL}, 10*time.Second, b.logger)
	if err != nil {
		return res, err
	}
	defer reads.Close()
	if res.waitsIdle, err = replicaWaitTimes(ctx, reads); err != nil {
		return res, err
	}
	stopIngest := b.backgroundIngest(ctx, svc)
	res.waitsBusy, err = replicaWaitTimes(ctx, reads)
	stopIngest()
	return res, err
}

// replicaWaitTimes times replicaWaits calls of ReaderAfter, 100 ms apart.
func replicaWaitTimes(ctx context.Context, reads *store.Reads) ([]time.Duration, error) {
	var waits []time.Duration
	for range replicaWaits {
		_, src, err := reads.ReaderAfter(ctx)
		if err != nil {
			return nil, err
		}
		if src.Replica == "" {
			return nil, fmt.Errorf("the standby did not serve a read after the barrier (fallbacks %v)", reads.Fallbacks())
		}
		waits = append(waits, src.Waited)
		time.Sleep(100 * time.Millisecond)
	}
	return waits, nil
}

// backgroundIngest ingests batches of 100 events through the api into a
// tenant of its own until stop is called.
func (b *bench) backgroundIngest(ctx context.Context, svc *services) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		key, err := b.newKey(ctx, "bench_replica_ingest", audex.ScopeWrite)
		if err != nil {
			return
		}
		api := svc.client(key)
		for n := 0; ctx.Err() == nil; n++ {
			batch := make([]client.NewEvent, 100)
			for i := range batch {
				batch[i] = client.NewEvent{OccurredAt: time.Now(), Action: "bench.replica", Actor: client.Actor{ID: "u"}}
			}
			_, _ = api.Events.Ingest(ctx, batch)
		}
	}()
	return func() { cancel(); <-done }
}

// listLoad sends first-page list requests of the window (no filter, and
// by action) from replicaListClients clients for replicaListSeconds, and
// says whether the responses carried Audex-Replica-Lag.
func (b *bench) listLoad(ctx context.Context, apiURL, key string, win window) (listLoad, bool, error) {
	paths := []string{
		fmt.Sprintf("/v1/audit/events?since=%s&until=%s", win.since.Format(time.RFC3339), win.until.Format(time.RFC3339)),
		"/v1/audit/events?action=user.login",
		"/v1/audit/events?limit=20&order=asc",
	}
	var mu sync.Mutex
	var load listLoad
	var lagged bool
	var firstErr error
	deadline := time.Now().Add(replicaListSeconds * time.Second)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range replicaListClients {
		wg.Go(func() {
			for n := c; time.Now().Before(deadline); n++ {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, apiURL+paths[n%len(paths)], nil)
				req.Header.Set("Authorization", "Bearer "+key)
				t := time.Now()
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("GET %s: %s", paths[n%len(paths)], resp.Status)
					}
				}
				took := time.Since(t)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					load.requests++
					load.latencies = append(load.latencies, took)
					lagged = lagged || resp.Header.Get("Audex-Replica-Lag") != ""
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	load.elapsed = time.Since(start)
	return load, lagged, firstErr
}

func (b *bench) printReplicas(res replicaResult) {
	b.printf("\n## Reads from a streaming replica\n\n")
	if res.skipped != "" {
		b.printf("Not measured: a standby of the benchmark's server could not be made (%s). A server whose `pg_hba.conf` allows replication connections from 127.0.0.1 (a private cluster of `scripts/postgres.sh --private` does) can be measured.\n", res.skipped)
		return
	}
	b.printf("A base backup of the benchmark's server (`pg_basebackup -R`, %.0f s), started as a hot standby on the same machine, and a second api process with it as `AUDEX_READ_DATABASE_URL`. Each api serves %d clients sending first pages of lists (the month, by action, 20 oldest) for %d s, then one NDJSON download of the month. On two cores the standby, the primary and both apis share the CPUs: the figures say what reading from a replica costs, not how far replicas on machines of their own go.\n\n",
		res.backupTime.Seconds(), replicaListClients, replicaListSeconds)
	b.printf("| api reads from | list requests/s | list p50 ms | list p99 ms | NDJSON download events/s |\n|---|---:|---:|---:|---:|\n")
	for i, name := range []string{"the primary", "the standby"} {
		l := res.lists[i]
		b.printf("| %s | %.0f | %s | %s | %s |\n", name, float64(l.requests)/l.elapsed.Seconds(), ms(percentile(l.latencies, 0.5)), ms(percentile(l.latencies, 0.99)),
			thousands(int64(res.downloads[i].perSecond())))
	}
	if !res.replicaServed {
		b.printf("\nThe standby's api answered without `Audex-Replica-Lag`: the primary served its lists.\n")
	}
	b.printf("\nThe wait of an export's read for the standby after its barrier (`store.Reads.ReaderAfter`, %d times 100 ms apart): idle p50 %s ms, p99 %s ms; while events are ingested through the api, p50 %s ms, p99 %s ms.\n",
		replicaWaits, ms(percentile(res.waitsIdle, 0.5)), ms(percentile(res.waitsIdle, 0.99)), ms(percentile(res.waitsBusy, 0.5)), ms(percentile(res.waitsBusy, 0.99)))
}
