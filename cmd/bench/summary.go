package main

import (
	"context"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
)

// summaryWarmup requests are made before the timed ones.
const summaryWarmup = 1

// summaryResult is the summary phase.
type summaryResult struct {
	total    int64 // total_events of the answer
	times    []time.Duration
	p50, p99 time.Duration
	sql      string
	args     []any
	plan     string
}

// summary measures GET /v1/audit/summary without parameters (the last 30
// days) on the big tenant through the api process, one request at a time,
// and EXPLAINs the store's statement for the same window.
func (b *bench) summary(ctx context.Context, svc *services, key string) (summaryResult, error) {
	var res summaryResult
	b.waitQuiet(ctx)
	url := svc.apiURL + "/v1/audit/summary"
	for i := range summaryWarmup + b.cfg.summaryRequests {
		var answer struct {
			TotalEvents int64 `json:"total_events"`
		}
		start := time.Now()
		if err := callAPI(ctx, http.MethodGet, url, key, nil, http.StatusOK, &answer); err != nil {
			return res, err
		}
		if i >= summaryWarmup {
			res.times = append(res.times, time.Since(start))
		}
		res.total = answer.TotalEvents
	}
	res.p50, res.p99 = percentile(res.times, 0.5), percentile(res.times, 0.99)
	b.logger.Info("summary_measured", slog.Int64("events", res.total), slog.String("p50_ms", ms(res.p50)), slog.String("p99_ms", ms(res.p99)))

	// The handler's window: the 30 days before now.
	until := time.Now().UTC().Truncate(time.Microsecond)
	since := until.Add(-30 * 24 * time.Hour)
	rec := &recordingDB{DBTX: b.pool}
	if _, err := store.SummarizeEvents(ctx, rec, bigTenant, audex.Filter{Since: &since, Until: &until}); err != nil {
		return res, err
	}
	res.sql, res.args = rec.sql, rec.args
	var err error
	res.plan, err = b.explain(ctx, "EXPLAIN (ANALYZE, BUFFERS) ", res.sql, res.args)
	return res, err
}

// dedent removes the indentation that a statement's later lines carry
// from the Go source it was written in.
func dedent(sql string) string {
	lines := strings.Split(strings.TrimSpace(sql), "\n")
	for i := 1; i < len(lines); i++ {
		lines[i] = "  " + strings.TrimLeft(lines[i], "\t ")
	}
	return strings.Join(lines, "\n")
}

var executionTimeRe = regexp.MustCompile(`(?m)^Execution Time: .*$`)

func (b *bench) printSummary(res summaryResult) {
	b.printf("\n## Summary: GET /v1/audit/summary on a tenant holding %s events\n\n", thousands(int64(b.cfg.events)))
	b.printf("No parameters, so the last 30 days; through the api process with the read key, one request at a time: %d timed requests after %d warm-up one.\n\n",
		len(res.times), summaryWarmup)
	b.printf("| request | events summarised | p50 ms | p99 ms | slowest ms |\n|---|---:|---:|---:|---:|\n")
	b.printf("| `GET /v1/audit/summary` | %s | %s | %s | %s |\n", thousands(res.total), ms(res.p50), ms(res.p99), ms(percentile(res.times, 1)))
	b.printf("\n`EXPLAIN (ANALYZE, BUFFERS)` of the store's statement for the same window (%s):\n\n```sql\n%s\n",
		executionTimeRe.FindString(res.plan), dedent(res.sql))
	for j, a := range res.args {
		b.printf("-- $%d = %v\n", j+1, formatArg(a))
	}
	b.printf("```\n\n```\n%s\n```\n", res.plan)
}
