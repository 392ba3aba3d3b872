package storage

import (
	"context"
	"fmt"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
)

// History answers "what did the graph look like then" from a Storage: the
// buckets and nodes of every collector in the window, merged.
type History struct {
	Storage Storage
	// MaxWindow bounds the window one query may merge (default 7 days).
	MaxWindow time.Duration
}

// GraphAt returns the graph of the window ending at `at`.
func (h History) GraphAt(ctx context.Context, at time.Time, window time.Duration) (*graph.Snapshot, error) {
	maxWindow := h.MaxWindow
	if maxWindow <= 0 {
		maxWindow = 7 * 24 * time.Hour
	}
	if window <= 0 || window > maxWindow {
		return nil, fmt.Errorf("storage: window %v: must be in (0, %v]", window, maxWindow)
	}
	buckets, err := h.Storage.Edges(ctx, at.Add(-window), at)
	if err != nil {
		return nil, err
	}
	nodes, err := h.Storage.Nodes(ctx, at.Add(-window), at)
	if err != nil {
		return nil, err
	}
	return graph.SnapshotOfNodes(at, window, buckets, nodes, nil), nil
}
