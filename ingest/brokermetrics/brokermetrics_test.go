package brokermetrics_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/seed-a49a8342/cartograph/ingest"
	"github.com/seed-a49a8342/cartograph/ingest/brokermetrics"
)

var t0 = pcommon.NewTimestampFromTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))

// kafkaRequest returns a kafkametrics-style request for one group on topic
// "orders" with the given partitions: lag, committed offset and end offset
// per partition and the group's members, 3*partitions+1 data points.
func kafkaRequest(partitions int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	ms := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics()
	lagPts := gauge(ms, "kafka.consumer_group.lag")
	offPts := gauge(ms, "kafka.consumer_group.offset")
	endPts := gauge(ms, "kafka.partition.current_offset")
	for p := range partitions {
		for _, pt := range []struct {
			s     pmetric.NumberDataPointSlice
			v     int64
			group bool
		}{{lagPts, 5, true}, {offPts, 95, true}, {endPts, 100, false}} {
			dp := pt.s.AppendEmpty()
			dp.SetTimestamp(t0)
			dp.SetIntValue(pt.v)
			a := dp.Attributes()
			if pt.group {
				a.PutStr("group", "billing")
			}
			a.PutStr("topic", "orders")
			a.PutInt("partition", int64(p))
		}
	}
	dp := gauge(ms, "kafka.consumer_group.members").AppendEmpty()
	dp.SetTimestamp(t0)
	dp.SetIntValue(3)
	dp.Attributes().PutStr("group", "billing")
	return md
}

func gauge(ms pmetric.MetricSlice, name string) pmetric.NumberDataPointSlice {
	m := ms.AppendEmpty()
	m.SetName(name)
	return m.SetEmptyGauge().DataPoints()
}

// deltaRequest returns one delta rabbitmq.message.published point for queue.
func deltaRequest(queue string, start, ts pcommon.Timestamp, v int64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("rabbitmq.queue.name", queue)
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("rabbitmq.message.published")
	s := m.SetEmptySum()
	s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	s.SetIsMonotonic(true)
	dp := s.DataPoints().AppendEmpty()
	dp.SetStartTimestamp(start)
	dp.SetTimestamp(ts)
	dp.SetIntValue(v)
	return md
}

func TestNew(t *testing.T) {
	s := &sinks{}
	tests := []struct {
		name    string
		opts    brokermetrics.Options
		wantErr error
	}{
		{name: "no sink", opts: brokermetrics.Options{}, wantErr: brokermetrics.ErrNoSink},
		{name: "lag only", opts: brokermetrics.Options{Lag: s}},
		{name: "resilience only", opts: brokermetrics.Options{Resilience: s}},
		{name: "negative bound", opts: brokermetrics.Options{Lag: s, MaxDeltaSeries: -1}, wantErr: brokermetrics.ErrInvalidOptions},
		{name: "negative ttl", opts: brokermetrics.Options{Lag: s, DeltaSeriesTTL: -time.Second}, wantErr: brokermetrics.ErrInvalidOptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := brokermetrics.New(tt.opts)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				require.Nil(t, c)
				return
			}
			require.NoError(t, err)
			require.NotNil(t, c)
		})
	}

	t.Run("registered twice", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		_, err := brokermetrics.New(brokermetrics.Options{Lag: s, Registerer: reg})
		require.NoError(t, err)
		_, err = brokermetrics.New(brokermetrics.Options{Lag: s, Registerer: reg})
		require.Error(t, err)
	})
}

// TestSinkRejections checks that samples a sink refuses come back as
// rejected data points in an ingest.PartialError, in proportion.
func TestSinkRejections(t *testing.T) {
	tests := []struct {
		name         string
		partitions   int
		rejectLag    int
		wantRejected int64 // data points
	}{
		{name: "all taken", partitions: 4, rejectLag: 0, wantRejected: 0},
		// 13 points in 4 samples; 1 refused: ceil(13/4) points.
		{name: "one of four", partitions: 4, rejectLag: 1, wantRejected: 4},
		{name: "all refused", partitions: 4, rejectLag: 4, wantRejected: 13},
		{name: "sink claims more than it got", partitions: 2, rejectLag: 10, wantRejected: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &sinks{rejectLag: tt.rejectLag}
			c, reg := newConsumer(t, s, brokermetrics.Options{})
			md := kafkaRequest(tt.partitions)
			err := c.ConsumeMetrics(context.Background(), md)
			require.Len(t, s.lag, tt.partitions)
			counts := pointCounts(t, reg)
			if tt.wantRejected == 0 {
				require.NoError(t, err)
				require.Equal(t, map[string]float64{"kafka/accepted": float64(md.DataPointCount())}, counts)
				return
			}
			var pe *ingest.PartialError
			require.ErrorAs(t, err, &pe)
			require.Equal(t, tt.wantRejected, pe.Rejected)
			require.Contains(t, pe.Reason, "lag sink refused")
			require.False(t, ingest.IsPermanent(err))
			require.Equal(t, float64(tt.wantRejected), counts["kafka/rejected"])
			require.Equal(t, float64(md.DataPointCount())-float64(tt.wantRejected), counts["kafka/accepted"])
		})
	}
}

