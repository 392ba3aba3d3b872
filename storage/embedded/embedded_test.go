package embedded

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/lag"
	"github.com/seed-a49a8342/cartograph/storage"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is an injected, settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// openStore opens a store in a fresh temp dir (unless o.Dir is set), with
// background retention and rollup reads off unless asked for, closed at
// cleanup.
func openStore(t testing.TB, o Options) *Store {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.RetentionInterval == 0 {
		o.RetentionInterval = -1
	}
	if o.RollupAfter == 0 {
		o.RollupAfter = -1 // tests of the raw rows read them all; rollup_test.go sets it
	}
	if o.Now == nil {
		o.Now = func() time.Time { return t0 }
	}
	s, err := Open(o)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func svc(name string) graph.NodeKey {
	return graph.NodeKey{Kind: graph.NodeService, Group: "shop", Name: name}
}

// edge is a sync edge bucket with small sketches.
func edge(start time.Time, src, dst string, requests uint64) graph.EdgeBucket {
	return graph.EdgeBucket{
		Start: start, Width: 5 * time.Second,
		Source: svc(src), Target: svc(dst), Kind: graph.EdgeSync, Protocol: graph.ProtocolHTTP,
		Requests: requests, Errors: requests / 10,
		Server: graph.Bins{Index: []int32{100, 101, 105}, Count: []uint64{1, 2, 3}},
		Client: graph.Bins{Index: []int32{graph.ZeroIndex, -3, 102}, Count: []uint64{4, 5, 6}},
	}
}

// realisticBins are the bins of a DDSketch (the graph's 1% mapping) of n
// log-normal latencies in milliseconds around median ms: ~30 bins for
// n=120, sigma 0.15.
func realisticBins(rng *rand.Rand, n int, median float64) graph.Bins {
	m, err := mapping.NewLogarithmicMapping(graph.LatencyRelativeAccuracy)
	if err != nil {
		panic(err)
	}
	sk := ddsketch.NewDDSketchFromStoreProvider(m, store.BufferedPaginatedStoreConstructor)
	for range n {
		_ = sk.Add(median * math.Exp(0.15*rng.NormFloat64()))
	}
	return graph.BinsOf(sk)
}

// realisticEdge is a sync edge bucket with server and client sketches.
func realisticEdge(rng *rand.Rand, start time.Time, i int) graph.EdgeBucket {
	median := 5 + float64(i%50)
	return graph.EdgeBucket{
		Start: start, Width: 5 * time.Second,
		Source: svc(fmt.Sprintf("service-%03d", i%100)), Target: svc(fmt.Sprintf("service-%03d", (i*7+1)%100)),
		Kind: graph.EdgeSync, Protocol: graph.ProtocolGRPC,
		Requests: 120, Errors: uint64(i % 3), Retries: uint64(i % 2),
		Server: realisticBins(rng, 120, median), Client: realisticBins(rng, 120, median*1.1),
	}
}

func sample(at time.Time, group string, lagN float64) lag.Sample {
	return lag.Sample{
		Time: at, Key: lag.Key{System: "kafka", Destination: "orders", Group: group, Partition: 3},
		Lag: lagN, Committed: 1000, End: 1000 + lagN, Consumers: 2, Produced: lag.Unknown, Consumed: lag.Unknown,
		Source: "kafka:poller-1",
	}
}

func ptr[T any](v T) *T { return &v }

func newFinding(id string, state finding.State, started time.Time, resolved *time.Time, lastSeen time.Time) finding.Finding {
	return finding.Finding{
		ID: id, Kind: finding.KindRetryStorm, State: state, Severity: finding.SeverityWarning,
		Subject: finding.Subject{Source: "checkout", Target: "payments", EdgeID: "e1"},
		Summary: "retries", Evidence: map[string]any{"retry_ratio": 0.4},
		StartedAt: started, ResolvedAt: resolved, LastSeen: lastSeen,
	}
}

func commit(t testing.TB, s *Store, edges []graph.EdgeBucket, findings []finding.Finding, samples []lag.Sample) {
	t.Helper()
	a := s.Appender()
	require.NoError(t, a.AppendEdges(edges))
	require.NoError(t, a.AppendFindings(findings))
	require.NoError(t, a.AppendLag(samples))
	require.NoError(t, a.Commit(context.Background()))
}

func allEdges(t testing.TB, s *Store) []graph.EdgeBucket {
	t.Helper()
	e, err := s.Edges(context.Background(), time.Time{}, t0.Add(1000*24*time.Hour))
	require.NoError(t, err)
	return e
}

func allLag(t testing.TB, s *Store) []lag.Sample {
	t.Helper()
	l, err := s.Lag(context.Background(), time.Time{}, t0.Add(1000*24*time.Hour))
	require.NoError(t, err)
	return l
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, Options{Dir: dir})
	ctx := context.Background()

	async := graph.EdgeBucket{
		Start: t0.Add(5 * time.Second), Width: 5 * time.Second,
		Source: graph.NodeKey{Kind: graph.NodeTopic, Group: "kafka", Name: "orders/eu%1"}, Target: svc("billing"),
		Kind: graph.EdgeAsync, Protocol: graph.ProtocolKafka, ConsumerGroup: "billing-cg",
		Requests: math.MaxUint64, Unanswered: 7,
		Delay:             graph.Bins{Index: []int32{math.MinInt32 + 1, 0, math.MaxInt32}, Count: []uint64{1, math.MaxUint64, 3}},
		UnansweredLatency: graph.Bins{Index: []int32{graph.ZeroIndex}, Count: []uint64{9}},
	}
	edges := []graph.EdgeBucket{edge(t0, "checkout", "payments", 10), async, edge(t0, "checkout", "cart", 0)}
	samples := []lag.Sample{sample(t0, "billing", 12), sample(t0.Add(time.Second), "", lag.Unknown)}
	samples[1].Partition = -1
	samples[1].Subjects = []string{"orders.>", "orders.*.eu"}
	f := newFinding("retry_storm|e1", finding.StateFiring, t0, nil, t0.Add(time.Minute))
	f.FiredAt = ptr(t0.Add(30 * time.Second))
	f.BlastRadius = &finding.BlastRadius{Upstream: []finding.Affected{{Node: "web", NodeID: "service:web", Share: 0.5, Hops: 1}}}
	f.Peak = &finding.Peak{At: t0.Add(40 * time.Second), Severity: finding.SeverityCritical, Summary: "at its worst", Evidence: map[string]any{"retry_ratio": 0.8}}
	f.Timeline = []finding.Change{{At: t0, State: finding.StatePending, Severity: finding.SeverityWarning}, {At: t0.Add(30 * time.Second), State: finding.StateFiring, Severity: finding.SeverityCritical}}
	commit(t, s, edges, []finding.Finding{f}, samples)

	// Edges come back in time order, rows of equal time in write order.
	want := []graph.EdgeBucket{edges[0], edges[2], edges[1]}
	require.Equal(t, want, allEdges(t, s))
	require.Equal(t, samples, allLag(t, s))
	got, err := s.Findings(ctx, t0, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, []finding.Finding{f}, got)

	// And after a reopen.
	require.NoError(t, s.Close())
	s2 := openStore(t, Options{Dir: dir})
	require.Equal(t, want, allEdges(t, s2))
	require.Equal(t, samples, allLag(t, s2))
	got, err = s2.Findings(ctx, t0, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, []finding.Finding{f}, got)
}

