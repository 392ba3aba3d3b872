package critpath_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/critpath"
)

// TestCallPatterns: per parent span, calls to one callee operation are
// counted as requests and their repeats; the waits before repeats and the
// attempts per request are kept; calls to another callee, or from another
// parent, are another group.
func TestCallPatterns(t *testing.T) {
	s, c, _ := newSampler(t, critpath.Options{})
	// An N+1 loop: web's request handler calls items 10 times in a row;
	// the 4th call fails and is repeated at once, twice.
	loop := newTr(1)
	loop.span(1, 0, graph.SpanServer, "web", 0, 200)
	id, ms := uint64(10), 1.0
	for i := range 10 {
		attempts := 1
		if i == 3 {
			attempts = 3
		}
		for a := range attempts {
			loop.call(id, 1, "web", "items", ms, ms+5, ms+1, ms+4)
			if a < attempts-1 {
				loop.spans[len(loop.spans)-2].Error = true
				loop.spans[len(loop.spans)-1].Error = true
			}
			id += 2
			ms += 5.5 // 0.5 ms between calls
		}
	}
	// A caller backing off: web calls pay, which fails twice; web waits
	// 10 ms, then 25 ms.
	backoff := newTr(2)
	backoff.span(1, 0, graph.SpanServer, "web", 0, 100)
	backoff.call(10, 1, "web", "pay", 1, 6, 2, 5)
	backoff.call(12, 1, "web", "pay", 16, 21, 17, 20)
	backoff.call(14, 1, "web", "pay", 46, 51, 47, 50)
	backoff.spans[1].Error, backoff.spans[3].Error = true, true
	backoff.call(16, 1, "web", "audit", 60, 130, 61, 129) // answered after web replied
	for _, tr := range []*tr{loop, backoff} {
		s.ObserveSpans(tr.spans)
	}
	c.advance(2 * time.Second)
	got := s.Calls(0)
	require.Len(t, got, 3)
	audit := got[0]
	require.Equal(t, svc("audit"), audit.Callee)
	require.Equal(t, 1, audit.Detached)

	items := got[1]
	require.Equal(t, svc("web"), items.Caller)
	require.Equal(t, svc("items"), items.Callee)
	require.Equal(t, "web op", items.Operation)
	require.Equal(t, 1, items.Parents)
	require.Equal(t, 10, items.Requests)
	require.Equal(t, 12, items.Calls)
	require.Equal(t, 2, items.Failed)
	require.Equal(t, 1, items.Retried)
	require.Equal(t, 2, items.Repeats)
	require.Equal(t, critpath.Dist{P50: 10, P95: 10, Min: 10, Max: 10, Mean: 10}, items.PerParent)
	require.NotNil(t, items.GapMs)
	require.InDelta(t, 0.5, items.GapMs.P50, 0.01)
	require.Equal(t, 1, items.Multi)
	require.Zero(t, items.Growing, "the same wait twice is no backoff")
	require.Equal(t, 9, items.Attempts[0])
	require.Equal(t, 1, items.Attempts[2])

	require.Zero(t, items.Detached)
	pay := got[2]
	require.Equal(t, svc("pay"), pay.Callee)
	require.Equal(t, 1, pay.Requests)
	require.Equal(t, 3, pay.Calls)
	require.Equal(t, 2, pay.Repeats)
	require.Equal(t, 1, pay.Growing)
	require.Equal(t, 1, pay.Multi)
	require.InDelta(t, 10, pay.GapMs.Min, 0.01)
	require.InDelta(t, 25, pay.GapMs.Max, 0.01)
	require.Equal(t, 1, pay.Attempts[2])

	// The window slides: an hour later nothing is left.
	c.advance(time.Hour)
	require.Empty(t, s.Calls(0))
}

// TestCallPatternsBounded: a bucket keeps at most MaxCallPatterns
// patterns; the calls of others are dropped and counted.
func TestCallPatternsBounded(t *testing.T) {
	s, c, reg := newSampler(t, critpath.Options{MaxCallPatterns: 2})
	b := newTr(1)
	b.span(1, 0, graph.SpanServer, "web", 0, 100)
	for i, callee := range []string{"a", "b", "c", "d"} {
		b.call(uint64(10+2*i), 1, "web", callee, float64(i*10), float64(i*10+5), float64(i*10+1), float64(i*10+4))
	}
	s.ObserveSpans(b.spans)
	c.advance(2 * time.Second)
	require.Len(t, s.Calls(0), 2)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var dropped float64
	for _, mf := range mfs {
		if mf.GetName() == "cartograph_critpath_call_groups_dropped_total" {
			dropped = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	require.Equal(t, 2.0, dropped)
}
