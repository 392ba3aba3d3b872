package ui

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/web/ui/layout"
)

// Benchmarks of the map at scale (figures in BENCHMARKS.md, "Web UI"):
// the map page as the handler serves it, and live updates over real
// websockets, on the graphs of scaleSnapshot.

var benchUncapped = flag.Bool("uncapped", false, "BenchmarkMapPageUncollapsed: lift the layouter's node limit, so dot lays out graphs it refuses by default (slow)")

// timedLayouter adds up the time spent in the layouter (waiting for it
// included; a layout from its cache takes a fraction of a millisecond).
type timedLayouter struct {
	l    *layout.Layouter
	mu   sync.Mutex
	took time.Duration
}

func (t *timedLayouter) Layout(ctx context.Context, g layout.Graph) (*layout.Result, error) {
	start := time.Now()
	r, err := t.l.Layout(ctx, g)
	t.mu.Lock()
	t.took += time.Since(start)
	t.mu.Unlock()
	return r, err
}

func (t *timedLayouter) reset() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.took
	t.took = 0
	return d
}

// newBenchUI returns a UI serving src, laid out by lay or, when nil, a new
// Layouter with options lo.
func newBenchUI(b *testing.B, src Source, lay *layout.Layouter, lo layout.Options, o Options) (*UI, *timedLayouter) {
	b.Helper()
	if lay == nil {
		lay = newLayouter(b, lo)
	}
	tl := &timedLayouter{l: lay}
	return newUI(b, src, tl, o), tl
}

// drawnLeaf returns a node the map of s draws without a namespace and with
// one edge: hiding it changes the map's topology (so the layout is not
// from the cache) and little else. It builds the map up to its layout.
func drawnLeaf(b *testing.B, s *graph.Snapshot, maxNodes int) string {
	var g layout.Graph
	_, err := buildMap(context.Background(), captureLayouter{&g}, mapInput{Snap: s, View: View{Hops: 2}, MaxNodes: maxNodes, Base: "/"})
	require.ErrorIs(b, err, errCaptured)
	degree := map[string]int{}
	for _, e := range g.Edges {
		degree[e.From]++
		degree[e.To]++
	}
	for _, n := range g.Nodes {
		if n.Cluster == "" && degree[n.ID] == 1 && !strings.HasPrefix(n.ID, "namespace:") {
			return n.ID
		}
	}
	b.Fatal("no leaf drawn")
	return ""
}

var errCaptured = errors.New("captured")

// captureLayouter keeps the graph it is asked to lay out and fails.
type captureLayouter struct{ g *layout.Graph }

func (c captureLayouter) Layout(_ context.Context, g layout.Graph) (*layout.Result, error) {
	*c.g = g
	return nil, errCaptured
}

// benchPage serves the map page through the handler, one request an op.
// Computed, every other request hides a leaf the map draws, so that each
// lays the map out anew (the layouter keeps one layout); cached, the
// layout is from the cache and only the page is built and rendered.
func benchPage(b *testing.B, u *UI, tl *timedLayouter, snap *graph.Snapshot, maxNodes int, computed bool) {
	targets := []string{"/"}
	if computed {
		targets = append(targets, "/?hide="+url.QueryEscape(drawnLeaf(b, snap, maxNodes)))
	} else {
		warm := httptest.NewRecorder()
		u.ServeHTTP(warm, httptest.NewRequest(http.MethodGet, "/", nil))
	}
	tl.reset()
	var bytes, i int
	var rec *httptest.ResponseRecorder
	for b.Loop() {
		rec = httptest.NewRecorder()
		u.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, targets[i%len(targets)], nil))
		bytes += rec.Body.Len()
		i++
	}
	b.ReportMetric(float64(tl.reset())/1e6/float64(i), "layout-ms/op")
	b.ReportMetric(float64(bytes)/float64(i)/1024, "page-KB")
	if rec.Code != http.StatusOK {
		b.Logf("status %d: %s", rec.Code, section(rec.Body.String(), `<section class="error-page">`, "</section>"))
		return
	}
	drawn, err := parseMap(rec.Body.String())
	require.NoError(b, err)
	b.ReportMetric(float64(len(drawn.Nodes)), "nodes-drawn")
	b.ReportMetric(float64(drawn.Edges), "edges-drawn")
}

