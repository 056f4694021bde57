// Package metrics holds audex's Prometheus metrics: the counters and
// histograms that the api and worker processes update as they work, and a
// collector that reads the state of export jobs, purges and River's queues
// from the database (through internal/store, which holds the SQL) when
// scraped. Each process serves them with Handler. It must not import
// internal/api, internal/jobs or cmd/*.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/audex-dev/audex/internal/store"
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

	// StreamedEvents and StreamBatches count what stream batches
	// delivered by this process hold, by destination type.
	StreamedEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "audex_stream_events_total",
		Help: "Events delivered by stream batches, by destination type.",
	}, []string{"sink"})
	StreamBatches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "audex_stream_batches_total",
		Help: "Stream batches delivered, by destination type.",
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
func Handler(pool *pgxpool.Pool, logger *slog.Logger, reads ...*store.Reads) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		RequestDuration, EventsIngested, ExportsFinished, ExportedRecords, ExportedBytes, StreamedEvents, StreamBatches, PurgedEvents,
	)
	if pool != nil {
		reg.MustRegister(&stateCollector{pool: pool})
	}
	reads = slices.DeleteFunc(reads, func(r *store.Reads) bool { return r == nil })
	if len(reads) > 0 {
		reg.MustRegister(&readsCollector{reads: reads})
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
	lagDesc     = prometheus.NewDesc("audex_stream_lag_seconds", "How far behind now each active stream's watermark is (all tenants).", []string{"stream"}, nil)
)

// stateQueryTimeout bounds the scrape's database reads.
const stateQueryTimeout = 5 * time.Second

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- exportsDesc
	ch <- purgesDesc
	ch <- riverDesc
	ch <- lagDesc
}

// Collect implements prometheus.Collector. Every gauge keeps its series
// when nothing is in a state: each status, and each queue and state of
// River's, is reported, as 0 when no row has it.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), stateQueryTimeout)
	defer cancel()
	exports, err := store.CountExportsByStatus(ctx, c.pool)
	send(ch, exportsDesc, exports, err, func(s store.StateCount) []string { return []string{s.State} })
	purges, err := store.CountPurgesByStatus(ctx, c.pool)
	send(ch, purgesDesc, purges, err, func(s store.StateCount) []string { return []string{s.State} })
	jobs, err := store.CountUnfinishedRiverJobs(ctx, c.pool)
	send(ch, riverDesc, jobs, err, func(s store.StateCount) []string { return []string{s.Queue, s.State} })
	lags, err := store.ActiveStreamLags(ctx, c.pool)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(lagDesc, err)
		return
	}
	for _, l := range lags {
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, l.Seconds, l.StreamID)
	}
}

// send sends one gauge per count, labelled by labels; a failed read is
// reported as an invalid metric, which the handler logs.
func send(ch chan<- prometheus.Metric, desc *prometheus.Desc, counts []store.StateCount, err error, labels func(store.StateCount) []string) {
	if err != nil {
		ch <- prometheus.NewInvalidMetric(desc, err)
		return
	}
	for _, n := range counts {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(n.Count), labels(n)...)
	}
}

// readsCollector reports the read replicas as their last check found
// them (the first Reads': each holds the same replicas) and the reads
// that the primary served instead (all of them).
type readsCollector struct {
	reads []*store.Reads
}

var (
	replicaUpDesc   = prometheus.NewDesc("audex_read_replica_usable", "1 when the read replica may serve reads (up, a standby, at most read_max_lag behind), else 0.", []string{"replica"}, nil)
	replicaLagDesc  = prometheus.NewDesc("audex_read_replica_lag_seconds", "How far behind the primary each read replica was at its last check.", []string{"replica"}, nil)
	fallbacksDesc   = prometheus.NewDesc("audex_read_primary_fallbacks_total", "Reads the primary served because no read replica could, by reason.", []string{"reason"}, nil)
	fallbackReasons = []string{store.FallbackNoReplica, store.FallbackReplicaBehind, store.FallbackReplicaFailed}
)

// Describe implements prometheus.Collector.
func (c *readsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- replicaUpDesc
	ch <- replicaLagDesc
	ch <- fallbacksDesc
}

// Collect implements prometheus.Collector; every reason keeps its series
// at 0.
func (c *readsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.reads[0].Replicas() {
		up := 0.0
		if r.Usable {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(replicaUpDesc, prometheus.GaugeValue, up, r.Name)
		ch <- prometheus.MustNewConstMetric(replicaLagDesc, prometheus.GaugeValue, r.Lag.Seconds(), r.Name)
	}
	counts := map[string]int64{}
	for _, r := range c.reads {
		for reason, n := range r.Fallbacks() {
			counts[reason] += n
		}
	}
	for _, reason := range fallbackReasons {
		ch <- prometheus.MustNewConstMetric(fallbacksDesc, prometheus.CounterValue, float64(counts[reason]), reason)
	}
}
