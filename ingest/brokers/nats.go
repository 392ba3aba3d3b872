package brokers

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// Errors of the NATS poller, to match with errors.Is.
var (
	// ErrNATSTooManyConsumers means the server reported more consumers than
	// NATSOptions.MaxConsumers; Poll returns the first
	// MaxConsumers samples with it.
	ErrNATSTooManyConsumers = errors.New("more JetStream consumers than MaxConsumers")
	// ErrNATSJetStreamDisabled means the server answers /jsz but JetStream is
	// not enabled on it.
	ErrNATSJetStreamDisabled = errors.New("JetStream is not enabled on the server")
	// ErrNATSResponseTooLarge means the /jsz response exceeded the read bound.
	ErrNATSResponseTooLarge = errors.New("/jsz response too large")
	// ErrNATSAmbiguousConsumer means two accounts hold a stream and consumer of
	// the same names, which lag.Key (it has no account) cannot tell apart;
	// Poll keeps the first account's by id and
	// returns its samples with it.
	ErrNATSAmbiguousConsumer = errors.New("same stream and consumer name in several accounts")
)

const (
	natsDefaultMaxConsumers = 10_000
	// natsMinResponseBytes is the least /jsz response Poll reads; the bound
	// grows by natsBytesPerConsumer for each consumer MaxConsumers allows
	// (a consumer with its config takes about 1.2 KiB of indented JSON).
	natsMinResponseBytes = 64 << 20
	natsBytesPerConsumer = 4 << 10
	// natsAccountLimit is the /jsz "limit" parameter. The server pages
	// accounts only (never streams or consumers), 1,024 by default, and
	// sorts them by name only when offset > 0, so pages taken with offset
	// 0, 1024, ... can skip or repeat accounts. One request with a limit
	// above any real account count avoids paging; fewer accounts than the
	// reported total is an error.
	natsAccountLimit = 1 << 20
	// natsDefaultClientTimeout bounds a poll whose ctx has no deadline when
	// no Client is given.
	natsDefaultClientTimeout = 30 * time.Second
	natsErrorBodyBytes       = 512
)

// NATSOptions configure a NATS JetStream poller.
type NATSOptions struct {
	// URL is the server's monitoring base (its -m / http port), e.g.
	// http://127.0.0.1:8222, or a reverse proxy's path to it. It must not
	// carry a query or fragment; user info in it is moved to basic auth
	// unless Username is set.
	URL string
	// Username and Password (basic auth) or Token (bearer) authenticate to
	// the monitoring endpoint. nats-server's monitoring port has no auth
	// of its own; these are for a proxy in front of it. They are never
	// logged and never appear in errors.
	Username, Password, Token string
	// MaxConsumers bounds the samples of one poll, default 10,000. Beyond
	// it consumers are dropped (the same ones every poll: the order is by
	// account id, stream name, consumer name) and Poll's error wraps
	// ErrNATSTooManyConsumers. The response read is bounded by
	// max(64 MiB, 4 KiB × MaxConsumers).
	MaxConsumers int
	// Client makes the requests; default a client with a 30 s timeout.
	// Poll also honours its ctx's deadline.
	Client *http.Client
	// Now stamps samples; default time.Now.
	Now func() time.Time
}

// NATS polls a NATS JetStream server's monitoring endpoint,
// GET /jsz?consumers=true&config=true, and turns each (stream, consumer)
// into one lag.Sample:
//
//   - System "nats", Source "nats", Partition -1, Time Now().
//   - Destination is the STREAM name and Group the consumer name (the
//     durable name; an ephemeral consumer's generated name changes when
//     its client reconnects, so its history starts over).
//   - Lag = num_pending + num_ack_pending: messages matching the
//     consumer's filter not yet delivered, plus delivered but unacked.
//   - Committed = Consumed = ack_floor.stream_seq and End = Produced =
//     state.last_seq, all in stream sequence space. last_seq is a
//     cumulative count of messages ever stored in the stream: it does not
//     drop when messages are acked away (work-queue retention), expire or
//     are purged, and it starts over only when the stream is recreated.
//     For a consumer with a filter subject End - Committed also counts
//     other subjects' messages and rates are stream-wide: Lag is the
//     consumer's own backlog.
//   - Consumers: /jsz reports no client count. A push consumer (one with a
//     deliver_subject) is 1 when push_bound (at least one subscriber; a
//     queue group counts once) and 0 when not. A pull consumer is 1 when
//     num_waiting > 0 (at least one pull request is waiting; requests are
//     not clients) and Unknown otherwise, since a live client between two
//     fetches, busy with its last batch, looks the same as none.
//   - num_redelivered has no field in lag.Sample and is not reported.
//
// Traces name a NATS destination by SUBJECT (messaging.destination.name
// "orders.created"), while JetStream keeps lag per STREAM ("ORDERS",
// subjects "orders.>"), so Destination here does not equal a trace's
// destination name. Streams returns the subjects each stream captures and
// each consumer's filter subjects from the last poll, for a join that
// matches a subject against those patterns.
//
// In a cluster each server reports the streams it holds a replica of,
// including non-leader replicas whose consumer state may trail the
// leader's: poll one server per stream, or expect duplicate keys from
// several pollers.
type NATS struct {
	o        NATSOptions
	jszURL   string // with query, without user info
	endpoint string
	maxBody  int64

	mu      sync.Mutex
	streams []NATSStream
}