// TestMissingSink checks that a family without a sink is ignored, not
// rejected.
func TestMissingSink(t *testing.T) {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "checkout")
	dp := gauge(rm.ScopeMetrics().AppendEmpty().Metrics(), "resilience4j.circuitbreaker.state").AppendEmpty()
	dp.SetIntValue(1)
	dp.Attributes().PutStr("name", "payments")
	dp.Attributes().PutStr("state", "open")
	kafkaRequest(1).ResourceMetrics().MoveAndAppendTo(md.ResourceMetrics())

	reg := prometheus.NewRegistry()
	s := &sinks{}
	c, err := brokermetrics.New(brokermetrics.Options{Lag: s, Registerer: reg})
	require.NoError(t, err)
	require.NoError(t, c.ConsumeMetrics(context.Background(), md))
	require.Len(t, s.lag, 1)
	require.Empty(t, s.circuits)
	require.Equal(t, map[string]float64{"kafka/accepted": 4, "circuit_breaker/ignored": 1}, pointCounts(t, reg))
}

// TestDeltaSeriesBound checks the cap on delta running totals and their
// expiry.
func TestDeltaSeriesBound(t *testing.T) {
	now := testNow
	s := &sinks{}
	c, reg := newConsumer(t, s, brokermetrics.Options{
		MaxDeltaSeries: 2,
		DeltaSeriesTTL: time.Minute,
		Now:            func() time.Time { return now },
	})
	ctx := context.Background()
	for _, q := range []string{"a", "b"} {
		require.NoError(t, c.ConsumeMetrics(ctx, deltaRequest(q, t0, t0+1, 5)))
	}
	err := c.ConsumeMetrics(ctx, deltaRequest("c", t0, t0+1, 5))
	var pe *ingest.PartialError
	require.ErrorAs(t, err, &pe)
	require.EqualValues(t, 1, pe.Rejected)
	require.Contains(t, pe.Reason, brokermetrics.ErrTooManyDeltaSeries.Error())
	require.Equal(t, 1.0, gaugeValue(t, reg, "cartograph_ingest_metric_delta_series_overflow_total"))
	require.Equal(t, 2.0, gaugeValue(t, reg, "cartograph_ingest_metric_delta_series"))

	// "a" keeps adding up while it is live.
	now = now.Add(30 * time.Second)
	require.NoError(t, c.ConsumeMetrics(ctx, deltaRequest("a", t0+1, t0+2, 5)))
	require.Equal(t, 10.0, s.lag[len(s.lag)-1].Produced)

	// After the TTL "b" is forgotten and "c" fits; "a" was refreshed.
	now = now.Add(45 * time.Second)
	require.NoError(t, c.ConsumeMetrics(ctx, deltaRequest("c", t0, t0+1, 5)))
	require.Equal(t, 5.0, s.lag[len(s.lag)-1].Produced)
	require.NoError(t, c.ConsumeMetrics(ctx, deltaRequest("a", t0+2, t0+3, 1)))
	require.Equal(t, 11.0, s.lag[len(s.lag)-1].Produced)
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestConcurrent runs requests from many goroutines; with -race it checks
// the pooled batches and the delta table.
func TestConcurrent(t *testing.T) {
	s := &sinks{}
	c, reg := newConsumer(t, s, brokermetrics.Options{})
	const workers, perWorker = 8, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				if err := c.ConsumeMetrics(context.Background(), kafkaRequest(3)); err != nil {
					t.Error(err) // not require: FailNow must run on the test's goroutine
				}
				q := fmt.Sprintf("q%d", w)
				ts := t0 + pcommon.Timestamp(i)
				if err := c.ConsumeMetrics(context.Background(), deltaRequest(q, ts, ts+1, 1)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	require.Len(t, s.lag, workers*perWorker*4)
	counts := pointCounts(t, reg)
	require.Equal(t, float64(workers*perWorker*10), counts["kafka/accepted"])
	require.Equal(t, float64(workers*perWorker), counts["rabbitmq/accepted"])
	for _, smp := range s.lag {
		if smp.System == "rabbitmq" {
			require.LessOrEqual(t, smp.Produced, float64(perWorker))
		}
	}
}

// TestErrorClass checks that malformed points are a partial success, never a
// retryable or permanent error.
func TestErrorClass(t *testing.T) {
	md := kafkaRequest(1)
	dp := gauge(md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics(), "kafka.consumer_group.lag").AppendEmpty()
	dp.SetIntValue(1) // no attributes at all
	c, _ := newConsumer(t, &sinks{}, brokermetrics.Options{})
	err := c.ConsumeMetrics(context.Background(), md)
	var pe *ingest.PartialError
	require.ErrorAs(t, err, &pe)
	require.EqualValues(t, 1, pe.Rejected)
	require.False(t, ingest.IsPermanent(err))
	require.False(t, errors.Is(err, ingest.ErrOverloaded) || errors.Is(err, ingest.ErrUnavailable))
}

// FuzzConsumeMetrics feeds OTLP/JSON requests to a consumer: it must not
// panic, and every data point is counted exactly once.
func FuzzConsumeMetrics(f *testing.F) {
	for _, name := range goldenCases(f) {
		for _, md := range readRequests(f, name) {
			b, err := (&pmetric.JSONMarshaler{}).MarshalMetrics(md)
			require.NoError(f, err)
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		md, err := (&pmetric.JSONUnmarshaler{}).UnmarshalMetrics(b)
		if err != nil {
			return
		}
		s := &sinks{}
		c, reg := newConsumer(t, s, brokermetrics.Options{})
		err = c.ConsumeMetrics(context.Background(), md)
		var pe *ingest.PartialError
		if err != nil {
			require.ErrorAs(t, err, &pe)
			require.Positive(t, pe.Rejected)
		}
		sum := 0.0
		for _, v := range pointCounts(t, reg) {
			sum += v
		}
		require.Equal(t, float64(md.DataPointCount()), sum)
		for _, smp := range s.lag {
			require.NoError(t, smp.Validate())
		}
	})
}
