package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a49a8342/cartograph/detect"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/lag"
	"github.com/seed-a49a8342/cartograph/storage"
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
		return nil, errors.New("--storage clickhouse is not in this build yet")
	}
	return nil, fmt.Errorf("unknown storage %q", cfg.Storage)
}

// restore loads what storage kept of the recent past back into the live
// components after a start: the last window of edge buckets, the findings
// still active or recently resolved, and the lag samples the lag store
// retains.
func restore(ctx context.Context, st storage.Storage, g *graph.Graph, engine *detect.Engine, lags *lag.Store, cfg config, logger *slog.Logger) error {
	now := time.Now()
	buckets, err := st.Edges(ctx, now.Add(-cfg.Window-cfg.PairTTL), now)
	if err != nil {
		return fmt.Errorf("restore edges: %w", err)
	}
	n := g.Restore(buckets)
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
