package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/client"
	"github.com/audex-dev/audex/internal/store"
)

// ingestSalt seeds the ingest phase's generator; every ingest path gets
// the same events from it.
const ingestSalt = 1000

// ingestPath is one way of writing the ingest phase's events, measured
// once per round.
type ingestPath struct {
	name string
	// measure writes the events once and returns how long that took and,
	// for paths made of requests or transactions, how long each took. It
	// prepares its input before starting the clock.
	measure   func(ctx context.Context) (time.Duration, []time.Duration, error)
	elapsed   []time.Duration // one per round
	latencies []time.Duration // over all rounds
	// walBytes and storedBytes are what the path's rounds wrote to the
	// WAL and added to the tables and indexes it writes, over all rounds.
	walBytes, storedBytes int64
}

// rate is the path's events per second in its median round, and in its
// slowest and fastest.
func (p *ingestPath) rate(events int) (median, lo, hi float64) {
	s := slices.Sorted(slices.Values(p.elapsed))
	r := func(d time.Duration) float64 { return float64(events) / d.Seconds() }
	return r(s[(len(s)-1)/2]), r(s[len(s)-1]), r(s[0])
}

// ingestResult is the ingest phase: HTTP, then the COPY baselines.
type ingestResult struct {
	events    int
	paths     []*ingestPath // [0] is HTTP, [1] the baseline: one COPY into events; [4] COPY into fourIndexTable
	encoding  time.Duration
	bodyBytes int
}

// ingestEvents returns the ingest phase's events: the same for every path,
// occurring over the last ten minutes, with server-style ids and
// received_at set to now for the paths that bypass the API.
func (b *bench) ingestEvents() []audex.Event {
	n := b.cfg.ingestEvents
	gen := newGenerator(b.cfg.seed, ingestSalt, populationFor(b.cfg.events))
	now := time.Now().UTC()
	tl := newTimeline(now.Add(-10*time.Minute), now, n)
	events := make([]audex.Event, n)
	for i := range events {
		events[i] = gen.next(tl.at(i))
		events[i].ReceivedAt = now
	}
	return events
}

// ingest measures POST /v1/audit/events with several concurrent clients,
// and COPY of the same events as baselines, each into a tenant of its
// own, in rounds that alternate the paths.
func (b *bench) ingest(ctx context.Context) (ingestResult, error) {
	events := b.ingestEvents()
	res := ingestResult{events: len(events)}
	key, err := b.newKey(ctx, ingestTenant, audex.ScopeWrite)
	if err != nil {
		return res, err
	}

	// Bodies are encoded before the clock starts: the figure is the
	// server's, not the client's JSON encoder's.
	start := time.Now()
	bodies, err := b.ingestBodies(events)
	if err != nil {
		return res, err
	}
	for _, body := range bodies {
		res.bodyBytes += len(body)
	}
	res.encoding = time.Since(start)

	// copyRows builds the COPY rows of the events for tenant, with fresh
	// server-style ids as the API would assign.
	copyRows := func(tenant string) [][]any {
		rows := make([][]any, len(events))
		for i := range events {
			events[i].ID = audex.NewID("evt")
			rows[i] = store.EventCopyRow(tenant, &events[i])
		}
		return rows
	}
	res.paths = []*ingestPath{
		{
			name: fmt.Sprintf("HTTP POST /v1/audit/events, %d clients, %d events per request", b.cfg.ingestClients, b.cfg.ingestBatch),
			measure: func(ctx context.Context) (time.Duration, []time.Duration, error) {
				b.waitQuiet(ctx)
				return runConcurrently(ctx, b.cfg.ingestClients, len(bodies), func(ctx context.Context, i int) error {
					return postEvents(ctx, b.client, b.baseURL, key, bodies[i], min(b.cfg.ingestBatch, len(events)-i*b.cfg.ingestBatch))
				})
			},
		},
		{
			name: "COPY into events (one COPY, one transaction): the baseline",
			measure: func(ctx context.Context) (time.Duration, []time.Duration, error) {
				rows := copyRows(copyTenant)
				b.waitQuiet(ctx)
				return b.copyOnce(ctx, rows, false)
			},
		},
		{
			name: "COPY into events + event_ids (one transaction)",
			measure: func(ctx context.Context) (time.Duration, []time.Duration, error) {
				rows := copyRows(copyBothTenant)
				b.waitQuiet(ctx)
				return b.copyOnce(ctx, rows, true)
			},
		},
		{
			name: fmt.Sprintf("COPY into events + event_ids, %d streams, %d events per transaction", b.cfg.ingestClients, b.cfg.ingestBatch),
			measure: func(ctx context.Context) (time.Duration, []time.Duration, error) {
				rows := copyRows(copyParallTenant)
				b.waitQuiet(ctx)
				return b.copyBatches(ctx, rows)
			},
		},
		{
			name: "COPY into a table with a primary key and three B-tree indexes (time, actor, action; one COPY, one transaction)",
			measure: func(ctx context.Context) (time.Duration, []time.Duration, error) {
				rows := copyRows(fourIndexTenant)
				b.waitQuiet(ctx)
				start := time.Now()
				_, err := b.pool.CopyFrom(ctx, pgx.Identifier{fourIndexTable}, store.EventCopyColumns, pgx.CopyFromRows(rows))
				return time.Since(start), nil, err
			},
		},
	}
	if err := b.createFourIndexTable(ctx); err != nil {
		return res, err
	}
	for round := range b.cfg.ingestRounds {
		for _, p := range res.paths {
			b.logger.Info("ingesting", slog.Int("round", round+1), slog.String("path", p.name), slog.Int("events", len(events)))
			wal, stored, err := b.writtenBytes(ctx)
			if err != nil {
				return res, err
			}
			elapsed, latencies, err := p.measure(ctx)
			if err != nil {
				return res, fmt.Errorf("ingest, %s: %w", p.name, err)
			}
			walAfter, storedAfter, err := b.writtenBytes(ctx)
			if err != nil {
				return res, err
			}
			p.elapsed = append(p.elapsed, elapsed)
			p.latencies = append(p.latencies, latencies...)
			p.walBytes += walAfter - wal
			p.storedBytes += storedAfter - stored
		}
	}
	return res, nil
}

