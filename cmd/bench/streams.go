package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/client"
	"github.com/audex-dev/audex/internal/store"
)

// streamTenant is the tenant of the keep-up measurement.
const streamTenant = "bench_stream"

// streamKeepUpInterval is the keep-up stream's interval.
const streamKeepUpInterval = 10 * time.Second

// streamResult is the streams phase's measurements.
type streamResult struct {
	copyJSON rate // COPY (SELECT row_to_json(e) ...) of the big tenant's window
	// The backfills of the big tenant's events from before its load, in
	// JSONL, then Parquet.
	backfills []backfillRun
	// Ingest over HTTP at full rate with a stream delivering it.
	keepUpEvents  int64
	keepUpElapsed time.Duration
	lags          []float64 // lag_seconds, sampled every 500 ms while ingesting
	caughtUp      time.Duration
	keepUpBatches int64
}

// backfillRun is one backfill of a tenant.
type backfillRun struct {
	tenant  string
	format  string
	events  int64
	elapsed time.Duration
	batches int64
	worker  procDelta
}

func (r backfillRun) perSecond() float64 { return float64(r.events) / r.elapsed.Seconds() }

func (r streamResult) maxLag() float64 {
	most := 0.0
	for _, l := range r.lags {
		most = max(most, l)
	}
	return most
}

// streams measures a stream's backfill of the big tenant (every event,
// JSONL and Parquet to the local folder) next to COPY of the window's
// rows, with big5M (BENCH_EXPORT_5M) one of its 5,000,000 events too, and a
// stream keeping up with ingest at the benchmark's full HTTP rate; each
// stream's delivered parts are read back and checked to hold every event
// once.
func (b *bench) streams(ctx context.Context, svc *services, key string, win window, big5M *tenant5M) (streamResult, error) {
	var res streamResult
	b.waitQuiet(ctx)
	var err error
	if res.copyJSON, err = b.copyOut(ctx, "`COPY (SELECT row_to_json(e) ... ORDER BY occurred_at, id) TO STDOUT`: the baseline", win.copyJSON()); err != nil {
		return res, err
	}
	api := svc.client(key)
	for _, format := range []string{"jsonl", "parquet"} {
		r, err := b.backfill(ctx, svc, api, bigTenant, format)
		if err != nil {
			return res, err
		}
		res.backfills = append(res.backfills, r)
	}
	if big5M != nil {
		// The worker's memory from 1,000,000 to 5,000,000 events.
		key5M, err := b.newKey(ctx, exportTenant5M, audex.ScopeExport)
		if err != nil {
			return res, err
		}
		r, err := b.backfill(ctx, svc, svc.client(key5M), exportTenant5M, "jsonl")
		if err != nil {
			return res, err
		}
		res.backfills = append(res.backfills, r)
	}

	if err := b.streamKeepUp(ctx, svc, &res); err != nil {
		return res, fmt.Errorf("keep-up: %w", err)
	}
	return res, nil
}

// backfill streams every event of tenant (from its first on) in format to
// the local folder through api, following the worker's memory, and checks
// the delivered parts.
func (b *bench) backfill(ctx context.Context, svc *services, api *client.Client, tenant, format string) (backfillRun, error) {
	r := backfillRun{tenant: tenant, format: format}
	var start time.Time
	// Every event of the tenant, its audit events of the phases before
	// included (the stream's own come after it is created).
	if err := b.pool.QueryRow(ctx, `SELECT min(received_at), count(*) FROM events WHERE tenant_id = $1`, tenant).Scan(&start, &r.events); err != nil {
		return r, err
	}
	b.waitQuiet(ctx)
	b.logger.Info("streaming", slog.String("what", "backfill"), slog.String("tenant", tenant), slog.String("format", format), slog.Int64("events", r.events))
	watch, err := svc.worker.watch()
	if err != nil {
		return r, err
	}
	began := time.Now()
	st, err := api.Streams.Create(ctx, client.StreamRequest{Format: format, Destination: "local", Start: start, Interval: time.Minute})
	if err != nil {
		watch.end()
		return r, err
	}
	// Bounded: at least 10,000 events/s after two minutes.
	st, err = waitDelivered(ctx, api, st.ID, r.events, 2*time.Minute+time.Duration(r.events/10_000)*time.Second)
	r.elapsed, r.worker = time.Since(began), watch.end()
	if err != nil {
		return r, fmt.Errorf("%s backfill of %s: %w", format, tenant, err)
	}
	r.batches = st.BatchesDelivered
	if err := b.checkStream(ctx, svc, api, st.ID, tenant, format); err != nil {
		return r, fmt.Errorf("%s backfill of %s: %w", format, tenant, err)
	}
	return r, nil
}

