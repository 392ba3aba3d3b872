// Package brokermetrics is the OTLP metrics consumer that understands broker
// and client-resilience metrics: it turns consumer-group lag, offsets and
// queue depths (the OpenTelemetry Collector's kafkametrics and rabbitmq
// receivers, kafka_exporter, kafka-lag-exporter, the RabbitMQ Prometheus
// plugin, prometheus-nats-exporter) into lag.Samples, and circuit-breaker
// states and retry counters (resilience4j, Envoy) into resilience samples.
//
// Every data point is counted once in
// cartograph_ingest_metric_points_total{family, outcome}: accepted (it went
// into a sample a sink took), rejected (malformed, or part of a sample a sink
// refused; reported to the sender as OTLP partial success) or ignored (a
// metric this package does not use, a histogram or summary, a Prometheus
// staleness marker, a reading superseded to avoid double counting).
//
// Readings are merged within one request only: all the points of one
// (destination, group, partition, timestamp) make one Sample. Nothing is
// carried between requests except the running totals of delta sums.
//
// Breaker and retry readings carry the instance they come from
// (service.instance.id, else another resource attribute that tells replicas
// apart), so several replicas of one service are never merged into one
// counter history or one breaker state.
//
// Limitations, from keys that have no room for them: lag.Key has no Kafka
// cluster and no RabbitMQ vhost, so same-named topics of two clusters or
// queues of two vhosts reach the lag sink under one key.
package brokermetrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/seed-a49a8342/cartograph/graph/lag"
	"github.com/seed-a49a8342/cartograph/graph/resilience"
	"github.com/seed-a49a8342/cartograph/ingest"
)

// Source is the Source of every sample this package makes.
const Source = "otlp"

// LagSink receives consumer-position readings. It must not keep the slice
// after Add returns (the consumer reuses it); it may keep the Sample
// values. It returns how many of the samples it refused; 0 means it took
// them all. It may be called from many goroutines at once.
type LagSink interface {
	Add(samples []lag.Sample) (rejected int)
}

// ResilienceSink receives circuit-breaker states and retry counters. Like
// LagSink, it must not keep the slices after a call returns, returns how many
// samples it refused, and may be called from many goroutines at once.
type ResilienceSink interface {
	AddCircuits(samples []resilience.CircuitSample) (rejected int)
	AddRetries(samples []resilience.RetrySample) (rejected int)
}

// Defaults for Options.
const (
	DefaultMaxDeltaSeries = 1 << 14
	DefaultDeltaSeriesTTL = 15 * time.Minute
)

// Options configure a Consumer.
type Options struct {
	// Lag receives Kafka, RabbitMQ and NATS JetStream readings. Nil: those
	// metrics are counted as ignored.
	Lag LagSink
	// Resilience receives circuit-breaker states and retry counters. Nil:
	// those metrics are counted as ignored.
	Resilience ResilienceSink
	// Registerer registers the consumer's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger logs rejected points at debug level; nil discards.
	Logger *slog.Logger
	// Now is the clock, for data points without a timestamp and for the
	// expiry of delta series; nil means time.Now.
	Now func() time.Time
	// MaxDeltaSeries bounds the running totals kept for sums with delta
	// temporality; a point of a new series beyond it is rejected and counted
	// in cartograph_ingest_metric_delta_series_overflow_total. 0 means
	// DefaultMaxDeltaSeries.
	MaxDeltaSeries int
	// DeltaSeriesTTL is how long a delta series' running total is kept after
	// its last point. 0 means DefaultDeltaSeriesTTL.
	DeltaSeriesTTL time.Duration
}

// Errors returned by New and, wrapped, in a rejected point's reason.
var (
	// ErrNoSink means Options has neither a Lag nor a Resilience sink.
	ErrNoSink = errors.New("brokermetrics: no lag or resilience sink")
	// ErrInvalidOptions means a bound in Options is negative.
	ErrInvalidOptions = errors.New("brokermetrics: invalid options")
	// ErrTooManyDeltaSeries means a delta point started a new series while
	// MaxDeltaSeries running totals were kept.
	ErrTooManyDeltaSeries = errors.New("brokermetrics: too many delta series")
	// ErrOutOfOrder means a delta point was not newer than the last point of
	// its series (a duplicate or a late retransmission); adding it would
	// count it twice.
	ErrOutOfOrder = errors.New("brokermetrics: delta point out of order")
)

// Consumer is an ingest.MetricsConsumer for broker and resilience metrics.
// It is safe for concurrent use.
type Consumer struct {
	lag     LagSink
	res     ResilienceSink
	log     *slog.Logger
	now     func() time.Time
	delta   *deltaTable
	metrics *metrics
	batches sync.Pool // *batch
}

var _ ingest.MetricsConsumer = (*Consumer)(nil)