// NATSStream is what the last poll saw of one stream's subjects.
type NATSStream struct {
	Name string
	// Subjects are the stream's config.subjects, NATS patterns with "*"
	// (one token) and ">" (the rest) wildcards. Empty for a stream fed by
	// a mirror or sources.
	Subjects []string
	// ConsumerFilters holds, per consumer name, its filter_subject (and
	// filter_subjects, NATS 2.10+); a consumer without a filter reads
	// every subject of the stream and has no entry.
	ConsumerFilters map[string][]string
}

// NewNATS validates o and returns a poller. It makes no request.
func NewNATS(o NATSOptions) (*NATS, error) {
	if o.URL == "" {
		return nil, errors.New("brokers: nats: URL is required")
	}
	u, err := url.Parse(o.URL)
	// The parse error and o.URL may hold a password: neither is quoted.
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("brokers: nats: URL %s is not an http(s)://host[:port] address", redact(o.URL))
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("brokers: nats: URL %s must not have a query or fragment", redact(o.URL))
	}
	if u.User != nil {
		if o.Username == "" && o.Token == "" {
			o.Username = u.User.Username()
			o.Password, _ = u.User.Password()
		}
		u.User = nil
	}
	if o.Token != "" && (o.Username != "" || o.Password != "") {
		return nil, errors.New("brokers: nats: set either Username/Password or Token, not both")
	}
	switch {
	case o.MaxConsumers < 0:
		return nil, fmt.Errorf("brokers: nats: MaxConsumers %d is negative", o.MaxConsumers)
	case o.MaxConsumers == 0:
		o.MaxConsumers = natsDefaultMaxConsumers
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: natsDefaultClientTimeout}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ju := u.JoinPath("jsz")
	ju.RawQuery = url.Values{
		"consumers": {"true"},
		"config":    {"true"},
		"limit":     {strconv.Itoa(natsAccountLimit)},
	}.Encode()
	return &NATS{
		o:        o,
		jszURL:   ju.String(),
		endpoint: redact(ju.String()),
		maxBody:  max(natsMinResponseBytes, int64(o.MaxConsumers)*natsBytesPerConsumer),
	}, nil
}

// Kind returns "nats".
func (p *NATS) Kind() string { return "nats" }

// Endpoint returns the /jsz address polled, without credentials or query.
func (p *NATS) Endpoint() string { return p.endpoint }

// Poll reads /jsz once and returns one sample per (stream, consumer), in
// the order account id, stream name, consumer name. It returns by ctx's
// deadline. With ErrNATSTooManyConsumers or ErrNATSAmbiguousConsumer it
// returns the samples it kept along with the error; with any other error,
// none. Errors contain no credentials.
func (p *NATS) Poll(ctx context.Context) ([]lag.Sample, error) {
	jsz, err := p.fetch(ctx)
	if err != nil {
		return nil, err
	}
	if jsz.Disabled {
		return nil, fmt.Errorf("brokers: nats: %s: %w", p.endpoint, ErrNATSJetStreamDisabled)
	}
	if len(jsz.AccountDetails) < jsz.Accounts {
		return nil, fmt.Errorf("brokers: nats: %s: reported %d of %d JetStream accounts", p.endpoint, len(jsz.AccountDetails), jsz.Accounts)
	}
	now := p.o.Now()
	samples, streams, errs := p.samples(jsz, now)
	p.mu.Lock()
	p.streams = streams
	p.mu.Unlock()
	return samples, errors.Join(errs...)
}

