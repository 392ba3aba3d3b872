package main

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// TestUIBrowserReview is issue #21's Review page in real Chromium, on the
// twin systems of TestE2ECommunicationReviewTwins (the bad one retries
// without backoff, calls a failing service with no breaker, loops over a
// catalog, waits on a slow service with no timeout): the page is open
// before the review has anything to say and shows the observations live,
// grouped by namespace, with markers on the map; filtered by kind (a chip,
// the URL's ?kind=) it keeps that kind's rows and markers only; a marker
// leads to its subject's page. A screenshot goes to -screenshots
// (docs/screenshots/review.png in the repository).
func TestUIBrowserReview(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about a minute")
	}
	dir := *screenshotDir
	if dir == "" {
		dir = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	cfgFile := filepath.Join(t.TempDir(), "cartograph.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte("detectors:\n  review:\n    hub_min_entry_share: 0.3\n    async_warning_ms: 2000\n"), 0o600))
	col := startCollector(t, "--ui-addr=127.0.0.1:0", "--config="+cfgFile, "--pair-ttl=15s", "--eval-interval=1s")
	require.NotNil(t, col.UI)
	base := "http://" + col.UI.String()

	tab := newBrowser(t)
	require.NoError(t, within(tab, 20*time.Second, chromedp.Navigate(base+"/review")))
	t.Cleanup(func() {
		if t.Failed() {
			screenshot(t, tab, dir, "failed-review")
		}
	})
	require.True(t, evalJS[bool](t, tab, `Array.from(document.querySelectorAll("#nav a")).some(a => a.textContent === "Review" && a.classList.contains("active"))`), "in the navigation")

	bad, good := startReviewTwins(t, col)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	poisson(ctx, &wg, bad, reviewTwinRate, 1)
	poisson(ctx, &wg, good, reviewTwinRate, 2)
	t.Cleanup(func() { stop(); wg.Wait() })

	// Live, without a reload: the bad twin's observations, as rows and as
	// markers on the map.
	kinds := `new Set(Array.from(document.querySelectorAll("#review .robs-row")).map(r => r.dataset.kind))`
	require.NoError(t, pollJS(tab, 90*time.Second, `(() => { const k = `+kinds+`; return ["no_circuit_breaker", "chatty_edge", "retry_without_backoff", "no_timeout", "sync_chain"].every(x => k.has(x)) })()`),
		"the observations arrive live")
	require.GreaterOrEqual(t, evalJS[int](t, tab, `document.querySelectorAll("#review svg#map .mark").length`), 4, "markers on the map")
	groups := evalJS[[]string](t, tab, `Array.from(document.querySelectorAll("#review .rgroup")).map(g => g.dataset.namespace)`)
	require.Contains(t, groups, "bad", "grouped by namespace")
	require.NotEmpty(t, evalJS[[]string](t, tab, `Array.from(document.querySelectorAll('#review .rgroup[data-namespace="bad"] .robs-row.sev-warning')).map(r => r.dataset.id)`),
		"the bad twin's warnings, in its namespace")
	// Each row carries its numbers, why it matters and the remedy.
	row := evalJS[string](t, tab, `document.querySelector('#review .robs-row[data-kind="no_circuit_breaker"]').textContent`)
	require.Contains(t, row, "error ratio")
	require.Contains(t, row, "Why it matters:")
	require.Contains(t, row, "Remedy:")
	require.Empty(t, readLegibility(t, tab).Small, "no drawn text under 11 px")
	screenshot(t, tab, dir, "review")

	// Filter by kind with its chip: the URL says so; only that kind's rows
	// and markers are left.
	require.NoError(t, within(tab, 10*time.Second, chromedp.Click(chromedp.CSS(`#review .kinds a[data-kind="no_circuit_breaker"]`))))
	require.NoError(t, pollAcrossLoads(tab, 10*time.Second, `location.search.includes("kind=no_circuit_breaker") && document.querySelector("#review .robs-row") !== null`))
	require.Equal(t, []string{"no_circuit_breaker"}, evalJS[[]string](t, tab, `Array.from(`+kinds+`)`))
	marks := evalJS[[]string](t, tab, `Array.from(document.querySelectorAll("#review svg#map .mark")).map(a => a.getAttribute("href"))`)
	require.Len(t, marks, 1, "one subject: bad/c2 -> bad/down")
	require.Contains(t, marks[0], "/edge?id=")

	// The marker leads to the edge's page, keyboard first: focus it and
	// press Enter.
	require.NoError(t, within(tab, 10*time.Second, chromedp.Focus(chromedp.CSS(`#review svg#map .mark`)), chromedp.KeyEvent("\r")))
	require.NoError(t, pollAcrossLoads(tab, 10*time.Second, `location.pathname === "/edge" && document.querySelector("main h1") !== null`), "followed the marker")
	title := evalJS[string](t, tab, `document.querySelector("main h1").textContent`)
	require.Contains(t, title, "c2")
	require.Contains(t, title, "down")
}

// pollJS across a page load: the load started by a click destroys the
// page's context under a poll, which then starts again in the new one.
func pollAcrossLoads(ctx context.Context, d time.Duration, expr string) error {
	deadline := time.Now().Add(d)
	for {
		err := pollJS(ctx, time.Until(deadline), expr)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