// New returns a Consumer configured by o.
func New(o Options) (*Consumer, error) {
	if o.Lag == nil && o.Resilience == nil {
		return nil, ErrNoSink
	}
	if o.MaxDeltaSeries < 0 || o.DeltaSeriesTTL < 0 {
		return nil, fmt.Errorf("%w: MaxDeltaSeries %d, DeltaSeriesTTL %s", ErrInvalidOptions, o.MaxDeltaSeries, o.DeltaSeriesTTL)
	}
	if o.MaxDeltaSeries == 0 {
		o.MaxDeltaSeries = DefaultMaxDeltaSeries
	}
	if o.DeltaSeriesTTL == 0 {
		o.DeltaSeriesTTL = DefaultDeltaSeriesTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	c := &Consumer{
		lag:     o.Lag,
		res:     o.Resilience,
		log:     o.Logger,
		now:     o.Now,
		metrics: m,
		delta:   newDeltaTable(o.MaxDeltaSeries, o.DeltaSeriesTTL, m.deltaSeries, m.deltaOverflow),
	}
	c.batches.New = func() any { return newBatch() }
	return c, nil
}

// ConsumeMetrics turns the broker and resilience metrics of md into samples
// and hands them to the sinks before it returns; it keeps nothing of md. It
// returns an *ingest.PartialError when data points were malformed or a sink
// refused samples, and nil otherwise (ignored metrics are not errors).
func (c *Consumer) ConsumeMetrics(_ context.Context, md pmetric.Metrics) error {
	b := c.batches.Get().(*batch)
	defer c.putBatch(b)
	b.now = c.now()

	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		rm := rms.At(i)
		b.res = resourceInfo{attrs: rm.Resource().Attributes()}
		sms := rm.ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				c.consumeMetric(b, ms.At(k))
			}
		}
	}
	b.res = resourceInfo{}

	c.flushKafka(b)
	c.flushRabbitMQ(b)
	c.flushJetStream(b)
	c.flushCircuits(b)
	c.flushRetries(b)

	c.metrics.add(&b.counts)
	if b.malformed > 0 {
		c.log.Debug("broker metric data points rejected", "count", b.malformed, "first", b.reason)
	}
	return b.err()
}

// consumeMetric dispatches m on its name before touching its points.
func (c *Consumer) consumeMetric(b *batch, m pmetric.Metric) {
	name := m.Name()
	sp := lookup(name)
	if sp.kind == kindNone || !c.wants(sp.fam) {
		b.count(sp.fam, outcomeIgnored, pointCount(m))
		return
	}
	var pts pmetric.NumberDataPointSlice
	delta := false
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		pts = m.Gauge().DataPoints()
	case pmetric.MetricTypeSum:
		s := m.Sum()
		pts = s.DataPoints()
		delta = s.AggregationTemporality() == pmetric.AggregationTemporalityDelta
	default: // histograms and summaries under these names mean nothing to us
		b.count(sp.fam, outcomeIgnored, pointCount(m))
		return
	}
	for i := range pts.Len() {
		p := pts.At(i)
		if p.Flags().NoRecordedValue() { // a Prometheus staleness marker
			b.count(sp.fam, outcomeIgnored, 1)
			continue
		}
		pt := point{name: name, p: p, attrs: p.Attributes(), ts: p.Timestamp(), delta: delta}
		var ok bool
		if pt.v, ok = numberValue(p); !ok {
			b.reject(sp.fam, "%s: data point without a value", name)
			continue
		}
		switch sp.fam {
		case famKafka:
			c.kafkaPoint(b, sp, pt)
		case famRabbitMQ:
			c.rabbitPoint(b, sp, pt)
		case famJetStream:
			c.jetStreamPoint(b, sp, pt)
		case famCircuit:
			c.circuitPoint(b, sp, pt)
		case famRetry:
			c.retryPoint(b, sp, pt)
		}
	}
}

// wants reports whether a sink takes family f's samples.
func (c *Consumer) wants(f family) bool {
	switch f {
	case famKafka, famRabbitMQ, famJetStream:
		return c.lag != nil
	case famCircuit, famRetry:
		return c.res != nil
	}
	return false
}

// point is one number data point being translated.
type point struct {
	name  string
	p     pmetric.NumberDataPoint
	attrs pcommon.Map
	ts    pcommon.Timestamp
	v     float64
	delta bool
}

// cumulative returns pt's value as a cumulative reading: the value itself
// for gauges and cumulative sums (a counter reset shows as a decrease, which
// the stores treat as a reset), the series' running total for delta sums. On
// failure it rejects the point and returns false.
func (c *Consumer) cumulative(b *batch, f family, pt point, k seriesKey) (float64, bool) {
	if !pt.delta {
		return pt.v, true
	}
	if math.IsNaN(pt.v) || math.IsInf(pt.v, 0) {
		b.reject(f, "%s: non-finite delta", pt.name)
		return 0, false
	}
	k.name = pt.name
	k.instance = b.res.instance()
	v, err := c.delta.add(k, pt.p.StartTimestamp(), pt.ts, pt.v, b.now)
	if err != nil {
		b.reject(f, "%s: %v", pt.name, err)
		return 0, false
	}
	return v, true
}

// numberValue returns p's value as a float64; false when p has none.
func numberValue(p pmetric.NumberDataPoint) (float64, bool) {
	switch p.ValueType() {
	case pmetric.NumberDataPointValueTypeInt:
		return float64(p.IntValue()), true
	case pmetric.NumberDataPointValueTypeDouble:
		return p.DoubleValue(), true
	}
	return 0, false
}

// level turns a reported reading into a Sample field: negative (the -1 that
// kafkametrics and kafka_exporter report for an uncommitted offset),
// infinite and NaN (kafka-lag-exporter's unknown) values become lag.Unknown.
func level(v float64) float64 {
	if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return lag.Unknown
	}
	return v
}

// pointCount returns the number of data points of m, whatever its type.
func pointCount(m pmetric.Metric) int {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		return m.Gauge().DataPoints().Len()
	case pmetric.MetricTypeSum:
		return m.Sum().DataPoints().Len()
	case pmetric.MetricTypeHistogram:
		return m.Histogram().DataPoints().Len()
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().DataPoints().Len()
	case pmetric.MetricTypeSummary:
		return m.Summary().DataPoints().Len()
	}
	return 0
}

// timeOf returns ts as a time, or now when ts is unset.
func timeOf(ts pcommon.Timestamp, now time.Time) time.Time {
	if ts == 0 {
		return now
	}
	return time.Unix(0, int64(ts)).UTC()
}
