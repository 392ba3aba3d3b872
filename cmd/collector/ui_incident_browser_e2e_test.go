package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/simulate/scenario"
)

// legibleJS returns, as JSON, the text drawn on the map (not hidden by
// display, visibility or opacity) and every piece of it whose size on
// screen is under 11 px: its font size in SVG units times the scale it is
// drawn at (its box on screen over its box in SVG units, which takes in
// the viewBox fit and any CSS transform).
const legibleJS = `(() => {
	const svg = document.querySelector("svg#map");
	const out = {drawn: 0, names: 0, nodes: 0, small: [], scale: svg ? svg.dataset.scale : ""};
	if (!svg) return JSON.stringify(out);
	out.nodes = svg.querySelectorAll("g.node").length;
	for (const t of svg.querySelectorAll("text")) {
		if (!t.textContent.trim() || t.getClientRects().length === 0) continue;
		let hidden = false;
		for (let e = t; e && e !== svg; e = e.parentElement) {
			const cs = getComputedStyle(e);
			if (cs.display === "none" || cs.visibility === "hidden" || parseFloat(cs.opacity) === 0) { hidden = true; break; }
		}
		if (hidden) continue;
		const bb = t.getBBox(), m = t.getScreenCTM();
		if (!bb.width) continue;
		const byBox = t.getBoundingClientRect().width / bb.width, byCTM = Math.hypot(m.a, m.b);
		const px = parseFloat(getComputedStyle(t).fontSize) * Math.min(byBox, byCTM);
		out.drawn++;
		if (t.classList.contains("name")) out.names++;
		if (px < 10.95) out.small.push(t.textContent + ": " + px.toFixed(2) + " px (box " + byBox.toFixed(3) + ", ctm " + byCTM.toFixed(3) + ")");
	}
	return JSON.stringify(out);
})()`

type legibility struct {
	Drawn, Names, Nodes int
	Small               []string
	Scale               string
}

func readLegibility(t *testing.T, ctx context.Context) legibility {
	t.Helper()
	var l legibility
	require.NoError(t, json.Unmarshal([]byte(evalJS[string](t, ctx, legibleJS)), &l))
	return l
}