func TestSameTimeRowsDoNotOverwrite(t *testing.T) {
	s := openStore(t, Options{})
	// The same edge and time from two batches (two collectors): both kept.
	commit(t, s, []graph.EdgeBucket{edge(t0, "a", "b", 1)}, nil, []lag.Sample{sample(t0, "g", 1)})
	commit(t, s, []graph.EdgeBucket{edge(t0, "a", "b", 2)}, nil, []lag.Sample{sample(t0, "g", 2)})
	e := allEdges(t, s)
	require.Len(t, e, 2)
	require.Equal(t, []uint64{1, 2}, []uint64{e[0].Requests, e[1].Requests})
	require.Len(t, allLag(t, s), 2)
}

func TestRangeBoundaries(t *testing.T) {
	s := openStore(t, Options{})
	var edges []graph.EdgeBucket
	var samples []lag.Sample
	for i := range 4 {
		at := t0.Add(time.Duration(i) * 5 * time.Second)
		edges = append(edges, edge(at, "a", "b", uint64(i)))
		samples = append(samples, sample(at, "g", float64(i)))
	}
	commit(t, s, edges, nil, samples)
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		from, to time.Time
		want     []int
	}{
		{"from inclusive, to exclusive", t0.Add(5 * time.Second), t0.Add(15 * time.Second), []int{1, 2}},
		{"one nanosecond past a row", t0.Add(5*time.Second + 1), t0.Add(15*time.Second + 1), []int{2, 3}},
		{"empty range", t0.Add(5 * time.Second), t0.Add(5 * time.Second), nil},
		{"reversed range", t0.Add(15 * time.Second), t0, nil},
		{"zero from", time.Time{}, t0.Add(5 * time.Second), []int{0}},
		{"before all", t0.Add(-time.Hour), t0, nil},
		{"after all", t0.Add(20 * time.Second), t0.Add(time.Hour), nil},
		{"everything", t0.Add(-time.Hour), t0.Add(time.Hour), []int{0, 1, 2, 3}},
		{"other time zone", t0.Add(5 * time.Second).In(time.FixedZone("x", 3600)), t0.Add(10 * time.Second), []int{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := s.Edges(ctx, tc.from, tc.to)
			require.NoError(t, err)
			l, err := s.Lag(ctx, tc.from, tc.to)
			require.NoError(t, err)
			var gotE, gotL []int
			for _, b := range e {
				gotE = append(gotE, int(b.Requests))
			}
			for _, x := range l {
				gotL = append(gotL, int(x.Lag))
			}
			require.Equal(t, tc.want, gotE)
			require.Equal(t, tc.want, gotL)
		})
	}
}

