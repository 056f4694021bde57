package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/client"
)

// concurrentExports is how many exports of the big tenant's window the
// workers phase runs at once.
const concurrentExports = 3

// workersRun is the workers phase with a number of worker processes.
type workersRun struct {
	workers int
	events  int64
	elapsed time.Duration
}

func (r workersRun) perSecond() float64 { return float64(r.events) / r.elapsed.Seconds() }

// workersPhase runs concurrentExports JSONL exports of win to the local
// folder at once, with 1, 2 and then 3 worker processes on the same
// queue (the services' worker and more started like it), and measures
// the time from the first POST to the last completion.
func (b *bench) workersPhase(ctx context.Context, svc *services, key string, win window) ([]workersRun, error) {
	var extra []*process
	defer func() {
		for _, p := range extra {
			p.stop()
		}
	}()
	var runs []workersRun
	for n := 1; n <= 3; n++ {
		if n > 1 {
			p, _, err := b.startProcess(ctx, fmt.Sprintf("worker%d", n), filepath.Join(svc.dir, "bin", "worker"), svc.workerEnv, "worker_started")
			if err != nil {
				return runs, err
			}
			extra = append(extra, p)
		}
		b.logger.Info("exporting", slog.Int("workers", n), slog.Int("exports", concurrentExports), slog.Int64("events_each", win.events))
		r, err := b.exportsAtOnce(ctx, svc, key, win)
		if err != nil {
			return runs, err
		}
		r.workers = n
		runs = append(runs, r)
		b.logger.Info("exported", slog.Int("workers", n), slog.Float64("events_per_s", r.perSecond()))
	}
	return runs, nil
}

// exportsAtOnce creates concurrentExports exports of win and waits for
// all of them, checking each one's parts.
func (b *bench) exportsAtOnce(ctx context.Context, svc *services, key string, win window) (workersRun, error) {
	api := svc.client(key)
	limit := 5*time.Minute + time.Duration(concurrentExports*win.events/10_000)*time.Second
	start := time.Now()
	ids := make([]string, concurrentExports)
	for i := range ids {
		created, err := api.Exports.Create(ctx, client.ExportRequest{Since: win.since, Until: win.until, Format: "jsonl",
			Destination: "local", PartMaxRecords: exportPartRecords, PartMaxBytes: exportPartBytes})
		if err != nil {
			return workersRun{}, err
		}
		ids[i] = created.ID
	}
	done := make([]audex.Export, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { done[i], errs[i] = waitExport(ctx, api, id, 50*time.Millisecond, limit, nil) })
	}
	wg.Wait()
	r := workersRun{elapsed: time.Since(start)}
	for i, e := range done {
		if errs[i] != nil {
			return r, errs[i]
		}
		if e.Status != audex.ExportCompleted || e.RecordCount == nil || *e.RecordCount != win.events {
			return r, fmt.Errorf("export %s ended %s with %v records, want %d: %+v", e.ID, e.Status, e.RecordCount, win.events, e.Error)
		}
		if err := checkLocalExport(svc.localFolder, e, "jsonl"); err != nil {
			return r, err
		}
		if err := os.RemoveAll(filepath.Join(svc.localFolder, e.ID)); err != nil {
			return r, err
		}
		r.events += *e.RecordCount
	}
	return r, nil
}

func (b *bench) printWorkers(runs []workersRun) {
	if len(runs) == 0 {
		return
	}
	b.printf("\n## Export throughput by worker processes\n\n")
	b.printf("%d exports of the big tenant's loaded month (%s events each, JSONL, the local folder, one part each) created at once through the api, worked by 1, 2 and then 3 worker processes on the same queue (each with the default 2 export slots and its own River client; the later ones started like the first). events/s is all the exports' records over the time from the first POST to the last completion; every part is checked.\n\n",
		concurrentExports, thousands(runs[0].events/concurrentExports))
	b.printf("| worker processes | events | seconds | events/s | against 1 worker |\n|---:|---:|---:|---:|---:|\n")
	for _, r := range runs {
		b.printf("| %d | %s | %.1f | %s | %.2f |\n", r.workers, thousands(r.events), r.elapsed.Seconds(), thousands(int64(r.perSecond())), r.perSecond()/runs[0].perSecond())
	}
}
