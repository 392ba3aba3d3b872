package critpath_test

import (
	"encoding/binary"
	"math"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/critpath"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// clock is a settable test clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newSampler returns a sampler that keeps every trace and completes it
// after a second of silence (with or without its root), on a test clock,
// with metrics in reg.
func newSampler(t testing.TB, o critpath.Options) (*critpath.Sampler, *clock, *prometheus.Registry) {
	t.Helper()
	c := &clock{t: t0}
	reg := prometheus.NewRegistry()
	if o.SampleOneIn == 0 {
		o.SampleOneIn = 1
	}
	if o.TraceIdle == 0 {
		o.TraceIdle = time.Second
	}
	if o.RootWait == 0 {
		o.RootWait = time.Second
	}
	o.Now, o.Registerer = c.now, reg
	s, err := critpath.New(o)
	require.NoError(t, err)
	return s, c, reg
}

// tr builds the spans of one trace; times are milliseconds from t0.
type tr struct {
	id    graph.TraceID
	spans []graph.Span
}

func newTr(n uint64) *tr {
	var id graph.TraceID
	binary.BigEndian.PutUint64(id[:8], n)
	binary.BigEndian.PutUint64(id[8:], n*0x9e3779b97f4a7c15)
	return &tr{id: id}
}

func sid(n uint64) graph.SpanID {
	var s graph.SpanID
	if n != 0 {
		binary.BigEndian.PutUint64(s[:], n)
	}
	return s
}

func at(msFromT0 float64) int64 { return t0.UnixNano() + int64(msFromT0*1e6) }

// span adds a span and returns it for further fields.
func (b *tr) span(id, parent uint64, kind graph.SpanKind, svc string, start, end float64) *graph.Span {
	b.spans = append(b.spans, graph.Span{Trace: b.id, ID: sid(id), Parent: sid(parent), Kind: kind, Service: svc,
		Start: at(start), End: at(end), Operation: svc + " op"})
	return &b.spans[len(b.spans)-1]
}

// call adds a CLIENT span of caller (id) under parent and the SERVER span
// of callee (id+1) answering it.
func (b *tr) call(id, parent uint64, caller, callee string, cs, ce, ss, se float64) {
	b.span(id, parent, graph.SpanClient, caller, cs, ce)
	b.span(id+1, id, graph.SpanServer, callee, ss, se)
}

func svc(name string) string { return graph.NodeKey{Kind: graph.NodeService, Name: name}.ID() }

// complete feeds the traces, lets them go idle and returns the paths.
func complete(s *critpath.Sampler, c *clock, traces ...*tr) []graph.EntryPath {
	for _, t := range traces {
		s.ObserveSpans(t.spans)
	}
	c.advance(2 * time.Second)
	return s.Paths(0)
}

func shares(p graph.EntryPath) map[string]float64 {
	m := map[string]float64{}
	for _, sh := range p.Shares {
		m[sh.Node] = sh.Share
	}
	return m
}

func requireSumsToOne(t *testing.T, p graph.EntryPath) {
	t.Helper()
	var sum float64
	for _, sh := range p.Shares {
		sum += sh.Share
		require.GreaterOrEqual(t, sh.Share, 0.0)
		require.LessOrEqual(t, sh.Share, 1.0)
	}
	require.InDelta(t, 1, sum, 0.002, "shares %+v", p.Shares)
}

// chain: frontend -> checkout -> payment, payment doing the work; each
// answer takes a millisecond to travel back.
func chain(n uint64) *tr {
	b := newTr(n)
	b.span(1, 0, graph.SpanServer, "frontend", 0, 100).Operation = "GET /checkout"
	b.call(2, 1, "frontend", "checkout", 5, 95, 5, 94)
	b.call(4, 3, "checkout", "payment", 10, 90, 10, 89)
	return b
}

func TestChainLeafDominates(t *testing.T) {
	s, c, _ := newSampler(t, critpath.Options{})
	var traces []*tr
	for i := range 10 {
		traces = append(traces, chain(uint64(i+1)))
	}
	paths := complete(s, c, traces...)
	require.Len(t, paths, 1)
	p := paths[0]
	require.Equal(t, svc("frontend"), p.Node)
	require.Equal(t, "GET /checkout", p.Operation)
	require.Equal(t, 10, p.Traces)
	require.InEpsilon(t, 100, p.P50Ms, 0.011)
	require.InEpsilon(t, 100, p.P95Ms, 0.011)
	requireSumsToOne(t, p)

	// payment: 78 ms of its own work + 2 ms of network on the calls to it.
	require.Equal(t, graph.PathShare{Node: svc("payment"), SelfMs: 80, Share: 0.8}, p.Shares[0])
	sh := shares(p)
	require.InDelta(t, 0.1, sh[svc("checkout")], 1e-9) // 8 ms own + 2 ms network
	require.InDelta(t, 0.1, sh[svc("frontend")], 1e-9) // waits 90 ms: that is not its share
	require.Len(t, p.Shares, 3)
}

func TestParallelChildren(t *testing.T) {
	s, c, _ := newSampler(t, critpath.Options{})
	par := newTr(1)
	par.span(1, 0, graph.SpanServer, "api", 0, 100).Operation = "GET /fanout"
	par.call(2, 1, "api", "fast", 10, 60, 10, 60)
	par.call(4, 1, "api", "slow", 10, 90, 10, 90)
	par.span(6, 1, graph.SpanInternal, "api", 20, 30) // in parallel too: off the path

	seq := newTr(2)
	seq.span(1, 0, graph.SpanServer, "api", 0, 100).Operation = "GET /sequence"
	seq.call(2, 1, "api", "fast", 10, 40, 10, 40)
	seq.call(4, 1, "api", "slow", 50, 90, 50, 90)

	paths := complete(s, c, par, seq)
	require.Len(t, paths, 2)
	require.Equal(t, "GET /fanout", paths[0].Operation)
	require.Equal(t, map[string]float64{svc("slow"): 0.8, svc("api"): 0.2}, shares(paths[0]),
		"only the last child to return is on the path")
	require.Equal(t, "GET /sequence", paths[1].Operation)
	require.Equal(t, map[string]float64{svc("slow"): 0.4, svc("fast"): 0.3, svc("api"): 0.3}, shares(paths[1]))
}

func TestSlowDatabase(t *testing.T) {
	s, c, _ := newSampler(t, critpath.Options{})
	db := graph.NodeKey{Kind: graph.NodeDatabase, Group: "postgresql", Name: "orders"}
	b := newTr(1)
	b.span(1, 0, graph.SpanServer, "orders", 0, 100)
	b.span(2, 1, graph.SpanClient, "orders", 5, 85).Peer = db
	b.span(3, 1, graph.SpanClient, "orders", 86, 96).Peer = graph.NodeKey{Kind: graph.NodeExternal, Name: "stripe.com"}
	b.span(4, 1, graph.SpanClient, "orders", 96, 97) // names no peer: the caller's
	paths := complete(s, c, b)
	require.Len(t, paths, 1)
	require.Equal(t, map[string]float64{
		db.ID(): 0.8,
		graph.NodeKey{Kind: graph.NodeExternal, Name: "stripe.com"}.ID(): 0.1,
		svc("orders"): 0.1,
	}, shares(paths[0]))
	require.Equal(t, db.ID(), paths[0].Shares[0].Node)
}

// TestClientServerGaps: of a call's time outside the callee's SERVER span,
// what comes before it (the request not sent yet) is the caller's, what
// comes after it (the answer travelling back) the callee's.
func TestClientServerGaps(t *testing.T) {
	s, c, _ := newSampler(t, critpath.Options{})
	b := newTr(1)
	b.span(1, 0, graph.SpanServer, "web", 0, 100)
	b.call(2, 1, "web", "search", 10, 100, 40, 70) // 30 ms before search started, 30 ms after it ended
	paths := complete(s, c, b)
	require.Len(t, paths, 1)
	require.Equal(t, map[string]float64{svc("search"): 0.6, svc("web"): 0.4}, shares(paths[0]))
}

func TestAsyncChildrenIgnored(t *testing.T) {
	s, c, _ := newSampler(t, critpath.Options{})
	b := newTr(1)
	b.span(1, 0, graph.SpanServer, "shop", 0, 50).Operation = "POST /order"
	b.span(2, 1, graph.SpanProducer, "shop", 10, 20)
	b.span(3, 2, graph.SpanConsumer, "worker", 30, 900)
	b.span(4, 3, graph.SpanClient, "worker", 40, 800).Peer = graph.NodeKey{Kind: graph.NodeDatabase, Group: "mysql", Name: "ledger"}
	paths := complete(s, c, b)
	require.Len(t, paths, 1, "the consumer is not an entry: its parent is in the trace")
	require.Equal(t, svc("shop"), paths[0].Node)
	require.InEpsilon(t, 50, paths[0].P95Ms, 0.011)
	require.Equal(t, map[string]float64{svc("shop"): 1}, shares(paths[0]))
}

func TestRootSelection(t *testing.T) {
	s, c, _ := newSampler(t, critpath.Options{})
	// The root server's parent (a load balancer) is not in the trace.
	lb := newTr(1)
	lb.span(2, 99, graph.SpanServer, "edge", 0, 10).Operation = "GET /"
	lb.span(3, 2, graph.SpanInternal, "edge", 1, 9)
	// Two parentless spans: the earliest is the root.
	two := newTr(2)
	two.span(5, 0, graph.SpanServer, "late", 5, 10).Operation = "late"
	two.span(4, 0, graph.SpanServer, "early", 0, 20).Operation = "early"
	paths := complete(s, c, lb, two)
	require.Len(t, paths, 2)
	require.Equal(t, svc("early"), paths[0].Node)
	require.Equal(t, "early", paths[0].Operation)
	require.Equal(t, svc("edge"), paths[1].Node)
	require.Equal(t, "GET /", paths[1].Operation)
}

func TestSamplingDeterministic(t *testing.T) {
	// The hash is part of the contract between collectors: pin it.
	require.Equal(t, uint64(0xfb215ffa122dd65d), critpath.TraceHash(graph.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}))

	var batch []graph.Span
	for i := range 2000 {
		b := newTr(uint64(i + 1))
		b.span(1, 0, graph.SpanServer, "api", 0, 10)
		batch = append(batch, b.spans...)
	}
	var got [2]int
	for k := range got {
		s, c, _ := newSampler(t, critpath.Options{SampleOneIn: 10})
		s.ObserveSpans(batch)
		c.advance(2 * time.Second)
		paths := s.Paths(0)
		require.Len(t, paths, 1)
		got[k] = paths[0].Traces
	}
	require.Equal(t, got[0], got[1])
	require.InDelta(t, 200, got[0], 60)

	want := 0
	for _, sp := range batch {
		if critpath.TraceHash(sp.Trace)%10 == 0 {
			want++
		}
	}
	require.Equal(t, want, got[0])
}

