package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/storage"
	"github.com/seed-a49a8342/cartograph/storage/internal/traffic"
)

// persistRun commits a run's buckets and nodes as its collector's
// persister would, a minute of buckets per batch.
func persistRun(t testing.TB, s *Store, run *traffic.Run) {
	t.Helper()
	for from := run.Start; from.Before(run.End); from = from.Add(time.Minute) {
		in := func(at time.Time) bool { return !at.Before(from) && at.Before(from.Add(time.Minute)) }
		var es []graph.EdgeBucket
		for _, b := range run.Buckets {
			if in(b.Start) {
				es = append(es, b)
			}
		}
		var ns []graph.NodeSeen
		for _, n := range run.Nodes {
			if in(n.Start) {
				ns = append(ns, n)
			}
		}
		a := s.Appender()
		require.NoError(t, a.AppendEdges(es))
		require.NoError(t, a.AppendNodes(ns))
		require.NoError(t, a.Commit(context.Background()))
	}
}

func snapEdge(t testing.TB, s *graph.Snapshot, id string) graph.Edge {
	t.Helper()
	for _, e := range s.Edges {
		if e.ID == id {
			return e
		}
	}
	require.Failf(t, "edge missing", "%s", id)
	return graph.Edge{}
}

// requireEstimate checks edge e's counts and whether they are an estimate
// of a share ratio of the calls (ratio 0: not an estimate).
func requireEstimate(t testing.TB, e graph.Edge, requests uint64, ratio float64) {
	t.Helper()
	require.Equal(t, requests, e.Requests, e.ID)
	if ratio == 0 {
		require.False(t, e.Estimated, e.ID)
		require.Nil(t, e.SampleRatio, e.ID)
		return
	}
	require.True(t, e.Estimated, e.ID)
	require.NotNil(t, e.SampleRatio, e.ID)
	require.InDelta(t, ratio, *e.SampleRatio, 5e-5, e.ID) // ratios are rounded to 4 places
}

// requireSameEstimates checks that got shows the sampled and the unsampled
// edge as want does.
func requireSameEstimates(t testing.TB, want, got *graph.Snapshot) {
	t.Helper()
	for _, id := range []string{traffic.SampledEdge, traffic.UnsampledEdge} {
		w := snapEdge(t, want, id)
		ratio := 0.0
		if w.SampleRatio != nil {
			ratio = *w.SampleRatio
		}
		requireEstimate(t, snapEdge(t, got, id), w.Requests, ratio)
	}
	require.True(t, snapEdge(t, got, traffic.SampledEdge).Estimated, "the sampled edge is an estimate")
	require.False(t, snapEdge(t, got, traffic.UnsampledEdge).Estimated, "the unsampled edge is not")
}

// TestSampledTrafficKept: two collectors' edges of sampled traffic read
// back from ClickHouse (merged, as --detect merged reads them; history
// from raw rows and the rollup; restored after a restart) are the
// estimates the live graphs showed, with the same share of calls seen.
func TestSampledTrafficKept(t *testing.T) {
	ctx := context.Background()
	db := freshDB(t)
	a, b := openStore(t, db, "collector-a"), openStore(t, db, "collector-b")
	start := recent().Add(-3 * time.Second)
	runA, err := traffic.Sampled(start, 15*time.Minute, 1)
	require.NoError(t, err)
	runB, err := traffic.Sampled(start, 15*time.Minute, 2)
	require.NoError(t, err)
	persistRun(t, a, runA)
	persistRun(t, b, runB)
	end := runA.End
	all := append(slices.Clone(runA.Buckets), runB.Buckets...)
	allNodes := append(slices.Clone(runA.Nodes), runB.Nodes...)
	long := end.Sub(runA.Start)

	for _, c := range []struct {
		name string
		read func(t *testing.T) (want, got *graph.Snapshot)
	}{
		{"merged live window", func(t *testing.T) (*graph.Snapshot, *graph.Snapshot) {
			edges, err := a.Edges(ctx, end.Add(-traffic.Window), end)
			require.NoError(t, err)
			return graph.SnapshotOf(end, traffic.Window, all), graph.SnapshotOf(end, traffic.Window, edges)
		}},
		{"history from raw rows and the rollup", func(t *testing.T) (*graph.Snapshot, *graph.Snapshot) {
			got, err := storage.History{Storage: b}.GraphAt(ctx, end, long)
			require.NoError(t, err)
			return graph.SnapshotOfNodes(end, long, all, allNodes, nil), got
		}},
		{"restored after a restart", func(t *testing.T) (*graph.Snapshot, *graph.Snapshot) {
			require.NoError(t, a.Close())
			a = openStore(t, db, "collector-a")
			buckets, err := a.Buckets(ctx, end.Add(-traffic.Window-10*time.Second), end)
			require.NoError(t, err)
			buckets = slices.DeleteFunc(buckets, func(b graph.EdgeBucket) bool { return b.Collector != "collector-a" })
			g, err := traffic.NewGraph(end)
			require.NoError(t, err)
			require.Positive(t, g.Restore(buckets))
			got, err := g.Snapshot(traffic.Window)
			require.NoError(t, err)
			return runA.Live, got
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			want, got := c.read(t)
			requireSameEstimates(t, want, got)
		})
	}
}

