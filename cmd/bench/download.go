package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/client"
	"github.com/audex-dev/audex/internal/format"
	"github.com/audex-dev/audex/internal/store"
)

// window is a tenant's rows that a download, an export and their COPY
// baselines all read: occurred_at in [since, until), in (occurred_at, id)
// order.
type window struct {
	tenant       string
	since, until time.Time
	events       int64
}

// newWindow counts the tenant's events in [since, until).
func (b *bench) newWindow(ctx context.Context, tenant string, since, until time.Time) (window, error) {
	w := window{tenant: tenant, since: since, until: until}
	var err error
	if w.events, err = store.CountEvents(ctx, b.pool, tenant, audex.Filter{Since: &since, Until: &until}); err != nil {
		return w, fmt.Errorf("count the window's events: %w", err)
	}
	return w, nil
}

// where is the window's condition as SQL literals (COPY takes no
// parameters); the tenant is one of the benchmark's own names.
func (w window) where() string {
	ts := func(t time.Time) string { return "'" + t.UTC().Format(time.RFC3339Nano) + "'::timestamptz" }
	return fmt.Sprintf("tenant_id = '%s' AND occurred_at >= %s AND occurred_at < %s", w.tenant, ts(w.since), ts(w.until))
}

// copyCSV and copyJSON are the physical limits that issue 3 names: the
// same rows in the same order, written by PostgreSQL itself.
func (w window) copyCSV() string { return "COPY (" + w.selectAll() + ") TO STDOUT (FORMAT csv)" }

func (w window) copyJSON() string { return "COPY (" + w.selectJSON() + ") TO STDOUT" }

func (w window) selectAll() string {
	return "SELECT * FROM events WHERE " + w.where() + " ORDER BY occurred_at, id"
}

func (w window) selectJSON() string {
	return "SELECT row_to_json(e) FROM events e WHERE " + w.where() + " ORDER BY occurred_at, id"
}

// rate is one timed pass over a window's rows.
type rate struct {
	name     string
	events   int64
	bytes    int64
	elapsed  time.Duration
	baseline bool      // the denominator of the ratios
	api      procDelta // the api process, for HTTP rows
}

func (r rate) perSecond() float64 { return float64(r.events) / r.elapsed.Seconds() }

// countingWriter counts the bytes and newlines written to it.
type countingWriter struct{ bytes, lines int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.bytes += int64(len(p))
	c.lines += int64(bytes.Count(p, []byte{'\n'}))
	return len(p), nil
}

// copyOut runs a COPY ... TO STDOUT into a counter and returns its rate.
func (b *bench) copyOut(ctx context.Context, name, sql string) (rate, error) {
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return rate{}, err
	}
	defer conn.Release()
	var cw countingWriter
	start := time.Now()
	tag, err := conn.Conn().PgConn().CopyTo(ctx, &cw, sql)
	elapsed := time.Since(start)
	if err != nil {
		return rate{}, fmt.Errorf("%s: %w", name, err)
	}
	return rate{name: name, events: tag.RowsAffected(), bytes: cw.bytes, elapsed: elapsed}, nil
}

// downloadResult is the download phase.
type downloadResult struct {
	win       window
	rates     []rate
	plan      string // EXPLAIN of the store's streaming statement
	sql       string
	copyPlans [2]string // EXPLAIN of the COPY statements' queries
}

