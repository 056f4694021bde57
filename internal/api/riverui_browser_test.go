package api_test

import (
	"context"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/storetest"
	"github.com/audex-dev/audex/internal/testenv"
)

// browserWithKey is browser, with every request the browser makes
// carrying key as a Bearer key, to any site, as an operator's Basic
// password does once typed.
func browserWithKey(t *testing.T, chromium, key string) context.Context {
	t.Helper()
	ctx := browser(t, chromium)
	_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Authorization": "Bearer " + key},
	})
	require.NoError(t, err)
	return ctx
}

// TestRiverUIInABrowser opens River's UI in headless Chromium (the one in
// AUDEX_TEST_CHROMIUM, which scripts/test.sh installs) with an operator
// key and finds a running export job in its list. With AUDEX_SCREENSHOT
// set, it saves a screenshot of the page there (docs/river-ui.png).
func TestRiverUIInABrowser(t *testing.T) {
	t.Parallel()
	chromium := testenv.Require(t, "AUDEX_TEST_CHROMIUM", "run the tests with `make test`, which installs Chromium")
	eb := setupExports(t, true)
	b := eb.testBundle
	b.ingest(t, event("doc.read", "alice"))

	// An ingest that has not committed holds the export at its start, in
	// River's running state, until the transaction ends.
	tx := storetest.HoldIngest(t, b.pool, b.tenant)
	exportID := eb.createExport(t, map[string]any{"since": "2020-01-01", "until": "2100-01-01", "format": "jsonl", "destination": map[string]any{"name": "local"}})
	require.Eventually(t, func() bool {
		var e audex.Export
		b.do(t, "GET", "/v1/audit/exports/"+exportID, b.key, nil).decode(t, &e)
		return e.Status == audex.ExportRunning
	}, 30*time.Second, 50*time.Millisecond)

	operator := storetest.NewKey(t, b.pool, b.tenant, audex.ScopeOperator)
	ctx := browserWithKey(t, chromium, operator)
	err := chromedp.Do(ctx,
		chromedp.Navigate(b.url+"/admin/river/jobs?state=running"),
		chromedp.WaitVisible(chromedp.Search(`//*[contains(text(), "`+exportID+`")]`)),
	)
	require.NoError(t, err, "the running export %s is listed", exportID)
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch("/admin/river/api/jobs?state=running").then(r => r.status)`, chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status, "the page's own requests carry the key")
	if path := os.Getenv("AUDEX_SCREENSHOT"); path != "" {
		screenshot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: a PNG
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, screenshot, 0o644))
	}

	// A tab without the key is asked for one (HTTP Basic), which headless
	// Chromium cannot give.
	keyless, cancelKeyless := chromedp.NewContext(ctx)
	defer cancelKeyless()
	err = chromedp.Do(keyless, chromedp.Navigate(b.url+"/admin/river/"))
	require.ErrorContains(t, err, "ERR_INVALID_AUTH_CREDENTIALS")

	require.NoError(t, tx.Rollback(t.Context()))
	require.Equal(t, audex.ExportCompleted, eb.waitExport(t, exportID).Status, "the export goes on once the ingest ends")
}
