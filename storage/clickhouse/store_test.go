package clickhouse

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/lag"
	"github.com/seed-a49a8342/cartograph/storage"
)

// recent is 10:00 UTC yesterday. Test data must be recent: the tables'
// TTL (30 days by default) drops older rows as they are written.
func recent() time.Time {
	return time.Now().UTC().Truncate(24 * time.Hour).Add(-14 * time.Hour)
}

func TestMigrationFiles(t *testing.T) {
	ms, err := migrations()
	require.NoError(t, err)
	require.NotEmpty(t, ms)
	for i, m := range ms {
		require.Equal(t, i+1, m.version, "versions are 1, 2, 3, ... without gaps")
		stmts, err := m.statements(migrationVars{DB: "`x`", EdgeTTL: "e", FindingsTTL: "f", LagTTL: "l", NodeTTL: "n"})
		require.NoError(t, err)
		for _, s := range stmts {
			if strings.Contains(s, "MODIFY QUERY") {
				continue // replacing a view's query twice is replacing it once
			}
			require.Contains(t, s, "IF NOT EXISTS", "%s: every statement is idempotent", m.file)
		}
	}
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	db := freshDB(t)
	o := Options{DSN: dsnFor(chAddr, db)}.withDefaults()

	conn, gotDB, err := connect(ctx, o)
	require.NoError(t, err)
	defer conn.Close()
	require.Equal(t, db, gotDB)

	// From empty: the database is created and every migration applied.
	applied, err := migrate(ctx, conn, db, o)
	require.NoError(t, err)
	require.Equal(t, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}, applied)

	type row struct {
		Version   uint32    `ch:"version"`
		Name      string    `ch:"name"`
		AppliedAt time.Time `ch:"applied_at"`
	}
	var rows []row
	require.NoError(t, conn.Select(ctx, &rows, "SELECT version, name, applied_at FROM "+quoteIdent(db)+".schema_migrations ORDER BY version"))
	require.Len(t, rows, 13)
	for i, name := range []string{"edge_buckets", "edge_buckets_1m", "findings", "lag_samples", "nodes", "spans", "sampled_counts", "finding_history", "judge_lease", "collectors", "owners_and_attributes", "changes", "review_history"} {
		require.EqualValues(t, i+1, rows[i].Version)
		require.Equal(t, name, rows[i].Name)
		require.WithinDuration(t, time.Now(), rows[i].AppliedAt, time.Minute)
	}
	var tables []string
	trows, err := conn.Query(ctx, "SELECT name FROM system.tables WHERE database = ? ORDER BY name", db)
	require.NoError(t, err)
	for trows.Next() {
		var name string
		require.NoError(t, trows.Scan(&name))
		tables = append(tables, name)
	}
	require.NoError(t, trows.Err())
	require.Equal(t, []string{"changes", "collectors", "edge_buckets", "edge_buckets_1m", "edge_buckets_1m_mv", "findings", "judge_lease", "lag_samples", "nodes", "review_history", "schema_migrations", "spans"}, tables)

	// Again: nothing applied, nothing recorded.
	applied, err = migrate(ctx, conn, db, o)
	require.NoError(t, err)
	require.Empty(t, applied)
	require.NoError(t, Migrate(ctx, Options{DSN: dsnFor(chAddr, db)}))
	var n uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM "+quoteIdent(db)+".schema_migrations").Scan(&n))
	require.EqualValues(t, 13, n)

	// TTL: the retention is in the tables, and follows Options.
	engine := func(table string) string {
		var e string
		require.NoError(t, conn.QueryRow(ctx, "SELECT engine_full FROM system.tables WHERE database = ? AND name = ?", db, table).Scan(&e))
		return e
	}
	require.Contains(t, engine("edge_buckets"), "TTL toDateTime(bucket_start) + toIntervalSecond(2592000)")
	require.Contains(t, engine("edge_buckets_1m"), "TTL toDateTime(minute) + toIntervalSecond(2592000)")
	require.Contains(t, engine("lag_samples"), "TTL toDateTime(time) + toIntervalSecond(2592000)")
	require.Contains(t, engine("nodes"), "TTL toDateTime(time) + toIntervalSecond(2592000)")
	require.Contains(t, engine("findings"), "TTL toDateTime(last_seen) + toIntervalSecond(7776000)")
	require.Contains(t, engine("changes"), "TTL toDateTime(at) + toIntervalSecond(2592000)")
	require.NoError(t, Migrate(ctx, Options{DSN: dsnFor(chAddr, db), Retention: 7 * 24 * time.Hour}))
	require.Contains(t, engine("edge_buckets"), "TTL toDateTime(bucket_start) + toIntervalSecond(604800)")
	require.Contains(t, engine("edge_buckets_1m"), "TTL toDateTime(minute) + toIntervalSecond(604800)")
	require.Contains(t, engine("lag_samples"), "TTL toDateTime(time) + toIntervalSecond(604800)")
	require.Contains(t, engine("nodes"), "TTL toDateTime(time) + toIntervalSecond(604800)")
	require.Contains(t, engine("findings"), "TTL toDateTime(last_seen) + toIntervalSecond(7776000)")
	require.Contains(t, engine("changes"), "TTL toDateTime(at) + toIntervalSecond(604800)")
}