// BenchmarkMapPage is the map page as users see it: namespaces collapse
// above 300 nodes (Options.MaxNodes), then the busiest 300 are drawn.
// layout=full-effort lays maps of more than 300 edges out as smaller ones
// are (curved edges, dot's default effort: layout.Options.MaxSplineEdges),
// for comparison; at 3,000 services that takes minutes, so it is left out.
func BenchmarkMapPage(b *testing.B) {
	for _, services := range []int{100, 1000, 3000} {
		snap := scaleSnapshot(services)
		src := &fixedSource{snap: snap, findings: scaleFindings(snap)}
		for _, mode := range []string{"computed", "cached", "full-effort"} {
			if mode == "full-effort" && services > 1000 {
				continue
			}
			lo := layout.Options{MaxCached: 1}
			if mode == "full-effort" {
				lo.MaxSplineEdges = 1 << 30
			}
			b.Run(fmt.Sprintf("services=%d/layout=%s", services, mode), func(b *testing.B) {
				u, tl := newBenchUI(b, src, nil, lo, Options{})
				u.refresh(context.Background())
				b.ReportMetric(float64(len(snap.Nodes)), "graph-nodes")
				benchPage(b, u, tl, snap, u.o.MaxNodes, mode != "cached")
			})
		}
	}
}

// BenchmarkMapPageUncollapsed draws every node: namespaces never collapse.
// The layouter refuses graphs above its limit (layout.Options.MaxNodes,
// 600) and the page says so; -uncapped lifts the limit (then 3,000
// services take minutes an op).
func BenchmarkMapPageUncollapsed(b *testing.B) {
	lo := layout.Options{MaxCached: 1}
	if *benchUncapped {
		lo.MaxNodes = 1 << 20
	}
	for _, services := range []int{100, 1000, 3000} {
		snap := scaleSnapshot(services)
		src := &fixedSource{snap: snap, findings: scaleFindings(snap)}
		b.Run(fmt.Sprintf("services=%d", services), func(b *testing.B) {
			u, tl := newBenchUI(b, src, nil, lo, Options{MaxNodes: 1 << 30})
			u.refresh(context.Background())
			b.ReportMetric(float64(len(snap.Nodes)), "graph-nodes")
			benchPage(b, u, tl, snap, u.o.MaxNodes, true)
		})
	}
}

// watchedSource is a Source whose change stream announces what the
// benchmark changes.
type watchedSource struct {
	*fixedSource
	changes chan struct{}
}

func (s *watchedSource) Watch(ctx context.Context, changed func(string)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.changes:
			changed("graph")
		}
	}
}

// received is one message a live page got.
type received struct {
	at    time.Time
	bytes int64 // read from the network for it (compressed)
	msg   update
}

// livePage is a browser's live connection to the map page: every message
// it reads goes to got. Like a browser it offers compression. Only its
// first message (the whole page) is decoded: the clients share the
// benchmark's two cores with the server, and browsers run elsewhere.
type livePage struct {
	conn *websocket.Conn
	got  chan received
}