// download measures POST /v1/audit/export of the big tenant's loaded month
// in every format through the api process, next to COPY of the same rows
// and the store's read path alone, and the api's memory during each.
func (b *bench) download(ctx context.Context, svc *services, key string, win window) (downloadResult, error) {
	res := downloadResult{win: win}
	filter := audex.Filter{Since: &win.since, Until: &win.until}

	// The store's statement for one page of a download, captured as it
	// runs.
	rec := &recordingDB{DBTX: b.pool}
	if _, err := store.ListEvents(ctx, rec, win.tenant, filter, audex.OrderAsc, nil, 2000); err != nil {
		return res, err
	}
	res.sql = rec.sql
	var err error
	if res.plan, err = b.explain(ctx, "EXPLAIN ", rec.sql, rec.args); err != nil {
		return res, err
	}
	for i, q := range []string{win.selectAll(), win.selectJSON()} {
		if res.copyPlans[i], err = b.explain(ctx, "EXPLAIN ", q, nil); err != nil {
			return res, err
		}
	}

	b.waitQuiet(ctx)
	b.logger.Info("downloading", slog.String("step", "warm-up COPY"), slog.Int64("events", win.events))
	if _, err := b.copyOut(ctx, "warm-up", win.copyCSV()); err != nil {
		return res, err
	}
	steps := []func() (rate, error){
		func() (rate, error) {
			return b.copyOut(ctx, "`COPY (SELECT * ... ORDER BY occurred_at, id) TO STDOUT (FORMAT csv)`", win.copyCSV())
		},
		func() (rate, error) {
			r, err := b.copyOut(ctx, "`COPY (SELECT row_to_json(e) ... ORDER BY occurred_at, id) TO STDOUT`: the baseline", win.copyJSON())
			r.baseline = true
			return r, err
		},
		func() (rate, error) {
			return b.streamInProcess(ctx, "store.StreamEvents in the benchmark's process, rows decoded and dropped", win, filter, "")
		},
		func() (rate, error) {
			return b.streamInProcess(ctx, "store.StreamEvents + NDJSON encoder to io.Discard, in the benchmark's process", win, filter, format.NDJSON)
		},
		func() (rate, error) { return b.downloadHTTP(ctx, svc, key, win, "csv", false) },
		func() (rate, error) { return b.downloadHTTP(ctx, svc, key, win, "ndjson", false) },
		func() (rate, error) { return b.downloadHTTP(ctx, svc, key, win, "json", false) },
		func() (rate, error) { return b.downloadHTTP(ctx, svc, key, win, "ndjson", true) },
	}
	for _, step := range steps {
		r, err := step()
		if err != nil {
			return res, err
		}
		if r.events != win.events {
			return res, fmt.Errorf("%s: %d events, want %d", r.name, r.events, win.events)
		}
		b.logger.Info("downloaded", slog.String("path", r.name), slog.Int("events_per_s", int(r.perSecond())))
		res.rates = append(res.rates, r)
	}
	return res, nil
}

