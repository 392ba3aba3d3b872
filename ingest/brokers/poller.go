// Package brokers pulls consumer positions straight from message brokers
// (Kafka admin API, RabbitMQ management API, NATS JetStream /jsz), one file
// per broker, and runs the pollers on their own intervals and timeouts. A
// broker that is down or slow is a logged, counted poll failure and a stale
// mark on its edges, never a blocked pipeline.
package brokers

import (
	"context"
	"net/url"

	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// Poller reads the consumer positions of one broker. Poll must return by
// ctx's deadline; it is called from one goroutine at a time. Errors must not
// contain credentials.
type Poller interface {
	// Kind is the broker kind: "kafka", "rabbitmq" or "nats".
	Kind() string
	// Endpoint is where the poller connects, without credentials.
	Endpoint() string
	Poll(ctx context.Context) ([]lag.Sample, error)
}

// redact returns u without user info, query or fragment, for logs and the
// API; an unparsable u is replaced entirely.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return "(unparsable address)"
	}
	p.User = nil
	p.RawQuery, p.Fragment = "", ""
	return p.String()
}
