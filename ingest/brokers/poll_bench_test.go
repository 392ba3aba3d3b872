package brokers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// The Poll1000 benchmarks time one Poll against a broker holding about
// 1,000 consumer positions, on the same servers as the tests (RabbitMQ
// from cmd/testenv, a nats-server of their own, kfake in-process):
//
//	go run ./cmd/testenv -only rabbitmq,nats-server -- go test -run='^$' -bench='Poll1000' -benchtime=20x ./ingest/brokers/
//
// Setup (queues, consumers, groups) runs once, untimed, before b.Loop and
// takes well under a minute each. Besides ns/op (one poll), B/op and
// allocs/op, each reports ms/poll and the samples of a poll, and the HTTP
// pollers the bytes of a poll's responses, measured on one extra, untimed
// poll with an instrumented client so the timed polls run the default
// client. The package's test helpers take *testing.T; the few that are
// needed here are repeated for *testing.B with a pollBench prefix.

// pollBenchReport reports the per-poll figures every benchmark shares.
func pollBenchReport(b *testing.B, polls, samples int, samplesUnit string) {
	b.Helper()
	if polls == 0 {
		return
	}
	b.ReportMetric(float64(b.Elapsed())/float64(time.Millisecond)/float64(polls), "ms/poll")
	b.ReportMetric(float64(samples), samplesUnit)
}

// pollBenchCounter counts what an HTTP client reads: HTTP requests, bytes
// off the wire (status line, headers and the body as sent, gzip included)
// and decoded body bytes (what the poller parses).
type pollBenchCounter struct {
	reqs, wire, body atomic.Int64
	gzip             atomic.Bool // some response came compressed
}

// client returns a client on a clone of base that counts into c.
func (c *pollBenchCounter) client(base *http.Transport, timeout time.Duration) *http.Client {
	tr := base.Clone()
	dial := tr.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &pollBenchConn{Conn: conn, n: &c.wire}, nil
	}
	return &http.Client{Timeout: timeout, Transport: pollBenchRoundTripper{c: c, next: tr}}
}

// report adds the bytes and requests of polls polls.
func (c *pollBenchCounter) report(b *testing.B, polls int) {
	b.Helper()
	n := float64(polls)
	b.ReportMetric(float64(c.body.Load())/n, "body-B/poll")
	b.ReportMetric(float64(c.wire.Load())/n, "wire-B/poll")
	b.ReportMetric(float64(c.reqs.Load())/n, "reqs/poll")
	b.Logf("one poll: %d requests, %d body bytes, %d bytes on the wire (gzip: %v)",
		c.reqs.Load(), c.body.Load(), c.wire.Load(), c.gzip.Load())
}

type pollBenchConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *pollBenchConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type pollBenchRoundTripper struct {
	c    *pollBenchCounter
	next http.RoundTripper
}

func (rt pollBenchRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := rt.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	rt.c.reqs.Add(1)
	if resp.Uncompressed {
		rt.c.gzip.Store(true)
	}
	resp.Body = &pollBenchBody{ReadCloser: resp.Body, n: &rt.c.body}
	return resp, nil
}

type pollBenchBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (r *pollBenchBody) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n.Add(int64(n))
	return n, err
}

// --- RabbitMQ ---

