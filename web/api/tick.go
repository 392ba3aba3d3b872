package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/review"
)

// tick is one evaluation's snapshot and findings as the runner handed them
// over, with the snapshot's JSON encoded once for every reader. Immutable
// once stored, except gz, which the first reader that accepts gzip fills.
type tick struct {
	snap      *graph.Snapshot
	findings  []finding.Finding  // every state, as the runner listed them
	incidents []finding.Incident // every state, as the runner listed them
	body      []byte             // snap as GET /api/v1/graph answers it (nil: encoding failed)

	gzOnce sync.Once
	gz     []byte // body, gzip-compressed (nil: not asked for yet, or failed)
}

// gzipped returns the tick's body compressed, compressing it on the first
// call.
func (t *tick) gzipped() []byte {
	t.gzOnce.Do(func() {
		var buf bytes.Buffer
		buf.Grow(len(t.body) / 6)
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed) // a valid level: cannot fail
		if _, err := zw.Write(t.body); err == nil && zw.Close() == nil {
			t.gz = buf.Bytes()
		}
	})
	return t.gz
}

// Receive takes the snapshot, findings and incidents of one evaluation
// tick: from now on the live graph (default window), the coupling figures,
// the findings and the incidents are served from them, the graph's JSON
// encoded here once for every request, stream client and page; and the
// change stream announces them. Called by the runner, one tick at a time;
// s, findings and incidents are shared and must not be modified.
func (a *API) Receive(s *graph.Snapshot, findings []finding.Finding, incidents []finding.Incident) {
	if incidents == nil {
		incidents = []finding.Incident{}
	}
	t := &tick{snap: s, findings: findings, incidents: incidents}
	body, err := json.Marshal(s)
	if err != nil {
		a.o.Logger.Error("encoding the tick's graph", "err", err)
	} else {
		t.body = append(body, '\n')
		a.encoded.Add(float64(len(t.body)))
	}
	a.cur.Store(t)
	if a.o.Stream != nil {
		if t.body != nil {
			// The same bytes, wrapped: the stream re-encodes nothing.
			msg := make([]byte, 0, len(body)+len(`{"type":"graph","data":}`))
			msg = append(append(append(msg, `{"type":"graph","data":`...), body...), '}')
			if err := a.o.Stream.PublishEncoded("graph", msg); err != nil {
				a.o.Logger.Error("publishing the tick's graph", "err", err)
			}
		}
		_ = a.o.Stream.Publish("findings", map[string]any{"findings": findings})
		_ = a.o.Stream.Publish("incidents", map[string]any{"incidents": incidents})
	}
	a.watchMu.Lock()
	for c := range a.watchers {
		select {
		case c <- struct{}{}:
		default: // the watcher has a wake-up pending: this tick folds into it
		}
	}
	a.watchMu.Unlock()
	a.recordReview(s)
}

// current returns the newest tick, or nil before the first.
func (a *API) current() *tick { return a.cur.Load() }

// tickFor returns the newest tick when it answers a request for window (0:
// the default window), or nil.
func (a *API) tickFor(window time.Duration) *tick {
	t := a.current()
	if t == nil || (window != 0 && window.Seconds() != t.snap.WindowSeconds) {
		return nil
	}
	return t
}

// serveTick writes the tick's graph, compressed when the client accepts
// gzip (browsers and most HTTP clients do).
func serveTick(w http.ResponseWriter, r *http.Request, t *tick) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Add("Vary", "Accept-Encoding")
	body := t.body
	if acceptsGzip(r) {
		if gz := t.gzipped(); gz != nil {
			h.Set("Content-Encoding", "gzip")
			body = gz
		}
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body) // the client went away: nothing to do
}

// acceptsGzip reports whether r's Accept-Encoding names gzip with a
// non-zero quality.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") {
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

// StatusError is an error answer of the API: the HTTP status and the
// message of its JSON body. The in-process Local returns it exactly where
// the HTTP API would answer an error, and web/api/client returns it for
// an error answer, so callers treat both alike.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("collector answered %d: %s", e.Code, e.Message)
}

// Local reads this API in process, for the built-in UI: the live graph and
// the findings of the newest tick as the runner handed them over (no
// second snapshot, no encoding), other reads through the API's handlers in
// memory. It has the methods web/api/client.Client has. Safe for
// concurrent use.
type Local struct{ a *API }

// Local returns the in-process reader of a.
func (a *API) Local() *Local { return &Local{a: a} }

// Tick returns the live graph, every finding and every incident of one
// tick together, so that what the caller shows of them comes from one
// snapshot. Before the first tick it builds the graph and lists the
// findings itself (and no incident: only a tick makes them).
func (l *Local) Tick(ctx context.Context) (*graph.Snapshot, []finding.Finding, []finding.Incident, error) {
	if t := l.a.current(); t != nil {
		return t.snap, t.findings, t.incidents, nil
	}
	s, err := l.Graph(ctx, 0, time.Time{})
	if err != nil {
		return nil, nil, nil, err
	}
	fs, err := l.Findings(ctx, 0)
	return s, fs, []finding.Incident{}, err
}