// oldEdgeColumns are the edge_buckets columns a collector of the release
// before calls seen were kept inserts.
var oldEdgeColumns = []string{
	"bucket_start", "width_ms", "collector",
	"source_kind", "source_group", "source_name", "target_kind", "target_group", "target_name",
	"edge_kind", "protocol", "consumer_group",
	"requests", "errors", "retries", "unanswered",
	"server_keys", "server_counts", "client_keys", "client_counts",
	"delay_keys", "delay_counts", "unanswered_keys", "unanswered_counts",
}

// insertOld inserts buckets as a collector of that release does.
func insertOld(t testing.TB, s *Store, collector string, buckets ...graph.EdgeBucket) {
	t.Helper()
	ctx := ch.Context(context.Background(), ch.WithSettings(ch.Settings{"async_insert": 0}))
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.q+".edge_buckets ("+strings.Join(oldEdgeColumns, ", ")+")")
	require.NoError(t, err)
	for _, e := range buckets {
		require.NoError(t, batch.Append(e.Start.UTC(), uint32(e.Width.Milliseconds()), collector,
			e.Source.Kind.String(), e.Source.Group, e.Source.Name,
			e.Target.Kind.String(), e.Target.Group, e.Target.Name,
			e.Kind.String(), e.Protocol.String(), e.ConsumerGroup,
			e.Requests, e.Errors, e.Retries, e.Unanswered,
			keys(e.Server), counts(e.Server), keys(e.Client), counts(e.Client),
			keys(e.Delay), counts(e.Delay), keys(e.UnansweredLatency), counts(e.UnansweredLatency)))
	}
	require.NoError(t, batch.Send())
}

