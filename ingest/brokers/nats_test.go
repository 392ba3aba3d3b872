package brokers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// natsTestServer is a nats-server process of one test, killed in its
// cleanup.
type natsTestServer struct {
	cmd       *exec.Cmd
	exited    chan struct{}
	ClientURL string // nats://127.0.0.1:port
	MonURL    string // http://127.0.0.1:port
	logPath   string
}

// natsTestServerOptions: JetStream on or off, and an optional config file
// body (accounts) added to the command-line flags.
type natsTestServerOptions struct {
	NoJetStream bool
	Config      string
}

// natsServerBinary is the nats-server the tests start (cmd/testenv's, or
// CARTOGRAPH_TEST_NATS_SERVER).
func natsServerBinary(t *testing.T) string {
	t.Helper()
	return need.NATSServer(t)
}

func natsFreePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// natsStartServer starts nats-server on free ports with monitoring and
// waits for /healthz?js-enabled-only=true.
func natsStartServer(t *testing.T, o natsTestServerOptions) *natsTestServer {
	t.Helper()
	bin := natsServerBinary(t)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a free port can be taken between Listen and exec
		s, err := natsTryStartServer(t, bin, o)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("start nats-server: %v", lastErr)
	return nil
}

func natsTryStartServer(t *testing.T, bin string, o natsTestServerOptions) (*natsTestServer, error) {
	dir := t.TempDir()
	ports := natsFreePorts(t, 2)
	args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(ports[0]), "-m", strconv.Itoa(ports[1])}
	if !o.NoJetStream {
		args = append(args, "-js", "-sd", filepath.Join(dir, "js"))
	}
	if o.Config != "" {
		conf := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(conf, []byte(o.Config), 0o600); err != nil {
			return nil, err
		}
		args = append(args, "-c", conf)
	}
	logPath := filepath.Join(dir, "nats.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &natsTestServer{
		cmd: cmd, exited: make(chan struct{}), logPath: logPath,
		ClientURL: fmt.Sprintf("nats://127.0.0.1:%d", ports[0]),
		MonURL:    fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
	}
	go func() { _ = cmd.Wait(); close(s.exited) }()
	t.Cleanup(s.Kill)

	health := s.MonURL + "/healthz"
	if !o.NoJetStream {
		health += "?js-enabled-only=true"
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("nats-server exited: %s", s.log())
		default:
		}
		if resp, err := http.Get(health); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Kill()
	return nil, fmt.Errorf("nats-server not healthy within 5s: %s", s.log())
}

// Kill ends the server (also a stopped one) and waits for it to exit.
func (s *natsTestServer) Kill() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
}

func (s *natsTestServer) log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// natsConnect connects a client and a JetStream context, closed in cleanup.
func natsConnect(t *testing.T, s *natsTestServer, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL, append(opts, nats.MaxReconnects(0))...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return js
}

func natsPublishN(t *testing.T, ctx context.Context, js jetstream.JetStream, subject string, n int) {
	t.Helper()
	for i := range n {
		_, err := js.Publish(ctx, subject, []byte(strconv.Itoa(i)))
		require.NoError(t, err)
	}
}

// natsFetch fetches n messages (all must arrive) and acks the first ack of
// them in order, waiting for the server to confirm each ack.
func natsFetch(t *testing.T, ctx context.Context, c jetstream.Consumer, n, ack int) []jetstream.Msg {
	t.Helper()
	batch, err := c.Fetch(n, jetstream.FetchMaxWait(3*time.Second))
	require.NoError(t, err)
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	require.NoError(t, batch.Error())
	require.Len(t, msgs, n)
	for _, m := range msgs[:ack] {
		require.NoError(t, m.DoubleAck(ctx))
	}
	return msgs
}

func natsNewPoller(t *testing.T, o NATSOptions) *NATS {
	t.Helper()
	p, err := NewNATS(o)
	require.NoError(t, err)
	return p
}

func natsPollCtx(t *testing.T, p *NATS) ([]lag.Sample, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	return p.Poll(ctx)
}

// natsFindSample returns the sample of stream/consumer.
func natsFindSample(t require.TestingT, samples []lag.Sample, stream, consumer string) lag.Sample {
	for _, s := range samples {
		if s.Destination == stream && s.Group == consumer {
			return s
		}
	}
	require.Failf(t, "no sample", "stream %s consumer %s not in %+v", stream, consumer, samples)
	return lag.Sample{}
}

