package main

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/client"
	"github.com/audex-dev/audex/internal/store"
)

// Part limits of the timed exports: the largest the API accepts, so that
// 1,000,000 events make one part.
const (
	exportPartRecords = 1_000_000
	exportPartBytes   = 1 << 30
)

// exportTenant5M is the tenant of the optional 5,000,000-event export.
const (
	exportTenant5M = "bench_export_5m"
	export5MEvents = 5_000_000
)

// exportRun is one timed export job.
type exportRun struct {
	name        string
	destination string
	format      string
	compression string
	events      int64
	elapsed     time.Duration // from sending the POST to seeing it completed (polled every 50 ms)
	working     time.Duration // started_at to completed_at, by the database's clock
	parts       int
	bytes       int64
	worker      procDelta // the worker process, from the POST to completed
}

func (r exportRun) perSecond() float64 { return float64(r.events) / r.elapsed.Seconds() }

// exportResult is the export phase.
type exportResult struct {
	win      window
	copyJSON rate
	readPath rate // the worker's read path alone, in the benchmark's process
	runs     []exportRun
	noS3     bool
	// The optional export of 5,000,000 events of a tenant of its own.
	run5M               *exportRun
	big5M               *tenant5M
	smallEvents         int64
	toRunning, toLeased []time.Duration // of the small jobs: POST to running as polled, and created_at to started_at
}

// exports measures export jobs of the big tenant's loaded month through
// the api and worker processes to each destination, next to COPY of the
// same rows (and, when asked for, the worker's peak memory on a
// 5,000,000-event export of big5M, when loaded, right after the first),
// then the time from POST to running of small jobs.
func (b *bench) exports(ctx context.Context, svc *services, key string, win window, big5M *tenant5M) (exportResult, error) {
	res := exportResult{win: win, noS3: svc.s3Bucket == ""}
	b.waitQuiet(ctx)
	var err error
	res.copyJSON, err = b.copyOut(ctx, "`COPY (SELECT row_to_json(e) ... ORDER BY occurred_at, id) TO STDOUT`: the baseline", win.copyJSON())
	if err != nil {
		return res, err
	}
	res.copyJSON.baseline = true
	if res.readPath, err = b.exportReadPath(ctx, win); err != nil {
		return res, err
	}
	type plan struct{ destination, format, compression, name string }
	plans := []plan{
		{"local", "jsonl", "none", "local folder, JSONL"},
		{"local", "csv", "none", "local folder, CSV"},
		{"local", "jsonl", "gzip", "local folder, JSONL + gzip"},
	}
	if !res.noS3 {
		plans = append(plans, plan{"minio", "jsonl", "none", "S3 (MinIO), JSONL"}, plan{"minio", "jsonl", "gzip", "S3 (MinIO), JSONL + gzip"})
	}
	for i, p := range plans {
		b.waitQuiet(ctx)
		b.logger.Info("exporting", slog.String("to", p.name), slog.Int64("events", win.events))
		r, err := b.runExport(ctx, svc, key, win, p.name, p.destination, p.format, p.compression)
		if err != nil {
			return res, err
		}
		b.logger.Info("exported", slog.String("to", p.name), slog.Int("events_per_s", int(r.perSecond())), slog.String("worker_peak_mib", mib(r.worker.rssPeak)))
		res.runs = append(res.runs, r)
		// The same export of 5,000,000 events right after the first, the
		// worker in the same state, for the comparison of peak memory.
		if i == 0 && big5M != nil {
			if err := b.export5M(ctx, svc, big5M, &res); err != nil {
				return res, err
			}
		}
	}

	return res, b.exportLatency(ctx, svc, key, &res)
}

// export5M exports the 5,000,000 events of big5M once, as JSONL to the
// local folder.
func (b *bench) export5M(ctx context.Context, svc *services, big5M *tenant5M, res *exportResult) error {
	res.big5M = big5M
	key, err := b.newKey(ctx, exportTenant5M, audex.ScopeExport)
	if err != nil {
		return err
	}
	win, err := b.newWindow(ctx, exportTenant5M, big5M.end.AddDate(0, 0, -loadDays), big5M.end)
	if err != nil {
		return err
	}
	b.waitQuiet(ctx)
	b.logger.Info("exporting", slog.String("to", "local folder, JSONL"), slog.Int64("events", win.events))
	r, err := b.runExport(ctx, svc, key, win, "local folder, JSONL", "local", "jsonl", "none")
	if err != nil {
		return err
	}
	res.run5M = &r
	return nil
}

