package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/seed-a49a8342/cartograph/detect"
	"github.com/seed-a49a8342/cartograph/detect/runner"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/lag"
	"github.com/seed-a49a8342/cartograph/graph/resilience"
	"github.com/seed-a49a8342/cartograph/storage"
)

// mergedSource gives the detectors the graph merged from shared storage
// (every collector's share), with this collector's lag, breaker and
// critical-path signals joined, as of `settle` ago so that every collector's
// flush of that time has landed.
type mergedSource struct {
	st       storage.Storage
	lags     *lag.Store
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
// does not run the detectors itself (--detect off). A failed read is
// logged and lists nothing: the next tick reads again.
type storedFindings struct {
	st     storage.Storage
	logger *slog.Logger
}

func (f storedFindings) Findings(state finding.State) []finding.Finding {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := time.Now()
	all, err := f.st.Findings(ctx, now.Add(-time.Hour), now)
	if err != nil {
		f.logger.Warn("reading findings from storage", "err", err)
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

// runnerDeps are what the tick runner is built from.
type runnerDeps struct {
	Graph     *graph.Graph
	Engine    *detect.Engine
	Storage   storage.Storage
	Lags      *lag.Store
	Breakers  *resilience.Store
	Paths     graph.PathSource
	Receivers []runner.Receiver
}

// newRunner returns the runner of the evaluation tick for --detect: local
// judges this collector's graph; merged judges the graph merged from
// shared storage (and hands that graph on, so the map shows what was
// judged); off judges nothing and hands on the findings in storage.
func newRunner(cfg config, d runnerDeps, logger *slog.Logger, reg prometheus.Registerer) (*runner.Runner, error) {
	o := runner.Options{
		Source: d.Graph, Judge: d.Engine, Findings: d.Engine, Receivers: d.Receivers,
		Interval: cfg.EvalInterval, Logger: logger, Registerer: reg,
	}
	switch cfg.Detect {
	case "merged":
		o.Source = mergedSource{st: d.Storage, lags: d.Lags, breakers: d.Breakers, paths: d.Paths,
			settle: d.Graph.Options().Bucket + cfg.FlushInterval + time.Second, window: d.Graph.Options().Window}
	case "off":
		o.Judge, o.Findings = nil, storedFindings{st: d.Storage, logger: logger}
	}
	return runner.New(o)
}
