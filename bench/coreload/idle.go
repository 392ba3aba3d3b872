package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// idleOptions configure the idle measurements.
type idleOptions struct {
	// Warmup is sent before anything is measured, so that every edge is
	// in the graph and the collector has settled.
	Warmup time.Duration
	// Measure is the length of each measured phase.
	Measure time.Duration
	// Services and Edges shape the steady graph; Rate is its spans per
	// second.
	Services, Edges int
	Rate            float64
	// EvalInterval is the collector's --eval-interval: ticks are counted
	// from its /metrics, or else as Measure / EvalInterval.
	EvalInterval time.Duration
}

// steadyTopology returns edges distinct caller -> callee pairs among
// services, the same on every run.
func steadyTopology(services, edges int) [][2]string {
	edges = min(edges, services*(services-1))
	rng := rand.New(rand.NewPCG(18, 2026))
	seen := map[[2]int]bool{}
	var out [][2]string
	name := func(i int) string { return fmt.Sprintf("svc-%02d", i) }
	// A chain first, so that every service is in the graph.
	for i := 0; i+1 < services && len(out) < edges; i++ {
		seen[[2]int{i, i + 1}] = true
		out = append(out, [2]string{name(i), name(i + 1)})
	}
	for len(out) < edges {
		a, b := rng.IntN(services), rng.IntN(services)
		if a == b || seen[[2]int{a, b}] {
			continue
		}
		seen[[2]int{a, b}] = true
		out = append(out, [2]string{name(a), name(b)})
	}
	return out
}

// steadySender sends the steady graph's calls at rate spans per second
// until ctx is done, and then the stats. Edges are drawn at random, with
// latencies from 2 to about 100 ms and one error in a hundred, so that
// rates, latencies and error ratios move a little from tick to tick as in
// a live system (an exactly repeating load leaves a page nothing to
// update).
func steadySender(ctx context.Context, otlpHTTP string, topo [][2]string, rate float64) <-chan exportStats {
	out := make(chan exportStats, 1)
	exp := newExporter(otlpHTTP, 1)
	const period = 250 * time.Millisecond
	go func() {
		var st exportStats
		defer func() { out <- st }()
		t := time.NewTicker(period)
		defer t.Stop()
		rng := rand.New(rand.NewPCG(18, 2026)) // the same draws for every build
		var seq uint64 = 1 << 40               // apart from any attack's ids
		var owed float64
		for {
			owed += rate * period.Seconds() / spansPerCall
			n := int(owed)
			owed -= float64(n)
			if n > 0 {
				calls := make([]call, n)
				for i := range calls {
					e := topo[rng.IntN(len(topo))]
					lat := time.Duration(2e6 * math.Exp(rng.NormFloat64()*0.8+0.7)) // median about 4 ms
					calls[i] = call{Caller: e[0], Callee: e[1], Seq: seq, Latency: min(lat, 100*time.Millisecond), Error: rng.IntN(100) == 0}
					seq++
				}
				if body, err := buildRequest(calls, time.Now()); err == nil {
					st.add(exp.export(ctx, body, n*spansPerCall, time.Now().Add(period)))
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return out
}

// countingConn counts the bytes read from a connection.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// wsClient reads a websocket until closed, counting its messages and
// bytes.
type wsClient struct {
	conn *websocket.Conn
	wire atomic.Int64 // bytes read from the socket (compressed, framed)

	mu       sync.Mutex
	msgs     int
	bytes    int64          // message payloads, decompressed
	byType   map[string]int // stream messages by "type"
	biggest  map[string]int // largest payload by type
	frags    int            // UI fragments replaced
	first    chan struct{}  // closed on the first message
	firstOne sync.Once
	done     chan struct{}
}

// dialWS opens a websocket to url as a browser does (offering
// permessage-deflate, with the page's Origin) and reads it in the
// background.
func dialWS(ctx context.Context, url, origin string, ui bool) (*wsClient, error) {
	w := &wsClient{byType: map[string]int{}, biggest: map[string]int{}, first: make(chan struct{}), done: make(chan struct{})}
	d := websocket.Dialer{
		EnableCompression: true,
		HandshakeTimeout:  10 * time.Second,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return countingConn{Conn: c, n: &w.wire}, nil
		},
	}
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	conn, resp, err := d.DialContext(ctx, url, h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("websocket %s: %s: %w", url, resp.Status, err)
		}
		return nil, fmt.Errorf("websocket %s: %w", url, err)
	}
	w.conn = conn
	go func() {
		defer close(w.done)
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				return
			}
			w.mu.Lock()
			w.msgs++
			w.bytes += int64(len(b))
			if ui {
				var m struct {
					HTML []json.RawMessage `json:"html"`
					SVG  []json.RawMessage `json:"svg"`
				}
				if json.Unmarshal(b, &m) == nil {
					w.frags += len(m.HTML) + len(m.SVG)
				}
			} else {
				var m struct {
					Type string `json:"type"`
				}
				_ = json.Unmarshal(b, &m)
				w.byType[m.Type]++
				w.biggest[m.Type] = max(w.biggest[m.Type], len(b))
			}
			w.mu.Unlock()
			w.firstOne.Do(func() { close(w.first) })
		}
	}()
	return w, nil
}