// TestMigrateExistingDeployment: the migration adding calls seen and
// sampled runs over the tables of an existing deployment, whose rows (and
// those a collector not yet upgraded still writes) read as every request
// seen: not estimates on their own, and counted as seen when they add up
// with sampled rows of the same edge, from the raw rows and the rollup,
// before and after the rollup's parts merge.
func TestMigrateExistingDeployment(t *testing.T) {
	ctx := context.Background()
	db := freshDB(t)
	o := Options{DSN: dsnFor(chAddr, db)}.withDefaults()
	conn, _, err := connect(ctx, o)
	require.NoError(t, err)
	defer conn.Close()
	ms, err := migrations()
	require.NoError(t, err)
	i := slices.IndexFunc(ms, func(m migration) bool { return m.name == "sampled_counts" })
	require.Positive(t, i, "the migration exists")
	applied, err := migrateTo(ctx, conn, db, o, ms[:i])
	require.NoError(t, err)
	require.Len(t, applied, i, "the schema of the release before")

	mk := func(at time.Time, src string, requests uint64) graph.EdgeBucket {
		return graph.EdgeBucket{Start: at, Width: 5 * time.Second,
			Source: graph.NodeKey{Kind: graph.NodeService, Name: src}, Target: graph.NodeKey{Kind: graph.NodeService, Name: "api"},
			Kind: graph.EdgeSync, Protocol: graph.ProtocolHTTP, Requests: requests, Errors: requests / 10,
			Server: graph.Bins{Index: []int32{100, 103}, Count: []uint64{requests - 1, 1}}}
	}
	minute := recent().Add(time.Hour)
	old := openStoreNoMigrate(t, db, "old")
	// Rows of the old release, in the rollup before the migration.
	insertOld(t, old, "old", mk(minute.Add(5*time.Second), "web", 30), mk(minute.Add(5*time.Second), "cron", 12))

	applied, err = migrate(ctx, conn, db, o)
	require.NoError(t, err)
	var rest []int
	for _, m := range ms[i:] {
		rest = append(rest, m.version)
	}
	require.Equal(t, rest, applied, "this migration and those after it")
	for _, table := range []string{"edge_buckets", "edge_buckets_1m"} {
		for _, col := range []string{"seen", "sampled"} {
			require.EqualValues(t, 1, scalar[uint64](t, old, "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?", db, table, col), "%s.%s", table, col)
		}
	}
	// Running its statements again (a migration interrupted half-way) is
	// harmless.
	stmts, err := ms[i].statements(migrationVars{DB: quoteIdent(db)})
	require.NoError(t, err)
	for _, s := range stmts {
		require.NoError(t, conn.Exec(ctx, s))
	}

	// A collector not yet upgraded keeps writing the old columns; an
	// upgraded one writes sampled calls: 10 seen, standing for 40.
	insertOld(t, old, "old", mk(minute.Add(20*time.Second), "web", 6), mk(minute.Add(20*time.Second), "cron", 3))
	sampled := mk(minute.Add(10*time.Second), "web", 40)
	sampled.Seen, sampled.Sampled = 10, 10
	s := openStore(t, db, "new")
	commit(t, s, []graph.EdgeBucket{sampled}, nil, nil)

	web, cron := "service:web->service:api http", "service:cron->service:api http"
	check := func(t *testing.T, edges []graph.EdgeBucket) {
		t.Helper()
		snap := graph.SnapshotOf(minute.Add(time.Minute), time.Minute, edges)
		requireEstimate(t, snapEdge(t, snap, web), 76, (30+6+10)/76.0)
		requireEstimate(t, snapEdge(t, snap, cron), 15, 0)
	}
	for _, c := range []struct {
		name string
		read func() ([]graph.EdgeBucket, error)
	}{
		{"merged, the minute from the rollup", func() ([]graph.EdgeBucket, error) { return s.Edges(ctx, minute, minute.Add(time.Minute)) }},
		{"merged, raw rows", func() ([]graph.EdgeBucket, error) {
			return s.Edges(ctx, minute.Add(time.Second), minute.Add(59*time.Second))
		}},
		{"buckets as stored", func() ([]graph.EdgeBucket, error) { return s.Buckets(ctx, minute, minute.Add(time.Minute)) }},
		{"rollup after its parts merge", func() ([]graph.EdgeBucket, error) {
			if err := conn.Exec(ctx, "OPTIMIZE TABLE "+quoteIdent(db)+".edge_buckets_1m FINAL"); err != nil {
				return nil, err
			}
			n := scalar[uint64](t, s, "SELECT count() FROM "+s.q+".edge_buckets_1m")
			if n != 2 {
				return nil, fmt.Errorf("%d rollup rows after OPTIMIZE FINAL, want 2", n)
			}
			return s.Edges(ctx, minute, minute.Add(time.Minute))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			edges, err := c.read()
			require.NoError(t, err)
			check(t, edges)
		})
	}
}

// openStoreNoMigrate opens a Store on db as collector without touching the
// schema (a collector of an older release, for the test's inserts).
func openStoreNoMigrate(t testing.TB, db, collector string) *Store {
	t.Helper()
	o := Options{DSN: dsnFor(chAddr, db), Collector: collector}.withDefaults()
	conn, _, err := connect(context.Background(), o)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return &Store{o: o, conn: conn, db: db, q: quoteIdent(db)}
}
