package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/audex-dev/audex/internal/console"
)

// consoleFirstPageTarget is issue 19's goal: the events view's first page
// renders this soon after navigation, on a tenant of 1,000,000 events.
const consoleFirstPageTarget = 300 * time.Millisecond

// consoleSizeTarget bounds the page's own script and style, gzipped.
const consoleSizeTarget = 200 << 10

// consoleResult is the console phase's measurements.
type consoleResult struct {
	// firstPage is, per navigation, the time from its start to the events
	// view's first page shown (the mark console.js sets).
	firstPage []time.Duration
	// summaryView is, per navigation, the time from its start to the
	// summary view's chart drawn, and summaryCall the summary request's
	// own time within it (the browser's resource timing).
	summaryView, summaryCall []time.Duration
	// assetBytes and assetGzip are the page, its script, its style sheet
	// and the chart library, plain and gzipped.
	assetBytes, assetGzip int
}

// console signs in to the console over HTTP with the read key, gives the
// session's cookie to headless Chromium (BENCH_CHROMIUM, which
// scripts/bench.sh finds or installs), and opens the big tenant's events
// view again and again, each a fresh navigation, reading from the page when
// its first page of 100 events showed; then its summary view (the last 30
// days), reading when its chart was drawn and how long the summary request
// behind it took.
func (b *bench) console(ctx context.Context, svc *services, key string) (consoleResult, error) {
	var res consoleResult
	for _, a := range append([]console.Asset{console.Page}, slices.Collect(maps.Values(console.Assets))...) {
		res.assetBytes += len(a.Body)
		var gz bytes.Buffer
		w, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		_, _ = w.Write(a.Body)
		_ = w.Close()
		res.assetGzip += gz.Len()
	}
	if b.cfg.chromium == "" {
		return res, fmt.Errorf("no Chromium: BENCH_CHROMIUM is not set (scripts/bench.sh sets it)")
	}
	cookie, err := b.consoleCookie(ctx, svc, key)
	if err != nil {
		return res, err
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(b.cfg.chromium), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 800), chromedp.Flag("disable-quic", true))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	u, err := url.Parse(svc.apiURL)
	if err != nil {
		return res, err
	}
	if _, err := chromedp.Call(browser, network.SetCookie, network.SetCookieParams{Name: cookie.Name, Value: cookie.Value,
		Domain: u.Hostname(), Path: "/", HTTPOnly: ptr(true), SameSite: network.CookieSameSiteStrict}); err != nil {
		return res, err
	}
	b.waitQuiet(ctx)
	b.logger.Info("timing_console", slog.Int("navigations", b.cfg.listRequests+listWarmup))
	for i := range b.cfg.listRequests + listWarmup {
		if err := chromedp.Do(browser,
			chromedp.Navigate(svc.apiURL+"/console/events"),
			chromedp.WaitVisible(chromedp.CSS(`#events-status[data-done]`)),
		); err != nil {
			return res, fmt.Errorf("console: the events view: %w", err)
		}
		ms, err := chromedp.Run(browser, chromedp.Evaluate[float64](`performance.getEntriesByName("audex:first-page")[0].startTime`))
		if err != nil {
			return res, fmt.Errorf("console: the first page's mark: %w", err)
		}
		rows, err := chromedp.Run(browser, chromedp.Evaluate[int](`document.querySelectorAll("#events tbody tr").length`))
		if err != nil {
			return res, err
		}
		if rows != 100 {
			return res, fmt.Errorf("console: the first page shows %d rows, want 100", rows)
		}
		if i >= listWarmup {
			res.firstPage = append(res.firstPage, time.Duration(ms*float64(time.Millisecond)))
		}
	}
	for i := range b.cfg.listRequests + listWarmup {
		if err := chromedp.Do(browser,
			chromedp.Navigate(svc.apiURL+"/console/summary"),
			chromedp.WaitVisible(chromedp.CSS(`#summary-chart[data-drawn]`)),
		); err != nil {
			return res, fmt.Errorf("console: the summary view: %w", err)
		}
		times, err := chromedp.Run(browser, chromedp.Evaluate[[]float64](`[performance.getEntriesByName("audex:summary-drawn")[0].startTime,
			performance.getEntriesByType("resource").find(e => new URL(e.name).pathname === "/v1/audit/summary").duration]`))
		if err != nil {
			return res, fmt.Errorf("console: the summary view's timings: %w", err)
		}
		if i >= listWarmup {
			res.summaryView = append(res.summaryView, time.Duration(times[0]*float64(time.Millisecond)))
			res.summaryCall = append(res.summaryCall, time.Duration(times[1]*float64(time.Millisecond)))
		}
	}
	return res, nil
}

// consoleCookie signs in to the console with key, as its page does, and
// returns the session's cookie.
func (b *bench) consoleCookie(ctx context.Context, svc *services, key string) (*http.Cookie, error) {
	body, _ := json.Marshal(map[string]string{"key": key})
	req, err := http.NewRequestWithContext(ctx, "POST", svc.apiURL+"/console/session", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := b.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("console sign-in: %s", res.Status)
	}
	for _, c := range res.Cookies() {
		if c.Name == "audex_console" {
			return c, nil
		}
	}
	return nil, fmt.Errorf("console sign-in: no session cookie")
}

func (b *bench) printConsole(res consoleResult) {
	b.printf("\n## Console\n\n")
	b.printf("The events view of the big tenant (newest first, a page of 100) opened in headless Chromium (1280x800) through the api process, signed in with the read key's session: %d timed navigations after %d warm-up ones, each a fresh load of `/console/events`. The time is the page's own: from the navigation's start to the mark the page sets when its first page of events is in the table (`performance.mark`), so it holds the page's load, its script, the session and filter requests and the list request.\n\n",
		len(res.firstPage), listWarmup)
	b.printf("| measure | p50 ms | p99 ms | slowest ms |\n|---|---:|---:|---:|\n")
	for _, row := range []struct {
		name string
		d    []time.Duration
	}{
		{"navigation to the first page shown", res.firstPage},
		{"navigation to the summary's chart drawn (last 30 days)", res.summaryView},
		{"the summary request within it", res.summaryCall},
	} {
		b.printf("| %s | %s | %s | %s |\n", row.name, ms(percentile(row.d, 0.5)), ms(percentile(row.d, 0.99)), ms(percentile(row.d, 1)))
	}
	b.printf("\nThe summary view is timed the same way, %d times, each a fresh load of `/console/summary`, to the mark the page sets when its chart is drawn (which loads the chart library on the way); the summary request's own time is the browser's resource timing of `GET /v1/audit/summary`.\n\n", len(res.summaryView))
	b.printf("The page, its script, its style sheet and the chart library: %s bytes, %s gzipped.\n", thousands(int64(res.assetBytes)), thousands(int64(res.assetGzip)))
}

// consoleTargets are the console's lines of the targets.
func (b *bench) consoleTargets(res consoleResult) []string {
	p99 := percentile(res.firstPage, 0.99)
	return []string{
		fmt.Sprintf("console events view's first page p99 under %s ms after navigation (%s events): %s ms, %s", ms(consoleFirstPageTarget),
			thousands(int64(b.cfg.events)), ms(p99), verdict(p99 < consoleFirstPageTarget)),
		fmt.Sprintf("console's own script and style under %s KiB gzipped: %.1f KiB, %s", thousands(consoleSizeTarget>>10),
			float64(res.assetGzip)/1024, verdict(res.assetGzip < consoleSizeTarget)),
	}
}