// countingConn counts the bytes read from the network.
type countingConn struct {
	net.Conn
	n atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func dialLive(b *testing.B, srv *httptest.Server) *livePage {
	b.Helper()
	// The websocket URL of the map page "/", with the page's Origin.
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws?page=map"
	var counted *countingConn
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second, EnableCompression: true,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			counted = &countingConn{Conn: c}
			return counted, nil
		}}
	conn, _, err := d.Dial(wsURL, http.Header{"Origin": {srv.URL}})
	require.NoError(b, err)
	p := &livePage{conn: conn, got: make(chan received, 64)}
	go func() {
		defer close(p.got)
		var read int64
		for first := true; ; first = false {
			_, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			total := counted.n.Load()
			r := received{at: time.Now(), bytes: total - read}
			read = total
			if first {
				if err := json.Unmarshal(data, &r.msg); err != nil {
					panic(err)
				}
			}
			p.got <- r
		}
	}()
	return p
}

func (p *livePage) next(timeout time.Duration) (received, error) {
	select {
	case r, ok := <-p.got:
		if !ok {
			return r, fmt.Errorf("connection closed")
		}
		return r, nil
	case <-time.After(timeout):
		return received{}, fmt.Errorf("no update in %v", timeout)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// change edits a snapshot as one refresh of the collector would.
type change func(s *graph.Snapshot, i int) *graph.Snapshot

// rateChange changes the rate of the busiest edge from a client (its
// label and width on the map; an edge inside a collapsed namespace would
// not be drawn): 1.5 and 2 times the first snapshot's, in turn.
func rateChange(s *graph.Snapshot, i int) *graph.Snapshot {
	c := *s
	c.Edges = slices.Clone(s.Edges)
	busiest := -1
	for j, e := range c.Edges {
		if strings.HasPrefix(e.Source, "client:") && (busiest < 0 || e.RatePerS > c.Edges[busiest].RatePerS) {
			busiest = j
		}
	}
	e := &c.Edges[busiest]
	e.RatePerS *= 1.5 + float64(i%2)*0.5 // never the first snapshot's, never the last change's
	e.Requests = uint64(e.RatePerS * c.WindowSeconds)
	return &c
}

// allChange changes the rate of every edge by a tenth or a fifth, in
// turn: every label on the map changes, the most a refresh without a new
// node or edge sends.
func allChange(s *graph.Snapshot, i int) *graph.Snapshot {
	c := *s
	c.Edges = slices.Clone(s.Edges)
	for j := range c.Edges {
		e := &c.Edges[j]
		e.RatePerS *= 1.1 + float64(i%2)*0.1
		e.Requests = uint64(e.RatePerS * c.WindowSeconds)
	}
	return &c
}

// topologyChange adds a new external API called by one service: a node
// and an edge the map has not drawn before, so it is laid out anew (busy
// enough to be among the nodes drawn when the quietest are left out).
func topologyChange(s *graph.Snapshot, i int) *graph.Snapshot {
	c := *s
	id := graph.NodeKey{Kind: graph.NodeExternal, Name: fmt.Sprintf("new-%d.partner.example", i)}.ID()
	c.Nodes = append(slices.Clone(s.Nodes), graph.Node{ID: id, Kind: graph.NodeExternal, Name: strings.TrimPrefix(id, "external:")})
	var from string
	for _, n := range s.Nodes {
		if n.Kind == graph.NodeService {
			from = n.ID
			break
		}
	}
	c.Edges = append(slices.Clone(s.Edges), graph.Edge{ID: graph.EdgeID(from, id, graph.ProtocolHTTP, ""), Source: from, Target: id,
		Kind: graph.EdgeSync, Protocol: graph.ProtocolHTTP, Requests: 600_000, RatePerS: 10_000, Latency: &graph.Quantiles{P50: 80, P95: 200, P99: 300}})
	return &c
}

// BenchmarkLiveUpdate measures a change of the graph reaching live map
// pages over real websockets: the UI runs (Run) against a Source whose
// change stream announces the change; client pages are connected to the
// map page; one op is one change (rate: one edge's rate; all: every
// edge's; topology: a new node and edge), timed from its announcement
// until every page has received its update. Changes are 1.1 s apart (timer stopped),
// as the UI reads the collector at most once a second and pages ask for
// at most one update a second (refresh=1s, the default).
//
// Reported: ns/op and p50/max-ms, the time until every page has the
// update; first-ms, until the first has it; bytes/page, what one page
// reads from the network for it (compressed, as browsers ask); cpu-ms/op,
// the CPU of the whole process (server and the clients' reading) per
// change.
func BenchmarkLiveUpdate(b *testing.B) {
	for _, services := range []int{100, 1000, 3000} {
		snap := scaleSnapshot(services)
		// One layouter for the size: the map's first layout is computed
		// once, not once a sub-benchmark.
		var lay *layout.Layouter
		changes := 0
		for _, clients := range []int{1, 200} {
			for _, kind := range []string{"rate", "all", "topology"} {
				b.Run(fmt.Sprintf("services=%d/clients=%d/change=%s", services, clients, kind), func(b *testing.B) {
					if lay == nil {
						var err error
						lay, err = layout.New(context.Background(), layout.Options{})
						require.NoError(b, err)
					}
					ch := map[string]change{"rate": rateChange, "all": allChange, "topology": topologyChange}[kind]
					benchLive(b, snap, lay, clients, ch, &changes)
				})
			}
		}
		if lay != nil {
			lay.Close()
		}
	}
}

// benchLive runs one sub-benchmark; changes counts the changes made with
// lay before, so that no new topology is one lay has seen (and cached).
func benchLive(b *testing.B, snap *graph.Snapshot, lay *layout.Layouter, clients int, ch change, changes *int) {
	src := &watchedSource{fixedSource: &fixedSource{snap: snap, findings: scaleFindings(snap)}, changes: make(chan struct{}, 1)}
	// The real clock: the UI spaces its reads of the collector by it.
	u, tl := newBenchUI(b, src, lay, layout.Options{}, Options{MaxClients: 2 * clients, Clock: time.Now})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); _ = u.Run(ctx) }()
	srv := httptest.NewServer(u)
	defer func() { cancel(); <-ran; srv.Close() }()
	require.Eventually(b, func() bool { return u.state().snap != nil }, time.Minute, 10*time.Millisecond)

	// Connect the pages; each gets the whole page once.
	connStart := time.Now()
	pages := make([]*livePage, clients)
	for i := range pages {
		pages[i] = dialLive(b, srv)
	}
	for _, p := range pages {
		r, err := p.next(5 * time.Minute)
		require.NoError(b, err)
		require.True(b, slices.ContainsFunc(r.msg.HTML, func(f fragment) bool { return f.ID == "map-wrap" }), "a new page gets the map")
	}
	b.ReportMetric(float64(time.Since(connStart).Milliseconds()), "connect-all-ms")
	defer func() {
		for _, p := range pages {
			p.conn.Close()
		}
	}()

	var all, first []float64
	var bytes, cpu float64
	last := time.Now()
	tl.reset()
	i := 0
	for b.Loop() {
		b.StopTimer()
		next := ch(snap, *changes+i)
		src.mu.Lock()
		src.snap = next
		src.mu.Unlock()
		time.Sleep(time.Until(last.Add(1100 * time.Millisecond)))
		b.StartTimer()
		cpu0 := cpuTime()
		t0 := time.Now()
		src.changes <- struct{}{}
		var slowest, fastest time.Duration
		for j, p := range pages {
			r, err := p.next(time.Minute)
			if err != nil {
				b.Fatalf("page %d: %v", j, err)
			}
			d := r.at.Sub(t0)
			if j == 0 || d > slowest {
				slowest = d
			}
			if j == 0 || d < fastest {
				fastest = d
			}
			bytes += float64(r.bytes)
		}
		cpu += float64(cpuTime() - cpu0)
		all = append(all, float64(slowest)/1e6)
		first = append(first, float64(fastest)/1e6)
		last = time.Now()
		i++
	}
	*changes += i
	slices.Sort(all)
	slices.Sort(first)
	b.ReportMetric(all[len(all)/2], "p50-ms")
	b.ReportMetric(all[len(all)-1], "max-ms")
	b.ReportMetric(first[len(first)/2], "first-p50-ms")
	b.ReportMetric(bytes/float64(i)/float64(clients), "bytes/page")
	b.ReportMetric(cpu/float64(i)/1e6, "cpu-ms/op")
	b.ReportMetric(float64(tl.reset())/1e6/float64(i), "layout-ms/op")
}

