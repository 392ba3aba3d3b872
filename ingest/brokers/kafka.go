package brokers

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// DefaultKafkaMaxPartitions is the number of partition samples a Kafka poll
// returns at most when KafkaOptions.MaxPartitions is zero.
const DefaultKafkaMaxPartitions = 100_000

var (
	// ErrKafkaTooManyPartitions is wrapped by the error of a Kafka poll that
	// dropped groups or partition samples beyond KafkaOptions.MaxPartitions.
	ErrKafkaTooManyPartitions = errors.New("kafka: too many partitions")
	// ErrKafkaClosed is returned by Poll after Close.
	ErrKafkaClosed = errors.New("kafka: poller closed")
)

// kafkaGroupTypes are the group types a poll lists: classic groups
// (including groups that only commit offsets through the admin API) and
// KIP-848 consumer groups. Share and streams groups are not polled. Brokers
// older than Kafka 3.8 ignore the filter and report no types.
var kafkaGroupTypes = []string{"classic", "consumer"}

// KafkaOptions configures a Kafka poller.
type KafkaOptions struct {
	// Brokers are the seed brokers, host:port. At least one is required.
	Brokers []string
	// SASLUser and SASLPassword enable SASL/PLAIN when SASLUser is set. The
	// password is never logged and is removed from returned errors.
	SASLUser, SASLPassword string
	// TLS, when non-nil, is used to dial the brokers.
	TLS *tls.Config
	// Groups is an allow-list of consumer groups. Empty means every
	// classic and KIP-848 consumer group the cluster lists, up to
	// MaxPartitions groups.
	Groups []string
	// MaxPartitions bounds the partition samples (and the groups) of one
	// poll; zero means DefaultKafkaMaxPartitions. What lies beyond is
	// dropped and the poll's error wraps ErrKafkaTooManyPartitions.
	MaxPartitions int
	// Now is the clock stamped on samples; nil means time.Now.
	Now func() time.Time
}

// Validate reports whether o can be used to build a poller.
func (o KafkaOptions) Validate() error {
	if len(o.Brokers) == 0 {
		return errors.New("kafka: no seed brokers")
	}
	for _, b := range o.Brokers {
		if strings.TrimSpace(b) == "" {
			return errors.New("kafka: empty seed broker address")
		}
	}
	if o.SASLUser == "" && o.SASLPassword != "" {
		return errors.New("kafka: SASL password without a SASL user")
	}
	if o.MaxPartitions < 0 {
		return fmt.Errorf("kafka: negative MaxPartitions %d", o.MaxPartitions)
	}
	for _, g := range o.Groups {
		if g == "" {
			return errors.New("kafka: empty group name in allow-list")
		}
	}
	return nil
}

// Kafka is a Poller that reads consumer group positions through the Kafka
// admin API (franz-go kadm): group membership, committed offsets, and the
// start and end offsets of the partitions the groups commit to, are
// assigned, or subscribe to. It must be released with Close.
type Kafka struct {
	cl       *kgo.Client
	adm      *kadm.Client
	endpoint string
	groups   []string // sorted, deduplicated allow-list; nil = all
	max      int
	now      func() time.Time
	secret   string

	closeOnce sync.Once
	closed    chan struct{}
}

var _ Poller = (*Kafka)(nil)