func TestUnsampledSpansDoNotAllocate(t *testing.T) {
	s, _, _ := newSampler(t, critpath.Options{SampleOneIn: 1 << 62})
	var batch []graph.Span
	for i := range 100 {
		b := newTr(uint64(i + 1))
		b.span(1, 0, graph.SpanServer, "api", 0, 10)
		if critpath.TraceHash(b.id)%(1<<62) != 0 {
			batch = append(batch, b.spans...)
		}
	}
	require.Zero(t, testing.AllocsPerRun(100, func() { s.ObserveSpans(batch) }))
}

// TestIdleCompletion: a trace whose root has arrived but that still has a
// call nobody answered (the callee's batch may be on its way) is complete
// after TraceIdle without a new span; once whole, at once.
func TestIdleCompletion(t *testing.T) {
	s, c, reg := newSampler(t, critpath.Options{TraceIdle: 5 * time.Second})
	b := chain(1)
	s.ObserveSpans(b.spans[:2]) // the root, and its call to checkout
	c.advance(3 * time.Second)
	require.Empty(t, s.Paths(0))
	s.ObserveSpans(b.spans[2:4]) // the trace is fed again: idle restarts; payment has not answered
	c.advance(3 * time.Second)
	require.Empty(t, s.Paths(0))
	require.Equal(t, 4.0, metric(t, reg, "cartograph_critpath_spans", ""))
	c.advance(2 * time.Second)
	paths := s.Paths(0)
	require.Len(t, paths, 1)
	require.Equal(t, 1, paths[0].Traces)
	require.InDelta(t, 0.9, shares(paths[0])[svc("checkout")], 1e-9, "its unanswered call is its own")
	require.Equal(t, 0.0, metric(t, reg, "cartograph_critpath_spans", ""))

	b = chain(3)
	s.ObserveSpans(b.spans[1:])
	require.Equal(t, 4.0, metric(t, reg, "cartograph_critpath_spans", ""))
	s.ObserveSpans(b.spans[:1])
	require.Equal(t, 0.0, metric(t, reg, "cartograph_critpath_spans", ""), "whole: complete at once")
	require.Equal(t, 2, s.Paths(0)[0].Traces)
	require.InDelta(t, 0.4, shares(s.Paths(0)[0])[svc("payment")], 1e-9, "80 ms of the two traces' 200")
	require.Equal(t, 2.0, metric(t, reg, "cartograph_critpath_traces_completed_total", ""))

	// A late span of the completed trace does not start a new one.
	late := b.spans[0]
	late.ID = sid(77)
	s.ObserveSpans([]graph.Span{late})
	c.advance(10 * time.Second)
	require.Equal(t, 2, s.Paths(0)[0].Traces)
	require.Equal(t, 1.0, metric(t, reg, "cartograph_critpath_spans_ignored_total", ""))

	// Idle traces also complete on ingest, when Paths is not called.
	s.ObserveSpans(chain(2).spans[:2])
	c.advance(6 * time.Second)
	s.ObserveSpans(nil)
	require.Equal(t, 3.0, metric(t, reg, "cartograph_critpath_traces_completed_total", ""))
}

