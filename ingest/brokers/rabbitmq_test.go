package brokers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// The RabbitMQ tests run against a real broker: the one cmd/testenv
// starts, or the one CARTOGRAPH_TEST_RABBITMQ_AMQP and _MGMT name
// (rabbitTest). They fail (never skip) when it is not there;
// rabbitTestErr says what is missing and how to get it.
var rabbitTest, rabbitTestErr = need.LookupRabbitMQ()

// rabbitTestBroker fails t unless the management API answers.
func rabbitTestBroker(t *testing.T) {
	t.Helper()
	if rabbitTestErr != nil {
		t.Fatal(rabbitTestErr)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rabbitTest.Management+"/api/overview", nil)
	require.NoError(t, err)
	req.SetBasicAuth(rabbitTest.User, rabbitTest.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("management API at %s: %v", rabbitTest.Management, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("management API at %s: HTTP %d (is the management plugin on?)", rabbitTest.Management, resp.StatusCode)
	}
}

// rabbitTestConn returns an AMQP connection closed at the end of the test.
func rabbitTestConn(t *testing.T) *amqp.Connection {
	t.Helper()
	rabbitTestBroker(t)
	conn, err := amqp.DialConfig(rabbitTest.AMQP, amqp.Config{Dial: amqp.DefaultDial(3 * time.Second)})
	if err != nil {
		t.Fatalf("AMQP (%s): %v", need.EnvRabbitMQAMQP, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// rabbitTestName returns a queue name unique to this run of t.
func rabbitTestName(t *testing.T) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	n := strings.NewReplacer("/", ".", " ", "_").Replace(t.Name())
	return "cartograph-test." + n + "." + hex.EncodeToString(b[:])
}

// rabbitTestDeclare declares a non-durable queue and deletes it when the
// test ends (before the connection closes).
func rabbitTestDeclare(t *testing.T, conn *amqp.Connection, name string) {
	t.Helper()
	ch, err := conn.Channel()
	require.NoError(t, err)
	defer ch.Close()
	_, err = ch.QueueDeclare(name, false, false, false, false, nil)
	require.NoError(t, err)
	t.Cleanup(func() {
		ch, err := conn.Channel()
		if err != nil {
			t.Errorf("delete queue %s: %v", name, err)
			return
		}
		defer ch.Close()
		if _, err := ch.QueueDelete(name, false, false, false); err != nil {
			t.Errorf("delete queue %s: %v", name, err)
		}
	})
}

// rabbitTestPoller returns a poller on the test broker.
func rabbitTestPoller(t *testing.T, o RabbitMQOptions) *RabbitMQ {
	t.Helper()
	if o.URL == "" {
		o.URL = rabbitTest.Management
	}
	if o.Username == "" {
		o.Username, o.Password = rabbitTest.User, rabbitTest.Password
	}
	p, err := NewRabbitMQ(o)
	require.NoError(t, err)
	return p
}

// rabbitTestSampleOf returns the sample of queue name, if any.
func rabbitTestSampleOf(samples []lag.Sample, name string) (lag.Sample, bool) {
	for _, s := range samples {
		if s.Destination == name {
			return s, true
		}
	}
	return lag.Sample{}, false
}

// TestRabbitMQLagGrowsAndDrains publishes faster than a slow consumer
// (prefetch 1, slow acks) and watches the queue's sample: the backlog and
// the publish counter grow with one consumer; once the consumer acks fast
// and publishing stops, the backlog returns to 0. The management API's
// numbers move in steps of collect_statistics_interval and of the
// sample_retention_policies granularity (5 s by default: the test takes
// ~17 s; ~4 s with both at 1 s), hence the polling with deadlines.
func TestRabbitMQLagGrowsAndDrains(t *testing.T) {
	conn := rabbitTestConn(t)
	queue := rabbitTestName(t)
	rabbitTestDeclare(t, conn, queue)

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // runs after cancel, below
	t.Cleanup(cancel)

	// The slow consumer: one unacked message at a time, 150 ms each until
	// fast is set.
	cch, err := conn.Channel()
	require.NoError(t, err)
	require.NoError(t, cch.Qos(1, 0, false))
	deliveries, err := cch.Consume(queue, "cartograph-test", false, false, false, false, nil)
	require.NoError(t, err)
	var fast atomic.Bool
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case d, ok := <-deliveries:
				if !ok {
					return
				}
				if !fast.Load() {
					select {
					case <-ctx.Done():
						return
					case <-time.After(150 * time.Millisecond):
					}
				}
				_ = d.Ack(false)
			}
		}
	})

	// The publisher: ~100 messages/s until stopPublishing.
	pch, err := conn.Channel()
	require.NoError(t, err)
	pubCtx, stopPublishing := context.WithCancel(ctx)
	defer stopPublishing()
	var published atomic.Int64
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-pubCtx.Done():
				return
			case <-tick.C:
			}
			if err := pch.PublishWithContext(pubCtx, "", queue, false, false, amqp.Publishing{Body: []byte("m")}); err != nil {
				return
			}
			published.Add(1)
		}
	})

	var clock atomic.Int64
	p := rabbitTestPoller(t, RabbitMQOptions{
		VHost:  "/",
		Queues: []string{queue},
		Now:    func() time.Time { return time.Unix(1_700_000_000+clock.Add(1), 0) },
	})
	poll := func() (lag.Sample, bool) {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		samples, err := p.Poll(pctx)
		require.NoError(t, err)
		require.LessOrEqual(t, len(samples), 1)
		s, ok := rabbitTestSampleOf(samples, queue)
		if ok {
			require.NoError(t, s.Validate())
		}
		return s, ok
	}

	// Phase 1: the backlog and the publish counter grow, one consumer.
	// The queue depth, the consumer count and the channel counters reach
	// the management database by separate paths, so each is followed on
	// its own.
	start := time.Now()
	var firstLag, firstProduced, last lag.Sample
	var lagGrew, producedGrew, oneConsumer bool
	deadline := time.Now().Add(20 * time.Second)
	for !lagGrew || !producedGrew || !oneConsumer {
		s, ok := poll()
		if ok {
			last = s
			assert.LessOrEqual(t, s.Consumers, 1.0)
			oneConsumer = oneConsumer || s.Consumers == 1
		}
		if ok && s.Lag > 0 {
			if firstLag.Lag <= 0 {
				firstLag = s
			} else if s.Lag > firstLag.Lag && !lagGrew {
				lagGrew = true
				t.Logf("after %v: backlog %v -> %v", time.Since(start).Round(time.Millisecond), firstLag.Lag, s.Lag)
			}
		}
		if ok && s.Produced > 0 {
			assert.LessOrEqual(t, s.Produced, float64(published.Load()))
			if firstProduced.Produced <= 0 {
				firstProduced = s
			} else if s.Produced > firstProduced.Produced && !producedGrew {
				producedGrew = true
				assert.True(t, s.Time.After(firstProduced.Time), "injected clock is used")
				t.Logf("after %v: produced %v -> %v", time.Since(start).Round(time.Millisecond), firstProduced.Produced, s.Produced)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s within the deadline: backlog grew %v, publish counter grew %v, one consumer seen %v; last %+v (published %d)",
				queue, lagGrew, producedGrew, oneConsumer, last, published.Load())
		}
		time.Sleep(200 * time.Millisecond)
	}
	assert.Equal(t, lag.Key{System: "rabbitmq", Destination: queue, Group: "", Partition: -1}, last.Key)
	assert.Equal(t, "rabbitmq", last.Source)
	assert.Equal(t, lag.Unknown, last.Committed)
	assert.Equal(t, lag.Unknown, last.End)
	grown := last

	// Phase 2: stop publishing, ack fast: the backlog drains to 0.
	stopPublishing()
	fast.Store(true)
	deadline = time.Now().Add(12 * time.Second)
	for {
		s, ok := poll()
		if ok && s.Lag == 0 && s.Produced >= grown.Produced && s.Consumed == s.Produced {
			assert.Equal(t, 1.0, s.Consumers)
			assert.Equal(t, float64(published.Load()), s.Produced)
			t.Logf("after %v: drained, produced = consumed = %v", time.Since(start).Round(time.Millisecond), s.Produced)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backlog of %s did not drain within the deadline; last %+v (published %d)", queue, s, published.Load())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestRabbitMQPollErrors checks that failures come back quickly, within
// the context, with a useful error that never carries the credentials.
func TestRabbitMQPollErrors(t *testing.T) {
	rabbitTestBroker(t)
	const secret = "s3cret-Pa55word"

	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		p := rabbitTestPoller(t, RabbitMQOptions{URL: "http://" + addr, Username: "admin-user", Password: secret})
		assert.Equal(t, "http://"+addr, p.Endpoint())
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		t0 := time.Now()
		samples, err := p.Poll(ctx)
		require.Error(t, err)
		assert.Less(t, time.Since(t0), 2*time.Second)
		assert.Nil(t, samples)
		assert.ErrorIs(t, err, syscall.ECONNREFUSED)
		assert.Contains(t, err.Error(), addr)
		assert.NotContains(t, err.Error(), secret)
		assert.NotContains(t, err.Error(), "admin-user")
	})

	t.Run("wrong password", func(t *testing.T) {
		p := rabbitTestPoller(t, RabbitMQOptions{Username: rabbitTest.User, Password: secret})
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err := p.Poll(ctx)
		require.Error(t, err)
		assert.ErrorIs(t, err, ErrRabbitMQAuth)
		assert.Contains(t, err.Error(), "authentication failed")
		assert.NotContains(t, err.Error(), secret)
	})

	t.Run("unknown vhost", func(t *testing.T) {
		p := rabbitTestPoller(t, RabbitMQOptions{VHost: "cartograph-no-such-vhost"})
		_, err := p.Poll(t.Context())
		require.Error(t, err)
		assert.Contains(t, err.Error(), "HTTP 404")
		assert.Contains(t, err.Error(), "/api/queues/cartograph-no-such-vhost")
	})

	t.Run("server never answers", func(t *testing.T) {
		// A listener that accepts and stays silent: only ctx ends Poll.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		hold, release := context.WithCancel(context.Background())
		accepted := make(chan struct{})
		var conns sync.WaitGroup
		go func() {
			defer close(accepted)
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				conns.Go(func() {
					<-hold.Done()
					c.Close()
				})
			}
		}()
		t.Cleanup(func() {
			release()
			ln.Close()
			<-accepted
			conns.Wait()
		})
		p := rabbitTestPoller(t, RabbitMQOptions{URL: "http://" + ln.Addr().String(), Username: "guest", Password: secret})
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		t0 := time.Now()
		_, err = p.Poll(ctx)
		require.Error(t, err)
		assert.Less(t, time.Since(t0), 2*time.Second)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.NotContains(t, err.Error(), secret)
	})

	t.Run("response too large", func(t *testing.T) {
		p := rabbitTestPoller(t, RabbitMQOptions{})
		p.maxBody = 16 // even an empty page is larger
		_, err := p.Poll(t.Context())
		require.Error(t, err)
		assert.ErrorIs(t, err, ErrRabbitMQResponseTooLarge)
	})

	t.Run("invalid options", func(t *testing.T) {
		for _, o := range []RabbitMQOptions{
			{URL: ""},
			{URL: "127.0.0.1:15672"},
			{URL: "ftp://127.0.0.1:15672"},
			{URL: "http://guest:" + secret + "@127.0.0.1:15672"},
			{URL: "http://127.0.0.1:15672/?x=" + secret},
			{URL: "http://127.0.0.1:15672", MaxQueues: -1},
			{URL: "http://127.0.0.1:15672", Queues: []string{"a", ""}},
		} {
			_, err := NewRabbitMQ(o)
			if assert.Error(t, err, "%+v", o) {
				assert.NotContains(t, err.Error(), secret)
			}
		}
	})
}