// tenant5M is exportTenant5M once loaded.
type tenant5M struct {
	end      time.Time // its events occur in the loadDays before end
	loadTime time.Duration
}

// loadTenant5M loads the 5,000,000 events of exportTenant5M over the
// loadDays before now.
func (b *bench) loadTenant5M(ctx context.Context) (*tenant5M, error) {
	t := &tenant5M{end: time.Now().UTC().Truncate(time.Second)}
	var err error
	t.loadTime, err = b.loadTenant(ctx, exportTenant5M, export5MEvents, 5000, t.end)
	return t, err
}

// exportReadPath pages through the window as the export worker reads it
// (store.ListEvents, oldest first, 2,000 events a page after the last
// one, received before now) in the benchmark's process: the worker's read
// path without encoding or upload.
func (b *bench) exportReadPath(ctx context.Context, win window) (rate, error) {
	asOf := time.Now()
	filter := audex.Filter{Since: &win.since, Until: &win.until, ReceivedBefore: &asOf}
	r := rate{name: "store.ListEvents pages of 2,000 (the worker's read path) in the benchmark's process, rows dropped"}
	var after *audex.Position
	start := time.Now()
	for {
		page, err := store.ListEvents(ctx, b.pool, win.tenant, filter, audex.OrderAsc, after, 2000)
		if err != nil {
			return r, err
		}
		if len(page) == 0 {
			break
		}
		r.events += int64(len(page))
		last := page[len(page)-1]
		after = &audex.Position{OccurredAt: last.OccurredAt, ID: last.ID}
	}
	r.elapsed = time.Since(start)
	if r.events != win.events {
		return r, fmt.Errorf("%s: %d events, want %d", r.name, r.events, win.events)
	}
	return r, nil
}

// runExport creates one export of the window through the api, waits for
// the worker to complete it, follows the worker's memory meanwhile, checks
// what it wrote (every line of local files) and deletes it.
func (b *bench) runExport(ctx context.Context, svc *services, key string, win window, name, destination, format, compression string) (exportRun, error) {
	r := exportRun{name: name, destination: destination, format: format, compression: compression}
	watch, err := svc.worker.watch()
	if err != nil {
		return r, err
	}
	// Bounded: at least 10,000 events/s after two minutes.
	limit := 2*time.Minute + time.Duration(win.events/10_000)*time.Second
	api := svc.client(key)
	start := time.Now()
	created, err := api.Exports.Create(ctx, client.ExportRequest{
		Since: win.since, Until: win.until, Format: format, Compression: compression, Destination: destination,
		PartMaxRecords: exportPartRecords, PartMaxBytes: exportPartBytes,
	})
	if err != nil {
		watch.end()
		return r, err
	}
	e, err := waitExport(ctx, api, created.ID, 50*time.Millisecond, limit, nil)
	r.elapsed = time.Since(start)
	r.worker = watch.end()
	if err != nil {
		return r, fmt.Errorf("export to %s: %w", name, err)
	}
	if e.Status != audex.ExportCompleted || e.RecordCount == nil {
		return r, fmt.Errorf("export to %s ended %s: %+v", name, e.Status, e.Error)
	}
	r.events, r.parts = *e.RecordCount, len(e.Files)
	if r.events != win.events {
		return r, fmt.Errorf("export to %s: %d records, want %d", name, r.events, win.events)
	}
	if e.StartedAt != nil && e.CompletedAt != nil {
		r.working = e.CompletedAt.Sub(*e.StartedAt)
	}
	for _, f := range e.Files {
		r.bytes += f.SizeBytes
	}
	if destination == "local" {
		if err := checkLocalExport(svc.localFolder, e, format); err != nil {
			return r, fmt.Errorf("export to %s: %w", name, err)
		}
		if err := os.RemoveAll(filepath.Join(svc.localFolder, created.ID)); err != nil {
			return r, err
		}
	} else if err := b.emptyBucket(ctx, svc.s3Bucket); err != nil {
		return r, err
	}
	return r, nil
}