func TestBoundsCounted(t *testing.T) {
	t.Run("traces", func(t *testing.T) {
		s, c, reg := newSampler(t, critpath.Options{MaxTraces: 2})
		a, b, x := chain(1), chain(2), chain(3)
		// Roots come last.
		s.ObserveSpans(append(append(append([]graph.Span{}, a.spans[1:]...), b.spans[1:]...), x.spans[1]))
		require.Equal(t, 1.0, metric(t, reg, "cartograph_critpath_traces_dropped_total", "trace_limit"))
		require.Equal(t, 2.0, metric(t, reg, "cartograph_critpath_traces", ""))
		s.ObserveSpans([]graph.Span{a.spans[0], b.spans[0]})
		require.Equal(t, 0.0, metric(t, reg, "cartograph_critpath_traces", ""), "whole: complete at once")
		s.ObserveSpans(x.spans[2:]) // room again, but the trace was refused: not partially taken
		s.ObserveSpans(x.spans[:1])
		c.advance(2 * time.Second)
		paths := s.Paths(0)
		require.Len(t, paths, 1)
		require.Equal(t, 2, paths[0].Traces)
		// The limit also halved the share of traces taken: x's later spans
		// were ignored, or left out by the level.
		require.Equal(t, 1.0, metric(t, reg, "cartograph_critpath_sampling_level", ""))
	})
	t.Run("spans per trace", func(t *testing.T) {
		s, c, reg := newSampler(t, critpath.Options{MaxSpansPerTrace: 3})
		b := chain(1)
		s.ObserveSpans(b.spans[:4])
		s.ObserveSpans(b.spans[4:])
		require.Equal(t, 1.0, metric(t, reg, "cartograph_critpath_traces_dropped_total", "span_limit"))
		require.Equal(t, 0.0, metric(t, reg, "cartograph_critpath_spans", ""))
		require.Equal(t, 1.0, metric(t, reg, "cartograph_critpath_spans_ignored_total", ""))
		c.advance(2 * time.Second)
		require.Empty(t, s.Paths(0))
	})
	t.Run("entries", func(t *testing.T) {
		s, c, reg := newSampler(t, critpath.Options{MaxEntries: 1})
		a, b := newTr(1), newTr(2)
		a.span(1, 0, graph.SpanServer, "a", 0, 10)
		b.span(1, 0, graph.SpanServer, "b", 0, 10)
		paths := complete(s, c, a, b)
		require.Len(t, paths, 1)
		require.Equal(t, 1.0, metric(t, reg, "cartograph_critpath_traces_dropped_total", "entry_limit"))
		// Once the first entry ages out of the window, room is made.
		c.advance(2 * time.Minute)
		b2 := newTr(3)
		b2.span(1, 0, graph.SpanServer, "b", 0, 10)
		paths = complete(s, c, b2)
		require.Len(t, paths, 1)
		require.Equal(t, svc("b"), paths[0].Node)
	})
}