// BenchmarkRabbitMQPoll1000Queues polls the management API of the test
// broker holding 1,000 queues of this benchmark (and whatever else is on
// the broker: queues/op counts every queue a poll returns), every 10th
// with 5 ready messages. The poller has default options: all vhosts, two
// pages of 500.
func BenchmarkRabbitMQPoll1000Queues(b *testing.B) {
	const queues, every, perQueue = 1000, 10, 5
	pollBenchRabbitBroker(b)
	ctx := b.Context()
	start := time.Now()

	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	prefix := "cartograph-bench.poll." + hex.EncodeToString(rnd[:])
	names := make([]string, queues)
	for i := range names {
		names[i] = fmt.Sprintf("%s.%04d", prefix, i)
	}
	// Registered before the first declare: whatever got declared goes.
	pollBenchRabbitCleanup(b, prefix, names)

	conn, err := amqp.DialConfig(rabbitTest.AMQP, amqp.Config{Dial: amqp.DefaultDial(3 * time.Second)})
	if err != nil {
		b.Fatalf("AMQP (%s): %v", need.EnvRabbitMQAMQP, err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(b, err)
	for _, q := range names {
		_, err := ch.QueueDeclare(q, false, false, false, false, nil) // non-durable, not auto-delete
		require.NoError(b, err)
	}
	declared := time.Since(start)

	require.NoError(b, ch.Confirm(false))
	var confirms []*amqp.DeferredConfirmation
	for i := 0; i < queues; i += every {
		for range perQueue {
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", names[i], false, false, amqp.Publishing{Body: []byte("m")})
			require.NoError(b, err)
			confirms = append(confirms, dc)
		}
	}
	for _, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		require.NoError(b, err)
		require.True(b, ok, "publish nacked")
	}
	require.NoError(b, ch.Close())
	published := len(confirms)

	p, err := NewRabbitMQ(RabbitMQOptions{URL: rabbitTest.Management, Username: rabbitTest.User, Password: rabbitTest.Password})
	require.NoError(b, err)
	poll := func(p *RabbitMQ) []lag.Sample {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		samples, err := p.Poll(pctx)
		require.NoError(b, err)
		return samples
	}

	// Queues are listed at once; their depths arrive with the next
	// statistics (collect_statistics_interval). Wait for both.
	ours := make(map[string]bool, queues)
	for _, q := range names {
		ours[q] = true
	}
	deadline := time.Now().Add(45 * time.Second)
	for {
		samples := poll(p)
		listed, known, ready := 0, 0, 0.0
		for _, s := range samples {
			if ours[s.Destination] {
				listed++
				if s.Lag != lag.Unknown {
					known++
					ready += s.Lag
				}
			}
		}
		if listed == queues && known == queues && ready == float64(published) {
			b.Logf("setup %v: %d queues declared in %v, all listed with their %d messages; a poll returns %d queues",
				time.Since(start).Round(time.Millisecond), queues, declared.Round(time.Millisecond), published, len(samples))
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("management API lists %d of %d queues, %d with a depth, %v of %d messages", listed, queues, known, ready, published)
		}
		time.Sleep(250 * time.Millisecond)
	}

	b.ReportAllocs()
	polls, last := 0, 0
	for b.Loop() {
		samples, err := p.Poll(ctx)
		if err != nil {
			b.Fatal(err)
		}
		polls++
		last = len(samples)
	}
	if last < queues {
		b.Fatalf("a poll returned %d queues, want at least %d", last, queues)
	}
	pollBenchReport(b, polls, last, "queues/op")

	var c pollBenchCounter
	counted, err := NewRabbitMQ(RabbitMQOptions{URL: rabbitTest.Management, Username: rabbitTest.User, Password: rabbitTest.Password,
		Client: c.client(rabbitDefaultClient().Transport.(*http.Transport), 0)})
	require.NoError(b, err)
	poll(counted)
	c.report(b, 1)
}

// pollBenchRabbitBroker fails b unless the management API answers.
func pollBenchRabbitBroker(b *testing.B) {
	b.Helper()
	if rabbitTestErr != nil {
		b.Fatal(rabbitTestErr)
	}
	ctx, cancel := context.WithTimeout(b.Context(), 3*time.Second)
	defer cancel()
	resp, err := pollBenchRabbitDo(ctx, http.MethodGet, "/api/overview")
	if err != nil {
		b.Fatalf("management API at %s: %v", rabbitTest.Management, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("management API at %s: HTTP %d (is the management plugin on?)", rabbitTest.Management, resp.StatusCode)
	}
}

// pollBenchRabbitDo sends one management API request as the test user.
func pollBenchRabbitDo(ctx context.Context, method, pathQuery string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, rabbitTest.Management+pathQuery, nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(rabbitTest.User, rabbitTest.Password)
	return http.DefaultClient.Do(req)
}

// pollBenchRabbitCleanup deletes the queues when b ends: over AMQP on a
// connection of its own (a failed delete closes the channel, so it opens
// another), then through the management API for whatever is still listed
// under prefix. It fails b only if queues remain.
func pollBenchRabbitCleanup(b *testing.B, prefix string, names []string) {
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		t0 := time.Now()
		if err := pollBenchRabbitDeleteAMQP(names); err != nil {
			b.Logf("cleanup over AMQP: %v; deleting through the management API", err)
		}
		var (
			left []string
			err  error
		)
		for range 3 {
			if left, err = pollBenchRabbitListPrefix(ctx, prefix); err != nil || len(left) == 0 {
				break
			}
			for _, q := range left {
				resp, derr := pollBenchRabbitDo(ctx, http.MethodDelete, "/api/queues/%2F/"+url.PathEscape(q))
				if derr == nil {
					resp.Body.Close()
				}
			}
		}
		switch {
		case err != nil:
			b.Errorf("cleanup: list queues %s.*: %v", prefix, err)
		case len(left) > 0:
			b.Errorf("cleanup: %d queues %s.* remain", len(left), prefix)
		default:
			b.Logf("cleanup: %d queues deleted in %v", len(names), time.Since(t0).Round(time.Millisecond))
		}
	})
}

