package clickhouse

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph/review"
)

// TestReviewHistoryStored: a History with the store writes the first
// review of each run of equal observations; after a restart (a new
// History, its memory empty) a past time is read from ClickHouse, this
// collector's rows only, and the diff of two past times says what
// appeared and went away.
func TestReviewHistoryStored(t *testing.T) {
	db := freshDB(t)
	a := openStore(t, db, "a")
	b := openStore(t, db, "b")
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	obs := func(ids ...string) []review.Observation {
		out := make([]review.Observation, len(ids))
		for i, id := range ids {
			out[i] = review.Observation{ID: id, Kind: review.KindChatty, Severity: review.SeverityWarning, Summary: "summary of " + id,
				Evidence: map[string]any{"calls_per_parent": map[string]any{"p50": 12.0}}}
		}
		return out
	}
	write := func(st *Store, runs int, reps ...review.Report) {
		h := review.NewHistory(review.HistoryOptions{Max: 10, Store: st})
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { _ = h.Run(ctx) })
		for _, r := range reps {
			h.Add(r)
		}
		require.Eventually(t, func() bool {
			return scalar[uint64](t, st, "SELECT count() FROM "+st.q+".review_history WHERE collector = ?", st.o.Collector) >= uint64(runs)
		}, 10*time.Second, 20*time.Millisecond)
		cancel()
		wg.Wait()
	}
	// a: {x} at 0 and 5 (one run), {x,y} at 10, {y} at 20.
	write(a, 3, review.Report{GeneratedAt: at(0), Observations: obs("x")}, review.Report{GeneratedAt: at(5), Observations: obs("x")},
		review.Report{GeneratedAt: at(10), Observations: obs("x", "y")}, review.Report{GeneratedAt: at(20), Observations: obs("y")})
	require.EqualValues(t, 3, scalar[uint64](t, a, "SELECT count() FROM "+a.q+".review_history WHERE collector = 'a'"), "one row per run")
	// b, another collector sharing the database, at 11.
	write(b, 1, review.Report{GeneratedAt: at(11), Observations: obs("z")})

	// After a restart: the memory is empty, ClickHouse answers.
	h := review.NewHistory(review.HistoryOptions{Max: 10, Store: a})
	ctx := context.Background()
	_, ok, err := h.Read(ctx, at(-1))
	require.NoError(t, err)
	require.False(t, ok, "before the first review")
	ids := func(os []review.Observation) []string {
		out := []string{}
		for _, o := range os {
			out = append(out, o.ID)
		}
		return out
	}
	rep, ok, err := h.Read(ctx, at(7))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, []string{"x"}, ids(rep.Observations))
	require.Equal(t, at(0), rep.GeneratedAt.UTC(), "the first review of the run")
	require.Equal(t, "summary of x", rep.Observations[0].Summary)
	require.Equal(t, map[string]any{"p50": 12.0}, rep.Observations[0].Evidence["calls_per_parent"], "the numbers, as written")
	before, ok, err := h.Read(ctx, at(12))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, []string{"x", "y"}, ids(before.Observations), "collector a's review, not b's")
	after, ok, err := h.Read(ctx, at(25))
	require.NoError(t, err)
	require.True(t, ok)
	d := review.DiffReports(before, after)
	require.Empty(t, d.Appeared)
	require.Equal(t, []string{"x"}, ids(d.WentAway))

	// What the memory has wins over the store from where it begins.
	h.Add(review.Report{GeneratedAt: at(30), Observations: obs("w")})
	rep, ok, err = h.Read(ctx, at(31))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, []string{"w"}, ids(rep.Observations))
}
