// Package api serves cartograph's JSON HTTP API (SPEC.md "HTTP API"):
// /api/v1/graph, /api/v1/coupling, and the process endpoints /metrics,
// /healthz and /readyz. Handlers depend only on the small source interfaces
// declared here.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/changes"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/review"
)

// GraphSource returns the live graph over a window (0: the default window).
// It returns an error wrapping graph.ErrWindowTooLong when the window is
// longer than it keeps.
type GraphSource interface {
	Snapshot(window time.Duration) (*graph.Snapshot, error)
}

// HistorySource returns the graph of a past window, from storage. It
// returns an error wrapping graph.ErrWindowTooLong for a window longer
// than one query may read (a client's mistake, answered 400).
//
// A HistorySource that also has a method
//
//	Begins(ctx context.Context) (begins time.Time, ok bool, err error)
//
// (storage.History does) tells where stored history begins (ok false:
// nothing stored); the API then refuses a past time before it rather than
// answer an empty graph.
type HistorySource interface {
	GraphAt(ctx context.Context, at time.Time, window time.Duration) (*graph.Snapshot, error)
}

// historyBeginner is the optional method of a HistorySource described
// there.
type historyBeginner interface {
	Begins(ctx context.Context) (begins time.Time, ok bool, err error)
}

// UnplacedSource counts the spans no rule could place on an edge over a
// window (0: the default window), by service and reason.
// It returns an error wrapping graph.ErrWindowTooLong for a window longer
// than the live one.
type UnplacedSource interface {
	Unplaced(window time.Duration) (graph.UnplacedReport, error)
}

// FindingsSource lists findings in a state (0: every state).
type FindingsSource interface {
	Findings(state finding.State) []finding.Finding
}

// FindingHistorySource reads stored findings: the latest state of each
// finding active in [from, to), started before to and not resolved before
// from (storage.Storage does). Findings of ?at= are reconstructed from
// them with finding.AsOf.
type FindingHistorySource interface {
	Findings(ctx context.Context, from, to time.Time) ([]finding.Finding, error)
}