func TestWindow(t *testing.T) {
	s, c, _ := newSampler(t, critpath.Options{Window: time.Minute})
	require.Len(t, complete(s, c, chain(1)), 1)
	c.advance(30 * time.Second)
	require.Len(t, complete(s, c, chain(2)), 1)
	require.Equal(t, 2, s.Paths(0)[0].Traces)
	require.Equal(t, 1, s.Paths(10 * time.Second)[0].Traces, "a shorter window merges fewer buckets")
	c.advance(45 * time.Second)
	require.Equal(t, 1, s.Paths(0)[0].Traces)
	c.advance(time.Minute)
	require.Empty(t, s.Paths(0))
}

func TestHostileTraces(t *testing.T) {
	t.Run("parent cycle", func(t *testing.T) {
		s, c, _ := newSampler(t, critpath.Options{})
		b := newTr(1)
		b.span(1, 2, graph.SpanServer, "a", 0, 100)
		b.span(2, 1, graph.SpanServer, "b", 10, 90)
		b.span(3, 2, graph.SpanClient, "b", 20, 30)
		own := newTr(2)
		own.span(5, 5, graph.SpanServer, "self", 0, 10) // its own parent: a broken link, so a root
		done := make(chan []graph.EntryPath)
		go func() { done <- complete(s, c, b, own) }()
		select {
		case paths := <-done:
			require.Len(t, paths, 2)
			require.Equal(t, svc("a"), paths[0].Node, "every parent in the trace: the earliest span")
			require.Equal(t, map[string]float64{svc("a"): 0.2, svc("b"): 0.8}, shares(paths[0]))
			require.Equal(t, svc("self"), paths[1].Node)
			require.Equal(t, map[string]float64{svc("self"): 1}, shares(paths[1]))
		case <-time.After(10 * time.Second):
			t.Fatal("a parent cycle hangs the walk")
		}
	})
	t.Run("clock skew and bad durations", func(t *testing.T) {
		s, c, _ := newSampler(t, critpath.Options{})
		b := newTr(1)
		b.span(1, 0, graph.SpanServer, "a", 0, 100)
		b.call(2, 1, "a", "b", 50, 150, 60, 200)      // ends after its parent
		b.call(4, 1, "a", "c", -50, 10, -40, 5)       // starts before it
		b.span(6, 1, graph.SpanInternal, "a", 30, 20) // negative duration
		b.span(7, 1, graph.SpanInternal, "d", 300, 400)
		b.span(1, 0, graph.SpanServer, "dup", 0, 1) // duplicate id
		paths := complete(s, c, b)
		require.Len(t, paths, 1)
		requireSumsToOne(t, paths[0])
		// b's server span starts 10 ms after a's client span: that is a's.
		require.Equal(t, map[string]float64{svc("b"): 0.4, svc("a"): 0.5, svc("c"): 0.1}, shares(paths[0]))
	})
	t.Run("overflowing timestamps", func(t *testing.T) {
		s, c, reg := newSampler(t, critpath.Options{})
		b := newTr(1)
		b.span(1, 0, graph.SpanServer, "a", 0, 0)
		b.spans[0].Start, b.spans[0].End = math.MinInt64, math.MaxInt64
		require.Empty(t, complete(s, c, b))
		require.Equal(t, 1.0, metric(t, reg, "cartograph_critpath_traces_dropped_total", "invalid"))
	})
	t.Run("deep trace", func(t *testing.T) {
		s, c, _ := newSampler(t, critpath.Options{MaxSpansPerTrace: 100_000})
		b := newTr(1)
		const depth = 50_000
		for i := range depth {
			b.span(uint64(i+1), uint64(i), graph.SpanInternal, "deep", float64(i)*1e-3, 1e3-float64(i)*1e-3)
		}
		b.span(depth+1, depth, graph.SpanInternal, "bottom", 100, 900)
		paths := complete(s, c, b)
		require.Len(t, paths, 1)
		require.InDelta(t, 0.8, shares(paths[0])[svc("bottom")], 1e-3)
	})
}

