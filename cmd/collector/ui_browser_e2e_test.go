package main

// End-to-end tests of the web UI in real headless Chromium (chromedp): the
// collector runs in-process with its all-in-one UI, the scenario of the
// load generator is sent over OTLP/gRPC, faults are switched on, and the
// pages are watched update without a reload. A separate `ui` process is
// restarted under an open page to check that the page reconnects.
//
// Screenshots of every page are written to the directory given by
// -screenshots (those of README.md and docs/ are made with
// `go test ./cmd/collector -run TestUIBrowser -screenshots=$PWD/docs/screenshots`),
// else to a temporary directory named in the log.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
	"github.com/seed-a49a8342/cartograph/simulate/scenario"
)

var screenshotDir = flag.String("screenshots", "", "directory the browser tests write their screenshots to (default: a temporary one)")

// chromiumPath is the browser the tests drive (cmd/testenv's, or
// CARTOGRAPH_TEST_CHROMIUM).
func chromiumPath(t *testing.T) string {
	t.Helper()
	return need.Chromium(t)
}

// newBrowser starts headless Chromium and returns a context for its first
// tab; it stops when the test ends.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1600, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	require.NoError(t, chromedp.Do(ctx), "start Chromium") // no timeout on the first run: it owns the browser
	return ctx
}

// newTab opens another tab of the browser of ctx.
func newTab(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	require.NoError(t, chromedp.Do(tab))
	return tab
}

// within runs steps with a deadline.
func within(ctx context.Context, d time.Duration, steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

// pollJS waits until the JavaScript expression is truthy.
func pollJS(ctx context.Context, d time.Duration, expr string) error {
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(d), chromedp.WithPollingInterval(50*time.Millisecond)))
	return err
}

// evalJS evaluates expr in the page and decodes its value.
func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	require.NoError(t, err, expr)
	return v
}

// screenshot saves the whole page as dir/name.png.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
}

// scenarioFeed sends the scenario's traces and broker metrics to an OTLP
// gRPC endpoint until the test ends.
type scenarioFeed struct {
	gen *scenario.Generator
}

func startScenarioFeed(t *testing.T, otlpAddr string, tracesPerTick int) *scenarioFeed {
	t.Helper()
	gen, err := scenario.New(scenario.Options{Seed: 7})
	require.NoError(t, err)
	cc, err := grpc.NewClient(otlpAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	traces, metrics := ptraceotlp.NewGRPCClient(cc), pmetricotlp.NewGRPCClient(cc)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				// Errors (backpressure at shutdown) are the sender's to
				// retry; the test asserts on what the UI shows.
				_, _ = traces.Export(ctx, ptraceotlp.NewExportRequestFromTraces(gen.Traces(now, tracesPerTick)))
				if i%5 == 0 {
					_, _ = metrics.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(gen.Metrics(now)))
				}
			}
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait(); cc.Close() })
	return &scenarioFeed{gen: gen}
}

// firingFinding reports whether the collector's API lists a firing
// finding of kind on the node named node. It does not use t: it runs in a
// goroutine of its own.
func firingFinding(api, kind, node string) bool {
	resp, err := http.Get("http://" + api + "/api/v1/findings")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var out struct {
		Findings []struct {
			Kind, State string
			Subject     struct{ Node string }
		} `json:"findings"`
	}
	if json.NewDecoder(resp.Body).Decode(&out) != nil {
		return false
	}
	for _, f := range out.Findings {
		if f.Kind == kind && f.State == "firing" && f.Subject.Node == node {
			return true
		}
	}
	return false
}

