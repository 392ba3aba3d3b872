package brokers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// Errors of the RabbitMQ poller, for errors.Is.
var (
	// ErrRabbitMQAuth means the management API refused the credentials
	// (HTTP 401). The error text never contains them.
	ErrRabbitMQAuth = errors.New("authentication failed")
	// ErrRabbitMQTooManyQueues means the broker has more (allow-listed)
	// queues than RabbitMQOptions.MaxQueues; Poll returns the first
	// MaxQueues of them, by vhost and name, together with this error.
	ErrRabbitMQTooManyQueues = errors.New("too many queues")
	// ErrRabbitMQResponseTooLarge means one management API response was
	// larger than the poller reads.
	ErrRabbitMQResponseTooLarge = errors.New("response too large")
)

const (
	// rabbitDefaultMaxQueues is RabbitMQOptions.MaxQueues when unset.
	rabbitDefaultMaxQueues = 10_000
	// rabbitPageSize is the largest page the 3.x management API serves.
	rabbitPageSize = 500
	// rabbitMaxResponseBytes bounds one response body (one page).
	rabbitMaxResponseBytes = 64 << 20
	// rabbitMaxFilterLen bounds the server-side name filter built from the
	// allow-list; a longer list is filtered client-side only, so the
	// request line stays short.
	rabbitMaxFilterLen = 2048
	// rabbitColumns are the queue fields Poll asks for.
	rabbitColumns = "name,vhost,type,messages_ready,messages_unacknowledged,consumers," +
		"message_stats.publish,message_stats.ack,message_stats.deliver_no_ack,message_stats.get_no_ack"
)

// RabbitMQOptions configure a RabbitMQ poller.
type RabbitMQOptions struct {
	// URL is the management API base, e.g. http://127.0.0.1:15672 (a
	// path prefix such as https://mq.example/rabbitmq is kept). It must
	// not contain credentials.
	URL string
	// Username and Password are sent as HTTP basic auth. They never
	// appear in logs, errors or Endpoint.
	Username, Password string
	// VHost limits the poll to one virtual host; "" polls all of them.
	VHost string
	// Queues is an optional allow-list of queue names (in VHost, or in
	// any vhost when VHost is ""); empty means every queue, bounded by
	// MaxQueues.
	Queues []string
	// MaxQueues bounds the samples of one poll; default 10,000. Queues
	// beyond it are dropped and Poll says so with
	// ErrRabbitMQTooManyQueues.
	MaxQueues int
	// Client makes the requests; default is a client of its own (no
	// shared transport, no proxy from the environment). Poll's ctx bounds
	// every request.
	Client *http.Client
	// Now is the clock stamped on samples; default time.Now.
	Now func() time.Time
}

// RabbitMQ polls queue depths from the RabbitMQ management HTTP API
// (GET /api/queues, paginated) and returns one lag.Sample per queue:
//
//   - Key: System "rabbitmq", Destination the plain queue name (as in
//     traces' messaging.destination.name, which carry no vhost), Group ""
//     and Partition -1.
//   - Lag = messages_ready + messages_unacknowledged; Consumers =
//     consumers. Stream queues keep their messages after delivery, so
//     their Lag is Unknown.
//   - Produced = message_stats.publish; Consumed = message_stats.ack +
//     deliver_no_ack + get_no_ack (messages removed from the queue by
//     consumers, acknowledged or auto-acked). Both are cumulative and
//     Unknown when the broker reports no message_stats yet, as are
//     fields of a queue whose first statistics have not arrived.
//   - Committed and End are Unknown; Time is the clock after the poll.
//   - Source is "rabbitmq" for the default vhost "/" and
//     "rabbitmq:<vhost>" for others.
//
// The numbers are as fresh as the broker's statistics: collected every
// collect_statistics_interval and kept at the granularity of the
// management plugin's sample_retention_policies (both 5 s by default; set
// management.sample_retention_policies.{global,basic}.minute = 1 as well
// for 1 s). The consumer count may trail the queue depth by one period.
// Queues of the same name in different vhosts share a
// lag.Key; poll such vhosts with one poller each (VHost set) feeding
// separate stores, or allow-list only one of them.
//
// A RabbitMQ is safe for use by one goroutine at a time, as Poller says.
type RabbitMQ struct {
	o        RabbitMQOptions
	base     string // URL without trailing slash
	endpoint string
	allow    map[string]struct{}
	filter   string // server-side name regex, "" for none
	maxBody  int64
}

var _ Poller = (*RabbitMQ)(nil)