// Options configure the API.
type Options struct {
	Graph GraphSource
	// History serves ?at= and /api/v1/graph/diff (nil: 501 Not
	// Implemented).
	History HistorySource
	// Findings serves /api/v1/findings (nil: 501 Not Implemented).
	Findings FindingsSource
	// FindingHistory serves /api/v1/findings?at= (nil: 501 Not
	// Implemented). Where stored history begins is told by History.
	FindingHistory FindingHistorySource
	// Unplaced serves /api/v1/graph/unplaced (nil: 501 Not Implemented).
	Unplaced UnplacedSource
	Traces   TraceSource // serves /api/v1/traces/{trace_id} (nil: 501 Not Implemented)
	// Changes serves /api/v1/changes and the changes of
	// /api/v1/graph/diff (nil: 501 Not Implemented, and a diff without
	// them).
	Changes ChangeSource
	// Review serves /api/v1/review and /api/v1/review.md (nil: 501 Not
	// Implemented).
	Review ReviewSource
	// ReviewHistory, when set, keeps the review of every tick (Receive)
	// for /api/v1/graph/diff's observations.
	ReviewHistory *review.History
	// Brokers lists the broker sources polled (nil: none).
	Brokers func() []BrokerStatus
	// Stream serves /api/v1/stream (nil: 501 Not Implemented).
	Stream *Hub
	// Pprof serves Go's profiler under /debug/pprof/ (off by default: it
	// reveals internals and costs CPU while profiling).
	Pprof bool
	// Ready reports whether the process is ready to receive traffic
	// (nil: always ready).
	Ready func() error
	// Bucket is the width of the stored time buckets: a diff window must
	// span at least two of them (0: any positive window).
	Bucket time.Duration
	// MaxBuilds bounds the graphs built for requests at once: live windows
	// other than the tick's, and history (default 2). A request that finds
	// them all taken waits up to BuildWait (default 5s), then gets 503
	// with Retry-After: what one client asks for cannot take the CPU that
	// ingest needs.
	MaxBuilds int
	BuildWait time.Duration
	// MaxBuildNodes, when positive, refuses (422) to build per request a
	// live graph of another window than the tick's while the tick's graph
	// has more nodes than this: the default window, served from the tick,
	// and history still answer.
	MaxBuildNodes int
	// Gatherer is served on /metrics (nil: /metrics is not served).
	Gatherer   prometheus.Gatherer
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Now is the clock that says which times are in the future (default
	// time.Now).
	Now func() time.Time
}

// API is the HTTP handler set. It is safe for concurrent use.
type API struct {
	o       Options
	latency *prometheus.HistogramVec
	encoded prometheus.Counter
	mux     *http.ServeMux

	builds   chan struct{} // one token per graph being built for a request
	busy     prometheus.Counter
	cur      atomic.Pointer[tick] // the newest tick the runner handed over
	watchMu  sync.Mutex
	watchers map[chan struct{}]struct{} // Local.Watch calls, woken after every tick
}

// New returns the API for o.
func New(o Options) (*API, error) {
	if o.Graph == nil {
		return nil, errors.New("api: Options.Graph is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxBuilds <= 0 {
		o.MaxBuilds = 2
	}
	if o.BuildWait <= 0 {
		o.BuildWait = 5 * time.Second
	}
	a := &API{o: o, mux: http.NewServeMux(), watchers: map[chan struct{}]struct{}{}, builds: make(chan struct{}, o.MaxBuilds)}
	a.busy = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cartograph_api_builds_refused_total",
		Help: "Requests answered 503 because --api-max-builds graphs were being built for other requests.",
	})
	a.encoded = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cartograph_api_tick_encoded_bytes_total",
		Help: "Bytes of graph JSON encoded for the ticks handed over by the runner (once per tick, for every reader).",
	})
	a.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cartograph_api_request_duration_seconds",
		Help:    "API request latency by route and status code.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
	}, []string{"route", "code"})
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{a.latency, a.encoded, a.busy} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("api: register metrics: %w", err)
			}
		}
	}
	a.handle("GET /api/v1/graph", a.graph)
	a.handle("GET /api/v1/coupling", a.coupling)
	a.handle("GET /api/v1/graph.mmd", a.exportMermaid)
	a.handle("GET /api/v1/graph.dot", a.exportDOT)
	a.handle("GET /api/v1/review", a.reviewJSON)
	a.handle("GET /api/v1/review.md", a.reviewMarkdown)
	if o.Findings != nil || o.FindingHistory != nil {
		a.handle("GET /api/v1/findings", a.findings)
	} else {
		a.handle("GET /api/v1/findings", notYet)
	}
	a.handle("GET /api/v1/incidents", a.incidents)
	a.handle("GET /api/v1/incidents/{id}", a.incident)
	a.handle("GET /api/v1/brokers", a.brokers)
	if o.Stream != nil {
		a.mux.Handle("GET /api/v1/stream", o.Stream)
	} else {
		a.handle("GET /api/v1/stream", notYet)
	}
	a.handle("GET /api/v1/graph/diff", a.diff)
	if o.Changes != nil {
		a.handle("GET /api/v1/changes", a.changes)
	} else {
		a.handle("GET /api/v1/changes", notYet)
	}
	if o.Unplaced != nil {
		a.handle("GET /api/v1/graph/unplaced", a.unplaced)
	} else {
		a.handle("GET /api/v1/graph/unplaced", notYet)
	}
	a.handle("GET /api/v1/traces/{trace_id}", a.trace)
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	a.mux.HandleFunc("GET /readyz", a.ready)
	if o.Pprof {
		a.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		a.mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		a.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		a.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		a.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	if o.Gatherer != nil {
		a.mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelError)}))
	}
	return a, nil
}

