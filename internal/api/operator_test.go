package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/storetest"
)

// scrape reads /metrics into metric families.
func scrape(t *testing.T, b *testBundle) map[string]*dto.MetricFamily {
	t.Helper()
	res := b.do(t, "GET", "/metrics", "", nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.True(t, strings.HasPrefix(res.header.Get("Content-Type"), "text/plain"), res.header.Get("Content-Type"))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(res.body))
	require.NoError(t, err)
	return families
}

// sample returns the value of the family's sample whose labels include
// labels (a histogram's count), or -1 when there is none.
func sample(families map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f := families[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	eb := setupExports(t, false)
	b := eb.testBundle
	before := scrape(t, b)

	b.ingest(t, event("doc.read", "alice"), event("doc.read", "bob"), event("doc.write", "alice"))
	eb.createExport(t, map[string]any{"since": "2020-01-01", "until": "2100-01-01", "format": "jsonl", "destination": map[string]any{"name": "local"}})
	require.Equal(t, http.StatusNotFound, b.do(t, "GET", "/no/such/route", "", nil).status)
	after := scrape(t, b)

	// Other tests share the process's counters: they only grow.
	require.GreaterOrEqual(t, sample(after, "audex_events_ingested_total", nil)-sample(before, "audex_events_ingested_total", nil), 3.0)
	ingests := map[string]string{"route": "/v1/audit/events", "method": "POST", "status": "201"}
	require.GreaterOrEqual(t, sample(after, "audex_http_request_duration_seconds", ingests)-max(0, sample(before, "audex_http_request_duration_seconds", ingests)), 1.0)
	require.GreaterOrEqual(t, sample(after, "audex_http_request_duration_seconds", map[string]string{"route": "unmatched", "method": "GET", "status": "404"}), 1.0)
	require.GreaterOrEqual(t, sample(after, "audex_exports", map[string]string{"status": "queued"}), 1.0, "the export waits for a worker")
	require.GreaterOrEqual(t, sample(after, "audex_river_jobs", map[string]string{"queue": "exports", "state": "available"}), 1.0)
	for _, status := range []string{"queued", "running", "completed", "failed"} {
		require.GreaterOrEqual(t, sample(after, "audex_purges", map[string]string{"status": status}), 0.0, "audex_purges{status=%q} is reported, 0 or more", status)
	}
	require.Positive(t, sample(after, "go_goroutines", nil))

	res := b.do(t, "GET", "/metrics?format=json", "", nil)
	require.Equal(t, http.StatusBadRequest, res.status)
}

func TestRiverUIAccess(t *testing.T) {
	t.Parallel()
	eb := setupExports(t, false)
	b := eb.testBundle
	exportID := eb.createExport(t, map[string]any{"since": "2020-01-01", "until": "2100-01-01", "format": "jsonl", "destination": map[string]any{"name": "local"}})
	operator := storetest.NewKey(t, b.pool, b.tenant, audex.ScopeOperator)

	get := func(t *testing.T, path string, auth func(*http.Request)) response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), "GET", b.url+path, nil)
		require.NoError(t, err)
		auth(req)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		var body bytes.Buffer
		_, err = body.ReadFrom(res.Body)
		require.NoError(t, err)
		return response{status: res.StatusCode, header: res.Header, body: body.Bytes()}
	}

	t.Run("WithoutAKeyABrowserIsAskedForOne", func(t *testing.T) {
		res := get(t, "/admin/river/", func(*http.Request) {})
		require.Equal(t, http.StatusUnauthorized, res.status)
		require.Contains(t, res.header.Get("WWW-Authenticate"), `Basic realm="audex operator"`)
		require.Equal(t, "unauthenticated", res.errorBody(t).Code)
	})
	t.Run("TheKeyAsABasicPasswordOpensTheUI", func(t *testing.T) {
		res := get(t, "/admin/river/", func(r *http.Request) { r.SetBasicAuth("ops", operator) })
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		require.Contains(t, res.header.Get("Content-Type"), "text/html")
		require.Contains(t, string(res.body), "River")
	})
	t.Run("AWrongBasicPasswordIsRefused", func(t *testing.T) {
		res := get(t, "/admin/river/", func(r *http.Request) { r.SetBasicAuth("ops", "adx_wrong") })
		require.Equal(t, http.StatusUnauthorized, res.status)
	})
	t.Run("BasicIsNotAcceptedOnTenantRoutes", func(t *testing.T) {
		res := get(t, "/v1/audit/events", func(r *http.Request) { r.SetBasicAuth("ops", b.key) })
		require.Equal(t, http.StatusUnauthorized, res.status)
		require.Empty(t, res.header.Get("WWW-Authenticate"))
	})
	t.Run("ATenantsAdminKeyIsForbidden", func(t *testing.T) {
		res := get(t, "/admin/river/api/jobs?state=available", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+b.key) })
		require.Equal(t, http.StatusForbidden, res.status)
	})
	t.Run("AnOperatorKeyGrantsNoTenantRoute", func(t *testing.T) {
		res := get(t, "/v1/audit/events", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+operator) })
		require.Equal(t, http.StatusForbidden, res.status)
	})
	t.Run("TheUIsAPIListsTheQueuedExportJob", func(t *testing.T) {
		res := get(t, "/admin/river/api/jobs?state=available&kinds=export&limit=1000", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+operator) })
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		var jobs struct {
			Data []struct {
				Kind string          `json:"kind"`
				Args json.RawMessage `json:"args"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(res.body, &jobs), "%s", res.body)
		found := false
		for _, j := range jobs.Data {
			found = found || j.Kind == "export" && strings.Contains(string(j.Args), exportID)
		}
		require.True(t, found, "export %s among %s", exportID, res.body)
	})
}