// NewRabbitMQ validates o and returns a poller. URL must be an absolute
// http or https URL without credentials, query or fragment.
func NewRabbitMQ(o RabbitMQOptions) (*RabbitMQ, error) {
	u, err := url.Parse(o.URL)
	switch {
	case err != nil || u.Host == "":
		return nil, fmt.Errorf("brokers: rabbitmq URL %s: want an absolute http(s) URL", redact(o.URL))
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("brokers: rabbitmq URL %s: scheme must be http or https", redact(o.URL))
	case u.User != nil:
		return nil, fmt.Errorf("brokers: rabbitmq URL %s: must not contain credentials; set Username and Password", redact(o.URL))
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("brokers: rabbitmq URL %s: must not have a query or fragment", redact(o.URL))
	}
	if o.MaxQueues < 0 {
		return nil, fmt.Errorf("brokers: rabbitmq MaxQueues %d is negative", o.MaxQueues)
	}
	if o.MaxQueues == 0 {
		o.MaxQueues = rabbitDefaultMaxQueues
	}
	if o.Client == nil {
		o.Client = rabbitDefaultClient()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &RabbitMQ{
		o:        o,
		base:     strings.TrimRight(u.String(), "/"),
		endpoint: redact(o.URL),
		maxBody:  rabbitMaxResponseBytes,
	}
	if len(o.Queues) > 0 {
		p.allow = make(map[string]struct{}, len(o.Queues))
		quoted := make([]string, 0, len(o.Queues))
		for _, q := range o.Queues {
			if q == "" {
				return nil, errors.New("brokers: rabbitmq Queues contains an empty name")
			}
			if _, dup := p.allow[q]; !dup {
				p.allow[q] = struct{}{}
				quoted = append(quoted, regexp.QuoteMeta(q))
			}
		}
		// The broker matches names caselessly unless told otherwise, and
		// "$" would allow a trailing newline.
		if f := `(?-i)^(?:` + strings.Join(quoted, "|") + `)\z`; len(url.QueryEscape(f)) <= rabbitMaxFilterLen {
			p.filter = f
		}
	}
	return p, nil
}

// rabbitDefaultClient returns a client with a transport of its own, so
// nothing is shared with http.DefaultTransport.
func rabbitDefaultClient() *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}}
}

// Kind implements Poller.
func (p *RabbitMQ) Kind() string { return "rabbitmq" }

// Endpoint implements Poller: the management URL without credentials.
func (p *RabbitMQ) Endpoint() string { return p.endpoint }

// rabbitQueue is one item of GET /api/queues with rabbitColumns. Pointers
// are nil when the broker did not report the field.
type rabbitQueue struct {
	Name         string   `json:"name"`
	VHost        string   `json:"vhost"`
	Type         string   `json:"type"`
	Ready        *float64 `json:"messages_ready"`
	Unacked      *float64 `json:"messages_unacknowledged"`
	Consumers    *float64 `json:"consumers"`
	MessageStats *struct {
		Publish      *float64 `json:"publish"`
		Ack          *float64 `json:"ack"`
		DeliverNoAck *float64 `json:"deliver_no_ack"`
		GetNoAck     *float64 `json:"get_no_ack"`
	} `json:"message_stats"`
}

// rabbitPage is one page of GET /api/queues?page=N.
type rabbitPage struct {
	Items         []rabbitQueue `json:"items"`
	Page          int           `json:"page"`
	PageCount     int           `json:"page_count"`
	FilteredCount int           `json:"filtered_count"`
}

// Poll implements Poller. It reads every page of the queue list within
// ctx. When more than MaxQueues queues match, it returns the first
// MaxQueues samples and an error wrapping ErrRabbitMQTooManyQueues; on any
// other error it returns no samples.
func (p *RabbitMQ) Poll(ctx context.Context) ([]lag.Sample, error) {
	type vq struct{ vhost, name string }
	seen := map[vq]struct{}{}
	var (
		queues  []rabbitQueue
		dropped int
		total   = -1 // queues matching, when the broker's count is exact
	)
	for page := 1; ; page++ {
		pg, err := p.rabbitGetPage(ctx, page)
		if errors.Is(err, errRabbitPageOutOfRange) && page > 1 {
			break // queues were deleted between pages
		}
		if err != nil {
			return nil, err
		}
		if page == 1 && (p.allow == nil || p.filter != "") {
			total = pg.FilteredCount
		}
		for _, q := range pg.Items {
			if p.allow != nil {
				if _, ok := p.allow[q.Name]; !ok {
					continue
				}
			}
			k := vq{q.VHost, q.Name}
			if _, dup := seen[k]; dup {
				continue // shifted across pages by a concurrent change
			}
			seen[k] = struct{}{}
			if len(queues) >= p.o.MaxQueues {
				dropped++
				continue
			}
			queues = append(queues, q)
		}
		if page >= pg.PageCount || len(pg.Items) == 0 {
			break
		}
		if dropped > 0 && total >= 0 {
			break // the broker's count says how many are dropped
		}
	}
	now := p.o.Now()
	out := make([]lag.Sample, len(queues))
	for i := range queues {
		out[i] = rabbitSample(&queues[i], now)
	}
	if dropped > 0 {
		if total > len(queues) {
			return out, fmt.Errorf("brokers: rabbitmq %s: %w: %d queues, kept the first %d (MaxQueues)",
				p.endpoint, ErrRabbitMQTooManyQueues, total, len(queues))
		}
		return out, fmt.Errorf("brokers: rabbitmq %s: %w: dropped %d queues beyond MaxQueues %d",
			p.endpoint, ErrRabbitMQTooManyQueues, dropped, p.o.MaxQueues)
	}
	return out, nil
}

