package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/client"
	"github.com/audex-dev/audex/internal/store"
)

// The load test (`make load`, `bench load`): concurrent ingest clients for
// a while through the real api and worker processes, with export jobs and
// a purge of the same tenant running meanwhile, then a check that every
// acknowledged event is stored exactly once and that the exports and the
// purge are exact.

// loadTenantName is the load test's tenant.
const loadTenantName = "load"

// loadSettings are the load test's LOAD_* settings, bounded so that a
// mistyped value cannot run for hours or open thousands of connections.
type loadSettings struct {
	duration time.Duration
	clients  int
	batch    int
	preload  int
	exports  int
}

func loadLoadSettings(getenv func(string) string) (loadSettings, error) {
	var s loadSettings
	var seconds int
	err := readInts(getenv, []intSetting{
		{"LOAD_SECONDS", &seconds, 60, 5, 600},
		{"LOAD_CLIENTS", &s.clients, 8, 1, 64},
		{"LOAD_BATCH", &s.batch, 100, 1, 1000},
		{"LOAD_PRELOAD", &s.preload, 200_000, 10_000, 5_000_000},
		{"LOAD_EXPORTS", &s.exports, 6, 1, 100},
	})
	if err != nil {
		return s, err
	}
	s.duration = time.Duration(seconds) * time.Second
	return s, nil
}

// loadIngest is what the ingest clients did.
type loadIngest struct {
	mu        sync.Mutex
	latencies []time.Duration // of the requests answered 201
	acked     []string        // ids of the events acknowledged
	duplicate int             // events answered as duplicates (retries of a lost answer)
	statuses  map[int]int     // answers by status; 0: no answer
	samples   []string        // the first unexpected answers
	elapsed   time.Duration
}

// loadOutcome is the load test's result.
type loadOutcome struct {
	settings loadSettings
	ingest   *loadIngest
	exports  []audex.Export
	purge    audex.Purge
	dryRun   int64
	failures []string
}

// loadTest preloads the tenant's past events, starts the services, runs
// the ingest clients for the set time while it creates export jobs of the
// past days and one purge of the oldest days, waits for the jobs, checks
// everything and prints the report. Any failed check fails the command.
func (b *bench) loadTest(ctx context.Context, s loadSettings) error {
	out := loadOutcome{settings: s}
	end := time.Now().UTC().Truncate(time.Second)
	if _, err := b.loadTenant(ctx, loadTenantName, s.preload, 3000, end); err != nil {
		return err
	}
	if _, err := b.vacuumAnalyze(ctx); err != nil {
		return err
	}
	keys := map[string]string{}
	for _, scope := range []string{audex.ScopeWrite, audex.ScopeExport, audex.ScopeAdmin} {
		k, err := b.newKey(ctx, loadTenantName, scope)
		if err != nil {
			return err
		}
		keys[scope] = k
	}
	svc, err := b.startServices(ctx)
	defer svc.stop(ctx, b)
	if err != nil {
		return err
	}

	// The purge takes the oldest third of the preloaded days; the exports
	// read the days after it, which the purge does not touch, so both run
	// alongside the ingest rather than one waiting for the other.
	purgeBefore := end.AddDate(0, 0, -2*loadDays/3)
	admin, exporter := svc.client(keys[audex.ScopeAdmin]), svc.client(keys[audex.ScopeExport])
	if out.dryRun, err = admin.Purges.DryRun(ctx, purgeBefore); err != nil {
		return err
	}

	b.logger.Info("load_started", slog.Duration("for", s.duration), slog.Int("clients", s.clients), slog.Int("batch", s.batch))
	stop := make(chan struct{})
	ingestDone := make(chan *loadIngest, 1)
	go func() { ingestDone <- b.loadIngestClients(ctx, svc.apiURL, keys[audex.ScopeWrite], s, stop) }()

	var exportIDs []string
	every := s.duration / time.Duration(s.exports+1)
	for i := range s.exports {
		if !sleepCtx(ctx, every) {
			break
		}
		if i == s.exports/2 {
			if out.purge.ID, err = admin.Purges.Create(ctx, purgeBefore); err != nil {
				close(stop)
				return err
			}
		}
		created, err := exporter.Exports.Create(ctx, client.ExportRequest{
			Since: purgeBefore, Until: end, Format: []string{"jsonl", "csv"}[i%2], Destination: "local", PartMaxRecords: 20_000,
		})
		if err != nil {
			close(stop)
			return err
		}
		exportIDs = append(exportIDs, created.ID)
	}
	sleepCtx(ctx, every)
	close(stop)
	out.ingest = <-ingestDone
	b.logger.Info("load_ingest_stopped", slog.Int("acknowledged", len(out.ingest.acked)))

	for _, id := range exportIDs {
		e, err := waitExport(ctx, exporter, id, 100*time.Millisecond, 5*time.Minute, nil)
		if err != nil {
			return err
		}
		out.exports = append(out.exports, e)
	}
	if out.purge.ID != "" {
		if out.purge, err = waitPurge(ctx, admin, out.purge.ID, 5*time.Minute); err != nil {
			return err
		}
	}
	if err := b.checkLoadTest(ctx, svc, &out, purgeBefore, end); err != nil {
		return err
	}
	b.printLoadTest(out)
	if len(out.failures) > 0 {
		return fmt.Errorf("load: %d checks failed: %s", len(out.failures), strings.Join(out.failures, "; "))
	}
	return nil
}

