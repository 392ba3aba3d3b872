package embedded

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/seed-a49a8342/cartograph/graph"
)

// writeHistory commits `buckets` 5s buckets of `edges` edges from start,
// one batch per bucket as the persister does, with the nodes of each.
func writeHistory(t testing.TB, s *Store, rng *rand.Rand, start time.Time, buckets, edges int) {
	t.Helper()
	for b := range buckets {
		at := start.Add(time.Duration(b) * 5 * time.Second)
		var es []graph.EdgeBucket
		var ns []graph.NodeSeen
		for i := range edges {
			e := realisticEdge(rng, at, i)
			if i%7 == 0 {
				e.Kind, e.Protocol, e.ConsumerGroup = graph.EdgeAsync, graph.ProtocolKafka, "g"
				e.Delay = realisticBins(rng, 30, 40)
			}
			es = append(es, e)
			ns = append(ns, graph.NodeSeen{Start: at, Width: 5 * time.Second, Key: e.Source}, graph.NodeSeen{Start: at, Width: 5 * time.Second, Key: e.Target})
		}
		a := s.Appender()
		require.NoError(t, a.AppendEdges(es))
		require.NoError(t, a.AppendNodes(ns))
		require.NoError(t, a.Commit(context.Background()))
	}
}

// readBoth reads [from, to) from the rollup and raw, and returns both.
func readBoth(t testing.TB, s *Store, from, to time.Time) (rolled, raw []graph.EdgeBucket, rolledNodes, rawNodes []graph.NodeSeen) {
	t.Helper()
	ctx := context.Background()
	var err error
	rolled, err = s.Edges(ctx, from, to)
	require.NoError(t, err)
	rolledNodes, err = s.Nodes(ctx, from, to)
	require.NoError(t, err)
	keep := s.o.RollupAfter
	s.o.RollupAfter = -1
	defer func() { s.o.RollupAfter = keep }()
	raw, err = s.Edges(ctx, from, to)
	require.NoError(t, err)
	rawNodes, err = s.Nodes(ctx, from, to)
	require.NoError(t, err)
	return rolled, raw, rolledNodes, rawNodes
}

// requireSameGraph checks that two graphs have the same nodes and edges,
// equal counts, and quantiles within the sketch's relative accuracy.
func requireSameGraph(t testing.TB, want, got *graph.Snapshot) {
	t.Helper()
	require.Equal(t, len(want.Nodes), len(got.Nodes))
	for i := range want.Nodes {
		require.Equal(t, want.Nodes[i].ID, got.Nodes[i].ID)
	}
	require.Equal(t, len(want.Edges), len(got.Edges))
	byID := map[string]graph.Edge{}
	for _, e := range got.Edges {
		byID[e.ID] = e
	}
	near := func(what string, w, g *graph.Quantiles) {
		if w == nil {
			require.Nil(t, g, what)
			return
		}
		require.NotNil(t, g, what)
		for _, p := range [][2]float64{{w.P50, g.P50}, {w.P95, g.P95}, {w.P99, g.P99}} {
			require.InEpsilon(t, p[0], p[1], graph.LatencyRelativeAccuracy, what)
		}
	}
	for _, w := range want.Edges {
		g, ok := byID[w.ID]
		require.True(t, ok, "edge %s", w.ID)
		require.Equal(t, w.Kind, g.Kind, w.ID)
		require.Equal(t, w.Requests, g.Requests, w.ID)
		require.Equal(t, w.Errors, g.Errors, w.ID)
		require.Equal(t, w.Retries, g.Retries, w.ID)
		require.Equal(t, w.RatePerS, g.RatePerS, w.ID)
		near(w.ID+" server", w.ServerLatency, g.ServerLatency)
		near(w.ID+" client", w.ClientLatency, g.ClientLatency)
		near(w.ID+" delay", w.Delay, g.Delay)
	}
}