// wsCounts is what a wsClient has read so far.
type wsCounts struct {
	Msgs, Frags int
	Bytes, Wire int64
	ByType      map[string]int
}

func (w *wsClient) counts() wsCounts {
	w.mu.Lock()
	defer w.mu.Unlock()
	bt := map[string]int{}
	for k, v := range w.byType {
		bt[k] = v
	}
	return wsCounts{Msgs: w.msgs, Frags: w.frags, Bytes: w.bytes, Wire: w.wire.Load(), ByType: bt}
}

func (w *wsClient) close() {
	_ = w.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	w.conn.Close()
	<-w.done
}

// phase is one measured stretch of the idle run.
type phase struct {
	cpu             meterReading
	ticks           float64
	ticksFromMetric bool
	refreshOK       bool // uiRefreshes is from /metrics
	uiRefreshes     float64
	graphGetsOK     bool    // graphGets is from /metrics
	graphGets       float64 // GET /api/v1/graph served (the built-in UI's included)
}

// measurePhase waits o.Measure and returns the collector's CPU, ticks, UI
// refreshes and graph GETs over it.
func measurePhase(ctx context.Context, c *collector, o idleOptions) (phase, error) {
	m0 := c.metrics(ctx)
	mt := startMeter(c)
	select {
	case <-time.After(o.Measure):
	case <-ctx.Done():
		return phase{}, ctx.Err()
	}
	p := phase{cpu: mt.read()}
	m1 := c.metrics(ctx)
	if !c.alive() {
		return p, fmt.Errorf("collector exited:\n%s", c.logTail(20))
	}
	if a, ok := m0.get("cartograph_detect_eval_seconds_count"); ok {
		b, _ := m1.get("cartograph_detect_eval_seconds_count")
		p.ticks, p.ticksFromMetric = b-a, true
	} else {
		p.ticks = math.Floor(p.cpu.Wall.Seconds() / o.EvalInterval.Seconds())
	}
	if a, ok := m0.get(`cartograph_ui_refreshes_total{result="ok"}`); ok {
		b, _ := m1.get(`cartograph_ui_refreshes_total{result="ok"}`)
		p.uiRefreshes, p.refreshOK = b-a, true
	}
	const gets, graphRoute = "cartograph_api_request_duration_seconds_count", `route="/api/v1/graph"`
	if a, ok := m0.sumWith(gets, graphRoute); ok {
		b, _ := m1.sumWith(gets, graphRoute)
		p.graphGets, p.graphGetsOK = b-a, true
	}
	return p, nil
}

