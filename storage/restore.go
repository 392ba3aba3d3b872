package storage

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// EdgeRestorer takes stored edge buckets back into the live window
// (graph.Graph) and returns how many it took.
type EdgeRestorer interface {
	Restore(buckets []graph.EdgeBucket) int
}

// FindingRestorer takes stored findings back (detect.Engine).
type FindingRestorer interface {
	Restore(findings []finding.Finding)
}

// RawBucketReader is a backend that can return its edge buckets as
// written, unmerged (both backends can: ClickHouse and the embedded
// store's minute rollup merge on read).
type RawBucketReader interface {
	Buckets(ctx context.Context, from, to time.Time) ([]graph.EdgeBucket, error)
}

// RestoreOptions say what Restore loads back and into what.
type RestoreOptions struct {
	Edges    EdgeRestorer
	Findings FindingRestorer
	// Lag takes the stored lag samples back (the lag store).
	Lag LagSink
	// Persister, when not nil, is told which buckets are stored already,
	// so that it does not write them twice.
	Persister *Persister
	// Window and PairTTL: the edge buckets of the last Window+PairTTL are
	// loaded back.
	Window, PairTTL time.Duration
	// LagSince is how far back lag samples are loaded.
	LagSince time.Duration
	// Collector, when set, restores only the buckets this collector wrote
	// (shared storage: its live window holds only what it alone
	// received).
	Collector string
	Now       func() time.Time
	Logger    *slog.Logger
}

// Restore loads what st kept of the recent past back into the live
// components after a start: the last window of edge buckets, the findings
// still active or resolved within the hour, and the lag samples of the
// last o.LagSince.
func Restore(ctx context.Context, st Storage, o RestoreOptions) error {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	now := o.Now()
	from := now.Add(-o.Window - o.PairTTL)
	var (
		buckets []graph.EdgeBucket
		err     error
	)
	// Restore wants the stored buckets as written.
	if raw, ok := st.(RawBucketReader); ok {
		buckets, err = raw.Buckets(ctx, from, now)
	} else {
		buckets, err = st.Edges(ctx, from, now)
	}
	if err != nil {
		return fmt.Errorf("restore edges: %w", err)
	}
	if o.Collector != "" {
		buckets = slices.DeleteFunc(buckets, func(b graph.EdgeBucket) bool { return b.Collector != o.Collector })
	}
	n := o.Edges.Restore(buckets)
	var newest time.Time
	for _, b := range buckets {
		if b.Start.After(newest) {
			newest = b.Start
		}
	}
	if o.Persister != nil {
		o.Persister.SkipEdgesThrough(newest)
	}
	findings, err := st.Findings(ctx, now.Add(-time.Hour), now)
	if err != nil {
		return fmt.Errorf("restore findings: %w", err)
	}
	o.Findings.Restore(findings)
	samples, err := st.Lag(ctx, now.Add(-o.LagSince), now)
	if err != nil {
		return fmt.Errorf("restore lag: %w", err)
	}
	rej := o.Lag.Add(samples)
	o.Logger.Info("restored from storage", "edge_buckets", n, "findings", len(findings), "lag_samples", len(samples)-rej)
	return nil
}
