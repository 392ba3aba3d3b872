package changes

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newRecorder(t *testing.T, o Options) (*Recorder, *clock) {
	t.Helper()
	c := &clock{t: t0}
	o.Now = c.now
	o.Registerer = prometheus.NewRegistry()
	r, err := New(o)
	require.NoError(t, err)
	return r, c
}

// replica is one instance of a service as its resource says.
type replica struct{ svc, instance, version, env string }

// spans are a batch of replica's spans sent at now (the SDK's batch: a
// few spans of one resource sharing its attribute slice).
func (rp replica) spans(now time.Time) []graph.Span {
	attrs := []graph.Attr{{Key: AttrVersion, Value: rp.version}}
	if rp.env != "" {
		attrs = append(attrs, graph.Attr{Key: AttrEnvironment, Value: rp.env})
	}
	out := make([]graph.Span, 3)
	for i := range out {
		out[i] = graph.Span{Service: rp.svc, Instance: rp.instance, Attributes: attrs, Kind: graph.SpanServer,
			Start: now.Add(-time.Duration(5-i) * time.Second).UnixNano(), End: now.Add(-time.Duration(4-i) * time.Second).UnixNano()}
	}
	return out
}

// run sends every replica's batch each 5 s for d, recording a tick each
// time.
func run(r *Recorder, c *clock, d time.Duration, rs ...replica) {
	for end := c.t.Add(d); c.t.Before(end); c.advance(5 * time.Second) {
		for _, rp := range rs {
			r.Observe(rp.spans(c.t))
		}
		r.Record(&graph.Snapshot{GeneratedAt: c.t})
	}
}

func kinds(cs []Change) []string {
	var out []string
	for _, c := range cs {
		k := c.Kind.String()
		if c.Attribute != "" {
			k += " " + c.Attribute
		}
		out = append(out, k)
	}
	return out
}

// TestVersions: a rolling deploy over three replicas (old and new versions
// side by side for two minutes) is one version change, at the first span
// of the new version, and no instance turnover besides; a rollback after
// the new version was gone for GoneAfter is another; a change of
// environment is one too; a collector that starts mid-rollout records
// nothing in its first Quiet.
func TestVersions(t *testing.T) {
	t.Run("rolling deploy", func(t *testing.T) {
		r, c := newRecorder(t, Options{})
		a, b, d := replica{"payment", "p-1", "1.41", "prod"}, replica{"payment", "p-2", "1.41", "prod"}, replica{"payment", "p-3", "1.41", "prod"}
		run(r, c, 10*time.Minute, a, b, d)
		require.Empty(t, r.Between(t0, c.t))
		start := c.t
		a2, b2, d2 := replica{"payment", "p-4", "1.42", "prod"}, replica{"payment", "p-5", "1.42", "prod"}, replica{"payment", "p-6", "1.42", "prod"}
		run(r, c, time.Minute, a2, b, d) // one replaced
		run(r, c, time.Minute, a2, b2, d)
		run(r, c, 10*time.Minute, a2, b2, d2)
		cs := r.Between(t0, c.t)
		require.Equal(t, []string{"version service.version"}, kinds(cs), "%+v", cs)
		require.Equal(t, "1.41", cs[0].From)
		require.Equal(t, "1.42", cs[0].To)
		require.Equal(t, "service:payment", cs[0].NodeID)
		require.Equal(t, "version 1.42 of payment (was 1.41)", cs[0].Summary)
		require.WithinDuration(t, start.Add(-5*time.Second), cs[0].At, 5*time.Second, "at the new version's first span")

		// Roll back: 1.41 has been gone for ten minutes.
		rollback := c.t
		run(r, c, 3*time.Minute, a, b, d)
		cs = r.Between(rollback.Add(-time.Minute), c.t)
		require.Len(t, cs, 1)
		require.Equal(t, "1.42", cs[0].From)
		require.Equal(t, "1.41", cs[0].To)
	})
	t.Run("environment", func(t *testing.T) {
		r, c := newRecorder(t, Options{})
		run(r, c, 2*time.Minute, replica{"api", "a-1", "7", "staging"})
		run(r, c, 2*time.Minute, replica{"api", "a-1", "7", "prod"})
		cs := r.Between(t0, c.t)
		require.Equal(t, []string{"version deployment.environment.name"}, kinds(cs))
		require.Equal(t, "deployment.environment.name of api changed from staging to prod", cs[0].Summary)
	})
	t.Run("starting mid-rollout", func(t *testing.T) {
		r, c := newRecorder(t, Options{})
		run(r, c, 5*time.Minute, replica{"api", "a-1", "7", ""}, replica{"api", "a-2", "8", ""})
		require.Empty(t, r.Between(t0, c.t), "both versions were there when it started")
	})
}

