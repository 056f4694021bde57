// Package metrics holds audex's Prometheus metrics: the counters and
// histograms that the api and worker processes update as they work, and a
// collector that reads the state of export jobs, purges and River's queues
// from the database when scraped. Each process serves them with Handler.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics a process updates as it works. They are process-wide: each
// process serves its own and Prometheus sums them.
var (
	// RequestDuration is the API's request latency by route pattern,
	// method and status code.
	RequestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "audex_http_request_duration_seconds",
		Help:    "API request latency by route pattern, method and status code.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "method", "status"})

	// EventsIngested counts events stored by ingest requests (duplicates
	// of stored events are not counted again).
	EventsIngested = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "audex_events_ingested_total",
		Help: "Events stored by ingest requests.",
	})

	// ExportsFinished counts export jobs this process finished, by final
	// status (completed, failed, cancelled).
	ExportsFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "audex_exports_finished_total",
		Help: "Export jobs finished by this worker, by final status.",
	}, []string{"status"})

	// ExportedRecords and ExportedBytes count what export parts recorded
	// by this process hold, by sink type (file, s3, gcs, azure_blob).
	ExportedRecords = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "audex_export_records_total",
		Help: "Records written to export parts, by sink type.",
	}, []string{"sink"})
	ExportedBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "audex_export_bytes_total",
		Help: "Bytes written to export parts, by sink type.",
	}, []string{"sink"})

	// PurgedEvents counts events deleted by purges and by retention's
	// partition drops.
	PurgedEvents = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "audex_purged_events_total",
		Help: "Events deleted by purges and retention.",
	})
)

// Handler serves the process's metrics in Prometheus text format: the
// metrics above, Go runtime and process metrics, and, when pool is not
// nil, the job state read from the database at each scrape.
func Handler(pool *pgxpool.Pool, logger *slog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		RequestDuration, EventsIngested, ExportsFinished, ExportedRecords, ExportedBytes, PurgedEvents,
	)
	if pool != nil {
		reg.MustRegister(&stateCollector{pool: pool})
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// stateCollector reads job state from the database at each scrape, so
// that every process reports the same totals.
type stateCollector struct {
	pool *pgxpool.Pool
}

var (
	exportsDesc = prometheus.NewDesc("audex_exports", "Export jobs by status (all tenants).", []string{"status"}, nil)
	purgesDesc  = prometheus.NewDesc("audex_purges", "Purges by status (all tenants).", []string{"status"}, nil)
	riverDesc   = prometheus.NewDesc("audex_river_jobs", "River jobs not yet finished, by queue and state.", []string{"queue", "state"}, nil)
)

// stateQueryTimeout bounds the scrape's database reads.
const stateQueryTimeout = 5 * time.Second

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- exportsDesc
	ch <- purgesDesc
	ch <- riverDesc
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), stateQueryTimeout)
	defer cancel()
	c.collect(ctx, ch, exportsDesc, exportStatuses, `SELECT status, count(*) FROM exports GROUP BY status`)
	c.collect(ctx, ch, purgesDesc, purgeStatuses, `SELECT status, count(*) FROM purges GROUP BY status`)
	c.collect(ctx, ch, riverDesc, nil, `SELECT queue, state::text, count(*) FROM river_job
		WHERE state IN ('available', 'pending', 'retryable', 'running', 'scheduled') GROUP BY queue, state`)
}

// The statuses that are always reported, as 0 when no row has them.
var (
	exportStatuses = []string{"queued", "running", "completed", "failed", "cancelled"}
	purgeStatuses  = []string{"queued", "running", "completed", "failed"}
)

// collect sends one gauge per row of query, whose last column is the
// count and the others the labels, plus a 0 for each label of zeros (a
// single-label desc) that no row had; a failed query is reported as an
// invalid metric, which the handler logs.
func (c *stateCollector) collect(ctx context.Context, ch chan<- prometheus.Metric, desc *prometheus.Desc, zeros []string, query string) {
	rows, err := c.pool.Query(ctx, query)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(desc, err)
		return
	}
	defer rows.Close()
	seen := map[string]bool{}
	for rows.Next() {
		values, err := rows.Values()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(desc, err)
			return
		}
		labels := make([]string, len(values)-1)
		for i := range labels {
			labels[i], _ = values[i].(string)
		}
		seen[labels[0]] = true
		count, _ := values[len(values)-1].(int64)
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(count), labels...)
	}
	if err := rows.Err(); err != nil {
		ch <- prometheus.NewInvalidMetric(desc, err)
		return
	}
	for _, label := range zeros {
		if !seen[label] {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, 0, label)
		}
	}
}
