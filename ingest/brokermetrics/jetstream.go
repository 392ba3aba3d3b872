package brokermetrics

import (
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// jsKey identifies one JetStream consumer reading.
type jsKey struct {
	stream, consumer string
	ts               pcommon.Timestamp
}

type jsReading struct {
	pending, ackPending, ackFloor float64
	points                        int
}

// jetStreamPoint reads one point of prometheus-nats-exporter's -jsz metrics.
// Its labels are stream_name and consumer_name; stream and consumer are
// accepted too. Every server of a cluster reports the streams and consumers
// it holds a replica of, so a point whose is_consumer_leader (or, for stream
// metrics, is_stream_leader) is "false" is a replica's copy and is ignored.
func (c *Consumer) jetStreamPoint(b *batch, sp spec, pt point) {
	stream := attrOr(pt.attrs, "stream_name", "stream")
	if stream == "" {
		b.reject(famJetStream, "%s: no %q attribute", pt.name, "stream_name")
		return
	}
	leader := "is_consumer_leader"
	var consumer string
	if sp.kind == kindJSLastSeq {
		leader = "is_stream_leader"
	} else if consumer = attrOr(pt.attrs, "consumer_name", "consumer"); consumer == "" {
		b.reject(famJetStream, "%s: no %q attribute", pt.name, "consumer_name")
		return
	}
	if str(pt.attrs, leader) == "false" {
		b.count(famJetStream, outcomeIgnored, 1)
		return
	}
	v, ok := c.cumulative(b, famJetStream, pt, seriesKey{a: stream, b: consumer, part: -1})
	if !ok {
		return
	}
	v = level(v)

	if sp.kind == kindJSLastSeq {
		b.jsEnds.put(sideKey{name: stream, part: -1}, pt.ts, v)
		return
	}
	r, fresh := b.js.get(jsKey{stream: stream, consumer: consumer, ts: pt.ts})
	if fresh {
		r.pending, r.ackPending, r.ackFloor = lag.Unknown, lag.Unknown, lag.Unknown
	}
	r.points++
	switch sp.kind {
	case kindJSPending:
		r.pending = v
	case kindJSAckPending:
		r.ackPending = v
	case kindJSAckFloor:
		r.ackFloor = v
	}
}

// flushJetStream hands the request's JetStream readings to the lag sink:
// System "nats", Destination the stream, Group the consumer (durable) name,
// Lag num_pending + num_ack_pending (those reported), Committed (and
// Consumed) the ack floor's stream sequence, End (and Produced) the stream's
// last sequence, as the NATS poller reports them. Lag is not derived from
// End - Committed: for a consumer with a filter subject that also counts
// other subjects' messages.
func (c *Consumer) flushJetStream(b *batch) {
	if b.js.len() == 0 {
		b.jsEnds.settle(b, famJetStream)
		return
	}
	out := b.lagOut[:0]
	points := 0
	for i, k := range b.js.keys {
		r := &b.js.vals[i]
		backlog := lag.Unknown
		for _, v := range [2]float64{r.pending, r.ackPending} {
			if v >= 0 {
				backlog = max(backlog, 0) + v
			}
		}
		s := lag.Sample{
			Time:      timeOf(k.ts, b.now),
			Key:       lag.Key{System: "nats", Destination: k.stream, Group: k.consumer, Partition: -1},
			Lag:       backlog,
			Committed: r.ackFloor,
			End:       b.jsEnds.get(sideKey{name: k.stream, part: -1}, k.ts),
			Consumers: lag.Unknown,
			Source:    Source,
		}
		s.Produced, s.Consumed = s.End, s.Committed
		out = append(out, s)
		points += r.points
	}
	points += b.jsEnds.settle(b, famJetStream)
	b.lagOut = out
	c.emitLag(b, famJetStream, out, points)
}

// attrOr returns the first of keys present in m, as a string.
func attrOr(m pcommon.Map, keys ...string) string {
	for _, k := range keys {
		if s := str(m, k); s != "" {
			return s
		}
	}
	return ""
}
