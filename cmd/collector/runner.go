package main

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/seed-a49a8342/cartograph/detect/runner"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/resilience"
	"github.com/seed-a49a8342/cartograph/storage"
)

// runnerDeps are what the tick runner is built from.
type runnerDeps struct {
	Graph     *graph.Graph
	Seat      *seat             // judges or not; the findings handed on
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
// judged) while this collector holds the judge's lease; off judges
// nothing. The seat decides, and hands on the findings in storage while
// this collector does not judge.
func newRunner(cfg config, d runnerDeps, logger *slog.Logger, reg prometheus.Registerer) (*runner.Runner, error) {
	o := runner.Options{
		Source: d.Graph, Judge: d.Seat, Findings: d.Seat, Incidents: d.Incidents, Receivers: d.Receivers,
		Interval: cfg.EvalInterval, Logger: logger, Registerer: reg,
	}
	if cfg.Detect == detectMerged {
		merged := storage.Merged{Storage: d.Storage, Lag: d.Lags, Circuits: d.Breakers, Paths: d.Paths,
			Settle: d.Graph.Options().Bucket + cfg.FlushInterval + time.Second, Window: d.Graph.Options().Window}
		o.Source = judgedSource{seat: d.Seat, merged: merged, local: d.Graph, always: cfg.ServeMerged}
	}
	return runner.New(o)
}

// judgedSource is the tick's graph with --detect merged: the merged graph
// while this collector may judge, its own live graph otherwise, so that
// only the judge reads the merged window from ClickHouse every tick (the
// others' maps show their share, as with --detect off); always
// (--serve-merged): the merged graph whoever judges.
type judgedSource struct {
	seat          *seat
	merged, local runner.Source
	always        bool
}

func (j judgedSource) Snapshot(window time.Duration) (*graph.Snapshot, error) {
	if j.always || j.seat.mayJudge() {
		return j.merged.Snapshot(window)
	}
	return j.local.Snapshot(window)
}