// TestChunkedRead reads more rows than one read transaction returns.
func TestChunkedRead(t *testing.T) {
	s := openStore(t, Options{})
	const n = 3*readChunk + 17
	edges := make([]graph.EdgeBucket, n)
	for i := range edges {
		// Several rows per time, so that a chunk boundary falls between
		// rows of the same time.
		edges[i] = edge(t0.Add(time.Duration(i/3)*time.Second), "a", "b", uint64(i))
	}
	commit(t, s, edges, nil, nil)
	got := allEdges(t, s)
	require.Len(t, got, n)
	for i := range got {
		require.Equal(t, uint64(i), got[i].Requests)
	}
	got, err := s.Edges(context.Background(), t0.Add(100*time.Second), t0.Add(3000*time.Second))
	require.NoError(t, err)
	require.Len(t, got, 2900*3)
	require.Equal(t, uint64(300), got[0].Requests)
}

func TestFindingsLatestStateWins(t *testing.T) {
	s := openStore(t, Options{})
	ctx := context.Background()
	pending := newFinding("a", finding.StatePending, t0, nil, t0)
	firing := newFinding("a", finding.StateFiring, t0, nil, t0.Add(time.Minute))
	firing.FiredAt = ptr(t0.Add(time.Minute))
	commit(t, s, nil, []finding.Finding{pending}, nil)
	commit(t, s, nil, []finding.Finding{firing}, nil)
	// Within one batch, the last one appended wins.
	b1 := newFinding("b", finding.StateFiring, t0, nil, t0)
	b2 := newFinding("b", finding.StateResolved, t0, ptr(t0.Add(2*time.Minute)), t0.Add(time.Minute))
	commit(t, s, nil, []finding.Finding{b1, b2}, nil)

	got, err := s.Findings(ctx, t0, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, []finding.Finding{firing, b2}, got)
	require.Equal(t, 2.0, testutil.ToFloat64(s.m.rows.WithLabelValues(kindFinding)))
}

func TestFindingsRange(t *testing.T) {
	s := openStore(t, Options{})
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	fs := []finding.Finding{
		newFinding("open", finding.StateFiring, at(10), nil, at(50)),
		newFinding("closed", finding.StateResolved, at(10), ptr(at(20)), at(19)),
		newFinding("late", finding.StatePending, at(30), nil, at(30)),
	}
	commit(t, s, nil, fs, nil)
	for _, tc := range []struct {
		name     string
		from, to int
		want     []string
	}{
		{"covers all", 0, 60, []string{"closed", "open", "late"}},
		{"ends where they start: started before to", 0, 10, nil},
		{"one minute in", 0, 11, []string{"closed", "open"}},
		{"resolved at from counts", 20, 25, []string{"closed", "open"}},
		{"resolved before from does not", 21, 25, []string{"open"}},
		{"unresolved stays active later", 100, 200, []string{"open", "late"}},
		{"before everything", 0, 5, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Findings(context.Background(), at(tc.from), at(tc.to))
			require.NoError(t, err)
			var ids []string
			for _, f := range got {
				ids = append(ids, f.ID)
			}
			require.Equal(t, tc.want, ids)
		})
	}
}

