package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
)

// tcpProxy forwards a local port to target until closed, so a test can take
// a broker away from the collector without stopping it for everyone.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	return newTCPProxyAt(t, "127.0.0.1:0", target)
}

// newTCPProxyAt is newTCPProxy listening on addr (to bring a closed proxy
// back on the same address).
func newTCPProxyAt(t *testing.T, addr, target string) *tcpProxy {
	t.Helper()
	var (
		ln  net.Listener
		err error
	)
	for range 50 { // the old listener's port may take a moment to free
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, err)
	p := &tcpProxy{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

type wireLag struct {
	Messages     *float64 `json:"messages"`
	Seconds      *float64 `json:"seconds"`
	DrainSeconds *float64 `json:"drain_seconds"`
	Status       string   `json:"status"`
}

func edgeLag(t *testing.T, col started, source, target string) *wireLag {
	t.Helper()
	e := getGraph(t, col).edge(source, target)
	if e == nil || e.Lag == nil {
		return nil
	}
	var l wireLag
	require.NoError(t, json.Unmarshal(*e.Lag, &l))
	return &l
}

// TestE2ERabbitMQLag polls a real RabbitMQ through the collector: a backlog
// shows on the traced queue -> consumer edge with its drain time while a
// consumer works it off, returns to zero, and when the broker becomes
// unreachable the edge is marked stale, poll failures are counted and the
// collector keeps serving.
func TestE2ERabbitMQLag(t *testing.T) {
	rmq := need.RabbitMQ(t)
	conn, err := amqp.DialConfig(rmq.AMQP, amqp.Config{Dial: amqp.DefaultDial(3 * time.Second)})
	require.NoError(t, err, "RabbitMQ at %s", need.EnvRabbitMQAMQP)
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	require.NoError(t, err)
	queue := fmt.Sprintf("e2e-emails-%d", time.Now().UnixNano())
	_, err = ch.QueueDeclare(queue, false, false, false, false, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = ch.QueueDelete(queue, false, false, false) })

	proxy := newTCPProxy(t, strings.TrimPrefix(rmq.Management, "http://"))
	col := startCollectorEnv(t, map[string]string{"CARTOGRAPH_RABBITMQ_PASSWORD": rmq.Password},
		"--rabbitmq-url=http://"+proxy.ln.Addr().String(), "--rabbitmq-user="+rmq.User,
		"--broker-poll-interval=500ms", "--lag-stale-after=3s", "--window=10s", "--eval-interval=1s")

	// The async edge, from traces.
	shop := newTracerProvider(t, grpcExporter(t, col.OTLPGRPC), "shop", "")
	mailer := newTracerProvider(t, grpcExporter(t, col.OTLPGRPC), "mailer", "")
	ctx := context.Background()
	msgAttrs := trace.WithAttributes(attribute.String("messaging.system", "rabbitmq"), attribute.String("messaging.destination.name", queue))
	pctx, p := shop.Tracer("e2e").Start(ctx, "publish "+queue, trace.WithSpanKind(trace.SpanKindProducer), msgAttrs)
	p.End()
	_, c := mailer.Tracer("e2e").Start(trace.ContextWithRemoteSpanContext(ctx, trace.SpanContextFromContext(pctx)), "process "+queue, trace.WithSpanKind(trace.SpanKindConsumer), msgAttrs)
	c.End()
	require.NoError(t, shop.ForceFlush(ctx))
	require.NoError(t, mailer.ForceFlush(ctx))

	// A backlog builds up with nobody consuming.
	for range 400 {
		require.NoError(t, ch.PublishWithContext(ctx, "", queue, false, false, amqp.Publishing{Body: []byte("hi")}))
	}
	src, dst := "queue:rabbitmq/"+queue, "service:mailer"
	require.Eventually(t, func() bool {
		l := edgeLag(t, col, src, dst)
		return l != nil && l.Messages != nil && *l.Messages == 400
	}, 15*time.Second, 200*time.Millisecond, "the backlog never showed on the edge")

	// A consumer works it off at ~100 messages/s: drain time appears, then
	// the lag returns to zero.
	cch, err := conn.Channel()
	require.NoError(t, err)
	require.NoError(t, cch.Qos(1, 0, false))
	deliveries, err := cch.Consume(queue, "e2e", false, false, false, false, nil)
	require.NoError(t, err)
	go func() {
		for d := range deliveries {
			time.Sleep(10 * time.Millisecond)
			_ = d.Ack(false)
		}
	}()
	var drained bool
	require.Eventually(t, func() bool {
		l := edgeLag(t, col, src, dst)
		if l == nil || l.Messages == nil {
			return false
		}
		drained = drained || (l.DrainSeconds != nil && *l.DrainSeconds > 0)
		return *l.Messages == 0
	}, 30*time.Second, 200*time.Millisecond, "the lag never returned to zero")
	require.True(t, drained, "a drain time while the backlog was being worked off")

	// The broker becomes unreachable: polls fail, the lag goes stale (not
	// zero), and the collector keeps answering.
	proxy.close()
	require.Eventually(t, func() bool {
		l := edgeLag(t, col, src, dst)
		return l != nil && l.Status == "stale"
	}, 15*time.Second, 200*time.Millisecond, "the edge was never marked stale")
	code, _, body := httpGet(t, apiURL(col, "/api/v1/brokers"))
	require.Equal(t, http.StatusOK, code)
	var resp struct {
		Brokers []struct {
			Name        string `json:"name"`
			LastError   string `json:"last_error"`
			Failures    int    `json:"failures"`
			LastSuccess string `json:"last_success"`
		} `json:"brokers"`
	}
	require.NoError(t, json.Unmarshal(body, &resp), string(body))
	require.Len(t, resp.Brokers, 1)
	require.NotEmpty(t, resp.Brokers[0].LastError)
	require.Positive(t, resp.Brokers[0].Failures)
	require.NotEmpty(t, resp.Brokers[0].LastSuccess)
	require.NotContains(t, string(body), "guest@", "no credentials in the API")
	code, _, _ = httpGet(t, apiURL(col, "/healthz"))
	require.Equal(t, http.StatusOK, code)
}
