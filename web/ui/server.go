// Package ui serves cartograph's web UI: a live, server-rendered map of the
// dependency graph with findings on it, a findings panel, node and edge
// pages with charts, and an architecture page with coupling figures and the
// graph diff. Pages are templ components drawn from view models; the map is
// laid out on the server (package layout). One small script keeps pages
// current over a websocket: the server sends only what changed, as rendered
// fragments; a page works without it (reload to update).
//
// The UI reads the collector through the Source seam declared here, so it
// runs in the collector's process or on its own against a remote one.
package ui

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/a-h/templ"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/review"
	"github.com/seed-a49a8342/cartograph/web/api"
	"github.com/seed-a49a8342/cartograph/web/api/client"
	"github.com/seed-a49a8342/cartograph/web/live"
)

// Source is what the UI reads: the collector's API.
type Source interface {
	Graph(ctx context.Context, window time.Duration, at time.Time) (*graph.Snapshot, error)
	Coupling(ctx context.Context, window time.Duration) (*client.Coupling, error)
	Findings(ctx context.Context, state finding.State) ([]finding.Finding, error)
	// FindingsAt returns the findings in state (0: every state) as they
	// were at a past time (from the collector's storage).
	FindingsAt(ctx context.Context, state finding.State, at time.Time) ([]finding.Finding, error)
	// Diff returns what changed between two times, in the graph and in
	// the communication review.
	Diff(ctx context.Context, from, to time.Time, window time.Duration) (*api.GraphDiff, error)
	// Review returns the communication review of the live graph over
	// window (0: the default).
	Review(ctx context.Context, window time.Duration) (*review.Report, error)
	Brokers(ctx context.Context) ([]api.BrokerStatus, error)
	// Incidents returns every incident the collector keeps.
	Incidents(ctx context.Context) ([]finding.Incident, error)
	Ready(ctx context.Context) error
	// Watch calls changed on every change the collector announces, until
	// ctx is done or the connection drops.
	Watch(ctx context.Context, changed func(topic string)) error
}

// tickReader is a Source that reads the graph, the findings and the
// incidents of one evaluation together (the collector's in-process
// api.Local): the map's badges, the findings list and the incidents then
// come from one snapshot. Over HTTP (web/api/client) they are read one
// after the other.
type tickReader interface {
	Tick(ctx context.Context) (*graph.Snapshot, []finding.Finding, []finding.Incident, error)
}

//go:embed static
var static embed.FS

// Options configure a UI.
type Options struct {
	Source Source
	// Layouter places the map (required).
	Layouter Layouter
	// Refresh is how often the UI reads the collector when it announces no
	// change (default 5s); announced changes are read at once, at most once
	// a second.
	Refresh time.Duration
	// MaxNodes is the number of nodes above which the map opens at the
	// overview of groups (default 300).
	MaxNodes int
	// MaxGroups is the most boxes the overview draws (default 50): more
	// groups are paged, the rest of them merged into one box. Negative
	// turns the overview off: above MaxNodes namespaces collapse by
	// themselves, then the busiest nodes are drawn (the map before the
	// overview, for comparison).
	MaxGroups int
	// MaxClients bounds live-update connections (default 1,000); more are
	// refused with 503.
	MaxClients int
	// HistoryPoints is the points kept per node and edge for charts, one
	// per refresh (default 720: an hour at 5s).
	HistoryPoints int
	// MaxSeries bounds the nodes and edges whose history is kept (default
	// 20,000); more are counted and not charted.
	MaxSeries int
	// AllowedOrigins are Origin values accepted on the websocket besides
	// the page's own host.
	AllowedOrigins []string
	// WriteTimeout bounds each websocket write (default 10s); a client that
	// cannot take an update in time is dropped (its page reconnects).
	WriteTimeout time.Duration
	Clock        func() time.Time
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
}

// UI is the web UI's handler and refresher. Create it with New, serve it as
// an http.Handler and run Run to keep it current. Safe for concurrent use.
type UI struct {
	o       Options
	mux     *http.ServeMux
	hist    *history
	live    *live.Hub
	metrics uiMetrics

	mu      sync.RWMutex
	cur     current
	byWin   map[time.Duration]*graphAt  // other windows, cached for one version
	reviews map[time.Duration]*reviewAt // reviews by window, cached for one version
	wake    chan struct{}
	renders *renderCache
}

// current is the latest state read from the collector.
type current struct {
	version   uint64
	snap      *graph.Snapshot
	findings  []finding.Finding
	incidents []finding.Incident
	status    status
	readAt    time.Time
	err       error
}