// checkLocalExport counts the lines of every part of a completed export in
// the local folder against its records, and checks that its manifest is
// there.
func checkLocalExport(folder string, e audex.Export, format string) error {
	if e.ManifestKey == nil {
		return fmt.Errorf("export %s has no manifest", e.ID)
	}
	if _, err := os.Stat(filepath.Join(folder, filepath.FromSlash(*e.ManifestKey))); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	return readLocalParts(folder, e, func(f audex.ExportFile, r io.Reader) error {
		var cw countingWriter
		if _, err := io.Copy(&cw, r); err != nil {
			return err
		}
		want := f.Records
		if format == "csv" {
			want++ // the header
		}
		if cw.lines != want {
			return fmt.Errorf("%d lines, want %d", cw.lines, want)
		}
		return nil
	})
}

// readLocalParts calls fn with the content of every part of a completed
// export in the local folder, in order, through gzip when compressed.
func readLocalParts(folder string, e audex.Export, fn func(audex.ExportFile, io.Reader) error) error {
	for _, f := range e.Files {
		err := func() error {
			file, err := os.Open(filepath.Join(folder, filepath.FromSlash(f.Key)))
			if err != nil {
				return err
			}
			defer file.Close()
			var r io.Reader = file
			if strings.HasSuffix(f.Key, ".gz") {
				if r, err = gzip.NewReader(file); err != nil {
					return err
				}
			}
			return fn(f, r)
		}()
		if err != nil {
			return fmt.Errorf("%s: %w", f.Key, err)
		}
	}
	return nil
}

// exportLatency times small exports (one minute of the big tenant) from
// POST to running, one at a time with the worker idle in between.
func (b *bench) exportLatency(ctx context.Context, svc *services, key string, res *exportResult) error {
	since := res.win.until.AddDate(0, 0, -15)
	small, err := b.newWindow(ctx, bigTenant, since, since.Add(time.Minute))
	if err != nil {
		return err
	}
	res.smallEvents = small.events
	api := svc.client(key)
	b.waitQuiet(ctx)
	b.logger.Info("timing_small_exports", slog.Int("jobs", b.cfg.exportJobs), slog.Int64("events_each", small.events))
	for range b.cfg.exportJobs {
		// Idle: the previous job is complete and the worker's fetch loop
		// has settled.
		if !sleepCtx(ctx, 250*time.Millisecond) {
			return ctx.Err()
		}
		start := time.Now()
		created, err := api.Exports.Create(ctx, client.ExportRequest{Since: small.since, Until: small.until, Format: "jsonl", Destination: "local"})
		if err != nil {
			return err
		}
		// Polled every 5 ms: the first status read that is no longer
		// queued stops the clock.
		var toRunning time.Duration
		e, err := waitExport(ctx, api, created.ID, 5*time.Millisecond, time.Minute, func(e audex.Export) {
			if toRunning == 0 && e.Status != audex.ExportQueued {
				toRunning = time.Since(start)
			}
		})
		if err != nil {
			return err
		}
		res.toRunning = append(res.toRunning, toRunning)
		if e.Status != audex.ExportCompleted || e.StartedAt == nil {
			return fmt.Errorf("small export %s ended %s: %+v", e.ID, e.Status, e.Error)
		}
		res.toLeased = append(res.toLeased, e.StartedAt.Sub(e.CreatedAt))
		if err := os.RemoveAll(filepath.Join(svc.localFolder, created.ID)); err != nil {
			return err
		}
	}
	b.logger.Info("small_exports_timed", slog.String("p50_ms", ms(percentile(res.toRunning, 0.5))))
	return nil
}

