package main

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/audex-dev/audex/client"
	"github.com/audex-dev/audex/internal/store"
)

// summaryWarmup requests are made before the timed ones.
const summaryWarmup = 1

// summaryResult is the summary phase.
type summaryResult struct {
	rollup       time.Duration // the first rollup of every loaded event
	rolledEvents int64
	countRows    int64 // summary_counts rows of the big tenant after it
	shapes       []summaryShape
}

// summaryShape is one kind of summary request, timed.
type summaryShape struct {
	name, query string // query: params as the report shows them
	params      client.ListParams
	total       int64 // total_events of the answer
	times       []time.Duration
}

// rollUpSummaries rolls every loaded event up into the summary's daily
// counts, as the worker's summary_rollup job would on its first run, and
// times it. It runs before the worker starts, so that the summary phase
// finds the counts ready and times only requests.
func (b *bench) rollUpSummaries(ctx context.Context) (summaryResult, error) {
	var res summaryResult
	b.logger.Info("rolling_up_summaries")
	start := time.Now()
	n, err := store.RollUpAllSummaries(ctx, b.pool, 500_000)
	if err != nil {
		return res, err
	}
	res.rollup, res.rolledEvents = time.Since(start), n
	err = b.pool.QueryRow(ctx, `SELECT count(*) FROM summary_counts WHERE tenant_id = $1`, bigTenant).Scan(&res.countRows)
	return res, err
}

// summary measures GET /v1/audit/summary on the big tenant through the api
// process, one request at a time: without parameters (the last 30 days:
// the target), over seven whole days, and with a list filter (which scans
// the events).
func (b *bench) summary(ctx context.Context, svc *services, key string, res summaryResult) (summaryResult, error) {
	b.waitQuiet(ctx)
	week := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -7)
	res.shapes = []summaryShape{
		{name: "no parameters (the last 30 days)", query: ""},
		{name: "7 whole days", query: "?since=" + week.Format(time.DateOnly) + "&until=" + week.AddDate(0, 0, 7).Format(time.DateOnly),
			params: client.ListParams{Since: week, Until: week.AddDate(0, 0, 7)}},
		{name: "the last 30 days, actor_type=agent (scans the events)", query: "?actor_type=agent",
			params: client.ListParams{Filters: client.Filters{ActorType: "agent"}}},
	}
	api := svc.client(key)
	for i := range res.shapes {
		sh := &res.shapes[i]
		var err error
		sh.times, err = timeCalls(summaryWarmup, b.cfg.summaryRequests, func(int) error {
			answer, err := api.Events.Summary(ctx, sh.params)
			if err == nil {
				sh.total = answer.TotalEvents
			}
			return err
		})
		if err != nil {
			return res, err
		}
		b.logger.Info("summary_measured", slog.String("shape", sh.name), slog.Int64("events", sh.total),
			slog.String("p50_ms", ms(percentile(sh.times, 0.5))))
	}
	return res, nil
}

// p50 is the target's figure: the median of the request without parameters.
func (res summaryResult) p50() time.Duration {
	return percentile(res.shapes[0].times, 0.5)
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

func (b *bench) printSummary(res summaryResult) {
	b.printf("\n## Summary: GET /v1/audit/summary on a tenant holding %s events\n\n", thousands(int64(b.cfg.events)))
	b.printf("First, `store.RollUpAllSummaries` rolled every loaded event of every tenant (%s) into the daily counts, as the worker's `summary_rollup` job does on its first run: %.1f s (%s events/s); the big tenant has %s rows of `summary_counts`. ",
		thousands(res.rolledEvents), res.rollup.Seconds(), thousands(int64(float64(res.rolledEvents)/res.rollup.Seconds())), thousands(res.countRows))
	b.printf("Then through the api process with the read key, one request at a time: %d timed requests per shape after %d warm-up one.\n\n", b.cfg.summaryRequests, summaryWarmup)
	b.printf("| request | events summarised | p50 ms | p99 ms | slowest ms |\n|---|---:|---:|---:|---:|\n")
	for _, sh := range res.shapes {
		b.printf("| %s `GET /v1/audit/summary%s` | %s | %s | %s | %s |\n", sh.name, sh.query, thousands(sh.total),
			ms(percentile(sh.times, 0.5)), ms(percentile(sh.times, 0.99)), ms(percentile(sh.times, 1)))
	}
}
