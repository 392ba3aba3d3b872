package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a49a8342/cartograph/detect"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/lag"
	"github.com/seed-a49a8342/cartograph/storage"
	"github.com/seed-a49a8342/cartograph/storage/clickhouse"
	"github.com/seed-a49a8342/cartograph/storage/embedded"
)

// openStorage opens the backend --storage names.
func openStorage(ctx context.Context, cfg config, logger *slog.Logger, reg prometheus.Registerer) (storage.Storage, error) {
	switch cfg.Storage {
	case "embedded":
		st, err := embedded.Open(embedded.Options{Dir: cfg.DataDir, Retention: cfg.Retention, MaxBytes: cfg.MaxStorageBytes, Logger: logger, Registerer: reg})
		if err == nil {
			logger.Info("embedded storage", "path", st.Path())
		}
		if err != nil {
			return nil, fmt.Errorf("embedded storage in %s: %w", cfg.DataDir, err)
		}
		return st, nil
	case "clickhouse":
		st, err := clickhouse.Open(ctx, clickhouseOptions(cfg, logger, reg))
		if err != nil {
			return nil, fmt.Errorf("clickhouse: %w", err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("unknown storage %q", cfg.Storage)
}

// restore loads what storage kept of the recent past back into the live
// components after a start: the last window of edge buckets, the findings
// still active or recently resolved, and the lag samples the lag store
// retains.
func restore(ctx context.Context, st storage.Storage, g *graph.Graph, engine *detect.Engine, lags *lag.Store, persist *storage.Persister, cfg config, logger *slog.Logger) error {
	now := time.Now()
	from := now.Add(-cfg.Window - cfg.PairTTL)
	var (
		buckets []graph.EdgeBucket
		err     error
	)
	// Restore wants the stored buckets as written; a backend that merges
	// them on read (ClickHouse) offers them raw too.
	if raw, ok := st.(rawBuckets); ok {
		buckets, err = raw.Buckets(ctx, from, now)
	} else {
		buckets, err = st.Edges(ctx, from, now)
	}
	if err != nil {
		return fmt.Errorf("restore edges: %w", err)
	}
	if cfg.Storage == "clickhouse" {
		// Several collectors share ClickHouse: this one restores only its
		// own share, so its live window matches what it alone received.
		id := clickhouseOptions(cfg, logger, nil).Collector
		buckets = slices.DeleteFunc(buckets, func(b graph.EdgeBucket) bool { return b.Collector != id })
	}
	n := g.Restore(buckets)
	var newest time.Time
	for _, b := range buckets {
		if b.Start.After(newest) {
			newest = b.Start
		}
	}
	persist.SkipEdgesThrough(newest)
	findings, err := st.Findings(ctx, now.Add(-time.Hour), now)
	if err != nil {
		return fmt.Errorf("restore findings: %w", err)
	}
	engine.Restore(findings)
	samples, err := st.Lag(ctx, now.Add(-max(15*time.Minute, 2*cfg.LagStaleAfter)), now)
	if err != nil {
		return fmt.Errorf("restore lag: %w", err)
	}
	rej := lags.Add(samples)
	logger.Info("restored from storage", "edge_buckets", n, "findings", len(findings), "lag_samples", len(samples)-rej)
	return nil
}

// clickhouseOptions are the ClickHouse backend's options from the flags.
func clickhouseOptions(cfg config, logger *slog.Logger, reg prometheus.Registerer) clickhouse.Options {
	id := cfg.CollectorID
	if id == "" {
		id, _ = os.Hostname()
	}
	return clickhouse.Options{DSN: cfg.ClickHouseDSN, Collector: id, Retention: cfg.Retention, Logger: logger, Registerer: reg}
}

// rawBuckets is a backend that can return its edge buckets as written.
type rawBuckets interface {
	Buckets(ctx context.Context, from, to time.Time) ([]graph.EdgeBucket, error)
}