func (b *bench) printExports(res exportResult) {
	base := res.copyJSON.perSecond()
	b.printf("\n## Export jobs: %s events to each destination\n\n", thousands(res.win.events))
	b.printf("The same rows as the download (the big tenant's loaded month), exported by `POST /v1/audit/exports` to the api process and worked by the worker process (River, the production defaults: 2 export workers, 40 s attempt window), with `part_max_records` %s and `part_max_bytes` 1 GiB (the API's maxima: one part per 1,000,000 events). ",
		thousands(exportPartRecords))
	b.printf("events/s is records over the time from sending the POST to seeing the export completed (polled every 50 ms); \"working\" is `completed_at - started_at`. Each export's output is checked (every line of local files) and deleted before the next. ")
	b.printf("Worker RSS is the worker process's VmRSS before the POST and its peak until completed (VmHWM reset through /proc/PID/clear_refs); worker CPU and write calls are its user + system time and its write system calls meanwhile (/proc/PID/stat, /proc/PID/io).")
	if res.noS3 {
		b.printf(" No S3 server was given (AUDEX_TEST_S3_ENDPOINT), so the S3 rows were skipped.")
	}
	b.printf("\n\n| path | events/s | seconds (working) | parts | MiB | ratio to COPY row_to_json | worker RSS before → peak MiB | worker CPU s | worker write calls |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range []rate{res.copyJSON, res.readPath} {
		b.printf("| %s | %s | %.1f | | %s | %.2f | | | |\n", r.name, thousands(int64(r.perSecond())), r.elapsed.Seconds(), mib(r.bytes), r.perSecond()/base)
	}
	for _, r := range res.runs {
		b.printf("| export to %s | %s | %.1f (%.1f) | %d | %s | %.2f | %s → %s | %.1f | %s |\n", r.name, thousands(int64(r.perSecond())), r.elapsed.Seconds(), r.working.Seconds(),
			r.parts, mib(r.bytes), r.perSecond()/base, mib(r.worker.rssFrom), mib(r.worker.rssPeak), r.worker.cpu.Seconds(), thousands(r.worker.writes))
	}

	b.printf("\n### Worker memory by export size\n\n")
	b.printf("| export | events | parts | seconds | events/s | worker RSS before MiB | worker peak MiB |\n|---|---:|---:|---:|---:|---:|---:|\n")
	if len(res.runs) > 0 {
		r := res.runs[0]
		b.printf("| %s of %s | %s | %d | %.1f | %s | %s | %s |\n", r.name, bigTenant, thousands(r.events), r.parts, r.elapsed.Seconds(), thousands(int64(r.perSecond())), mib(r.worker.rssFrom), mib(r.worker.rssPeak))
	}
	if r := res.run5M; r != nil {
		b.printf("| %s of %s (its own tenant, loaded in %.0f s before the services started and sealed with the rest) | %s | %d | %.1f | %s | %s | %s |\n", r.name, exportTenant5M, res.big5M.loadTime.Seconds(),
			thousands(r.events), r.parts, r.elapsed.Seconds(), thousands(int64(r.perSecond())), mib(r.worker.rssFrom), mib(r.worker.rssPeak))
	} else {
		b.printf("| 5,000,000 events | not measured: set BENCH_EXPORT_5M=1 | | | | | |\n")
	}

	b.printf("\n### Time from POST to running, idle worker\n\n")
	b.printf("%d exports of one minute of %s (%s events each, JSONL to the local folder, default part limits), one at a time, 250 ms after the previous one completed. ",
		len(res.toRunning), bigTenant, thousands(res.smallEvents))
	b.printf("\"POST to running\" is from sending the POST to the first `GET /v1/audit/exports/{id}` (polled every 5 ms) that is no longer `queued`; \"created to started\" is `started_at - created_at` by the database's clock.\n\n")
	b.printf("| measure | p50 ms | p99 ms | slowest ms |\n|---|---:|---:|---:|\n")
	b.printf("| POST to running | %s | %s | %s |\n", ms(percentile(res.toRunning, 0.5)), ms(percentile(res.toRunning, 0.99)), ms(percentile(res.toRunning, 1)))
	b.printf("| created_at to started_at | %s | %s | %s |\n", ms(percentile(res.toLeased, 0.5)), ms(percentile(res.toLeased, 0.99)), ms(percentile(res.toLeased, 1)))
}

// localJSONL returns the JSONL export to the local folder.
func (res exportResult) localJSONL() (exportRun, bool) {
	for _, r := range res.runs {
		if r.destination == "local" && r.format == "jsonl" && r.compression == "none" {
			return r, true
		}
	}
	return exportRun{}, false
}
