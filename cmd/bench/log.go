package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/client"
	"github.com/audex-dev/audex/internal/integrity"
)

// sealTenant is the tenant of the sealing keep-up measurement.
const sealTenant = "bench_seal"

// benchSealInterval is the worker's seal_interval in the benchmark's
// configuration.
const benchSealInterval = 10 * time.Second

// logResult is the log phase's measurements.
type logResult struct {
	treeSize    int64
	proofs      []time.Duration // GET /v1/audit/events/{id}/proof
	checkpoints []time.Duration // GET /v1/audit/log/checkpoint

	// Sealing beside ingest at full rate: the events sent, for how long,
	// how far behind the tenant's latest checkpoint was (seconds, sampled)
	// and how long after the ingest ended it held every event.
	keepUpEvents  int64
	keepUpElapsed time.Duration
	sealLags      []float64
	sealedAfter   time.Duration

	// An export of the big tenant's window and `audexctl verify manifest`
	// of it.
	verifyEvents           int64
	exportTime, verifyTime time.Duration
}

func (r logResult) maxSealLag() float64 {
	return slices.Max(append([]float64{0}, r.sealLags...))
}

// integrityLog measures, through the api process with the read key,
// the latest checkpoint of the big tenant and inclusion proofs of its
// events (random ones, against that checkpoint), one request at a time,
// every proof checked against the checkpoint's root; then sealing beside
// ingest at full rate, and `audexctl verify` of an export of the window
// (with the export key) against the export itself.
func (b *bench) integrityLog(ctx context.Context, svc *services, key, exportKey string, win window) (logResult, error) {
	res, err := b.proofs(ctx, svc, key)
	if err != nil {
		return res, err
	}
	if err := b.sealKeepUp(ctx, svc, &res); err != nil {
		return res, fmt.Errorf("sealing keep-up: %w", err)
	}
	if err := b.verifyExport(ctx, svc, exportKey, win, &res); err != nil {
		return res, fmt.Errorf("verify an export: %w", err)
	}
	return res, nil
}

// proofs times inclusion proofs and checkpoints of the big tenant.
func (b *bench) proofs(ctx context.Context, svc *services, key string) (logResult, error) {
	var res logResult
	api := svc.client(key)
	note, err := api.Log.Checkpoint(ctx, 0)
	if err != nil {
		return res, err
	}
	c, err := integrity.ParseCheckpoint(string(note))
	if err != nil {
		return res, err
	}
	res.treeSize = c.Size
	rows, err := b.pool.Query(ctx, `SELECT id FROM events WHERE tenant_id = $1 ORDER BY random() LIMIT $2`, bigTenant, b.cfg.listRequests+listWarmup)
	if err != nil {
		return res, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return res, err
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return res, err
	}
	b.waitQuiet(ctx)
	timed := max(0, len(ids)-listWarmup)
	proofs := make([]client.InclusionProof, len(ids))
	if res.proofs, err = timeCalls(min(listWarmup, len(ids)), timed, func(i int) error {
		var err error
		proofs[i], err = api.Log.Proof(ctx, ids[i], c.Size)
		return err
	}); err != nil {
		return res, fmt.Errorf("proof: %w", err)
	}
	for i, p := range proofs {
		if err := tlog.CheckRecord(p.Hashes, c.Size, c.Root, p.LeafIndex, p.LeafHash); err != nil {
			return res, fmt.Errorf("proof of %s: %w", ids[i], err)
		}
	}
	if res.checkpoints, err = timeCalls(listWarmup, timed, func(int) error {
		_, err := api.Log.Checkpoint(ctx, 0)
		return err
	}); err != nil {
		return res, err
	}
	b.logger.Info("log_measured", slog.Int64("tree_size", c.Size), slog.String("proof_p99_ms", ms(percentile(res.proofs, 0.99))))
	return res, nil
}

