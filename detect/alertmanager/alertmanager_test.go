package alertmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/detect"
	"github.com/seed-a49a8342/cartograph/detect/incident"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// clock is an injected clock safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// switchDetector reports whatever observations the test sets.
type switchDetector struct {
	mu  sync.Mutex
	obs []detect.Observation
}

func (*switchDetector) Kind() finding.Kind { return finding.KindRetryStorm }

func (d *switchDetector) Detect(context.Context, *graph.Snapshot) []detect.Observation {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.obs)
}

func (d *switchDetector) set(obs ...detect.Observation) {
	d.mu.Lock()
	d.obs = obs
	d.mu.Unlock()
}

func storm(src, dst string) detect.Observation {
	return detect.Observation{Kind: finding.KindRetryStorm, Severity: finding.SeverityWarning,
		Subject: finding.Subject{Source: src, Target: dst, EdgeID: "service:" + src + "->service:" + dst},
		Summary: src + " retries 40% of its calls to " + dst,
		Evidence: map[string]any{"retry_ratio": 0.4, "amplification": 1.4, "chain": []string{src, dst},
			"requests": uint64(1500)}}
}

// snapshot: the outside world calls a, a calls b.
func snapshot() *graph.Snapshot {
	return graph.NewSnapshot(time.Unix(0, 0), time.Minute,
		[]graph.Node{{ID: "client:client", Kind: graph.NodeClient, Name: "client"},
			{ID: "service:a", Kind: graph.NodeService, Name: "a"}, {ID: "service:b", Kind: graph.NodeService, Name: "b"}},
		[]graph.Edge{
			{ID: "client:client->service:a", Source: "client:client", Target: "service:a", Kind: graph.EdgeSync, RatePerS: 10},
			{ID: "service:a->service:b", Source: "service:a", Target: "service:b", Kind: graph.EdgeSync, RatePerS: 10},
		})
}

// fixture is a real detect.Engine on an injected clock, evaluated by hand
// every 5s of that clock.
type fixture struct {
	clk *clock
	det *switchDetector
	eng *detect.Engine
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{clk: &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, det: &switchDetector{}}
	var err error
	f.eng, err = detect.NewEngine(detect.EngineOptions{Detectors: []detect.Detector{f.det},
		Interval: 5 * time.Second, Now: f.clk.Now})
	require.NoError(t, err)
	return f
}

// tick advances the clock by the engine interval and evaluates.
func (f *fixture) tick() {
	f.clk.Add(5 * time.Second)
	f.eval()
}

func (f *fixture) eval() { f.eng.Eval(context.Background(), snapshot()) }

// fire makes obs fire: the engine's hold is one interval.
func (f *fixture) fire(t *testing.T, obs ...detect.Observation) {
	t.Helper()
	f.det.set(obs...)
	f.eval()
	f.tick()
	require.Len(t, f.eng.Findings(finding.StateFiring), len(obs))
}

// resolve clears the condition and evaluates until it resolves (keep-firing
// is two intervals).
func (f *fixture) resolve(t *testing.T) {
	t.Helper()
	f.det.set()
	f.tick()
	f.tick()
	require.Empty(t, f.eng.Findings(finding.StateFiring))
}