var natsTestNow = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func TestNATSPollLagAckedAndCleared(t *testing.T) {
	srv := natsStartServer(t, natsTestServerOptions{})
	js := natsConnect(t, srv)
	ctx := t.Context()

	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}})
	require.NoError(t, err)
	billing, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "billing", AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	_, err = stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "audit", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "orders.paid"})
	require.NoError(t, err)
	_, err = stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "mailer", AckPolicy: jetstream.AckExplicitPolicy, DeliverSubject: "deliver.mailer"})
	require.NoError(t, err)

	const n, fetched, acked = 20, 8, 5
	natsPublishN(t, ctx, js, "orders.created", n)
	msgs := natsFetch(t, ctx, billing, fetched, acked)

	p := natsNewPoller(t, NATSOptions{URL: srv.MonURL, Now: func() time.Time { return natsTestNow }})
	require.Equal(t, "nats", p.Kind())
	require.Equal(t, srv.MonURL+"/jsz", p.Endpoint())
	samples, err := natsPollCtx(t, p)
	require.NoError(t, err)
	require.Len(t, samples, 3)
	for _, s := range samples {
		require.NoError(t, s.Validate())
	}
	// Sorted by consumer name within the stream.
	assert.Equal(t, []string{"audit", "billing", "mailer"}, []string{samples[0].Group, samples[1].Group, samples[2].Group})

	b := natsFindSample(t, samples, "ORDERS", "billing")
	assert.Equal(t, lag.Sample{
		Time:      natsTestNow,
		Key:       lag.Key{System: "nats", Destination: "ORDERS", Group: "billing", Partition: -1},
		Lag:       n - acked, // 12 pending + 3 delivered, unacked
		Committed: acked,
		End:       n,
		Consumers: lag.Unknown, // a pull consumer with no waiting request
		Produced:  n,
		Consumed:  acked,
		Source:    "nats",
		Subjects:  []string{"orders.>"}, // no filter: every subject of the stream
	}, b)

	a := natsFindSample(t, samples, "ORDERS", "audit")
	assert.Equal(t, 0.0, a.Lag, "no orders.paid message: nothing pending for the filtered consumer")
	assert.Equal(t, float64(n), a.End)

	m := natsFindSample(t, samples, "ORDERS", "mailer")
	assert.Equal(t, 0.0, m.Consumers, "push consumer without a subscriber")

	// Subjects for the trace join.
	assert.Equal(t, []NATSStream{{
		Name:            "ORDERS",
		Subjects:        []string{"orders.>"},
		ConsumerFilters: map[string][]string{"audit": {"orders.paid"}},
	}}, p.Streams())

	// A subscriber on the push consumer's deliver subject, and a waiting
	// pull request, each count as one consumer.
	nc, err := nats.Connect(srv.ClientURL)
	require.NoError(t, err)
	defer nc.Close()
	sub, err := nc.SubscribeSync("deliver.mailer")
	require.NoError(t, err)
	defer sub.Unsubscribe()
	require.NoError(t, nc.Flush())
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		s, err := natsPollCtx(t, p)
		require.NoError(c, err)
		assert.Equal(c, 1.0, natsFindSample(c, s, "ORDERS", "mailer").Consumers)
	}, 3*time.Second, 50*time.Millisecond)

	audit, err := js.Consumer(ctx, "ORDERS", "audit")
	require.NoError(t, err)
	_, err = audit.Fetch(1, jetstream.FetchMaxWait(time.Second))
	require.NoError(t, err)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		s, err := natsPollCtx(t, p)
		require.NoError(c, err)
		assert.Equal(c, 1.0, natsFindSample(c, s, "ORDERS", "audit").Consumers)
	}, 2*time.Second, 50*time.Millisecond)

	// Ack the rest: no lag.
	for _, m := range msgs[acked:] {
		require.NoError(t, m.DoubleAck(ctx))
	}
	natsFetch(t, ctx, billing, n-fetched, n-fetched)
	samples, err = natsPollCtx(t, p)
	require.NoError(t, err)
	b = natsFindSample(t, samples, "ORDERS", "billing")
	assert.Equal(t, 0.0, b.Lag)
	assert.Equal(t, float64(n), b.Committed)
	assert.Equal(t, float64(n), b.End)
	assert.Equal(t, float64(n), b.Consumed)
}