// streamKeepUp sends the ingest phase's events over HTTP, again and again
// for BENCH_STREAM_SECONDS at full rate, to a tenant with a stream every
// streamKeepUpInterval, sampling the stream's lag.
func (b *bench) streamKeepUp(ctx context.Context, svc *services, res *streamResult) error {
	key, err := b.newKey(ctx, streamTenant, audex.ScopeWrite, audex.ScopeExport)
	if err != nil {
		return err
	}
	api := svc.client(key)
	st, err := api.Streams.Create(ctx, client.StreamRequest{Format: "jsonl", Destination: "local", Interval: streamKeepUpInterval})
	if err != nil {
		return err
	}
	b.logger.Info("streaming", slog.String("what", "keep-up"), slog.Int("seconds", b.cfg.streamSeconds))
	if res.keepUpElapsed, err = b.ingestWhile(ctx, key, 500*time.Millisecond, func() {
		if s, err := api.Streams.Get(ctx, st.ID); err == nil {
			res.lags = append(res.lags, s.LagSeconds)
		}
	}); err != nil {
		return err
	}
	ended := time.Now()
	// Every event the tenant holds (one more for the key's audit event,
	// and a batch cut off by the deadline may be in or not).
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE tenant_id = $1 AND received_at >= $2`, streamTenant, st.Start).Scan(&res.keepUpEvents); err != nil {
		return err
	}
	st, err = waitDelivered(ctx, api, st.ID, res.keepUpEvents, 5*time.Minute)
	if err != nil {
		return err
	}
	res.caughtUp, res.keepUpBatches = time.Since(ended), st.BatchesDelivered
	return b.checkStream(ctx, svc, api, st.ID, streamTenant, "jsonl")
}

// ingestWhile sends the ingest phase's events with key over HTTP, again
// and again at full rate (once the database is quiet) for
// BENCH_STREAM_SECONDS, calling sample every period meanwhile, and
// returns how long it sent.
func (b *bench) ingestWhile(ctx context.Context, key string, period time.Duration, sample func()) (time.Duration, error) {
	events := b.ingestEvents()
	bodies, err := b.ingestBodies(events)
	if err != nil {
		return 0, err
	}
	b.waitQuiet(ctx)
	ingestCtx, stop := context.WithTimeout(ctx, time.Duration(b.cfg.streamSeconds)*time.Second)
	defer stop()
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for ingestCtx.Err() == nil {
			time.Sleep(period)
			sample()
		}
	}()
	began := time.Now()
	_, _, err = runConcurrently(ingestCtx, b.cfg.ingestClients, 1<<30, func(ctx context.Context, i int) error {
		i %= len(bodies)
		if err := postEvents(ctx, b.client, b.baseURL, key, bodies[i], min(b.cfg.ingestBatch, len(events)-i*b.cfg.ingestBatch)); err != nil {
			if ctx.Err() != nil {
				return nil // the time is up; this batch may or may not be in
			}
			return err
		}
		return nil
	})
	elapsed := time.Since(began)
	<-sampled
	if err != nil && ctx.Err() == nil && ingestCtx.Err() == nil {
		return elapsed, err
	}
	return elapsed, nil
}

// waitDelivered polls the stream until it has delivered at least n events.
func waitDelivered(ctx context.Context, api *client.Client, id string, n int64, limit time.Duration) (client.Stream, error) {
	deadline := time.Now().Add(limit)
	for {
		st, err := api.Streams.Get(ctx, id)
		switch {
		case err != nil:
			return st, err
		case st.EventsDelivered >= n:
			return st, nil
		case st.Status != audex.StreamActive || time.Now().After(deadline):
			return st, fmt.Errorf("stream %s %s after %s with %d of %d events delivered (error %+v)", id, st.Status, limit, st.EventsDelivered, n, st.Error)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkStream deletes the stream (the routes then show it no more), then
// reads every part of its batches (of format) from the local folder:
// together they must hold each event the tenant received from the
// stream's start up to its watermark, once. The parts are deleted after.
func (b *bench) checkStream(ctx context.Context, svc *services, api *client.Client, id, tenant, format string) error {
	if err := api.Streams.Delete(ctx, id); err != nil {
		return err
	}
	var st audex.Stream
	var err error
	if st, err = store.GetStreamByID(ctx, b.pool, id); err != nil {
		return err
	}
	var want int64
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE tenant_id = $1 AND received_at >= $2 AND received_at < $3`,
		tenant, st.Start, st.Watermark).Scan(&want); err != nil {
		return err
	}
	seen := make(map[string]bool, want)
	batches, err := store.ListStreamBatches(ctx, b.pool, id, 0, math.MaxInt32)
	if err != nil {
		return err
	}
	for _, b := range batches {
		for _, f := range b.Files {
			if err := readPartIDs(filepath.Join(svc.localFolder, filepath.FromSlash(f.Key)), format, func(id string) error {
				if seen[id] {
					return fmt.Errorf("event %s delivered twice", id)
				}
				seen[id] = true
				return nil
			}); err != nil {
				return err
			}
		}
	}
	if int64(len(seen)) != want {
		return fmt.Errorf("stream %s delivered %d events, the tenant received %d before its watermark", id, len(seen), want)
	}
	return os.RemoveAll(filepath.Join(svc.localFolder, id))
}