// TestUIBrowserIncident is issue #17's incident-first map in real
// Chromium, on the demo's system at 1600x1000 with the map fitted to the
// window: no drawn text is under 11 px on screen; when the demo's open
// circuit fires, its edge is drawn thick and the callee filled in the
// finding's severity colour, the callers in its blast radius outlined and
// the rest of the map dimmed (not with dim=off); the incident view
// (incident=1) draws only the affected subgraph, updated live.
func TestUIBrowserIncident(t *testing.T) {
	dir := *screenshotDir
	if dir == "" {
		dir = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	const phase = 6 * time.Second
	start := time.Now()
	col := startCollector(t, "--ui-addr=127.0.0.1:0", "--demo", "--demo-rate=60", "--demo-phase="+phase.String(),
		"--window=3s", "--eval-interval=500ms", "--pair-ttl=1s", "--trace-idle=500ms", "--trace-sample-one-in=2")
	require.NotNil(t, col.UI)
	base := "http://" + col.UI.String()
	gen, err := scenario.New(scenario.Options{})
	require.NoError(t, err)
	want := gen.Expect(scenario.FaultOpenCircuit)

	browser := newBrowser(t)
	mapTab := browser
	require.NoError(t, within(mapTab, 20*time.Second, chromedp.Navigate(base+"/")))
	incidentTab := newTab(t, browser)
	require.NoError(t, within(incidentTab, 20*time.Second, chromedp.Navigate(base+"/?incident=1")))
	undimmedTab := newTab(t, browser)
	require.NoError(t, within(undimmedTab, 20*time.Second, chromedp.Navigate(base+"/?dim=off")))

	// The demo's whole system is drawn, fitted to the window: no drawn
	// text under 11 px (secondary labels dropped, names enlarged).
	require.NoError(t, pollJS(mapTab, 20*time.Second, `document.querySelectorAll("svg#map g.node").length >= 45 && document.getElementById("fit").checked`),
		"the demo's system on the map")
	require.NoError(t, pollJS(mapTab, 5*time.Second, `document.querySelector("svg#map").dataset.scale !== undefined`))
	l := readLegibility(t, mapTab)
	t.Logf("fitted map: %d nodes drawn at scale %s, %d texts drawn (%d node names)", l.Nodes, l.Scale, l.Drawn, l.Names)
	require.Less(t, evalJS[float64](t, mapTab, `parseFloat(document.querySelector("svg#map").dataset.scale)`), 1.0, "the fit shrinks the demo's map")
	require.Empty(t, l.Small, "no drawn text under 11 px at the default fit")
	require.GreaterOrEqual(t, l.Names, l.Nodes*9/10, "node names are drawn, not dropped")
	require.True(t, evalJS[bool](t, mapTab, `document.querySelector("svg#map").classList.contains("small-labels")`), "edge labels are secondary at this scale")
	require.True(t, evalJS[bool](t, mapTab, `(() => {
		const e = document.querySelector("svg#map g.edge:not(.subject)");
		e.focus();
		const shown = getComputedStyle(e.querySelector(".elabel")).display !== "none";
		e.blur();
		return shown; })()`), "an edge's label shows when the edge has the focus")

	// The open circuit fires (its fault is on from the 5th phase).
	// Names repeat across namespaces: the node is the subject edge's target.
	edge := fmt.Sprintf(`Array.from(document.querySelectorAll("svg#map g.edge.subject")).find(e => e.querySelector("title").textContent.startsWith(%q))`, want.Source+" → "+want.Target+" (")
	node := `document.querySelector('svg#map g.node[data-node="' + CSS.escape(` + edge + `.dataset.target) + '"]')`
	source := `document.querySelector('svg#map g.node[data-node="' + CSS.escape(` + edge + `.dataset.source) + '"]')`
	t.Cleanup(func() {
		if t.Failed() {
			screenshot(t, mapTab, dir, "failed-map-incident")
			screenshot(t, incidentTab, dir, "failed-incident-view")
			for _, f := range getFindings(t, col, "all") {
				t.Logf("finding at failure: %s %s %v: %s", f.Kind, f.State, f.Subject, f.Summary)
			}
		}
	})
	deadline := time.Until(start.Add(6*phase)) + 5*time.Second
	require.NoError(t, pollJS(mapTab, deadline, fmt.Sprintf(`(() => { const e = %s; return e !== undefined && %s.classList.contains("subject") })()`, edge, node)),
		"the open circuit %s → %s is marked on the map", want.Source, want.Target)
	t.Logf("open circuit marked %.1fs after the start", time.Since(start).Seconds())

	// Subject: filled in the severity's colour, outlined; its edge thick.
	sev := evalJS[string](t, mapTab, node+`.classList.contains("sev-critical") ? "critical" : "warning"`)
	colour := map[string]string{"critical": "rgb(183, 28, 28)", "warning": "rgb(178, 106, 0)"}[sev]
	fill := evalJS[string](t, mapTab, `getComputedStyle(`+node+`.querySelector(".shape")).fill`)
	require.Equal(t, colour, fill, "the subject node is filled in its %s colour", sev)
	require.GreaterOrEqual(t, evalJS[float64](t, mapTab, `parseFloat(getComputedStyle(`+node+`.querySelector(".shape")).strokeWidth)`), 4.0, "and outlined")
	require.GreaterOrEqual(t, evalJS[float64](t, mapTab, fmt.Sprintf(`parseFloat(getComputedStyle(%s.querySelector(".line")).strokeWidth)`, edge)), 7.0, "the subject edge is thick")
	require.True(t, evalJS[bool](t, mapTab, fmt.Sprintf(`getComputedStyle(%s.querySelector(".elabel")).display !== "none"`, edge)), "the subject edge keeps its label")
	require.True(t, evalJS[bool](t, mapTab, `document.querySelector('svg#map g.badge.st-firing[data-finding="open_circuit"]') !== null`), "its badge")
	// Blast radius highlighted, the rest dimmed.
	require.True(t, evalJS[bool](t, mapTab, source+`.classList.contains("blast")`), "the caller is in the blast radius")
	dimmed := evalJS[int](t, mapTab, `Array.from(document.querySelectorAll("svg#map g.node.dim")).filter(n => parseFloat(getComputedStyle(n).opacity) < 0.5).length`)
	nodes := evalJS[int](t, mapTab, `document.querySelectorAll("svg#map g.node").length`)
	require.Greater(t, dimmed, nodes/2, "most of the map is dimmed")
	require.Zero(t, evalJS[int](t, mapTab, `document.querySelectorAll("svg#map g.node.subject.dim, svg#map g.node.blast.dim").length`))
	l = readLegibility(t, mapTab)
	require.Empty(t, l.Small, "no drawn text under 11 px with the finding on (its badge included)")
	require.NoError(t, pollJS(mapTab, 5*time.Second, `document.getElementById("incident-link") !== null && document.getElementById("dim-toggle") !== null`),
		"the incident view and the dimming switch are offered")
	screenshot(t, mapTab, dir, "map-incident")

	// dim=off: marked, nothing dimmed.
	require.NoError(t, pollJS(undimmedTab, 10*time.Second, `(() => { const e = `+edge+`; return e !== undefined && `+node+`.classList.contains("subject") })()`))
	require.Zero(t, evalJS[int](t, undimmedTab, `document.querySelectorAll("svg#map g.node.dim, svg#map g.edge.dim").length`), "dim=off dims nothing")

	// The incident view, opened before anything fired, follows live:
	// only the affected subgraph is drawn.
	require.NoError(t, pollJS(incidentTab, 10*time.Second, `(() => { const e = `+edge+`; return e !== undefined && `+node+`.classList.contains("subject") && document.querySelector("svg#map").classList.contains("incident") })()`),
		"the incident view draws the open circuit")
	drawn := evalJS[int](t, incidentTab, `document.querySelectorAll("svg#map g.node").length`)
	affected := evalJS[int](t, incidentTab, `document.querySelectorAll("svg#map g.node.subject, svg#map g.node.blast").length`)
	require.Equal(t, drawn, affected, "only subjects and their blast radius are drawn")
	require.Less(t, drawn, nodes, "a subgraph")
	require.True(t, evalJS[bool](t, incidentTab, source+` !== null`), "with the caller")
	require.Zero(t, evalJS[int](t, incidentTab, `document.querySelectorAll("svg#map g.edge.dim, svg#map g.edge:not(.subject):not(.blast)").length`), "only edges between affected nodes")
	require.Empty(t, readLegibility(t, incidentTab).Small, "no drawn text under 11 px in the incident view")
	t.Logf("incident view: %d of %d nodes", drawn, nodes)
	screenshot(t, incidentTab, dir, "incident-view")
}