// TestInstanceTurnover: all three instances replaced within a minute is a
// restart (one change, naming the instances); one of three replaced, or
// one more instance added, is not.
func TestInstanceTurnover(t *testing.T) {
	r, c := newRecorder(t, Options{})
	a, b, d := replica{"orders", "o-1", "3", ""}, replica{"orders", "o-2", "3", ""}, replica{"orders", "o-3", "3", ""}
	run(r, c, 10*time.Minute, a, b, d)
	run(r, c, 10*time.Minute, a, b, replica{"orders", "o-4", "3", ""}) // one pod rescheduled
	run(r, c, 10*time.Minute, a, b, replica{"orders", "o-4", "3", ""}, replica{"orders", "o-5", "3", ""})
	require.Empty(t, r.Between(t0, c.t), "one of three replaced, then a scale-out")
	restart := c.t
	run(r, c, 10*time.Minute, replica{"orders", "o-6", "3", ""}, replica{"orders", "o-7", "3", ""}, replica{"orders", "o-8", "3", ""}, replica{"orders", "o-9", "3", ""})
	cs := r.Between(t0, c.t)
	require.Equal(t, []string{"version service.instance.id"}, kinds(cs), "%+v", cs)
	require.Equal(t, "o-1, o-2, o-4 and 1 more", cs[0].From)
	require.Equal(t, "o-6, o-7, o-8 and 1 more", cs[0].To)
	require.WithinDuration(t, restart, cs[0].At, 10*time.Second)
	require.Contains(t, cs[0].Summary, "orders restarted or redeployed: 4 of 4 instances replaced by 4 new")
}

// TestBounds: the ring keeps the newest MaxChanges; services beyond
// MaxServices are not followed.
func TestBounds(t *testing.T) {
	r, c := newRecorder(t, Options{MaxChanges: 3, MaxServices: 1})
	run(r, c, 2*time.Minute, replica{"a", "", "1", ""}, replica{"b", "", "1", ""})
	for v := 2; v < 7; v++ {
		run(r, c, time.Minute, replica{"a", "", string(rune('0' + v)), ""}, replica{"b", "", string(rune('0' + v)), ""})
	}
	cs := r.Between(t0, c.t)
	require.Len(t, cs, 3)
	require.Equal(t, []string{"4", "5", "6"}, []string{cs[0].To, cs[1].To, cs[2].To})
	for _, ch := range cs {
		require.Equal(t, "a", ch.Node)
	}
}

// snap is a snapshot of edges (source, target, rate) at now.
func snap(now time.Time, edges ...graph.Edge) *graph.Snapshot {
	s := &graph.Snapshot{GeneratedAt: now}
	nodes := map[string]bool{}
	for _, e := range edges {
		for _, id := range []string{e.Source, e.Target} {
			if !nodes[id] {
				nodes[id] = true
				s.Nodes = append(s.Nodes, graph.Node{ID: id, Name: id[len("service:"):]})
			}
		}
		s.Edges = append(s.Edges, e)
	}
	return s
}

func edge(src, dst string, rate float64) graph.Edge {
	return graph.Edge{ID: "service:" + src + "->service:" + dst + " http", Source: "service:" + src, Target: "service:" + dst, RatePerS: rate}
}