func TestNATSPollSlowConsumerLagGrows(t *testing.T) {
	srv := natsStartServer(t, natsTestServerOptions{})
	js := natsConnect(t, srv)
	ctx := t.Context()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.*"}})
	require.NoError(t, err)
	slow, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "slow", AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)

	p := natsNewPoller(t, NATSOptions{URL: srv.MonURL})
	const rounds, produce, consume = 4, 30, 10
	var prev lag.Sample
	for r := 1; r <= rounds; r++ {
		natsPublishN(t, ctx, js, "events.click", produce)
		natsFetch(t, ctx, slow, consume, consume)
		samples, err := natsPollCtx(t, p)
		require.NoError(t, err)
		s := natsFindSample(t, samples, "EVENTS", "slow")
		assert.Equal(t, float64(r*(produce-consume)), s.Lag, "round %d", r)
		assert.Equal(t, float64(r*produce), s.Produced, "round %d", r)
		assert.Equal(t, float64(r*consume), s.Consumed, "round %d", r)
		if r > 1 {
			assert.Greater(t, s.Lag, prev.Lag, "lag grows: round %d", r)
			assert.Greater(t, s.Produced-prev.Produced, s.Consumed-prev.Consumed, "produced faster than consumed: round %d", r)
			assert.False(t, s.Time.Before(prev.Time))
		}
		prev = s
	}
}

func TestNATSPollServerStoppedOrKilled(t *testing.T) {
	srv := natsStartServer(t, natsTestServerOptions{})
	js := natsConnect(t, srv)
	ctx := t.Context()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "JOBS", Subjects: []string{"jobs.>"}})
	require.NoError(t, err)
	_, err = stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "worker", AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)

	p := natsNewPoller(t, NATSOptions{URL: srv.MonURL})
	samples, err := natsPollCtx(t, p)
	require.NoError(t, err)
	require.Len(t, samples, 1)

	// A hung server: the kernel still accepts connections, nobody answers.
	require.NoError(t, srv.cmd.Process.Signal(syscall.SIGSTOP))
	waitStopped(t, srv.cmd.Process.Pid)
	pollBy := func(d time.Duration) (time.Duration, []lag.Sample, error) {
		pctx, cancel := context.WithTimeout(t.Context(), d)
		defer cancel()
		t0 := time.Now()
		s, err := p.Poll(pctx)
		return time.Since(t0), s, err
	}
	took, samples, err := pollBy(300 * time.Millisecond)
	require.Error(t, err)
	assert.Nil(t, samples)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, took, time.Second, "Poll must return by its deadline")
	assert.Contains(t, err.Error(), p.Endpoint())

	// A dead server.
	srv.Kill()
	took, samples, err = pollBy(2 * time.Second)
	require.Error(t, err)
	assert.Nil(t, samples)
	assert.Less(t, took, 2*time.Second)
	assert.Contains(t, err.Error(), "connection refused")
	t.Logf("killed server: %v", err)
}

func TestNATSPollMaxConsumers(t *testing.T) {
	srv := natsStartServer(t, natsTestServerOptions{})
	js := natsConnect(t, srv)
	ctx := t.Context()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}})
	require.NoError(t, err)
	for _, name := range []string{"c3", "c1", "c2"} {
		_, err = stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy})
		require.NoError(t, err)
	}
	p := natsNewPoller(t, NATSOptions{URL: srv.MonURL, MaxConsumers: 2})
	for range 2 { // the same consumers are kept every poll
		samples, err := natsPollCtx(t, p)
		require.ErrorIs(t, err, ErrNATSTooManyConsumers)
		assert.Contains(t, err.Error(), "3 consumers reported, 1 dropped beyond 2")
		require.Len(t, samples, 2)
		assert.Equal(t, "c1", samples[0].Group)
		assert.Equal(t, "c2", samples[1].Group)
	}
}

