package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/seed-a49a8342/cartograph/simulate/scenario"
)

var overviewServices = flag.Int("overview-services", 1000, "TestUIBrowserOverview: the services of the load generator's system it draws (10000 measures the overview at that size: BENCHMARKS.md)")

// feedSystem sends the load generator's system of n services to an OTLP
// gRPC endpoint, perTick traces every 100 ms, until the test ends.
func feedSystem(t *testing.T, otlpAddr string, services, perTick int) {
	t.Helper()
	gen, err := scenario.New(scenario.Options{Services: services, Seed: 7})
	require.NoError(t, err)
	cc, err := grpc.NewClient(otlpAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	traces := ptraceotlp.NewGRPCClient(cc)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				_, _ = traces.Export(ctx, ptraceotlp.NewExportRequestFromTraces(gen.Traces(now, perTick)))
			}
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait(); cc.Close() })
}

// apiNodes reads the collector's graph: its nodes' ids and kept
// attributes.
func apiNodes(t *testing.T, s started) map[string]map[string]string {
	t.Helper()
	code, _, body := httpGet(t, apiURL(s, "/api/v1/graph"))
	require.Equal(t, http.StatusOK, code, "%s", body)
	var g struct {
		Nodes []struct {
			ID         string            `json:"id"`
			Attributes map[string]string `json:"attributes"`
		} `json:"nodes"`
	}
	require.NoError(t, json.Unmarshal(body, &g))
	out := make(map[string]map[string]string, len(g.Nodes))
	for _, n := range g.Nodes {
		out[n.ID] = n.Attributes
	}
	return out
}