type graphAt struct {
	version uint64
	snap    *graph.Snapshot
	err     error
}

type uiMetrics struct {
	refreshes     *prometheus.CounterVec
	refreshTime   prometheus.Histogram
	renderTime    *prometheus.HistogramVec
	layoutTime    prometheus.Histogram
	clients       prometheus.Gauge
	sent          prometheus.Counter
	coalesced     prometheus.Counter
	droppedSeries prometheus.GaugeFunc
}

// New returns a UI for o.
func New(o Options) (*UI, error) {
	if o.Source == nil || o.Layouter == nil {
		return nil, errors.New("ui: Options.Source and Options.Layouter are required")
	}
	if o.Refresh <= 0 {
		o.Refresh = 5 * time.Second
	}
	if o.MaxNodes <= 0 {
		o.MaxNodes = 300
	}
	if o.MaxGroups == 0 {
		o.MaxGroups = 50
	}
	if o.MaxClients <= 0 {
		o.MaxClients = 1000
	}
	if o.HistoryPoints <= 0 {
		o.HistoryPoints = 720
	}
	if o.MaxSeries <= 0 {
		o.MaxSeries = 20_000
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	u := &UI{
		o: o, mux: http.NewServeMux(), hist: newHistory(o.HistoryPoints, o.MaxSeries),
		byWin: map[time.Duration]*graphAt{}, wake: make(chan struct{}, 1), renders: newRenderCache(256),
	}
	u.metrics = uiMetrics{
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_ui_refreshes_total", Help: "Reads of the collector by the UI, by result.",
		}, []string{"result"}),
		refreshTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cartograph_ui_refresh_duration_seconds", Help: "Time to read the collector's graph and findings.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
		renderTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cartograph_ui_render_duration_seconds", Help: "Time to build and render a page or an update, by page.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}, []string{"page"}),
		clients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cartograph_ui_live_clients", Help: "Pages connected for live updates.",
		}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartograph_ui_updates_sent_total", Help: "Live updates sent to pages.",
		}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartograph_ui_updates_coalesced_total", Help: "Changes folded into a later update because a page was still busy or asked for a slower refresh.",
		}),
	}
	u.metrics.droppedSeries = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cartograph_ui_history_series_dropped", Help: "Nodes and edges whose chart history was not kept (--ui-max-series reached).",
	}, func() float64 { _, d := u.hist.size(); return float64(d) })
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{u.metrics.refreshes, u.metrics.refreshTime, u.metrics.renderTime, u.metrics.clients, u.metrics.sent, u.metrics.coalesced, u.metrics.droppedSeries} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("ui: register metrics: %w", err)
			}
		}
	}
	u.live = live.New(live.Options{
		MaxClients: o.MaxClients, AllowedOrigins: o.AllowedOrigins, WriteTimeout: o.WriteTimeout,
		// permessage-deflate, as browsers offer it: a redrawn map is
		// about a tenth of its size compressed, and each update is
		// compressed once for every page it goes to.
		Compression: true,
		Refuse: func(w http.ResponseWriter, _ error) {
			http.Error(w, "too many live pages", http.StatusServiceUnavailable)
		},
		Metrics: live.Metrics{Clients: u.metrics.clients, Sent: u.metrics.sent, Coalesced: u.metrics.coalesced},
		Logger:  o.Logger,
	})
	sub, _ := fs.Sub(static, "static")
	u.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(sub)))
	u.mux.HandleFunc("GET /{$}", u.page("map", u.mapPage))
	u.mux.HandleFunc("GET /findings", u.page("findings", u.findingsPage))
	u.mux.HandleFunc("GET /node", u.page("node", u.nodePage))
	u.mux.HandleFunc("GET /edge", u.page("edge", u.edgePage))
	u.mux.HandleFunc("GET /architecture", u.page("architecture", u.archPage))
	u.mux.HandleFunc("GET /incidents", u.page("incidents", u.incidentsPage))
	u.mux.HandleFunc("GET /review", u.page("review", u.reviewPage))
	u.mux.HandleFunc("GET /ws", u.serveLive)
	u.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	return u, nil
}

// ServeHTTP implements http.Handler. Every answer carries a content
// security policy that allows only the UI's own script and styles (no
// inline script), and denies framing and sniffing.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	u.mux.ServeHTTP(w, r)
}

