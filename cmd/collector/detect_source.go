package main

import (
	"context"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/resilience"
	"github.com/seed-a49a8342/cartograph/storage"
)

// mergedSource gives the detectors the graph merged from shared storage
// (every collector's share), with this collector's lag, breaker and
// critical-path signals joined, as of `settle` ago so that every collector's
// flush of that time has landed.
type mergedSource struct {
	st       storage.Storage
	lags     graph.LagSource // the judged lag (detect.LagJudge)
	breakers *resilience.Store
	paths    graph.PathSource
	settle   time.Duration
	window   time.Duration // used when asked for window 0
}

func (m mergedSource) Snapshot(window time.Duration) (*graph.Snapshot, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if window <= 0 {
		window = m.window
	}
	at := time.Now().Add(-m.settle)
	buckets, err := m.st.Edges(ctx, at.Add(-window), at)
	if err != nil {
		return nil, err
	}
	nodes, err := m.st.Nodes(ctx, at.Add(-window), at)
	if err != nil {
		return nil, err
	}
	s := graph.SnapshotOfNodes(at, window, buckets, nodes, m.lags.Evaluate(window))
	s.Circuits = m.breakers.Circuits()
	s.RetryRates = m.breakers.RetryRates(window)
	s.Paths = m.paths.Paths(window)
	return s, nil
}

// storedFindings serves findings from shared storage, for a collector that
// does not run the detectors itself (--detect off).
type storedFindings struct{ st storage.Storage }

func (f storedFindings) Findings(state finding.State) []finding.Finding {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := time.Now()
	all, err := f.st.Findings(ctx, now.Add(-time.Hour), now)
	if err != nil {
		return nil
	}
	out := all[:0]
	for _, x := range all {
		if state == 0 || x.State == state {
			out = append(out, x)
		}
	}
	return out
}
