package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/review"
	"github.com/seed-a49a8342/cartograph/storage"
	"github.com/seed-a49a8342/cartograph/storage/embedded"
)

// TestDiffObservations: a caller keeps calling pay through its failures
// for 15 s, then pay recovers and ledger starts failing, still called on
// every request. The graph diff between a time of the first failure and
// one of the second says the observation on gw's calls to ledger appeared
// and the one on pay went away, from the reviews the API kept of its
// ticks (a real graph, a real reviewer, a real embedded store).
func TestDiffObservations(t *testing.T) {
	begins := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := begins
	g, err := graph.New(graph.Options{Window: 10 * time.Second, Bucket: time.Second, Now: func() time.Time { return now }})
	require.NoError(t, err)
	st, err := embedded.Open(embedded.Options{Dir: t.TempDir(), Retention: 50 * 365 * 24 * time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	rev, err := review.New(review.Options{}, nil)
	require.NoError(t, err)
	hist := review.NewHistory(review.HistoryOptions{Max: 10})
	a, err := New(Options{Graph: g, History: storage.History{Storage: st}, Bucket: time.Second, Review: rev, ReviewHistory: hist,
		Now: func() time.Time { return now }})
	require.NoError(t, err)

	var seq uint64
	request := func(payFails, ledgerFails bool) {
		seq++
		tr := graph.TraceID{byte(seq), byte(seq >> 8), byte(seq >> 16)}
		end := now.UnixNano()
		spans := []graph.Span{
			{Trace: tr, ID: graph.SpanID{1}, Kind: graph.SpanServer, Service: "front", Start: end - 9e6, End: end},
			{Trace: tr, ID: graph.SpanID{2}, Parent: graph.SpanID{1}, Kind: graph.SpanClient, Service: "front", Start: end - 8e6, End: end - 1e6},
			{Trace: tr, ID: graph.SpanID{3}, Parent: graph.SpanID{2}, Kind: graph.SpanServer, Service: "gw", Start: end - 7e6, End: end - 2e6},
		}
		for i, callee := range []string{"pay", "ledger"} {
			fails := []bool{payFails, ledgerFails}[i]
			c, s := graph.SpanID{byte(10 + 2*i)}, graph.SpanID{byte(11 + 2*i)}
			spans = append(spans,
				graph.Span{Trace: tr, ID: c, Parent: graph.SpanID{3}, Kind: graph.SpanClient, Service: "gw", Start: end - 6e6, End: end - 3e6, Error: fails},
				graph.Span{Trace: tr, ID: s, Parent: c, Kind: graph.SpanServer, Service: callee, Start: end - 5e6, End: end - 4e6, Error: fails})
		}
		rej, why := g.ConsumeSpans(spans)
		require.Zero(t, rej, why)
	}
	store := func() {
		buckets, _ := g.ClosedBuckets(time.Time{})
		app := st.Appender()
		require.NoError(t, app.AppendEdges(buckets))
		require.NoError(t, app.AppendNodes(g.ClosedNodes(time.Time{})))
		require.NoError(t, app.Commit(context.Background()))
	}
	tick := func() {
		s, err := g.Snapshot(0)
		require.NoError(t, err)
		a.Receive(s, nil, nil)
	}
	// 20 requests a second; a tick every second.
	for i := range 30 * 20 {
		now = begins.Add(time.Duration(i) * 50 * time.Millisecond)
		request(i < 15*20, i >= 15*20)
		if i%20 == 19 {
			tick()
		}
	}
	now = begins.Add(31 * time.Second)
	tick()
	store()
	require.Greater(t, hist.Len(), 1)

	q := url.Values{"from": {begins.Add(13 * time.Second).Format(time.RFC3339)}, "to": {begins.Add(29 * time.Second).Format(time.RFC3339)}, "window": {"5s"}}
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/graph/diff?"+q.Encode(), nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var d GraphDiff
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &d), rec.Body.String())
	require.NotNil(t, d.Observations, rec.Body.String())
	require.Empty(t, d.Observations.Note)
	ids := func(os []review.Observation) []string {
		out := []string{}
		for _, o := range os {
			out = append(out, o.ID)
		}
		return out
	}
	require.Equal(t, []string{"no_circuit_breaker:service:gw->service:ledger"}, ids(d.Observations.Appeared), rec.Body.String())
	require.Equal(t, []string{"no_circuit_breaker:service:gw->service:pay"}, ids(d.Observations.WentAway), rec.Body.String())
	require.False(t, d.Observations.From.After(begins.Add(13*time.Second)))
	require.False(t, d.Observations.To.After(begins.Add(29*time.Second)))
	require.NotEmpty(t, d.AddedEdges, "the graph's part is still there")

	// Before the history begins: said, not guessed.
	q.Set("from", begins.Add(500*time.Millisecond).Format(time.RFC3339Nano))
	rec = httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/graph/diff?"+q.Encode(), nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	d = GraphDiff{}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &d))
	require.Contains(t, d.Observations.Note, "the review history begins at")
	require.Empty(t, d.Observations.Appeared)
}
