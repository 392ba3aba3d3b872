package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a49a8342/cartograph/detect/runner"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/web/servicegraph"
)

// serviceGraphReceivers returns the tick's receivers that --grafana-service-graph-metrics
// adds: the exporter of the graph's closed buckets as Grafana's service
// graph series, registered on reg (none without the flag).
func serviceGraphReceivers(cfg config, g *graph.Graph, reg prometheus.Registerer) ([]runner.Receiver, error) {
	if !cfg.GrafanaServiceGraph {
		return nil, nil
	}
	sg, err := servicegraph.New(servicegraph.Options{
		Source: g, MaxSeries: servicegraph.MaxSeriesFor(g.Options().MaxEdges), IdleExpiry: g.Options().IdleExpiry,
		Registerer: reg,
	})
	if err != nil {
		return nil, err
	}
	return []runner.Receiver{sg}, nil
}
