package clickhouse

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
)

// benchEdges returns n sync edges between 100 services (10 callees each).
func benchEdges(n int) []graph.EdgeBucket {
	out := make([]graph.EdgeBucket, 0, n)
	for i := range n {
		src, dst := i/10, (i/10*7+i%10+1)%100
		out = append(out, graph.EdgeBucket{
			Source:   graph.NodeKey{Kind: graph.NodeService, Group: fmt.Sprintf("ns-%d", src%8), Name: fmt.Sprintf("service-%03d", src)},
			Target:   graph.NodeKey{Kind: graph.NodeService, Group: fmt.Sprintf("ns-%d", dst%8), Name: fmt.Sprintf("service-%03d", dst)},
			Kind:     graph.EdgeSync,
			Protocol: graph.ProtocolHTTP + graph.Protocol(i%2),
		})
	}
	return out
}

// latencyBins returns ~30 bins around a per-edge latency, the shape of a
// 5s bucket of a few hundred calls (1% relative accuracy: a factor 2 of
// latency spans ~35 bins).
func latencyBins(r *rand.Rand, center int32) graph.Bins {
	n := 25 + r.IntN(11)
	b := graph.Bins{Index: make([]int32, 0, n), Count: make([]uint64, 0, n)}
	idx := center - int32(n/2)
	for range n {
		idx += int32(1 + r.IntN(2))
		b.Index = append(b.Index, idx)
		b.Count = append(b.Count, uint64(1+r.IntN(40)))
	}
	return b
}

// fillBuckets makes one bucket per edge at start.
func fillBuckets(r *rand.Rand, edges []graph.EdgeBucket, start time.Time, width time.Duration) []graph.EdgeBucket {
	out := make([]graph.EdgeBucket, len(edges))
	for i, e := range edges {
		e.Start, e.Width = start, width
		e.Requests = uint64(200 + r.IntN(400))
		e.Errors = uint64(r.IntN(5))
		e.Retries = uint64(r.IntN(3))
		center := int32(300 + (i*37)%400)
		e.Server, e.Client = latencyBins(r, center), latencyBins(r, center+5)
		out[i] = e
	}
	return out
}

func openBench(b *testing.B) *Store {
	s, err := Open(context.Background(), Options{DSN: dsnFor(chAddr, freshDB(b)), Collector: "bench", QueryTimeout: 5 * time.Minute})
	require.NoError(b, err)
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkInsertEdges commits batches of 5,000 edge buckets (server and
// client sketches of ~30 bins each).
func BenchmarkInsertEdges(b *testing.B) {
	ctx := context.Background()
	s := openBench(b)
	r := rand.New(rand.NewPCG(1, 1))
	edges := benchEdges(1000)
	const width = 5 * time.Second
	start := recent().Add(-10 * time.Hour)
	var batches [][]graph.EdgeBucket
	for i := range 8 {
		var batch []graph.EdgeBucket
		for j := range 5 {
			batch = append(batch, fillBuckets(r, edges, start.Add(time.Duration(i*5+j)*width), width)...)
		}
		batches = append(batches, batch)
	}
	rows := 0
	began := time.Now()
	for i := 0; b.Loop(); i++ {
		batch := batches[i%len(batches)]
		app := s.Appender()
		if err := app.AppendEdges(batch); err != nil {
			b.Fatal(err)
		}
		if err := app.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		rows += len(batch)
	}
	b.ReportMetric(float64(rows)/time.Since(began).Seconds(), "rows/s")
}

// BenchmarkEdgesHour reads one hour of 1,000 edges in 5s buckets (720,000
// rows) merged into one bucket per edge.
func BenchmarkEdgesHour(b *testing.B) {
	ctx := context.Background()
	s := openBench(b)
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
	b.Logf("loaded 720000 rows in %v (%.0f rows/s)", load.Round(time.Millisecond), 720_000/load.Seconds())
	query := func() {
		got, err := s.Edges(ctx, from.Add(2500*time.Millisecond), to.Add(2500*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != len(edges) {
			b.Fatalf("got %d edges, want %d", len(got), len(edges))
		}
	}
	// As loaded (background merges under way), then with every part merged.
	t0 := time.Now()
	query()
	b.Logf("first query, parts as loaded: %v", time.Since(t0).Round(time.Millisecond))
	require.NoError(b, s.conn.Exec(ctx, "OPTIMIZE TABLE "+s.q+".edge_buckets FINAL"))
	require.NoError(b, s.conn.Exec(ctx, "OPTIMIZE TABLE "+s.q+".edge_buckets_1m FINAL"))
	var disk, rows uint64
	for _, table := range []string{"edge_buckets", "edge_buckets_1m"} {
		var d, raw, r, parts uint64
		require.NoError(b, s.conn.QueryRow(ctx, `SELECT sum(bytes_on_disk), sum(data_uncompressed_bytes), sum(rows), count()
			FROM system.parts WHERE database = ? AND table = ? AND active`, s.db, table).Scan(&d, &raw, &r, &parts))
		b.Logf("%s: %d rows, %d parts, %.1f MB on disk, %.0f B/row (uncompressed %.0f B/row)",
			table, r, parts, float64(d)/1e6, float64(d)/float64(r), float64(raw)/float64(r))
		if table == "edge_buckets" {
			require.EqualValues(b, 720_000, r)
			rows = r
		}
		disk += d
	}
	for _, w := range []time.Duration{time.Minute, 5 * time.Minute} {
		at := to.Add(-17 * time.Minute)
		t0 = time.Now()
		per, err := s.Buckets(ctx, at.Add(-w), at)
		require.NoError(b, err)
		d1 := time.Since(t0)
		t0 = time.Now()
		merged, err := s.Edges(ctx, at.Add(-w), at)
		require.NoError(b, err)
		b.Logf("a %v window: Buckets %v (%d rows), Edges %v (%d rows)", w, d1.Round(time.Millisecond), len(per), time.Since(t0).Round(time.Millisecond), len(merged))
	}

	// The server's share: the same query, hashed instead of sent.
	f, t := ceilMilli(from.Add(2500*time.Millisecond)), ceilMilli(to.Add(2500*time.Millisecond))
	a, z := wholeMinutes(f, t)
	t0 = time.Now()
	var cnt uint64
	require.NoError(b, s.conn.QueryRow(ctx, "SELECT count(), sum(cityHash64(*)) FROM ("+s.mergedEdgesQuery()+")", f, a, z, t, a, z).Scan(&cnt, new(uint64)))
	b.Logf("server side of the hour query: %v (%d edges)", time.Since(t0).Round(time.Millisecond), cnt)

	began, n := time.Now(), 0
	for b.Loop() {
		query()
		n++
	}
	b.ReportMetric(float64(time.Since(began).Milliseconds())/float64(n), "ms/query")
	b.ReportMetric(float64(disk)/float64(rows), "disk_B/row")
}
