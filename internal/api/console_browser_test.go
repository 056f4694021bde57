package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/storetest"
	"github.com/audex-dev/audex/internal/testenv"
)

// consoleEvents is how many events the console's browser test pages
// through.
const consoleEvents = 2500

// TestConsoleInABrowser works the console in headless Chromium as a reader
// would: sign in, filter, page to the end, open an event, follow its
// actor's trail, sign out; and tries the tenant wall and the scopes
// through the page. With AUDEX_SCREENSHOT_DIR set it saves a screenshot of
// each view there (docs/console-*.png).
func TestConsoleInABrowser(t *testing.T) {
	t.Parallel()
	chromium := testenv.Require(t, "AUDEX_TEST_CHROMIUM", "run the tests with `make test`, which installs Chromium")
	eb := setupExports(t, true)
	b := eb.testBundle
	actors := []string{"alice", "bob", "carol", "dave", "erin"}
	for batch := 0; batch < consoleEvents/500; batch++ {
		events := make([]map[string]any, 500)
		for i := range events {
			n := batch*500 + i
			e := event([]string{"doc.read", "doc.write", "user.login"}[n%3], actors[n%len(actors)])
			e["id"] = fmt.Sprintf("evt-%05d", n)
			e["occurred_at"] = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Minute).Format(time.RFC3339)
			e["target"] = map[string]any{"id": fmt.Sprintf("doc-%d", n%7), "type": "document"}
			e["success"] = n%10 != 0
			e["source_ip"] = fmt.Sprintf("10.0.%d.%d", n%4, n%200)
			events[i] = e
		}
		b.ingest(t, events...)
	}
	reader := storetest.NewKey(t, b.pool, b.tenant, audex.ScopeRead, audex.ScopeExport)
	ctx := browser(t, chromium)
	shot := screenshotter(t, ctx)

	// ids returns the ids of the events table's rows.
	ids := func(t *testing.T) []string {
		t.Helper()
		got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#events tbody tr")].map(r => r.dataset.id)`))
		require.NoError(t, err)
		return got
	}
	// pageToTheEnd presses "Load more" until the table holds every event.
	pageToTheEnd := func(t *testing.T) {
		t.Helper()
		require.Eventually(t, func() bool {
			done, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
				if (document.getElementById("events-status").dataset.done === "true") return true;
				const more = document.getElementById("more");
				if (!more.hidden && !more.disabled) more.click();
				return false;
			})()`))
			require.NoError(t, err)
			return done
		}, time.Minute, 20*time.Millisecond, "the events view reaches the end")
	}
	// waitListed waits for the events view's first page.
	waitListed := func(t *testing.T) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#events-status[data-done]`))))
	}
	signIn := func(t *testing.T, ctx context.Context, key string) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(b.url+"/console/"),
			chromedp.WaitVisible(chromedp.ID("sign-in")),
			chromedp.SendKeys(chromedp.ID("key"), key),
			chromedp.Click(chromedp.CSS(`#sign-in button[type="submit"]`)),
		))
	}
	apiIDs := func(t *testing.T, query string) []string {
		t.Helper()
		var out []string
		for _, e := range b.listAllWithAudit(t, query) {
			out = append(out, e.ID)
		}
		return out
	}

	t.Run("SignIn", func(t *testing.T) {
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(b.url+"/console/"),
			chromedp.WaitVisible(chromedp.ID("sign-in")),
		))
		shot("console-sign-in.png")
		signIn(t, ctx, reader)
		waitListed(t)
		require.Equal(t, apiIDs(t, "limit=100")[:100], ids(t), "the first page, newest first")
		// The key is nowhere the page's scripts can read, nor in its URL.
		held, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie + "|" + JSON.stringify(localStorage) + "|" + JSON.stringify(sessionStorage) + "|" + location.href`))
		require.NoError(t, err)
		require.NotContains(t, held, reader)
		require.NotContains(t, held, "audex_console", "the session cookie is HttpOnly")
	})

	t.Run("FilterPageToTheEndAndMatchTheAPI", func(t *testing.T) {
		require.NoError(t, chromedp.Do(ctx,
			chromedp.SetValue(chromedp.ID("f-action"), "doc.write"),
			chromedp.SetValue(chromedp.ID("f-success"), "true"),
			chromedp.Click(chromedp.CSS(`#filters button[type="submit"]`)),
		))
		waitListed(t)
		loc, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.search`))
		require.NoError(t, err)
		q, err := url.ParseQuery(strings.TrimPrefix(loc, "?"))
		require.NoError(t, err)
		require.Equal(t, url.Values{"action": {"doc.write"}, "success": {"true"}}, q, "the filters live in the page's URL")
		pageToTheEnd(t)
		require.Equal(t, apiIDs(t, "action=doc.write&success=true&limit=1000"), ids(t))

		// A shared URL opens the same view.
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.url+"/console/events?actor_id=bob&since=2026-11-02")))
		waitListed(t)
		pageToTheEnd(t)
		require.Equal(t, apiIDs(t, "actor_id=bob&since=2026-11-02&limit=1000"), ids(t))

		// Every event, through the cursors, to the end.
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.url+"/console/events")))
		waitListed(t)
		shot("console-events.png")
		pageToTheEnd(t)
		all := apiIDs(t, "limit=1000")
		require.GreaterOrEqual(t, len(all), consoleEvents)
		require.Equal(t, all, ids(t), "every id, in the API's order")
	})

	t.Run("DownloadTheViewsEventsFromThePage", func(t *testing.T) {
		dir := t.TempDir()
		_, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
			Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir})
		require.NoError(t, err)
		const view = "action=doc.write&since=2026-11-01&until=2026-11-02T12:00:00Z"
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(b.url+"/console/events?"+view),
			chromedp.WaitVisible(chromedp.CSS(`#events-status[data-done]`)),
			chromedp.SetValue(chromedp.ID("download-format"), "ndjson"),
			chromedp.Click(chromedp.ID("download-button")),
		))
		var lines []string
		require.Eventually(t, func() bool {
			files, _ := filepath.Glob(filepath.Join(dir, "audex-*.jsonl"))
			if len(files) != 1 {
				return false
			}
			data, err := os.ReadFile(files[0])
			require.NoError(t, err)
			lines = strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
			return true
		}, 30*time.Second, 50*time.Millisecond, "the download is saved")
		want := b.listAll(t, "order=asc&limit=1000&"+view)
		require.Len(t, lines, len(want))
		for i, e := range want {
			require.Equal(t, string(e.AppendJSON(nil)), lines[i], "line %d is the event's canonical encoding, oldest first", i+1)
		}
	})

	t.Run("OpenAnEventAndFollowItsActorsTrail", func(t *testing.T) {
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(b.url+"/console/events?action=user.login"),
			chromedp.WaitVisible(chromedp.CSS(`#events-status[data-done]`)),
			chromedp.Click(chromedp.CSS(`#events tbody tr:first-child a`)),
			chromedp.WaitVisible(chromedp.ID("event")),
		))
		shot("console-event.png")
		id, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#event dd[data-field="id"]').textContent`))
		require.NoError(t, err)
		want := apiIDs(t, "action=user.login&limit=1")[0]
		require.Equal(t, want, id)
		var e audex.Event
		b.do(t, "GET", "/v1/audit/events/"+id, b.key, nil).decode(t, &e)
		shown, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("event-json").textContent`))
		require.NoError(t, err)
		require.Contains(t, shown, `"id": "`+id+`"`, "the event's JSON")

		require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.ID("actor-trail"))))
		waitListed(t)
		pageToTheEnd(t)
		require.Equal(t, apiIDs(t, "actor_id="+e.Actor.ID+"&limit=1000"), ids(t), "the actor's trail")
	})

	t.Run("TheSummaryChartsNumbersAreTheAPIs", func(t *testing.T) {
		const window = "since=2026-10-29&until=2026-11-04T00:00:00Z"
		// Whatever the Content Security Policy blocks (the chart library's
		// styles included) is counted.
		_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
			Source: `window.blocked = []; document.addEventListener("securitypolicyviolation", e => window.blocked.push(e.violatedDirective + " " + e.blockedURI))`})
		require.NoError(t, err)
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(b.url+"/console/summary?"+window),
			chromedp.WaitVisible(chromedp.CSS(`#summary-status[data-done]`)),
			chromedp.WaitVisible(chromedp.CSS(`#summary-chart canvas`)),
		))
		var want struct {
			Since, Until time.Time
			audex.Summary
		}
		b.do(t, "GET", "/v1/audit/summary?"+window, b.key, nil).decode(t, &want)
		require.Len(t, want.EventsPerDay, 2, "the events fall on two days")
		number := func(s string) int64 {
			n, err := strconv.ParseInt(strings.ReplaceAll(strings.TrimSpace(s), ",", ""), 10, 64)
			require.NoError(t, err, "%q", s)
			return n
		}
		blocked, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.blocked`))
		require.NoError(t, err)
		require.Empty(t, blocked, "the policy blocked nothing the summary needs")
		totals, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`["total", "successful", "failed"].map(k => document.querySelector('#totals dd[data-field="' + k + '"]').textContent)`))
		require.NoError(t, err)
		require.Equal(t, []int64{want.TotalEvents, want.SuccessfulEvents, want.FailedEvents}, []int64{number(totals[0]), number(totals[1]), number(totals[2])})

		// The chart's own data: every day of the window, zeros included.
		data, err := chromedp.Run(ctx, chromedp.Evaluate[[][]float64](`document.getElementById("summary-chart").uplot.data.map(a => Array.from(a))`))
		require.NoError(t, err)
		require.Len(t, data, 3)
		require.Len(t, data[0], 6, "six days from 2026-10-29 to 2026-11-04")
		perDay := map[string]audex.DayCount{}
		for _, d := range want.EventsPerDay {
			perDay[d.Day] = d
		}
		for i, x := range data[0] {
			day := time.Unix(int64(x), 0).UTC().Format(time.DateOnly)
			require.Equal(t, []float64{float64(perDay[day].Events), float64(perDay[day].Failed)}, []float64{data[1][i], data[2][i]}, "the chart's %s", day)
		}
		// The legend, as a reader hovers over the busiest day.
		busiest := want.EventsPerDay[0]
		for _, d := range want.EventsPerDay {
			if d.Events > busiest.Events {
				busiest = d
			}
		}
		dayStart, err := time.Parse(time.DateOnly, busiest.Day)
		require.NoError(t, err)
		// overDay is where in the page the chart draws the busiest day.
		overDay := func(t *testing.T) []float64 {
			t.Helper()
			at, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](fmt.Sprintf(`(() => {
				const u = document.getElementById("summary-chart").uplot, r = u.over.getBoundingClientRect();
				return [r.left + u.valToPos(%d, "x"), r.top + r.height / 2];
			})()`, dayStart.Unix())))
			require.NoError(t, err)
			return at
		}
		at := overDay(t)
		require.NoError(t, chromedp.Do(ctx, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, at[0], at[1])))
		legend, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#summary-chart .u-legend .u-series .u-value")].map(v => v.textContent)`))
		require.NoError(t, err)
		require.Len(t, legend, 3)
		require.Equal(t, busiest.Day, legend[0], "the legend names the day under the cursor")
		require.Equal(t, []int64{busiest.Events, busiest.Failed}, []int64{number(legend[1]), number(legend[2])}, "and its numbers")
		_, err = chromedp.Run(ctx, chromedp.Evaluate[any](`document.getElementById("totals").scrollIntoView()`))
		require.NoError(t, err)
		shot("console-summary.png")

		// The days' table and the top lists say the same as the API.
		rows := func(t *testing.T, table string) [][]string {
			t.Helper()
			got, err := chromedp.Run(ctx, chromedp.Evaluate[[][]string](`[...document.querySelectorAll("`+table+` tbody tr")].map(r => [...r.cells].map(c => c.textContent))`))
			require.NoError(t, err)
			return got
		}
		var days [][]string
		for _, d := range want.EventsPerDay {
			days = append(days, []string{d.Day, fmt.Sprint(d.Events), fmt.Sprint(d.Failed)})
		}
		got := rows(t, "#days")
		for _, r := range got {
			r[1], r[2] = fmt.Sprint(number(r[1])), fmt.Sprint(number(r[2]))
		}
		require.Equal(t, days, got)
		top := func(t *testing.T, table string) map[string]int64 {
			t.Helper()
			out := map[string]int64{}
			for _, r := range rows(t, table) {
				out[r[0]] = number(r[1])
			}
			return out
		}
		actors, ips := map[string]int64{}, map[string]int64{}
		for _, c := range want.TopActors {
			actors[c.ActorID] = c.Count
		}
		for _, c := range want.TopSourceIPs {
			ips[c.SourceIP] = c.Count
		}
		require.Equal(t, actors, top(t, "#top-actors"))
		require.Equal(t, ips, top(t, "#top-source-ips"))
		require.Len(t, ips, 10)
		require.Equal(t, want.ActionsBreakdown, top(t, "#top-actions"), "three actions: all of them")

		// A top source IP opens its events in the same window.
		ip := want.TopSourceIPs[0]
		require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#top-source-ips tbody tr:first-child a`))))
		waitListed(t)
		pageToTheEnd(t)
		opened := ids(t)
		require.Len(t, opened, int(ip.Count))
		require.Equal(t, apiIDs(t, fmt.Sprintf("source_ip=%s&since=%s&until=%s&limit=1000", ip.SourceIP,
			want.Since.Format(time.RFC3339Nano), want.Until.Format(time.RFC3339Nano))), opened)

		// A day's bar opens that day's events.
		require.NoError(t, chromedp.Do(ctx,
			chromedp.NavigateBack(),
			chromedp.WaitVisible(chromedp.CSS(`#summary-chart canvas`)),
		))
		at = overDay(t)
		require.NoError(t, chromedp.Do(ctx, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, at[0], at[1]), chromedp.MouseClickXY(at[0], at[1])))
		waitListed(t)
		pageToTheEnd(t)
		require.Len(t, ids(t), int(busiest.Events), "the day's events")
	})

	t.Run("TheKeyboardAloneFiltersAndOpensAnEvent", func(t *testing.T) {
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(b.url+"/console/events"),
			chromedp.WaitVisible(chromedp.CSS(`#events-status[data-done]`)),
			chromedp.Focus(chromedp.ID("f-actor_id")),
			chromedp.KeyEvent("carol"+kb.Enter),
			chromedp.WaitVisible(chromedp.CSS(`#events-status[data-done]`)),
		))
		loc, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.search`))
		require.NoError(t, err)
		require.Equal(t, "?actor_id=carol", loc, "Enter in a filter applies it")
		first := apiIDs(t, "actor_id=carol&limit=1")[0]
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Focus(chromedp.CSS(`#events tbody tr:first-child a`)),
			chromedp.KeyEvent(kb.Enter),
			chromedp.WaitVisible(chromedp.ID("event")),
		))
		id, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#event dd[data-field="id"]').textContent`))
		require.NoError(t, err)
		require.Equal(t, first, id, "Enter on a row's link opens its event")
	})

	t.Run("CreateAnExportAndSeeItComplete", func(t *testing.T) {
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(b.url+"/console/exports"),
			chromedp.WaitVisible(chromedp.ID("new-export")),
			chromedp.SetValue(chromedp.ID("x-since"), "2026-11-01"),
			chromedp.SetValue(chromedp.ID("x-until"), "2026-11-03"),
			chromedp.SetValue(chromedp.ID("x-format"), "csv"),
			chromedp.SetValue(chromedp.ID("x-action"), "doc.read, user.login"),
			chromedp.Click(chromedp.CSS(`#new-export button[type="submit"]`)),
			chromedp.WaitVisible(`//strong[@id="export-status" and text()="completed"]`),
		))
		shot("console-export.png")
		loc, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname`))
		require.NoError(t, err)
		id := strings.TrimPrefix(loc, "/console/exports/")
		e := eb.waitExport(t, id)
		require.Equal(t, audex.ExportCompleted, e.Status)
		want := b.listAll(t, "action=doc.read,user.login&since=2026-11-01&until=2026-11-03&limit=1000")
		require.EqualValues(t, len(want), *e.RecordCount, "the export the page created holds the filtered events")
		require.Equal(t, "csv", e.Format)
		shown, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("export-records").textContent`))
		require.NoError(t, err)
		require.Contains(t, strings.ReplaceAll(shown, ",", ""), fmt.Sprintf("%d records", len(want)))
		manifest, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('dd[data-field="manifest"]').textContent`))
		require.NoError(t, err)
		require.Equal(t, *e.ManifestKey, manifest)

		// The list of exports holds it, and leads to it.
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(b.url+"/console/exports"),
			chromedp.WaitVisible(chromedp.CSS(`#exports tr[data-id="`+id+`"]`)),
		))

		// An ingest that has not committed holds the next export at its
		// start, running, until the page cancels it.
		// The cancel is pressed while the export waits at its barrier:
		// the cancel's own self-audit event must not wait behind it.
		tx := storetest.HoldIngest(t, b.pool, b.tenant)
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(b.url+"/console/exports"),
			chromedp.WaitVisible(chromedp.ID("new-export")),
			chromedp.Click(chromedp.CSS(`#new-export button[type="submit"]`)),
			chromedp.WaitVisible(`//strong[@id="export-status" and text()="running"]`),
		))
		require.Eventually(t, func() bool { return storetest.AtIngestBarrier(t, b.pool) }, time.Minute, 10*time.Millisecond)
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Click(chromedp.ID("cancel-export")),
			chromedp.WaitVisible(`//strong[@id="export-status" and text()="cancelled"]`),
		))
		loc, err = chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname`))
		require.NoError(t, err)
		var cancelled audex.Export
		b.do(t, "GET", "/v1/audit/exports/"+strings.TrimPrefix(loc, "/console/exports/"), b.key, nil).decode(t, &cancelled)
		require.Equal(t, audex.ExportCancelled, cancelled.Status)
		require.NoError(t, tx.Rollback(t.Context()))
	})

	t.Run("AnExportsViewRidesOutAFailedRefresh", func(t *testing.T) {
		tx := storetest.HoldIngest(t, b.pool, b.tenant) // the export stays running
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(b.url+"/console/exports"),
			chromedp.WaitVisible(chromedp.ID("new-export")),
			chromedp.Click(chromedp.CSS(`#new-export button[type="submit"]`)),
			chromedp.WaitVisible(`//strong[@id="export-status" and text()="running"]`),
		))
		// The page's requests for the export fail, as on a network that
		// drops: the view stays, says so, and tries again.
		block := func(patterns ...*network.BlockPattern) {
			t.Helper()
			_, err := chromedp.Call(ctx, network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: patterns})
			require.NoError(t, err)
		}
		block(&network.BlockPattern{URLPattern: b.url + "/v1/audit/exports/*", Block: true})
		require.NoError(t, chromedp.Do(ctx,
			chromedp.WaitVisible(`//p[@id="live-error" and starts-with(text(), "Could not refresh")]`),
			chromedp.WaitVisible(`//strong[@id="export-status" and text()="running"]`),
		))
		block()
		require.NoError(t, tx.Rollback(t.Context()))
		require.NoError(t, chromedp.Do(ctx,
			chromedp.WaitVisible(`//strong[@id="export-status" and text()="completed"]`),
			chromedp.WaitNotPresent(chromedp.ID("live-error")),
		))
	})

	t.Run("AStreamsStatusAndBatches", func(t *testing.T) {
		st := eb.createStream(t, map[string]any{"destination": map[string]any{"name": "local"}, "format": "jsonl",
			"interval_seconds": 1, "start": time.Now().Add(-time.Hour).Format(time.RFC3339Nano),
			"filters": map[string]any{"action": "doc.write"}})
		want := len(b.listAll(t, "action=doc.write&limit=1000"))
		require.Eventually(t, func() bool { return eb.getStream(t, st.ID).EventsDelivered >= int64(want) }, 30*time.Second, 100*time.Millisecond)
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(b.url+"/console/streams"),
			chromedp.WaitVisible(chromedp.CSS(`#streams tr[data-id="`+st.ID+`"] a`)),
			chromedp.Click(chromedp.CSS(`#streams tr[data-id="`+st.ID+`"] a`)),
			chromedp.WaitVisible(chromedp.ID("stream-batches")),
		))
		shot("console-stream.png")
		batches := eb.batches(t, st.ID)
		shown, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#stream-batches tbody tr").length`))
		require.NoError(t, err)
		require.Equal(t, len(batches), shown, "every batch")
		delivered, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('dd[data-field="events_delivered"]').textContent`))
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint(want), delivered)

		require.NoError(t, chromedp.Do(ctx,
			chromedp.Click(chromedp.ID("stream-toggle")),
			chromedp.WaitVisible(`//strong[@id="stream-status" and text()="paused"]`),
		))
		require.Equal(t, audex.StreamPaused, eb.getStream(t, st.ID).Status, "paused through the page")
	})

	t.Run("TheTenantWallAndTheScopesHoldInThePage", func(t *testing.T) {
		other := setup(t)
		other.ingest(t, map[string]any{"id": "evt-other-tenant", "action": "doc.read", "actor": map[string]any{"id": "zed"}})
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(b.url+"/console/events/evt-other-tenant"),
			chromedp.WaitVisible(`//p[contains(., "No event evt-other-tenant in this tenant")]`),
		))
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.url+"/console/events?actor_id=zed")))
		waitListed(t)
		require.Empty(t, ids(t), "another tenant's actor has no events here")

		// A key that may only write: the page signs in and says it may not
		// read.
		writer := storetest.NewKey(t, b.pool, b.tenant, audex.ScopeWrite)
		tab := browser(t, chromium)
		signIn(t, tab, writer)
		require.NoError(t, chromedp.Do(tab, chromedp.WaitVisible(`//p[@id="events-status" and contains(., "may not read events")]`)))
		hidden, err := chromedp.Run(tab, chromedp.Evaluate[bool](`document.querySelector('nav a[data-view="exports"]').hidden`))
		require.NoError(t, err)
		require.True(t, hidden, "no Exports link without audit:export")
		require.NoError(t, chromedp.Do(tab,
			chromedp.Navigate(b.url+"/console/exports"),
			chromedp.WaitVisible(`//p[@id="exports-error" and contains(., "may not export")]`),
			chromedp.Navigate(b.url+"/console/admin"),
			chromedp.WaitVisible(`//p[@id="admin-error" and contains(., "may not administer")]`),
		))
		// Another tenant's export is not found through the page.
		otherExport := storetest.NewKey(t, b.pool, storetest.NewTenant(t), audex.ScopeExport)
		res := b.do(t, "POST", "/v1/audit/exports", otherExport, map[string]any{"since": "2026-01-01", "until": "2026-02-01", "format": "jsonl", "destination": map[string]any{"name": "local"}})
		require.Equal(t, http.StatusAccepted, res.status, "%s", res.body)
		var created struct {
			ExportID string `json:"export_id"`
		}
		res.decode(t, &created)
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(b.url+"/console/exports/"+created.ExportID),
			chromedp.WaitVisible(`//p[contains(., "No export `+created.ExportID+` in this tenant")]`),
		))
	})

	t.Run("AdminSetsRetentionAndPurgesAfterADryRun", func(t *testing.T) {
		admin := storetest.NewKey(t, b.pool, b.tenant, audex.ScopeAdmin, audex.ScopeRead)
		tab := browser(t, chromium)
		adminShot := screenshotter(t, tab)
		signIn(t, tab, admin)
		require.NoError(t, chromedp.Do(tab,
			chromedp.WaitVisible(chromedp.CSS(`#events-status[data-done]`)),
			chromedp.Navigate(b.url+"/console/admin"),
			chromedp.WaitVisible(`//p[@id="retention-status" and contains(., "kept forever")]`),
			chromedp.Click(chromedp.ID("retain-forever")), // the default: unchecked, the days can be set
			chromedp.SetValue(chromedp.ID("retain-days"), "400"),
			chromedp.Click(chromedp.CSS(`#retention button[type="submit"]`)),
			chromedp.WaitVisible(`//p[@id="retention-status" and contains(., "kept 400 days")]`),
		))
		var policy struct {
			RetainDays *int `json:"retain_days"`
		}
		b.do(t, "GET", "/v1/audit/retention", b.key, nil).decode(t, &policy)
		require.NotNil(t, policy.RetainDays)
		require.Equal(t, 400, *policy.RetainDays)

		// Events each minute from 2026-11-01T00:00Z: 360 before 06:00.
		const before = "2026-11-01T06:00:00Z"
		var dry struct {
			Deleted int64 `json:"deleted"`
		}
		b.do(t, "POST", "/v1/audit/purge", b.key, map[string]any{"before": before, "dry_run": true}).decode(t, &dry)
		require.EqualValues(t, 360, dry.Deleted)
		require.NoError(t, chromedp.Do(tab,
			chromedp.SendKeys(chromedp.ID("purge-before"), before),
			chromedp.Click(chromedp.CSS(`#purge button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.ID("purge-confirm")),
		))
		adminShot("console-admin.png")
		counted, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById("purge-status").dataset.deleted`))
		require.NoError(t, err)
		require.Equal(t, "360", counted, "the dry run's count")
		require.NoError(t, chromedp.Do(tab,
			chromedp.Click(chromedp.ID("purge-confirm")),
			chromedp.WaitVisible(`//strong[@id="purge-state" and text()="completed"]`),
		))
		deleted, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.querySelector('dd[data-field="deleted"]').textContent`))
		require.NoError(t, err)
		require.Equal(t, "360", deleted)
		require.Empty(t, b.listAll(t, "until="+before+"&limit=1000"), "the events before it are gone")
		loc, err := chromedp.Run(tab, chromedp.Evaluate[string](`location.pathname`))
		require.NoError(t, err)
		require.NoError(t, chromedp.Do(tab,
			chromedp.Navigate(b.url+"/console/admin"),
			chromedp.WaitVisible(`//ul[@id="purge-receipts"]//a[text()="`+strings.TrimPrefix(loc, "/console/purges/")+`"]`),
		))

		// A session that expires under an open page: its next request
		// brings the sign-in back, and no view covers it.
		_, err = b.pool.Exec(t.Context(), `UPDATE console_sessions SET expires_at = now() - interval '1 second'
			WHERE key_id = (SELECT id FROM api_keys WHERE key_hash = $1)`, audex.HashKey(admin))
		require.NoError(t, err)
		require.NoError(t, chromedp.Do(tab,
			chromedp.Click(chromedp.CSS(`nav a[data-view="admin"]`)),
			chromedp.WaitVisible(`//p[@id="sign-in-message" and contains(., "session has ended")]`),
		))
	})

	t.Run("DarkWhenTheSystemIs", func(t *testing.T) {
		dark := func(on bool) {
			value := "light"
			if on {
				value = "dark"
			}
			_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: value}}})
			require.NoError(t, err)
		}
		colors := func(t *testing.T) []string {
			t.Helper()
			require.NoError(t, chromedp.Do(ctx,
				chromedp.Navigate(b.url+"/console/summary?since=2026-10-29&until=2026-11-04T00:00:00Z"),
				chromedp.WaitVisible(chromedp.CSS(`#summary-chart[data-drawn]`)),
			))
			got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[getComputedStyle(document.body).backgroundColor, getComputedStyle(document.body).color,
				document.getElementById("summary-chart").uplot.series[1].stroke()]`))
			require.NoError(t, err)
			return got
		}
		dark(true)
		defer dark(false)
		require.Equal(t, []string{"rgb(15, 18, 22)", "rgb(230, 237, 243)", "#58a6ff"}, colors(t), "the page and the chart in the dark scheme")
		shot("console-dark.png")
		dark(false)
		require.Equal(t, []string{"rgb(255, 255, 255)", "rgb(27, 31, 36)", "#0b5cad"}, colors(t), "and in the light one")
	})

	t.Run("EveryViewFitsAPhonesWidth", func(t *testing.T) {
		require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)))
		defer func() { require.NoError(t, chromedp.Do(ctx, chromedp.EmulateReset())) }()
		for _, view := range []string{"/console/events", "/console/events/evt-01000", "/console/summary", "/console/streams", "/console/exports"} {
			require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(b.url+view), chromedp.WaitVisible(chromedp.CSS("main h1"))))
			width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
			require.NoError(t, err)
			require.LessOrEqual(t, width, 390, "%s scrolls sideways on a phone (wide tables scroll in their own box)", view)
		}
		shot("console-phone.png")
	})

	t.Run("SignOutEndsTheSession", func(t *testing.T) {
		cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{})
		require.NoError(t, err)
		var session *network.Cookie
		for _, c := range cookies.Cookies {
			if c.Name == "audex_console" {
				session = c
			}
		}
		require.NotNil(t, session, "the browser holds the session's cookie")
		require.True(t, session.HTTPOnly)
		require.Equal(t, network.CookieSameSiteStrict, session.SameSite)
		csrf, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch("/console/session").then(r => r.json()).then(s => s.csrf_token)`, chromedp.EvalAwaitPromise))
		require.NoError(t, err)

		require.NoError(t, chromedp.Do(ctx,
			chromedp.Click(chromedp.ID("sign-out")),
			chromedp.WaitVisible(chromedp.ID("sign-in")),
		))
		res := b.consoleRequest(t, "GET", "/v1/audit/events", &http.Cookie{Name: session.Name, Value: session.Value}, csrf, "")
		require.Equal(t, http.StatusUnauthorized, res.status, "the old session is refused on the server")
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(b.url+"/console/events"),
			chromedp.WaitVisible(chromedp.ID("sign-in")),
		))
	})
}

// browser starts headless Chromium for the test (closed when it ends, four
// minutes at most: under make test's load one export of the console's
// took 90 s, and two minutes ran out for the views after it) and returns
// its context.
func browser(t *testing.T, chromium string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(cancelTimeout)
	_, err := chromedp.Call(ctx, network.Enable, network.EnableParams{})
	require.NoError(t, err)
	return ctx
}

// screenshotter returns a function that saves a screenshot of the
// browser's window as name in AUDEX_SCREENSHOT_DIR, when it is set.
func screenshotter(t *testing.T, ctx context.Context) func(name string) {
	dir := os.Getenv("AUDEX_SCREENSHOT_DIR")
	return func(name string) {
		t.Helper()
		if dir == "" {
			return
		}
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()) // the 1280x800 window
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), png, 0o644))
	}
}
