package storage

import (
	"context"
	"errors"
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

// DefaultMaxHistoryWindow is History's MaxWindow when none is set.
const DefaultMaxHistoryWindow = 7 * 24 * time.Hour

// GraphAt returns the graph of the window ending at `at`. A window outside
// (0, MaxWindow] is refused with an error wrapping graph.ErrWindowTooLong
// (a client's mistake, not the storage's failure).
func (h History) GraphAt(ctx context.Context, at time.Time, window time.Duration) (*graph.Snapshot, error) {
	maxWindow := h.MaxWindow
	if maxWindow <= 0 {
		maxWindow = DefaultMaxHistoryWindow
	}
	if window <= 0 || window > maxWindow {
		return nil, fmt.Errorf("storage: window %v: must be in (0, %v]: %w", window, maxWindow, graph.ErrWindowTooLong)
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

// beginner is a Storage that can tell where its history begins (both
// backends are).
type beginner interface {
	Begins(ctx context.Context) (time.Time, bool, error)
}

// Begins returns when the oldest edge or node row stored starts: no graph
// before it can be read. ok is false when nothing is stored. A backend that
// cannot tell answers errors.ErrUnsupported.
func (h History) Begins(ctx context.Context) (begins time.Time, ok bool, err error) {
	b, can := h.Storage.(beginner)
	if !can {
		return time.Time{}, false, fmt.Errorf("storage: where history begins: %w", errors.ErrUnsupported)
	}
	return b.Begins(ctx)
}
