package scenario

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// nominalRate is the message rate per destination the broker readings
// model, in messages per second.
const nominalRate = 100

// lagGrowth is how fast the lag of the group behind grows under
// FaultConsumerLag, in messages per second.
const lagGrowth = 50

// Metrics returns the broker readings at now, as the OpenTelemetry
// Collector's kafkametrics receiver (Kafka topics: kafka.consumer_group.lag,
// .offset, .members, kafka.partition.current_offset, one partition) and
// rabbitmq receiver (RabbitMQ queues: rabbitmq.message.current by state,
// rabbitmq.consumer.count) would send them. NATS destinations have no
// readings (their exporters speak Prometheus, not OTLP). Offsets advance
// at a nominal 100 messages/s per destination from the first call; lags
// stay within a few messages and return to zero every other second,
// except that of the group FaultConsumerLag puts behind, which grows by
// 50 messages/s from the fault's onset.
// Successive calls should pass increasing times.
func (g *Generator) Metrics(now time.Time) pmetric.Metrics {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.epoch.IsZero() {
		g.epoch = now
	}
	ts := pcommon.NewTimestampFromTime(now)
	elapsed := now.Sub(g.epoch).Seconds()
	end := int64(1_000_000 + elapsed*nominalRate)
	md := pmetric.NewMetrics()

	var kafka pmetric.MetricSlice
	gauge := func(ms pmetric.MetricSlice, name, unit string, v int64, attrs ...string) {
		m := ms.AppendEmpty()
		m.SetName(name)
		m.SetUnit(unit)
		dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
		dp.SetTimestamp(ts)
		dp.SetIntValue(v)
		for i := 0; i+1 < len(attrs); i += 2 {
			dp.Attributes().PutStr(attrs[i], attrs[i+1])
		}
	}
	for d := range g.topo.dests {
		dest := &g.topo.dests[d]
		switch dest.system {
		case "kafka":
			if kafka == (pmetric.MetricSlice{}) {
				rm := md.ResourceMetrics().AppendEmpty()
				sm := rm.ScopeMetrics().AppendEmpty()
				sm.Scope().SetName("github.com/open-telemetry/opentelemetry-collector-contrib/receiver/kafkametricsreceiver")
				kafka = sm.Metrics()
			}
			gauge(kafka, "kafka.partition.current_offset", "{message}", end, "topic", dest.name)
			kafka.At(kafka.Len()-1).Gauge().DataPoints().At(0).Attributes().PutInt("partition", 0)
			for gi, grp := range dest.groups {
				lagMsgs := g.lagOf(int32(d), int32(gi), now)
				for _, m := range []struct {
					name string
					v    int64
				}{{"kafka.consumer_group.lag", lagMsgs}, {"kafka.consumer_group.offset", end - lagMsgs}} {
					gauge(kafka, m.name, "{message}", m.v, "group", grp.name, "topic", dest.name)
					kafka.At(kafka.Len()-1).Gauge().DataPoints().At(0).Attributes().PutInt("partition", 0)
				}
				gauge(kafka, "kafka.consumer_group.members", "{member}", 1, "group", grp.name)
			}
		case "rabbitmq":
			rm := md.ResourceMetrics().AppendEmpty()
			ra := rm.Resource().Attributes()
			ra.PutStr("rabbitmq.queue.name", dest.name)
			ra.PutStr("rabbitmq.vhost.name", "/")
			ra.PutStr("rabbitmq.node.name", "rabbit@rabbitmq-1")
			sm := rm.ScopeMetrics().AppendEmpty()
			sm.Scope().SetName("github.com/open-telemetry/opentelemetry-collector-contrib/receiver/rabbitmqreceiver")
			ms := sm.Metrics()
			// The backlog (ready + unacknowledged) is the group's lag.
			backlog := g.lagOf(int32(d), 0, now)
			unacked := min(backlog, 1)
			gauge(ms, "rabbitmq.message.current", "{messages}", backlog-unacked, "state", "ready")
			gauge(ms, "rabbitmq.message.current", "{messages}", unacked, "state", "unacknowledged")
			gauge(ms, "rabbitmq.consumer.count", "{consumers}", int64(len(dest.groups)))
		}
	}
	return md
}

// lagOf is the lag of group gi of destination d at now. Caller holds mu.
func (g *Generator) lagOf(d, gi int32, now time.Time) int64 {
	if d == lagDest && gi == lagGroup && g.on(FaultConsumerLag, now) {
		return int64(now.Sub(g.onset[FaultConsumerLag]).Seconds()*lagGrowth) + 5
	}
	// A healthy group keeps up: a few messages behind, varying from one
	// reading to the next (deterministically), and caught up (zero) every
	// other second, as a consumer committing often is. Random small lags
	// that never returned to zero would, over a short window (the demo's),
	// now and then rise for long enough to look like a group falling
	// behind.
	sec := uint64(now.Unix())
	if sec%2 == 0 {
		return 0
	}
	return int64(mix64(sec^uint64(d)<<32^uint64(gi)) % 4)
}