// ServeHTTP implements http.Handler.
// Every response carries headers that keep browsers from sniffing,
// framing or running anything from the API. A request under /api/ that no
// route serves is answered in JSON like every other API error: 404 for an
// unknown path, 405 (with Allow) for a known path and another method.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	handler, pattern := a.mux.Handler(r)
	if pattern == "" && strings.HasPrefix(r.URL.Path, "/api/") {
		// The mux's own 404 or 405 (which sets Allow): keep its status
		// and headers, give the body in JSON.
		cw := &codeWriter{header: h}
		handler.ServeHTTP(cw, r)
		h.Del("Content-Length")
		switch cw.code {
		case http.StatusMethodNotAllowed:
			writeError(w, cw.code, fmt.Errorf("method %s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, h.Get("Allow")))
		case http.StatusNotFound, 0:
			writeError(w, http.StatusNotFound, fmt.Errorf("no API endpoint %s (see docs/api.md)", r.URL.Path))
		default:
			writeError(w, cw.code, errors.New(http.StatusText(cw.code)))
		}
		return
	}
	a.mux.ServeHTTP(w, r)
}

// codeWriter records the status a handler answers and discards its body;
// headers go to the real response's header map.
type codeWriter struct {
	header http.Header
	code   int
}

func (c *codeWriter) Header() http.Header { return c.header }
func (c *codeWriter) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
}
func (c *codeWriter) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return len(b), nil
}

