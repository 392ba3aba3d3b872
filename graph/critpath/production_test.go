package critpath_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/critpath"
)

// defaults returns a sampler with the default options (but a test clock),
// as the collector runs it.
func defaults(t testing.TB, o critpath.Options) (*critpath.Sampler, *clock) {
	t.Helper()
	c := &clock{t: t0}
	o.Now = c.now
	s, err := critpath.New(o)
	require.NoError(t, err)
	return s, c
}

// TestRootArrivesLast: an SDK batch processor exports every 5 s, so a
// slow trace's root (which ends last) can arrive more than the trace idle
// time after its callees' spans. The trace is not complete without its
// root: a child must not become the entry, nor a callee be blamed for its
// caller's work.
func TestRootArrivesLast(t *testing.T) {
	for _, after := range []time.Duration{4 * time.Second, 6 * time.Second, 12 * time.Second} {
		t.Run("root "+after.String()+" after the rest", func(t *testing.T) {
			s, c := defaults(t, critpath.Options{})
			b := chain(1) // spans[0] is the root
			s.ObserveSpans(b.spans[3:])
			c.advance(time.Second)
			s.ObserveSpans(b.spans[1:3])
			c.advance(after)
			require.Empty(t, s.Paths(0), "no root yet: not complete")
			s.ObserveSpans(b.spans[:1])
			paths := s.Paths(0) // whole: complete at once

			require.Len(t, paths, 1)
			require.Equal(t, svc("frontend"), paths[0].Node)
			require.Equal(t, "GET /checkout", paths[0].Operation)
			require.InDelta(t, 0.8, shares(paths[0])[svc("payment")], 1e-9)
		})
	}
}

// TestCalleeBatchAfterRoot: the root's batch can also come before a
// callee's (each replica exports on its own schedule): a trace with a call
// nobody answered yet waits TraceIdle for it rather than charging the call
// to the caller.
func TestCalleeBatchAfterRoot(t *testing.T) {
	s, c := defaults(t, critpath.Options{})
	b := chain(1)
	s.ObserveSpans(b.spans[:4]) // frontend's and checkout's spans
	c.advance(4 * time.Second)
	require.Empty(t, s.Paths(0))
	s.ObserveSpans(b.spans[4:]) // payment's answer
	paths := s.Paths(0)
	require.Len(t, paths, 1)
	require.InDelta(t, 0.8, shares(paths[0])[svc("payment")], 1e-9)
}

// TestRootlessTrace: a trace whose root never arrives (its parent is an
// uninstrumented proxy, or the root was lost) is analysed from its earliest
// parentless span once it has waited RootWait, and counted.
func TestRootlessTrace(t *testing.T) {
	s, c, reg := newSampler(t, critpath.Options{RootWait: 20 * time.Second})
	b := newTr(1)
	b.span(2, 99, graph.SpanServer, "edge", 0, 10).Operation = "GET /"
	b.span(3, 2, graph.SpanInternal, "edge", 1, 9)
	s.ObserveSpans(b.spans)
	c.advance(19 * time.Second)
	require.Empty(t, s.Paths(0))
	c.advance(time.Second)
	paths := s.Paths(0)
	require.Len(t, paths, 1)
	require.Equal(t, svc("edge"), paths[0].Node)
	require.Equal(t, 1.0, metric(t, reg, "cartograph_critpath_traces_rootless_total", ""))
}

