package embedded

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/lag"
)

func TestRetentionByAge(t *testing.T) {
	day := func(d int) time.Time { return t0.Add(time.Duration(d) * 24 * time.Hour) }
	for _, chunk := range []int{1, deleteChunk} {
		t.Run("chunk "+map[bool]string{true: "1", false: "default"}[chunk == 1], func(t *testing.T) {
			clk := &clock{now: day(30)}
			s := openStore(t, Options{Now: clk.Now}) // Retention: 7 days; cutoff day 23
			s.chunk = chunk
			var edges []graph.EdgeBucket
			var samples []lag.Sample
			for _, d := range []int{22, 20, 23, 29} {
				edges = append(edges, edge(day(d), "a", "b", uint64(d)))
				samples = append(samples, sample(day(d), "g", float64(d)))
			}
			commit(t, s, edges, []finding.Finding{
				newFinding("resolved-old", finding.StateResolved, day(1), ptr(day(22)), day(22)),
				newFinding("unresolved-unseen", finding.StateFiring, day(21), nil, day(22)),
				newFinding("long-running", finding.StateFiring, day(1), nil, day(29)),
				newFinding("resolved-recent", finding.StateResolved, day(20), ptr(day(24)), day(24)),
			}, samples)

			require.NoError(t, s.EnforceRetention(context.Background()))

			var days []uint64
			for _, e := range allEdges(t, s) {
				days = append(days, e.Requests)
			}
			require.Equal(t, []uint64{23, 29}, days, "rows at the cutoff are kept")
			var lagDays []float64
			for _, l := range allLag(t, s) {
				lagDays = append(lagDays, l.Lag)
			}
			require.Equal(t, []float64{23, 29}, lagDays)
			fs, err := s.Findings(context.Background(), time.Time{}, day(100))
			require.NoError(t, err)
			var ids []string
			for _, f := range fs {
				ids = append(ids, f.ID)
			}
			require.Equal(t, []string{"long-running", "resolved-recent"}, ids)

			for _, k := range []string{kindEdge, kindLag, kindFinding} {
				require.Equal(t, 2.0, testutil.ToFloat64(s.m.deleted.WithLabelValues(k, reasonAge)), k)
				require.Equal(t, 2.0, testutil.ToFloat64(s.m.rows.WithLabelValues(k)), k)
			}
			require.Zero(t, testutil.ToFloat64(s.m.deleted.WithLabelValues(kindEdge, reasonSize)))

			// Time passes: everything ages out.
			clk.Set(day(60))
			require.NoError(t, s.EnforceRetention(context.Background()))
			require.Empty(t, allEdges(t, s))
			require.Empty(t, allLag(t, s))
			require.Equal(t, 4.0, testutil.ToFloat64(s.m.deleted.WithLabelValues(kindFinding, reasonAge)))
		})
	}
}

func TestRetentionBySize(t *testing.T) {
	const maxBytes = 256 << 10
	s := openStore(t, Options{MaxBytes: maxBytes, Retention: 10000 * time.Hour})
	s.chunk = 200
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()

	// Edge buckets and lag samples interleaved in time, well over the
	// bound.
	written := 0
	write := func(from, batches int) {
		for b := from; b < from+batches; b++ {
			at := t0.Add(time.Duration(b) * 5 * time.Second)
			var edges []graph.EdgeBucket
			for i := range 40 {
				edges = append(edges, realisticEdge(rng, at, i))
			}
			commit(t, s, edges, nil, []lag.Sample{sample(at, "g", float64(b))})
			written += len(edges) + 1
		}
	}
	write(0, 100)
	u, err := s.usage()
	require.NoError(t, err)
	require.Greater(t, u.live, int64(3*maxBytes), "the test writes well over the bound")
	fileBefore := u.file

	require.NoError(t, s.EnforceRetention(ctx))
	u, err = s.usage()
	require.NoError(t, err)
	require.LessOrEqual(t, u.live, lowWaterBytes(maxBytes), "deleted down to the low-water mark")

	// The oldest rows went first: every remaining row is at least as new
	// as every deleted one.
	edges, samples := allEdges(t, s), allLag(t, s)
	require.NotEmpty(t, edges)
	oldest := edges[0].Start
	if len(samples) > 0 && samples[0].Time.Before(oldest) {
		oldest = samples[0].Time
	}
	newestDeleted := oldest.Add(-5 * time.Second) // batches are 5s apart
	remainingEdges := 0
	for b := range 100 {
		at := t0.Add(time.Duration(b) * 5 * time.Second)
		if at.After(newestDeleted) {
			remainingEdges += 40
		}
	}
	// Batches newer than the oldest remaining row are complete; only the
	// oldest remaining time may be partly deleted.
	require.LessOrEqual(t, len(edges), remainingEdges)
	require.Greater(t, len(edges), remainingEdges-40)
	for _, l := range samples {
		require.False(t, l.Time.Before(oldest))
	}
	deleted := testutil.ToFloat64(s.m.deleted.WithLabelValues(kindEdge, reasonSize)) +
		testutil.ToFloat64(s.m.deleted.WithLabelValues(kindLag, reasonSize))
	require.Equal(t, float64(written-len(edges)-len(samples)), deleted, "every deleted row is counted")
	require.Zero(t, testutil.ToFloat64(s.m.deleted.WithLabelValues(kindEdge, reasonAge)))
	require.Equal(t, float64(len(edges)), testutil.ToFloat64(s.m.rows.WithLabelValues(kindEdge)))

	// The file does not shrink, but the freed pages are reused: writing
	// as much again and enforcing again leaves the file where it was.
	t.Logf("file %d B before retention, %d B after", fileBefore, u.file)
	write(100, 100)
	require.NoError(t, s.EnforceRetention(ctx))
	u, err = s.usage()
	require.NoError(t, err)
	require.LessOrEqual(t, u.live, lowWaterBytes(maxBytes))
	require.LessOrEqual(t, u.file, fileBefore+maxBytes, "freed pages were reused")
	t.Logf("file %d B, live %d B, %d edge rows and %d lag rows left of %d written", u.file, u.live,
		len(allEdges(t, s)), len(allLag(t, s)), written)
}

// TestRetentionInBackground checks that a Commit beyond MaxBytes wakes the
// retention goroutine.
func TestRetentionInBackground(t *testing.T) {
	s := openStore(t, Options{MaxBytes: 64 << 10, RetentionInterval: time.Hour})
	rng := rand.New(rand.NewPCG(3, 4))
	var edges []graph.EdgeBucket
	for i := range 2000 {
		edges = append(edges, realisticEdge(rng, t0.Add(time.Duration(i/100)*5*time.Second), i))
	}
	commit(t, s, edges, nil, nil)
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(s.m.deleted.WithLabelValues(kindEdge, reasonSize)) > 0
	}, 10*time.Second, 10*time.Millisecond)
}

func lowWaterBytes(maxBytes int64) int64 { return int64(float64(maxBytes) * lowWater) }