func TestValidate(t *testing.T) {
	for name, o := range map[string]Options{
		"no dsn":        {},
		"bad database":  {DSN: "clickhouse://127.0.0.1:1/bad-name"},
		"raw spans ttl": {DSN: "clickhouse://127.0.0.1:1/x", RawSpansTTL: time.Minute},
		"retention":     {DSN: "clickhouse://127.0.0.1:1/x", Retention: time.Minute},
		"bad dsn":       {DSN: "clickhouse://127.0.0.1:1/x?dial_timeout=banana"},
		"negative dial": {DSN: "clickhouse://127.0.0.1:1/x", DialTimeout: -time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			require.Error(t, o.Validate())
			_, err := Open(context.Background(), o)
			require.Error(t, err)
			require.NotErrorIs(t, err, storage.ErrUnavailable)
		})
	}
	require.NoError(t, Options{DSN: "clickhouse://127.0.0.1:1"}.Validate())
}

// randBins returns n bins with ascending random indexes (sometimes the zero
// bin first).
func randBins(r *rand.Rand, n int) graph.Bins {
	var b graph.Bins
	if n == 0 {
		return b
	}
	if r.IntN(4) == 0 {
		b.Index, b.Count = append(b.Index, graph.ZeroIndex), append(b.Count, uint64(1+r.IntN(5)))
	}
	idx := int32(r.IntN(200))
	for range n {
		idx += int32(1 + r.IntN(8))
		b.Index, b.Count = append(b.Index, idx), append(b.Count, uint64(1+r.IntN(100)))
	}
	return b
}

// mergeBins adds bins the way graph does, in Go.
func mergeBins(bs ...graph.Bins) graph.Bins {
	m := map[int32]uint64{}
	for _, b := range bs {
		for i, k := range b.Index {
			m[k] += b.Count[i]
		}
	}
	var out graph.Bins
	for k := range m {
		out.Index = append(out.Index, k)
	}
	slices.Sort(out.Index)
	for _, k := range out.Index {
		out.Count = append(out.Count, m[k])
	}
	return out
}

var testEdges = []struct {
	src, dst graph.NodeKey
	kind     graph.EdgeKind
	proto    graph.Protocol
	group    string
}{
	{graph.NodeKey{Kind: graph.NodeClient, Name: "client"}, graph.NodeKey{Kind: graph.NodeService, Group: "shop", Name: "frontend"}, graph.EdgeSync, graph.ProtocolHTTP, ""},
	{graph.NodeKey{Kind: graph.NodeService, Group: "shop", Name: "frontend"}, graph.NodeKey{Kind: graph.NodeService, Group: "shop", Name: "cart"}, graph.EdgeSync, graph.ProtocolGRPC, ""},
	{graph.NodeKey{Kind: graph.NodeService, Group: "shop", Name: "cart"}, graph.NodeKey{Kind: graph.NodeDatabase, Group: "redis", Name: "redis:6379"}, graph.EdgeSync, graph.ProtocolDB, ""},
	{graph.NodeKey{Kind: graph.NodeService, Group: "shop", Name: "checkout"}, graph.NodeKey{Kind: graph.NodeTopic, Group: "kafka", Name: "orders"}, graph.EdgeAsync, graph.ProtocolKafka, ""},
	{graph.NodeKey{Kind: graph.NodeTopic, Group: "kafka", Name: "orders"}, graph.NodeKey{Kind: graph.NodeService, Group: "shop", Name: "shipping"}, graph.EdgeAsync, graph.ProtocolKafka, "shipping"},
	{graph.NodeKey{Kind: graph.NodeTopic, Group: "kafka", Name: "orders"}, graph.NodeKey{Kind: graph.NodeService, Group: "shop", Name: "email"}, graph.EdgeAsync, graph.ProtocolKafka, "email"},
	{graph.NodeKey{Kind: graph.NodeService, Name: "legacy"}, graph.NodeKey{Kind: graph.NodeExternal, Name: "api.example.com"}, graph.EdgeSync, graph.ProtocolUnknown, ""},
}