// TestPresence: nothing is added until the recorder has watched for
// GoneAfter (what it sees first was there before); then a new edge and
// node are added; an edge gone for GoneAfter is removed at its last
// sighting, its nodes with it; a single quiet tick removes nothing.
func TestPresence(t *testing.T) {
	r, c := newRecorder(t, Options{})
	r.Record(snap(c.t, edge("web", "api", 10)))
	c.advance(5 * time.Second)
	r.Record(snap(c.t)) // one quiet tick
	for range 60 {
		c.advance(5 * time.Second)
		r.Record(snap(c.t, edge("web", "api", 10), edge("web", "cart", 10)))
	}
	require.Empty(t, r.Between(t0, c.t), "cart was there before the recorder had watched for GoneAfter")
	c.advance(5 * time.Second)
	r.Record(snap(c.t, edge("web", "api", 10), edge("api", "payment", 5)))
	added := c.t
	cs := r.Between(t0, c.t)
	require.ElementsMatch(t, []string{"edge_added", "node_added"}, kinds(cs))
	e := cs[slices.IndexFunc(cs, func(c Change) bool { return c.Kind == KindEdgeAdded })]
	require.Equal(t, "api", e.Source)
	require.Equal(t, "service:api", e.SourceID)
	require.Equal(t, "new dependency: api → payment", e.Summary)
	for range 60 { // five minutes without payment
		c.advance(5 * time.Second)
		r.Record(snap(c.t, edge("web", "api", 10), edge("web", "cart", 10)))
	}
	require.Len(t, r.Between(t0, c.t), 2, "not gone yet")
	c.advance(5 * time.Second)
	r.Record(snap(c.t, edge("web", "api", 10), edge("web", "cart", 10)))
	cs = r.Between(added.Add(time.Millisecond), c.t)
	require.Empty(t, cs, "removed at its last sighting")
	cs = r.Between(added, added)
	require.ElementsMatch(t, []string{"edge_added", "node_added", "edge_removed", "node_removed"}, kinds(cs))
	cs = slices.DeleteFunc(cs, func(c Change) bool { return c.Kind != KindEdgeRemoved })
	require.True(t, cs[0].On("service:payment"))
	require.False(t, cs[0].On("service:web"))

	// JSON as SPEC.md has it.
	b, err := json.Marshal(cs[0])
	require.NoError(t, err)
	require.JSONEq(t, `{"id":"`+cs[0].ID+`","at":"2026-03-01T12:05:10Z","kind":"edge_removed","source":"api","target":"payment",
		"edge_id":"service:api->service:payment http","source_id":"service:api","target_id":"service:payment",
		"summary":"dependency gone: api → payment, no calls since 2026-03-01T12:05:10Z"}`, string(b))
	var back Change
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, cs[0], back)
	require.Error(t, json.Unmarshal([]byte(`{"kind":"moved"}`), &back))
}

// TestLowRateEdgeDoesNotFlap drives the real graph for six hours, with a
// 20 s window and 5 s ticks, with two Poisson edges: one call per 10 s and
// one per two minutes. Their windows are empty again and again (the test
// checks they are, or it would prove nothing), and the recorder neither
// removes nor re-adds them. An edge that stops for good is removed once,
// at its last call.
func TestLowRateEdgeDoesNotFlap(t *testing.T) {
	c := &clock{t: t0}
	g, err := graph.New(graph.Options{Now: c.now, Window: 20 * time.Second, Bucket: 5 * time.Second, PairTTL: 2 * time.Second})
	require.NoError(t, err)
	r, err := New(Options{Now: c.now})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	var n uint64
	call := func(at time.Time, callee string) {
		n++
		var tr graph.TraceID
		binary.BigEndian.PutUint64(tr[:8], n)
		cl, sv := graph.SpanID{1}, graph.SpanID{2}
		start := at.UnixNano()
		_, _ = g.ConsumeSpans([]graph.Span{
			{Trace: tr, ID: sv, Parent: cl, Kind: graph.SpanServer, Service: callee, Start: start + 1e6, End: start + 9e6, Protocol: graph.ProtocolHTTP},
			{Trace: tr, ID: cl, Kind: graph.SpanClient, Service: "web", Start: start, End: start + 10e6, Protocol: graph.ProtocolHTTP, Operation: "GET /x"},
		})
	}
	type poisson struct {
		callee string
		mean   time.Duration
		next   time.Time
		empty  int
	}
	edges := []*poisson{{callee: "ledger", mean: 10 * time.Second}, {callee: "audit", mean: 2 * time.Minute}}
	for _, p := range edges {
		call(c.t, p.callee)
		p.next = c.t.Add(time.Duration(rng.ExpFloat64() * float64(p.mean)))
	}
	tick := func(calls bool) {
		c.advance(5 * time.Second)
		for _, p := range edges {
			for calls && !p.next.After(c.t) {
				call(p.next, p.callee)
				p.next = p.next.Add(time.Duration(rng.ExpFloat64() * float64(p.mean)))
			}
		}
		call(c.t, "api") // a busy neighbour
		g.Expire()
		s, err := g.Snapshot(0)
		require.NoError(t, err)
		for _, p := range edges {
			if _, ok := edgeIn(s, "service:web->service:"+p.callee+" http"); !ok {
				p.empty++
			}
		}
		r.Record(s)
	}
	for end := t0.Add(6 * time.Hour); c.t.Before(end); {
		tick(true)
	}
	for _, p := range edges {
		t.Logf("the window of web → %s was empty at %d of %d ticks", p.callee, p.empty, 6*720)
		require.Greater(t, p.empty, 50, "the low-rate edge's window was hardly ever empty: the test shows nothing")
	}
	require.Empty(t, r.Between(t0, c.t), "a low-rate edge flapped")

	// Both stop for good: removed once each, at their last call.
	stop := c.t
	for end := c.t.Add(time.Hour); c.t.Before(end); {
		tick(false)
	}
	cs := r.Between(t0, c.t)
	require.ElementsMatch(t, []string{"edge_removed", "node_removed", "edge_removed", "node_removed"}, kinds(cs))
	for _, ch := range cs {
		require.WithinDuration(t, stop, ch.At, 10*time.Minute, "%+v", ch)
	}
}