// NewKafka validates o and builds the Kafka client. It does not connect:
// the first Poll does, so an unreachable cluster is a poll error, not a
// construction error.
func NewKafka(o KafkaOptions) (*Kafka, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	seeds := make([]string, len(o.Brokers))
	for i, b := range o.Brokers {
		seeds[i] = strings.TrimSpace(b)
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.ClientID("cartograph"),
	}
	if o.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(o.TLS.Clone()))
	}
	if o.SASLUser != "" {
		opts = append(opts, kgo.SASL(plain.Auth{User: o.SASLUser, Pass: o.SASLPassword}.AsMechanism()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, kafkaRedact(fmt.Errorf("kafka: client: %w", err), o.SASLPassword)
	}
	p := &Kafka{
		cl:       cl,
		adm:      kadm.NewClient(cl),
		endpoint: kafkaEndpoint(seeds),
		max:      o.MaxPartitions,
		now:      o.Now,
		secret:   o.SASLPassword,
		closed:   make(chan struct{}),
	}
	if p.max == 0 {
		p.max = DefaultKafkaMaxPartitions
	}
	if p.now == nil {
		p.now = time.Now
	}
	if len(o.Groups) > 0 {
		p.groups = slices.Compact(slices.Sorted(slices.Values(o.Groups)))
	}
	return p, nil
}

// kafkaEndpoint renders seed brokers as "kafka://b1:9092,b2:9092", dropping
// anything up to an '@' in case an address carries user info.
func kafkaEndpoint(seeds []string) string {
	hosts := make([]string, len(seeds))
	for i, s := range seeds {
		if at := strings.LastIndexByte(s, '@'); at >= 0 {
			s = s[at+1:]
		}
		hosts[i] = s
	}
	return "kafka://" + strings.Join(hosts, ",")
}

// Kind implements Poller.
func (p *Kafka) Kind() string { return "kafka" }

// Endpoint implements Poller: the seed brokers, without credentials.
func (p *Kafka) Endpoint() string { return p.endpoint }

// Close releases the client. Poll must not be called after Close; if it is,
// it returns ErrKafkaClosed. Close is safe to call more than once.
func (p *Kafka) Close() error {
	p.closeOnce.Do(func() {
		close(p.closed)
		p.cl.Close()
	})
	return nil
}

// kafkaGroup is what a poll learnt about one group before reading offsets.
type kafkaGroup struct {
	consumers float64         // members; 0 when Empty/Dead; lag.Unknown when it could not be described
	topics    map[string]bool // topics the members are assigned or subscribed to
}

// Poll returns one sample per (group, topic, partition) for the partitions
// each group has committed to, is assigned, or subscribes to:
//
//   - Committed is the committed offset, Unknown when the group has no
//     commit for the partition; Consumed = Committed.
//   - End is the partition's end offset (high watermark), Unknown when it
//     could not be listed; Produced = End (cumulative).
//   - Lag = End - Committed, clamped to 0 below. Unlike kadm's lag (End -
//     commit, unclamped at the start), a commit below the log start offset
//     (its records were deleted by retention) gives Lag = End - start: the
//     messages that can still be consumed. Lag is Unknown when Committed or
//     End is; a group's offset reset policy is not inferred.
//   - Consumers is the number of group members, 0 when the group is Empty
//     or Dead, Unknown when the group could not be described.
//
// Samples are ordered by group, topic and partition. Failures that concern
// some groups or topics are joined into the returned error while the other
// samples are still returned; a failure that leaves nothing usable (no
// broker reachable, ctx done) returns no samples. The error never contains
// the SASL password. Poll returns by ctx's deadline.
func (p *Kafka) Poll(ctx context.Context) ([]lag.Sample, error) {
	select {
	case <-p.closed:
		return nil, ErrKafkaClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, p.fail(err)
	}
	now := p.now()
	var errs []error

	names, types, err := p.listGroups(ctx)
	if err != nil {
		if names == nil {
			return nil, p.fail(err)
		}
		errs = append(errs, err)
	}
	if len(names) > p.max {
		errs = append(errs, fmt.Errorf("%w: %d groups, polled the first %d (MaxPartitions)",
			ErrKafkaTooManyPartitions, len(names), p.max))
		names = names[:p.max]
	}
	if len(names) == 0 {
		return nil, p.joined(errs)
	}

	groups, err := p.describeGroups(ctx, names, types)
	if err != nil {
		if groups == nil {
			return nil, p.fail(err)
		}
		errs = append(errs, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, p.fail(err)
	}

	fetched := p.adm.FetchManyOffsets(ctx, names...)
	if err := ctx.Err(); err != nil {
		return nil, p.fail(err)
	}
	commits := make(map[string]kadm.OffsetResponses, len(names))
	topicSet := make(map[string]bool)
	for _, g := range names {
		r, ok := fetched[g]
		switch {
		case !ok, errors.Is(r.Err, kerr.GroupIDNotFound):
			// No commits.
		case r.Err != nil:
			errs = append(errs, fmt.Errorf("kafka: group %q: fetch offsets: %w", g, r.Err))
		default:
			commits[g] = r.Fetched
			for t := range r.Fetched {
				topicSet[t] = true
			}
		}
		for t := range groups[g].topics {
			topicSet[t] = true
		}
	}
	delete(topicSet, "") // a topic known only by ID (a KIP-848 assignment the broker did not name)
	if len(topicSet) == 0 {
		return nil, p.joined(errs)
	}
	topics := slices.Sorted(maps.Keys(topicSet))

	ends, err := p.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		if !kafkaPartial(err) {
			return nil, p.fail(fmt.Errorf("kafka: list end offsets: %w", err))
		}
		errs = append(errs, fmt.Errorf("kafka: list end offsets: %w", err))
	}
	starts, err := p.adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		// Start offsets only clamp lag; without them lag is End - Committed.
		if ctx.Err() != nil {
			return nil, p.fail(ctx.Err())
		}
		errs = append(errs, fmt.Errorf("kafka: list start offsets: %w", err))
	}

	var (
		samples   []lag.Sample
		dropped   int
		topicErrs = make(map[string]bool)
	)
	emit := func(s lag.Sample) {
		if len(samples) >= p.max {
			dropped++
			return
		}
		samples = append(samples, s)
	}
	for _, g := range names {
		info := groups[g]
		gc := commits[g]
		gTopics := make(map[string]bool, len(gc)+len(info.topics))
		for t := range gc {
			gTopics[t] = true
		}
		for t := range info.topics {
			gTopics[t] = true
		}
		delete(gTopics, "")
		var commitErr error
		for _, t := range slices.Sorted(maps.Keys(gTopics)) {
			tEnds := ends[t]
			if bad, ok := tEnds[-1]; ok {
				// kadm lists a topic it could not describe as partition -1.
				if errors.Is(bad.Err, kerr.UnknownTopicOrPartition) {
					// Deleted, or subscribed to before it was created:
					// nothing to measure.
					continue
				}
				if !topicErrs[t] {
					topicErrs[t] = true
					errs = append(errs, fmt.Errorf("kafka: topic %q: %w", t, bad.Err))
				}
			}
			parts := make(map[int32]bool, len(tEnds)+len(gc[t]))
			for part := range tEnds {
				if part >= 0 {
					parts[part] = true
				}
			}
			for part := range gc[t] {
				parts[part] = true
			}
			for _, part := range slices.Sorted(maps.Keys(parts)) {
				s := lag.Sample{
					Time:      now,
					Key:       lag.Key{System: "kafka", Destination: t, Group: g, Partition: part},
					Lag:       lag.Unknown,
					Committed: lag.Unknown,
					End:       lag.Unknown,
					Consumers: info.consumers,
					Produced:  lag.Unknown,
					Consumed:  lag.Unknown,
					Source:    "kafka",
				}
				commit := int64(-1)
				if c, ok := gc[t][part]; ok {
					switch {
					case c.Err != nil:
						if commitErr == nil {
							commitErr = fmt.Errorf("kafka: group %q: offset of %s/%d: %w", g, t, part, c.Err)
						}
					case c.At >= 0:
						commit = c.At
						s.Committed = float64(commit)
						s.Consumed = s.Committed
					}
				}
				end, endOK := tEnds[part]
				switch {
				case !endOK:
					if !topicErrs[t] {
						topicErrs[t] = true
						errs = append(errs, fmt.Errorf("kafka: topic %q: end offset of partition %d not listed", t, part))
					}
				case end.Err != nil:
					if !topicErrs[t] {
						topicErrs[t] = true
						errs = append(errs, fmt.Errorf("kafka: topic %q: end offset of partition %d: %w", t, part, end.Err))
					}
				default:
					s.End = float64(end.Offset)
					s.Produced = s.End
					if commit >= 0 {
						s.Lag = float64(kafkaLag(commit, starts, t, part, end.Offset))
					}
				}
				emit(s)
			}
		}
		if commitErr != nil {
			errs = append(errs, commitErr)
		}
	}
	if dropped > 0 {
		errs = append(errs, fmt.Errorf("%w: dropped %d of %d partition samples beyond MaxPartitions %d",
			ErrKafkaTooManyPartitions, dropped, dropped+len(samples), p.max))
	}
	return samples, p.joined(errs)
}