// Streams returns, for the streams with a consumer in the samples of the
// last poll that got a /jsz answer, sorted by name, which subjects each
// captures and which each consumer filters on (a stream name in several
// accounts: the union). The caller may keep and modify the result.
func (p *NATS) Streams() []NATSStream {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]NATSStream, len(p.streams))
	for i, s := range p.streams {
		out[i] = NATSStream{Name: s.Name, Subjects: slices.Clone(s.Subjects)}
		if s.ConsumerFilters != nil {
			out[i].ConsumerFilters = make(map[string][]string, len(s.ConsumerFilters))
			for c, f := range s.ConsumerFilters {
				out[i].ConsumerFilters[c] = slices.Clone(f)
			}
		}
	}
	return out
}

// fetch GETs and decodes /jsz within the read bound.
func (p *NATS) fetch(ctx context.Context) (*natsJSZ, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.jszURL, nil)
	if err != nil {
		return nil, fmt.Errorf("brokers: nats: GET %s: %w", p.endpoint, err)
	}
	req.Header.Set("Accept", "application/json")
	switch {
	case p.o.Token != "":
		req.Header.Set("Authorization", "Bearer "+p.o.Token)
	case p.o.Username != "" || p.o.Password != "":
		req.SetBasicAuth(p.o.Username, p.o.Password)
	}
	resp, err := p.o.Client.Do(req)
	if err != nil {
		// *url.Error repeats the request URL; say it once, redacted.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("brokers: nats: GET %s: %w", p.endpoint, err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
		_ = resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, natsErrorBodyBytes))
		msg := p.scrub(string(b))
		if msg != "" {
			msg = ": " + msg
		}
		return nil, fmt.Errorf("brokers: nats: GET %s: HTTP %s%s", p.endpoint, resp.Status, msg)
	}
	lr := &io.LimitedReader{R: resp.Body, N: p.maxBody + 1}
	var jsz natsJSZ
	err = json.NewDecoder(lr).Decode(&jsz)
	if lr.N <= 0 {
		return nil, fmt.Errorf("brokers: nats: GET %s: more than %d bytes: %w", p.endpoint, p.maxBody, ErrNATSResponseTooLarge)
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, fmt.Errorf("brokers: nats: GET %s: decode /jsz: %w", p.endpoint, err)
	}
	return &jsz, nil
}

// samples turns a decoded /jsz into samples and the streams' subjects.
func (p *NATS) samples(jsz *natsJSZ, now time.Time) ([]lag.Sample, []NATSStream, []error) {
	accounts := jsz.AccountDetails
	slices.SortFunc(accounts, func(a, b natsAccount) int { return cmp.Compare(a.ID, b.ID) })
	var (
		out     []lag.Sample
		streams []NATSStream
		errs    []error
		total   int
		dups    int
		seen    = map[lag.Key]bool{}
		byName  = map[string]int{} // stream name -> index in streams
	)
	for _, acc := range accounts {
		slices.SortFunc(acc.Streams, func(a, b natsStreamDetail) int { return cmp.Compare(a.Name, b.Name) })
		for _, st := range acc.Streams {
			if st.Name == "" {
				continue // not from a real server; a sample needs a destination
			}
			slices.SortFunc(st.Consumers, func(a, b natsConsumer) int { return cmp.Compare(a.Name, b.Name) })
			var subjects []string
			if st.Config != nil {
				subjects = st.Config.Subjects
			}
			kept := false
			filters := map[string][]string{}
			for _, c := range st.Consumers {
				total++
				k := lag.Key{System: "nats", Destination: st.Name, Group: c.Name, Partition: -1}
				if seen[k] {
					dups++
					continue
				}
				if len(out) >= p.o.MaxConsumers {
					continue
				}
				seen[k], kept = true, true
				out = append(out, lag.Sample{
					Time:      now,
					Key:       k,
					Lag:       float64(c.NumPending) + float64(c.NumAckPending),
					Committed: float64(c.AckFloor.StreamSeq),
					End:       float64(st.State.LastSeq),
					Consumers: c.consumers(),
					Produced:  float64(st.State.LastSeq),
					Consumed:  float64(c.AckFloor.StreamSeq),
					Source:    "nats",
					// Traces name subjects: what this consumer reads.
					Subjects: natsSubjects(c.filters(), subjects),
				})
				if f := c.filters(); len(f) > 0 {
					filters[c.Name] = f
				}
			}
			if !kept {
				continue
			}
			i, ok := byName[st.Name]
			if !ok {
				i = len(streams)
				byName[st.Name] = i
				streams = append(streams, NATSStream{Name: st.Name})
			}
			ns := &streams[i]
			for _, s := range subjects {
				if !slices.Contains(ns.Subjects, s) {
					ns.Subjects = append(ns.Subjects, s)
				}
			}
			for c, f := range filters {
				if ns.ConsumerFilters == nil {
					ns.ConsumerFilters = map[string][]string{}
				}
				ns.ConsumerFilters[c] = f
			}
		}
	}
	if dups > 0 {
		errs = append(errs, fmt.Errorf("brokers: nats: %s: %d consumers dropped: %w", p.endpoint, dups, ErrNATSAmbiguousConsumer))
	}
	if total-dups > p.o.MaxConsumers {
		errs = append(errs, fmt.Errorf("brokers: nats: %s: %d consumers reported, %d dropped beyond %d: %w",
			p.endpoint, total, total-dups-p.o.MaxConsumers, p.o.MaxConsumers, ErrNATSTooManyConsumers))
	}
	slices.SortFunc(streams, func(a, b NATSStream) int { return cmp.Compare(a.Name, b.Name) })
	return out, streams, errs
}