// pollAfterClick is pollJS across the navigation a click starts: the old
// page's context goes away under the poll, which is then tried again.
func pollAfterClick(ctx context.Context, d time.Duration, expr string) error {
	deadline := time.Now().Add(d)
	for {
		err := pollJS(ctx, time.Until(deadline), expr)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pageTime is how long the page in ctx took from navigation to its load
// event (the map is in the page's HTML, drawn and fitted by then).
func pageTime(t *testing.T, ctx context.Context) time.Duration {
	t.Helper()
	ms := evalJS[float64](t, ctx, `(() => { const n = performance.getEntriesByType("navigation")[0]; return n.loadEventEnd - n.startTime })()`)
	return time.Duration(ms * float64(time.Millisecond))
}

// TestUIBrowserOverview is issue #17's overview in real Chromium at
// 1600x1000: the load generator's system of 1,000 services (about 1,800
// nodes) sent over OTLP opens at the overview of at most 50 group boxes,
// no drawn text under 11 px on screen and the groups' names drawn; a click
// on a box opens its group (its members in full, the groups it talks to
// around it) and "overview" leads back; grouping by a resource attribute
// kept on the nodes works end to end; the architecture page pages its
// table and ranks centrality. Screenshots: overview.png,
// overview-drill-in.png.
func TestUIBrowserOverview(t *testing.T) {
	dir := *screenshotDir
	if dir == "" {
		dir = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	services := *overviewServices
	col := startCollector(t, "--ui-addr=127.0.0.1:0", "--window=60s", "--eval-interval=1s", "--pair-ttl=1s", "--trace-idle=500ms",
		fmt.Sprintf("--max-nodes=%d", max(10_000, 4*services)), fmt.Sprintf("--max-edges=%d", max(50_000, 8*services)))
	require.NotNil(t, col.UI)
	base := "http://" + col.UI.String()
	feedSystem(t, col.OTLPGRPC.String(), services, min(400, 60*services/1000))

	// Every node of the system seen: the count stops growing.
	start := time.Now()
	var nodes map[string]map[string]string
	last, still := 0, 0
	require.Eventually(t, func() bool {
		nodes = apiNodes(t, col)
		if len(nodes) > last {
			last, still = len(nodes), 0
		} else {
			still++
		}
		return len(nodes) > services*17/10 && still >= 3
	}, time.Duration(90+services/20)*time.Second, time.Second, "the system of %d services in the graph (%d nodes so far)", services, last)
	t.Logf("%d nodes in the graph after %.0fs", len(nodes), time.Since(start).Seconds())
	require.Equal(t, map[string]string{"deployment.environment.name": "demo", "service.version": "1.1.0"}, nodes["service:shop/checkout"], "the kept resource attribute, through the API")

	browser := newBrowser(t)
	tab := browser
	t.Cleanup(func() {
		if t.Failed() {
			screenshot(t, tab, dir, "failed-overview")
		}
	})
	require.NoError(t, within(tab, 30*time.Second, chromedp.Navigate(base+"/?refresh=off")))
	require.NoError(t, pollJS(tab, 10*time.Second, `document.body.dataset.labelsFitted === "1" && document.querySelector("svg#map").dataset.scale !== undefined`))
	overviewTime := pageTime(t, tab)

	// At most 50 boxes, each a group with its figures, at the default fit.
	boxes := evalJS[int](t, tab, `document.querySelectorAll("svg#map g.node").length`)
	require.LessOrEqual(t, boxes, 50)
	require.Greater(t, boxes, 10)
	require.Equal(t, boxes, evalJS[int](t, tab, `document.querySelectorAll("svg#map g.node.k-group").length`), "only group boxes")
	notes := evalJS[string](t, tab, `document.getElementById("map-notes").innerText`)
	require.Regexp(t, `\d+ nodes in \d+ groups by namespace: the overview`, notes)
	require.True(t, evalJS[bool](t, tab, `document.getElementById("fit").checked`))
	l := readLegibility(t, tab)
	t.Logf("overview: %d boxes drawn at scale %s in %v, %d texts drawn (%d names); %s", l.Nodes, l.Scale, overviewTime, l.Drawn, l.Names, notes)
	require.Empty(t, l.Small, "no drawn text under 11 px at the default fit")
	require.GreaterOrEqual(t, l.Names, l.Nodes*9/10, "the groups' names are drawn, not dropped")
	require.Equal(t, boxes, evalJS[int](t, tab, `Array.from(document.querySelectorAll("svg#map g.node text.stat")).filter(s => getComputedStyle(s).display !== "none" && /\d+ nodes?/.test(s.textContent)).length`),
		"every box shows its figures")
	// An edge's label, shown on focus, is legible too.
	require.True(t, evalJS[bool](t, tab, `(() => {
		const e = document.querySelector("svg#map g.edge");
		e.focus();
		const t = e.querySelector(".elabel text"), shown = getComputedStyle(e.querySelector(".elabel")).display !== "none";
		const px = parseFloat(getComputedStyle(t).fontSize) * (t.getBoundingClientRect().height ? t.getBoundingClientRect().height / t.getBBox().height : 0);
		e.blur();
		return shown && px >= 10.95; })()`), "an edge's label on focus is drawn at 11 px or more")
	screenshot(t, tab, dir, "overview")

	// A click on the busiest namespace's box opens it.
	group := evalJS[string](t, tab, `(() => { const n = Array.from(document.querySelectorAll("svg#map g.node.k-group")).find(n => !n.dataset.node.startsWith("group:(")); return n.dataset.node.slice("group:".length) })()`)
	require.NoError(t, within(tab, 30*time.Second, chromedp.Click(chromedp.CSS(fmt.Sprintf(`svg#map g.node[data-node="group:%s"] a`, group)))))
	require.NoError(t, pollAfterClick(tab, 20*time.Second, `document.getElementById("overview-link") !== null && document.querySelector("svg#map g.cluster") !== null && document.body.dataset.labelsFitted === "1"`),
		"the drill-in into %s", group)
	drillTime := pageTime(t, tab)
	require.Contains(t, evalJS[string](t, tab, `location.search`), "expand="+group)
	require.Equal(t, group+" ▾", evalJS[string](t, tab, `document.querySelector("svg#map g.cluster .cluster-name").firstChild.textContent.trim()`))
	members := evalJS[int](t, tab, `document.querySelectorAll("svg#map g.node:not(.k-group)").length`)
	around := evalJS[int](t, tab, `document.querySelectorAll("svg#map g.node.k-group").length`)
	require.Positive(t, members, "its members drawn")
	require.Positive(t, around, "the groups it talks to, as boxes")
	l = readLegibility(t, tab)
	t.Logf("drill-in into %s: %d members and %d groups at scale %s in %v", group, members, around, l.Scale, drillTime)
	require.Empty(t, l.Small, "no drawn text under 11 px in the drill-in")
	screenshot(t, tab, dir, "overview-drill-in")
	require.NoError(t, within(tab, 30*time.Second, chromedp.Click(chromedp.CSS(`#overview-link`))))
	require.NoError(t, pollAfterClick(tab, 20*time.Second, `document.querySelector("svg#map g.cluster") === null && document.querySelectorAll("svg#map g.node.k-group").length === `+fmt.Sprint(boxes)), "back to the overview")

	// Grouped by a resource attribute: every service of the system is in
	// the one deployment environment.
	require.NoError(t, within(tab, 30*time.Second, chromedp.Navigate(base+"/?refresh=off&group=deployment.environment.name")))
	require.NoError(t, pollJS(tab, 10*time.Second, `document.querySelector('svg#map g.node[data-node="group:demo"]') !== null`), "a box for deployment.environment.name=demo")
	require.Regexp(t, `^\d+ nodes`, evalJS[string](t, tab, `document.querySelector('svg#map g.node[data-node="group:demo"] text.stat').dataset.full || document.querySelector('svg#map g.node[data-node="group:demo"] text.stat').textContent`))

	// The architecture page: 50 rows a page, centrality ranked.
	require.NoError(t, within(tab, 30*time.Second, chromedp.Navigate(base+"/architecture")))
	require.NoError(t, pollJS(tab, 10*time.Second, `document.querySelector("#coupling-table") !== null`))
	require.Equal(t, 50, evalJS[int](t, tab, `document.querySelectorAll("#coupling-table tbody tr").length`))
	if len(nodes) <= 2000 { // centrality is not computed on larger graphs
		require.Regexp(t, `^1 of \d+$`, evalJS[string](t, tab, `document.querySelector("#coupling-table tbody tr td:nth-child(6)").textContent`))
	}
	require.Equal(t, "read on load: reload to update", evalJS[string](t, tab, `document.querySelector("header .when").textContent.trim()`))
}