// randBuckets returns buckets of every test edge at each start.
func randBuckets(r *rand.Rand, starts []time.Time, width time.Duration) []graph.EdgeBucket {
	var out []graph.EdgeBucket
	for _, st := range starts {
		for _, e := range testEdges {
			b := graph.EdgeBucket{
				Start: st, Width: width, Source: e.src, Target: e.dst, Kind: e.kind, Protocol: e.proto, ConsumerGroup: e.group,
				Requests: uint64(1 + r.IntN(1000)), Errors: uint64(r.IntN(10)), Retries: uint64(r.IntN(5)),
			}
			if e.kind == graph.EdgeAsync && e.group != "" {
				b.Server, b.Delay = randBins(r, 1+r.IntN(30)), randBins(r, 1+r.IntN(30))
			} else {
				b.Server, b.Client = randBins(r, 1+r.IntN(30)), randBins(r, 1+r.IntN(30))
				if r.IntN(3) == 0 {
					b.Unanswered = uint64(1 + r.IntN(3))
					b.UnansweredLatency = randBins(r, 1+r.IntN(3))
				}
			}
			switch r.IntN(3) {
			case 0: // sampled 1 in 4
				b.Seen = b.Requests/4 + 1
				b.Sampled = b.Seen
			case 1:
				b.Seen = b.Requests
			} // else: a row written before calls seen were kept
			out = append(out, b)
		}
	}
	return out
}

func commit(t testing.TB, s *Store, edges []graph.EdgeBucket, findings []finding.Finding, lags []lag.Sample) {
	t.Helper()
	app := s.Appender()
	require.NoError(t, app.AppendEdges(edges))
	require.NoError(t, app.AppendFindings(findings))
	require.NoError(t, app.AppendLag(lags))
	require.NoError(t, app.Commit(context.Background()))
}

type edgeKey struct {
	src, dst graph.NodeKey
	proto    graph.Protocol
	group    string
}

func keyOf(b graph.EdgeBucket) edgeKey {
	return edgeKey{b.Source, b.Target, b.Protocol, b.ConsumerGroup}
}

// snapshotEdges returns a snapshot's edges by id, as JSON (without the
// sketches themselves: their quantiles are in the JSON).
func snapshotEdges(t *testing.T, s *graph.Snapshot) map[string]string {
	out := map[string]string{}
	for _, e := range s.Edges {
		b, err := json.Marshal(e)
		require.NoError(t, err)
		out[e.ID] = string(b)
	}
	return out
}

func TestEdgesMergeCollectors(t *testing.T) {
	ctx := context.Background()
	db := freshDB(t)
	a, b := openStore(t, db, "collector-a"), openStore(t, db, "collector-b")

	r := rand.New(rand.NewPCG(1, 2))
	width := 5 * time.Second
	from := recent().Add(-10*time.Hour - time.Minute) // spans midnight: two partitions
	var starts []time.Time
	for i := range 48 {
		starts = append(starts, from.Add(time.Duration(i)*width))
	}
	to := starts[len(starts)-1].Add(width)
	rawA := randBuckets(r, starts, width)
	rawB := randBuckets(r, starts[:30], width) // b saw only the first part
	commit(t, a, rawA, nil, nil)
	commit(t, b, rawB[:len(rawB)/2], nil, nil) // two batches from b
	commit(t, b, rawB[len(rawB)/2:], nil, nil)
	raw := append(slices.Clone(rawA), rawB...)

	got, err := a.Edges(ctx, from, to)
	require.NoError(t, err)
	require.Len(t, got, len(testEdges), "one bucket per edge")

	want := map[edgeKey]*graph.EdgeBucket{}
	bins := map[edgeKey][4][]graph.Bins{}
	for _, rb := range raw {
		k := keyOf(rb)
		w := want[k]
		if w == nil {
			w = &graph.EdgeBucket{Start: from, Width: to.Sub(from), Source: rb.Source, Target: rb.Target, Kind: rb.Kind, Protocol: rb.Protocol, ConsumerGroup: rb.ConsumerGroup}
			want[k] = w
		}
		w.Requests += rb.Requests
		w.Errors += rb.Errors
		w.Retries += rb.Retries
		w.Unanswered += rb.Unanswered
		w.Seen += rb.SeenCalls()
		w.Sampled += rb.Sampled
		bs := bins[k]
		for i, x := range []graph.Bins{rb.Server, rb.Client, rb.Delay, rb.UnansweredLatency} {
			bs[i] = append(bs[i], x)
		}
		bins[k] = bs
	}
	for k, bs := range bins {
		w := want[k]
		w.Server, w.Client, w.Delay, w.UnansweredLatency = mergeBins(bs[0]...), mergeBins(bs[1]...), mergeBins(bs[2]...), mergeBins(bs[3]...)
	}
	for _, g := range got {
		w := want[keyOf(g)]
		require.NotNil(t, w, "unexpected edge %v", keyOf(g))
		require.True(t, g.Start.Equal(from))
		g.Start = w.Start
		require.Equal(t, *w, g, "counts summed, bins merged exactly")
	}

	// The merged buckets make the same snapshot as the raw ones.
	require.Equal(t, snapshotEdges(t, graph.SnapshotOf(to, to.Sub(from), raw)), snapshotEdges(t, graph.SnapshotOf(to, to.Sub(from), got)))

	// Sub-ranges: only the buckets starting in them, whether read from
	// edge_buckets alone (no whole minute), from the rollup alone, or from
	// both (partial minutes on either side of whole ones).
	for _, rg := range [][2]time.Time{
		{starts[6], starts[18]},
		{starts[12], starts[36]},
		{starts[3], starts[40]},
		{starts[3].Add(time.Microsecond), starts[40].Add(-time.Millisecond)},
		{from.Add(-time.Hour), from.Add(time.Hour)},
	} {
		got, err = b.Edges(ctx, rg[0], rg[1])
		require.NoError(t, err)
		w := rg[1].Sub(rg[0])
		require.Equal(t,
			snapshotEdges(t, graph.SnapshotOf(rg[1], w, raw)),
			snapshotEdges(t, graph.SnapshotOf(rg[1], w, got)), "%v", rg)
	}

	// Buckets: as stored.
	per, err := a.Buckets(ctx, from, to)
	require.NoError(t, err)
	per = stripCollector(t, per)
	require.ElementsMatch(t, raw, per)
	require.Equal(t, snapshotEdges(t, graph.SnapshotOf(to, to.Sub(from), raw)), snapshotEdges(t, graph.SnapshotOf(to, to.Sub(from), per)))
	per, err = a.Buckets(ctx, starts[3], starts[5])
	require.NoError(t, err)
	per = stripCollector(t, per)
	require.Len(t, per, 4*len(testEdges))
}