// pollBenchRabbitDeleteAMQP deletes the queues names, any of which may not
// exist.
func pollBenchRabbitDeleteAMQP(names []string) error {
	conn, err := amqp.DialConfig(rabbitTest.AMQP, amqp.Config{Dial: amqp.DefaultDial(3 * time.Second)})
	if err != nil {
		return err
	}
	defer conn.Close()
	var (
		ch   *amqp.Channel
		errs []error
	)
	for _, q := range names {
		if ch == nil {
			if ch, err = conn.Channel(); err != nil {
				return errors.Join(append(errs, err)...)
			}
		}
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			if len(errs) < 3 {
				errs = append(errs, fmt.Errorf("delete %s: %w", q, err))
			}
			_ = ch.Close()
			ch = nil
		}
	}
	if ch != nil {
		_ = ch.Close()
	}
	return errors.Join(errs...)
}

// pollBenchRabbitListPrefix returns the queues of vhost "/" whose names
// start with prefix.
func pollBenchRabbitListPrefix(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	for page := 1; ; page++ {
		q := url.Values{
			"name":      {`(?-i)^` + regexp.QuoteMeta(prefix)},
			"use_regex": {"true"},
			"columns":   {"name"},
			"page":      {strconv.Itoa(page)},
			"page_size": {"500"},
		}
		resp, err := pollBenchRabbitDo(ctx, http.MethodGet, "/api/queues/%2F?"+q.Encode())
		if err != nil {
			return nil, err
		}
		var pg struct {
			Items     []struct{ Name string }
			PageCount int `json:"page_count"`
		}
		err = json.NewDecoder(resp.Body).Decode(&pg)
		resp.Body.Close()
		switch {
		case resp.StatusCode != http.StatusOK:
			return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
		case err != nil:
			return nil, err
		}
		for _, it := range pg.Items {
			out = append(out, it.Name)
		}
		if page >= pg.PageCount {
			return out, nil
		}
	}
}

// --- NATS ---