// rabbitSample converts one queue; see RabbitMQ for the mapping.
func rabbitSample(q *rabbitQueue, now time.Time) lag.Sample {
	s := lag.Sample{
		Time:      now,
		Key:       lag.Key{System: "rabbitmq", Destination: q.Name, Partition: -1},
		Lag:       lag.Unknown,
		Committed: lag.Unknown,
		End:       lag.Unknown,
		Consumers: lag.Unknown,
		Produced:  lag.Unknown,
		Consumed:  lag.Unknown,
		Source:    "rabbitmq",
	}
	if q.VHost != "/" && q.VHost != "" {
		s.Source = "rabbitmq:" + q.VHost
	}
	if q.Type != "stream" && (q.Ready != nil || q.Unacked != nil) {
		s.Lag = rabbitValue(q.Ready) + rabbitValue(q.Unacked)
	}
	if q.Consumers != nil {
		s.Consumers = *q.Consumers
	}
	if m := q.MessageStats; m != nil {
		if m.Publish != nil {
			s.Produced = *m.Publish
		}
		if m.Ack != nil || m.DeliverNoAck != nil || m.GetNoAck != nil {
			s.Consumed = rabbitValue(m.Ack) + rabbitValue(m.DeliverNoAck) + rabbitValue(m.GetNoAck)
		}
	}
	return s
}

// rabbitValue returns *v, or 0 for nil.
func rabbitValue(v *float64) float64 {
	if v == nil {
		return 0
	}
	return *v
}

// errRabbitPageOutOfRange is the broker's answer for a page past the end.
var errRabbitPageOutOfRange = errors.New("page out of range")

// rabbitGetPage fetches and decodes one page of the queue list.
func (p *RabbitMQ) rabbitGetPage(ctx context.Context, page int) (*rabbitPage, error) {
	path := "/api/queues"
	if p.o.VHost != "" {
		path += "/" + url.PathEscape(p.o.VHost)
	}
	q := url.Values{
		"page":      {strconv.Itoa(page)},
		"page_size": {strconv.Itoa(rabbitPageSize)},
		"sort":      {"name"},
		"columns":   {rabbitColumns},
	}
	if p.filter != "" {
		q.Set("name", p.filter)
		q.Set("use_regex", "true")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path+"?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("brokers: rabbitmq %s: %w", p.endpoint, err)
	}
	req.SetBasicAuth(p.o.Username, p.o.Password)
	req.Header.Set("Accept", "application/json")
	where := fmt.Sprintf("brokers: rabbitmq GET %s%s", p.endpoint, path)
	resp, err := p.o.Client.Do(req)
	if err != nil {
		// url.Error repeats the whole request URL; keep its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, p.maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read response: %w", where, err)
	}
	if int64(len(body)) > p.maxBody {
		return nil, fmt.Errorf("%s: %w: more than %d bytes (page size %d)", where, ErrRabbitMQResponseTooLarge, p.maxBody, rabbitPageSize)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, fmt.Errorf("%s: %w (HTTP 401)", where, ErrRabbitMQAuth)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		var e struct{ Error, Reason string }
		_ = json.Unmarshal(body, &e)
		if resp.StatusCode == http.StatusBadRequest && e.Error == "page_out_of_range" {
			return nil, fmt.Errorf("%s: %w", where, errRabbitPageOutOfRange)
		}
		msg := e.Reason
		if msg == "" {
			msg = e.Error
		}
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		if msg != "" {
			return nil, fmt.Errorf("%s: HTTP %d: %s", where, resp.StatusCode, msg)
		}
		return nil, fmt.Errorf("%s: HTTP %d", where, resp.StatusCode)
	}
	var pg rabbitPage
	if err := json.Unmarshal(body, &pg); err != nil {
		return nil, fmt.Errorf("%s: decode page %d: %w", where, page, err)
	}
	return &pg, nil
}