// streamInProcess reads the window through store.StreamEvents on the
// benchmark's pool, encoding each event in format when it is not empty:
// the download's path without HTTP and without the api process.
func (b *bench) streamInProcess(ctx context.Context, name string, win window, filter audex.Filter, f string) (rate, error) {
	var cw countingWriter
	var enc format.Encoder
	if f != "" {
		enc = format.NewEncoder(f, &cw)
	}
	var n int64
	start := time.Now()
	err := store.StreamEvents(ctx, b.pool, nil, win.tenant, filter, func(page []audex.Event) error {
		n += int64(len(page))
		for i := range page {
			if enc != nil {
				if err := enc.Write(&page[i]); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err == nil && enc != nil {
		err = enc.Close()
	}
	if err != nil {
		return rate{}, fmt.Errorf("%s: %w", name, err)
	}
	return rate{name: name, events: n, bytes: cw.bytes, elapsed: time.Since(start)}, nil
}

// downloadHTTP downloads the window from the api process in format f
// (client.EventsService.Download), reading and discarding the body, and
// follows the api's memory meanwhile. It counts the events in the body:
// one line each, plus CSV's header and the JSON array's brackets.
func (b *bench) downloadHTTP(ctx context.Context, svc *services, key string, win window, f string, gz bool) (rate, error) {
	name := "POST /v1/audit/export, format=" + f
	transport := &encodingTransport{RoundTripper: streamTransport}
	if gz {
		name += ", Accept-Encoding: gzip"
		transport.accept = "gzip"
	}
	api, err := client.New(svc.apiURL, key, client.WithHTTPClient(&http.Client{Transport: transport}), client.WithRetries(0, 0))
	if err != nil {
		return rate{}, err
	}
	watch, err := svc.api.watch()
	if err != nil {
		return rate{}, err
	}
	start := time.Now()
	body, err := api.Events.Download(ctx, client.DownloadRequest{Format: f, Since: win.since, Until: win.until})
	if err != nil {
		watch.end()
		return rate{}, fmt.Errorf("%s: %w", name, err)
	}
	var cw countingWriter
	var compressed bytes.Buffer
	var sink io.Writer = &cw
	if gz {
		sink = &compressed // decompressed after the clock stops
	}
	_, err = io.Copy(sink, body)
	body.Close()
	elapsed := time.Since(start)
	r := rate{name: name, elapsed: elapsed, api: watch.end(), bytes: cw.bytes}
	if err != nil {
		return rate{}, fmt.Errorf("%s: read body: %w", name, err)
	}
	if gz {
		if transport.encoding != "gzip" {
			return r, fmt.Errorf("%s: the answer is not gzip-encoded", name)
		}
		r.bytes = int64(compressed.Len())
		zr, err := gzip.NewReader(&compressed)
		if err != nil {
			return r, fmt.Errorf("%s: %w", name, err)
		}
		if _, err := io.Copy(&cw, zr); err != nil {
			return r, fmt.Errorf("%s: decompress: %w", name, err)
		}
	}
	switch f {
	case "csv":
		r.events = cw.lines - 1
	case "json":
		r.events = cw.lines - 2
	default:
		r.events = cw.lines
	}
	return r, nil
}

// encodingTransport asks for the Accept-Encoding accept (when not empty),
// which leaves the body as the server encoded it (Go's transport decodes
// only what it asked for itself), and notes the answer's Content-Encoding.
type encodingTransport struct {
	http.RoundTripper
	accept, encoding string
}

func (t *encodingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.accept != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Accept-Encoding", t.accept)
	}
	resp, err := t.RoundTripper.RoundTrip(r)
	if err == nil {
		t.encoding = resp.Header.Get("Content-Encoding")
	}
	return resp, err
}

// streamTransport carries the downloads, without transparent
// decompression (client.EventsService.Download sets no overall timeout:
// the run's context bounds it).
var streamTransport = &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16}

func (b *bench) printDownload(res downloadResult) {
	var base float64
	for _, r := range res.rates {
		if r.baseline {
			base = r.perSecond()
		}
	}
	b.printf("\n## Download: POST /v1/audit/export of %s events\n\n", thousands(res.win.events))
	b.printf("The big tenant's loaded month (`since` %s, `until` %s: %s events), oldest first, through the api process on loopback with an `audit:export` key; the client reads and discards the body. ",
		res.win.since.UTC().Format(time.RFC3339), res.win.until.UTC().Format(time.RFC3339), thousands(res.win.events))
	b.printf("The COPY rows read the same rows in the same order into a discarding writer (pgx `PgConn().CopyTo`), after one untimed COPY that warms the cache; each row is one pass. ")
	b.printf("RSS is the api process's VmRSS before the request and its peak during it (VmHWM after resetting it through /proc/PID/clear_refs, and 20 ms samples); api CPU is its user + system time during the request (/proc/PID/stat).\n\n")
	b.printf("| path | events/s | MiB | seconds | ratio to COPY row_to_json | api RSS before → peak MiB (growth) | api CPU s |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range res.rates {
		rss, cpu := "", ""
		if r.api.rssPeak > 0 {
			rss = fmt.Sprintf("%s → %s (+%s)", mib(r.api.rssFrom), mib(r.api.rssPeak), mib(r.api.rssPeak-r.api.rssFrom))
			cpu = fmt.Sprintf("%.1f", r.api.cpu.Seconds())
		}
		b.printf("| %s | %s | %s | %.1f | %.2f | %s | %s |\n", r.name, thousands(int64(r.perSecond())), mib(r.bytes), r.elapsed.Seconds(), r.perSecond()/base, rss, cpu)
	}
	b.printf("\nThe store's streaming statement (one page of 2,000; the next pages continue after the last one's position) and its plan (`EXPLAIN`):\n\n```sql\n%s\n```\n\n```\n%s\n```\n",
		res.sql, strings.TrimSpace(res.plan))
	b.printf("\nThe plans of the COPY rows' queries (`EXPLAIN`), `SELECT *` then `SELECT row_to_json(e)`:\n\n```\n%s\n```\n\n```\n%s\n```\n",
		strings.TrimSpace(res.copyPlans[0]), strings.TrimSpace(res.copyPlans[1]))
}

// rateOf returns the rate of the row whose name starts with prefix.
func (res downloadResult) rateOf(prefix string) (rate, bool) {
	for _, r := range res.rates {
		if strings.HasPrefix(r.name, prefix) {
			return r, true
		}
	}
	return rate{}, false
}
