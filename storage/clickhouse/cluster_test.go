package clickhouse

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
	"github.com/seed-a49a8342/cartograph/graph"
)

// clusterFixture is the test cluster (cmd/testenv's clickhouse-cluster: two
// shards) with a fresh database name, whose layout and shard databases are
// dropped on every node when tb ends.
type clusterFixture struct {
	name  string
	nodes []string
	db    string
}

func newCluster(tb testing.TB) clusterFixture {
	tb.Helper()
	name, nodes := need.ClickHouseCluster(tb)
	c := clusterFixture{name: name, nodes: nodes, db: fmt.Sprintf("cartograph_test_cluster_%d_%d", os.Getpid(), dbSeq.Add(1))}
	tb.Cleanup(func() {
		for _, n := range nodes {
			c.exec(tb, n, "DROP DATABASE IF EXISTS "+quoteIdent(c.db)+" SYNC")
			c.exec(tb, n, "DROP DATABASE IF EXISTS "+quoteIdent(c.db+localSuffix)+" SYNC")
		}
	})
	return c
}

func (c clusterFixture) options(node int) Options {
	return Options{DSN: dsnFor(c.nodes[node], c.db), Collector: fmt.Sprintf("node%d", node+1), Cluster: c.name, QueryTimeout: 5 * time.Minute}
}

func (c clusterFixture) exec(tb testing.TB, node, q string) {
	tb.Helper()
	conn, err := ch.Open(&ch.Options{Addr: []string{node}})
	require.NoError(tb, err)
	defer conn.Close()
	require.NoError(tb, conn.Exec(context.Background(), q), q)
}

func (c clusterFixture) count(tb testing.TB, node, q string) uint64 {
	tb.Helper()
	conn, err := ch.Open(&ch.Options{Addr: []string{node}})
	require.NoError(tb, err)
	defer conn.Close()
	var n uint64
	require.NoError(tb, conn.QueryRow(context.Background(), q).Scan(&n), q)
	return n
}

// open opens a Store on the layout through node (Open finds the layout).
func (c clusterFixture) open(tb testing.TB, node int) *Store {
	tb.Helper()
	o := c.options(node)
	o.Cluster = ""
	s, err := Open(context.Background(), o)
	require.NoError(tb, err)
	tb.Cleanup(func() { s.Close() })
	return s
}

// TestMigrateCluster: `collector migrate --cluster` makes the layout on
// both shards (twice is harmless); collectors on either node write through
// the Distributed tables, the rows spread over both shards, and either
// node reads back all of them merged; the judge's lease, on the first
// shard, still has one holder per term; a shard behind on migrations is
// refused with what to run.
func TestMigrateCluster(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	require.NoError(t, Migrate(ctx, c.options(0)))
	require.NoError(t, Migrate(ctx, c.options(1)), "again, from the other node: nothing to do")
	for _, n := range c.nodes {
		require.EqualValues(t, len(distributedTables), c.count(t, n, "SELECT count() FROM system.tables WHERE database = '"+c.db+"' AND engine = 'Distributed'"))
		require.EqualValues(t, 1, c.count(t, n, "SELECT count() FROM system.tables WHERE database = '"+c.db+localSuffix+"' AND name = 'edge_buckets_1m_mv'"),
			"each shard rolls up its own rows")
	}

	w, r := c.open(t, 1), c.open(t, 0)
	rng := rand.New(rand.NewPCG(3, 3))
	start := recent()
	buckets := fillBuckets(rng, benchEdges(200), start, 5*time.Second)
	app := w.Appender()
	require.NoError(t, app.AppendEdges(buckets))
	require.NoError(t, app.Commit(ctx))
	var perShard []uint64
	for _, n := range c.nodes {
		perShard = append(perShard, c.count(t, n, "SELECT count() FROM "+c.db+localSuffix+".edge_buckets"))
	}
	require.EqualValues(t, len(buckets), perShard[0]+perShard[1], "on their shards when Commit returns")
	require.Positive(t, perShard[0])
	require.Positive(t, perShard[1])
	got, err := r.Edges(ctx, start, start.Add(time.Minute))
	require.NoError(t, err)
	require.Len(t, got, len(buckets))
	want := graph.SnapshotOf(start.Add(time.Minute), time.Minute, buckets)
	have := graph.SnapshotOf(start.Add(time.Minute), time.Minute, got)
	require.Equal(t, len(want.Edges), len(have.Edges))
	for i := range want.Edges {
		require.Equal(t, want.Edges[i].Requests, have.Edges[i].Requests)
		require.Equal(t, want.Edges[i].Latency, have.Edges[i].Latency)
	}

	// The lease: contenders on both nodes.
	var ls []*Lease
	for i := range 4 {
		l, err := c.open(t, i%2).NewLease(LeaseOptions{Takeover: 6 * time.Second})
		require.NoError(t, err)
		ls = append(ls, l)
	}
	for round := range 4 {
		var wg sync.WaitGroup
		for _, l := range ls {
			wg.Go(func() { require.NoError(t, l.Step(ctx)) })
		}
		wg.Wait()
		h := holders(ls)
		require.Len(t, h, 1, "round %d", round)
		ls[h[0]].Release(ctx)
	}
	require.EqualValues(t, 0, c.count(t, c.nodes[1], "SELECT count() FROM "+c.db+localSuffix+".judge_lease"), "the lease lives on the first shard")

	// A shard without the newest migration: Open says what to run.
	c.exec(t, c.nodes[0], "ALTER TABLE "+c.db+localSuffix+".schema_migrations DELETE WHERE version = 10 SETTINGS mutations_sync = 1")
	o := c.options(0)
	o.Cluster = ""
	_, err = Open(ctx, o)
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "collector migrate --cluster"), err.Error())
	require.NoError(t, Migrate(ctx, c.options(0)), "migrate --cluster brings it up to date")
	_ = c.open(t, 0)
}