// addTo reports the phase; graphJSON is the size of the graph's JSON.
func (p phase) addTo(rep *report, name, what string, graphJSON int) {
	tickNote := "ticks: cartograph_detect_eval_seconds_count"
	if !p.ticksFromMetric {
		tickNote = "ticks: wall time / --eval-interval"
	}
	rep.add(name+".ticks", p.ticks, "ticks", tickNote)
	rep.add(name+".collector_cpu_pct", p.cpu.share(p.cpu.Collector), "%core", fmt.Sprintf("%s, %.0fs; %s", what, p.cpu.Wall.Seconds(), machineNote(p.cpu)))
	rep.add(name+".cpu_per_tick", 1000*safeDiv(p.cpu.Collector, p.ticks), "cpu-ms", "")
	if p.refreshOK {
		rep.add(name+".ui_refreshes", p.uiRefreshes, "refreshes", "cartograph_ui_refreshes_total{result=ok}")
	}
	if p.graphGetsOK {
		rep.add(name+".api_graph_gets_per_tick", safeDiv(p.graphGets, p.ticks), "requests", "GET /api/v1/graph served, the built-in UI's own included (cartograph_api_request_duration_seconds_count)")
		rep.add(name+".api_graph_bytes_per_tick", safeDiv(p.graphGets*float64(graphJSON), p.ticks), "B", fmt.Sprintf("those GETs x the graph's %d B of JSON", graphJSON))
	}
}

var (
	dataWS    = regexp.MustCompile(`data-ws="([^"]*)"`)
	assetRefs = regexp.MustCompile(`(?:src|href)="(/static/[^"]*)"`)
)

// openPage loads the UI's map page as a browser does (the page, its
// script and styles) and opens its live-update websocket. It returns the
// page's load time and bytes.
func openPage(ctx context.Context, uiAddr string) (*wsClient, time.Duration, int64, error) {
	base := "http://" + uiAddr
	get := func(path string) ([]byte, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return b, err
	}
	t0 := time.Now()
	page, err := get("/")
	if err != nil {
		return nil, 0, 0, err
	}
	load := time.Since(t0)
	size := int64(len(page))
	for _, m := range assetRefs.FindAllSubmatch(page, -1) {
		b, err := get(html.UnescapeString(string(m[1])))
		if err != nil {
			return nil, 0, 0, err
		}
		size += int64(len(b))
	}
	m := dataWS.FindSubmatch(page)
	if m == nil {
		return nil, 0, 0, errors.New("the map page names no live-update websocket (data-ws)")
	}
	ws, err := dialWS(ctx, "ws://"+uiAddr+html.UnescapeString(string(m[1])), base, true)
	return ws, load, size, err
}

// runIdle measures the CPU per evaluation tick of a steady graph: with the
// UI off (no client, then one /api/v1/stream client) in one process, with
// the built-in UI on (no page, then one live map page) in another.
func runIdle(ctx context.Context, start func(ctx context.Context, ui bool) (*collector, error), o idleOptions, rep *report) error {
	topo := steadyTopology(o.Services, o.Edges)
	rep.notef("idle: %d services, %d edges, %.0f spans/s, warm-up %s, each phase %s, --eval-interval %s",
		o.Services, len(topo), o.Rate, o.Warmup, o.Measure, o.EvalInterval)
	for _, ui := range []bool{false, true} {
		if err := idleProcess(ctx, start, ui, topo, o, rep); err != nil {
			return err
		}
	}
	return nil
}

