package embedded

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/storage"
	"github.com/seed-a49a8342/cartograph/storage/internal/traffic"
)

// persist commits the run's buckets and nodes one flush (bucket) at a
// time, as the persister does.
func persist(t testing.TB, s *Store, run *traffic.Run) {
	t.Helper()
	for i := 0; i < len(run.Buckets); {
		j := i
		for j < len(run.Buckets) && run.Buckets[j].Start.Equal(run.Buckets[i].Start) {
			j++
		}
		a := s.Appender()
		require.NoError(t, a.AppendEdges(run.Buckets[i:j]))
		var ns []graph.NodeSeen
		for _, n := range run.Nodes {
			if n.Start.Equal(run.Buckets[i].Start) {
				ns = append(ns, n)
			}
		}
		require.NoError(t, a.AppendNodes(ns))
		require.NoError(t, a.Commit(context.Background()))
		i = j
	}
}

// snapEdge returns the edge id of s.
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

// requireSameEstimates checks that got shows the sampled and the unsampled
// edge as want does: counts, whether they are estimates, and the share of
// calls seen.
func requireSameEstimates(t testing.TB, want, got *graph.Snapshot) {
	t.Helper()
	for _, id := range []string{traffic.SampledEdge, traffic.UnsampledEdge} {
		w, g := snapEdge(t, want, id), snapEdge(t, got, id)
		require.Equal(t, w.Requests, g.Requests, id)
		require.Equal(t, w.Errors, g.Errors, id)
		require.Equal(t, w.Estimated, g.Estimated, id)
		if w.SampleRatio == nil {
			require.Nil(t, g.SampleRatio, id)
		} else {
			require.NotNil(t, g.SampleRatio, id)
			require.InDelta(t, *w.SampleRatio, *g.SampleRatio, 1e-12, id)
		}
	}
	require.True(t, snapEdge(t, got, traffic.SampledEdge).Estimated, "the sampled edge is an estimate")
	require.False(t, snapEdge(t, got, traffic.UnsampledEdge).Estimated, "the unsampled edge is not")
}

// TestSampledTrafficKept: an edge of sampled traffic read back from the
// store (history, from the raw rows and the rollup; after a restart) is
// the estimate the live graph showed, with the same share of calls seen.
func TestSampledTrafficKept(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	run, err := traffic.Sampled(t0.Add(-3*time.Second), 15*time.Minute, 1)
	require.NoError(t, err)
	s := openStore(t, Options{Dir: dir, RollupAfter: 10 * time.Minute, Retention: 1 << 62})
	persist(t, s, run)
	long := run.End.Sub(run.Start)

	for _, c := range []struct {
		name string
		read func(t *testing.T) (want, got *graph.Snapshot)
	}{
		{"history of the live window", func(t *testing.T) (*graph.Snapshot, *graph.Snapshot) {
			got, err := storage.History{Storage: s}.GraphAt(ctx, run.End, traffic.Window)
			require.NoError(t, err)
			return run.Live, got
		}},
		{"history from the rollup", func(t *testing.T) (*graph.Snapshot, *graph.Snapshot) {
			rolled, err := s.Edges(ctx, run.Start, run.End)
			require.NoError(t, err)
			require.Less(t, len(rolled), len(run.Buckets)/5, "whole minutes come from the rollup")
			got, err := storage.History{Storage: s}.GraphAt(ctx, run.End, long)
			require.NoError(t, err)
			return graph.SnapshotOfNodes(run.End, long, run.Buckets, run.Nodes, nil), got
		}},
		{"restored after a restart", func(t *testing.T) (*graph.Snapshot, *graph.Snapshot) {
			require.NoError(t, s.Close())
			s = openStore(t, Options{Dir: dir, RollupAfter: 10 * time.Minute, Retention: 1 << 62})
			buckets, err := s.Buckets(ctx, run.End.Add(-traffic.Window-10*time.Second), run.End)
			require.NoError(t, err)
			g, err := traffic.NewGraph(run.End)
			require.NoError(t, err)
			require.Positive(t, g.Restore(buckets))
			got, err := g.Snapshot(traffic.Window)
			require.NoError(t, err)
			return run.Live, got
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			want, got := c.read(t)
			requireSameEstimates(t, want, got)
		})
	}
}