// BenchmarkEdgesHourCluster is BenchmarkEdgesHour on the cluster layout of
// two shards: one hour of 1,000 edges in 5s buckets (720,000 rows) written
// through the Distributed table, read back merged across both shards.
func BenchmarkEdgesHourCluster(b *testing.B) {
	c := newCluster(b)
	ctx := context.Background()
	require.NoError(b, Migrate(ctx, c.options(0)))
	s := c.open(b, 0)
	r := rand.New(rand.NewPCG(2, 2))
	edges := benchEdges(1000)
	const width = 5 * time.Second
	from := recent()
	to := from.Add(time.Hour)
	loadStart := time.Now()
	for i := 0; i < 720; i += 5 {
		var batch []graph.EdgeBucket
		for j := i; j < i+5; j++ {
			batch = append(batch, fillBuckets(r, edges, from.Add(time.Duration(j)*width), width)...)
		}
		app := s.Appender()
		require.NoError(b, app.AppendEdges(batch))
		require.NoError(b, app.Commit(ctx))
	}
	load := time.Since(loadStart)
	b.Logf("loaded 720000 rows through the Distributed table in %v (%.0f rows/s)", load.Round(time.Millisecond), 720_000/load.Seconds())
	query := func() {
		got, err := s.Edges(ctx, from.Add(2500*time.Millisecond), to.Add(2500*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != len(edges) {
			b.Fatalf("got %d edges, want %d", len(got), len(edges))
		}
	}
	t0 := time.Now()
	query()
	b.Logf("first query, parts as loaded: %v", time.Since(t0).Round(time.Millisecond))
	for _, n := range c.nodes {
		c.exec(b, n, "OPTIMIZE TABLE "+c.db+localSuffix+".edge_buckets FINAL")
		c.exec(b, n, "OPTIMIZE TABLE "+c.db+localSuffix+".edge_buckets_1m FINAL")
		b.Logf("shard %s: %d rows, %d rollup rows", n,
			c.count(b, n, "SELECT count() FROM "+c.db+localSuffix+".edge_buckets"), c.count(b, n, "SELECT count() FROM "+c.db+localSuffix+".edge_buckets_1m"))
	}
	began, n := time.Now(), 0
	for b.Loop() {
		query()
		n++
	}
	b.ReportMetric(float64(time.Since(began).Milliseconds())/float64(n), "ms/query")
}
