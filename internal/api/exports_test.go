package api_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/api"
	"github.com/audex-dev/audex/internal/config"
	"github.com/audex-dev/audex/internal/jobs"
	"github.com/audex-dev/audex/internal/logtest"
	"github.com/audex-dev/audex/internal/metrics"
	"github.com/audex-dev/audex/internal/queue"
	"github.com/audex-dev/audex/internal/sinks"
	"github.com/audex-dev/audex/internal/sinks/sinktest"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

// exportBundle is a server with export destinations and, when started, a
// worker.
type exportBundle struct {
	*testBundle
	folders map[string]string     // file destination name -> folder
	sinks   map[string]sinks.Sink // destination name -> sink, to read back
	river   *river.Client[pgx.Tx]
}

// setupExports starts a server whose destinations are "local" (a folder
// open to all, prefix "exports"), "private" (open to another tenant only)
// and "missing" (a folder that does not exist), plus one destination per
// type in sinkTypes, named after it, on a fresh bucket of its emulator;
// with a worker when withWorker.
func setupExports(t *testing.T, withWorker bool, sinkTypes ...string) *exportBundle {
	t.Helper()
	opts := exportOptions{worker: withWorker, extra: map[string]sinks.Config{}, getenvs: map[string]func(string) string{}}
	for _, typ := range sinkTypes {
		opts.extra[typ], opts.getenvs[typ] = sinktest.NewBucket(t, typ)
	}
	return newExportBundle(t, opts)
}

// setupExportsWith is setupExports with a worker and the extra
// destinations given, each named by its key.
func setupExportsWith(t *testing.T, extra map[string]sinks.Config) *exportBundle {
	t.Helper()
	return newExportBundle(t, exportOptions{worker: true, extra: extra})
}

// testExportTiming is the workers' timing in these tests: attempts of 2 s,
// so that big exports continue across attempts.
var testExportTiming = jobs.ExportTiming{Window: 2 * time.Second, LeaseTTL: 5 * time.Second}

// exportOptions shape an exportBundle.
type exportOptions struct {
	worker  bool                           // start a worker
	extra   map[string]sinks.Config        // more destinations, by name
	getenvs map[string]func(string) string // their getenv (default os.Getenv)
	timing  jobs.ExportTiming              // default testExportTiming
	logger  *slog.Logger                   // the server's and worker's; default discards
	exports api.ExportLimits               // the server's export limits
	limits  api.Limits                     // the server's per-tenant limits
}

