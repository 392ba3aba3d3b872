// Package client reads cartograph's JSON API (SPEC.md "HTTP API") over HTTP:
// the live and past graph, coupling, findings, the graph diff, broker status
// and the change stream. The UI uses it, whether the collector runs in the
// same process or on another machine.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/changes"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/review"
	"github.com/seed-a49a8342/cartograph/web/api"
)

// ErrUnreachable wraps every failure to get an answer from the collector
// (connection refused, timeout, a body that is not the API's JSON), as
// opposed to an answer that is an error (StatusError).
var ErrUnreachable = errors.New("collector unreachable")

// StatusError is an error answer from the API (the same type the
// in-process api.Local returns).
type StatusError = api.StatusError

// Options configure a Client.
type Options struct {
	// BaseURL is the collector's API address, e.g. http://127.0.0.1:8070.
	BaseURL string
	// Token, if set, is sent as "Authorization: Bearer <token>" (the
	// collector's viewer token).
	Token string
	// HTTP is the client used (default: one with a 10s timeout). When its
	// Transport is an *http.Transport, the live stream's websocket is
	// dialled with the same TLS configuration, dialer and proxy.
	HTTP *http.Client
	// MaxBodyBytes bounds each answer read (default 64 MiB).
	MaxBodyBytes int64
}

// Client calls the API. It is safe for concurrent use.
type Client struct {
	o    Options
	base *url.URL
}

