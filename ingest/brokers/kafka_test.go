package brokers

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// The Kafka tests run against kfake, franz-go's in-process Kafka-protocol
// cluster: no broker needs to be installed.

var kafkaTestNow = time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)

// kafkaTestCluster starts a one-broker in-process cluster seeded with the
// given topic of the given partitions.
func kafkaTestCluster(t *testing.T, partitions int32, topics ...string) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// kafkaTestPoller returns a poller on c with a fixed clock.
func kafkaTestPoller(t *testing.T, c *kfake.Cluster, mod func(*KafkaOptions)) *Kafka {
	t.Helper()
	o := KafkaOptions{Brokers: c.ListenAddrs(), Now: func() time.Time { return kafkaTestNow }}
	if mod != nil {
		mod(&o)
	}
	p, err := NewKafka(o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// kafkaTestProduce writes n records to topic, record i to partition i%parts.
func kafkaTestProduce(t *testing.T, c *kfake.Cluster, topic string, parts int32, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Partition: int32(i) % parts, Value: []byte("m")}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	require.NoError(t, cl.ProduceSync(ctx, recs...).FirstErr())
}

// kafkaTestConsumer joins group on topic with manual commits, reading from
// the start.
func kafkaTestConsumer(t *testing.T, c *kfake.Cluster, group, topic string, extra ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100 * time.Millisecond),
	}, extra...)
	cl, err := kgo.NewClient(opts...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

// kafkaTestConsume polls exactly n records from cl.
func kafkaTestConsume(t *testing.T, cl *kgo.Client, n int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollRecords(ctx, n-len(got))
		require.NoError(t, ctx.Err(), "consumed %d of %d records", len(got), n)
		fs.EachError(func(topic string, part int32, err error) {
			require.NoError(t, err, "fetch %s/%d", topic, part)
		})
		got = append(got, fs.Records()...)
	}
	return got
}