func TestEdgesRange(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, freshDB(t), "c")
	e := testEdges[1]
	at := recent()
	mk := func(start time.Time, req uint64) graph.EdgeBucket {
		return graph.EdgeBucket{Start: start, Width: time.Second, Source: e.src, Target: e.dst, Kind: e.kind, Protocol: e.proto, Requests: req}
	}
	commit(t, s, []graph.EdgeBucket{
		mk(at.Add(-time.Millisecond), 1),
		mk(at, 10),
		mk(at.Add(time.Minute-time.Millisecond), 100),
		mk(at.Add(time.Minute), 1000),
	}, nil, nil)
	requests := func(from, to time.Time) uint64 {
		got, err := s.Edges(ctx, from, to)
		require.NoError(t, err)
		if len(got) == 0 {
			return 0
		}
		require.Len(t, got, 1)
		require.True(t, got[0].Start.Equal(from))
		require.Equal(t, to.Sub(from), got[0].Width)
		require.True(t, got[0].Server.Empty())
		return got[0].Requests
	}
	require.EqualValues(t, 110, requests(at, at.Add(time.Minute)), "[from, to)")
	require.EqualValues(t, 100, requests(at.Add(time.Microsecond), at.Add(time.Minute)), "sub-millisecond from excludes the bucket at from")
	require.EqualValues(t, 1110, requests(at, at.Add(time.Minute+time.Microsecond)), "sub-millisecond to includes the bucket before it")
	require.EqualValues(t, 1111, requests(at.Add(-time.Hour), at.Add(time.Hour)))
	require.EqualValues(t, 1111, requests(time.Time{}, time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)), "all of time")
	require.EqualValues(t, 0, requests(at.Add(time.Hour), at.Add(2*time.Hour)))
	got, err := s.Edges(ctx, at, at)
	require.NoError(t, err)
	require.Empty(t, got, "empty range")
}

func newFinding(id string, state finding.State, started, lastSeen time.Time) finding.Finding {
	return finding.Finding{
		ID: id, Kind: finding.KindRetryStorm, State: state, Severity: finding.SeverityWarning,
		Subject:   finding.Subject{Source: "frontend", Target: "cart", EdgeID: "service:shop/frontend->service:shop/cart"},
		Summary:   "frontend retries 35% of its calls to cart",
		Evidence:  map[string]any{"retry_ratio": 0.35, "amplification": 1.8, "retries": 120.0},
		StartedAt: started, LastSeen: lastSeen,
	}
}

