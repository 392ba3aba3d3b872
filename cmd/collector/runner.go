package main

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/seed-a49a8342/cartograph/detect"
	"github.com/seed-a49a8342/cartograph/detect/runner"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/resilience"
	"github.com/seed-a49a8342/cartograph/storage"
)

// runnerDeps are what the tick runner is built from.
type runnerDeps struct {
	Graph     *graph.Graph
	Engine    *detect.Engine
	Incidents runner.Correlator // detect/incident: groups each tick's findings
	Storage   storage.Storage
	Lags      graph.LagSource // the judged lag (detect.LagJudge)
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
		Source: d.Graph, Judge: d.Engine, Findings: d.Engine, Incidents: d.Incidents, Receivers: d.Receivers,
		Interval: cfg.EvalInterval, Logger: logger, Registerer: reg,
	}
	switch cfg.Detect {
	case detectMerged:
		o.Source = storage.Merged{Storage: d.Storage, Lag: d.Lags, Circuits: d.Breakers, Paths: d.Paths,
			Settle: d.Graph.Options().Bucket + cfg.FlushInterval + time.Second, Window: d.Graph.Options().Window}
	case detectOff:
		o.Judge, o.Findings = nil, storage.StoredFindings{Storage: d.Storage, Logger: logger}
	}
	return runner.New(o)
}