// sleepCtx sleeps for d; false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// loadIngestClients runs s.clients clients, each posting batches of new
// events (with ids of its own, as a client that retries would send) one
// after the other until stop is closed. A batch that got no answer or a
// 429/503 is sent again as it was, after a pause, until it is answered
// 201: the server must store it once.
func (b *bench) loadIngestClients(ctx context.Context, apiURL, key string, s loadSettings, stop <-chan struct{}) *loadIngest {
	res := &loadIngest{statuses: map[int]int{}}
	var wg sync.WaitGroup
	start := time.Now()
	for c := range s.clients {
		wg.Go(func() {
			gen := newGenerator(b.cfg.seed, 3100+uint64(c), populationFor(s.preload))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				events := gen.batch(s.batch)
				for i := range events {
					events[i].ID = fmt.Sprintf("load-%02d-%07d-%04d", c, n, i)
				}
				body, _ := ingestBody(events)
				for attempt := 0; ctx.Err() == nil; attempt++ {
					if res.post(ctx, apiURL, key, body) {
						break
					}
					sleepCtx(ctx, 100*time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// post sends one batch and records the answer; true when it was stored.
func (r *loadIngest) post(ctx context.Context, apiURL, key string, body []byte) bool {
	started := time.Now()
	status, answer, err := postBody(ctx, apiHTTP, apiURL, key, body)
	if err != nil && ctx.Err() != nil {
		return true // the run is over
	}
	took := time.Since(started)
	var got client.IngestResult
	if status == http.StatusCreated {
		if err := json.Unmarshal(answer, &got); err != nil {
			status = -1 // a 201 that is not the documented answer
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses[status]++
	if status != http.StatusCreated {
		if len(r.samples) < 5 && status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable {
			r.samples = append(r.samples, fmt.Sprintf("%d %.200s", status, answer))
		}
		return false
	}
	r.latencies = append(r.latencies, took)
	r.acked = append(r.acked, got.IDs...)
	r.duplicate += got.Duplicates
	return true
}

// checkLoadTest checks the run: every acknowledged id stored exactly once; no
// event of the preload or the ingest lost except the purged ones; the
// purge deleted what its dry run counted; each export completed holding
// exactly the events of its range as of its as_of, each once.
func (b *bench) checkLoadTest(ctx context.Context, svc *services, out *loadOutcome, purgeBefore, end time.Time) error {
	fail := func(format string, args ...any) { out.failures = append(out.failures, fmt.Sprintf(format, args...)) }
	acked := out.ingest.acked
	var stored, distinct int
	if err := b.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT id) FROM events WHERE tenant_id = $1 AND id = ANY($2)`,
		loadTenantName, acked).Scan(&stored, &distinct); err != nil {
		return err
	}
	if stored != len(acked) || distinct != len(acked) {
		fail("%d events acknowledged, %d stored (%d distinct)", len(acked), stored, distinct)
	}
	if n := len(acked) - len(slices.Compact(slices.Sorted(slices.Values(acked)))); n != 0 {
		fail("%d ids acknowledged twice", n)
	}
	var ingested int
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE tenant_id = $1 AND id LIKE 'load-%'`, loadTenantName).Scan(&ingested); err != nil {
		return err
	}
	if ingested != len(acked) {
		// More would be batches stored whose answer never came back; the
		// clients sent those again and were told duplicates, so the
		// acknowledged ids still cover them.
		fail("%d ingested events stored, %d acknowledged", ingested, len(acked))
	}
	if out.purge.Status != audex.PurgeCompleted || out.purge.Deleted != out.dryRun {
		fail("purge %s %s deleted %d, its dry run counted %d", out.purge.ID, out.purge.Status, out.purge.Deleted, out.dryRun)
	}
	left, err := store.CountEventsBefore(ctx, b.pool, loadTenantName, purgeBefore)
	if err != nil {
		return err
	}
	if left != 0 {
		fail("%d events before the purge's cut-off left", left)
	}
	for _, e := range out.exports {
		if e.Status != audex.ExportCompleted {
			fail("export %s ended %s", e.ID, e.Status)
			continue
		}
		got, err := exportedIDs(svc.localFolder, e)
		if err != nil {
			return err
		}
		var want []string
		err = store.StreamEvents(ctx, b.pool, nil, loadTenantName, exportFilter(e), func(page []audex.Event) error {
			for _, ev := range page {
				want = append(want, ev.ID)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			fail("export %s (%s) holds %d events, the range %d", e.ID, e.Format, len(got), len(want))
		}
	}
	return nil
}

// exportFilter selects what an export without filters holds: the events
// of its range received before its as_of.
func exportFilter(e audex.Export) audex.Filter {
	return audex.Filter{Since: &e.Since, Until: &e.Until, ReceivedBefore: &e.AsOf}
}

// printLoadTest prints the report as markdown.
func (b *bench) printLoadTest(out loadOutcome) {
	s, in := out.settings, out.ingest
	b.printf("\n## Load: %d ingest clients for %s beside %d exports and a purge\n\n", s.clients, s.duration, s.exports)
	b.printf("Tenant `%s`: %s events preloaded over %d days; each client posts %d new events per request, one request after the other, and sends a batch again as it was after a 429, a 503 or no answer.\n\n",
		loadTenantName, thousands(int64(s.preload)), loadDays, s.batch)
	b.printf("| ingest | value |\n|---|---:|\n")
	b.printf("| events acknowledged | %s |\n", thousands(int64(len(in.acked))))
	b.printf("| events/s | %s |\n", thousands(int64(float64(len(in.acked))/in.elapsed.Seconds())))
	b.printf("| requests answered 201 | %s |\n", thousands(int64(in.statuses[http.StatusCreated])))
	b.printf("| p50 / p99 / max of a 201, ms | %s / %s / %s |\n", ms(percentile(in.latencies, 0.50)), ms(percentile(in.latencies, 0.99)), ms(slices.Max(append(in.latencies, 0))))
	statuses := slices.Sorted(maps.Keys(in.statuses))
	var others []string
	for _, st := range statuses {
		if st != http.StatusCreated {
			others = append(others, fmt.Sprintf("%d: %d", st, in.statuses[st]))
		}
	}
	b.printf("| other answers (status: count; 0 = no answer) | %s |\n", orNone(strings.Join(others, ", ")))
	b.printf("| events answered as duplicates (a batch sent again) | %d |\n\n", in.duplicate)
	b.printf("| job | status | records | took |\n|---|---|---:|---:|\n")
	for _, e := range out.exports {
		took := time.Duration(0)
		if e.StartedAt != nil && e.CompletedAt != nil {
			took = e.CompletedAt.Sub(*e.StartedAt)
		}
		b.printf("| export %s (%s) | %s | %s | %.1f s |\n", e.ID, e.Format, e.Status, thousands(e.Progress.RecordsExported), took.Seconds())
	}
	took := time.Duration(0)
	if out.purge.StartedAt != nil && out.purge.CompletedAt != nil {
		took = out.purge.CompletedAt.Sub(*out.purge.StartedAt)
	}
	b.printf("| purge %s (dry run: %s) | %s | %s | %.1f s |\n\n", out.purge.ID, thousands(out.dryRun), out.purge.Status, thousands(out.purge.Deleted), took.Seconds())
	if len(out.failures) == 0 {
		b.printf("Checks: every acknowledged event stored exactly once; the purge deleted what its dry run counted and nothing before its cut-off is left; every export holds exactly the events of its range as of its `as_of`, each once, in order. **All held.**\n")
		return
	}
	b.printf("Checks **failed**:\n\n")
	for _, f := range out.failures {
		b.printf("- %s\n", f)
	}
	if len(in.samples) > 0 {
		b.printf("\nUnexpected answers (first %d): %s\n", len(in.samples), strings.Join(in.samples, "; "))
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// exportedIDs reads the ids of a completed export's parts in the local
// folder, in the order written: the "id" field of each JSONL line, or the
// "id" column of each CSV row.
func exportedIDs(folder string, e audex.Export) ([]string, error) {
	var ids []string
	err := readLocalParts(folder, e, func(_ audex.ExportFile, r io.Reader) error {
		if e.Format == "csv" {
			rows, err := csv.NewReader(r).ReadAll()
			if err != nil || len(rows) == 0 {
				return fmt.Errorf("not CSV with a header: %v", err)
			}
			col := slices.Index(rows[0], "id")
			if col < 0 {
				return errors.New("no id column")
			}
			for _, row := range rows[1:] {
				ids = append(ids, row[col])
			}
			return nil
		}
		for dec := json.NewDecoder(r); dec.More(); {
			var ev struct {
				ID string `json:"id"`
			}
			if err := dec.Decode(&ev); err != nil {
				return err
			}
			ids = append(ids, ev.ID)
		}
		return nil
	})
	return ids, err
}