// New returns a Client for o.
func New(o Options) (*Client, error) {
	u, err := url.Parse(strings.TrimSuffix(o.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: collector URL %q: want http(s)://host:port", o.BaseURL)
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 64 << 20
	}
	return &Client{o: o, base: u}, nil
}

// BaseURL returns the collector address the client calls.
func (c *Client) BaseURL() string { return c.base.String() }

// Graph returns the graph over window ending now, or ending at `at` when
// at is not zero (from the collector's storage). A zero window is the
// collector's default.
func (c *Client) Graph(ctx context.Context, window time.Duration, at time.Time) (*graph.Snapshot, error) {
	q := url.Values{}
	if window > 0 {
		q.Set("window", window.String())
	}
	if !at.IsZero() {
		q.Set("at", at.UTC().Format(time.RFC3339Nano))
	}
	var s graph.Snapshot
	if err := c.get(ctx, "/api/v1/graph", q, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Coupling is the body of GET /api/v1/coupling.
type Coupling = api.Coupling

// CouplingNode is one node's coupling figures.
type CouplingNode = api.CouplingNode

// Coupling returns the coupling figures over window (0: the default).
func (c *Client) Coupling(ctx context.Context, window time.Duration) (*Coupling, error) {
	q := url.Values{}
	if window > 0 {
		q.Set("window", window.String())
	}
	var out Coupling
	if err := c.get(ctx, "/api/v1/coupling", q, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Findings returns the findings in state (0: every state).
func (c *Client) Findings(ctx context.Context, state finding.State) ([]finding.Finding, error) {
	return c.FindingsAt(ctx, state, time.Time{})
}

// FindingsAt returns the findings in state (0: every state) as they were
// at `at`, from the collector's storage (GET /api/v1/findings?at=); a zero
// `at` reads the live ones, as Findings does.
func (c *Client) FindingsAt(ctx context.Context, state finding.State, at time.Time) ([]finding.Finding, error) {
	var out struct {
		Findings []finding.Finding `json:"findings"`
	}
	if err := c.get(ctx, "/api/v1/findings", findingsQuery(state, at), &out); err != nil {
		return nil, err
	}
	return out.Findings, nil
}

// Incidents returns every incident the collector keeps, open and
// resolved (GET /api/v1/incidents?state=all).
func (c *Client) Incidents(ctx context.Context) ([]finding.Incident, error) {
	var out struct {
		Incidents []finding.Incident `json:"incidents"`
	}
	if err := c.get(ctx, "/api/v1/incidents", url.Values{"state": {"all"}}, &out); err != nil {
		return nil, err
	}
	return out.Incidents, nil
}

// findingsQuery is the query of GET /api/v1/findings for state and `at`.
func findingsQuery(state finding.State, at time.Time) url.Values {
	q := url.Values{"state": {"all"}}
	if state != 0 {
		q.Set("state", state.String())
	}
	if !at.IsZero() {
		q.Set("at", at.UTC().Format(time.RFC3339Nano))
	}
	return q
}

// Diff returns what changed between the window ending at from and the one
// ending at to, and the observations of the review that appeared or went
// away.
func (c *Client) Diff(ctx context.Context, from, to time.Time, window time.Duration) (*api.GraphDiff, error) {
	q := url.Values{"from": {from.UTC().Format(time.RFC3339Nano)}, "to": {to.UTC().Format(time.RFC3339Nano)}}
	if window > 0 {
		q.Set("window", window.String())
	}
	var d api.GraphDiff
	if err := c.get(ctx, "/api/v1/graph/diff", q, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Changes returns the changes the collector recorded in [from, to]
// (GET /api/v1/changes), oldest first.
func (c *Client) Changes(ctx context.Context, from, to time.Time) ([]changes.Change, error) {
	q := url.Values{"from": {from.UTC().Format(time.RFC3339Nano)}, "to": {to.UTC().Format(time.RFC3339Nano)}}
	var out struct {
		Changes []changes.Change `json:"changes"`
	}
	if err := c.get(ctx, "/api/v1/changes", q, &out); err != nil {
		return nil, err
	}
	return out.Changes, nil
}

// Review returns the communication review of the graph over window (0:
// the default).
func (c *Client) Review(ctx context.Context, window time.Duration) (*review.Report, error) {
	q := url.Values{}
	if window > 0 {
		q.Set("window", window.String())
	}
	var rep review.Report
	if err := c.get(ctx, "/api/v1/review", q, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

// Brokers returns the broker sources the collector polls.
func (c *Client) Brokers(ctx context.Context) ([]api.BrokerStatus, error) {
	var out struct {
		Brokers []api.BrokerStatus `json:"brokers"`
	}
	if err := c.get(ctx, "/api/v1/brokers", nil, &out); err != nil {
		return nil, err
	}
	return out.Brokers, nil
}

// Ready returns nil when the collector is ready, a StatusError carrying its
// reason when it is not, or an error wrapping ErrUnreachable.
func (c *Client) Ready(ctx context.Context) error {
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	return c.get(ctx, "/readyz", nil, &out)
}

func (c *Client) get(ctx context.Context, path string, q url.Values, dst any) error {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if c.o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.o.Token)
	}
	resp, err := c.o.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.o.MaxBodyBytes+1))
	if err != nil {
		return fmt.Errorf("%w: reading %s: %w", ErrUnreachable, path, err)
	}
	if int64(len(body)) > c.o.MaxBodyBytes {
		return fmt.Errorf("%w: %s answered more than %d bytes", ErrUnreachable, path, c.o.MaxBodyBytes)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return &StatusError{Code: resp.StatusCode, Message: msg}
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnreachable, path, err)
	}
	return nil
}

// Watch connects to the collector's change stream and calls changed with
// the topic of each message ("graph", "findings") until ctx is done or the
// connection drops; it returns the error that ended it. Callers reconnect.
// changed is called from Watch's goroutine.
func (c *Client) Watch(ctx context.Context, changed func(topic string)) error {
	u := *c.base
	u.Path += "/api/v1/stream"
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	default:
		u.Scheme = "ws"
	}
	h := http.Header{}
	if c.o.Token != "" {
		h.Set("Authorization", "Bearer "+c.o.Token)
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment}
	if t, ok := c.o.HTTP.Transport.(*http.Transport); ok {
		d.TLSClientConfig = t.TLSClientConfig
		d.NetDialContext = t.DialContext
		d.Proxy = t.Proxy
	}
	conn, resp, err := d.DialContext(ctx, u.String(), h)
	if err != nil {
		if resp != nil {
			return &StatusError{Code: resp.StatusCode, Message: "stream refused: " + strconv.Itoa(resp.StatusCode)}
		}
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetReadLimit(c.o.MaxBodyBytes)
	for {
		_, b, err := conn.ReadMessage()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: stream: %w", ErrUnreachable, err)
		}
		var m struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(b, &m) == nil && m.Type != "" {
			changed(m.Type)
		}
	}
}