func TestRollupReadEqualsRaw(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, Options{Dir: dir, RollupAfter: 10 * time.Minute, Retention: 1 << 62})
	rng := rand.New(rand.NewPCG(5, 5))
	writeHistory(t, s, rng, t0.Add(-3*time.Second), 12*80, 20) // 80 minutes, buckets not aligned to minutes

	for _, c := range []struct {
		name     string
		from, to time.Time
		rolled   bool
	}{
		{"aligned hour", t0.Add(5 * time.Minute), t0.Add(65 * time.Minute), true},
		{"ragged ends", t0.Add(17*time.Second + 3), t0.Add(47*time.Minute + 3*time.Second), true},
		{"whole range", time.Time{}, t0.Add(24 * time.Hour), true},
		{"short, raw", t0.Add(time.Minute), t0.Add(5 * time.Minute), false},
		{"long, within one minute of rows", t0.Add(79*time.Minute + 30*time.Second), t0.Add(100 * time.Minute), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			rolled, raw, rolledNodes, rawNodes := readBoth(t, s, c.from, c.to)
			require.NotEmpty(t, raw)
			if c.rolled && c.to.Sub(c.from) > 2*time.Minute && c.name != "long, within one minute of rows" {
				require.Less(t, len(rolled), len(raw)/5, "whole minutes come from the rollup")
				require.Less(t, len(rolledNodes), len(rawNodes)/5)
			} else if !c.rolled {
				require.Equal(t, raw, rolled)
				require.Equal(t, rawNodes, rolledNodes)
			}
			for i := 1; i < len(rolled); i++ {
				require.False(t, rolled[i].Start.Before(rolled[i-1].Start), "in start order")
			}
			at, window := c.to, c.to.Sub(c.from)
			if c.from.IsZero() {
				at, window = t0.Add(2*time.Hour), 3*time.Hour
			}
			requireSameGraph(t, graph.SnapshotOfNodes(at, window, raw, rawNodes, nil), graph.SnapshotOfNodes(at, window, rolled, rolledNodes, nil))
			var reqRaw, reqRolled uint64
			for _, e := range raw {
				reqRaw += e.Requests
			}
			for _, e := range rolled {
				reqRolled += e.Requests
			}
			require.Equal(t, reqRaw, reqRolled)
		})
	}

	// Buckets (what a restart restores into the live window) are raw
	// whatever the range.
	buckets, err := s.Buckets(context.Background(), t0.Add(5*time.Minute), t0.Add(65*time.Minute))
	require.NoError(t, err)
	_, raw, _, _ := readBoth(t, s, t0.Add(5*time.Minute), t0.Add(65*time.Minute))
	require.Equal(t, raw, buckets)

	// A restart keeps the rollup.
	from, to := t0.Add(5*time.Minute), t0.Add(65*time.Minute)
	before, _, beforeNodes, _ := readBoth(t, s, from, to)
	rows := testutil.ToFloat64(s.m.rows.WithLabelValues(kindEdge1m))
	require.Equal(t, float64(81*20), rows, "one row per edge and minute (81 minutes touched)")
	require.NoError(t, s.Close())
	s2 := openStore(t, Options{Dir: dir, RollupAfter: 10 * time.Minute, Retention: 1 << 62})
	after, err := s2.Edges(context.Background(), from, to)
	require.NoError(t, err)
	afterNodes, err := s2.Nodes(context.Background(), from, to)
	require.NoError(t, err)
	require.Equal(t, before, after)
	require.Equal(t, beforeNodes, afterNodes)
	require.Equal(t, rows, testutil.ToFloat64(s2.m.rows.WithLabelValues(kindEdge1m)))
}

func TestRollupMergesAcrossBatches(t *testing.T) {
	s := openStore(t, Options{RollupAfter: time.Minute})
	// The same edge and minute in three batches, one of them twice.
	var bins []graph.Bins
	for i := range 3 {
		bins = append(bins, graph.Bins{Index: []int32{int32(i), 10}, Count: []uint64{1, 2}})
	}
	for i, b := range bins {
		e := edge(t0.Add(time.Duration(i)*10*time.Second), "a", "b", 10)
		e.Server = b
		commit(t, s, []graph.EdgeBucket{e, e}, nil, nil)
	}
	got, err := s.Edges(context.Background(), t0, t0.Add(time.Minute))
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, uint64(60), got[0].Requests)
	require.Equal(t, time.Minute, got[0].Width)
	require.Equal(t, t0, got[0].Start)
	require.Equal(t, graph.Bins{Index: []int32{0, 1, 2, 10}, Count: []uint64{2, 2, 2, 12}}, got[0].Server)
}

func TestMergeBins(t *testing.T) {
	for _, c := range []struct {
		name    string
		a, b, w graph.Bins
	}{
		{"empty", graph.Bins{}, graph.Bins{}, graph.Bins{Index: []int32{}, Count: []uint64{}}},
		{"one side", graph.Bins{Index: []int32{1}, Count: []uint64{3}}, graph.Bins{}, graph.Bins{Index: []int32{1}, Count: []uint64{3}}},
		{"interleaved", graph.Bins{Index: []int32{graph.ZeroIndex, 1, 5}, Count: []uint64{1, 1, 1}}, graph.Bins{Index: []int32{0, 1, 7}, Count: []uint64{2, 2, 2}},
			graph.Bins{Index: []int32{graph.ZeroIndex, 0, 1, 5, 7}, Count: []uint64{1, 2, 3, 1, 2}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := mergeBins(c.a, c.b)
			require.Equal(t, len(c.w.Index), len(got.Index))
			if len(c.w.Index) > 0 {
				require.Equal(t, c.w, got)
			}
		})
	}
}