// TestUIBrowser opens every page of the all-in-one UI in Chromium while
// the scenario runs, switches a bottleneck on, and checks that its badge
// lands on the right node of the open map and in the open findings panel
// without a reload; then it saves a screenshot of each page.
func TestUIBrowser(t *testing.T) {
	dir := *screenshotDir
	if dir == "" {
		dir = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	t.Logf("screenshots in %s", dir)

	const eval = 500 * time.Millisecond
	col := startCollector(t, "--ui-addr=127.0.0.1:0", "--eval-interval="+eval.String(), "--window=30s",
		"--trace-sample-one-in=1", "--trace-idle=300ms", "--flush-interval=1s", "--pair-ttl=1s")
	require.NotNil(t, col.UI)
	feed := startScenarioFeed(t, col.OTLPGRPC.String(), 4)
	base := "http://" + col.UI.String()
	healthyAt := time.Now()

	browser := newBrowser(t)
	mapTab := browser
	require.NoError(t, within(mapTab, 20*time.Second, chromedp.Navigate(base+"/")))
	// The scenario's services are drawn, async edges among them.
	require.NoError(t, pollJS(mapTab, 20*time.Second, `document.querySelectorAll("svg#map g.node").length >= 20 && document.querySelector("svg#map g.edge.async") !== null`),
		"the map shows the scenario")
	findingsTab := newTab(t, browser)
	require.NoError(t, within(findingsTab, 10*time.Second, chromedp.Navigate(base+"/findings")))

	want := feed.gen.Expect(scenario.FaultBottleneck)
	nodeSel := fmt.Sprintf(`svg#map g.node[data-name=%q]`, want.Node)
	require.NoError(t, pollJS(mapTab, 10*time.Second, fmt.Sprintf(`document.querySelector(%q) !== null`, nodeSel)), "node %s on the map", want.Node)
	require.False(t, evalJS[bool](t, mapTab, fmt.Sprintf(`document.querySelector(%q) !== null`, nodeSel+` g.badge[data-finding="bottleneck"]`)),
		"no bottleneck badge before the fault")
	// Marks the loaded documents, so a reload would show.
	for _, tab := range []context.Context{mapTab, findingsTab} {
		_, err := chromedp.Run(tab, chromedp.Evaluate[chromedp.Void](`window.__loaded = 1`))
		require.NoError(t, err)
	}

	// The bottleneck detector compares critical paths with their usual
	// shape: give it a healthy baseline first.
	time.Sleep(time.Until(healthyAt.Add(6 * time.Second)))
	onset := time.Now()
	feed.gen.SetFault(scenario.FaultBottleneck, true)
	firing := make(chan time.Time, 1)
	go func() {
		for time.Since(onset) < 60*time.Second {
			if firingFinding(col.API.String(), "bottleneck", want.Node) {
				firing <- time.Now()
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	badge := nodeSel + ` g.badge.st-firing[data-finding="bottleneck"]`
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("map page at failure: updated=%s conn hidden=%v nodes=%s", evalJS[string](t, mapTab, `String(document.body.dataset.updated)`),
				evalJS[bool](t, mapTab, `document.getElementById("conn").hidden`),
				evalJS[string](t, mapTab, fmt.Sprintf(`Array.from(document.querySelectorAll(%q)).map(n => n.outerHTML).join("\n")`, nodeSel)))
			resp, err := http.Get("http://" + col.API.String() + "/api/v1/findings")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Logf("API findings at failure: %s", b)
			}
			screenshot(t, mapTab, dir, "failed-map")
		}
	})
	require.NoError(t, pollJS(mapTab, 60*time.Second, fmt.Sprintf(`document.querySelector(%q) !== null`, badge)),
		"the firing bottleneck badge appears on %s without a reload", want.Node)
	badgeAt := time.Since(onset)
	require.NoError(t, pollJS(findingsTab, 10*time.Second,
		fmt.Sprintf(`Array.from(document.querySelectorAll('li.finding.st-firing[data-kind="bottleneck"]')).some(li => li.dataset.subject.includes(%q))`, want.Node)),
		"the open findings panel lists the firing bottleneck")
	for _, tab := range []context.Context{mapTab, findingsTab} {
		require.True(t, evalJS[bool](t, tab, `window.__loaded === 1`), "updated without a reload")
	}
	require.True(t, evalJS[bool](t, mapTab, `document.getElementById("conn").hidden`), "no reconnecting banner")
	require.NoError(t, pollJS(mapTab, 5*time.Second, `document.querySelector("#nav").innerText.includes("Findings (1)")`), "the findings count follows")
	var firingAt time.Time
	select {
	case firingAt = <-firing:
	case <-time.After(10 * time.Second):
		t.Fatal("the API never listed the bottleneck firing")
	}
	t.Logf("bottleneck on %s: badge on the open map %.1fs after the fault; the API reported it firing after %.1fs",
		want.Node, badgeAt.Seconds(), firingAt.Sub(onset).Seconds())
	// The UI refreshes when the collector announces a change and at least
	// every evaluation interval: the page follows the API within a few.
	require.Less(t, badgeAt, firingAt.Sub(onset)+6*eval+time.Second, "the badge follows the API within a few evaluation intervals")

	// Screenshots of each page, with the finding on.
	screenshot(t, mapTab, dir, "map")
	screenshot(t, findingsTab, dir, "findings")
	t.Logf("map drawn %s px", evalJS[string](t, mapTab, `document.querySelector("svg#map").getAttribute("width") + "x" + document.querySelector("svg#map").getAttribute("height")`))
	nodeID := evalJS[string](t, mapTab, fmt.Sprintf(`document.querySelector(%q).closest("g.node").dataset.node`, badge))
	page := newTab(t, browser)
	require.NoError(t, within(page, 10*time.Second, chromedp.Navigate(base+"/node?id="+url.QueryEscape(nodeID))))
	require.NoError(t, pollJS(page, 10*time.Second, `document.querySelector("#charts svg") !== null`), "node page with charts")
	require.Contains(t, evalJS[string](t, page, `document.body.innerText`), want.Node)
	screenshot(t, page, dir, "node")
	edgeID := evalJS[string](t, mapTab, `document.querySelector("svg#map g.edge.async").dataset.edge`)
	require.NoError(t, within(page, 10*time.Second, chromedp.Navigate(base+"/edge?id="+url.QueryEscape(edgeID))))
	require.NoError(t, pollJS(page, 10*time.Second, `document.querySelector("#charts svg") !== null`), "edge page with charts")
	screenshot(t, page, dir, "edge")
	// The architecture page with the diff between the healthy start and
	// now (the bottleneck slowed its callers down).
	q := url.Values{
		"from":    {healthyAt.Add(3 * time.Second).UTC().Format(time.RFC3339)},
		"to":      {time.Now().UTC().Format(time.RFC3339)},
		"dwindow": {"1m"},
	}
	require.NoError(t, within(page, 20*time.Second, chromedp.Navigate(base+"/architecture?"+q.Encode())))
	require.NoError(t, pollJS(page, 10*time.Second, `document.querySelector("table") !== null && document.querySelector("svg#map") !== null`), "coupling table and diff map")
	screenshot(t, page, dir, "architecture")
}