func TestNATSPollAccounts(t *testing.T) {
	srv := natsStartServer(t, natsTestServerOptions{Config: `
accounts {
  TEAM_A { jetstream: enabled, users: [{user: a, password: pa}] }
  TEAM_B { jetstream: enabled, users: [{user: b, password: pb}] }
}
`})
	ctx := t.Context()
	jsA := natsConnect(t, srv, nats.UserInfo("a", "pa"))
	jsB := natsConnect(t, srv, nats.UserInfo("b", "pb"))
	setup := func(js jetstream.JetStream, stream, consumer string, msgs int) {
		s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{strings.ToLower(stream) + ".>"}})
		require.NoError(t, err)
		_, err = s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: consumer, AckPolicy: jetstream.AckExplicitPolicy})
		require.NoError(t, err)
		natsPublishN(t, ctx, js, strings.ToLower(stream)+".x", msgs)
	}
	setup(jsA, "ORDERS", "billing", 3)
	setup(jsB, "ORDERS", "billing", 7) // same names in another account
	setup(jsB, "PAYMENTS", "ledger", 4)

	p := natsNewPoller(t, NATSOptions{URL: srv.MonURL})
	samples, err := natsPollCtx(t, p)
	require.ErrorIs(t, err, ErrNATSAmbiguousConsumer)
	require.Len(t, samples, 2)
	assert.Equal(t, 3.0, natsFindSample(t, samples, "ORDERS", "billing").Lag, "the first account by id is kept")
	assert.Equal(t, 4.0, natsFindSample(t, samples, "PAYMENTS", "ledger").Lag)
	assert.Equal(t, []NATSStream{
		{Name: "ORDERS", Subjects: []string{"orders.>"}},
		{Name: "PAYMENTS", Subjects: []string{"payments.>"}},
	}, p.Streams())
}

func TestNATSPollJetStreamDisabled(t *testing.T) {
	srv := natsStartServer(t, natsTestServerOptions{NoJetStream: true})
	p := natsNewPoller(t, NATSOptions{URL: srv.MonURL})
	samples, err := natsPollCtx(t, p)
	require.ErrorIs(t, err, ErrNATSJetStreamDisabled)
	assert.Nil(t, samples)
}

func TestNATSNewValidates(t *testing.T) {
	const secret = "s3cr3t-value"
	for _, tc := range []struct {
		name string
		o    NATSOptions
	}{
		{"empty", NATSOptions{}},
		{"no scheme", NATSOptions{URL: "127.0.0.1:8222"}},
		{"wrong scheme", NATSOptions{URL: "nats://u:" + secret + "@127.0.0.1:4222"}},
		{"unparsable with password", NATSOptions{URL: "http://u:" + secret + "@[::1"}},
		{"query", NATSOptions{URL: "http://127.0.0.1:8222/?token=" + secret}},
		{"fragment", NATSOptions{URL: "http://127.0.0.1:8222/#" + secret}},
		{"token and password", NATSOptions{URL: "http://127.0.0.1:8222", Token: secret, Password: secret}},
		{"negative max", NATSOptions{URL: "http://127.0.0.1:8222", MaxConsumers: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewNATS(tc.o)
			require.Error(t, err)
			assert.NotContains(t, err.Error(), secret)
		})
	}
}

// TestNATSPollAuthHidesSecrets uses a stand-in for an authenticating proxy
// in front of the monitoring port (nats-server's has no auth) that echoes
// the credentials it gets.
func TestNATSPollAuthHidesSecrets(t *testing.T) {
	const user, pass, token = "monitor-user", "p4ss-w0rd", "t0ken-xyz"
	var (
		mu      sync.Mutex
		gotAuth string
	)
	lastAuth := func() string { mu.Lock(); defer mu.Unlock(); return gotAuth }
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotAuth = r.Header.Get("Authorization")
		mu.Unlock()
		u, pw, _ := r.BasicAuth()
		if r.URL.Path != "/nats/jsz" || r.URL.Query().Get("consumers") != "true" || r.URL.Query().Get("config") != "true" {
			http.Error(w, "bad path "+r.URL.String(), http.StatusNotFound)
			return
		}
		http.Error(w, "denied for "+r.Header.Get("Authorization")+" user="+u+" pass="+pw+"\x00\n", http.StatusUnauthorized)
	}))
	defer echo.Close()
	base := echo.URL + "/nats"
	withUserInfo := strings.Replace(base, "http://", "http://"+user+":"+pass+"@", 1)

	for _, tc := range []struct {
		name     string
		o        NATSOptions
		wantAuth string
	}{
		{"basic", NATSOptions{URL: base, Username: user, Password: pass}, "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))},
		{"user info in URL", NATSOptions{URL: withUserInfo}, "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))},
		{"token", NATSOptions{URL: base, Token: token}, "Bearer " + token},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := natsNewPoller(t, tc.o)
			assert.Equal(t, base+"/jsz", p.Endpoint())
			samples, err := natsPollCtx(t, p)
			require.Error(t, err)
			assert.Nil(t, samples)
			assert.Equal(t, tc.wantAuth, lastAuth())
			msg := err.Error()
			assert.Contains(t, msg, "401")
			assert.Contains(t, msg, "[redacted]")
			for _, s := range []string{user, pass, token, strings.TrimPrefix(tc.wantAuth, "Basic ")} {
				assert.NotContains(t, msg, s)
			}
			assert.NotContains(t, msg, "\x00")
			t.Log(msg)
		})
	}
}