// fourIndexTable is issue 20's ingest baseline: the columns of events in
// a plain table with a primary key and three B-tree indexes, the least a
// list by time, actor or action needs.
const fourIndexTable = "bench_four_indexes"

// createFourIndexTable (re)creates fourIndexTable, empty.
func (b *bench) createFourIndexTable(ctx context.Context) error {
	_, err := b.pool.Exec(ctx, `DROP TABLE IF EXISTS `+fourIndexTable+`;
		CREATE TABLE `+fourIndexTable+` (LIKE events INCLUDING DEFAULTS, PRIMARY KEY (tenant_id, id));
		CREATE INDEX ON `+fourIndexTable+` (tenant_id, occurred_at, id);
		CREATE INDEX ON `+fourIndexTable+` (tenant_id, actor_id, occurred_at, id);
		CREATE INDEX ON `+fourIndexTable+` (tenant_id, action, occurred_at, id)`)
	if err != nil {
		return fmt.Errorf("create %s: %w", fourIndexTable, err)
	}
	return nil
}

// writtenBytes returns the server's WAL position and the size of every
// table and index that ingest writes (the partitions of events with their
// indexes, event_ids, event_values, fourIndexTable), in bytes.
func (b *bench) writtenBytes(ctx context.Context) (wal, stored int64, err error) {
	err = b.pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint,
		(SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree('events'))::bigint
		+ pg_total_relation_size('event_ids') + pg_total_relation_size('event_values') + pg_total_relation_size($1)`, fourIndexTable).Scan(&wal, &stored)
	if err != nil {
		return 0, 0, fmt.Errorf("ingest: bytes written: %w", err)
	}
	return wal, stored, nil
}

// ingestBodies are the bodies of POST /v1/audit/events that carry events,
// BENCH_INGEST_BATCH a request.
func (b *bench) ingestBodies(events []audex.Event) ([][]byte, error) {
	var bodies [][]byte
	for lo := 0; lo < len(events); lo += b.cfg.ingestBatch {
		batch := events[lo:min(lo+b.cfg.ingestBatch, len(events))]
		sent := make([]client.NewEvent, len(batch))
		for i := range batch {
			sent[i] = newEvent(&batch[i])
		}
		body, err := ingestBody(sent)
		if err != nil {
			return nil, err
		}
		bodies = append(bodies, body)
	}
	return bodies, nil
}

// ingestBody is the body of POST /v1/audit/events that carries events.
func ingestBody(events []client.NewEvent) ([]byte, error) {
	body, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		return nil, fmt.Errorf("encode ingest body: %w", err)
	}
	return body, nil
}

// postEvents sends one ingest body, encoded beforehand so that the
// client's encoding is not timed (client.EventsService.Ingest encodes
// as it sends), to the API at baseURL and checks that all its events
// were stored.
func postEvents(ctx context.Context, hc *http.Client, baseURL, key string, body []byte, want int) error {
	status, answer, err := postBody(ctx, hc, baseURL, key, body)
	if err != nil {
		return err
	}
	if status != http.StatusCreated {
		return fmt.Errorf("POST: %d: %.300s", status, answer)
	}
	var got client.IngestResult
	if err := json.Unmarshal(answer, &got); err != nil || got.Accepted != want {
		return fmt.Errorf("POST: accepted %d of %d events (%v)", got.Accepted, want, err)
	}
	return nil
}

// postBody sends an encoded ingest body and returns the answer's status
// and body; an error when no answer came.
func postBody(ctx context.Context, hc *http.Client, baseURL, key string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/v1/audit/events", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("read answer: %w", err)
	}
	return resp.StatusCode, answer, nil
}

// copyOnce COPYs all rows into events and, withIDs, into event_ids, in
// one transaction.
func (b *bench) copyOnce(ctx context.Context, rows [][]any, withIDs bool) (time.Duration, []time.Duration, error) {
	start := time.Now()
	err := store.CopyEvents(ctx, b.pool, rows, withIDs)
	return time.Since(start), nil, err
}

// copyBatches COPYs the rows into events and event_ids with as many
// streams and as many rows per transaction as the HTTP clients use: the
// database's share of ingest, without HTTP, JSON and the dedupe.
func (b *bench) copyBatches(ctx context.Context, rows [][]any) (time.Duration, []time.Duration, error) {
	size := b.cfg.ingestBatch
	batches := (len(rows) + size - 1) / size
	return runConcurrently(ctx, b.cfg.ingestClients, batches, func(ctx context.Context, i int) error {
		return store.CopyEvents(ctx, b.pool, rows[i*size:min((i+1)*size, len(rows))], true)
	})
}

// runConcurrently runs do(i) for every i < jobs on workers goroutines and
// returns the elapsed time and the duration of each do. It stops at the
// first error.
func runConcurrently(ctx context.Context, workers, jobs int, do func(context.Context, int) error) (time.Duration, []time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var (
		mu        sync.Mutex
		latencies []time.Duration
		firstErr  error
		wg        sync.WaitGroup
	)
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t := time.Now()
				err := do(ctx, i)
				d := time.Since(t)
				mu.Lock()
				latencies = append(latencies, d)
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range jobs {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return elapsed, latencies, firstErr
}

func (b *bench) printIngest(res ingestResult) {
	base, _, _ := res.paths[1].rate(res.events)
	b.printf("\n## Ingest: %s events per round into empty tenants of the loaded database\n\n", thousands(int64(res.events)))
	b.printf("%d rounds; each round runs every path once, in this order, each into a tenant of its own. events/s is the median round's (slowest to fastest in brackets); latency is over every request (or transaction) of every round. ", b.cfg.ingestRounds)
	b.printf("The HTTP bodies (%.0f MiB of JSON, %d events each, no ids so the server assigns them) were encoded before timing (%.1f s, not counted); the COPY rows are the same events with server-style ids, built before timing too.\n\n",
		float64(res.bodyBytes)/(1<<20), b.cfg.ingestBatch, res.encoding.Seconds())
	b.printf("Per event, over all rounds: the WAL the server wrote while the path ran, and what the tables and indexes it writes grew by (the partitions of events with their indexes, event_ids and event_values; or the four-index table alone).\n\n")
	b.printf("| path | events/s (range) | p50 ms | p99 ms | ratio to COPY baseline | WAL bytes per event | table and index bytes per event |\n|---|---:|---:|---:|---:|---:|---:|\n")
	written := int64(res.events * b.cfg.ingestRounds)
	for _, p := range res.paths {
		median, lo, hi := p.rate(res.events)
		p50, p99 := "", ""
		if len(p.latencies) > 0 {
			p50, p99 = ms(percentile(p.latencies, 0.5)), ms(percentile(p.latencies, 0.99))
		}
		b.printf("| %s | %s (%s to %s) | %s | %s | %.2f | %s | %s |\n", p.name, thousands(int64(median)), thousands(int64(lo)), thousands(int64(hi)), p50, p99, median/base,
			thousands(p.walBytes/written), thousands(p.storedBytes/written))
	}
}

// printTargets says which targets of the issues the run met.
func (b *bench) printTargets(res results) {
	ingest := res.ingest
	httpRate, _, _ := ingest.paths[0].rate(ingest.events)
	copyRate, _, _ := ingest.paths[1].rate(ingest.events)
	parallelRate, _, _ := ingest.paths[3].rate(ingest.events)
	ratio := httpRate / copyRate
	b.printf("\n## Targets\n\n")
	b.printf("- ingest over HTTP at least %.1f of one raw COPY into events: %.2f, %s (%.2f of the %d-stream COPY into events + event_ids)\n",
		b.cfg.ingestTargetRx, ratio, verdict(ratio >= b.cfg.ingestTargetRx), httpRate/parallelRate, b.cfg.ingestClients)
	fourRate, _, _ := ingest.paths[4].rate(ingest.events)
	b.printf("- ingest over HTTP at least %.1f of COPY into a table with a primary key and three indexes (issue 20): %.2f (%s of %s events/s), %s\n",
		b.cfg.ingestTargetRx, httpRate/fourRate, thousands(int64(httpRate)), thousands(int64(fourRate)), verdict(httpRate/fourRate >= b.cfg.ingestTargetRx))
	for _, l := range []struct {
		when  string
		lists []listResult
	}{{"", res.lists}, {" right after the load, before VACUUM (ANALYZE)", res.freshLists},
		{" on a tenant ingested after the statistics (through the store)", res.missedLists}} {
		var slow []string
		for _, r := range l.lists {
			if r.p99 >= b.cfg.listTargetP99 {
				slow = append(slow, fmt.Sprintf("%s (%s ms)", r.shape.name, ms(r.p99)))
			}
		}
		b.printf("- list p99 under %s ms on every shape%s: %d of %d shapes, %s", ms(b.cfg.listTargetP99), l.when, len(l.lists)-len(slow), len(l.lists), verdict(len(slow) == 0))
		if len(slow) > 0 {
			b.printf("; over: %s", strings.Join(slow, ", "))
		}
		b.printf("\n")
	}
	if s := res.summary; s != nil {
		b.printf("- summary p50 under %s ms (no parameters: the last 30 days): %s ms, %s\n", ms(summaryTargetP50), ms(s.p50()), verdict(s.p50() < summaryTargetP50))
	}
	if d := res.download; d != nil {
		base, _ := d.rateOf("`COPY (SELECT row_to_json")
		if nd, ok := d.rateOf("POST /v1/audit/export, format=ndjson"); ok {
			rx := nd.perSecond() / base.perSecond()
			b.printf("- NDJSON download at least %.1f of the row_to_json COPY: %.2f (%s of %s events/s), %s\n",
				downloadTargetRx, rx, thousands(int64(nd.perSecond())), thousands(int64(base.perSecond())), verdict(rx >= downloadTargetRx))
		}
		var worst rate
		for _, r := range d.rates {
			if r.api.rssPeak > 0 && r.api.rssPeak-r.api.rssFrom > worst.api.rssPeak-worst.api.rssFrom {
				worst = r
			}
		}
		growth := worst.api.rssPeak - worst.api.rssFrom
		b.printf("- api RSS growth under %s MiB during a %s-event download: at most %s MiB (%s), %s\n",
			mib(downloadTargetRSS), thousands(d.win.events), mib(growth), worst.name, verdict(growth < downloadTargetRSS))
	}
	if e := res.exports; e != nil {
		if r, ok := e.localJSONL(); ok {
			rx := r.perSecond() / e.copyJSON.perSecond()
			b.printf("- JSONL export to the local folder at least %.1f of the row_to_json COPY: %.2f (%s of %s events/s), %s\n",
				exportTargetRx, rx, thousands(int64(r.perSecond())), thousands(int64(e.copyJSON.perSecond())), verdict(rx >= exportTargetRx))
			peak := int64(0)
			for _, run := range e.runs {
				peak = max(peak, run.worker.rssPeak)
			}
			b.printf("- worker peak RSS under %s MiB exporting %s events: at most %s MiB over the %d exports, %s\n",
				mib(exportTargetRSS), thousands(r.events), mib(peak), len(e.runs), verdict(peak < exportTargetRSS))
			if big := e.run5M; big != nil {
				flat := big.worker.rssPeak-r.worker.rssPeak < exportTargetFlat
				b.printf("- worker peak RSS flat (within %s MiB) from %s to %s events: %s → %s MiB, %s\n",
					mib(exportTargetFlat), thousands(r.events), thousands(big.events), mib(r.worker.rssPeak), mib(big.worker.rssPeak), verdict(flat && big.worker.rssPeak < exportTargetRSS))
			} else {
				b.printf("- worker peak RSS flat from 1,000,000 to 5,000,000 events: not measured (BENCH_EXPORT_5M=1 measures it)\n")
			}
		}
		p50 := percentile(e.toRunning, 0.5)
		b.printf("- export POST to running under %s ms (p50, idle worker): %s ms, %s\n", ms(exportTargetStart), ms(p50), verdict(p50 < exportTargetStart))
	}
	if s := res.streams; s != nil {
		var jsonl, big *backfillRun
		for i, r := range s.backfills {
			b.printf("- worker peak RSS under %s MiB during the %s backfill of %s events: %s MiB, %s\n",
				mib(exportTargetRSS), r.format, thousands(r.events), mib(r.worker.rssPeak), verdict(r.worker.rssPeak < exportTargetRSS))
			if r.tenant != bigTenant {
				big = &s.backfills[i]
				continue // COPY is of the big tenant's window
			}
			if r.format == "jsonl" {
				jsonl = &s.backfills[i]
			}
			rx := r.perSecond() / s.copyJSON.perSecond()
			b.printf("- stream backfill (%s, local folder) at least %.1f of the row_to_json COPY: %.2f (%s of %s events/s), %s\n",
				r.format, streamTargetRx, rx, thousands(int64(r.perSecond())), thousands(int64(s.copyJSON.perSecond())), verdict(rx >= streamTargetRx))
		}
		if jsonl != nil && big != nil {
			b.printf("- worker peak RSS flat (within %s MiB) from a %s-event to a %s-event JSONL backfill: %s → %s MiB, %s\n",
				mib(exportTargetFlat), thousands(jsonl.events), thousands(big.events), mib(jsonl.worker.rssPeak), mib(big.worker.rssPeak),
				verdict(big.worker.rssPeak-jsonl.worker.rssPeak < exportTargetFlat))
		} else {
			b.printf("- worker peak RSS flat from a 1,000,000-event to a 5,000,000-event backfill: not measured (BENCH_EXPORT_5M=1 measures it)\n")
		}
		b.printf("- a stream keeps up with ingest at full rate, lag under two intervals (%s): at most %.1f s, %s\n",
			2*streamKeepUpInterval, s.maxLag(), verdict(s.maxLag() < (2*streamKeepUpInterval).Seconds()))
	}
	if c := res.console; c != nil {
		for _, line := range b.consoleTargets(*c) {
			b.printf("- %s\n", line)
		}
	}
	if l := res.log; l != nil {
		p99 := percentile(l.proofs, 0.99)
		b.printf("- inclusion proof p99 under %s ms (asked at 10,000,000 events; here a tree of %s): %s ms, %s\n", ms(proofTarget), thousands(l.treeSize), ms(p99), verdict(p99 < proofTarget))
		b.printf("- sealing keeps up with ingest at full rate, the checkpoint at most two intervals (%s) behind: at most %.1f s, %s\n",
			2*benchSealInterval, l.maxSealLag(), verdict(l.maxSealLag() <= (2*benchSealInterval).Seconds()))
		b.printf("- `audexctl verify` of a %s-event export at least at the export's speed: %.1f s to verify, %.1f s to export, %s\n",
			thousands(l.verifyEvents), l.verifyTime.Seconds(), l.exportTime.Seconds(), verdict(l.verifyTime <= l.exportTime))
	}
	if p := res.purge; p != nil {
		// A purge gives way to ingest (it pauses while other statements
		// run), so the target is its rate alone.
		rate := p.alone.perSecond()
		b.printf("- purge at least %s events/s: %s, %s (with ingest alongside, giving way to it: %s)\n", thousands(purgeTargetRate), thousands(int64(rate)),
			verdict(rate >= purgeTargetRate), thousands(int64(p.withIngest.perSecond())))
		if r := p.retention; r.partition != "" {
			dropRate := float64(r.deleted) / r.took.Seconds()
			b.printf("- retention dropping a whole partition at least %s events/s: %s, %s\n", thousands(purgeTargetRate), thousands(int64(dropRate)), verdict(dropRate >= purgeTargetRate))
		}
		idle, during := percentile(p.idle.latencies, 0.99), percentile(p.during.latencies, 0.99)
		rx := float64(during) / float64(idle)
		b.printf("- ingest p99 during the purge at most %.0f× its p99 without: %s ms vs %s ms, %.2f×, %s\n",
			purgeTargetIngestRx, ms(during), ms(idle), rx, verdict(rx <= purgeTargetIngestRx))
	}
	b.printf("- load average at the end: %s\n", loadAverage())
}

// Targets of the issues.
const (
	summaryTargetP50    = 100 * time.Millisecond
	downloadTargetRx    = 1.2 // issue 20, for NDJSON downloads and JSONL exports
	downloadTargetRSS   = 64 << 20
	exportTargetRx      = downloadTargetRx
	exportTargetRSS     = 200 << 20
	exportTargetFlat    = 16 << 20 // issue 20
	exportTargetStart   = time.Second
	streamTargetRx      = 0.8
	purgeTargetRate     = 100_000
	purgeTargetIngestRx = 2.0
)

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}