// Incidents returns the incidents of the newest tick (every state).
func (l *Local) Incidents(context.Context) ([]finding.Incident, error) {
	return l.a.incidentsIn(0), nil
}

// Graph returns the graph over window (0: the default) ending now, or at
// `at` when it is not zero.
func (l *Local) Graph(ctx context.Context, window time.Duration, at time.Time) (*graph.Snapshot, error) {
	if at.IsZero() {
		if t := l.a.tickFor(window); t != nil {
			return t.snap, nil
		}
	}
	q := url.Values{}
	if window > 0 {
		q.Set("window", window.String())
	}
	if !at.IsZero() {
		q.Set("at", at.UTC().Format(time.RFC3339Nano))
	}
	var s graph.Snapshot
	if err := l.get(ctx, "/api/v1/graph", q, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Coupling returns the coupling figures over window (0: the default).
func (l *Local) Coupling(ctx context.Context, window time.Duration) (*Coupling, error) {
	if t := l.a.tickFor(window); t != nil {
		return couplingOf(t.snap), nil
	}
	q := url.Values{}
	if window > 0 {
		q.Set("window", window.String())
	}
	var c Coupling
	if err := l.get(ctx, "/api/v1/coupling", q, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Findings returns the findings in state (0: every state).
func (l *Local) Findings(ctx context.Context, state finding.State) ([]finding.Finding, error) {
	if l.a.o.Findings == nil {
		return nil, &StatusError{Code: http.StatusNotImplemented, Message: "findings are not served"}
	}
	return l.a.findingsIn(state), nil
}

// FindingsAt returns the findings in state (0: every state) as they were
// at `at`, read through the API's handler (GET /api/v1/findings?at=); a
// zero `at` reads the live ones, as Findings does.
func (l *Local) FindingsAt(ctx context.Context, state finding.State, at time.Time) ([]finding.Finding, error) {
	if at.IsZero() {
		return l.Findings(ctx, state)
	}
	q := url.Values{"state": {"all"}, "at": {at.UTC().Format(time.RFC3339Nano)}}
	if state != 0 {
		q.Set("state", state.String())
	}
	var out findingsResponse
	if err := l.get(ctx, "/api/v1/findings", q, &out); err != nil {
		return nil, err
	}
	return out.Findings, nil
}

// Diff returns what changed between the window ending at from and the one
// ending at to, and the observations of the review that appeared or went
// away.
func (l *Local) Diff(ctx context.Context, from, to time.Time, window time.Duration) (*GraphDiff, error) {
	q := url.Values{"from": {from.UTC().Format(time.RFC3339Nano)}, "to": {to.UTC().Format(time.RFC3339Nano)}}
	if window > 0 {
		q.Set("window", window.String())
	}
	var d GraphDiff
	if err := l.get(ctx, "/api/v1/graph/diff", q, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Review returns the communication review of the graph over window (0:
// the default), read through the API's handler.
func (l *Local) Review(ctx context.Context, window time.Duration) (*review.Report, error) {
	q := url.Values{}
	if window > 0 {
		q.Set("window", window.String())
	}
	var rep review.Report
	if err := l.get(ctx, "/api/v1/review", q, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

// Brokers returns the broker sources polled.
func (l *Local) Brokers(context.Context) ([]BrokerStatus, error) {
	if l.a.o.Brokers == nil {
		return nil, nil
	}
	return l.a.o.Brokers(), nil
}

// Ready returns nil when the process is ready, or a StatusError (503)
// saying why not.
func (l *Local) Ready(context.Context) error {
	if l.a.o.Ready == nil {
		return nil
	}
	if err := l.a.o.Ready(); err != nil {
		return &StatusError{Code: http.StatusServiceUnavailable, Message: err.Error()}
	}
	return nil
}

// Watch calls changed("graph") and changed("findings") after every tick
// until ctx is done, then returns ctx's error. Ticks that land while
// changed runs fold into one call. changed is called from Watch's
// goroutine.
func (l *Local) Watch(ctx context.Context, changed func(topic string)) error {
	c := make(chan struct{}, 1)
	l.a.watchMu.Lock()
	l.a.watchers[c] = struct{}{}
	l.a.watchMu.Unlock()
	defer func() {
		l.a.watchMu.Lock()
		delete(l.a.watchers, c)
		l.a.watchMu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c:
			changed("graph")
			changed("findings")
		}
	}
}

// get answers GET path?q through the API's handlers in memory and decodes
// the JSON answer into dst; an error answer is a *StatusError.
func (l *Local) get(ctx context.Context, path string, q url.Values, dst any) error {
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, (&url.URL{Path: path, RawQuery: q.Encode()}).String(), nil)
	if err != nil {
		return err
	}
	rec := &recorder{header: http.Header{}}
	l.a.ServeHTTP(rec, r)
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	if rec.code != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(rec.body.String())
		if json.Unmarshal(rec.body.Bytes(), &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return &StatusError{Code: rec.code, Message: msg}
	}
	if err := json.Unmarshal(rec.body.Bytes(), dst); err != nil {
		return fmt.Errorf("api: decoding %s: %w", path, err)
	}
	return nil
}

// recorder is an in-memory http.ResponseWriter.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.body.Write(b)
}
