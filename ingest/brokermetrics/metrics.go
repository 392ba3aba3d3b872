package brokermetrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the consumer's own Prometheus metrics. Label values come from
// fixed sets; no request data becomes a label value.
type metrics struct {
	points        [numFamilies][numOutcomes]prometheus.Counter
	deltaSeries   prometheus.Gauge
	deltaOverflow prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	pointsVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cartograph_ingest_metric_points_total",
		Help: "OTLP metric data points received by the broker metrics consumer, by family and outcome (accepted, rejected, ignored).",
	}, []string{"family", "outcome"})
	m := &metrics{
		deltaSeries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cartograph_ingest_metric_delta_series",
			Help: "Delta-temporality series whose running totals the broker metrics consumer keeps.",
		}),
		deltaOverflow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartograph_ingest_metric_delta_series_overflow_total",
			Help: "Delta data points rejected because the table of delta series was full.",
		}),
	}
	for f := range numFamilies {
		for o := range numOutcomes {
			m.points[f][o] = pointsVec.WithLabelValues(f.String(), o.String())
		}
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{pointsVec, m.deltaSeries, m.deltaOverflow} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("brokermetrics: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// add adds a request's point counts.
func (m *metrics) add(counts *[numFamilies][numOutcomes]int) {
	for f := range counts {
		for o, n := range counts[f] {
			if n > 0 {
				m.points[f][o].Add(float64(n))
			}
		}
	}
}