// scrub makes a response body fit for an error: printable, one line,
// short, and without the configured credentials in any form.
func (p *NATS) scrub(s string) string {
	var secrets []string
	for _, v := range []string{p.o.Password, p.o.Token, p.o.Username} {
		if v != "" {
			secrets = append(secrets, v)
		}
	}
	if p.o.Username != "" || p.o.Password != "" {
		secrets = append(secrets, base64.StdEncoding.EncodeToString([]byte(p.o.Username+":"+p.o.Password)))
	}
	// Longest first, so a secret containing another is removed whole.
	slices.SortFunc(secrets, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	for _, v := range secrets {
		s = strings.ReplaceAll(s, v, "[redacted]")
	}
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case r < ' ' || r == 0x7f || r == '\uFFFD':
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// natsJSZ is the part of nats-server's JSInfo (/jsz) the poller reads.
type natsJSZ struct {
	Disabled       bool          `json:"disabled"`
	Accounts       int           `json:"accounts"`
	AccountDetails []natsAccount `json:"account_details"`
}

type natsAccount struct {
	ID      string             `json:"id"`
	Streams []natsStreamDetail `json:"stream_detail"`
}

type natsStreamDetail struct {
	Name   string `json:"name"`
	Config *struct {
		Subjects []string `json:"subjects"`
	} `json:"config"`
	State struct {
		LastSeq uint64 `json:"last_seq"`
	} `json:"state"`
	Consumers []natsConsumer `json:"consumer_detail"`
}

type natsConsumer struct {
	Name   string `json:"name"`
	Config *struct {
		DeliverSubject string   `json:"deliver_subject"`
		FilterSubject  string   `json:"filter_subject"`
		FilterSubjects []string `json:"filter_subjects"`
	} `json:"config"`
	AckFloor struct {
		StreamSeq uint64 `json:"stream_seq"`
	} `json:"ack_floor"`
	NumAckPending uint64 `json:"num_ack_pending"`
	NumWaiting    uint64 `json:"num_waiting"`
	NumPending    uint64 `json:"num_pending"`
	PushBound     bool   `json:"push_bound"`
}

// consumers estimates the consumer's clients; see NATS.
func (c *natsConsumer) consumers() float64 {
	switch {
	case c.PushBound || c.NumWaiting > 0:
		return 1
	case c.Config != nil && c.Config.DeliverSubject != "":
		return 0 // push consumer without interest on its deliver subject
	default:
		return lag.Unknown
	}
}

// filters returns the consumer's filter subjects, if any.
func (c *natsConsumer) filters() []string {
	if c.Config == nil {
		return nil
	}
	var f []string
	if c.Config.FilterSubject != "" {
		f = append(f, c.Config.FilterSubject)
	}
	for _, s := range c.Config.FilterSubjects {
		if s != "" && !slices.Contains(f, s) {
			f = append(f, s)
		}
	}
	return f
}

// natsSubjects is what a consumer reads: its filters, or else every subject
// of its stream.
func natsSubjects(filters, stream []string) []string {
	if len(filters) > 0 {
		return filters
	}
	return stream
}