// Run keeps the UI's state current until ctx is done: it reads the
// collector every Refresh, and at once (at most once a second) when the
// collector's change stream announces a change.
func (u *UI) Run(ctx context.Context) error {
	go u.watch(ctx)
	t := time.NewTicker(u.o.Refresh)
	defer t.Stop()
	u.refresh(ctx)
	last := u.o.Clock()
	for {
		select {
		case <-ctx.Done():
			u.live.CloseAll()
			return nil
		case <-t.C:
		case <-u.wake:
			if wait := time.Second - u.o.Clock().Sub(last); wait > 0 {
				select {
				case <-ctx.Done():
					u.live.CloseAll()
					return nil
				case <-time.After(wait):
				}
			}
		}
		u.refresh(ctx)
		last = u.o.Clock()
	}
}

// watch follows the collector's change stream, reconnecting with backoff.
func (u *UI) watch(ctx context.Context) {
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		start := u.o.Clock()
		err := u.o.Source.Watch(ctx, func(string) {
			select {
			case u.wake <- struct{}{}:
			default:
			}
		})
		if ctx.Err() != nil {
			return
		}
		if u.o.Clock().Sub(start) > time.Minute {
			backoff = 500 * time.Millisecond
		}
		u.o.Logger.Debug("collector stream ended; polling until it is back", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// refresh reads the collector and wakes every live page.
func (u *UI) refresh(ctx context.Context) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, max(u.o.Refresh, 10*time.Second))
	defer cancel()
	var (
		snap      *graph.Snapshot
		findings  []finding.Finding
		incidents []finding.Incident
		st        status
		err       error
	)
	if tr, ok := u.o.Source.(tickReader); ok {
		snap, findings, incidents, err = tr.Tick(ctx)
	} else {
		snap, err = u.o.Source.Graph(ctx, 0, time.Time{})
		if err == nil {
			findings, err = u.o.Source.Findings(ctx, 0)
		}
		if err == nil {
			incidents, err = u.o.Source.Incidents(ctx)
		}
	}
	now := u.o.Clock()
	if err != nil {
		u.metrics.refreshes.WithLabelValues("error").Inc()
		u.mu.RLock()
		prev := u.cur
		u.mu.RUnlock()
		msg := "The collector cannot be read (" + err.Error() + ")"
		if !prev.readAt.IsZero() {
			msg += "; showing what it said " + fmtAge(now, prev.readAt)
		}
		st.Problems = append(st.Problems, msg+".")
		u.o.Logger.Warn("reading the collector", "err", err)
		u.mu.Lock()
		u.cur.version++
		u.cur.status = st
		u.cur.err = err
		u.mu.Unlock()
		u.live.WakeAll()
		return
	}
	if err := u.o.Source.Ready(ctx); err != nil {
		var se *client.StatusError
		if errors.As(err, &se) {
			st.Problems = append(st.Problems, "The collector is not ready: "+se.Message+".")
		}
	}
	if bs, err := u.o.Source.Brokers(ctx); err == nil {
		for _, b := range bs {
			if b.LastError != "" && (b.LastSuccess == nil || (b.LastErrorAt != nil && b.LastErrorAt.After(*b.LastSuccess))) {
				since := "never read"
				if b.LastSuccess != nil {
					since = "last read " + fmtAge(now, *b.LastSuccess)
				}
				st.Problems = append(st.Problems, fmt.Sprintf("Broker %s (%s) cannot be polled: %s (%s); its lag is shown stale.", b.Name, b.Kind, b.LastError, since))
			}
		}
	}
	u.hist.record(snap)
	u.metrics.refreshes.WithLabelValues("ok").Inc()
	u.metrics.refreshTime.Observe(time.Since(start).Seconds())
	u.mu.Lock()
	u.cur = current{version: u.cur.version + 1, snap: snap, findings: findings, incidents: incidents, status: st, readAt: now}
	clear(u.byWin)
	u.mu.Unlock()
	u.live.WakeAll()
}

// state returns the latest state.
func (u *UI) state() current {
	u.mu.RLock()
	defer u.mu.RUnlock()
	return u.cur
}

