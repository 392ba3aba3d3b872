package storage

import (
	"context"
	"log/slog"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// Merged is the graph merged from shared storage (every collector's
// share), with this process's lag, circuit-breaker and critical-path
// signals joined, as of Settle ago so that every collector's flush of that
// time has landed. It is what a collector run with --detect merged judges.
// Safe for concurrent use if its sources are.
type Merged struct {
	Storage Storage
	// Lag, Circuits and Paths are joined when not nil.
	Lag      graph.LagSource
	Circuits graph.CircuitSource
	Paths    graph.PathSource
	// Settle is how far behind now the merged graph ends: a bucket's width
	// plus the flush interval, and a margin.
	Settle time.Duration
	// Window is the window of Snapshot(0).
	Window time.Duration
	// Timeout bounds one read of storage (default 30s).
	Timeout time.Duration
}

// Snapshot returns the merged graph over window (0: m.Window) ending
// Settle ago.
func (m Merged) Snapshot(window time.Duration) (*graph.Snapshot, error) {
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if window <= 0 {
		window = m.Window
	}
	at := time.Now().Add(-m.Settle)
	buckets, err := m.Storage.Edges(ctx, at.Add(-window), at)
	if err != nil {
		return nil, err
	}
	nodes, err := m.Storage.Nodes(ctx, at.Add(-window), at)
	if err != nil {
		return nil, err
	}
	var s *graph.Snapshot
	if m.Lag != nil {
		s = graph.SnapshotOfNodes(at, window, buckets, nodes, m.Lag.Evaluate(window))
	} else {
		s = graph.SnapshotOfNodes(at, window, buckets, nodes, nil)
	}
	if m.Circuits != nil {
		s.Circuits = m.Circuits.Circuits()
		s.RetryRates = m.Circuits.RetryRates(window)
	}
	if m.Paths != nil {
		s.Paths = m.Paths.Paths(window)
	}
	return s, nil
}

// StoredFindings lists the findings in shared storage, for a collector
// that does not judge itself (--detect off). A failed read is logged and
// lists nothing; the next call reads again. Safe for concurrent use.
type StoredFindings struct {
	Storage Storage
	// Since is how far back findings are listed (default 1h).
	Since  time.Duration
	Logger *slog.Logger
}

// Findings returns the stored findings in state (0: every state).
func (f StoredFindings) Findings(state finding.State) []finding.Finding {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	since := f.Since
	if since <= 0 {
		since = time.Hour
	}
	now := time.Now()
	all, err := f.Storage.Findings(ctx, now.Add(-since), now)
	if err != nil {
		if f.Logger != nil {
			f.Logger.Warn("reading findings from storage", "err", err)
		}
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
