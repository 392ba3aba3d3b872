package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/lag"
	"github.com/seed-a49a8342/cartograph/storage"
	"github.com/seed-a49a8342/cartograph/storage/embedded"
)

type edgesTaken struct{ got []graph.EdgeBucket }

func (e *edgesTaken) Restore(b []graph.EdgeBucket) int { e.got = append(e.got, b...); return len(b) }

type findingsTaken struct{ got []finding.Finding }

func (f *findingsTaken) Restore(fs []finding.Finding) { f.got = append(f.got, fs...) }

type lagTaken struct{ got []lag.Sample }

func (l *lagTaken) Add(s []lag.Sample) int { l.got = append(l.got, s...); return 0 }

// stored returns an embedded store (real, on disk) holding, from two
// collectors, an edge bucket each a minute ago and an hour ago, a firing
// and an old resolved finding, and a lag sample.
func stored(t *testing.T, now time.Time) storage.Storage {
	t.Helper()
	st, err := embedded.Open(embedded.Options{Dir: t.TempDir(), Now: func() time.Time { return now }})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	key := func(n string) graph.NodeKey { return graph.NodeKey{Kind: graph.NodeService, Name: n} }
	var buckets []graph.EdgeBucket
	for _, c := range []string{"a", "b"} {
		for _, ago := range []time.Duration{time.Minute, time.Hour} {
			buckets = append(buckets, graph.EdgeBucket{Collector: c, Start: now.Add(-ago).Truncate(5 * time.Second), Width: 5 * time.Second,
				Source: key("checkout"), Target: key("payments"), Kind: graph.EdgeSync, Protocol: graph.ProtocolHTTP, Requests: 10})
		}
	}
	resolvedAt := now.Add(-2 * time.Hour)
	app := st.Appender()
	require.NoError(t, app.AppendEdges(buckets))
	require.NoError(t, app.AppendFindings([]finding.Finding{
		{ID: "firing", Kind: finding.KindRetryStorm, State: finding.StateFiring, Severity: finding.SeverityWarning, StartedAt: now.Add(-5 * time.Minute), LastSeen: now},
		{ID: "old", Kind: finding.KindRetryStorm, State: finding.StateResolved, Severity: finding.SeverityWarning, StartedAt: now.Add(-3 * time.Hour), ResolvedAt: &resolvedAt, LastSeen: resolvedAt},
	}))
	require.NoError(t, app.AppendLag([]lag.Sample{{Time: now.Add(-time.Minute), Key: lag.Key{System: "kafka", Destination: "orders", Group: "g"}, Lag: 5, Produced: lag.Unknown, Consumed: lag.Unknown, Committed: lag.Unknown, End: lag.Unknown}}))
	require.NoError(t, app.Commit(context.Background()))
	return st
}

// TestRestore: after a start, the live components get back the last
// window of this collector's buckets, the findings of the last hour and
// the lag samples asked for.
func TestRestore(t *testing.T) {
	now := time.Now()
	st := stored(t, now)
	e, f, l := &edgesTaken{}, &findingsTaken{}, &lagTaken{}
	require.NoError(t, storage.Restore(context.Background(), st, storage.RestoreOptions{
		Edges: e, Findings: f, Lag: l, Window: 2 * time.Minute, PairTTL: 10 * time.Second, LagSince: 15 * time.Minute,
		Now: func() time.Time { return now },
	}))
	var requests uint64
	for _, b := range e.got {
		require.True(t, b.Start.After(now.Add(-2*time.Minute-10*time.Second)), "only the last window")
		requests += b.Requests
	}
	require.EqualValues(t, 20, requests, "the last window's buckets")
	require.Len(t, f.got, 1)
	require.Equal(t, "firing", f.got[0].ID, "the findings of the last hour")
	require.Len(t, l.got, 1)

	// A collector sharing storage takes back only its own share (the
	// embedded store keeps no collector on buckets: none is its own).
	e = &edgesTaken{}
	require.NoError(t, storage.Restore(context.Background(), st, storage.RestoreOptions{
		Edges: e, Findings: f, Lag: l, Window: 2 * time.Minute, Collector: "a", Now: func() time.Time { return now },
	}))
	require.Empty(t, e.got)
}

// TestMergedAndStoredFindings: a collector judging the merged graph sees
// every collector's share; one that does not judge lists what storage
// holds, by state.
func TestMergedAndStoredFindings(t *testing.T) {
	now := time.Now()
	st := stored(t, now)
	s, err := storage.Merged{Storage: st, Window: 5 * time.Minute}.Snapshot(0)
	require.NoError(t, err)
	require.Len(t, s.Edges, 1)
	require.EqualValues(t, 20, s.Edges[0].Requests, "both collectors' shares merged")

	fs := storage.StoredFindings{Storage: st}
	require.Len(t, fs.Findings(finding.StateFiring), 1)
	require.Empty(t, fs.Findings(finding.StatePending))
	require.NoError(t, st.Close())
	require.Empty(t, fs.Findings(0), "a failed read lists nothing (and is logged)")
}
