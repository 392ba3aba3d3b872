// Package storage keeps what cartograph learns beyond the live window: edge
// aggregates and the nodes seen per time bucket, findings with their lifecycle, and broker lag
// samples. Backends (storage/embedded, the default; storage/clickhouse, for
// production and several collectors) implement Storage; the Persister moves
// data from the live components into a backend in batches. Optionally, the
// raw spans of a sample of traces are kept for trace look-ups (SpanSampler,
// SpanAppender, TraceReader; ClickHouse only).
package storage

import (
	"context"
	"errors"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// Appender batches writes. It must be completed with a call to Commit or
// Rollback and must not be reused afterwards; nothing appended is visible
// or durable before Commit returns nil. Not safe for concurrent use.
type Appender interface {
	AppendEdges(buckets []graph.EdgeBucket) error
	// AppendFindings records findings' current state; for each id the
	// latest state written wins.
	AppendFindings(findings []finding.Finding) error
	AppendLag(samples []lag.Sample) error
	// AppendNodes records nodes seen per bucket (graph.Graph.ClosedNodes),
	// so that history keeps nodes no edge of a window touches.
	AppendNodes(nodes []graph.NodeSeen) error
	Commit(ctx context.Context) error
	Rollback() error
}

// Storage is a backend. All methods are safe for concurrent use.
type Storage interface {
	// Appender starts a batch of writes.
	Appender() Appender
	// Edges returns the edge buckets starting in [from, to), of every
	// collector that wrote to the backend.
	Edges(ctx context.Context, from, to time.Time) ([]graph.EdgeBucket, error)
	// Findings returns the latest state of the findings active in
	// [from, to): started before to and not resolved before from.
	Findings(ctx context.Context, from, to time.Time) ([]finding.Finding, error)
	// Lag returns the lag samples taken in [from, to).
	Lag(ctx context.Context, from, to time.Time) ([]lag.Sample, error)
	// Nodes returns the nodes seen in buckets starting in [from, to), of
	// every collector: one row per node and bucket as stored, or (a
	// backend that merges) one per node with Start = from and Width =
	// to-from. graph.SnapshotOfNodes accepts either.
	Nodes(ctx context.Context, from, to time.Time) ([]graph.NodeSeen, error)
	// Ping reports whether the backend can be written to now.
	Ping(ctx context.Context) error
	Close() error
}

// ErrUnavailable is returned (wrapped) when a backend cannot be reached.
var ErrUnavailable = errors.New("storage unavailable")
