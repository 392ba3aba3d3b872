package embedded

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/storage"
)

// benchEdges are n realistic edge buckets (server and client sketches of
// ~30 bins) of `edges` distinct edges, 5s buckets from start.
func benchEdges(rng *rand.Rand, start time.Time, n, edges int) []graph.EdgeBucket {
	out := make([]graph.EdgeBucket, n)
	for i := range out {
		out[i] = realisticEdge(rng, start.Add(time.Duration(i/edges)*5*time.Second), i%edges)
	}
	return out
}

// reportDisk reports the live and file bytes per stored row.
func reportDisk(b *testing.B, s *Store) {
	u, err := s.usage()
	require.NoError(b, err)
	rows := float64(u.rows[kindEdge])
	b.ReportMetric(float64(u.live)/rows, "live-B/row")
	b.ReportMetric(float64(u.file)/rows, "file-B/row")
}

// BenchmarkCommitEdges commits batches of 5,000 edge buckets (1,000 edges
// x 5 buckets), fsync included.
func BenchmarkCommitEdges(b *testing.B) {
	const batch = 5000
	s := openStore(b, Options{Dir: b.TempDir(), MaxBytes: 1 << 40, Retention: 1 << 62})
	rng := rand.New(rand.NewPCG(1, 1))
	edges := benchEdges(rng, t0, batch, 1000)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		for k := range edges {
			edges[k].Start = t0.Add(time.Duration(i*5+k/1000) * 5 * time.Second)
		}
		a := s.Appender()
		if err := a.AppendEdges(edges); err != nil {
			b.Fatal(err)
		}
		if err := a.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "rows/s")
	reportDisk(b, s)
}

// BenchmarkEdgesRead reads one hour of 5s buckets (720 per edge) for a
// number of edges.
func BenchmarkEdgesRead(b *testing.B) {
	for _, edges := range []int{100, 1000} {
		b.Run(fmt.Sprintf("edges=%d", edges), func(b *testing.B) {
			s := openStore(b, Options{Dir: b.TempDir(), MaxBytes: 1 << 40, Retention: 1 << 62})
			rng := rand.New(rand.NewPCG(2, 2))
			ctx := context.Background()
			const buckets = 720
			// Write in batches of 5,000 rows; reuse the sketches of one
			// batch (encoding only cares about their sizes).
			tmpl := benchEdges(rng, t0, 5000, edges)
			written, start := 0, time.Now()
			for written < buckets*edges {
				n := min(5000, buckets*edges-written)
				batch := tmpl[:n]
				for k := range batch {
					row := written + k
					batch[k].Start = t0.Add(time.Duration(row/edges) * 5 * time.Second)
					batch[k].Source = svc(fmt.Sprintf("service-%03d", (row%edges)%100))
					batch[k].Target = svc(fmt.Sprintf("service-%04d", row%edges))
				}
				a := s.Appender()
				require.NoError(b, a.AppendEdges(batch))
				require.NoError(b, a.Commit(ctx))
				written += n
			}
			b.Logf("wrote %d rows in %v (%.0f rows/s)", written, time.Since(start), float64(written)/time.Since(start).Seconds())
			b.ResetTimer()
			for range b.N {
				got, err := s.Edges(ctx, t0, t0.Add(time.Hour))
				if err != nil {
					b.Fatal(err)
				}
				if len(got) != buckets*edges {
					b.Fatalf("read %d rows, want %d", len(got), buckets*edges)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(buckets*edges*b.N)/b.Elapsed().Seconds(), "rows/s")
			reportDisk(b, s)
		})
	}
}

// BenchmarkEncoding compares the value of a realistic edge bucket in the
// binary codec and in JSON: size, and time to encode and decode.
func BenchmarkEncoding(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 3))
	edges := benchEdges(rng, t0, 1000, 1000)
	bins := 0
	for _, e := range edges {
		bins += len(e.Server.Index) + len(e.Client.Index)
	}
	b.Logf("%.1f bins per sketch", float64(bins)/float64(2*len(edges)))
	b.Run("binary", func(b *testing.B) {
		var size int
		var buf []byte
		r := reader{intern: map[string]string{}}
		for i := range b.N {
			e := &edges[i%len(edges)]
			var err error
			buf, err = appendEdge(buf[:0], e)
			if err != nil {
				b.Fatal(err)
			}
			size += len(buf)
			if _, err := decodeEdge(&r, 0, buf); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(size)/float64(b.N), "B/row")
	})
	b.Run("json", func(b *testing.B) {
		var size int
		for i := range b.N {
			v, err := json.Marshal(&edges[i%len(edges)])
			if err != nil {
				b.Fatal(err)
			}
			size += len(v)
			var e graph.EdgeBucket
			if err := json.Unmarshal(v, &e); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(size)/float64(b.N), "B/row")
	})
}

// BenchmarkGraphHour is GET /api/v1/graph?at=...&window=1h on the embedded
// store: storage.History.GraphAt over one hour of 5s buckets (720 per edge)
// of 1,000 edges and their ~1,100 nodes, written one 5s batch at a time as
// the persister does. read=raw merges every stored bucket (the store
// before the rollup; RollupAfter < 0), read=rollup takes the whole minutes
// from the one-minute rollup.
func BenchmarkGraphHour(b *testing.B) {
	const edges, buckets = 1000, 720
	dir := b.TempDir()
	s := openStore(b, Options{Dir: dir, MaxBytes: 1 << 40, Retention: 1 << 62})
	rng := rand.New(rand.NewPCG(4, 4))
	ctx := context.Background()
	tmpl := benchEdges(rng, t0, edges, edges)
	start := time.Now()
	for k := range buckets {
		at := t0.Add(time.Duration(k) * 5 * time.Second)
		nodes := make([]graph.NodeSeen, 0, 2*edges)
		seen := map[graph.NodeKey]bool{}
		for i := range tmpl {
			tmpl[i].Start = at
			tmpl[i].Source = svc(fmt.Sprintf("service-%03d", i%100))
			tmpl[i].Target = svc(fmt.Sprintf("service-%04d", i))
			for _, n := range []graph.NodeKey{tmpl[i].Source, tmpl[i].Target} {
				if !seen[n] {
					seen[n] = true
					nodes = append(nodes, graph.NodeSeen{Start: at, Width: 5 * time.Second, Key: n})
				}
			}
		}
		a := s.Appender()
		require.NoError(b, a.AppendEdges(tmpl))
		require.NoError(b, a.AppendNodes(nodes))
		require.NoError(b, a.Commit(ctx))
	}
	u, err := s.usage()
	require.NoError(b, err)
	b.Logf("wrote %d edge rows, %d node rows (rollup: %d, %d) in %v; %d live bytes", u.rows[kindEdge], u.rows[kindNode],
		u.rows[kindEdge1m], u.rows[kindNode1m], time.Since(start).Round(time.Millisecond), u.live)
	at := t0.Add(buckets * 5 * time.Second)
	for _, c := range []struct {
		name        string
		rollupAfter time.Duration
	}{{"read=raw", -1}, {"read=rollup", DefaultRollupAfter}} {
		b.Run(c.name, func(b *testing.B) {
			s.o.RollupAfter = c.rollupAfter
			h := storage.History{Storage: s}
			for range b.N {
				snap, err := h.GraphAt(ctx, at, time.Hour)
				if err != nil {
					b.Fatal(err)
				}
				if len(snap.Edges) != edges {
					b.Fatalf("%d edges, want %d", len(snap.Edges), edges)
				}
			}
		})
	}
}