// BenchmarkNATSPoll1000Consumers polls /jsz of a nats-server of its own
// holding 10 file streams of 100 messages with 100 durable pull consumers
// each (1,000), none of which has read anything.
func BenchmarkNATSPoll1000Consumers(b *testing.B) {
	const streams, consumers, msgs = 10, 100, 100
	start := time.Now()
	srv := pollBenchNATSServer(b)
	ctx := b.Context()
	nc, err := nats.Connect(srv.ClientURL, nats.MaxReconnects(0))
	require.NoError(b, err)
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(b, err)

	// One goroutine per stream: the server creates consumers in parallel.
	var wg sync.WaitGroup
	errs := make([]error, streams)
	for s := range streams {
		wg.Go(func() {
			errs[s] = pollBenchNATSStream(ctx, js, s, consumers, msgs)
		})
	}
	wg.Wait()
	require.NoError(b, errors.Join(errs...))
	created := time.Since(start)

	p, err := NewNATS(NATSOptions{URL: srv.MonURL})
	require.NoError(b, err)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	samples, err := p.Poll(pctx)
	cancel()
	require.NoError(b, err)
	require.Len(b, samples, streams*consumers)
	for _, s := range samples {
		require.Equal(b, float64(msgs), s.Lag, "%s/%s", s.Destination, s.Group)
		require.Equal(b, float64(msgs), s.End, "%s/%s", s.Destination, s.Group)
	}
	b.Logf("setup %v: %d streams x %d consumers created and %d messages published in %v",
		time.Since(start).Round(time.Millisecond), streams, consumers, streams*msgs, created.Round(time.Millisecond))

	b.ReportAllocs()
	polls, last := 0, 0
	for b.Loop() {
		samples, err := p.Poll(ctx)
		if err != nil {
			b.Fatal(err)
		}
		polls++
		last = len(samples)
	}
	if last != streams*consumers {
		b.Fatalf("a poll returned %d consumers, want %d", last, streams*consumers)
	}
	pollBenchReport(b, polls, last, "consumers/op")

	var c pollBenchCounter
	counted, err := NewNATS(NATSOptions{URL: srv.MonURL,
		Client: c.client(http.DefaultTransport.(*http.Transport), natsDefaultClientTimeout)})
	require.NoError(b, err)
	pctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = counted.Poll(pctx)
	require.NoError(b, err)
	c.report(b, 1)
}

// pollBenchNATSStream creates stream S<i> on subjects s<i>.> with the
// durable pull consumers c000... and publishes msgs messages to it.
func pollBenchNATSStream(ctx context.Context, js jetstream.JetStream, i, consumers, msgs int) error {
	name, subject := fmt.Sprintf("S%02d", i), fmt.Sprintf("s%02d", i)
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject + ".>"}})
	if err != nil {
		return fmt.Errorf("stream %s: %w", name, err)
	}
	for c := range consumers {
		if _, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable: fmt.Sprintf("c%03d", c), AckPolicy: jetstream.AckExplicitPolicy,
		}); err != nil {
			return fmt.Errorf("stream %s consumer %d: %w", name, c, err)
		}
	}
	for m := range msgs {
		if _, err := js.Publish(ctx, subject+".x", []byte(strconv.Itoa(m))); err != nil {
			return fmt.Errorf("stream %s publish: %w", name, err)
		}
	}
	return nil
}

// pollBenchNATSServer starts a JetStream nats-server with monitoring on
// free ports, as natsStartServer does for tests, killed in b's cleanup.
func pollBenchNATSServer(b *testing.B) *natsTestServer {
	b.Helper()
	bin := need.NATSServer(b)
	for attempt := 0; ; attempt++ { // a free port can be taken between Listen and exec
		s, err := pollBenchNATSTryStart(b, bin)
		if err == nil {
			return s
		}
		if attempt == 2 {
			b.Fatalf("start nats-server: %v", err)
		}
	}
}