// kafkaTestCommitBelow commits, for each partition, the consumed records
// with offsets below upTo: the committed offset becomes min(upTo, consumed).
func kafkaTestCommitBelow(t *testing.T, cl *kgo.Client, recs []*kgo.Record, upTo int64) {
	t.Helper()
	var commit []*kgo.Record
	for _, r := range recs {
		if r.Offset < upTo {
			commit = append(commit, r)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	require.NoError(t, cl.CommitRecords(ctx, commit...))
}

// kafkaTestPoll polls p and returns the samples of group, failing on error.
func kafkaTestPoll(t *testing.T, p *Kafka, group string) []lag.Sample {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	samples, err := p.Poll(ctx)
	require.NoError(t, err)
	var out []lag.Sample
	for _, s := range samples {
		require.NoError(t, s.Validate())
		if s.Group == group {
			out = append(out, s)
		}
	}
	return out
}

// kafkaTestTotals sums Lag and Committed over samples.
func kafkaTestTotals(samples []lag.Sample) (lagSum, committed float64) {
	for _, s := range samples {
		lagSum += s.Lag
		committed += s.Committed
	}
	return lagSum, committed
}

func TestKafkaOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    KafkaOptions
		ok   bool
	}{
		{"ok", KafkaOptions{Brokers: []string{"b1:9092"}}, true},
		{"sasl", KafkaOptions{Brokers: []string{"b1:9092"}, SASLUser: "u", SASLPassword: "p"}, true},
		{"no brokers", KafkaOptions{}, false},
		{"empty broker", KafkaOptions{Brokers: []string{"b1:9092", " "}}, false},
		{"password without user", KafkaOptions{Brokers: []string{"b1:9092"}, SASLPassword: "p"}, false},
		{"negative max", KafkaOptions{Brokers: []string{"b1:9092"}, MaxPartitions: -1}, false},
		{"empty group", KafkaOptions{Brokers: []string{"b1:9092"}, Groups: []string{""}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if tc.ok {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
}

func TestKafkaKindEndpoint(t *testing.T) {
	p, err := NewKafka(KafkaOptions{Brokers: []string{"b1:9092", "b2:9092"}, SASLUser: "svc", SASLPassword: "hunter2-secret"})
	require.NoError(t, err)
	defer p.Close()
	assert.Equal(t, "kafka", p.Kind())
	assert.Equal(t, "kafka://b1:9092,b2:9092", p.Endpoint())
	require.NoError(t, p.Close())
	require.NoError(t, p.Close(), "second Close")
	_, err = p.Poll(t.Context())
	assert.ErrorIs(t, err, ErrKafkaClosed)
}

// TestKafkaLag commits 60 of 100 messages on a 3-partition topic (20 per
// partition), then the rest.
func TestKafkaLag(t *testing.T) {
	const topic, group = "orders", "billing"
	c := kafkaTestCluster(t, 3, topic)
	kafkaTestProduce(t, c, topic, 3, 100)
	cons := kafkaTestConsumer(t, c, group, topic)
	p := kafkaTestPoller(t, c, nil)

	// Consume all 100, commit 20 of each partition: 60.
	recs := kafkaTestConsume(t, cons, 100)
	kafkaTestCommitBelow(t, cons, recs, 20)
	samples := kafkaTestPoll(t, p, group)
	require.Len(t, samples, 3)
	ends := []float64{34, 33, 33}
	for i, s := range samples {
		assert.Equal(t, lag.Key{System: "kafka", Destination: topic, Group: group, Partition: int32(i)}, s.Key)
		assert.Equal(t, ends[i], s.End, "end of partition %d", i)
		assert.Equal(t, 20.0, s.Committed, "commit of partition %d", i)
		assert.Equal(t, s.End-s.Committed, s.Lag, "lag of partition %d", i)
		assert.Equal(t, 1.0, s.Consumers)
		assert.Equal(t, s.End, s.Produced)
		assert.Equal(t, s.Committed, s.Consumed)
		assert.Equal(t, kafkaTestNow, s.Time)
		assert.Equal(t, "kafka", s.Source)
	}
	lagSum, committed := kafkaTestTotals(samples)
	assert.Equal(t, 40.0, lagSum)
	assert.Equal(t, 60.0, committed)

	kafkaTestCommitBelow(t, cons, recs, 100) // the rest
	samples = kafkaTestPoll(t, p, group)
	require.Len(t, samples, 3)
	for i, s := range samples {
		assert.Equal(t, 0.0, s.Lag, "lag of partition %d", i)
		assert.Equal(t, ends[i], s.Committed)
		assert.Equal(t, 1.0, s.Consumers)
	}
}

// TestKafkaStalledThenStopped: a member that stops committing while the
// producer goes on shows a still commit and a growing lag; once it leaves,
// the group has no consumers.
func TestKafkaStalledThenStopped(t *testing.T) {
	const topic, group = "events", "indexer"
	c := kafkaTestCluster(t, 3, topic)
	kafkaTestProduce(t, c, topic, 3, 30)
	cons := kafkaTestConsumer(t, c, group, topic)
	p := kafkaTestPoller(t, c, nil)
	kafkaTestCommitBelow(t, cons, kafkaTestConsume(t, cons, 30), 30)

	first := kafkaTestPoll(t, p, group)
	require.Len(t, first, 3)
	prevLag, committed := kafkaTestTotals(first)
	require.Equal(t, 0.0, prevLag)
	require.Equal(t, 30.0, committed)
	for round := 1; round <= 3; round++ {
		kafkaTestProduce(t, c, topic, 3, 15)
		samples := kafkaTestPoll(t, p, group)
		require.Len(t, samples, 3)
		for i, s := range samples {
			assert.Equal(t, first[i].Committed, s.Committed, "round %d: commit of partition %d moved", round, i)
			assert.Equal(t, 1.0, s.Consumers)
		}
		lagSum, _ := kafkaTestTotals(samples)
		assert.Equal(t, float64(15*round), lagSum, "round %d", round)
		assert.Greater(t, lagSum, prevLag)
		prevLag = lagSum
	}

	cons.Close() // leaves the group
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		samples := kafkaTestPoll(t, p, group)
		require.Len(ct, samples, 3)
		for i, s := range samples {
			assert.Equal(ct, 0.0, s.Consumers)
			assert.Equal(ct, first[i].Committed, s.Committed)
		}
		lagSum, _ := kafkaTestTotals(samples)
		assert.Equal(ct, 45.0, lagSum)
	}, 5*time.Second, 50*time.Millisecond)
}

// TestKafkaNextGenGroup: a KIP-848 consumer group (described with
// ConsumerGroupDescribe, not DescribeGroups) is listed and counted.
func TestKafkaNextGenGroup(t *testing.T) {
	const topic, group = "payments", "ledger"
	c := kafkaTestCluster(t, 2, topic)
	kafkaTestProduce(t, c, topic, 2, 10)
	cons := kafkaTestConsumer(t, c, group, topic,
		kgo.ServerSideBalancer(), kgo.Balancers(kgo.RangeBalancer()))
	p := kafkaTestPoller(t, c, nil)
	kafkaTestCommitBelow(t, cons, kafkaTestConsume(t, cons, 10), 3) // 3 of 5 per partition

	samples := kafkaTestPoll(t, p, group)
	require.Len(t, samples, 2)
	lagSum, committed := kafkaTestTotals(samples)
	assert.Equal(t, 4.0, lagSum)
	assert.Equal(t, 6.0, committed)
	for _, s := range samples {
		assert.Equal(t, 1.0, s.Consumers)
	}
}

// TestKafkaClampAndUncommitted: a commit below the log start offset lags by
// end - start (kadm would say end - commit); a partition without a commit
// has an unknown commit and lag. Groups come from the allow-list.
func TestKafkaClampAndUncommitted(t *testing.T) {
	const topic, group = "audit", "reporter"
	c := kafkaTestCluster(t, 2, topic)
	kafkaTestProduce(t, c, topic, 2, 20) // 10 per partition
	adminCl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	defer adminCl.Close()
	adm := kadm.NewClient(adminCl)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	os := make(kadm.Offsets)
	os.AddOffset(topic, 0, 2, -1)
	require.NoError(t, adm.CommitAllOffsets(ctx, group, os))
	del := make(kadm.Offsets)
	del.AddOffset(topic, 0, 6, -1)
	deleted, err := adm.DeleteRecords(ctx, del)
	require.NoError(t, err)
	require.NoError(t, deleted.Error())

	p := kafkaTestPoller(t, c, func(o *KafkaOptions) { o.Groups = []string{group, "absent", group} })
	samples := kafkaTestPoll(t, p, group)
	require.Len(t, samples, 2)

	assert.Equal(t, 2.0, samples[0].Committed)
	assert.Equal(t, 10.0, samples[0].End)
	assert.Equal(t, 4.0, samples[0].Lag, "end 10 - log start 6, not end - commit")
	assert.Equal(t, 0.0, samples[0].Consumers)

	assert.Equal(t, lag.Unknown, samples[1].Committed)
	assert.Equal(t, lag.Unknown, samples[1].Consumed)
	assert.Equal(t, lag.Unknown, samples[1].Lag)
	assert.Equal(t, 10.0, samples[1].End)
	assert.Equal(t, 0.0, samples[1].Consumers)

	t.Run("max partitions", func(t *testing.T) {
		p := kafkaTestPoller(t, c, func(o *KafkaOptions) { o.MaxPartitions = 1 })
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		samples, err := p.Poll(ctx)
		require.ErrorIs(t, err, ErrKafkaTooManyPartitions)
		require.Len(t, samples, 1)
		assert.Equal(t, int32(0), samples[0].Partition)
		assert.Equal(t, 4.0, samples[0].Lag)
	})
}

// TestKafkaUnreachable: a poll against a port nobody listens on, or one
// that accepts connections and never answers, fails by ctx's deadline,
// without the SASL password in the error.
func TestKafkaUnreachable(t *testing.T) {
	const password = "s3cret-Pa55word-kafka"
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedAddr := closed.Addr().String()
	require.NoError(t, closed.Close())

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer silent.Close()
	go func() {
		var held []net.Conn // accepted and never answered
		defer func() {
			for _, c := range held {
				_ = c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()

	for _, tc := range []struct{ name, addr string }{
		{"closed port", closedAddr},
		{"silent listener", silent.Addr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewKafka(KafkaOptions{Brokers: []string{tc.addr}, SASLUser: "svc", SASLPassword: password})
			require.NoError(t, err)
			defer p.Close()
			assert.NotContains(t, p.Endpoint(), password)

			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			start := time.Now()
			samples, err := p.Poll(ctx)
			elapsed := time.Since(start)
			require.Error(t, err)
			t.Logf("%v after %v", err, elapsed)
			assert.Empty(t, samples)
			assert.Less(t, elapsed, 2*time.Second)
			assert.NotContains(t, err.Error(), password)
			assert.Contains(t, err.Error(), tc.addr)
		})
	}
}

// TestKafkaSASL polls a cluster requiring SASL/PLAIN, with the right and a
// wrong password.
func TestKafkaSASL(t *testing.T) {
	const user, password = "cartograph", "right-Pa55word-kafka"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"),
		kfake.EnableSASL(), kfake.Superuser("PLAIN", user, password))
	require.NoError(t, err)
	defer c.Close()

	p := kafkaTestPoller(t, c, func(o *KafkaOptions) { o.SASLUser, o.SASLPassword = user, password })
	kafkaTestPoll(t, p, "")

	const wrong = "wrong-Pa55word-kafka"
	bad := kafkaTestPoller(t, c, func(o *KafkaOptions) { o.SASLUser, o.SASLPassword = user, wrong })
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err = bad.Poll(ctx)
	require.Error(t, err)
	t.Logf("wrong password: %v after %v", err, time.Since(start))
	assert.NotContains(t, err.Error(), wrong)
}

// TestKafkaGroupNotAuthorized: a group the poller may not describe is an
// error for that group, while the other group's samples are returned.
func TestKafkaGroupNotAuthorized(t *testing.T) {
	const topic, visible, hidden = "audit", "visible", "hidden"
	allow := func(res kmsg.ACLResourceType, name string) kfake.ACL {
		return kfake.ACL{Resource: res, Name: name, Pattern: kmsg.ACLResourcePatternTypeLiteral,
			Operation: kmsg.ACLOperationDescribe, Allow: true}
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic),
		kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("PLAIN", "admin", "admin-pw"),
		kfake.User("PLAIN", "poller", "poller-pw",
			allow(kmsg.ACLResourceTypeTopic, topic), allow(kmsg.ACLResourceTypeGroup, visible)))
	require.NoError(t, err)
	defer c.Close()

	adminCl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.SASL(plain.Auth{User: "admin", Pass: "admin-pw"}.AsMechanism()))
	require.NoError(t, err)
	defer adminCl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	require.NoError(t, adminCl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("a")},
		&kgo.Record{Topic: topic, Value: []byte("b")}).FirstErr())
	adm := kadm.NewClient(adminCl)
	for _, g := range []string{visible, hidden} {
		os := make(kadm.Offsets)
		os.AddOffset(topic, 0, 1, -1)
		require.NoError(t, adm.CommitAllOffsets(ctx, g, os))
	}

	p := kafkaTestPoller(t, c, func(o *KafkaOptions) {
		o.SASLUser, o.SASLPassword = "poller", "poller-pw"
		o.Groups = []string{hidden, visible}
	})
	samples, err := p.Poll(ctx)
	require.Error(t, err)
	t.Log(err)
	assert.ErrorIs(t, err, kerr.GroupAuthorizationFailed)
	assert.Contains(t, err.Error(), `"hidden"`)
	assert.NotContains(t, err.Error(), `"visible"`)
	require.Len(t, samples, 1)
	assert.Equal(t, visible, samples[0].Group)
	assert.Equal(t, 1.0, samples[0].Lag)
	assert.Equal(t, 0.0, samples[0].Consumers)
}

func TestKafkaRedact(t *testing.T) {
	inner := errors.New("auth failed for pw=abc123")
	err := kafkaRedact(inner, "abc123")
	assert.Equal(t, "auth failed for pw=[REDACTED]", err.Error())
	assert.ErrorIs(t, err, inner)
	assert.Same(t, inner, kafkaRedact(inner, ""))
	assert.False(t, strings.Contains(kafkaRedact(inner, "abc123").Error(), "abc123"))
}