func TestFindingsLatestWins(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, freshDB(t), "c")
	t0 := recent()

	f := newFinding("f1", finding.StatePending, t0, t0)
	f.Owner = "team-checkout"
	commit(t, s, nil, []finding.Finding{f}, nil)
	f.Owner = "team-payments" // the subject changed hands: the latest owner wins
	f.State, f.Severity, f.FiredAt, f.LastSeen = finding.StateFiring, finding.SeverityCritical, ptr(t0.Add(30*time.Second)), t0.Add(time.Minute)
	f.BlastRadius = &finding.BlastRadius{Upstream: []finding.Affected{{Node: "frontend", NodeID: "service:shop/frontend", Share: 0.5, Hops: 1}}, EntryPoints: []finding.Affected{{Node: "frontend", NodeID: "service:shop/frontend", Share: 0.5, Hops: 1}}}
	f.Peak = &finding.Peak{At: t0.Add(45 * time.Second), Severity: finding.SeverityCritical, Summary: "frontend retries 80% of its calls to cart", Evidence: map[string]any{"retry_ratio": 0.8}}
	f.Timeline = []finding.Change{{At: t0, State: finding.StatePending, Severity: finding.SeverityWarning}, {At: t0.Add(30 * time.Second), State: finding.StateFiring, Severity: finding.SeverityCritical}}
	commit(t, s, nil, []finding.Finding{f}, nil)
	got, err := s.Findings(ctx, t0, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, f, got[0], "the firing state, all fields, its peak, timeline and owner included")

	// After a restart (another Store on the database) the owner is read back.
	again, err := openStore(t, s.db, "c").Findings(ctx, t0, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Len(t, again, 1)
	require.Equal(t, "team-payments", again[0].Owner)

	// Resolved, with the same last_seen: still the latest write wins.
	f.State, f.ResolvedAt = finding.StateResolved, ptr(t0.Add(5*time.Minute))
	other := newFinding("f2", finding.StateFiring, t0.Add(2*time.Hour), t0.Add(2*time.Hour))
	other.Kind, other.Subject = finding.KindBottleneck, finding.Subject{Node: "cart", NodeID: "service:shop/cart"}
	other.FiredAt = ptr(t0.Add(2 * time.Hour))
	commit(t, s, nil, []finding.Finding{f, other}, nil)

	for _, tc := range []struct {
		name     string
		from, to time.Time
		want     []string
	}{
		{"all", t0.Add(-time.Hour), t0.Add(3 * time.Hour), []string{"f1", "f2"}},
		{"resolved at from is active", t0.Add(5 * time.Minute), t0.Add(3 * time.Hour), []string{"f1", "f2"}},
		{"resolved before from", t0.Add(5*time.Minute + time.Millisecond), t0.Add(3 * time.Hour), []string{"f2"}},
		{"started at to is not", t0, t0.Add(2 * time.Hour), []string{"f1"}},
		{"started just before to", t0, t0.Add(2*time.Hour + time.Millisecond), []string{"f1", "f2"}},
		{"before anything", t0.Add(-2 * time.Hour), t0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Findings(ctx, tc.from, tc.to)
			require.NoError(t, err)
			var ids []string
			for _, g := range got {
				ids = append(ids, g.ID)
				if g.ID == "f1" {
					require.Equal(t, f, g)
				} else {
					require.Equal(t, other, g)
				}
			}
			require.Equal(t, tc.want, ids)
		})
	}

	// Non-finite evidence is stored as null rather than failing the batch.
	bad := newFinding("f3", finding.StateFiring, t0, t0)
	bad.Evidence = map[string]any{"ratio": math.NaN(), "n": 3.0}
	commit(t, s, nil, []finding.Finding{bad}, nil)
	got, err = s.Findings(ctx, t0, t0.Add(time.Millisecond))
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, map[string]any{"ratio": nil, "n": 3.0}, got[1].Evidence)
}

func ptr[T any](v T) *T { return &v }

func TestWholeMinutes(t *testing.T) {
	m := int64(60_000)
	for _, tc := range []struct{ f, t, a, b int64 }{
		{0, 3 * m, 0, 3 * m},
		{1, 3*m + 5, m, 3 * m},
		{1, m + 5, m + 5, m + 5}, // no whole minute
		{5, 10, 10, 10},
		{-m - 1, m, 0, m},
		{-2*m + 1, -1, -1, -1},
		{5, 1 << 62, m, maxRollupMilli},
	} {
		a, b := wholeMinutes(tc.f, tc.t)
		require.Equal(t, [2]int64{tc.a, tc.b}, [2]int64{a, b}, "%d..%d", tc.f, tc.t)
	}
}