func newExportBundle(t *testing.T, opts exportOptions) *exportBundle {
	t.Helper()
	withWorker, extra, getenvs := opts.worker, opts.extra, opts.getenvs
	if opts.timing == (jobs.ExportTiming{}) {
		opts.timing = testExportTiming
	}
	logger := opts.logger
	if logger == nil {
		// Kept, and shown when the test fails: what the worker did is
		// what a failure of these tests turns on.
		buf := &logtest.Buffer{}
		logger = slog.New(slog.NewJSONHandler(buf, nil))
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("the server's and worker's last log lines:\n%s", buf.Tail(200))
			}
		})
	}
	pool := storetest.Pool(t)
	if withWorker {
		pool = storetest.IsolatedPool(t) // a worker must not take other tests' jobs
	}
	root := t.TempDir()
	folders := map[string]string{"local": filepath.Join(root, "local"), "private": filepath.Join(root, "private")}
	for _, f := range folders {
		require.NoError(t, os.MkdirAll(f, 0o755))
	}
	folders["missing"] = filepath.Join(root, "missing")
	type dest struct {
		cfg    sinks.Config
		getenv func(string) string
	}
	dests := map[string]dest{}
	destinations := []config.Destination{
		{Name: "local", Type: "file", Bucket: folders["local"], Prefix: "exports"},
		{Name: "private", Type: "file", Bucket: folders["private"], Tenants: []string{"someone-else"}},
		{Name: "missing", Type: "file", Bucket: folders["missing"]},
		{Name: "hook", Type: "webhook", URLEnv: "AUDEX_TEST_HOOK_URL", SecretEnv: "AUDEX_TEST_HOOK_SECRET", AllowedHosts: []string{"127.0.0.1"}},
	}
	for _, d := range destinations {
		if d.ServesExports() { // the webhook has no sink
			dests[d.Name] = dest{sinks.Config{Type: d.Type, Bucket: d.Bucket}, os.Getenv}
		}
	}
	for name, cfg := range extra {
		getenv := getenvs[name]
		if getenv == nil {
			getenv = os.Getenv
		}
		dests[name] = dest{cfg, getenv}
		destinations = append(destinations, config.Destination{Name: name, Type: cfg.Type, Bucket: cfg.Bucket, Prefix: "audit"})
	}
	open := func(ctx context.Context, name string) (sinks.Sink, error) {
		d, ok := dests[name]
		if !ok {
			return nil, jobs.ErrDestinationGone
		}
		return sinks.New(ctx, d.cfg, d.getenv)
	}
	insertClient, err := queue.NewInsertClient(pool, logger)
	require.NoError(t, err)
	secret, err := store.CursorSecret(t.Context(), pool)
	require.NoError(t, err)
	riverUI, err := api.NewRiverUI(t.Context(), insertClient, logger)
	require.NoError(t, err)
	srv := api.New(api.Config{Pool: pool, Logger: logger, CursorSecret: secret, River: insertClient, Destinations: destinations, RiverUI: riverUI,
		Exports: opts.exports, Limits: opts.limits, StreamMinInterval: time.Second})
	ts := serve(t, srv, logger)
	tenant := storetest.NewTenant(t)
	b := &exportBundle{
		testBundle: &testBundle{url: ts.URL, pool: pool, server: srv, tenant: tenant,
			key: storetest.NewKey(t, pool, tenant, audex.ScopeRead, audex.ScopeWrite, audex.ScopeExport, audex.ScopeAdmin)},
		folders: folders,
		sinks:   map[string]sinks.Sink{},
	}
	for name := range dests {
		s, err := open(t.Context(), name)
		require.NoError(t, err)
		b.sinks[name] = s
	}
	if withWorker {
		client, err := jobs.NewClient(jobs.Config{Pool: pool, Logger: logger, OpenSink: open,
			ExportTiming: opts.timing})
		require.NoError(t, err)
		require.NoError(t, client.Start(context.WithoutCancel(t.Context())))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_ = client.Stop(ctx)
		})
		b.river = client
	}
	return b
}

// createExport posts an export and returns its id.
func (b *exportBundle) createExport(t *testing.T, body map[string]any) string {
	t.Helper()
	res := b.do(t, "POST", "/v1/audit/exports", b.key, body)
	require.Equal(t, http.StatusAccepted, res.status, "%s", res.body)
	var created struct {
		ExportID string `json:"export_id"`
		Status   string `json:"status"`
	}
	res.decode(t, &created)
	require.Equal(t, "queued", created.Status)
	require.Equal(t, "/v1/audit/exports/"+created.ExportID, res.header.Get("Location"))
	return created.ExportID
}

// waitExport polls until the export reaches a final status.
func (b *exportBundle) waitExport(t *testing.T, id string) audex.Export {
	t.Helper()
	var e audex.Export
	require.Eventually(t, func() bool {
		b.do(t, "GET", "/v1/audit/exports/"+id, b.key, nil).decode(t, &e)
		return e.Status != "queued" && e.Status != "running"
	}, 60*time.Second, 50*time.Millisecond)
	return e
}

// readParts reads an export's parts back through its destination's sink
// (the SDK of its store) and returns the event ids in order, checking each
// part's size and sha256 against its manifest entry.
func (b *exportBundle) readParts(t *testing.T, e audex.Export) []string {
	t.Helper()
	var got []string
	for _, f := range e.Files {
		data := b.readObject(t, e.Destination.Name, f.Key)
		require.EqualValues(t, len(data), f.SizeBytes)
		sum := sha256.Sum256(data)
		require.Equal(t, hex.EncodeToString(sum[:]), f.SHA256)
		var r io.Reader = bytes.NewReader(data)
		if strings.HasSuffix(f.Key, ".gz") {
			zr, err := gzip.NewReader(r)
			require.NoError(t, err)
			r = zr
		}
		n := 0
		if e.Format == "csv" {
			rows, err := csv.NewReader(r).ReadAll()
			require.NoError(t, err)
			require.Equal(t, "id", rows[0][0], "every CSV part starts with the header")
			for _, row := range rows[1:] {
				got = append(got, row[0])
				n++
			}
		} else {
			sc := bufio.NewScanner(r)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var ev audex.Event
				require.NoError(t, json.Unmarshal(sc.Bytes(), &ev))
				got = append(got, ev.ID)
				n++
			}
		}
		require.EqualValues(t, f.Records, n)
	}
	return got
}