// kafkaLag is end - commit, or end - start when the commit lies below the
// partition's log start offset, never negative (a commit past the end, as
// after a topic was truncated, is 0).
func kafkaLag(commit int64, starts kadm.ListedOffsets, topic string, part int32, end int64) int64 {
	from := commit
	if st, ok := starts.Lookup(topic, part); ok && st.Err == nil && st.Offset > commit {
		from = st.Offset
	}
	return max(end-from, 0)
}

// listGroups returns the allow-list, or the sorted classic and KIP-848
// consumer groups the cluster lists, and the type ("classic", "consumer")
// of each listed group. The cluster is listed even with an allow-list, to
// learn the types. A nil slice with an error means there is no allow-list
// and nothing could be listed.
func (p *Kafka) listGroups(ctx context.Context) ([]string, map[string]string, error) {
	req := kmsg.NewPtrListGroupsRequest()
	req.TypesFilter = kafkaGroupTypes // v5+ (Kafka 3.8); older brokers list all and send no type
	shards := p.cl.RequestSharded(ctx, req)
	types := make(map[string]string)
	var errs []error
	for _, sh := range shards {
		err := sh.Err
		if err == nil {
			resp := sh.Resp.(*kmsg.ListGroupsResponse)
			if err = kerr.ErrorForCode(resp.ErrorCode); err == nil {
				for _, g := range resp.Groups {
					types[g.Group] = strings.ToLower(g.GroupType)
				}
				continue
			}
		}
		if sh.Meta.NodeID >= 0 {
			err = fmt.Errorf("broker %d: %w", sh.Meta.NodeID, err)
		}
		errs = append(errs, err)
	}
	var err error
	if len(errs) > 0 {
		err = fmt.Errorf("kafka: list groups: %w", errors.Join(errs...))
	}
	if p.groups != nil {
		// Unlisted groups are described as classic groups first.
		return p.groups, types, err
	}
	if err != nil && len(errs) == len(shards) {
		return nil, nil, err
	}
	return slices.Sorted(maps.Keys(types)), types, err
}