func TestConcurrent(t *testing.T) {
	s, c, _ := newSampler(t, critpath.Options{SampleOneIn: 2})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				s.ObserveSpans(chain(uint64(g*1000 + i + 1)).spans)
				if i%50 == 0 {
					c.advance(100 * time.Millisecond)
					_ = s.Paths(0)
				}
			}
		})
	}
	wg.Wait()
	c.advance(2 * time.Second)
	paths := s.Paths(0)
	require.Len(t, paths, 1)
	require.InDelta(t, 2000, paths[0].Traces, 300)
	requireSumsToOne(t, paths[0])
}

func TestOptions(t *testing.T) {
	_, err := critpath.New(critpath.Options{SampleOneIn: -1})
	require.Error(t, err)
	_, err = critpath.New(critpath.Options{Window: time.Minute, Bucket: 2 * time.Minute})
	require.Error(t, err)
	_, err = critpath.New(critpath.Options{TraceIdle: -time.Second})
	require.Error(t, err)
	s, err := critpath.New(critpath.Options{})
	require.NoError(t, err)
	o := s.Options()
	require.Equal(t, 1, o.SampleOneIn)
	require.Equal(t, 5*time.Second, o.TraceIdle)
	require.Equal(t, 30*time.Second, o.RootWait)
	require.Equal(t, 10_000, o.MaxTraces)
	require.Equal(t, 1_000, o.MaxSpansPerTrace)
	require.Equal(t, time.Minute, o.Window)
	require.Equal(t, 5*time.Second, o.Bucket)
	require.Equal(t, 1_000, o.MaxEntries)
	var _ graph.PathSource = s
}