// readPartIDs calls fn with the id of each event of the part (JSONL or
// Parquet) at path.
func readPartIDs(path, format string, fn func(id string) error) error {
	if format == "parquet" {
		rows, err := parquet.ReadFile[struct {
			ID string `parquet:"id"`
		}](path)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for _, r := range rows {
			if err := fn(r.ID); err != nil {
				return err
			}
		}
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := fn(e.ID); err != nil {
			return err
		}
	}
	return sc.Err()
}

// printStreams writes the streams phase's section.
func (b *bench) printStreams(res streamResult) {
	b.printf("\n## Streams\n\n")
	b.printf("Streams of a tenant from before its load (a backfill of every one of its events), to the local folder, through the api and worker processes: the big tenant in JSONL then Parquet, next to COPY of its window's rows, and with BENCH_EXPORT_5M=1 the tenant of 5,000,000 events in JSONL; the parts are read back and hold every event once.\n\n")
	b.printf("| path | events | events/s | seconds | batches | ratio to COPY row_to_json | worker RSS before → peak MiB |\n|---|---:|---:|---:|---:|---:|---:|\n")
	b.printf("| %s | %s | %s | %.1f | | 1.00 | |\n", res.copyJSON.name, thousands(res.copyJSON.events), thousands(int64(res.copyJSON.perSecond())), res.copyJSON.elapsed.Seconds())
	for _, r := range res.backfills {
		ratio := "" // COPY is of the big tenant's window
		if r.tenant == bigTenant {
			ratio = fmt.Sprintf("%.2f", r.perSecond()/res.copyJSON.perSecond())
		}
		b.printf("| stream backfill of %s, %s to the local folder | %s | %s | %.1f | %d | %s | %s → %s |\n", r.tenant, r.format, thousands(r.events), thousands(int64(r.perSecond())),
			r.elapsed.Seconds(), r.batches, ratio, mib(r.worker.rssFrom), mib(r.worker.rssPeak))
	}
	lags := append([]float64(nil), res.lags...)
	sort.Float64s(lags)
	p50 := 0.0
	if len(lags) > 0 {
		p50 = lags[len(lags)/2]
	}
	b.printf("\nKeeping up: HTTP ingest at full rate (%d clients x %d events) for %.0f s into a tenant with a stream every %s: %s events (%s/s); the stream's lag, sampled every 500 ms, p50 %.1f s, max %.1f s; it had delivered every event %.1f s after the ingest ended, in %d batches, each event once.\n",
		b.cfg.ingestClients, b.cfg.ingestBatch, res.keepUpElapsed.Seconds(), streamKeepUpInterval, thousands(res.keepUpEvents),
		thousands(int64(float64(res.keepUpEvents)/res.keepUpElapsed.Seconds())), p50, res.maxLag(), res.caughtUp.Seconds(), res.keepUpBatches)
}