func TestLag(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, freshDB(t), "c")
	t0 := recent()
	mk := func(at time.Time, partition int32, l float64) lag.Sample {
		return lag.Sample{Time: at, Key: lag.Key{System: "kafka", Destination: "orders", Group: "shipping", Partition: partition},
			Lag: l, Committed: 100, End: 100 + l, Consumers: 2, Produced: lag.Unknown, Consumed: lag.Unknown, Source: "kafka:poller-1"}
	}
	q := lag.Sample{Time: t0.Add(time.Second), Key: lag.Key{System: "nats", Destination: "ORDERS", Group: "worker", Partition: -1},
		Lag: 7, Committed: lag.Unknown, End: lag.Unknown, Consumers: 1, Produced: 10, Consumed: 3, Source: "nats:poller", Subjects: []string{"orders.>", "returns.*"}}
	samples := []lag.Sample{mk(t0.Add(-time.Millisecond), 0, 1), mk(t0, 0, 5), mk(t0, 1, 6), q, mk(t0.Add(time.Minute), 0, 9)}
	commit(t, s, nil, nil, samples)
	commit(t, s, nil, nil, samples[1:3]) // a retried batch: no duplicates
	commit(t, s, nil, nil, []lag.Sample{{Time: t0}})

	got, err := s.Lag(ctx, t0, t0.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, []lag.Sample{samples[1], samples[2], q}, got)
	got, err = s.Lag(ctx, t0.Add(-time.Hour), t0.Add(time.Hour))
	require.NoError(t, err)
	require.Len(t, got, 5)
}

func TestAppender(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	db := freshDB(t)
	s, err := Open(ctx, Options{DSN: dsnFor(chAddr, db), Collector: "c", Registerer: reg})
	require.NoError(t, err)
	defer s.Close()
	// A second Store on the same registry shares the series.
	s2, err := Open(ctx, Options{DSN: dsnFor(chAddr, db), Collector: "c2", Registerer: reg})
	require.NoError(t, err)
	defer s2.Close()

	t0 := recent()
	e := testEdges[0]
	good := graph.EdgeBucket{Start: t0, Width: time.Second, Source: e.src, Target: e.dst, Kind: e.kind, Protocol: e.proto, Requests: 3}
	invalid := []graph.EdgeBucket{
		{Start: t0, Width: time.Second, Source: graph.NodeKey{Name: "no kind"}, Target: e.dst, Kind: e.kind, Requests: 5},
		{Width: time.Second, Source: e.src, Target: e.dst, Kind: e.kind, Requests: 5},
		{Start: t0, Source: e.src, Target: e.dst, Kind: e.kind, Requests: 5},
		{Start: t0, Width: time.Second, Source: e.src, Target: e.dst, Kind: e.kind, Requests: 5, Server: graph.Bins{Index: []int32{1}}},
	}

	// Rollback drops everything.
	app := s.Appender()
	require.NoError(t, app.AppendEdges([]graph.EdgeBucket{good}))
	require.NoError(t, app.Rollback())
	require.ErrorIs(t, app.Commit(ctx), errAppenderDone)
	require.ErrorIs(t, app.AppendEdges(nil), errAppenderDone)
	got, err := s.Edges(ctx, t0, t0.Add(time.Second))
	require.NoError(t, err)
	require.Empty(t, got)

	// Invalid rows are skipped and counted; the rest is written.
	app = s.Appender()
	require.NoError(t, app.AppendEdges(append(invalid, good)))
	require.NoError(t, app.AppendFindings([]finding.Finding{{ID: "x"}}))
	require.NoError(t, app.Commit(ctx))
	require.ErrorIs(t, app.Rollback(), errAppenderDone)
	got, err = s.Edges(ctx, t0, t0.Add(time.Second))
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.EqualValues(t, 3, got[0].Requests)

	// An empty Commit sends nothing.
	require.NoError(t, s2.Appender().Commit(ctx))

	require.EqualValues(t, 1, testutil.ToFloat64(s.m.inserts.WithLabelValues(tableEdges, "success")))
	require.EqualValues(t, 0, testutil.ToFloat64(s.m.inserts.WithLabelValues(tableFindings, "success")))
	require.EqualValues(t, 1, testutil.ToFloat64(s.m.rows.WithLabelValues(tableEdges, "written")))
	require.EqualValues(t, 4, testutil.ToFloat64(s.m.rows.WithLabelValues(tableEdges, "invalid")))
	require.EqualValues(t, 1, testutil.ToFloat64(s.m.rows.WithLabelValues(tableFindings, "invalid")))
	require.NoError(t, s.Ping(ctx))
	n, err := testutil.GatherAndCount(reg, "cartograph_clickhouse_insert_duration_seconds", "cartograph_clickhouse_query_duration_seconds")
	require.NoError(t, err)
	require.Equal(t, 3, n, "insert histogram for edge_buckets, query histogram for edges and ping")
}

func TestLargeBatchFlushes(t *testing.T) {
	defer func(n int) { flushRows = n }(flushRows)
	flushRows = 3
	s := openStore(t, freshDB(t), "c")
	r := rand.New(rand.NewPCG(3, 3))
	t0 := recent()
	raw := randBuckets(r, []time.Time{t0, t0.Add(5 * time.Second)}, 5*time.Second) // 14 rows: blocks of 3
	commit(t, s, raw, nil, nil)
	got, err := s.Buckets(context.Background(), t0, t0.Add(time.Minute))
	require.NoError(t, err)
	got = stripCollector(t, got)
	require.ElementsMatch(t, raw, got, "every row of every block (the server may squash them into one part)")
}

