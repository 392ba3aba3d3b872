package brokermetrics

import (
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// defaultVhost is RabbitMQ's default virtual host, assumed when none is named.
const defaultVhost = "/"

// rabbitKey identifies one RabbitMQ queue reading. The vhost keeps queues of
// two vhosts apart while merging, though the sample names the queue alone.
type rabbitKey struct {
	vhost, queue string
	ts           pcommon.Timestamp
}

type rabbitReading struct {
	ready, unacked                float64
	consumers, produced, consumed float64
	points                        int
}

// rabbitPoint reads one point of the rabbitmq receiver (queue and vhost in
// the resource) or of the Prometheus forms (labels queue and vhost).
func (c *Consumer) rabbitPoint(b *batch, sp spec, pt point) {
	var queue, vhost string
	if sp.prom {
		queue, vhost = str(pt.attrs, "queue"), str(pt.attrs, "vhost")
	} else {
		queue, vhost = str(b.res.attrs, "rabbitmq.queue.name"), str(b.res.attrs, "rabbitmq.vhost.name")
	}
	if queue == "" {
		b.reject(famRabbitMQ, "%s: no queue name", pt.name)
		return
	}
	if vhost == "" {
		vhost = defaultVhost
	}
	unacked := sp.kind == kindRabbitUnacked
	if sp.kind == kindRabbitState {
		switch st := str(pt.attrs, "state"); st {
		case "ready":
		case "unacknowledged":
			unacked = true
		default:
			b.reject(famRabbitMQ, "%s: unknown state %q", pt.name, st)
			return
		}
	}
	sk := seriesKey{a: vhost, b: queue, part: -1}
	if unacked {
		sk.c = "unacknowledged"
	}
	v, ok := c.cumulative(b, famRabbitMQ, pt, sk)
	if !ok {
		return
	}
	v = level(v)

	r, fresh := b.rabbit.get(rabbitKey{vhost: vhost, queue: queue, ts: pt.ts})
	if fresh {
		r.ready, r.unacked = lag.Unknown, lag.Unknown
		r.consumers, r.produced, r.consumed = lag.Unknown, lag.Unknown, lag.Unknown
	}
	r.points++
	switch sp.kind {
	case kindRabbitState, kindRabbitReady, kindRabbitUnacked:
		if unacked {
			r.unacked = v
		} else {
			r.ready = v
		}
	case kindRabbitConsumers:
		r.consumers = v
	case kindRabbitPublished:
		r.produced = v
	case kindRabbitAcked:
		r.consumed = v
	}
}

// flushRabbitMQ hands the request's queue readings to the lag sink.
//
// Destination is the plain queue name, as traces name a queue in
// messaging.destination.name, whatever the vhost. Lag is ready +
// unacknowledged messages, the sum of the states reported and known.
func (c *Consumer) flushRabbitMQ(b *batch) {
	if b.rabbit.len() == 0 {
		return
	}
	out := b.lagOut[:0]
	points := 0
	for i, k := range b.rabbit.keys {
		r := &b.rabbit.vals[i]
		backlog := lag.Unknown
		for _, v := range [2]float64{r.ready, r.unacked} {
			if v >= 0 {
				backlog = max(backlog, 0) + v
			}
		}
		out = append(out, lag.Sample{
			Time:      timeOf(k.ts, b.now),
			Key:       lag.Key{System: "rabbitmq", Destination: k.queue, Partition: -1},
			Lag:       backlog,
			Committed: lag.Unknown,
			End:       lag.Unknown,
			Consumers: r.consumers,
			Produced:  r.produced,
			Consumed:  r.consumed,
			Source:    Source,
		})
		points += r.points
	}
	b.lagOut = out
	c.emitLag(b, famRabbitMQ, out, points)
}