// rewriteV1 rewrites every edge row, raw and rolled up, in the format of
// the builds before calls seen were kept: the file of an existing
// deployment.
func rewriteV1(t testing.TB, s *Store) {
	t.Helper()
	require.NoError(t, s.update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketEdges, bucketEdges1m} {
			b := tx.Bucket(name)
			var keys, vals [][]byte
			var r reader
			require.NoError(t, b.ForEach(func(k, v []byte) error {
				n, err := keyNanos(k)
				require.NoError(t, err)
				e, err := decodeEdge(&r, n, v)
				require.NoError(t, err)
				keys, vals = append(keys, append([]byte(nil), k...)), append(vals, appendEdgeV1(nil, &e))
				return nil
			}))
			for i := range keys {
				require.NoError(t, b.Put(keys[i], vals[i]))
			}
		}
		return nil
	}))
}

// TestRollupOfOldAndNewRows: the rollup adds rows written before calls
// seen were kept (whose requests were all seen) to sampled rows of the
// same edge and minute without losing the calls the old rows saw, so the
// rollup shows the share of calls seen that the raw rows do.
func TestRollupOfOldAndNewRows(t *testing.T) {
	old := edge(t0, "web", "api", 30) // an old build's row: 30 calls seen
	sampled := edge(t0.Add(10*time.Second), "web", "api", 40)
	sampled.Seen, sampled.Sampled = 10, 10 // 10 calls seen, each standing for 4
	plain := edge(t0.Add(20*time.Second), "web", "api", 6)
	plain.Seen = 6

	for _, c := range []struct {
		name      string
		old, new  []graph.EdgeBucket
		requests  uint64
		estimated bool
		ratio     float64
	}{
		{"old rows only", []graph.EdgeBucket{old}, nil, 30, false, 0},
		{"old rows, then sampled", []graph.EdgeBucket{old}, []graph.EdgeBucket{sampled}, 70, true, 40.0 / 70},
		{"old rows, then unsampled", []graph.EdgeBucket{old}, []graph.EdgeBucket{plain}, 36, false, 0},
		{"old, then sampled and unsampled", []graph.EdgeBucket{old}, []graph.EdgeBucket{sampled, plain}, 76, true, 46.0 / 76},
		{"new rows only", nil, []graph.EdgeBucket{sampled, plain}, 46, true, 16.0 / 46},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := openStore(t, Options{RollupAfter: time.Minute})
			if len(c.old) > 0 {
				commit(t, s, c.old, nil, nil)
				rewriteV1(t, s)
			}
			for _, e := range c.new {
				commit(t, s, []graph.EdgeBucket{e}, nil, nil)
			}
			from, to := t0, t0.Add(time.Minute)
			rolled, raw, _, _ := readBoth(t, s, from, to)
			require.Len(t, rolled, 1, "one rollup row")
			for name, bs := range map[string][]graph.EdgeBucket{"rolled": rolled, "raw": raw} {
				snap := graph.SnapshotOf(to, time.Minute, bs)
				require.Len(t, snap.Edges, 1)
				e := snap.Edges[0]
				require.Equal(t, c.requests, e.Requests, name)
				require.Equal(t, c.estimated, e.Estimated, name)
				if !c.estimated {
					require.Nil(t, e.SampleRatio, name)
					continue
				}
				require.NotNil(t, e.SampleRatio, name)
				require.InDelta(t, c.ratio, *e.SampleRatio, 5e-5, name) // ratios are rounded to 4 places
			}
		})
	}
}

// TestFileFormat: Open takes files of every format this build reads and
// marks them with the current one, so that older builds, which cannot read
// edge values of format 2, refuse the file (ErrFormat) instead of failing
// on its rows; it refuses formats it does not know.
func TestFileFormat(t *testing.T) {
	for _, c := range []struct {
		format byte
		err    error
	}{
		{fileFormatV1, nil},
		{fileFormatV2, nil},
		{fileFormatV3, nil},
		{fileFormatV3 + 1, ErrFormat},
	} {
		t.Run(fmt.Sprint(c.format), func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, Options{Dir: dir})
			commit(t, s, []graph.EdgeBucket{edge(t0, "a", "b", 3)}, nil, nil)
			require.NoError(t, s.Close())
			db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
			require.NoError(t, err)
			require.NoError(t, db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaFormat, []byte{c.format}) }))
			require.NoError(t, db.Close())

			s, err = Open(Options{Dir: dir, RetentionInterval: -1, Now: func() time.Time { return t0 }})
			if c.err != nil {
				require.ErrorIs(t, err, c.err)
				return
			}
			require.NoError(t, err)
			defer s.Close()
			require.NoError(t, s.view(func(tx *bolt.Tx) error {
				require.Equal(t, []byte{fileFormatV3}, tx.Bucket(bucketMeta).Get(metaFormat))
				return nil
			}))
			require.Len(t, allEdges(t, s), 1)
		})
	}
}