func edgeIn(s *graph.Snapshot, id string) (graph.Edge, bool) {
	for _, e := range s.Edges {
		if e.ID == id {
			return e, true
		}
	}
	return graph.Edge{}, false
}

// memStore is a Store in memory, failing while fail is set.
type memStore struct {
	cs   []Change
	fail bool
}

func (m *memStore) AppendChanges(_ context.Context, cs []Change) error {
	if m.fail {
		return context.DeadlineExceeded
	}
	m.cs = append(m.cs, cs...)
	return nil
}

func (m *memStore) Changes(_ context.Context, from, to time.Time) ([]Change, error) {
	return Between(m.cs, from, to), nil
}

// TestStore: changes reach the Store after a tick, again after a failed
// write; Changes lists those stored and those in memory once each.
func TestStore(t *testing.T) {
	st := &memStore{fail: true}
	r, c := newRecorder(t, Options{Store: st, GoneAfter: 10 * time.Second})
	r.Record(snap(c.t, edge("web", "api", 1)))
	c.advance(10 * time.Second)
	r.Record(snap(c.t, edge("web", "api", 1), edge("api", "db", 1)))
	require.Eventually(t, func() bool { return !r.writing.Load() }, 5*time.Second, 10*time.Millisecond)
	require.Empty(t, st.cs)
	st.fail = false
	c.advance(5 * time.Second)
	r.Record(snap(c.t, edge("web", "api", 1), edge("api", "db", 1)))
	require.Eventually(t, func() bool { return !r.writing.Load() && len(st.cs) == 2 }, 5*time.Second, 10*time.Millisecond)
	cs, err := r.Changes(context.Background(), t0, c.t)
	require.NoError(t, err)
	require.Len(t, cs, 2)
	// Another collector sharing the store recorded the same edge a tick
	// later: listed once, the earliest.
	dup := cs[0]
	dup.At = dup.At.Add(5 * time.Second)
	dup.finish()
	st.cs = append(st.cs, dup)
	again, err := r.Changes(context.Background(), t0, c.t.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, cs, again)
	st.cs = st.cs[:len(st.cs)-1]
	// After a restart only the Store has them.
	r2, _ := newRecorder(t, Options{Store: st})
	cs2, err := r2.Changes(context.Background(), t0, c.t)
	require.NoError(t, err)
	require.Equal(t, cs, cs2)
}

// TestObserveCopies: the strings of spans alias the decoder's buffer,
// reused for the next request: what the recorder keeps is its own copy.
func TestObserveCopies(t *testing.T) {
	r, c := newRecorder(t, Options{})
	buf := []byte("pay1.41i-1")
	alias := func(i, j int) string { return unsafe.String(&buf[i], j-i) }
	send := func() {
		attrs := []graph.Attr{{Key: AttrVersion, Value: alias(3, 7)}}
		r.Observe([]graph.Span{{Service: alias(0, 3), Instance: alias(7, 10), Attributes: attrs, Start: c.t.UnixNano()}})
		r.Record(&graph.Snapshot{GeneratedAt: c.t})
		c.advance(5 * time.Second)
	}
	for range 30 {
		send()
	}
	copy(buf, "pay1.42i-2")
	for range 30 {
		send()
	}
	copy(buf, "xxxxxxxxxx") // the buffer reused
	cs := r.Between(t0, c.t)
	require.Len(t, cs, 1)
	require.Equal(t, "payment"[:3], cs[0].Node)
	require.Equal(t, "1.41", cs[0].From)
	require.Equal(t, "1.42", cs[0].To)
	require.Equal(t, "version 1.42 of pay (was 1.41)", cs[0].Summary)
	copy(buf, "pay1.41i-1")
	send()
	require.Len(t, r.Between(t0, c.t), 1, "1.41 is still known: its key was not overwritten")
}