// describeGroups learns each group's members and topics. Classic groups are
// read with DescribeGroups, KIP-848 consumer groups with
// ConsumerGroupDescribe, and so are groups DescribeGroups does not find
// (Kafka 4 answers so for consumer groups). A group that cannot be described
// (not authorized, coordinator down) has Unknown consumers and an error;
// only when every request failed is the map nil.
//
// The requests are issued raw rather than through kadm because kadm fails
// the whole batch when one group is not authorized.
func (p *Kafka) describeGroups(ctx context.Context, names []string, types map[string]string) (map[string]kafkaGroup, error) {
	out := make(map[string]kafkaGroup, len(names))
	var errs []error
	unknown := func(g string, err error) {
		out[g] = kafkaGroup{consumers: lag.Unknown}
		errs = append(errs, fmt.Errorf("kafka: group %q: describe: %w", g, err))
	}
	var (
		classic, next  []string
		shards, failed int
		shardErr       error = errors.New("missing from the response")
	)
	for _, g := range names {
		if types[g] == "consumer" {
			next = append(next, g)
		} else {
			classic = append(classic, g)
		}
	}

	if len(classic) > 0 {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Groups = classic
		for _, sh := range p.cl.RequestSharded(ctx, req) {
			shards++
			if sh.Err != nil {
				failed++
				shardErr = sh.Err
				if r, ok := sh.Req.(*kmsg.DescribeGroupsRequest); ok {
					for _, g := range r.Groups {
						unknown(g, sh.Err)
					}
				}
				continue
			}
			for _, rg := range sh.Resp.(*kmsg.DescribeGroupsResponse).Groups {
				err := kerr.ErrorForCode(rg.ErrorCode)
				switch {
				case errors.Is(err, kerr.GroupIDNotFound):
					next = append(next, rg.Group)
				case err != nil:
					unknown(rg.Group, err)
				default:
					info := kafkaGroup{topics: make(map[string]bool)}
					if rg.State != "Empty" && rg.State != "Dead" {
						info.consumers = float64(len(rg.Members))
					}
					if rg.ProtocolType == "consumer" {
						for _, m := range rg.Members {
							var meta kmsg.ConsumerMemberMetadata
							if meta.ReadFrom(m.ProtocolMetadata) == nil {
								for _, t := range meta.Topics {
									info.topics[t] = true
								}
							}
							var asg kmsg.ConsumerMemberAssignment
							if asg.ReadFrom(m.MemberAssignment) == nil {
								for _, t := range asg.Topics {
									info.topics[t.Topic] = true
								}
							}
						}
					}
					out[rg.Group] = info
				}
			}
		}
	}

	if len(next) > 0 {
		req := kmsg.NewPtrConsumerGroupDescribeRequest()
		req.Groups = next
		for _, sh := range p.cl.RequestSharded(ctx, req) {
			shards++
			if sh.Err != nil {
				failed++
				shardErr = sh.Err
				if r, ok := sh.Req.(*kmsg.ConsumerGroupDescribeRequest); ok {
					for _, g := range r.Groups {
						unknown(g, sh.Err)
					}
				}
				continue
			}
			for _, rg := range sh.Resp.(*kmsg.ConsumerGroupDescribeResponse).Groups {
				err := kerr.ErrorForCode(rg.ErrorCode)
				switch {
				case errors.Is(err, kerr.GroupIDNotFound):
					out[rg.Group] = kafkaGroup{} // does not exist (any more): no members
				case err != nil:
					unknown(rg.Group, err)
				default:
					info := kafkaGroup{topics: make(map[string]bool)}
					if rg.State != "Empty" && rg.State != "Dead" {
						info.consumers = float64(len(rg.Members))
					}
					for _, m := range rg.Members {
						for _, t := range m.SubscribedTopics {
							info.topics[t] = true
						}
						for _, tp := range m.Assignment.TopicPartitions {
							info.topics[tp.Topic] = true
						}
					}
					out[rg.Group] = info
				}
			}
		}
	}

	for _, g := range names {
		if _, ok := out[g]; !ok {
			unknown(g, shardErr)
		}
	}
	if shards > 0 && failed == shards {
		return nil, errors.Join(errs...)
	}
	return out, errors.Join(errs...)
}

// kafkaPartial reports whether err is a kadm.ShardErrors where some shards
// succeeded, so the response is partly usable.
func kafkaPartial(err error) bool {
	var se *kadm.ShardErrors
	return errors.As(err, &se) && !se.AllFailed
}

// fail wraps an error that ends a poll.
func (p *Kafka) fail(err error) error {
	return kafkaRedact(fmt.Errorf("kafka poll %s: %w", p.endpoint, err), p.secret)
}

// joined is nil without errors, else the errors joined under one poll error.
func (p *Kafka) joined(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return p.fail(errors.Join(errs...))
}

// kafkaRedactedError hides a secret in the message of the error it wraps.
type kafkaRedactedError struct {
	err    error
	secret string
}

func (e *kafkaRedactedError) Error() string {
	return strings.ReplaceAll(e.err.Error(), e.secret, "[REDACTED]")
}

func (e *kafkaRedactedError) Unwrap() error { return e.err }

// kafkaRedact returns err with secret removed from its message.
func kafkaRedact(err error, secret string) error {
	if err == nil || secret == "" {
		return err
	}
	return &kafkaRedactedError{err: err, secret: secret}
}
