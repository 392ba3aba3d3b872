package review_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph/review"
)

func obs(ids ...string) []review.Observation {
	out := make([]review.Observation, len(ids))
	for i, id := range ids {
		out[i] = review.Observation{ID: id, Kind: review.KindChatty, Severity: review.SeverityWarning}
	}
	return out
}

func ids(os []review.Observation) []string {
	out := []string{}
	for _, o := range os {
		out = append(out, o.ID)
	}
	return out
}

func TestDiffReports(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	d := review.DiffReports(review.Report{GeneratedAt: t0, Observations: obs("a", "b", "c")},
		review.Report{GeneratedAt: t0.Add(time.Minute), Observations: obs("b", "d", "c")})
	require.Equal(t, []string{"d"}, ids(d.Appeared))
	require.Equal(t, []string{"a"}, ids(d.WentAway))
	require.Equal(t, t0, d.From)
	require.Equal(t, t0.Add(time.Minute), d.To)
	same := review.DiffReports(review.Report{Observations: obs("a")}, review.Report{Observations: obs("a")})
	require.Empty(t, same.Appeared)
	require.Empty(t, same.WentAway)
}

func TestHistory(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	h := review.NewHistory(review.HistoryOptions{Max: 3})
	_, ok := h.At(at(0))
	require.False(t, ok, "empty")
	// Ticks every 5 s: {a} for 10 s, then {a,b}, then {b}, then {b,c}.
	steps := []struct {
		s   int
		ids []string
	}{{0, []string{"a"}}, {5, []string{"a"}}, {10, []string{"a", "b"}}, {15, []string{"b", "a"}}, {20, []string{"b"}}, {25, []string{"b", "c"}}}
	for i, st := range steps {
		h.Add(review.Report{GeneratedAt: at(st.s), Observations: obs(st.ids...)})
		if i == 4 {
			require.Equal(t, 3, h.Len(), "one review per distinct set of ids")
			rep, ok := h.At(at(7))
			require.True(t, ok)
			require.Equal(t, []string{"a"}, ids(rep.Observations))
			require.Equal(t, at(0), rep.GeneratedAt, "the first review of the span")
		}
	}
	require.Equal(t, 3, h.Len(), "bounded: the oldest forgotten")
	require.Equal(t, at(10), h.Since())
	_, ok = h.At(at(9))
	require.False(t, ok, "before the history begins")
	rep, ok := h.At(at(12))
	require.True(t, ok)
	require.ElementsMatch(t, []string{"a", "b"}, ids(rep.Observations))
	rep, ok = h.At(at(3600))
	require.True(t, ok)
	require.Equal(t, []string{"b", "c"}, ids(rep.Observations))
	d := review.DiffReports(must(h.At(at(12))), must(h.At(at(26))))
	require.Equal(t, []string{"c"}, ids(d.Appeared))
	require.Equal(t, []string{"a"}, ids(d.WentAway))

	h.Add(review.Report{GeneratedAt: at(1), Observations: obs("z")})
	h.Add(review.Report{GeneratedAt: at(25), Observations: obs("z")})
	require.Equal(t, 3, h.Len(), "a review older than the newest is not added")
}

func must(rep review.Report, ok bool) review.Report {
	if !ok {
		panic("no review")
	}
	return rep
}
