package metrics_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex/internal/metrics"
	"github.com/audex-dev/audex/internal/queue"
	"github.com/audex-dev/audex/internal/storetest"
)

// scrape gets the handler's metrics as Prometheus parses them.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code, "%s", rec.Body)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(rec.Body)
	require.NoError(t, err)
	return families
}

// gauges returns a gauge family's values by their labels' values joined
// with "/", after checking that it has its help and type.
func gauges(t *testing.T, families map[string]*dto.MetricFamily, name string) map[string]float64 {
	t.Helper()
	f, ok := families[name]
	require.True(t, ok, "%s is in the scrape", name)
	require.NotEmpty(t, f.GetHelp(), name)
	require.Equal(t, dto.MetricType_GAUGE, f.GetType(), name)
	values := map[string]float64{}
	for _, m := range f.GetMetric() {
		key := ""
		for i, l := range m.GetLabel() {
			if i > 0 {
				key += "/"
			}
			key += l.GetValue()
		}
		values[key] = m.GetGauge().GetValue()
	}
	return values
}

func TestHandler(t *testing.T) {
	t.Parallel()

	// Each subtest has a database of its own, with no export, purge or
	// River job in it, and a handler that reads it.
	type testBundle struct {
		pool    *pgxpool.Pool
		handler http.Handler
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		pool := storetest.IsolatedPool(t)
		return &testBundle{pool: pool, handler: metrics.Handler(pool, slog.New(slog.DiscardHandler))}
	}
	states := []string{"available", "pending", "retryable", "running", "scheduled"}

	t.Run("EveryGaugeKeepsItsSeriesAtZeroWithNoJobs", func(t *testing.T) {
		t.Parallel()
		families := scrape(t, setup(t).handler)
		want := map[string]float64{}
		for _, s := range states {
			want["default/"+s] = 0
		}
		require.Equal(t, want, gauges(t, families, "audex_river_jobs"))
		require.Equal(t, map[string]float64{"queued": 0, "running": 0, "completed": 0, "failed": 0, "cancelled": 0},
			gauges(t, families, "audex_exports"))
		require.Equal(t, map[string]float64{"queued": 0, "running": 0, "completed": 0, "failed": 0}, gauges(t, families, "audex_purges"))
	})

	t.Run("AQueueKeepsEveryStateBesideItsJobs", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := context.Background()
		client, err := queue.NewInsertClient(b.pool, slog.New(slog.DiscardHandler))
		require.NoError(t, err)
		_, err = client.Insert(ctx, queue.ExportArgs{ExportID: "exp_x"}, nil)
		require.NoError(t, err)
		// A queue a worker registered, with no job.
		_, err = b.pool.Exec(ctx, `INSERT INTO river_queue (name, created_at, metadata, updated_at) VALUES ('idle', now(), '{}', now())`)
		require.NoError(t, err)

		got := gauges(t, scrape(t, b.handler), "audex_river_jobs")
		want := map[string]float64{}
		for _, q := range []string{"default", queue.Exports, "idle"} {
			for _, s := range states {
				want[q+"/"+s] = 0
			}
		}
		want[queue.Exports+"/available"] = 1
		require.Equal(t, want, got)
	})
}