// sealKeepUp sends the ingest phase's events over HTTP at full rate for
// BENCH_STREAM_SECONDS to a tenant of its own while the worker seals every
// benchSealInterval, sampling how far behind the tenant's latest
// checkpoint is (now minus the seal's end, log_state.sealed_to).
func (b *bench) sealKeepUp(ctx context.Context, svc *services, res *logResult) error {
	key, err := b.newKey(ctx, sealTenant, audex.ScopeWrite)
	if err != nil {
		return err
	}
	b.logger.Info("sealing", slog.String("what", "keep-up"), slog.Int("seconds", b.cfg.streamSeconds))
	began := time.Now()
	if res.keepUpElapsed, err = b.ingestWhile(ctx, key, 250*time.Millisecond, func() {
		// How far behind the latest checkpoint is: now less the end of
		// the last seal (or the start, before the first).
		var lag float64
		if err := b.pool.QueryRow(ctx, `SELECT extract(epoch FROM clock_timestamp() - greatest(
				(SELECT sealed_to FROM log_state WHERE tenant_id = $1), $2))`, sealTenant, began).Scan(&lag); err == nil {
			res.sealLags = append(res.sealLags, lag)
		}
	}); err != nil {
		return err
	}
	ended := time.Now()
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE tenant_id = $1 AND received_at >= $2`, sealTenant, began).Scan(&res.keepUpEvents); err != nil {
		return err
	}
	for deadline := ended.Add(5 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var done bool
		if err := b.pool.QueryRow(ctx, `SELECT sealed_to >= $2 FROM log_state WHERE tenant_id = $1`, sealTenant, ended).Scan(&done); err != nil {
			return err
		}
		if done {
			res.sealedAfter = time.Since(ended)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the log was not sealed up to the ingest's end %s after it", time.Since(ended))
		}
	}
}

// verifyExport exports the big tenant's window in JSONL to the local
// folder and times `audexctl verify manifest` of it (the built binary,
// reading the folder, with only the verifier keys), which must pass.
func (b *bench) verifyExport(ctx context.Context, svc *services, key string, win window, res *logResult) error {
	b.waitQuiet(ctx)
	b.logger.Info("verifying", slog.String("what", "an export of the big tenant's window"))
	api := svc.client(key)
	start := time.Now()
	created, err := api.Exports.Create(ctx, client.ExportRequest{Since: win.since, Until: win.until, Format: "jsonl", Destination: "local",
		PartMaxRecords: exportPartRecords, PartMaxBytes: exportPartBytes})
	if err != nil {
		return err
	}
	e, err := waitExport(ctx, api, created.ID, 50*time.Millisecond, 2*time.Minute+time.Duration(win.events/10_000)*time.Second, nil)
	res.exportTime = time.Since(start)
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Join(svc.localFolder, created.ID))
	if e.Status != audex.ExportCompleted || e.RecordCount == nil || e.ManifestKey == nil {
		return fmt.Errorf("export ended %s: %+v", e.Status, e.Error)
	}
	res.verifyEvents = *e.RecordCount
	keysFile := filepath.Join(svc.dir, "verifier.keys")
	if err := os.WriteFile(keysFile, []byte(strings.Join(svc.logKeys.VerifierKeys(), "\n")+"\n"), 0o600); err != nil {
		return err
	}
	b.waitQuiet(ctx)
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(svc.dir, "bin", "audexctl"), "verify", "manifest", *e.ManifestKey, "--keys", keysFile, "--folder", svc.localFolder)
	cmd.Stdout, cmd.Stderr = &out, &out
	start = time.Now()
	err = cmd.Run()
	res.verifyTime = time.Since(start)
	if err != nil {
		return fmt.Errorf("audexctl verify manifest: %w\n%s", err, out.String())
	}
	m := regexp.MustCompile(`(\d+) records read, (\d+) of them leaves`).FindStringSubmatch(out.String())
	if m == nil || m[1] != m[2] || m[1] != strconv.FormatInt(res.verifyEvents, 10) {
		return fmt.Errorf("audexctl verify manifest did not read every record as a leaf:\n%s", out.String())
	}
	return nil
}

// proofTarget is issue 18's bound on an inclusion proof's p99 (asked at
// 10,000,000 events).
const proofTarget = 10 * time.Millisecond

func (b *bench) printLog(res logResult) {
	b.printf("\n## Integrity log\n\n")
	b.printf("Through the api process (the first seal is in the paragraph on the processes above), one request at a time, %d timed requests each after %d warm-up ones: the inclusion proof of a random event of the big tenant against its latest checkpoint (tree size %s; each proof checked against the root), and that checkpoint.\n\n",
		len(res.proofs), listWarmup, thousands(res.treeSize))
	b.printf("| request | p50 ms | p99 ms | slowest ms |\n|---|---:|---:|---:|\n")
	for _, r := range []struct {
		name  string
		times []time.Duration
	}{{"`GET /v1/audit/events/{id}/proof?size=N`", res.proofs}, {"`GET /v1/audit/log/checkpoint`", res.checkpoints}} {
		b.printf("| %s | %s | %s | %s |\n", r.name, ms(percentile(r.times, 0.5)), ms(percentile(r.times, 0.99)), ms(percentile(r.times, 1)))
	}
	lags := slices.Sorted(slices.Values(res.sealLags))
	p50 := 0.0
	if len(lags) > 0 {
		p50 = lags[len(lags)/2]
	}
	b.printf("\nSealing beside ingest: HTTP ingest at full rate (%d clients x %d events) for %.0f s into a tenant of its own, the worker sealing every %s (seal_interval): %s events (%s/s); how far behind the tenant's latest checkpoint was (now minus its seal's end), sampled every 250 ms: p50 %.1f s, max %.1f s; it held every event %.1f s after the ingest ended.\n",
		b.cfg.ingestClients, b.cfg.ingestBatch, res.keepUpElapsed.Seconds(), benchSealInterval, thousands(res.keepUpEvents),
		thousands(int64(float64(res.keepUpEvents)/res.keepUpElapsed.Seconds())), p50, res.maxSealLag(), res.sealedAfter.Seconds())
	b.printf("\nVerifying an export: the big tenant's window (%s events) exported in JSONL to the local folder, with its signed manifest, leaves and checkpoint, in %.1f s (%s events/s, POST to completed); `audexctl verify manifest` of it, reading the folder with only the verifier keys (every record a leaf of the signed tree), in %.1f s (%s events/s).\n",
		thousands(res.verifyEvents), res.exportTime.Seconds(), thousands(int64(float64(res.verifyEvents)/res.exportTime.Seconds())),
		res.verifyTime.Seconds(), thousands(int64(float64(res.verifyEvents)/res.verifyTime.Seconds())))
}