func TestUnavailable(t *testing.T) {
	ctx := context.Background()

	// Nothing listens: Open fails fast and says so.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	ln.Close()
	start := time.Now()
	_, err = Open(ctx, Options{DSN: dsnFor(closed, "x"), DialTimeout: time.Second})
	require.ErrorIs(t, err, storage.ErrUnavailable)
	require.Contains(t, err.Error(), closed)
	require.Less(t, time.Since(start), 5*time.Second)
	t.Logf("open on a closed port: %v", err)

	// A server that goes away and comes back (through a proxy, so that
	// the shared server stays up for other packages' tests).
	p := newProxy(t, chAddr)
	db := freshDB(t)
	s, err := Open(ctx, Options{DSN: dsnFor(p.addr, db), Collector: "c", DialTimeout: time.Second, QueryTimeout: 5 * time.Second})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Ping(ctx))
	t0 := recent()
	e := testEdges[0]
	bucket := graph.EdgeBucket{Start: t0, Width: time.Second, Source: e.src, Target: e.dst, Kind: e.kind, Protocol: e.proto, Requests: 3}
	commit(t, s, []graph.EdgeBucket{bucket}, nil, nil)

	p.stop()
	err = s.Ping(ctx)
	require.ErrorIs(t, err, storage.ErrUnavailable)
	app := s.Appender()
	require.NoError(t, app.AppendEdges([]graph.EdgeBucket{bucket}))
	require.NoError(t, app.AppendFindings([]finding.Finding{newFinding("f", finding.StateFiring, t0, t0)}))
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = app.Commit(cctx)
	require.ErrorIs(t, err, storage.ErrUnavailable, "%v", err)
	t.Logf("commit while down: %v", err)
	_, err = s.Edges(ctx, t0, t0.Add(time.Second))
	require.ErrorIs(t, err, storage.ErrUnavailable, "%v", err)
	require.False(t, errors.Is(classify(errors.New("syntax error")), storage.ErrUnavailable))

	p.start()
	require.Eventually(t, func() bool { return s.Ping(ctx) == nil }, 10*time.Second, 50*time.Millisecond)
	commit(t, s, []graph.EdgeBucket{bucket}, nil, nil)
	got, err := s.Edges(ctx, t0, t0.Add(time.Second))
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.EqualValues(t, 6, got[0].Requests, "the failed batch wrote nothing")
}

func TestNodes(t *testing.T) {
	ctx := context.Background()
	db := freshDB(t)
	s1, s2 := openStore(t, db, "c1"), openStore(t, db, "c2")
	t0 := recent()
	w := 5 * time.Second
	batch := graph.NodeKey{Kind: graph.NodeService, Group: "jobs", Name: "batch"}
	orders := graph.NodeKey{Kind: graph.NodeTopic, Group: "kafka", Name: "orders"}
	a := graph.NodeKey{Kind: graph.NodeService, Name: "a"}
	n := func(at time.Time, k graph.NodeKey) graph.NodeSeen { return graph.NodeSeen{Start: at, Width: w, Key: k} }
	app := s1.Appender()
	require.NoError(t, app.AppendNodes([]graph.NodeSeen{
		n(t0, batch), n(t0.Add(w), batch), n(t0, orders),
		n(t0.Add(-time.Millisecond), a), n(t0.Add(time.Minute), a), // outside [t0, t0+1m)
		{Start: t0, Width: w, Key: graph.NodeKey{Name: "no kind"}}, // invalid: skipped
		{Width: w, Key: a}, // no time: skipped
	}))
	require.NoError(t, app.Commit(ctx))
	require.EqualValues(t, 2, testutil.ToFloat64(s1.m.rows.WithLabelValues(tableNodes, "invalid")))
	app = s2.Appender()
	require.NoError(t, app.AppendNodes([]graph.NodeSeen{n(t0.Add(w), batch), n(t0.Add(2*w), a)}))
	require.NoError(t, app.Commit(ctx))

	from, to := t0, t0.Add(time.Minute)
	got, err := s2.Nodes(ctx, from, to)
	require.NoError(t, err)
	want := []graph.NodeSeen{
		{Start: from, Width: time.Minute, Key: a},
		{Start: from, Width: time.Minute, Key: batch},
		{Start: from, Width: time.Minute, Key: orders},
	}
	require.Equal(t, want, got, "one row per node over the range, every collector")
	got, err = s1.Nodes(ctx, to, from)
	require.NoError(t, err)
	require.Empty(t, got)

	// With an isolated node, history shows it, kind and namespace kept.
	snap := graph.SnapshotOfNodes(to, time.Minute, nil, got, nil)
	require.Empty(t, snap.Nodes)
	got, err = s1.Nodes(ctx, from, to)
	require.NoError(t, err)
	snap = graph.SnapshotOfNodes(to, time.Minute, nil, got, nil)
	require.Len(t, snap.Nodes, 3)
	nd, ok := snap.Node(batch.ID())
	require.True(t, ok)
	require.Equal(t, "jobs", nd.Namespace)
	require.Equal(t, graph.NodeService, nd.Kind)
}