func idleProcess(ctx context.Context, start func(ctx context.Context, ui bool) (*collector, error), ui bool, topo [][2]string, o idleOptions, rep *report) error {
	c, err := start(ctx, ui)
	if err != nil {
		return err
	}
	defer c.stop()
	sctx, stopSending := context.WithCancel(ctx)
	sent := steadySender(sctx, c.OTLPHTTP, topo, o.Rate)
	defer func() {
		stopSending()
		st := <-sent
		rep.notef("steady sender: %s", st)
	}()
	select {
	case <-time.After(o.Warmup):
	case <-ctx.Done():
		return ctx.Err()
	}
	g := newGraphGetter(c.API).get(ctx, false, true)
	if !g.Complete {
		return fmt.Errorf("GET /api/v1/graph: status %d, %v", g.Status, g.Err)
	}
	n, e, graphJSON, err := graphSize(g.Body, g.Encoded)
	if err != nil {
		return err
	}
	rep.notef("steady graph: %d nodes, %d edges, %d bytes of JSON", n, e, graphJSON)

	if !ui {
		p, err := measurePhase(ctx, c, o)
		if err != nil {
			return err
		}
		p.addTo(rep, "idle.api_noclient", "UI off, no client", graphJSON)

		ws, err := dialWS(ctx, "ws://"+c.API+"/api/v1/stream", "", false)
		if err != nil {
			return err
		}
		defer ws.close()
		waitFirst(ws, o.EvalInterval+5*time.Second)
		before := ws.counts()
		p, err = measurePhase(ctx, c, o)
		if err != nil {
			return err
		}
		after := ws.counts()
		p.addTo(rep, "idle.api_stream", "UI off, one /api/v1/stream client", graphJSON)
		msgs := after.Msgs - before.Msgs
		note := ""
		for t, n := range after.ByType {
			note += fmt.Sprintf("%s %d, ", t, n-before.ByType[t])
		}
		ws.mu.Lock()
		for t, n := range ws.biggest {
			note += fmt.Sprintf("largest %s %d B, ", t, n)
		}
		ws.mu.Unlock()
		rep.add("idle.api_stream.messages", float64(msgs), "msgs", note)
		rep.add("idle.api_stream.bytes_per_tick", safeDiv(float64(after.Bytes-before.Bytes), p.ticks), "B", "stream payloads the collector encoded and sent per tick")
		rep.add("idle.api_stream.wire_bytes_per_tick", safeDiv(float64(after.Wire-before.Wire), p.ticks), "B", "on the socket")
		return nil
	}

	p, err := measurePhase(ctx, c, o)
	if err != nil {
		return err
	}
	p.addTo(rep, "idle.ui_nopage", "built-in UI on, no page open", graphJSON)
	if p.refreshOK {
		rep.add("idle.ui_nopage.cpu_per_ui_refresh", 1000*safeDiv(p.cpu.Collector, p.uiRefreshes), "cpu-ms", "")
	}

	ws, load, size, err := openPage(ctx, c.UI)
	if err != nil {
		return err
	}
	defer ws.close()
	rep.add("idle.ui_page.page_load", ms(load), "ms", "GET / (the map page)")
	rep.add("idle.ui_page.page_bytes", float64(size), "B", "page, script and styles")
	waitFirst(ws, o.EvalInterval+5*time.Second)
	time.Sleep(time.Second)
	before := ws.counts()
	p, err = measurePhase(ctx, c, o)
	if err != nil {
		return err
	}
	after := ws.counts()
	p.addTo(rep, "idle.ui_page", "built-in UI on, one live map page", graphJSON)
	updates := float64(after.Msgs - before.Msgs)
	if p.refreshOK {
		rep.add("idle.ui_page.cpu_per_ui_refresh", 1000*safeDiv(p.cpu.Collector, p.uiRefreshes), "cpu-ms", "all of the collector's CPU over UI refreshes")
	}
	rep.add("idle.ui_page.page_updates", updates, "msgs", fmt.Sprintf("%d fragments replaced", after.Frags-before.Frags))
	rep.add("idle.ui_page.cpu_per_page_update", 1000*safeDiv(p.cpu.Collector, updates), "cpu-ms", "")
	rep.add("idle.ui_page.ws_bytes_per_tick", safeDiv(float64(after.Bytes-before.Bytes), p.ticks), "B", "live-update payloads, decompressed")
	rep.add("idle.ui_page.ws_wire_bytes_per_tick", safeDiv(float64(after.Wire-before.Wire), p.ticks), "B", "on the socket (permessage-deflate when agreed)")
	return nil
}

// waitFirst waits for a websocket's first message (what the server sends
// a new client at once), so that it is not counted in a phase.
func waitFirst(ws *wsClient, d time.Duration) {
	select {
	case <-ws.first:
	case <-time.After(d):
	}
}
