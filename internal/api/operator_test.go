package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/storetest"
	"github.com/audex-dev/audex/internal/testenv"
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
		return send(t, b, "GET", path, "", auth)
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

// send makes a request of the server with the headers that set adds (a
// key among them) and returns the answer.
func send(t *testing.T, b *testBundle, method, path, body string, set func(*http.Request)) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, b.url+path, strings.NewReader(body))
	require.NoError(t, err)
	set(req)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	var data bytes.Buffer
	_, err = data.ReadFrom(res.Body)
	require.NoError(t, err)
	return response{status: res.StatusCode, header: res.Header, body: data.Bytes()}
}

// riverUIBundle is a server with River's UI, an operator key and an
// export whose job waits (no worker runs).
type riverUIBundle struct {
	*exportBundle
	operator string // an operator-scoped key
}

func setupRiverUI(t *testing.T) *riverUIBundle {
	t.Helper()
	eb := setupExports(t, false)
	return &riverUIBundle{exportBundle: eb, operator: storetest.NewKey(t, eb.pool, eb.tenant, audex.ScopeOperator)}
}

// queuedJob creates an export and returns the id of its River job.
func (b *riverUIBundle) queuedJob(t *testing.T) int64 {
	t.Helper()
	exportID := b.createExport(t, map[string]any{"since": "2020-01-01", "until": "2100-01-01", "format": "jsonl", "destination": map[string]any{"name": "local"}})
	var id int64
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT id FROM river_job WHERE kind = 'export' AND args->>'export_id' = $1`, exportID).Scan(&id))
	return id
}

// jobState is the state of a River job, "" when it is gone.
func (b *riverUIBundle) jobState(t *testing.T, id int64) string {
	t.Helper()
	var state string
	err := b.pool.QueryRow(t.Context(), `SELECT state FROM river_job WHERE id = $1`, id).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return ""
	}
	require.NoError(t, err)
	return state
}

// TestRiverUIWrites holds the River UI's writes (its JSON API's POST,
// PUT, PATCH and DELETE) to requests that no other site's page can make:
// a browser resends an operator's Basic password to this host on its own.
func TestRiverUIWrites(t *testing.T) {
	t.Parallel()
	b := setupRiverUI(t)
	host := strings.TrimPrefix(b.url, "http://")
	basic := func(r *http.Request) { r.SetBasicAuth("ops", b.operator) }
	deleteBody := func(id int64) string { return fmt.Sprintf(`{"ids":["%d"]}`, id) }

	// Each refused request would delete the job before the fix.
	refused := []struct {
		name    string
		headers map[string]string
	}{
		{"ACrossSiteFetchIsRefusedEvenAsJSON", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example", "Content-Type": "application/json"}},
		{"ASameSiteFetchIsRefused", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "https://other." + host, "Content-Type": "text/plain;charset=UTF-8"}},
		{"AnOldBrowsersCrossOriginPostIsRefused", map[string]string{"Origin": "https://evil.example", "Content-Type": "application/json"}},
		{"ATextPlainPostFromThisOriginWithoutFetchMetadataIsRefused", map[string]string{"Origin": "http://" + host, "Content-Type": "text/plain;charset=UTF-8"}},
		{"AFormPostWithoutOriginIsRefused", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
		{"APostWithoutContentTypeIsRefused", map[string]string{}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			job := b.queuedJob(t)
			res := send(t, b.testBundle, "POST", "/admin/river/api/jobs/delete", deleteBody(job), func(r *http.Request) {
				basic(r)
				for k, v := range tc.headers {
					r.Header.Set(k, v)
				}
			})
			require.Equal(t, http.StatusForbidden, res.status, "%s", res.body)
			require.Equal(t, "permission_denied", res.errorBody(t).Code)
			require.Equal(t, "available", b.jobState(t, job), "the job is not deleted")
		})
	}

	t.Run("TheUIsOwnDeleteFromThisOriginWorks", func(t *testing.T) {
		t.Parallel()
		// What a browser sends for River UI v0.22's delete button: its
		// fetch sets no Content-Type, so the JSON goes as text/plain.
		job := b.queuedJob(t)
		res := send(t, b.testBundle, "POST", "/admin/river/api/jobs/delete", deleteBody(job), func(r *http.Request) {
			basic(r)
			r.Header.Set("Sec-Fetch-Site", "same-origin")
			r.Header.Set("Origin", b.url)
			r.Header.Set("Content-Type", "text/plain;charset=UTF-8")
		})
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		require.Empty(t, b.jobState(t, job), "the job is deleted")
	})
	t.Run("AJSONCancelFromThisOriginWorks", func(t *testing.T) {
		t.Parallel()
		job := b.queuedJob(t)
		res := send(t, b.testBundle, "POST", "/admin/river/api/jobs/cancel", deleteBody(job), func(r *http.Request) {
			basic(r)
			r.Header.Set("Origin", b.url)
			r.Header.Set("Content-Type", "application/json")
		})
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		require.Equal(t, "cancelled", b.jobState(t, job))
	})
	t.Run("AClientWithABearerKeyWritesJSON", func(t *testing.T) {
		t.Parallel()
		// curl and scripts send neither Sec-Fetch-Site nor Origin.
		job := b.queuedJob(t)
		res := send(t, b.testBundle, "POST", "/admin/river/api/jobs/delete", deleteBody(job), func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+b.operator)
			r.Header.Set("Content-Type", "application/json")
		})
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		require.Empty(t, b.jobState(t, job), "the job is deleted")
	})
	t.Run("ReadingWithBasicIsUnchanged", func(t *testing.T) {
		t.Parallel()
		// Reads change nothing, so they pass from anywhere, as before.
		job := b.queuedJob(t)
		res := send(t, b.testBundle, "GET", fmt.Sprintf("/admin/river/api/jobs/%d", job), "", func(r *http.Request) {
			basic(r)
			r.Header.Set("Sec-Fetch-Site", "cross-site")
		})
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		require.Contains(t, string(res.body), `"kind":"export"`)
		res = send(t, b.testBundle, "GET", "/admin/river/", "", basic)
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	})
}

// TestRiverUIWritesInABrowser makes in headless Chromium (the one in
// AUDEX_TEST_CHROMIUM, which scripts/test.sh installs) the request that
// River UI v0.22's delete button makes, and the one that another site's
// page can make with the operator's credentials.
func TestRiverUIWritesInABrowser(t *testing.T) {
	t.Parallel()
	chromium := testenv.Require(t, "AUDEX_TEST_CHROMIUM", "run the tests with `make test`, which installs Chromium")
	b := setupRiverUI(t)
	ctx := browserWithKey(t, chromium, b.operator)
	// River UI's own fetch: a JSON string body and no Content-Type, so
	// that the browser sends text/plain.
	deleteJob := func(id int64, mode string) string {
		return fmt.Sprintf(`fetch(%q, {method: "POST", mode: %q, body: JSON.stringify({ids: ["%d"]}), headers: {Accept: "application/json"}}).then(r => r.status)`,
			b.url+"/admin/river/api/jobs/delete", mode, id)
	}

	t.Run("AnotherSitesPageCannotDeleteAJob", func(t *testing.T) {
		job := b.queuedJob(t)
		// localhost is another site than 127.0.0.1, on the same server.
		other := strings.Replace(b.url, "127.0.0.1", "localhost", 1)
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(other+"/openapi.json")))
		_, err := chromedp.Run(ctx, chromedp.Evaluate[int](deleteJob(job, "no-cors"), chromedp.EvalAwaitPromise))
		require.NoError(t, err)
		require.Equal(t, "available", b.jobState(t, job), "the job is not deleted")
	})
	t.Run("TheUIsDeleteButtonWorks", func(t *testing.T) {
		job := b.queuedJob(t)
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.url+"/admin/river/")))
		status, err := chromedp.Run(ctx, chromedp.Evaluate[int](deleteJob(job, "same-origin"), chromedp.EvalAwaitPromise))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status)
		require.Empty(t, b.jobState(t, job), "the job is deleted")
	})
}