type edgeSource []graph.EdgeBucket

func (e edgeSource) ClosedBuckets(after time.Time) ([]graph.EdgeBucket, time.Time) {
	if !after.IsZero() {
		return nil, after
	}
	return e, e[len(e)-1].Start
}

// withNodes is an edgeSource that also gives nodes (as graph.Graph does).
type withNodes struct {
	edgeSource
	nodes []graph.NodeSeen
}

func (w withNodes) ClosedNodes(after time.Time) []graph.NodeSeen {
	if !after.IsZero() {
		return nil
	}
	return w.nodes
}

type findingSource []finding.Finding

func (f findingSource) Findings(finding.State) []finding.Finding { return f }

// The Store behind the storage package's Persister and History.
func TestWithPersisterAndHistory(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, freshDB(t), "c")
	r := rand.New(rand.NewPCG(4, 4))
	t0 := recent()
	var starts []time.Time
	for i := range 30 {
		starts = append(starts, t0.Add(time.Duration(i)*5*time.Second))
	}
	raw := randBuckets(r, starts, 5*time.Second)
	f := newFinding("f1", finding.StateFiring, t0, t0.Add(time.Minute))
	lonely := graph.NodeKey{Kind: graph.NodeService, Group: "jobs", Name: "batch"}
	src := withNodes{edgeSource(raw), []graph.NodeSeen{{Start: t0.Add(time.Minute), Width: 5 * time.Second, Key: lonely}}}
	p, err := storage.NewPersister(storage.PersisterOptions{Storage: s, Edges: src, Findings: findingSource{f}})
	require.NoError(t, err)
	lags := p.Tee(lagSink{})
	lags.Add([]lag.Sample{{Time: t0, Key: lag.Key{System: "kafka", Destination: "orders", Group: "g"}, Lag: 3, Source: "otlp"}})
	require.NoError(t, p.Flush(ctx))
	require.NoError(t, p.Err())

	at, window := t0.Add(2*time.Minute), 90*time.Second
	snap, err := storage.History{Storage: s}.GraphAt(ctx, at, window)
	require.NoError(t, err)
	require.Equal(t, snapshotEdges(t, graph.SnapshotOf(at, window, raw)), snapshotEdges(t, snap))
	nd, ok := snap.Node(lonely.ID())
	require.True(t, ok, "a node without edges is in history")
	require.Equal(t, "jobs", nd.Namespace)
	fs, err := s.Findings(ctx, t0, at)
	require.NoError(t, err)
	require.Len(t, fs, 1)
	ls, err := s.Lag(ctx, t0, at)
	require.NoError(t, err)
	require.Len(t, ls, 1)
}

type lagSink struct{}

func (lagSink) Add([]lag.Sample) int { return 0 }

// stripCollector checks every raw bucket names its writer, then clears the
// name so buckets compare with what was written.
func stripCollector(t *testing.T, bs []graph.EdgeBucket) []graph.EdgeBucket {
	t.Helper()
	for i := range bs {
		require.NotEmpty(t, bs[i].Collector, "raw buckets name their collector")
		bs[i].Collector = ""
	}
	return bs
}

// TestBegins: where history begins is the oldest edge or node row, whichever
// table holds it; nothing stored says so.
func TestBegins(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, freshDB(t), "c")
	_, ok, err := s.Begins(ctx)
	require.NoError(t, err)
	require.False(t, ok, "an empty store has no history")

	e := testEdges[1]
	at := recent()
	commit(t, s, []graph.EdgeBucket{
		{Start: at.Add(time.Minute), Width: time.Second, Source: e.src, Target: e.dst, Kind: e.kind, Protocol: e.proto, Requests: 1},
		{Start: at.Add(30 * time.Second), Width: time.Second, Source: e.src, Target: e.dst, Kind: e.kind, Protocol: e.proto, Requests: 1},
	}, nil, nil)
	begins, ok, err := s.Begins(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, at, begins, "the oldest edge row is in the one-minute rollup too, whose row starts at its minute")

	app := s.Appender()
	require.NoError(t, app.AppendNodes([]graph.NodeSeen{{Start: at.Add(-5 * time.Second), Width: 5 * time.Second, Key: e.src}}))
	require.NoError(t, app.Commit(ctx))
	begins, _, err = s.Begins(ctx)
	require.NoError(t, err)
	require.Equal(t, at.Add(-5*time.Second), begins, "a node row older than every edge")
}