// TestClientSideWait: time a call spends in the caller before its request
// reaches the callee (waiting for a connection from the caller's own pool,
// DNS, connecting) is the caller's, whether a child span of the client span
// shows it or only the late start of the callee's server span does.
func TestClientSideWait(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(b *tr)
	}{
		{"server span starts late", func(b *tr) {
			b.call(2, 1, "web", "search", 10, 310, 210, 300)
		}},
		{"connection wait child span", func(b *tr) {
			b.call(2, 1, "web", "search", 10, 310, 210, 300)
			b.span(9, 2, graph.SpanInternal, "web", 10, 208).Operation = "http.getconn"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c, _ := newSampler(t, critpath.Options{})
			b := newTr(1)
			b.span(1, 0, graph.SpanServer, "web", 0, 320)
			tc.build(b)
			paths := complete(s, c, b)
			require.Len(t, paths, 1)
			requireSumsToOne(t, paths[0])
			got := shares(paths[0])
			// web: 10 + 10 ms of its own, 200 ms waiting to send; search: 90
			// ms answering, 10 ms for its answer to travel back.
			require.InDelta(t, 220.0/320, got[svc("web")], 0.01, "%v", got)
			require.InDelta(t, 100.0/320, got[svc("search")], 0.01, "%v", got)
		})
	}
}

// TestLowRateEntriesFullySampled: at the default settings every trace of an
// entry at one request per second is analysed (a fixed 1-in-10 left it 6
// traces a minute, too few to judge).
func TestLowRateEntriesFullySampled(t *testing.T) {
	s, c := defaults(t, critpath.Options{})
	for i := range 60 {
		s.ObserveSpans(chain(uint64(i + 1)).spans)
		c.advance(time.Second)
	}
	c.advance(s.Options().TraceIdle)
	paths := s.Paths(0)
	require.Len(t, paths, 1)
	require.GreaterOrEqual(t, paths[0].Traces, 55)
}

// TestSamplingAdaptsToLoad: under more traffic than MaxTraces traces can
// hold while they are assembled, the sampler takes a smaller share of
// traces (by trace id) instead of refusing every new trace once full, and
// never analyses a trace it took only part of.
func TestSamplingAdaptsToLoad(t *testing.T) {
	s, c, reg := newSampler(t, critpath.Options{MaxTraces: 400, TraceIdle: 5 * time.Second, RootWait: 30 * time.Second})
	var n uint64
	var held float64
	// 200 traces/s, each trace's root arriving 5 s after the rest: about
	// 2,000 traces being assembled if every one is taken.
	// at returns trace i, started at the step it was generated in.
	at := func(i uint64) *tr {
		b := chain(i)
		for k := range b.spans {
			off := int64((i-1)/20) * int64(100*time.Millisecond)
			b.spans[k].Start += off
			b.spans[k].End += off
		}
		return b
	}
	for step := range 600 {
		var batch []graph.Span
		for range 20 {
			n++
			batch = append(batch, at(n).spans[1:]...)
		}
		if step >= 50 {
			for i := n - 1020 + 1; i <= n-1000; i++ { // the traces of 50 steps ago
				batch = append(batch, at(i).spans[0])
			}
		}
		s.ObserveSpans(batch)
		c.advance(100 * time.Millisecond)
		if step > 300 {
			held = max(held, metric(t, reg, "cartograph_critpath_traces", ""))
		}
	}
	paths := s.Paths(0)
	require.Len(t, paths, 1, "no trace analysed without its root")
	require.Equal(t, svc("frontend"), paths[0].Node)
	require.InDelta(t, 0.8, shares(paths[0])[svc("payment")], 1e-6, "no partial trace analysed")
	require.LessOrEqual(t, held, 400.0)
	require.Greater(t, paths[0].Traces, 100, "still a useful sample")
	level := metric(t, reg, "cartograph_critpath_sampling_level", "")
	require.Positive(t, level)

	// The load drops to 2 traces/s, whole ones: every trace is taken again
	// within a few minutes.
	fresh := func() []graph.Span { // a trace that started just now
		n++
		b := chain(n)
		off := c.now().Sub(t0).Nanoseconds()
		for k := range b.spans {
			b.spans[k].Start += off
			b.spans[k].End += off
		}
		return b.spans
	}
	for range 300 {
		s.ObserveSpans(fresh())
		c.advance(500 * time.Millisecond)
		s.Paths(0)
	}
	require.Zero(t, metric(t, reg, "cartograph_critpath_sampling_level", ""), "was %v", level)
	before := s.Paths(0)[0].Traces
	for range 10 {
		s.ObserveSpans(fresh())
	}
	require.Equal(t, before+10, s.Paths(0)[0].Traces)
	t.Logf("%d traces in the window; at most %v held; dropped at the limit: %v, as partial: %v; level %v", paths[0].Traces, held,
		metric(t, reg, "cartograph_critpath_traces_dropped_total", "trace_limit"), metric(t, reg, "cartograph_critpath_traces_dropped_total", "partial"),
		metric(t, reg, "cartograph_critpath_sampling_level", ""))
}

