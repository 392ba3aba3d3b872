package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a49a8342/cartograph/detect"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/critpath"
)

// sloConfig is the service level objectives judged (detect.SLOBurn):
// optional, nothing changes without --slo-config.
type sloConfig struct {
	SLOConfigFile    string
	SLOMaxObjectives int

	// slo is the --slo-config file, loaded and validated by parseConfig.
	slo *detect.SLOConfig
}

// flags defines the flags of sloConfig on fs.
func (c *sloConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.SLOConfigFile, "slo-config", "", "YAML file of service level objectives per entry point, judged with multi-window multi-burn-rate alerts (slo_burn findings; see docs/configuration.md#service-level-objectives)")
	fs.IntVar(&c.SLOMaxObjectives, "slo-max-objectives", detect.DefaultSLOMaxObjectives, "objectives the --slo-config file may hold: each keeps a ring of request counts over its longest window (at most 4,320 slots)")
}

// Validate checks the flags of sloConfig.
func (c *sloConfig) Validate() error {
	if c.SLOMaxObjectives <= 0 {
		return errors.New("--slo-max-objectives must be positive")
	}
	return nil
}

// load reads the --slo-config file, if any.
func (c *sloConfig) load() error {
	if c.SLOConfigFile == "" {
		return nil
	}
	s, err := detect.LoadSLOConfig(c.SLOConfigFile, c.SLOMaxObjectives)
	if err != nil {
		return err
	}
	c.slo = &s
	return nil
}

// newSLODetector returns the slo_burn detector of the --slo-config
// objectives, fed from g's closed buckets; nil without --slo-config.
func newSLODetector(cfg config, g *graph.Graph, logger *slog.Logger, reg prometheus.Registerer) (*detect.SLOBurn, error) {
	if cfg.slo == nil {
		return nil, nil
	}
	return detect.NewSLOBurn(detect.SLOBurnOptions{Config: *cfg.slo, Buckets: g, Bucket: g.Options().Bucket, Logger: logger, Registerer: reg})
}

// seedSLO fills the objectives' windows from stored history, so that a
// restart does not empty them; a failure leaves them to fill live.
func seedSLO(ctx context.Context, d *detect.SLOBurn, h detect.EdgeHistory, logger *slog.Logger) {
	if d == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	n, err := d.Seed(ctx, h)
	if err != nil {
		logger.Warn("slo: could not seed the burn-rate windows from storage; they fill from now on", "err", err, "buckets", n)
		return
	}
	logger.Info("slo: burn-rate windows seeded from storage", "buckets", n)
}

// pathTee is the graph's path source: the critical-path sampler, and,
// once the SLO detector is built with objectives of entry operations, its
// counts of them (detect.SLOBurn.ObserveSpans), fed the same spans: each
// span once, re-sent ones left out by the graph. Safe for concurrent use,
// as both are.
type pathTee struct {
	*critpath.Sampler
	ops atomic.Pointer[detect.SLOBurn]
}

// ObserveSpans implements graph.PathSource.
func (t *pathTee) ObserveSpans(spans []graph.Span) {
	t.Sampler.ObserveSpans(spans)
	if d := t.ops.Load(); d != nil {
		d.ObserveSpans(spans)
	}
}