func TestRollupRetention(t *testing.T) {
	clk := &clock{now: t0}
	s := openStore(t, Options{RollupAfter: 10 * time.Minute, Retention: time.Hour, Now: clk.Now})
	rng := rand.New(rand.NewPCG(6, 6))
	writeHistory(t, s, rng, t0, 12*30, 5) // 30 minutes
	require.Equal(t, 150.0, testutil.ToFloat64(s.m.rows.WithLabelValues(kindEdge1m)))
	require.Equal(t, 270.0, testutil.ToFloat64(s.m.rows.WithLabelValues(kindNode1m)), "9 distinct nodes")

	// 20 minutes age out: their rollup rows go with their raw rows.
	clk.Set(t0.Add(80 * time.Minute))
	require.NoError(t, s.EnforceRetention(context.Background()))
	require.Equal(t, 50.0, testutil.ToFloat64(s.m.rows.WithLabelValues(kindEdge1m)))
	require.Equal(t, 100.0, testutil.ToFloat64(s.m.deleted.WithLabelValues(kindEdge1m, reasonAge)))
	require.Equal(t, 180.0, testutil.ToFloat64(s.m.deleted.WithLabelValues(kindNode1m, reasonAge)))
	rolled, raw, _, _ := readBoth(t, s, t0, t0.Add(time.Hour))
	requireSameGraph(t, graph.SnapshotOf(t0.Add(time.Hour), time.Hour, raw), graph.SnapshotOf(t0.Add(time.Hour), time.Hour, rolled))
	require.Len(t, rolled, 50)

	clk.Set(t0.Add(5 * time.Hour))
	require.NoError(t, s.EnforceRetention(context.Background()))
	rolled, raw, rolledNodes, _ := readBoth(t, s, time.Time{}, t0.Add(24*time.Hour))
	require.Empty(t, raw)
	require.Empty(t, rolled)
	require.Empty(t, rolledNodes)
	u, err := s.usage()
	require.NoError(t, err)
	require.Zero(t, u.rows[kindEdge1m])
	require.Zero(t, u.rows[kindNode1m])
}

// TestRollupUpgrade opens a file of format 1 (written before the rollup):
// its minutes are read raw, minutes written afterwards from the rollup.
func TestRollupUpgrade(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 7))
	s := openStore(t, Options{Dir: dir, Retention: 1 << 62})
	writeHistory(t, s, rng, t0, 12*20, 4)
	require.NoError(t, s.Close())
	// Make it a format 1 file: no rollup buckets, no rollup.from.
	db, err := bolt.Open(dir+"/"+FileName, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		for _, k := range [][]byte{metaRows(kindEdge1m), metaRows(kindNode1m), metaRollupFrom} {
			if err := meta.Delete(k); err != nil {
				return err
			}
		}
		if err := meta.Put(metaFormat, []byte{fileFormatV1}); err != nil {
			return err
		}
		return errorsJoin(tx.DeleteBucket(bucketEdges1m), tx.DeleteBucket(bucketNodes1m))
	}))
	require.NoError(t, db.Close())

	s = openStore(t, Options{Dir: dir, Retention: 1 << 62, RollupAfter: 10 * time.Minute})
	require.Equal(t, t0.Add(20*time.Minute).UnixNano(), s.rollupFrom, "the rollup starts after the newest raw row")
	writeHistory(t, s, rng, t0.Add(20*time.Minute), 12*20, 4)
	rolled, raw, rolledNodes, rawNodes := readBoth(t, s, t0, t0.Add(40*time.Minute))
	require.Len(t, rolled, 20*12*4+20*4, "old minutes raw, new ones rolled up")
	at := t0.Add(40 * time.Minute)
	requireSameGraph(t, graph.SnapshotOfNodes(at, 40*time.Minute, raw, rawNodes, nil), graph.SnapshotOfNodes(at, 40*time.Minute, rolled, rolledNodes, nil))
	require.NoError(t, s.view(func(tx *bolt.Tx) error {
		require.Equal(t, []byte{fileFormatV3}, tx.Bucket(bucketMeta).Get(metaFormat))
		return nil
	}))
}

func errorsJoin(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func TestRollupRange(t *testing.T) {
	m := int64(time.Minute)
	for _, c := range []struct {
		lo, hi, from, a, b int64
	}{
		{0, 10 * m, math.MinInt64, 0, 10 * m},
		{1, 10*m + 1, math.MinInt64, m, 10 * m},
		{1, m + 1, math.MinInt64, m + 1, m + 1}, // no whole minute
		{0, 10 * m, 3 * m, 3 * m, 10 * m},
		{0, 10 * m, 12 * m, 10 * m, 10 * m},
		{-m - 1, m, math.MinInt64, -m, m},
		{math.MinInt64, m, math.MinInt64, math.MinInt64, m},
	} {
		t.Run(fmt.Sprint(c.lo, c.hi, c.from), func(t *testing.T) {
			a, b := rollupRange(c.lo, c.hi, c.from)
			require.Equal(t, [2]int64{c.a, c.b}, [2]int64{a, b})
		})
	}
}