// TestRetriesAreNoNodesWork: an attempt that failed and was retried, and
// the time the caller waited before retrying, are retry overhead: neither
// the caller's own work nor the callee's (which did its work once per
// attempt, no slower than usual), so a callee slow only because it fails
// and is called again is no bottleneck, whether the client retries (a
// CLIENT span per attempt) or its RPC library does (gRPC: one CLIENT span
// answered by a SERVER span per attempt). A failed attempt not retried is
// the callee's as any other. The shares of such a path add up to the part
// of the latency not lost to retries. (Before, the wait was charged to the
// callee, which then paged as a bottleneck during every retry storm.)
func TestRetriesAreNoNodesWork(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(b *tr)
		// want are the shares of checkout and payments.
		checkout, payments float64
	}{
		{"client retries after 200 ms", func(b *tr) {
			b.call(2, 1, "checkout", "payments", 10, 20, 11, 19) // fails
			b.spans[len(b.spans)-2].Error = true
			b.call(4, 1, "checkout", "payments", 220, 310, 221, 309) // retried after 200 ms
		}, 21.0 / 320, 89.0 / 320},
		{"twice, the callee doing 60 ms of its own each time", func(b *tr) {
			b.call(2, 1, "checkout", "payments", 10, 80, 11, 79)
			b.spans[len(b.spans)-2].Error = true
			b.call(4, 1, "checkout", "payments", 90, 160, 91, 159)
			b.spans[len(b.spans)-2].Error = true
			b.call(6, 1, "checkout", "payments", 240, 310, 241, 309)
		}, 21.0 / 320, 69.0 / 320},
		{"gRPC attempts under one client span", func(b *tr) {
			b.span(2, 1, graph.SpanClient, "checkout", 10, 310)
			b.span(3, 2, graph.SpanServer, "payments", 11, 19).Error = true
			b.span(4, 2, graph.SpanServer, "payments", 221, 309)
		}, 21.0 / 320, 89.0 / 320},
		{"the last attempt fails: not retried, the callee's", func(b *tr) {
			b.call(2, 1, "checkout", "payments", 10, 20, 11, 19)
			b.spans[len(b.spans)-2].Error = true
			b.call(4, 1, "checkout", "payments", 220, 310, 221, 309)
			b.spans[len(b.spans)-2].Error = true
		}, 21.0 / 320, 89.0 / 320},
		{"a call to another service after a failure is no retry, named alike or not", func(b *tr) {
			b.call(2, 1, "checkout", "payments", 10, 20, 11, 19)
			b.spans[len(b.spans)-2].Error = true
			b.call(4, 1, "checkout", "refunds", 220, 310, 221, 309)
			// The HTTP client spans of both calls are named "POST".
			b.spans[len(b.spans)-4].Operation, b.spans[len(b.spans)-2].Operation = "POST", "POST"
		}, 222.0 / 320, 9.0 / 320},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c, _ := newSampler(t, critpath.Options{})
			b := newTr(1)
			b.span(1, 0, graph.SpanServer, "checkout", 0, 320)
			tc.build(b)
			paths := complete(s, c, b)
			require.Len(t, paths, 1)
			got := shares(paths[0])
			require.InDelta(t, tc.checkout, got[svc("checkout")], 0.005, "%v", got)
			require.InDelta(t, tc.payments, got[svc("payments")], 0.005, "%v", got)
		})
	}
}