// TestRabbitMQAllowListAndMaxQueues checks the allow-list (server-side
// filtered and, when too long for a URL, client-side only) and the
// MaxQueues bound.
func TestRabbitMQAllowListAndMaxQueues(t *testing.T) {
	conn := rabbitTestConn(t)
	prefix := rabbitTestName(t)
	a, b, c := prefix+".a", prefix+".b", prefix+".c"
	// Decoys differ from a in case, where a has a regex metacharacter, or
	// by a suffix: none may match an allow-list holding a.
	decoys := []string{strings.ToUpper(a), prefix + "xa", a + ".extra"}
	for _, q := range append([]string{a, b, c}, decoys...) {
		rabbitTestDeclare(t, conn, q)
	}
	long := []string{a, c}
	for i := range 300 {
		long = append(long, fmt.Sprintf("%s.absent-%04d", prefix, i))
	}

	names := func(samples []lag.Sample) []string {
		var out []string
		for _, s := range samples {
			out = append(out, s.Destination)
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		o          RabbitMQOptions
		want       []string
		serverSide bool
	}{
		{"allow-list", RabbitMQOptions{Queues: []string{a, c, a}}, []string{a, c}, true},
		{"allow-list in vhost", RabbitMQOptions{VHost: "/", Queues: []string{c, a}}, []string{a, c}, true},
		{"long allow-list", RabbitMQOptions{Queues: long}, []string{a, c}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := rabbitTestPoller(t, tc.o)
			assert.Equal(t, tc.serverSide, p.filter != "", "server-side filter")
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			samples, err := p.Poll(ctx)
			require.NoError(t, err)
			assert.Equal(t, tc.want, names(samples))
		})
	}

	t.Run("MaxQueues with allow-list", func(t *testing.T) {
		p := rabbitTestPoller(t, RabbitMQOptions{Queues: []string{c, b, a}, MaxQueues: 2})
		samples, err := p.Poll(t.Context())
		require.ErrorIs(t, err, ErrRabbitMQTooManyQueues)
		assert.Contains(t, err.Error(), "3 queues")
		assert.Equal(t, []string{a, b}, names(samples), "the first MaxQueues by name")
	})

	t.Run("MaxQueues without allow-list", func(t *testing.T) {
		// The other tests' queues may exist too: at least 3 are there.
		p := rabbitTestPoller(t, RabbitMQOptions{VHost: "/", MaxQueues: 1})
		samples, err := p.Poll(t.Context())
		require.ErrorIs(t, err, ErrRabbitMQTooManyQueues)
		assert.Len(t, samples, 1)
		assert.Contains(t, err.Error(), "kept the first 1")
	})

	t.Run("all queues", func(t *testing.T) {
		p := rabbitTestPoller(t, RabbitMQOptions{})
		samples, err := p.Poll(t.Context())
		require.NoError(t, err)
		for _, q := range []string{a, b, c} {
			s, ok := rabbitTestSampleOf(samples, q)
			if assert.True(t, ok, q) {
				assert.Equal(t, "rabbitmq", s.Source)
				assert.Equal(t, int32(-1), s.Partition)
			}
		}
	})
}