// BenchmarkMapOverview is the map page at the overview against the page
// it replaces, on the load generator's system (simulate/scenario through
// semconv into a graph, as the collector builds it): 1,000 services (1,796
// nodes in 245 namespaces) and 10,000 (about 17,800 nodes in 2,189),
// through the handler. page=overview is the map a browser opens (laid out
// as a grid, no Graphviz); page=drill-in opens one of the two busiest
// namespaces, each request the other, so that each is laid out anew
// (layout-ms/op); page=collapsed is the map before the overview (Options.
// MaxGroups < 0): namespaces collapsed, then the busiest 300 nodes drawn,
// every other request hiding a leaf so that it is laid out anew. Building
// the 10,000-service graph takes about half a minute before the timings.
func BenchmarkMapOverview(b *testing.B) {
	for _, services := range []int{1000, 10_000} {
		snap := loadgenSnapshot(b, services)
		src := &fixedSource{snap: snap}
		// The two busiest namespaces.
		nodes := map[string]graph.Node{}
		for _, n := range snap.Nodes {
			nodes[n.ID] = n
		}
		ov := groupNodes(overviewInput{Nodes: nodes, Edges: snap.Edges, Keep: keepAll(nodes), View: View{}, MaxGroups: 50})
		var busiest []string
		for g, r := range ov.rank {
			if r < 4 && !strings.HasPrefix(g, "(") {
				busiest = append(busiest, g)
			}
		}
		slices.SortFunc(busiest, func(a, b string) int { return ov.rank[a] - ov.rank[b] })
		require.GreaterOrEqual(b, len(busiest), 2)
		for _, page := range []string{"overview", "drill-in", "collapsed"} {
			b.Run(fmt.Sprintf("services=%d/page=%s", services, page), func(b *testing.B) {
				o := Options{}
				if page == "collapsed" {
					o.MaxGroups = -1
				}
				u, tl := newBenchUI(b, src, nil, layout.Options{MaxCached: 1}, o)
				u.refresh(context.Background())
				b.ReportMetric(float64(len(snap.Nodes)), "graph-nodes")
				runtime.GC()
				switch page {
				case "overview":
					benchTargets(b, u, tl, "/")
				case "drill-in":
					benchTargets(b, u, tl, "/?expand="+url.QueryEscape(busiest[0]), "/?expand="+url.QueryEscape(busiest[1]))
				default:
					benchPage(b, u, tl, snap, u.o.MaxNodes, true)
				}
			})
		}
	}
}

// benchTargets serves the map page at targets in turn, one request an op.
func benchTargets(b *testing.B, u *UI, tl *timedLayouter, targets ...string) {
	runtime.GC() // not the building of the graph's garbage
	tl.reset()
	var bytes, i int
	var rec *httptest.ResponseRecorder
	for b.Loop() {
		rec = httptest.NewRecorder()
		u.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, targets[i%len(targets)], nil))
		bytes += rec.Body.Len()
		i++
	}
	require.Equal(b, http.StatusOK, rec.Code)
	b.ReportMetric(float64(tl.reset())/1e6/float64(i), "layout-ms/op")
	b.ReportMetric(float64(bytes)/float64(i)/1024, "page-KB")
	drawn, err := parseMap(rec.Body.String())
	require.NoError(b, err)
	b.ReportMetric(float64(len(drawn.Nodes)), "nodes-drawn")
	b.ReportMetric(float64(drawn.Edges), "edges-drawn")
}