func TestAppenderContract(t *testing.T) {
	s := openStore(t, Options{})
	ctx := context.Background()

	t.Run("nothing visible before commit", func(t *testing.T) {
		a := s.Appender()
		require.NoError(t, a.AppendEdges([]graph.EdgeBucket{edge(t0, "a", "b", 1)}))
		require.Empty(t, allEdges(t, s))
		require.NoError(t, a.Commit(ctx))
		require.Len(t, allEdges(t, s), 1)
	})
	t.Run("used appender errors", func(t *testing.T) {
		a := s.Appender()
		require.NoError(t, a.Commit(ctx)) // empty: nothing to write
		require.ErrorIs(t, a.Commit(ctx), ErrAppenderDone)
		require.ErrorIs(t, a.Rollback(), ErrAppenderDone)
		require.ErrorIs(t, a.AppendEdges(nil), ErrAppenderDone)
		require.ErrorIs(t, a.AppendFindings(nil), ErrAppenderDone)
		require.ErrorIs(t, a.AppendLag(nil), ErrAppenderDone)
	})
	t.Run("rollback discards", func(t *testing.T) {
		before := len(allEdges(t, s))
		a := s.Appender()
		require.NoError(t, a.AppendEdges([]graph.EdgeBucket{edge(t0, "a", "b", 1)}))
		require.NoError(t, a.Rollback())
		require.ErrorIs(t, a.Commit(ctx), ErrAppenderDone)
		require.Len(t, allEdges(t, s), before)
	})
	t.Run("cancelled commit writes nothing", func(t *testing.T) {
		before := len(allEdges(t, s))
		a := s.Appender()
		require.NoError(t, a.AppendEdges([]graph.EdgeBucket{edge(t0, "a", "b", 1)}))
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		require.ErrorIs(t, a.Commit(cctx), context.Canceled)
		require.Len(t, allEdges(t, s), before)
	})
	t.Run("a bad row rejects its call only", func(t *testing.T) {
		before := len(allEdges(t, s))
		a := s.Appender()
		bad := edge(t0, "a", "b", 1)
		bad.Server.Count = bad.Server.Count[:1]
		require.NoError(t, a.AppendEdges([]graph.EdgeBucket{edge(t0, "a", "b", 1)}))
		require.Error(t, a.AppendEdges([]graph.EdgeBucket{edge(t0, "a", "b", 2), bad}))
		require.Error(t, a.AppendFindings([]finding.Finding{newFinding("", finding.StateFiring, t0, nil, t0)}))
		require.Error(t, a.AppendFindings([]finding.Finding{newFinding("x", 0, t0, nil, t0)}))
		require.NoError(t, a.Commit(ctx))
		got := allEdges(t, s)
		require.Len(t, got, before+1)
		found, err := s.Findings(ctx, t0.Add(-time.Hour), t0.Add(time.Hour))
		require.NoError(t, err)
		require.Empty(t, found)
	})
}

func TestSecondOpenFailsFast(t *testing.T) {
	dir := t.TempDir()
	openStore(t, Options{Dir: dir})
	start := time.Now()
	s2, err := Open(Options{Dir: dir, OpenTimeout: 300 * time.Millisecond, RetentionInterval: -1})
	elapsed := time.Since(start)
	require.Nil(t, s2)
	require.ErrorIs(t, err, ErrLocked)
	require.Contains(t, err.Error(), dir)
	require.Contains(t, err.Error(), "--data-dir")
	require.Less(t, elapsed, 300*time.Millisecond+2*time.Second)
	t.Log(err)
}