// TestUIBrowserReconnect restarts a separate `ui` process under an open
// page: the page shows "reconnecting" while it is away and picks up live
// updates again by itself when it is back.
func TestUIBrowserReconnect(t *testing.T) {
	col := startCollector(t, "--eval-interval=500ms")
	startScenarioFeed(t, col.OTLPGRPC.String(), 2)
	bin := filepath.Join(t.TempDir(), "ui")
	out, err := exec.Command("go", "build", "-o", bin, "../ui").CombinedOutput()
	require.NoError(t, err, "go build ../ui: %s", out)
	port := freePorts(t, 1)[0]
	addr := "127.0.0.1:" + strconv.Itoa(port)
	startUI := func() *exec.Cmd {
		cmd := exec.Command(bin, "--listen="+addr, "--collector=http://"+col.API.String(), "--refresh=1s", "--log-level=warn")
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		require.Eventually(t, func() bool {
			resp, err := http.Get("http://" + addr + "/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		}, 10*time.Second, 50*time.Millisecond)
		return cmd
	}
	ui := startUI()
	t.Cleanup(func() { _ = ui.Process.Kill(); _ = ui.Wait() })

	tab := newBrowser(t)
	require.NoError(t, within(tab, 20*time.Second, chromedp.Navigate("http://"+addr+"/")))
	require.NoError(t, pollJS(tab, 20*time.Second, `document.body.dataset.updated !== undefined`), "live updates arrive")
	_, err = chromedp.Run(tab, chromedp.Evaluate[chromedp.Void](`window.__loaded = 1`))
	require.NoError(t, err)

	require.NoError(t, ui.Process.Signal(syscall.SIGTERM))
	require.NoError(t, ui.Wait())
	require.NoError(t, pollJS(tab, 10*time.Second, `!document.getElementById("conn").hidden`), "the page says it is reconnecting")
	stamp := evalJS[string](t, tab, `document.body.dataset.updated`)

	ui = startUI()
	require.NoError(t, pollJS(tab, 30*time.Second, `document.getElementById("conn").hidden`), "the page reconnects by itself")
	require.NoError(t, pollJS(tab, 10*time.Second, fmt.Sprintf(`document.body.dataset.updated !== %q`, stamp)), "and gets live updates again")
	require.True(t, evalJS[bool](t, tab, `window.__loaded === 1`), "without a reload")
}