// wireAlert is a postableAlert as decoded by the receiver; unknown fields
// fail the decode.
type wireAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     string            `json:"startsAt"`
	EndsAt       string            `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
}

type request struct {
	at     time.Time
	path   string
	header http.Header
	body   []byte
	alerts []wireAlert
}

// receiver is a real HTTP server standing in for Alertmanager: it records
// every request and answers with status(n) for the n-th one (0-based).
type receiver struct {
	srv    *httptest.Server
	status func(n int) int
	slow   bool // wait until the client gives up

	mu   sync.Mutex
	reqs []request
	errs []error
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	t.Helper()
	r := &receiver{status: status}
	if r.status == nil {
		r.status = func(int) int { return http.StatusOK }
	}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		r.srv.Close()
		r.mu.Lock()
		defer r.mu.Unlock()
		require.Empty(t, r.errs, "receiver saw malformed requests")
	})
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	body, err := io.ReadAll(req.Body)
	rec := request{at: at, path: req.URL.Path, header: req.Header.Clone(), body: body}
	if err == nil && req.Method != http.MethodPost {
		err = errors.New("method " + req.Method)
	}
	if err == nil && req.Header.Get("Content-Type") != "application/json" {
		err = errors.New("content type " + req.Header.Get("Content-Type"))
	}
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		err = dec.Decode(&rec.alerts)
	}
	r.mu.Lock()
	n := len(r.reqs)
	r.reqs = append(r.reqs, rec)
	if err != nil {
		r.errs = append(r.errs, err)
	}
	r.mu.Unlock()
	if r.slow {
		select {
		case <-req.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return
	}
	code := r.status(n)
	if code == http.StatusUnauthorized {
		// A careless server that echoes the credentials it refused.
		http.Error(w, "bad credentials: "+req.Header.Get("Authorization"), code)
		return
	}
	w.WriteHeader(code)
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return ts
}

func newPusher(t *testing.T, o Options) *Pusher {
	t.Helper()
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	p, err := New(o)
	require.NoError(t, err)
	return p
}

func TestFiringResentThenResolved(t *testing.T) {
	f := newFixture(t)
	rcv := newReceiver(t, nil)
	p := newPusher(t, Options{URLs: []string{rcv.srv.URL}, Source: f.eng, Now: f.clk.Now,
		ExternalURL: "https://cartograph.example/", Labels: map[string]string{"cluster": "prod"},
		BearerToken: "s3cret"})
	ctx := context.Background()
	t0 := f.clk.Now()

	f.det.set(storm("a", "b"))
	f.eval()
	require.NoError(t, p.PushOnce(ctx))
	require.Empty(t, rcv.requests(), "a pending finding is not an alert, and an empty push is not sent")

	f.tick()
	fired := f.eng.Findings(finding.StateFiring)
	require.Len(t, fired, 1)
	id := fired[0].ID
	require.NoError(t, p.PushOnce(ctx))
	reqs := rcv.requests()
	require.Len(t, reqs, 1)
	require.Equal(t, "/api/v2/alerts", reqs[0].path)
	require.Equal(t, "Bearer s3cret", reqs[0].header.Get("Authorization"))
	require.Len(t, reqs[0].alerts, 1)
	a := reqs[0].alerts[0]
	require.Equal(t, map[string]string{
		"alertname": "CartographRetryStorm", "kind": "retry_storm",
		"finding_id": id, "source": "a", "target": "b", "service": "a", "cluster": "prod",
	}, a.Labels)
	require.Equal(t, "a retries 40% of its calls to b", a.Annotations["summary"])
	require.Equal(t, "warning", a.Annotations["severity"])
	require.Equal(t, "a retries 40% of its calls to b\n"+
		`Evidence: amplification=1.4 chain=["a","b"] requests=1500 retry_ratio=0.4`+"\n"+
		"Entry points affected: a (100%)", a.Annotations["description"])
	require.JSONEq(t, `{"retry_ratio":0.4,"amplification":1.4,"chain":["a","b"],"requests":1500}`, a.Annotations["evidence"])
	require.Equal(t, "https://cartograph.example/findings/"+id, a.GeneratorURL)
	require.Equal(t, t0, mustTime(t, a.StartsAt), "startsAt is when the condition began")
	require.Equal(t, t0.Add(5*time.Second+4*30*time.Second), mustTime(t, a.EndsAt), "endsAt is now + 4 intervals")

	// Still firing: re-sent, endsAt pushed forward.
	f.tick()
	require.NoError(t, p.PushOnce(ctx))
	reqs = rcv.requests()
	require.Len(t, reqs, 2)
	require.Len(t, reqs[1].alerts, 1)
	require.Equal(t, a.Labels, reqs[1].alerts[0].Labels)
	require.Equal(t, t0, mustTime(t, reqs[1].alerts[0].StartsAt))
	require.Equal(t, t0.Add(10*time.Second+120*time.Second), mustTime(t, reqs[1].alerts[0].EndsAt))

	// Resolved: sent with endsAt = the resolution time, three times, then no more.
	f.resolve(t)
	res := f.eng.Findings(finding.StateResolved)
	require.Len(t, res, 1)
	for i := range 3 {
		f.clk.Add(30 * time.Second)
		require.NoError(t, p.PushOnce(ctx))
		reqs = rcv.requests()
		require.Len(t, reqs, 3+i)
		last := reqs[len(reqs)-1]
		require.Len(t, last.alerts, 1)
		require.Equal(t, a.Labels, last.alerts[0].Labels)
		require.Equal(t, *res[0].ResolvedAt, mustTime(t, last.alerts[0].EndsAt))
		require.Equal(t, t0, mustTime(t, last.alerts[0].StartsAt))
	}
	for range 3 {
		f.clk.Add(30 * time.Second)
		require.NoError(t, p.PushOnce(ctx))
	}
	require.Len(t, rcv.requests(), 5, "a resolved alert is sent three times, then no more")

	require.InDelta(t, 5, testutil.ToFloat64(p.pushes.WithLabelValues("0", "success")), 0)
	require.InDelta(t, 5, testutil.ToFloat64(p.sent.WithLabelValues("0")), 0)
	require.InDelta(t, float64(f.clk.Now().Add(-90*time.Second).Unix()), testutil.ToFloat64(p.lastOK.WithLabelValues("0")), 0)
}

// TestSeverityChangeKeepsOneSeries: a finding that escalates from warning
// to critical and back is one alert for its whole life. Alertmanager
// identifies an alert by its label set, so every push must carry the same
// labels; the new severity arrives as an annotation of that alert.
func TestSeverityChangeKeepsOneSeries(t *testing.T) {
	f := newFixture(t)
	rcv := newReceiver(t, nil)
	p := newPusher(t, Options{URLs: []string{rcv.srv.URL}, Source: f.eng, Now: f.clk.Now})
	ctx := context.Background()
	critical := storm("a", "b")
	critical.Severity = finding.SeverityCritical
	critical.Summary = "a retries 90% of its calls to b"

	f.fire(t, storm("a", "b"))
	require.NoError(t, p.PushOnce(ctx))
	for _, obs := range []detect.Observation{critical, storm("a", "b")} {
		f.det.set(obs)
		f.tick()
		require.NoError(t, p.PushOnce(ctx))
	}
	f.resolve(t)
	require.NoError(t, p.PushOnce(ctx))

	reqs := rcv.requests()
	require.Len(t, reqs, 4)
	var severities []string
	for i, r := range reqs {
		require.Len(t, r.alerts, 1, "push %d carries the finding's one alert, nothing retired beside it", i)
		require.Equal(t, reqs[0].alerts[0].Labels, r.alerts[0].Labels, "push %d: the same series", i)
		severities = append(severities, r.alerts[0].Annotations["severity"])
	}
	require.Equal(t, []string{"warning", "critical", "warning", "warning"}, severities)
	require.Equal(t, "a retries 90% of its calls to b", reqs[1].alerts[0].Annotations["summary"])
	require.NotContains(t, reqs[0].alerts[0].Labels, "severity")
	require.Equal(t, *f.eng.Findings(finding.StateResolved)[0].ResolvedAt, mustTime(t, reqs[3].alerts[0].EndsAt),
		"the one series resolves")
}

func TestFiredAndResolvedBetweenPushes(t *testing.T) {
	f := newFixture(t)
	rcv := newReceiver(t, nil)
	p := newPusher(t, Options{URLs: []string{rcv.srv.URL}, Source: f.eng, Now: f.clk.Now})
	f.fire(t, storm("a", "b"))
	f.resolve(t)
	for range 4 {
		require.NoError(t, p.PushOnce(context.Background()))
	}
	reqs := rcv.requests()
	require.Len(t, reqs, 3)
	require.Equal(t, "CartographRetryStorm", reqs[0].alerts[0].Labels["alertname"])
	require.Equal(t, *f.eng.Findings(finding.StateResolved)[0].ResolvedAt, mustTime(t, reqs[0].alerts[0].EndsAt))
	require.Empty(t, reqs[0].alerts[0].GeneratorURL, "no external URL, no generatorURL")
}

func TestResolvedBeforeStartNotSent(t *testing.T) {
	f := newFixture(t)
	rcv := newReceiver(t, nil)
	f.fire(t, storm("a", "b"))
	f.resolve(t)
	f.clk.Add(time.Minute)
	p := newPusher(t, Options{URLs: []string{rcv.srv.URL}, Source: f.eng, Now: f.clk.Now})
	require.NoError(t, p.PushOnce(context.Background()))
	require.Empty(t, rcv.requests(), "findings resolved before the pusher started are history, not news")
}

func TestRunResendsAndFlushes(t *testing.T) {
	t.Run("resends every interval", func(t *testing.T) {
		f := newFixture(t)
		rcv := newReceiver(t, nil)
		p := newPusher(t, Options{URLs: []string{rcv.srv.URL}, Source: f.eng, Now: f.clk.Now, Interval: 20 * time.Millisecond})
		f.fire(t, storm("a", "b"))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		require.Eventually(t, func() bool { return len(rcv.requests()) >= 4 }, 5*time.Second, 5*time.Millisecond)
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return")
		}
		for _, r := range rcv.requests() {
			require.Len(t, r.alerts, 1)
			require.Equal(t, "retry_storm", r.alerts[0].Labels["kind"])
		}
	})
	t.Run("flushes resolved alerts on stop", func(t *testing.T) {
		f := newFixture(t)
		rcv := newReceiver(t, nil)
		p := newPusher(t, Options{URLs: []string{rcv.srv.URL}, Source: f.eng, Now: f.clk.Now, Interval: time.Hour})
		f.fire(t, storm("a", "b"))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		require.Eventually(t, func() bool { return len(rcv.requests()) == 1 }, 5*time.Second, 5*time.Millisecond,
			"Run pushes at once")
		f.resolve(t)
		cancel()
		require.NoError(t, <-done)
		reqs := rcv.requests()
		require.Len(t, reqs, 2, "one last push on the way out")
		require.Equal(t, *f.eng.Findings(finding.StateResolved)[0].ResolvedAt, mustTime(t, reqs[1].alerts[0].EndsAt))
	})
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name       string
		statuses   []int // then 200
		maxRetries int
		requests   int
		outcome    string
		retries    int
		err        error
	}{
		{name: "500 then success", statuses: []int{500}, requests: 2, outcome: outcomeSuccess, retries: 1},
		{name: "429 and 503 then success", statuses: []int{429, 503}, requests: 3, outcome: outcomeSuccess, retries: 2},
		{name: "5xx until retries run out", statuses: []int{502, 502, 502, 502}, maxRetries: 2, requests: 3, outcome: outcomeError, retries: 2, err: ErrUnavailable},
		{name: "400 is not retried", statuses: []int{400}, requests: 1, outcome: outcomeDropped, err: ErrRejected},
		{name: "404 is not retried", statuses: []int{404}, requests: 1, outcome: outcomeDropped, err: ErrRejected},
		{name: "never retry", statuses: []int{500}, maxRetries: -1, requests: 1, outcome: outcomeError, err: ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			rcv := newReceiver(t, func(n int) int {
				if n < len(tc.statuses) {
					return tc.statuses[n]
				}
				return http.StatusOK
			})
			var jitter sync.Mutex
			var draws int
			p := newPusher(t, Options{URLs: []string{rcv.srv.URL}, Source: f.eng, Now: f.clk.Now,
				MaxRetries: tc.maxRetries, Backoff: 40 * time.Millisecond,
				Rand: func() float64 { jitter.Lock(); draws++; jitter.Unlock(); return 0 }})
			f.fire(t, storm("a", "b"))
			err := p.PushOnce(context.Background())
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
			} else {
				require.NoError(t, err)
			}
			reqs := rcv.requests()
			require.Len(t, reqs, tc.requests)
			for i := 1; i < len(reqs); i++ {
				require.Equal(t, reqs[0].body, reqs[i].body, "a retry sends the same alerts")
				// Rand()=0: half the doubled backoff, 20ms then 40ms.
				require.GreaterOrEqual(t, reqs[i].at.Sub(reqs[i-1].at), 20*time.Millisecond<<(i-1))
			}
			require.Equal(t, tc.retries, draws)
			require.InDelta(t, 1, testutil.ToFloat64(p.pushes.WithLabelValues("0", tc.outcome)), 0)
			require.Equal(t, 3, testutil.CollectAndCount(p.pushes), "every outcome's series exists from the start")
			require.InDelta(t, float64(tc.retries), testutil.ToFloat64(p.retries.WithLabelValues("0")), 0)
			if tc.outcome != outcomeSuccess {
				require.Zero(t, testutil.ToFloat64(p.lastOK.WithLabelValues("0")))
				require.Zero(t, testutil.ToFloat64(p.sent.WithLabelValues("0")))
			}
		})
	}
}

func TestSlowReceiverTimesOut(t *testing.T) {
	f := newFixture(t)
	rcv := newReceiver(t, nil)
	rcv.slow = true
	p := newPusher(t, Options{URLs: []string{rcv.srv.URL}, Source: f.eng, Now: f.clk.Now,
		Timeout: 100 * time.Millisecond, MaxRetries: 1, Backoff: time.Millisecond})
	f.fire(t, storm("a", "b"))
	t0 := time.Now()
	err := p.PushOnce(context.Background())
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(t0), 3*time.Second)
	require.Len(t, rcv.requests(), 2, "a timeout is retried")
	require.InDelta(t, 1, testutil.ToFloat64(p.pushes.WithLabelValues("0", outcomeError)), 0)
}

func TestEveryURLReceives(t *testing.T) {
	f := newFixture(t)
	good := newReceiver(t, nil)
	bad := newReceiver(t, func(int) int { return http.StatusServiceUnavailable })
	prefixed := newReceiver(t, nil)
	p := newPusher(t, Options{URLs: []string{good.srv.URL, bad.srv.URL, prefixed.srv.URL + "/am/"},
		Source: f.eng, Now: f.clk.Now, MaxRetries: -1})
	f.fire(t, storm("a", "b"), storm("c", "d"))
	err := p.PushOnce(context.Background())
	require.ErrorIs(t, err, ErrUnavailable)
	require.Contains(t, err.Error(), "target 1")
	require.NotContains(t, err.Error(), "target 0")

	g, b, pr := good.requests(), bad.requests(), prefixed.requests()
	require.Len(t, g, 1)
	require.Len(t, b, 1)
	require.Len(t, pr, 1)
	require.Len(t, g[0].alerts, 2)
	require.Equal(t, g[0].body, b[0].body)
	require.Equal(t, g[0].body, pr[0].body)
	require.Equal(t, "/am/api/v2/alerts", pr[0].path, "a route prefix is kept")

	for target, want := range map[string]string{"0": outcomeSuccess, "1": outcomeError, "2": outcomeSuccess} {
		require.InDelta(t, 1, testutil.ToFloat64(p.pushes.WithLabelValues(target, want)), 0, target)
	}
	require.InDelta(t, 2, testutil.ToFloat64(p.sent.WithLabelValues("0")), 0)
	require.Zero(t, testutil.ToFloat64(p.sent.WithLabelValues("1")))
}

func TestMaxAlerts(t *testing.T) {
	f := newFixture(t)
	rcv := newReceiver(t, nil)
	p := newPusher(t, Options{URLs: []string{rcv.srv.URL}, Source: f.eng, Now: f.clk.Now, MaxAlerts: 3})
	var obs []detect.Observation
	for _, s := range []string{"a", "b", "c", "d", "e"} {
		obs = append(obs, storm(s, "z"))
	}
	f.fire(t, obs...)
	require.NoError(t, p.PushOnce(context.Background()))
	reqs := rcv.requests()
	require.Len(t, reqs, 1)
	require.Len(t, reqs[0].alerts, 3)
	require.InDelta(t, 2, testutil.ToFloat64(p.overflow), 0)
}

func TestBearerTokenNeverLogged(t *testing.T) {
	f := newFixture(t)
	rcv := newReceiver(t, func(int) int { return http.StatusUnauthorized })
	var logs bytes.Buffer
	var mu sync.Mutex
	h := slog.NewTextHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug})
	p := newPusher(t, Options{URLs: []string{rcv.srv.URL}, Source: f.eng, Now: f.clk.Now,
		BearerToken: "tok-8f2e1c", Logger: slog.New(h)})
	f.fire(t, storm("a", "b"))
	err := p.PushOnce(context.Background())
	require.ErrorIs(t, err, ErrRejected)
	require.Len(t, rcv.requests(), 1, "401 is not retried")
	require.Equal(t, "Bearer tok-8f2e1c", rcv.requests()[0].header.Get("Authorization"))
	require.NotContains(t, err.Error(), "tok-8f2e1c")
	mu.Lock()
	defer mu.Unlock()
	require.Contains(t, logs.String(), "401")
	require.NotContains(t, logs.String(), "tok-8f2e1c")
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func TestAlertName(t *testing.T) {
	for k, want := range map[finding.Kind]string{
		finding.KindBottleneck:  "CartographBottleneck",
		finding.KindRetryStorm:  "CartographRetryStorm",
		finding.KindOpenCircuit: "CartographOpenCircuit",
		finding.KindConsumerLag: "CartographConsumerLag",
	} {
		require.Equal(t, want, AlertName(k))
	}
}

func TestNodeSubjectLabels(t *testing.T) {
	src := staticSource{{ID: "x1", Kind: finding.KindBottleneck, State: finding.StateFiring, Severity: finding.SeverityCritical,
		Subject: finding.Subject{Node: "payment", NodeID: "service:payment"}, Summary: "payment spends 80% of the time in itself",
		StartedAt: time.Unix(100, 0)}}
	p := newPusher(t, Options{URLs: []string{"http://127.0.0.1:1"}, Source: src, Now: func() time.Time { return time.Unix(200, 0) }})
	a := p.build(&src[0], time.Unix(320, 0), nil, nil)
	require.Equal(t, map[string]string{"alertname": "CartographBottleneck", "kind": "bottleneck",
		"finding_id": "x1", "node": "payment", "service": "payment"}, a.Labels)
	require.Equal(t, "critical", a.Annotations["severity"])
	require.Equal(t, "payment spends 80% of the time in itself", a.Annotations["description"])
	require.NotContains(t, a.Annotations, "evidence")
}

type staticSource []finding.Finding

func (s staticSource) Findings(state finding.State) []finding.Finding {
	var out []finding.Finding
	for _, f := range s {
		if f.State == state {
			out = append(out, f)
		}
	}
	return out
}

func TestValidate(t *testing.T) {
	src := staticSource{}
	for _, tc := range []struct {
		name string
		o    Options
		err  string
	}{
		{"ok", Options{URLs: []string{"http://am:9093"}, Source: src, Labels: map[string]string{"cluster": "eu"}}, ""},
		{"no urls", Options{Source: src}, "no Alertmanager URLs"},
		{"bad scheme", Options{URLs: []string{"am:9093"}, Source: src}, "want http(s)"},
		{"no source", Options{URLs: []string{"http://am:9093"}}, "no findings source"},
		{"resolve timeout too short", Options{URLs: []string{"http://am:9093"}, Source: src, Interval: time.Minute, ResolveTimeout: time.Minute}, "resolve timeout"},
		{"reserved label", Options{URLs: []string{"http://am:9093"}, Source: src, Labels: map[string]string{"severity": "x"}}, `static label "severity"`},
		{"bad label name", Options{URLs: []string{"http://am:9093"}, Source: src, Labels: map[string]string{"a-b": "x"}}, `static label "a-b"`},
		{"relative external URL", Options{URLs: []string{"http://am:9093"}, Source: src, ExternalURL: "/carto"}, "external URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
	_, err := New(Options{URLs: []string{"http://user:pw@am:9093", "ftp://x"}, Source: src})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "pw@")
}

func TestBackoffCapped(t *testing.T) {
	p := newPusher(t, Options{URLs: []string{"http://am:9093"}, Source: staticSource{}, Interval: time.Second,
		Backoff: 300 * time.Millisecond, Rand: func() float64 { return 0.999999 }})
	require.InDelta(t, 300*time.Millisecond, p.backoff(0), float64(time.Millisecond))
	require.InDelta(t, 600*time.Millisecond, p.backoff(1), float64(time.Millisecond))
	for _, n := range []int{2, 3, 40} {
		require.LessOrEqual(t, p.backoff(n), time.Second)
		require.Greater(t, p.backoff(n), 900*time.Millisecond)
	}
	p.o.Rand = func() float64 { return 0 }
	require.Equal(t, 150*time.Millisecond, p.backoff(0))
	require.Equal(t, 500*time.Millisecond, p.backoff(50))
}

// TestIncidentLabelsStayPinned: alerts carry the incident of their finding
// and its root cause as labels (detect/incident's real tracker, fed the
// engine's findings tick by tick), so Alertmanager can group by incident.
// A finding not yet in an incident waits a push rather than be sent
// unlabelled; and when two incidents merge, the labels of the alerts
// already sent stay what they were (one series per finding for life),
// while the incident annotation follows the merge.
func TestIncidentLabelsStayPinned(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	det := &switchDetector{}
	eng, err := detect.NewEngine(detect.EngineOptions{Detectors: []detect.Detector{det}, Interval: 5 * time.Second, Now: clk.Now})
	require.NoError(t, err)
	tr, err := incident.New(incident.Options{Now: clk.Now})
	require.NoError(t, err)
	rcv := newReceiver(t, nil)
	p := newPusher(t, Options{URLs: []string{rcv.srv.URL}, Source: eng, Incidents: tr, Now: clk.Now})
	ctx := context.Background()
	bridged := false
	snap := func() *graph.Snapshot {
		nodes := []graph.Node{{ID: "client:client", Kind: graph.NodeClient, Name: "client"}}
		for _, n := range []string{"a", "b", "c", "d"} {
			nodes = append(nodes, graph.Node{ID: "service:" + n, Kind: graph.NodeService, Name: n})
		}
		edge := func(src, dst string) graph.Edge {
			return graph.Edge{ID: src + "->" + dst, Source: src, Target: dst, Kind: graph.EdgeSync, RatePerS: 10}
		}
		edges := []graph.Edge{edge("client:client", "service:a"), edge("service:a", "service:b"),
			edge("client:client", "service:c"), edge("service:c", "service:d")}
		if bridged {
			edges = append(edges, edge("service:b", "service:c"))
		}
		return graph.NewSnapshot(clk.Now(), time.Minute, nodes, edges)
	}
	stormOn := func(src, dst string) detect.Observation {
		o := storm(src, dst)
		o.Subject.EdgeID = "service:" + src + "->service:" + dst
		return o
	}
	// tick evaluates; correlate, when set, runs the tracker on the same
	// tick, as the runner does right after the engine.
	tick := func(correlate bool) {
		clk.Add(5 * time.Second)
		s := snap()
		eng.Eval(ctx, s)
		if correlate {
			tr.Correlate(s, eng.Findings(0))
		}
	}
	lastAlerts := func() map[string]wireAlert {
		reqs := rcv.requests()
		out := map[string]wireAlert{}
		for _, a := range reqs[len(reqs)-1].alerts {
			out[a.Labels["finding_id"]] = a
		}
		return out
	}

	det.set(stormOn("a", "b"))
	tick(true)
	tick(false) // fires; the push below comes before its tick's correlation
	require.Len(t, eng.Findings(finding.StateFiring), 1)
	ab := eng.Findings(finding.StateFiring)[0].ID
	require.NoError(t, p.PushOnce(ctx))
	require.Empty(t, rcv.requests(), "a firing finding waits for its incident")
	tr.Correlate(snap(), eng.Findings(0))
	require.NoError(t, p.PushOnce(ctx))
	a := lastAlerts()[ab]
	require.Equal(t, "inc-"+ab, a.Labels["incident_id"])
	require.Equal(t, "b", a.Labels["root_cause"], "the callee of the storm explains it")
	require.Equal(t, "inc-"+ab, a.Annotations["incident"])
	require.Contains(t, a.Annotations["root_causes"], "b (")

	// An unrelated storm: an incident of its own.
	det.set(stormOn("a", "b"), stormOn("c", "d"))
	tick(true)
	tick(true)
	require.NoError(t, p.PushOnce(ctx))
	var cd string
	for id, a := range lastAlerts() {
		if id != ab {
			cd = id
			require.Equal(t, "inc-"+id, a.Labels["incident_id"])
		}
	}
	require.NotEmpty(t, cd)

	// b starts calling c and that call storms too: the three findings are
	// one incident now, under the older id.
	bridged = true
	det.set(stormOn("a", "b"), stormOn("c", "d"), stormOn("b", "c"))
	tick(true)
	tick(true)
	inc, ok := tr.IncidentOf(cd)
	require.True(t, ok)
	require.Equal(t, "inc-"+ab, inc.ID, "merged into the older incident")
	require.NoError(t, p.PushOnce(ctx))
	alerts := lastAlerts()
	require.Len(t, alerts, 3)
	require.Equal(t, "inc-"+cd, alerts[cd].Labels["incident_id"], "a label once sent never changes")
	require.Equal(t, "inc-"+ab, alerts[cd].Annotations["incident"], "the annotation follows the merge")
	for id, a := range alerts {
		if id != cd {
			require.Equal(t, "inc-"+ab, a.Labels["incident_id"], "a finding first sent after the merge is labelled with the merged incident")
		}
	}
}

// TestOwnerLabelPinned: a finding's owner is its edge target's; its alert
// carries it as the owner label from the first push for its whole life,
// even when the owner changes (one series), the current owner as an
// annotation; its incident names its root cause's owner. Without an
// incident source the label is pinned alike.
func TestOwnerLabelPinned(t *testing.T) {
	for _, withIncidents := range []bool{true, false} {
		t.Run(fmt.Sprintf("incidents=%v", withIncidents), func(t *testing.T) {
			clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			det := &switchDetector{}
			eng, err := detect.NewEngine(detect.EngineOptions{Detectors: []detect.Detector{det}, Interval: 5 * time.Second, Now: clk.Now})
			require.NoError(t, err)
			tr, err := incident.New(incident.Options{Now: clk.Now})
			require.NoError(t, err)
			rcv := newReceiver(t, nil)
			o := Options{URLs: []string{rcv.srv.URL}, Source: eng, Now: clk.Now}
			if withIncidents {
				o.Incidents = tr
			}
			p := newPusher(t, o)
			ctx := context.Background()
			bOwner := "team-b"
			snap := func() *graph.Snapshot {
				nodes := []graph.Node{{ID: "client:client", Kind: graph.NodeClient, Name: "client"},
					{ID: "service:a", Kind: graph.NodeService, Name: "a", Owner: "team-a"},
					{ID: "service:b", Kind: graph.NodeService, Name: "b", Owner: bOwner}}
				edge := func(src, dst string) graph.Edge {
					return graph.Edge{ID: src + "->" + dst, Source: src, Target: dst, Kind: graph.EdgeSync, RatePerS: 10}
				}
				return graph.NewSnapshot(clk.Now(), time.Minute, nodes, []graph.Edge{edge("client:client", "service:a"), edge("service:a", "service:b")})
			}
			tick := func() {
				clk.Add(5 * time.Second)
				s := snap()
				eng.Eval(ctx, s)
				tr.Correlate(s, eng.Findings(0))
			}
			o2 := storm("a", "b")
			o2.Subject.EdgeID = "service:a->service:b"
			det.set(o2)
			tick()
			tick()
			fs := eng.Findings(finding.StateFiring)
			require.Len(t, fs, 1)
			require.Equal(t, "team-b", fs[0].Owner, "the callee's team must act")
			if withIncidents {
				inc, ok := tr.IncidentOf(fs[0].ID)
				require.True(t, ok)
				require.Equal(t, "team-b", inc.Owner, "the owner of the root cause")
			}
			require.NoError(t, p.PushOnce(ctx))
			bOwner = "team-x"
			tick()
			require.Equal(t, "team-x", eng.Findings(finding.StateFiring)[0].Owner, "the finding follows the graph")
			require.NoError(t, p.PushOnce(ctx))
			reqs := rcv.requests()
			require.Len(t, reqs, 2)
			first, second := reqs[0].alerts[0], reqs[1].alerts[0]
			require.Equal(t, "team-b", first.Labels["owner"])
			require.Equal(t, first.Labels, second.Labels, "one series")
			require.Equal(t, "team-x", second.Annotations["owner"])
		})
	}
}