func TestCloseAndUnavailable(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir(), RetentionInterval: time.Hour})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, s.Ping(ctx))
	a := s.Appender()
	require.NoError(t, a.AppendEdges([]graph.EdgeBucket{edge(t0, "a", "b", 1)}))
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "idempotent")

	require.ErrorIs(t, s.Ping(ctx), storage.ErrUnavailable)
	require.ErrorIs(t, a.Commit(ctx), storage.ErrUnavailable)
	_, err = s.Edges(ctx, t0, t0.Add(time.Hour))
	require.ErrorIs(t, err, storage.ErrUnavailable)
	_, err = s.Findings(ctx, t0, t0.Add(time.Hour))
	require.ErrorIs(t, err, storage.ErrUnavailable)
	_, err = s.Lag(ctx, t0, t0.Add(time.Hour))
	require.ErrorIs(t, err, storage.ErrUnavailable)
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{},
		{Dir: "x", Retention: -time.Second},
		{Dir: "x", MaxBytes: -1},
		{Dir: "x", OpenTimeout: -1},
	} {
		_, err := Open(o)
		require.Error(t, err, "%+v", o)
	}
	o := Options{Dir: "x"}.withDefaults()
	require.Equal(t, 7*24*time.Hour, o.Retention)
	require.Equal(t, int64(1<<30), o.MaxBytes)
	require.Equal(t, 5*time.Second, o.OpenTimeout)
	require.NoError(t, o.Validate())
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := openStore(t, Options{Registerer: reg})
	commit(t, s, []graph.EdgeBucket{edge(t0, "a", "b", 1), edge(t0, "a", "c", 1)},
		[]finding.Finding{newFinding("f", finding.StateFiring, t0, nil, t0)}, []lag.Sample{sample(t0, "g", 1)})
	require.Equal(t, 2.0, testutil.ToFloat64(s.m.written.WithLabelValues(kindEdge)))
	require.Equal(t, 1.0, testutil.ToFloat64(s.m.written.WithLabelValues(kindLag)))
	require.Equal(t, 1.0, testutil.ToFloat64(s.m.written.WithLabelValues(kindFinding)))
	require.Equal(t, 2.0, testutil.ToFloat64(s.m.rows.WithLabelValues(kindEdge)))
	require.Positive(t, testutil.ToFloat64(s.m.liveBytes))
	require.GreaterOrEqual(t, testutil.ToFloat64(s.m.fileBytes), testutil.ToFloat64(s.m.liveBytes))
	n, err := testutil.GatherAndCount(reg, "cartograph_embedded_commit_duration_seconds")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	lint, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, lint)

	// A second store on the same registerer is refused, not half-built.
	_, err = Open(Options{Dir: t.TempDir(), Registerer: reg, RetentionInterval: -1})
	require.Error(t, err)
}

// TestConcurrentUse runs writers, readers and retention together (for
// the race detector).
func TestConcurrentUse(t *testing.T) {
	clk := &clock{now: t0}
	s := openStore(t, Options{Now: clk.Now, RetentionInterval: time.Millisecond, Retention: time.Hour})
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 20 {
				at := t0.Add(time.Duration(i) * time.Minute)
				a := s.Appender()
				if err := errors.Join(
					a.AppendEdges([]graph.EdgeBucket{edge(at, "a", fmt.Sprint(w), uint64(i))}),
					a.AppendFindings([]finding.Finding{newFinding(fmt.Sprint(w), finding.StateFiring, at, nil, at)}),
					a.AppendLag([]lag.Sample{sample(at, "g", 1)}),
					a.Commit(ctx),
				); err != nil {
					t.Error(err)
					return
				}
			}
		})
		wg.Go(func() {
			for range 20 {
				if _, err := s.Edges(ctx, t0, t0.Add(time.Hour)); err != nil {
					t.Error(err)
				}
				if _, err := s.Findings(ctx, t0, t0.Add(time.Hour)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 20 {
			clk.Set(t0.Add(time.Duration(i) * time.Minute))
			time.Sleep(time.Millisecond)
		}
	})
	wg.Wait()
	require.NoError(t, s.Ping(ctx))
}

// TestBegins: where history begins is the oldest edge or node row, whichever
// table holds it; nothing stored says so.
func TestBegins(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, Options{})
	_, ok, err := s.Begins(ctx)
	require.NoError(t, err)
	require.False(t, ok, "an empty store has no history")

	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	src, dst := graph.NodeKey{Kind: graph.NodeService, Name: "a"}, graph.NodeKey{Kind: graph.NodeService, Name: "b"}
	app := s.Appender()
	require.NoError(t, app.AppendEdges([]graph.EdgeBucket{
		{Start: at.Add(time.Minute), Width: 5 * time.Second, Source: src, Target: dst, Kind: graph.EdgeSync, Protocol: graph.ProtocolHTTP, Requests: 1},
		{Start: at.Add(30 * time.Second), Width: 5 * time.Second, Source: src, Target: dst, Kind: graph.EdgeSync, Protocol: graph.ProtocolHTTP, Requests: 1},
	}))
	require.NoError(t, app.Commit(ctx))
	begins, ok, err := s.Begins(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, at, begins, "the oldest edge row is in the one-minute rollup too, whose row starts at its minute")

	app = s.Appender()
	require.NoError(t, app.AppendNodes([]graph.NodeSeen{{Start: at.Add(-5 * time.Second), Width: 5 * time.Second, Key: src}}))
	require.NoError(t, app.Commit(ctx))
	begins, _, err = s.Begins(ctx)
	require.NoError(t, err)
	require.Equal(t, at.Add(-time.Minute), begins, "a node row older than every edge; nodes are rolled up by the minute too")
}