func TestNATSPollBadResponses(t *testing.T) {
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	p := natsNewPoller(t, NATSOptions{URL: srv.URL})
	p.maxBody = 1 << 10

	body = `{"accounts": 1, "account_details": [{"id": "$G", "stream_detail": [` + strings.Repeat(" ", 2<<10) + `]}]}`
	_, err := natsPollCtx(t, p)
	require.ErrorIs(t, err, ErrNATSResponseTooLarge)

	body = `{"accounts": 1, "account_details": [{"id": "$G", "stream_detail": [{"name": "X", "consumer_detail": [{"name": "c", "num_pending": -1}]}]}]}`
	_, err = natsPollCtx(t, p)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "decode /jsz")

	body = `<html>not json</html>`
	_, err = natsPollCtx(t, p)
	require.Error(t, err)

	body = `{"accounts": 3, "account_details": [{"id": "A"}]}`
	_, err = natsPollCtx(t, p)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "1 of 3 JetStream accounts")
}

func FuzzNATSJsz(f *testing.F) {
	f.Add([]byte(`{"accounts":1,"account_details":[{"id":"$G","stream_detail":[{"name":"ORDERS","config":{"subjects":["orders.>"]},"state":{"last_seq":10},"consumer_detail":[{"name":"b","config":{"filter_subject":"orders.paid"},"ack_floor":{"stream_seq":2},"num_pending":5,"num_ack_pending":3,"num_waiting":1}]}]}]}`))
	f.Add([]byte(`{"disabled":true}`))
	f.Add([]byte(`{"account_details":[{"id":"B","stream_detail":[{"name":"S","consumer_detail":[{"name":"x"},{"name":"x"}]}]},{"id":"A","stream_detail":[{"name":"S","consumer_detail":[{"name":"x","push_bound":true}]}]}]}`))
	p, err := NewNATS(NATSOptions{URL: "http://127.0.0.1:1", MaxConsumers: 3, Now: func() time.Time { return natsTestNow }})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, b []byte) {
		var jsz natsJSZ
		if json.Unmarshal(b, &jsz) != nil {
			return
		}
		samples, streams, errs := p.samples(&jsz, natsTestNow)
		if len(samples) > 3 {
			t.Fatalf("%d samples beyond MaxConsumers", len(samples))
		}
		seen := map[lag.Key]bool{}
		for _, s := range samples {
			if seen[s.Key] {
				t.Fatalf("duplicate key %+v", s.Key)
			}
			seen[s.Key] = true
			if s.Validate() != nil {
				t.Fatalf("invalid sample %+v: %v", s, s.Validate())
			}
			if s.Lag < 0 || s.Partition != -1 {
				t.Fatalf("bad sample %+v", s)
			}
		}
		if len(streams) > len(samples) {
			t.Fatalf("%d streams for %d samples", len(streams), len(samples))
		}
		for _, e := range errs {
			if !errors.Is(e, ErrNATSTooManyConsumers) && !errors.Is(e, ErrNATSAmbiguousConsumer) {
				t.Fatalf("unexpected error %v", e)
			}
		}
	})
}

// waitStopped waits until every thread of process pid is stopped: kill
// returns before a running thread takes a SIGSTOP, and a server thread
// caught mid-request would still answer it.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	require.Eventually(t, func() bool {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil || len(tasks) == 0 {
			return false
		}
		for _, task := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
			if err != nil {
				return false
			}
			// The state follows the command name in parentheses.
			i := strings.LastIndexByte(string(b), ')')
			if i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
				return false
			}
		}
		return true
	}, 5*time.Second, 5*time.Millisecond, "nats-server did not stop")
}