// graphFor returns the graph a view shows: the latest live graph, another
// window's (read once per refresh) or a past one.
func (u *UI) graphFor(ctx context.Context, v View, cur current) (*graph.Snapshot, error) {
	if !v.At.IsZero() {
		return u.o.Source.Graph(ctx, v.Window, v.At)
	}
	if v.Window == 0 || (cur.snap != nil && time.Duration(cur.snap.WindowSeconds*float64(time.Second)) == v.Window) {
		if cur.snap == nil {
			if cur.err != nil {
				return nil, cur.err
			}
			return u.o.Source.Graph(ctx, 0, time.Time{})
		}
		return cur.snap, nil
	}
	u.mu.RLock()
	g, ok := u.byWin[v.Window]
	u.mu.RUnlock()
	if ok && g.version == cur.version {
		return g.snap, g.err
	}
	s, err := u.o.Source.Graph(ctx, v.Window, time.Time{})
	u.mu.Lock()
	if len(u.byWin) < 16 {
		u.byWin[v.Window] = &graphAt{version: cur.version, snap: s, err: err}
	}
	u.mu.Unlock()
	return s, err
}

// page wraps a page builder: it parses the view, renders the page in its
// frame, and answers errors with a readable page.
func (u *UI) page(name string, build func(ctx context.Context, r *http.Request, v View, cur current) (templ.Component, string, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		defer func() { u.metrics.renderTime.WithLabelValues(name).Observe(time.Since(start).Seconds()) }()
		cur := u.state()
		v, err := parseView(r.URL.Query())
		code := http.StatusOK
		var body templ.Component
		title := name
		if err == nil {
			body, title, err = build(r.Context(), r, v, cur)
		}
		if err != nil {
			code = http.StatusBadRequest
			var se *client.StatusError
			switch {
			case errors.As(err, &se) && se.Code >= 500, errors.Is(err, client.ErrUnreachable):
				code = http.StatusBadGateway
			case errors.Is(err, errNotFound):
				code = http.StatusNotFound
			}
			body, title = errorBody(err.Error()), "error"
		}
		frame := u.frame(name, title, v, r, cur)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		var buf bytes.Buffer
		if err := shell(frame, body).Render(r.Context(), &buf); err != nil {
			u.o.Logger.Error("render", "page", name, "err", err)
			http.Error(w, "rendering failed", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(code)
		_, _ = w.Write(buf.Bytes())
	}
}

var errNotFound = errors.New("not found")

// nav is the navigation bar of page, with the count of firing findings.
func nav(page string, v View, cur current) []link {
	firing := 0
	for _, f := range cur.findings {
		if f.State == finding.StateFiring {
			firing++
		}
	}
	text := fmt.Sprintf("Findings (%d)", firing)
	if !v.At.IsZero() {
		text = "Findings" // the count is of now, the page of then
	}
	open := 0
	for _, inc := range cur.incidents {
		if inc.State == finding.IncidentOpen {
			open++
		}
	}
	return []link{
		{Href: v.With(func(w *View) {}).Href("/"), Text: "Map", Active: page == "map"},
		{Href: timeOnly(v).Href("/incidents"), Text: fmt.Sprintf("Incidents (%d)", open), Active: page == "incidents"},
		{Href: timeOnly(v).Href("/findings"), Text: text, Active: page == "findings"},
		{Href: timeOnly(v).Href("/review"), Text: "Review", Active: page == "review"},
		{Href: timeOnly(v).Href("/architecture"), Text: "Architecture", Active: page == "architecture"},
	}
}

func (u *UI) frame(page, title string, v View, r *http.Request, cur current) pageFrame {
	f := pageFrame{Title: title, Page: page, Nav: nav(page, v, cur), Live: v.Live(), Status: cur.status}
	if !v.At.IsZero() {
		f.AtText = fmtTime(v.At)
	}
	if f.Live && page != "architecture" {
		q := r.URL.Query()
		q.Set("page", page)
		f.WS = "/ws?" + q.Encode()
	} else {
		f.Live = false
	}
	return f
}

// timeOnly keeps only a view's time settings.
func timeOnly(v View) View {
	return View{Window: v.Window, At: v.At, Refresh: v.Refresh, Env: v.Env, Hops: 2}
}

var windowChoices = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 6 * time.Hour, 24 * time.Hour}
var refreshChoices = []time.Duration{time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute}

func (u *UI) controls(action string, v View, keep []hidden, snap *graph.Snapshot, isMap bool, envs ...string) controls {
	c := controls{Action: action, Keep: keep, Map: isMap, Search: v.Search, Hops: fmt.Sprint(v.Hops)}
	c.Windows = append(c.Windows, option{Value: "", Text: "default", Selected: v.Window == 0})
	for _, d := range windowChoices {
		c.Windows = append(c.Windows, option{Value: fmtDuration(d), Text: fmtDuration(d), Selected: v.Window == d})
	}
	if v.Window > 0 && !slices.Contains(windowChoices, v.Window) {
		c.Windows = append(c.Windows, option{Value: fmtDuration(v.Window), Text: fmtDuration(v.Window), Selected: true})
	}
	for _, d := range refreshChoices {
		c.Refreshes = append(c.Refreshes, option{Value: fmtDuration(d), Text: "every " + fmtDuration(d), Selected: v.Refresh == d})
	}
	c.Refreshes = append(c.Refreshes, option{Value: "off", Text: "paused", Selected: v.Refresh == 0})
	if !v.At.IsZero() {
		c.At = v.At.UTC().Format("2006-01-02T15:04")
	}
	if isMap {
		for _, h := range v.Hide {
			c.Keep = append(c.Keep, hidden{Name: "hide", Value: h})
		}
		for _, s := range v.Collapse {
			c.Keep = append(c.Keep, hidden{Name: "collapse", Value: s})
		}
		for _, s := range v.Expand {
			c.Keep = append(c.Keep, hidden{Name: "expand", Value: s})
		}
		if v.Incident != "" {
			c.Keep = append(c.Keep, hidden{Name: "incident", Value: v.Incident})
		}
		if v.NoDim {
			c.Keep = append(c.Keep, hidden{Name: "dim", Value: "off"})
		}
		c.Groups = groupChoices(v, snap)
		c.Envs = envChoices(v, envs)
		if snap != nil {
			type named struct{ id, name string }
			var ns []named
			for _, n := range snap.Nodes {
				ns = append(ns, named{n.ID, n.Name + " (" + n.Kind.String() + ")"})
			}
			slices.SortFunc(ns, func(a, b named) int { return strings.Compare(a.name, b.name) })
			for i, n := range ns {
				if i == 1000 {
					break
				}
				c.Focus = append(c.Focus, option{Value: n.id, Text: n.name, Selected: n.id == v.Focus})
			}
		}
		if len(v.Hide)+len(v.Collapse)+len(v.Expand) > 0 || v.Focus != "" || v.Search != "" || v.Incident != "" || v.NoDim || v.Group != "" || v.GroupPage > 1 {
			c.Reset = timeOnly(v).Href("/")
		}
	}
	return c
}

func (u *UI) mapPage(ctx context.Context, _ *http.Request, v View, cur current) (templ.Component, string, error) {
	m, err := u.buildMapPage(ctx, v, cur)
	if err != nil {
		return nil, "", err
	}
	return mapBody(*m), "Map", nil
}

func (u *UI) buildMapPage(ctx context.Context, v View, cur current) (*mapPage, error) {
	snap, err := u.graphFor(ctx, v, cur)
	if err != nil {
		return nil, err
	}
	envs := snap.Environments()
	var envNote string
	switch {
	case v.Env != "" && v.Env != EnvAll:
		if !slices.Contains(envs, v.Env) {
			return nil, fmt.Errorf("env %q: no service of this graph is in that environment; it has %s (env=%s shows them all)", v.Env, listOr(envs, "none"), EnvAll)
		}
		snap = snap.InEnvironment(v.Env)
	case v.Env == "" && len(envs) > 1:
		envNote = fmt.Sprintf("this graph mixes %d environments (%s): choose one above, or all to merge them", len(envs), strings.Join(envs, ", "))
	}
	findings, fnow, ferr := u.findingsFor(ctx, v, cur)
	if v.Env != "" && v.Env != EnvAll {
		findings = onGraph(findings, snap)
	}
	var incidents []finding.Incident
	if v.At.IsZero() {
		incidents = cur.incidents // kept in memory: live views only
	}
	m, err := buildMap(ctx, u.o.Layouter, mapInput{Snap: snap, Findings: findings, Incidents: incidents, View: v, MaxNodes: u.o.MaxNodes, MaxGroups: u.o.MaxGroups, Base: "/"})
	if err != nil {
		return nil, fmt.Errorf("laying out the map: %w", err)
	}
	p := &mapPage{Controls: u.controls("/", v, nil, snap, true, envs...), Map: m, Bar: mapBarOf(v, m)}
	if envNote != "" {
		p.Bar.Notes = append([]string{envNote}, p.Bar.Notes...)
	}
	names := map[string]string{}
	for _, n := range snap.Nodes {
		names[n.ID] = n.Name
	}
	for _, id := range v.Hide {
		p.Bar.Hidden = append(p.Bar.Hidden, link{Text: "hidden: " + cmpOr(names[id], id), Href: v.With(func(w *View) {
			w.Hide = slices.DeleteFunc(w.Hide, func(s string) bool { return s == id })
		}).Href("/")})
	}
	p.Findings = buildFindings(findings, v, fnow, 20)
	if ferr != nil {
		p.Findings.Err = findingsErr(v, ferr)
	}
	return p, nil
}

// mapBarOf returns the line above map m of view v: its notes, the way
// into the incident view (or back out of it) and the dimming switch.
func mapBarOf(v View, m *mapModel) mapBar {
	b := mapBar{Notes: m.Notes}
	if m.Drilled {
		b.Overview = link{Text: "← overview", Href: v.With(func(w *View) { w.Expand = nil }).Href("/")}
	}
	switch {
	case v.Incident != "":
		b.Incident = link{Text: "← whole map", Href: v.With(func(w *View) { w.Incident = "" }).Href("/")}
	case m.Firing > 0:
		what := fmt.Sprintf("%d firing findings", m.Firing)
		if m.Firing == 1 {
			what = "1 firing finding"
		}
		b.Incident = link{Text: "Incident view: " + what + " →", Href: v.With(func(w *View) { w.Incident = IncidentAll; w.Focus = "" }).Href("/")}
	}
	switch {
	case m.Incident || (m.Firing == 0 && !v.NoDim):
	case v.NoDim:
		b.Dim = link{Text: "dimming off: turn it on", Href: v.With(func(w *View) { w.NoDim = false }).Href("/")}
	default:
		b.Dim = link{Text: "dimming on: turn it off", Href: v.With(func(w *View) { w.NoDim = true }).Href("/")}
	}
	return b
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// findingsFor returns the findings view v shows, and the time their ages
// are counted from: for a live view the latest read and the clock; for a
// past one (v.At) those of that time, read from the collector's storage,
// and v.At. When the past ones cannot be read it returns none and the
// error, for the page to say so.
func (u *UI) findingsFor(ctx context.Context, v View, cur current) ([]finding.Finding, time.Time, error) {
	if v.At.IsZero() {
		return cur.findings, u.o.Clock(), nil
	}
	fs, err := u.o.Source.FindingsAt(ctx, 0, v.At)
	return fs, v.At, err
}

// findingsErr says why the findings of view v cannot be shown.
func findingsErr(v View, err error) string {
	if !v.At.IsZero() {
		return "The findings of " + fmtTime(v.At) + " cannot be read: " + err.Error()
	}
	return "The collector cannot be read: " + err.Error()
}

func (u *UI) findingsPage(ctx context.Context, _ *http.Request, v View, cur current) (templ.Component, string, error) {
	m := u.findingsModelFor(ctx, v, cur)
	return findingsBody(m, u.controls("/findings", v, nil, nil, false)), "Findings", nil
}

// findingsModelFor is the findings page of view v.
func (u *UI) findingsModelFor(ctx context.Context, v View, cur current) findingsModel {
	fs, fnow, err := u.findingsFor(ctx, v, cur)
	m := buildFindings(fs, v, fnow, 200)
	switch {
	case err != nil:
		m.Err = findingsErr(v, err)
	case cur.err != nil && v.At.IsZero():
		m.Err = findingsErr(v, cur.err)
	}
	return m
}

// envChoices are the environments a map can be shown for: none when the
// graph names at most one and the view asks for none.
func envChoices(v View, envs []string) []option {
	if len(envs) < 2 && v.Env == "" {
		return nil
	}
	out := []option{{Value: "", Text: "choose…", Selected: v.Env == ""}}
	for _, e := range envs {
		out = append(out, option{Value: e, Text: e, Selected: v.Env == e})
	}
	return append(out, option{Value: EnvAll, Text: "all (merged)", Selected: v.Env == EnvAll})
}

// onGraph keeps the findings whose subject is on s: those of one
// environment's map.
func onGraph(fs []finding.Finding, s *graph.Snapshot) []finding.Finding {
	edges := make(map[string]bool, len(s.Edges))
	for _, e := range s.Edges {
		edges[e.ID] = true
	}
	var out []finding.Finding
	for _, f := range fs {
		_, onNode := s.Node(f.Subject.NodeID)
		if edges[f.Subject.EdgeID] || f.Subject.EdgeID == "" && onNode {
			out = append(out, f)
		}
	}
	return out
}

// listOr joins names, or says none.
func listOr(names []string, none string) string {
	if len(names) == 0 {
		return none
	}
	return strings.Join(names, ", ")
}
