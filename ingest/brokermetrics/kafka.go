package brokermetrics

import (
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// kafkaKey identifies one Kafka reading: a group on a topic partition
// (partition -1 for a sum over partitions) at a timestamp.
type kafkaKey struct {
	topic, group string
	partition    int32
	ts           pcommon.Timestamp
}

type kafkaReading struct {
	lag, committed float64
	points         int
}

type topicGroup struct{ topic, group string }

// kafkaPoint reads one point of the kafkametrics receiver, kafka_exporter or
// kafka-lag-exporter. Per-partition lag and committed offset start a
// reading; members (per group) and end offsets (per partition) apply to every
// reading of their group or partition in the request.
func (c *Consumer) kafkaPoint(b *batch, sp spec, pt point) {
	var group, topic string
	if sp.group != "" {
		if group = str(pt.attrs, sp.group); group == "" {
			b.reject(famKafka, "%s: no %q attribute", pt.name, sp.group)
			return
		}
	}
	if sp.kind != kindKafkaMembers {
		if topic = str(pt.attrs, "topic"); topic == "" {
			b.reject(famKafka, "%s: no %q attribute", pt.name, "topic")
			return
		}
	}
	part := int32(-1)
	if sp.kind == kindKafkaLag || sp.kind == kindKafkaCommitted || sp.kind == kindKafkaEnd {
		var ok bool
		if part, ok = partition(pt.attrs); !ok {
			b.reject(famKafka, "%s: no valid %q attribute", pt.name, "partition")
			return
		}
	}
	v, ok := c.cumulative(b, famKafka, pt, seriesKey{a: topic, b: group, part: part})
	if !ok {
		return
	}
	v = level(v)

	switch sp.kind {
	case kindKafkaMembers:
		b.kafkaMemb.put(sideKey{name: group}, pt.ts, v)
	case kindKafkaEnd:
		b.kafkaEnds.put(sideKey{name: topic, part: part}, pt.ts, v)
	case kindKafkaLagSum:
		r, fresh := b.kafkaSums.get(kafkaKey{topic: topic, group: group, partition: -1, ts: pt.ts})
		if fresh {
			r.committed = lag.Unknown
		}
		r.lag = v
		r.points++
	case kindKafkaLag, kindKafkaCommitted:
		r, fresh := b.kafka.get(kafkaKey{topic: topic, group: group, partition: part, ts: pt.ts})
		if fresh {
			r.lag, r.committed = lag.Unknown, lag.Unknown
		}
		if sp.kind == kindKafkaLag {
			r.lag = v
		} else {
			r.committed = v
		}
		r.points++
	}
}

// flushKafka hands the request's Kafka readings to the lag sink. As the
// Kafka poller does, Produced is End and Consumed is Committed (offsets are
// cumulative counts of messages written and consumed), and Lag, when no lag
// metric came, is End - Committed (clamped at 0) if both are known.
//
// A lag summed over partitions (kafka.consumer_group.lag_sum) becomes a
// Partition -1 sample only when the request holds no per-partition reading
// (lag or committed offset) of that group on that topic: the kafkametrics
// receiver sends both, and the lag store, which sums lag over a group's
// partitions, would count the sum twice.
func (c *Consumer) flushKafka(b *batch) {
	if b.kafka.len() == 0 && b.kafkaSums.len() == 0 {
		b.kafkaMemb.settle(b, famKafka)
		b.kafkaEnds.settle(b, famKafka)
		return
	}
	out := b.lagOut[:0]
	points := 0
	for i, k := range b.kafka.keys {
		r := &b.kafka.vals[i]
		s := kafkaSample(k, r, b)
		s.End = b.kafkaEnds.get(sideKey{name: k.topic, part: k.partition}, k.ts)
		s.Produced, s.Consumed = s.End, s.Committed
		if s.Lag < 0 && s.End >= 0 && s.Committed >= 0 {
			s.Lag = max(s.End-s.Committed, 0)
		}
		out = append(out, s)
		points += r.points
	}
	if b.kafkaSums.len() > 0 {
		var perPartition map[topicGroup]struct{}
		if b.kafka.len() > 0 {
			perPartition = make(map[topicGroup]struct{}, b.kafka.len())
			for _, k := range b.kafka.keys {
				perPartition[topicGroup{k.topic, k.group}] = struct{}{}
			}
		}
		for i, k := range b.kafkaSums.keys {
			r := &b.kafkaSums.vals[i]
			if _, dup := perPartition[topicGroup{k.topic, k.group}]; dup {
				b.count(famKafka, outcomeIgnored, r.points)
				continue
			}
			out = append(out, kafkaSample(k, r, b))
			points += r.points
		}
	}
	points += b.kafkaMemb.settle(b, famKafka)
	points += b.kafkaEnds.settle(b, famKafka)
	b.lagOut = out
	c.emitLag(b, famKafka, out, points)
}

func kafkaSample(k kafkaKey, r *kafkaReading, b *batch) lag.Sample {
	return lag.Sample{
		Time: timeOf(k.ts, b.now),
		Key: lag.Key{
			System:      "kafka",
			Destination: k.topic,
			Group:       k.group,
			Partition:   k.partition,
		},
		Lag:       r.lag,
		Committed: r.committed,
		End:       lag.Unknown,
		Consumers: b.kafkaMemb.get(sideKey{name: k.group}, k.ts),
		Produced:  lag.Unknown,
		Consumed:  lag.Unknown,
		Source:    Source,
	}
}

// emitLag hands samples of family f, made of points data points, to the lag
// sink and settles their points.
func (c *Consumer) emitLag(b *batch, f family, samples []lag.Sample, points int) {
	if len(samples) == 0 {
		b.count(f, outcomeIgnored, points)
		return
	}
	b.settle(f, points, len(samples), c.lag.Add(samples), "lag")
}
