package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/walltest"
)

// The walls test (`make load`, `bench hostile`): one tenant runs huge
// summaries, downloads it never reads and a flood of exports, all at once
// for LOAD_SECONDS, through the real api and worker processes with their
// default limits, while another tenant lists, ingests, summarises, reads
// filters and exports (internal/walltest). Then it checks that the other
// tenant's every request answered within a second, its exports started
// within 10 s, /readyz stayed 200, and that nothing the hostile tenant
// sent is lost or left running after it stops.

// Tenants of the walls test.
const (
	hostileTenantName = "hostile"
	victimTenantName  = "neighbour"
)

// Bounds that the walls test holds the other tenant to.
const (
	wallsMaxLatency     = time.Second
	wallsMaxExportStart = 10 * time.Second
)

// hostileTest preloads the hostile tenant (LOAD_PRELOAD events over the
// last 30 days) and a smaller neighbour, starts the services, runs
// walltest and checks the aftermath. Any failed check fails the command.
func (b *bench) hostileTest(ctx context.Context, s loadSettings) error {
	end := time.Now().UTC().Truncate(time.Second)
	if _, err := b.loadTenant(ctx, hostileTenantName, s.preload, 3300, end); err != nil {
		return err
	}
	if _, err := b.loadTenant(ctx, victimTenantName, 20_000, 3400, end); err != nil {
		return err
	}
	if _, err := b.vacuumAnalyze(ctx); err != nil {
		return err
	}
	scopes := []string{audex.ScopeRead, audex.ScopeWrite, audex.ScopeExport}
	hostileKey, err := b.newKey(ctx, hostileTenantName, scopes...)
	if err != nil {
		return err
	}
	victimKey, err := b.newKey(ctx, victimTenantName, scopes...)
	if err != nil {
		return err
	}
	svc, err := b.startServices(ctx)
	defer svc.stop(ctx, b)
	if err != nil {
		return err
	}
	b.logger.Info("walls_started", slog.Duration("for", s.duration))
	report, err := walltest.Run(ctx, walltest.Config{
		URL: svc.apiURL, HostileKey: hostileKey, VictimKey: victimKey, Duration: s.duration,
		Since: end.AddDate(0, 0, -loadDays), Until: end.Add(time.Hour), Destination: "local", PartMaxRecords: 1000,
	})
	if err != nil {
		return err
	}
	stoppedAt := time.Now()
	failures := report.Failures(wallsMaxLatency, wallsMaxExportStart)
	// Nothing of the hostile tenant's left running: the api's statements
	// end with its requests, and every export ends complete and exact.
	var active int
	for {
		if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'audex-api' AND state = 'active'`).Scan(&active); err != nil {
			return err
		}
		if active == 0 || time.Since(stoppedAt) > 15*time.Second {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if active > 0 {
		failures = append(failures, fmt.Sprintf("%d statements of the api still active 15 s after the hostile tenant stopped", active))
	}
	quiet := time.Since(stoppedAt)
	exports := map[string]audex.Export{}
	for _, ids := range []struct {
		tenant, key string
		ids         []string
	}{{hostileTenantName, hostileKey, report.HostileExports}, {victimTenantName, victimKey, report.VictimExports}} {
		for _, id := range ids.ids {
			e, err := waitExport(ctx, svc.client(ids.key), id, 200*time.Millisecond, 10*time.Minute, nil)
			if err != nil {
				return err
			}
			exports[id] = e
			want, err := store.CountEvents(ctx, b.pool, ids.tenant, exportFilter(e))
			if err != nil {
				return err
			}
			if e.Status != audex.ExportCompleted || e.Progress.RecordsExported != want {
				failures = append(failures, fmt.Sprintf("export %s ended %s with %d records, its range holds %d", id, e.Status, e.Progress.RecordsExported, want))
			}
		}
	}
	drained := time.Since(stoppedAt)
	var stored int
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE tenant_id = $1 AND id = ANY($2)`, victimTenantName, report.IngestedIDs).Scan(&stored); err != nil {
		return err
	}
	if stored != len(report.IngestedIDs) {
		failures = append(failures, fmt.Sprintf("%d events of the neighbour acknowledged, %d stored", len(report.IngestedIDs), stored))
	}

	b.printf("\n## Walls: a hostile tenant for %s beside a neighbour\n\n", s.duration)
	b.printf("Tenant `%s` (%s events over %d days) keeps 4 summaries of years 0001-9999 going (every other one with a filter, which scans its events), 4 downloads of its 30 days that it never reads (a 4 KiB receive buffer; a new one when the server cuts one off or refuses it) and a flood of exports with the smallest parts allowed (1,000 records), created as fast as they are answered. Tenant `%s` meanwhile lists (100 events), ingests (50), summarises (30 days) and reads filters in turn, every 20 ms, creates 3 exports, and `/readyz` is polled twice a second. Default limits.\n\n",
		hostileTenantName, thousands(int64(s.preload)), loadDays, victimTenantName)
	b.printf("| neighbour's request | answers | p50 ms | p99 ms | max ms | statuses |\n|---|---:|---:|---:|---:|---|\n")
	for _, line := range report.Summary() {
		b.printf("%s\n", line)
	}
	var starts []string
	for _, d := range report.VictimExportStarts {
		starts = append(starts, fmt.Sprintf("%.1f s", d.Seconds()))
	}
	b.printf("\nThe neighbour's exports waited %s to start. The hostile tenant's answers: %s.\n", orNone(strings.Join(starts, ", ")), hostileAnswers(report.Hostile))
	b.printf("After it stopped: no statement of the api active after %.1f s; its %d exports and the neighbour's %d all finished, exact, %.0f s later.\n\n",
		quiet.Seconds(), len(report.HostileExports), len(report.VictimExports), drained.Seconds())
	if len(failures) == 0 {
		b.printf("Checks: every request of the neighbour answered 2xx within %s; its exports started within %s; `/readyz` always 200; every acknowledged event stored; every export complete and exact. **All held.**\n", wallsMaxLatency, wallsMaxExportStart)
		return nil
	}
	b.printf("Checks **failed**:\n\n")
	for _, f := range failures {
		b.printf("- %s\n", f)
	}
	return fmt.Errorf("walls: %d checks failed: %s", len(failures), strings.Join(failures, "; "))
}

// hostileAnswers formats the hostile tenant's answers by kind and status.
func hostileAnswers(byKind map[string]map[int]int) string {
	var parts []string
	for _, kind := range []string{"summary", "download", "download_cut_off", "export"} {
		var statuses []string
		for _, st := range []int{0, http.StatusOK, http.StatusAccepted, http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusInternalServerError} {
			if n := byKind[kind][st]; n > 0 {
				statuses = append(statuses, fmt.Sprintf("%d: %d", st, n))
			}
		}
		if len(statuses) > 0 {
			parts = append(parts, kind+" "+strings.Join(statuses, ", "))
		}
	}
	return strings.Join(parts, "; ")
}