func pollBenchNATSTryStart(b *testing.B, bin string) (*natsTestServer, error) {
	ports, err := pollBenchFreePorts(2)
	if err != nil {
		return nil, err
	}
	dir := b.TempDir()
	logPath := filepath.Join(dir, "nats.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(ports[0]), "-m", strconv.Itoa(ports[1]),
		"-js", "-sd", filepath.Join(dir, "js"))
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
	b.Cleanup(s.Kill)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("nats-server exited: %s", s.log())
		default:
		}
		if resp, err := http.Get(s.MonURL + "/healthz?js-enabled-only=true"); err == nil {
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

// pollBenchFreePorts returns n distinct free ports, released on return.
func pollBenchFreePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close() // held until all are chosen, so they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// --- Kafka ---

// BenchmarkKafkaPoll1000Partitions polls a one-broker kfake cluster with
// 10 topics of 100 partitions (10 records each) and 10 consumer groups of
// one member, each subscribed to one topic and having committed offset 5
// on each of its partitions: 1,000 group-partition samples.
func BenchmarkKafkaPoll1000Partitions(b *testing.B) {
	const topics, parts, perPart, commitAt = 10, 100, 10, 5
	start := time.Now()
	ctx := b.Context()
	names := make([]string, topics)
	for i := range names {
		names[i] = fmt.Sprintf("topic-%02d", i)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, names...))
	require.NoError(b, err)
	b.Cleanup(c.Close)

	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(b, err)
	recs := make([]*kgo.Record, 0, topics*parts*perPart)
	for _, t := range names {
		for i := range parts * perPart {
			recs = append(recs, &kgo.Record{Topic: t, Partition: int32(i % parts), Value: []byte("m")})
		}
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	require.NoError(b, prod.ProduceSync(pctx, recs...).FirstErr())
	cancel()
	prod.Close()

	// The groups join, consume and commit in parallel.
	var wg sync.WaitGroup
	errs := make([]error, topics)
	for i, t := range names {
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(c.ListenAddrs()...),
			kgo.ConsumerGroup(fmt.Sprintf("group-%02d", i)),
			kgo.ConsumeTopics(t),
			kgo.DisableAutoCommit(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		)
		require.NoError(b, err)
		b.Cleanup(cl.Close)
		wg.Go(func() { errs[i] = pollBenchKafkaConsume(ctx, cl, parts*perPart, commitAt) })
	}
	wg.Wait()
	require.NoError(b, errors.Join(errs...))

	p, err := NewKafka(KafkaOptions{Brokers: c.ListenAddrs()})
	require.NoError(b, err)
	b.Cleanup(func() { _ = p.Close() })
	pctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	samples, err := p.Poll(pctx)
	cancel()
	require.NoError(b, err)
	require.Len(b, samples, topics*parts)
	for _, s := range samples {
		require.Equal(b, float64(commitAt), s.Committed, "%+v", s.Key)
		require.Equal(b, float64(perPart-commitAt), s.Lag, "%+v", s.Key)
		require.Equal(b, 1.0, s.Consumers, "%+v", s.Key)
	}
	b.Logf("setup %v: %d topics x %d partitions, %d records, %d groups committed",
		time.Since(start).Round(time.Millisecond), topics, parts, len(recs), topics)

	b.ReportAllocs()
	polls, last := 0, 0
	for b.Loop() {
		samples, err := p.Poll(ctx)
		if err != nil {
			b.Fatal(err)
		}
		polls++
		last = len(samples)
	}
	if last != topics*parts {
		b.Fatalf("a poll returned %d samples, want %d", last, topics*parts)
	}
	pollBenchReport(b, polls, last, "samples/op")
}

// pollBenchKafkaConsume reads n records with cl (a group member) and
// commits, on each partition, the records below offset commitAt.
func pollBenchKafkaConsume(ctx context.Context, cl *kgo.Client, n int, commitAt int64) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var commit []*kgo.Record
	for got := 0; got < n; {
		fs := cl.PollRecords(ctx, n-got)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("consumed %d of %d records: %w", got, n, err)
		}
		if err := fs.Err0(); err != nil {
			return err
		}
		for _, r := range fs.Records() {
			got++
			if r.Offset < commitAt {
				commit = append(commit, r)
			}
		}
	}
	return cl.CommitRecords(ctx, commit...)
}