// TestRabbitMQSampleMapping checks how one management API queue item
// becomes a sample, including the fields a broker leaves out.
func TestRabbitMQSampleMapping(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	u := lag.Unknown
	for _, tc := range []struct {
		name, item string
		want       lag.Sample
	}{
		{
			"full", `{"name":"orders","vhost":"/","type":"classic","messages_ready":7,"messages_unacknowledged":3,"consumers":2,
			  "message_stats":{"publish":100,"ack":85,"deliver_no_ack":5}}`,
			lag.Sample{Lag: 10, Consumers: 2, Produced: 100, Consumed: 90, Source: "rabbitmq"},
		},
		{
			"other vhost, no message stats", `{"name":"orders","vhost":"shop","messages_ready":0,"messages_unacknowledged":0,"consumers":0}`,
			lag.Sample{Lag: 0, Consumers: 0, Produced: u, Consumed: u, Source: "rabbitmq:shop"},
		},
		{
			"statistics not yet collected", `{"name":"orders","vhost":"/"}`,
			lag.Sample{Lag: u, Consumers: u, Produced: u, Consumed: u, Source: "rabbitmq"},
		},
		{
			"published, never consumed", `{"name":"orders","vhost":"/","messages_ready":4,"messages_unacknowledged":0,"consumers":0,"message_stats":{"publish":4}}`,
			lag.Sample{Lag: 4, Consumers: 0, Produced: 4, Consumed: u, Source: "rabbitmq"},
		},
		{
			"stream keeps its messages", `{"name":"orders","vhost":"/","type":"stream","messages_ready":500,"messages_unacknowledged":0,"consumers":1,"message_stats":{"publish":500}}`,
			lag.Sample{Lag: u, Consumers: 1, Produced: 500, Consumed: u, Source: "rabbitmq"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var q rabbitQueue
			require.NoError(t, json.Unmarshal([]byte(tc.item), &q))
			want := tc.want
			want.Time = now
			want.Key = lag.Key{System: "rabbitmq", Destination: "orders", Partition: -1}
			want.Committed, want.End = u, u
			got := rabbitSample(&q, now)
			assert.Equal(t, want, got)
			assert.NoError(t, got.Validate())
		})
	}
}

// TestRabbitMQPollerInterface pins Kind and Endpoint.
func TestRabbitMQPollerInterface(t *testing.T) {
	p, err := NewRabbitMQ(RabbitMQOptions{URL: "https://mq.example:15671/rabbitmq/", Username: "u", Password: "p"})
	require.NoError(t, err)
	var _ Poller = p
	assert.Equal(t, "rabbitmq", p.Kind())
	assert.Equal(t, "https://mq.example:15671/rabbitmq/", p.Endpoint())
	assert.Equal(t, "https://mq.example:15671/rabbitmq", p.base)
	assert.Equal(t, rabbitDefaultMaxQueues, p.o.MaxQueues)
	assert.True(t, errors.Is(fmt.Errorf("x: %w", ErrRabbitMQAuth), ErrRabbitMQAuth))
}
