// Package metricsink is the OTLP metrics consumer used until broker and
// circuit-breaker metrics are understood: it accepts every request and counts
// the data points it ignores, so that senders (an OpenTelemetry Collector
// with the kafkametrics receiver, say) see success and operators see the
// volume on /metrics.
package metricsink

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Counter counts ignored metric data points. Safe for concurrent use.
type Counter struct {
	ignored prometheus.Counter
}

// New returns a Counter registered on reg (nil: not registered).
func New(reg prometheus.Registerer) *Counter {
	c := &Counter{ignored: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cartograph_ingest_metric_points_ignored_total",
		Help: "OTLP metric data points received and ignored (no consumer understands them yet).",
	})}
	if reg != nil {
		reg.MustRegister(c.ignored)
	}
	return c
}

// ConsumeMetrics counts md's data points; it keeps nothing.
func (c *Counter) ConsumeMetrics(_ context.Context, md pmetric.Metrics) error {
	c.ignored.Add(float64(md.DataPointCount()))
	return nil
}