// requireSameIDs requires two id lists to be equal, reporting the first
// difference rather than both lists.
func requireSameIDs(t *testing.T, want, got []string) {
	t.Helper()
	for i := range min(len(want), len(got)) {
		if want[i] != got[i] {
			t.Fatalf("ids differ first at %d: want %s, got %s", i, want[i], got[i])
		}
	}
	require.Equal(t, len(want), len(got), "number of events")
}

// readObject reads one object of a destination.
func (b *exportBundle) readObject(t *testing.T, destination, key string) []byte {
	t.Helper()
	rc, err := b.sinks[destination].Open(t.Context(), key)
	require.NoError(t, err)
	defer rc.Close()
	data, err := io.ReadAll(rc)
	require.NoError(t, err)
	return data
}

func TestExportJobs(t *testing.T) {
	t.Parallel()

	t.Run("ExportsExactlyTheMatchingEventsInPartsWithAManifest", func(t *testing.T) {
		t.Parallel()
		b := setupExports(t, true)
		end := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
		b.seed(t, 30_000, end)
		since, until := "2026-04-10T00:00:00Z", "2026-04-28T00:00:00Z"
		want := ids(b.listAll(t, "order=asc&limit=1000&action=doc.read,user.login&since="+since+"&until="+until))
		require.Greater(t, len(want), 5000)

		for _, tc := range []struct{ format, compression string }{{"jsonl", "gzip"}, {"csv", "none"}} {
			t.Run(tc.format+"_"+tc.compression, func(t *testing.T) {
				recordsBefore, bytesBefore, completedBefore := exportMetrics()
				id := b.createExport(t, map[string]any{
					"since": since, "until": until, "format": tc.format, "compression": tc.compression,
					"filters":          map[string]any{"action": []string{"doc.read", "user.login"}},
					"destination":      map[string]any{"name": "local", "prefix": "april"},
					"part_max_records": 2500,
				})
				e := b.waitExport(t, id)
				require.Equal(t, "completed", e.Status, "error: %+v", e.Error)
				require.EqualValues(t, len(want), *e.RecordCount)
				require.Equal(t, 100, e.Progress.Percent)
				require.Len(t, e.Files, (len(want)+2499)/2500)
				for i, f := range e.Files[:len(e.Files)-1] {
					require.EqualValues(t, 2500, f.Records, "part %d is full", i+1)
				}
				ext := map[string]string{"jsonl": "jsonl.gz", "csv": "csv"}[tc.format]
				require.Equal(t, "exports/april/"+id+"/part-00001."+ext, e.Files[0].Key)
				requireSameIDs(t, want, b.readParts(t, e))
				var size int64
				for _, f := range e.Files {
					size += f.SizeBytes
				}
				// Other tests export too: the counters grow by at least this export.
				recordsAfter, bytesAfter, completedAfter := exportMetrics()
				require.GreaterOrEqual(t, recordsAfter-recordsBefore, float64(len(want)), "audex_export_records_total{sink=file}")
				require.GreaterOrEqual(t, bytesAfter-bytesBefore, float64(size), "audex_export_bytes_total{sink=file}")
				require.GreaterOrEqual(t, completedAfter-completedBefore, 1.0, "audex_exports_finished_total{status=completed}")
				require.Equal(t, "local", e.Destination.Name)
				require.Equal(t, "exports/april", e.Destination.Prefix)

				manifest := b.readObject(t, "local", "exports/april/"+id+"/manifest.json")
				status := b.do(t, "GET", "/v1/audit/exports/"+id, b.key, nil)
				require.JSONEq(t, string(status.body), string(manifest), "the manifest equals the status")

				var completions listAnswer
				b.do(t, "GET", "/v1/audit/events?action=audit.export_created,audit.export_completed&limit=100", b.key, nil).decode(t, &completions)
				var targets []string
				for _, ev := range completions.Events {
					targets = append(targets, ev.Action+" "+*ev.Target.ID)
				}
				require.Contains(t, targets, "audit.export_created "+id)
				require.Contains(t, targets, "audit.export_completed "+id)
			})
		}
	})

	t.Run("AnEstimateBeyondTheExactCountBecomesTheCountOnceItRuns", func(t *testing.T) {
		t.Parallel()
		b := setupExports(t, true)
		const n = 100_500 // beyond the 100,000 that POST counts exactly
		b.seed(t, n, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
		id := b.createExport(t, map[string]any{"since": "2026-01-01", "until": "2026-06-01", "format": "csv",
			"destination": map[string]any{"name": "local"}, "part_max_records": 50_000})
		e := b.waitExport(t, id)
		require.Equal(t, "completed", e.Status, "error: %+v", e.Error)
		require.EqualValues(t, n, *e.RecordCount)
		var estimated int64
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT estimated_records FROM exports WHERE id = $1`, id).Scan(&estimated))
		require.EqualValues(t, n, estimated, "the worker replaced the planner's estimate with the count")
	})

	t.Run("APartTooBigForOneAttemptClosesEarly", func(t *testing.T) {
		t.Parallel()
		// Attempts of 1 ms and leases of 200 ms: a part of all 80,000
		// events cannot be written within one attempt's timeout, so each
		// attempt must close its part half a lease past its window. (An
		// idle machine wrote 30,000 within those 100 ms.)
		b := newExportBundle(t, exportOptions{worker: true, timing: jobs.ExportTiming{Window: time.Millisecond, LeaseTTL: 200 * time.Millisecond}})
		end := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
		b.seed(t, 80_000, end)
		want := ids(b.listAll(t, "order=asc&limit=1000&since=2026-04-01&until=2026-05-01"))
		id := b.createExport(t, map[string]any{
			"since": "2026-04-01", "until": "2026-05-01", "format": "jsonl",
			"destination": map[string]any{"name": "local"}, "part_max_records": 100_000,
		})
		e := b.waitExport(t, id)
		require.Equal(t, "completed", e.Status, "error: %+v", e.Error)
		require.Greater(t, len(e.Files), 1, "the parts closed before part_max_records")
		requireSameIDs(t, want, b.readParts(t, e))
	})

	t.Run("AnExportOfNothingCompletesWithNoParts", func(t *testing.T) {
		t.Parallel()
		b := setupExports(t, true)
		id := b.createExport(t, map[string]any{"since": "2020-01-01", "until": "2020-02-01", "format": "csv", "destination": map[string]any{"name": "local"}})
		e := b.waitExport(t, id)
		require.Equal(t, "completed", e.Status)
		require.EqualValues(t, 0, *e.RecordCount)
		require.Empty(t, e.Files)
		require.Equal(t, "exports/"+id+"/manifest.json", *e.ManifestKey)
		require.FileExists(t, filepath.Join(b.folders["local"], "exports", id, "manifest.json"))
	})

	t.Run("AMissingFolderFailsWithAClearError", func(t *testing.T) {
		t.Parallel()
		b := setupExports(t, true)
		b.ingest(t, event("doc.read", "alice"))
		id := b.createExport(t, map[string]any{"since": "2020-01-01", "until": "2100-01-01", "format": "jsonl", "destination": map[string]any{"name": "missing"}})
		e := b.waitExport(t, id)
		require.Equal(t, "failed", e.Status)
		require.Equal(t, "bucket_not_found", e.Error.Code)
		require.Contains(t, e.Error.Message, b.folders["missing"])
	})

	t.Run("CancelOfAQueuedExport", func(t *testing.T) {
		t.Parallel()
		b := setupExports(t, false) // no worker: it stays queued
		id := b.createExport(t, map[string]any{"since": "2020-01-01", "until": "2100-01-01", "format": "jsonl", "destination": map[string]any{"name": "local"}})
		res := b.do(t, "POST", "/v1/audit/exports/"+id+"/cancel", b.key, nil)
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		var e audex.Export
		res.decode(t, &e)
		require.Equal(t, "cancelled", e.Status)
		res = b.do(t, "POST", "/v1/audit/exports/"+id+"/cancel", b.key, nil)
		require.Equal(t, http.StatusConflict, res.status)
	})

	t.Run("AnotherTenantCannotSeePollOrCancel", func(t *testing.T) {
		t.Parallel()
		b := setupExports(t, false)
		id := b.createExport(t, map[string]any{"since": "2020-01-01", "until": "2100-01-01", "format": "jsonl", "destination": map[string]any{"name": "local"}})
		otherKey := storetest.NewKey(t, b.pool, storetest.NewTenant(t), audex.ScopeExport)
		for _, req := range []struct{ method, path string }{
			{"GET", "/v1/audit/exports/" + id},
			{"POST", "/v1/audit/exports/" + id + "/cancel"},
		} {
			res := b.do(t, req.method, req.path, otherKey, nil)
			require.Equal(t, http.StatusNotFound, res.status)
		}
		var list struct {
			Exports []audex.Export `json:"exports"`
		}
		b.do(t, "GET", "/v1/audit/exports", otherKey, nil).decode(t, &list)
		require.Empty(t, list.Exports)
	})

	t.Run("ListIsNewestFirstWithStatusFilterAndCursor", func(t *testing.T) {
		t.Parallel()
		b := setupExports(t, false)
		var created []string
		for range 3 {
			created = append(created, b.createExport(t, map[string]any{"since": "2020-01-01", "until": "2100-01-01", "format": "csv", "destination": map[string]any{"type": "file", "bucket": b.folders["local"]}}))
		}
		b.do(t, "POST", "/v1/audit/exports/"+created[0]+"/cancel", b.key, nil)
		var page struct {
			Exports    []audex.Export `json:"exports"`
			NextCursor *string        `json:"next_cursor"`
			HasMore    bool           `json:"has_more"`
		}
		b.do(t, "GET", "/v1/audit/exports?limit=2", b.key, nil).decode(t, &page)
		require.Len(t, page.Exports, 2)
		require.Equal(t, created[2], page.Exports[0].ID)
		require.True(t, page.HasMore)
		cursor := *page.NextCursor
		b.do(t, "GET", "/v1/audit/exports?limit=2&cursor="+cursor, b.key, nil).decode(t, &page)
		require.Len(t, page.Exports, 1)
		require.Equal(t, created[0], page.Exports[0].ID)
		b.do(t, "GET", "/v1/audit/exports?status=cancelled", b.key, nil).decode(t, &page)
		require.Len(t, page.Exports, 1)
		res := b.do(t, "GET", "/v1/audit/exports?status=cancelled&cursor="+cursor, b.key, nil)
		require.Equal(t, http.StatusBadRequest, res.status)
		res = b.do(t, "GET", "/v1/audit/exports?status=done", b.key, nil)
		require.Equal(t, "status", res.errorBody(t).Field)
	})

	t.Run("BadRequestsAreClearErrors", func(t *testing.T) {
		t.Parallel()
		b := setupExports(t, false)
		base := func(changes map[string]any) map[string]any {
			req := map[string]any{"since": "2026-04-01T00:00:00Z", "until": "2026-05-01T00:00:00Z", "format": "jsonl", "destination": map[string]any{"name": "local"}}
			for k, v := range changes {
				if v == nil {
					delete(req, k)
				} else {
					req[k] = v
				}
			}
			return req
		}
		for field, req := range map[string]map[string]any{
			"format":             base(map[string]any{"format": "json"}),
			"compression":        base(map[string]any{"compression": "zip"}),
			"compression ":       base(map[string]any{"format": "parquet", "compression": "gzip"}),
			"destination":        base(map[string]any{"destination": nil}),
			"part_max_records":   base(map[string]any{"part_max_records": 0}),
			"part_max_bytes":     base(map[string]any{"part_max_bytes": 1024}),
			"since":              base(map[string]any{"since": nil}),
			"until":              base(map[string]any{"until": "2026-03-01"}),
			"filters.limit":      base(map[string]any{"filters": map[string]any{"limit": 3}}),
			"destination.prefix": base(map[string]any{"destination": map[string]any{"name": "local", "prefix": "../escape"}}),
			"destination.bucket": base(map[string]any{"destination": map[string]any{"name": "local", "bucket": "b", "endpoint": "http://evil"}}),
		} {
			res := b.do(t, "POST", "/v1/audit/exports", b.key, req)
			require.Equal(t, http.StatusBadRequest, res.status, "%s: %s", field, res.body)
			got := res.errorBody(t).Field
			field = strings.TrimSpace(field) // a second case of the field
			if field == "destination.bucket" {
				require.Equal(t, "destination.endpoint", got, "credentials and endpoints are unknown fields")
				continue
			}
			require.Equal(t, field, got)
		}
		for _, dest := range []map[string]any{
			{"name": "nope"},
			{"name": "private"}, // configured, but for another tenant only
			{"type": "s3", "bucket": "audit-archive"},
			{"type": "file", "bucket": "/etc"},
		} {
			res := b.do(t, "POST", "/v1/audit/exports", b.key, base(map[string]any{"destination": dest}))
			require.Equal(t, http.StatusBadRequest, res.status, "%v", dest)
			require.Equal(t, "no such destination is configured for this tenant", res.errorBody(t).Message)
		}
		for _, prefix := range []string{"/abs", "a//b", "a/./b", "a/../b", "ünïcode", "a\\b", "a b", strings.Repeat("a", 513)} {
			res := b.do(t, "POST", "/v1/audit/exports", b.key, base(map[string]any{"destination": map[string]any{"name": "local", "prefix": prefix}}))
			require.Equal(t, "destination.prefix", res.errorBody(t).Field, prefix)
		}
	})
}

func TestExportToEverySink(t *testing.T) {
	t.Parallel()
	b := setupExports(t, true, sinktest.SinkTypes...)
	b.seed(t, 250_000, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	filters := map[string]any{"action": []string{"doc.read", "doc.write", "user.login", "billing:charge"}}
	want := ids(b.listAll(t, "order=asc&limit=1000&since=2026-04-01&until=2026-05-01&action=doc.read,doc.write,user.login,billing:charge"))
	require.Greater(t, len(want), 150_000)
	for _, typ := range sinktest.SinkTypes {
		for _, tc := range []struct{ format, compression string }{{"jsonl", "gzip"}, {"csv", "none"}} {
			t.Run(typ+"_"+tc.format+"_"+tc.compression, func(t *testing.T) {
				id := b.createExport(t, map[string]any{"since": "2026-04-01", "until": "2026-05-01", "format": tc.format,
					"compression": tc.compression, "filters": filters, "destination": map[string]any{"name": typ, "prefix": "runs"},
					"part_max_records": 60_000})
				e := b.waitExport(t, id)
				require.Equal(t, "completed", e.Status, "%+v", e.Error)
				requireSameIDs(t, want, b.readParts(t, e))
				// A part may close before its limit when an attempt's
				// window ends (a slow machine or destination), never after;
				// the parts' counts add up to the records read back.
				var records int64
				for _, f := range e.Files {
					require.LessOrEqual(t, f.Records, int64(60_000), f.Key)
					records += f.Records
				}
				require.EqualValues(t, len(want), records)
				require.Equal(t, "audit/runs/"+id+"/manifest.json", *e.ManifestKey)
				status := b.do(t, "GET", "/v1/audit/exports/"+id, b.key, nil)
				require.JSONEq(t, string(status.body), string(b.readObject(t, typ, *e.ManifestKey)))
			})
		}
	}
}

func TestExportJobsUnderLoad(t *testing.T) {
	t.Parallel()

	t.Run("CancelOfARunningExportStopsItAndDeletesItsParts", func(t *testing.T) {
		t.Parallel()
		b := setupExports(t, true)
		b.seed(t, 60_000, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
		id := b.createExport(t, map[string]any{"since": "2020-01-01", "until": "2100-01-01", "format": "jsonl",
			"destination": map[string]any{"name": "local"}, "part_max_records": 200})
		var e audex.Export
		require.Eventually(t, func() bool {
			b.do(t, "GET", "/v1/audit/exports/"+id, b.key, nil).decode(t, &e)
			return e.Progress.PartsWritten >= 3
		}, 30*time.Second, 5*time.Millisecond)
		require.Equal(t, "running", e.Status)

		cancelledAt := time.Now()
		res := b.do(t, "POST", "/v1/audit/exports/"+id+"/cancel", b.key, nil)
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		res.decode(t, &e)
		require.Equal(t, "cancelled", e.Status)
		partsAtCancel := e.Progress.PartsWritten

		folder := filepath.Join(b.folders["local"], "exports", id)
		require.Eventually(t, func() bool {
			entries, err := os.ReadDir(folder)
			return (err == nil && len(entries) == 0) || os.IsNotExist(err)
		}, 5*time.Second, 20*time.Millisecond, "the parts are deleted")
		require.Less(t, time.Since(cancelledAt), 5*time.Second)
		time.Sleep(500 * time.Millisecond)
		b.do(t, "GET", "/v1/audit/exports/"+id, b.key, nil).decode(t, &e)
		require.Equal(t, "cancelled", e.Status)
		require.LessOrEqual(t, e.Progress.PartsWritten, partsAtCancel+1, "at most the part in flight is recorded")
		_, err := os.Stat(filepath.Join(folder, "manifest.json"))
		require.True(t, os.IsNotExist(err), "no manifest for a cancelled export")
		entries, _ := os.ReadDir(folder)
		require.Empty(t, entries, "no part written after the cancel")
	})

	t.Run("HoldsEveryEventAcknowledgedBeforeAsOfDuringFullSpeedIngest", func(t *testing.T) {
		t.Parallel()
		b := setupExports(t, true)
		type ack struct {
			ids []string
			at  time.Time
		}
		var mu sync.Mutex
		var acks []ack
		stop := make(chan struct{})
		var wg sync.WaitGroup
		occurred := time.Date(2026, 4, 15, 0, 0, 0, 0, time.UTC)
		for c := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					batch := make([]audex.Event, 200)
					batchIDs := make([]string, len(batch))
					for i := range batch {
						batchIDs[i] = fmt.Sprintf("c%d-%d-%d", c, n, i)
						batch[i] = audex.Event{ID: batchIDs[i], OccurredAt: occurred.Add(time.Duration(n*200+i) * time.Millisecond),
							Action: "load.test", Actor: audex.Actor{ID: "loader"}, Metadata: []byte("{}")}
					}
					if _, err := store.InsertEvents(context.Background(), b.pool, b.tenant, batch); err != nil {
						t.Errorf("ingest: %v", err)
						return
					}
					mu.Lock()
					acks = append(acks, ack{ids: batchIDs, at: time.Now()})
					mu.Unlock()
				}
			}()
		}
		time.Sleep(700 * time.Millisecond)
		id := b.createExport(t, map[string]any{"since": "2026-04-01", "until": "2026-05-01", "format": "jsonl",
			"destination": map[string]any{"name": "local"}, "filters": map[string]any{"action": "load.test"}})
		time.Sleep(700 * time.Millisecond)
		close(stop)
		wg.Wait()

		e := b.waitExport(t, id)
		require.Equal(t, "completed", e.Status, "%+v", e.Error)
		exported := map[string]bool{}
		for _, id := range b.readParts(t, e) {
			exported[id] = true
		}
		acked := 0
		for _, a := range acks {
			if a.at.Before(e.AsOf) {
				for _, id := range a.ids {
					require.True(t, exported[id], "event %s was acknowledged before as_of", id)
					acked++
				}
			}
		}
		require.Positive(t, acked)
		var afterAsOf int
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM events WHERE tenant_id = $1 AND action = 'load.test' AND received_at >= $2`, b.tenant, e.AsOf).Scan(&afterAsOf))
		require.Positive(t, afterAsOf, "ingest went on after as_of")
		var before int
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM events WHERE tenant_id = $1 AND action = 'load.test' AND received_at < $2`, b.tenant, e.AsOf).Scan(&before))
		require.Len(t, exported, before, "exactly the events received before as_of")
	})
}

// exportMetrics reads the worker's export counters for file destinations.
func exportMetrics() (records, bytes, completed float64) {
	return testutil.ToFloat64(metrics.ExportedRecords.WithLabelValues("file")),
		testutil.ToFloat64(metrics.ExportedBytes.WithLabelValues("file")),
		testutil.ToFloat64(metrics.ExportsFinished.WithLabelValues(audex.ExportCompleted))
}

func TestListDestinations(t *testing.T) {
	t.Parallel()
	eb := setupExports(t, false)
	b := eb.testBundle
	res := b.do(t, "GET", "/v1/audit/destinations", b.key, nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.JSONEq(t, `{"destinations": [
		{"name": "local", "type": "file", "exports": true, "streams": true},
		{"name": "missing", "type": "file", "exports": true, "streams": true},
		{"name": "hook", "type": "webhook", "exports": false, "streams": true}]}`, string(res.body),
		"the tenant's destinations in the configuration's order; not another tenant's (private)")
	require.NotContains(t, string(res.body), eb.folders["local"], "no bucket is listed")

	reader := storetest.NewKey(t, b.pool, b.tenant, audex.ScopeRead)
	require.Equal(t, http.StatusForbidden, b.do(t, "GET", "/v1/audit/destinations", reader, nil).status)
}