func (a *API) handle(pattern string, h http.HandlerFunc) {
	route := pattern[strings.IndexByte(pattern, ' ')+1:]
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h(sw, r)
		a.latency.WithLabelValues(route, strconv.Itoa(sw.code)).Observe(time.Since(t0).Seconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (a *API) ready(w http.ResponseWriter, _ *http.Request) {
	if a.o.Ready != nil {
		if err := a.o.Ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (a *API) graph(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !q.Has("at") && (!q.Has("env") || q.Get("env") == EnvAll) {
		window, err := parseWindow(q.Get("window"))
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		if t := a.tickFor(window); t != nil && t.body != nil {
			serveTick(w, r, t)
			return
		}
	}
	if s, ok := a.mapSnapshot(w, r); ok {
		writeJSON(w, http.StatusOK, s)
	}
}

// mapSnapshot returns the graph the map's filters ask for: ?window=, ?at=
// (a past window, from storage) and ?env= (one deployment environment, or
// all), answering the request itself on failure. GET /api/v1/graph and
// the exports (graph.mmd, graph.dot) read their graph through it.
func (a *API) mapSnapshot(w http.ResponseWriter, r *http.Request) (*graph.Snapshot, bool) {
	q := r.URL.Query()
	env := q.Get("env")
	if q.Has("env") && env == "" {
		writeError(w, http.StatusBadRequest, errors.New("env: empty: name a deployment environment, or all"))
		return nil, false
	}
	if env == EnvAll {
		env = ""
	}
	if q.Has("at") {
		at, err := a.parsePast("at", q.Get("at"))
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return nil, false
		}
		window, err := parseWindow(q.Get("window"))
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return nil, false
		}
		if !a.covered(w, r, "at", at) {
			return nil, false
		}
		s, ok := a.past(w, r, at, window)
		if !ok {
			return nil, false
		}
		// Stored node rows keep the kept resource attributes, so a past
		// graph splits by environment as the live one does.
		return a.inEnvironment(w, s, env)
	}
	window, err := parseWindow(q.Get("window"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return nil, false
	}
	var s *graph.Snapshot
	if t := a.tickFor(window); t != nil {
		s = t.snap
	} else {
		var ok bool
		if s, ok = a.snapshot(w, r); !ok {
			return nil, false
		}
	}
	return a.inEnvironment(w, s, env)
}

// inEnvironment returns the part of s in env ("": all of s), answering
// the request itself when env is unknown.
func (a *API) inEnvironment(w http.ResponseWriter, s *graph.Snapshot, env string) (*graph.Snapshot, bool) {
	if env == "" {
		return s, true
	}
	s, err := InEnvironment(s, env)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return nil, false
	}
	return s, true
}

// EnvAll is the value of ?env= that asks for every environment at once.
const EnvAll = "all"

// InEnvironment returns the part of s in deployment environment env
// (graph.Snapshot.InEnvironment), or an error naming the environments s
// knows when env is none of them.
func InEnvironment(s *graph.Snapshot, env string) (*graph.Snapshot, error) {
	envs := s.Environments()
	if !slices.Contains(envs, env) {
		return nil, fmt.Errorf("env: unknown environment %q: the graph has %s (or ask for env=%s)", env, listOrNone(envs), EnvAll)
	}
	return s.InEnvironment(env), nil
}

// listOrNone lists names for an error message.
func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// unplaced lists the spans no rule could place on an edge, by service and
// reason, most first, with example span names: what the instrumentation
// sending them lacks.
func (a *API) unplaced(w http.ResponseWriter, r *http.Request) {
	window, err := parseWindow(r.URL.Query().Get("window"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	rep, err := a.o.Unplaced.Unplaced(window)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// defaultHistoryWindow is the window of history queries that name none.
const defaultHistoryWindow = 5 * time.Minute

// maxClockSkew is how far past the server's clock a requested time may be
// and still count as now: a client's clock a little ahead is not a
// mistake.
const maxClockSkew = 5 * time.Second

// parsePast parses the RFC 3339 time parameter name and refuses a time in
// the future: history cannot answer it, and an empty graph would say
// nothing happened.
func (a *API) parsePast(name, v string) (time.Time, error) {
	t, err := parseTime(name, v)
	if err != nil {
		return time.Time{}, err
	}
	if now := a.o.Now(); t.After(now.Add(maxClockSkew)) {
		return time.Time{}, fmt.Errorf("%s %s is in the future (the server's time is %s): history covers only the past",
			name, t.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return t, nil
}

// errNotCovered is the body of a 404 for a time before stored history
// begins: the error, and where history begins (absent: nothing stored).
type errNotCovered struct {
	Error         string     `json:"error"`
	HistoryBegins *time.Time `json:"history_begins,omitempty"`
}

// covered reports whether stored history reaches back to the window ending
// at `at` (named name in the request); when it does not, it answers 404
// with where history begins. A HistorySource that cannot tell where its
// history begins covers every time.
func (a *API) covered(w http.ResponseWriter, r *http.Request, name string, at time.Time) bool {
	hb, ok := a.o.History.(historyBeginner)
	if !ok {
		return true
	}
	begins, stored, err := hb.Begins(r.Context())
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		return true
	case err != nil:
		a.historyFailed(w, r, err)
		return false
	case !stored:
		writeJSON(w, http.StatusNotFound, errNotCovered{
			Error: fmt.Sprintf("%s %s: no history is stored yet", name, at.UTC().Format(time.RFC3339))})
		return false
	case !at.After(begins):
		b := begins.UTC()
		writeJSON(w, http.StatusNotFound, errNotCovered{HistoryBegins: &b,
			Error: fmt.Sprintf("%s %s is before stored history begins (%s)", name, at.UTC().Format(time.RFC3339), b.Format(time.RFC3339))})
		return false
	}
	return true
}

// past returns the graph of the window ending at `at`, answering the
// request itself on failure.
func (a *API) past(w http.ResponseWriter, r *http.Request, at time.Time, window time.Duration) (*graph.Snapshot, bool) {
	if a.o.History == nil {
		writeError(w, http.StatusNotImplemented, errors.New("graph history needs storage (--storage embedded or clickhouse)"))
		return nil, false
	}
	if window == 0 {
		window = defaultHistoryWindow
	}
	if !a.acquireBuild(w, r) {
		return nil, false
	}
	s, err := a.o.History.GraphAt(r.Context(), at, window)
	a.releaseBuild()
	if errors.Is(err, graph.ErrWindowTooLong) {
		writeError(w, http.StatusBadRequest, err)
		return nil, false
	}
	if err != nil {
		a.historyFailed(w, r, err)
		return nil, false
	}
	return s, true
}

// historyFailed answers a failed read of storage: 503, logged at ERROR,
// unless the client went away (then nobody is listening and nothing
// failed on our side).
func (a *API) historyFailed(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		a.o.Logger.Debug("history: client went away", "err", err)
		return
	}
	a.o.Logger.Error("history", "err", err)
	writeError(w, http.StatusServiceUnavailable, fmt.Errorf("reading history: %w", err))
}

// diff serves GET /api/v1/graph/diff?from=&to=&window=: what changed
// between the window ending at from and the one ending at to. Optional
// thresholds: rate_ratio, error_ratio_delta, p95_ratio, min_requests.
func (a *API) diff(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, err := a.parsePast("from", q.Get("from"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	to, err := a.parsePast("to", q.Get("to"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if to.Before(from) {
		writeError(w, http.StatusBadRequest, fmt.Errorf("from %s is after to %s: from is the earlier time",
			from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339)))
		return
	}
	window, err := parseWindow(q.Get("window"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if window == 0 {
		window = defaultHistoryWindow
	}
	if b := a.o.Bucket; b > 0 && window < 2*b {
		writeError(w, http.StatusBadRequest, fmt.Errorf("window %v: a diff needs at least two buckets (%v here)", window, 2*b))
		return
	}
	var o graph.DiffOptions
	for name, dst := range map[string]*float64{"rate_ratio": &o.RateRatio, "error_ratio_delta": &o.ErrorRatioDelta, "p95_ratio": &o.P95Ratio} {
		if v := q.Get(name); v != "" {
			if *dst, err = strconv.ParseFloat(v, 64); err != nil || !(*dst >= 0) || math.IsInf(*dst, 1) {
				writeError(w, http.StatusBadRequest, fmt.Errorf("%s %q: want a non-negative number", name, v))
				return
			}
		}
	}
	if v := q.Get("min_requests"); v != "" {
		if o.MinRequests, err = strconv.ParseUint(v, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("min_requests %q: want a whole number", v))
			return
		}
	}
	if a.o.History == nil {
		writeError(w, http.StatusNotImplemented, errors.New("graph history needs storage (--storage embedded or clickhouse)"))
		return
	}
	if !a.covered(w, r, "from", from) {
		return
	}
	before, ok := a.past(w, r, from, window)
	if !ok {
		return
	}
	after, ok := a.past(w, r, to, window)
	if !ok {
		return
	}
	body := a.withObservations(r.Context(), graph.DiffSnapshots(before, after, o), from, to)
	if a.o.Changes != nil {
		cs, err := a.o.Changes.Changes(r.Context(), from, to)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, fmt.Errorf("changes cannot be read: %w", err))
			return
		}
		if cs == nil {
			cs = []changes.Change{}
		}
		body.Changes = &cs
	}
	writeJSON(w, http.StatusOK, body)
}

func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, fmt.Errorf("%s is required (RFC 3339, e.g. 2026-01-02T15:04:05Z)", name)
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: want RFC 3339, e.g. 2026-01-02T15:04:05Z", name, v)
	}
	return t, nil
}

// findingsResponse is the body of GET /api/v1/findings.
type findingsResponse struct {
	Findings []finding.Finding `json:"findings"`
}

func (a *API) findings(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var state finding.State
	switch v := q.Get("state"); v {
	case "", "firing":
		state = finding.StateFiring
	case "all":
		state = 0
	default:
		if err := state.UnmarshalText([]byte(v)); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("state %q: want firing, pending, resolved or all", v))
			return
		}
	}
	if q.Has("at") {
		at, err := a.parsePast("at", q.Get("at"))
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		if a.o.FindingHistory == nil {
			writeError(w, http.StatusNotImplemented, errors.New("findings history needs storage (--storage embedded or clickhouse)"))
			return
		}
		if !a.covered(w, r, "at", at) {
			return
		}
		fs, err := a.findingsAt(r.Context(), state, at)
		if err != nil {
			a.historyFailed(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, findingsResponse{Findings: fs})
		return
	}
	if a.o.Findings == nil && a.current() == nil {
		notYet(w, r)
		return
	}
	writeJSON(w, http.StatusOK, findingsResponse{Findings: a.findingsIn(state)})
}

// findingsAt lists the findings in state (0: every state) as they were at
// `at` (finding.AsOf), read from storage: those open then, and one that
// resolved exactly then. They come in the order of the live list: firing,
// pending, resolved; critical first; then oldest first.
func (a *API) findingsAt(ctx context.Context, state finding.State, at time.Time) ([]finding.Finding, error) {
	// [at, at+1ms): started by at and not resolved before it; the
	// millisecond covers a backend that stores milliseconds, and AsOf
	// drops what the widening lets in.
	stored, err := a.o.FindingHistory.Findings(ctx, at, at.Add(time.Millisecond))
	if err != nil {
		return nil, err
	}
	out := make([]finding.Finding, 0, len(stored))
	for _, f := range stored {
		if f, ok := finding.AsOf(f, at); ok && (state == 0 || f.State == state) {
			out = append(out, f)
		}
	}
	rank := map[finding.State]int{finding.StateFiring: 0, finding.StatePending: 1, finding.StateResolved: 2}
	slices.SortFunc(out, func(a, b finding.Finding) int {
		if c := rank[a.State] - rank[b.State]; c != 0 {
			return c
		}
		if c := int(b.Severity) - int(a.Severity); c != 0 {
			return c
		}
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// findingsIn lists the findings in state (0: every state): those of the
// newest tick, or before the first tick, Options.Findings's.
func (a *API) findingsIn(state finding.State) []finding.Finding {
	t := a.current()
	if t == nil {
		return a.o.Findings.Findings(state)
	}
	out := make([]finding.Finding, 0, len(t.findings))
	for _, f := range t.findings {
		if state == 0 || f.State == state {
			out = append(out, f)
		}
	}
	return out
}

// BrokerStatus is one polled broker source in GET /api/v1/brokers.
type BrokerStatus struct {
	Name            string     `json:"name"`
	Kind            string     `json:"kind"`
	Endpoint        string     `json:"endpoint"`
	IntervalSeconds float64    `json:"interval_seconds"`
	LastSuccess     *time.Time `json:"last_success,omitempty"`
	LastError       string     `json:"last_error,omitempty"`
	LastErrorAt     *time.Time `json:"last_error_at,omitempty"`
	Polls           uint64     `json:"polls"`
	Failures        uint64     `json:"failures"`
	Samples         int        `json:"samples"`
}

func (a *API) brokers(w http.ResponseWriter, _ *http.Request) {
	list := []BrokerStatus{}
	if a.o.Brokers != nil {
		list = append(list, a.o.Brokers()...)
	}
	writeJSON(w, http.StatusOK, map[string]any{"brokers": list})
}

// Coupling is the body of GET /api/v1/coupling.
type Coupling struct {
	GeneratedAt      time.Time      `json:"generated_at"`
	WindowSeconds    float64        `json:"window_seconds"`
	Nodes            []CouplingNode `json:"nodes"`
	Cycles           [][]string     `json:"cycles"`
	LongestSyncChain []string       `json:"longest_sync_chain"`
	// BetweennessSkipped says the graph was too large for betweenness to be
	// computed; the nodes then carry none.
	BetweennessSkipped bool `json:"betweenness_skipped,omitempty"`
}

// CouplingNode is one node's coupling figures.
type CouplingNode struct {
	ID          string         `json:"id"`
	Kind        graph.NodeKind `json:"kind"`
	Name        string         `json:"name"`
	FanIn       int            `json:"fan_in"`
	FanOut      int            `json:"fan_out"`
	Instability float64        `json:"instability"`
	Betweenness *float64       `json:"betweenness,omitempty"` // nil when skipped
}

func (a *API) coupling(w http.ResponseWriter, r *http.Request) {
	s, ok := a.snapshot(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, couplingOf(s))
}

// couplingOf returns the coupling figures of s.
func couplingOf(s *graph.Snapshot) *Coupling {
	resp := &Coupling{
		GeneratedAt:      s.GeneratedAt,
		WindowSeconds:    s.WindowSeconds,
		Nodes:            make([]CouplingNode, len(s.Nodes)),
		Cycles:           s.Cycles,
		LongestSyncChain: s.LongestSyncChain,
	}
	if resp.Cycles == nil {
		resp.Cycles = [][]string{}
	}
	if resp.LongestSyncChain == nil {
		resp.LongestSyncChain = []string{}
	}
	for i, n := range s.Nodes {
		resp.Nodes[i] = CouplingNode{ID: n.ID, Kind: n.Kind, Name: n.Name, FanIn: n.FanIn, FanOut: n.FanOut, Instability: n.Instability}
		if !s.BetweennessSkipped {
			resp.Nodes[i].Betweenness = &s.Nodes[i].Betweenness
		}
	}
	resp.BetweennessSkipped = s.BetweennessSkipped
	return resp
}

func (a *API) snapshot(w http.ResponseWriter, r *http.Request) (*graph.Snapshot, bool) {
	window, err := parseWindow(r.URL.Query().Get("window"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return nil, false
	}
	if t := a.tickFor(window); t != nil {
		return t.snap, true
	}
	if t := a.current(); t != nil && a.o.MaxBuildNodes > 0 && len(t.snap.Nodes) > a.o.MaxBuildNodes {
		writeError(w, http.StatusUnprocessableEntity, fmt.Errorf("window %v: the live graph has %d nodes, more than --api-max-build-nodes (%d), and windows other than the default (%v) are built per request: ask for the default window (served from the last evaluation) or a past one (?at=)",
			window, len(t.snap.Nodes), a.o.MaxBuildNodes, time.Duration(t.snap.WindowSeconds*float64(time.Second))))
		return nil, false
	}
	if !a.acquireBuild(w, r) {
		return nil, false
	}
	s, err := a.o.Graph.Snapshot(window)
	a.releaseBuild()
	switch {
	case errors.Is(err, graph.ErrWindowTooLong) && a.o.History != nil:
		// Longer than the live window: the same graph, from storage.
		return a.past(w, r, time.Now(), window)
	case errors.Is(err, graph.ErrWindowTooLong):
		writeError(w, http.StatusBadRequest, err)
		return nil, false
	case err != nil:
		a.o.Logger.Error("snapshot", "err", err)
		writeError(w, http.StatusInternalServerError, err)
		return nil, false
	}
	return s, true
}

// parseWindow accepts a Go duration ("90s", "5m") or plain seconds ("60").
func parseWindow(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if !(secs > 0 && secs <= 1e9) { // NaN too
			return 0, fmt.Errorf("window %q: must be a positive number of seconds", v)
		}
		return time.Duration(secs * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("window %q: want a positive duration like 60s or 5m", v)
	}
	return d, nil
}

func notYet(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotImplemented, fmt.Errorf("%s is not implemented in this build yet", r.URL.Path))
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client went away: nothing to do
}

// acquireBuild takes a place to build a graph for r, waiting up to
// BuildWait; when none frees up it answers 503 with Retry-After and
// reports false. A place taken is given back with releaseBuild.
func (a *API) acquireBuild(w http.ResponseWriter, r *http.Request) bool {
	select {
	case a.builds <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(a.o.BuildWait)
	defer t.Stop()
	select {
	case a.builds <- struct{}{}:
		return true
	case <-r.Context().Done():
		return false // the client went away: nobody to answer
	case <-t.C:
	}
	a.busy.Inc()
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, fmt.Errorf("%d graphs are being built for other requests (--api-max-builds): retry, or ask for the default window, served from the last evaluation", cap(a.builds)))
	return false
}

func (a *API) releaseBuild() { <-a.builds }