// metric returns the value of the metric name (with reason label, if
// given) in reg.
func metric(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := reason == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					match = true
				}
			}
			if !match {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("no metric %s{reason=%q}", name, reason)
	return 0
}

// TestNamesTableFills: a trace that started before the names table filled
// up keeps its names, and the spans it gets afterwards name theirs too.
func TestNamesTableFills(t *testing.T) {
	s, c, _ := newSampler(t, critpath.Options{MaxSpansPerTrace: 100_000})
	db := graph.NodeKey{Kind: graph.NodeDatabase, Group: "postgresql", Name: "orders"}
	a := newTr(1)
	a.span(2, 1, graph.SpanClient, "orders", 5, 85).Peer = db
	s.ObserveSpans(a.spans)
	// 70,000 names (more than a table holds) from another trace.
	flood := newTr(2)
	flood.span(1, 0, graph.SpanServer, "flood", 0, 100)
	for i := range 70_000 {
		flood.span(uint64(i+2), 1, graph.SpanInternal, "flood", 1, 2).Operation = "op-" + strconv.Itoa(i)
	}
	s.ObserveSpans(flood.spans)
	// Then the rest of the first trace, and a new trace, both after the
	// switch to a new table.
	later := newTr(1)
	later.span(1, 0, graph.SpanServer, "orders", 0, 100).Operation = "GET /orders"
	b := newTr(3)
	b.span(1, 0, graph.SpanServer, "orders", 0, 100).Operation = "GET /orders"
	b.span(2, 1, graph.SpanClient, "orders", 5, 85).Peer = db
	paths := complete(s, c, later, b)
	got := map[string]map[string]float64{}
	for _, p := range paths {
		got[p.Node+" "+p.Operation] = shares(p)
		if p.Operation == "GET /orders" {
			require.Equal(t, 2, p.Traces)
		}
	}
	require.Equal(t, map[string]float64{db.ID(): 0.8, svc("orders"): 0.2}, got[svc("orders")+" GET /orders"])
	require.Contains(t, got, svc("flood")+" flood op")
}
