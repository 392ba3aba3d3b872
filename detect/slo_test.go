package detect

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// fakeBuckets is a BucketSource over buckets a test adds: ClosedBuckets
// hands on those starting after `after` and before the fake clock's
// current bucket, as the graph does.
type fakeBuckets struct {
	now     *time.Time
	bucket  time.Duration
	buckets []graph.EdgeBucket
}

func (f *fakeBuckets) ClosedEntryBuckets(after time.Time) ([]graph.EdgeBucket, time.Time) {
	cur := f.now.Truncate(f.bucket)
	var out []graph.EdgeBucket
	newest := after
	for _, b := range f.buckets {
		if b.Start.After(after) && b.Start.Before(cur) {
			out = append(out, b)
			if b.Start.After(newest) {
				newest = b.Start
			}
		}
	}
	return out, newest
}

var (
	sloClient = graph.NodeKey{Kind: graph.NodeClient, Name: "client"}
	sloEntry  = graph.NodeKey{Kind: graph.NodeService, Name: "checkout"}
)

// phase is a stretch of traffic into checkout: so long, at an error ratio
// (of 2,000 requests per 5 s bucket).
type phase struct {
	d         time.Duration
	errRatio  float64
	slowRatio float64 // share of the requests slower than 300 ms
}

// runSLO feeds phases one 5 s bucket at a time, evaluating after each,
// and returns the pairs that fired at the end and at checkpoints.
func runSLO(t *testing.T, cfg SLOConfig, phases []phase, check map[time.Duration]func(t *testing.T, fired []BurnWindow)) []BurnWindow {
	t.Helper()
	const bucket = 5 * time.Second
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	start := now
	src := &fakeBuckets{now: &now, bucket: bucket}
	d, err := NewSLOBurn(SLOBurnOptions{Config: cfg, Buckets: src, Bucket: bucket, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := mapping.NewLogarithmicMapping(graph.LatencyRelativeAccuracy)
	var fired []BurnWindow
	for _, p := range phases {
		for end := now.Add(p.d); now.Before(end); {
			const n = 2000
			sk := ddsketch.NewDDSketchFromStoreProvider(m, store.DefaultProvider)
			slow := p.slowRatio * n
			_ = sk.AddWithCount(500, slow)
			_ = sk.AddWithCount(40, n-slow)
			src.buckets = append(src.buckets[max(0, len(src.buckets)-10):], graph.EdgeBucket{
				Start: now, Width: bucket, Source: sloClient, Target: sloEntry, Kind: graph.EdgeSync,
				Requests: n, Errors: uint64(p.errRatio * n), Server: graph.BinsOf(sk),
			})
			now = now.Add(bucket)
			obs := d.Detect(context.Background(), nil)
			fired = nil
			for _, st := range d.objs {
				fired = append(fired, st.last.fired...)
			}
			if len(obs) > 1 {
				t.Fatalf("%d observations, want at most one per entry", len(obs))
			}
			if len(obs) == 1 && (obs[0].Kind != finding.KindSLOBurn || obs[0].Subject.NodeID != sloEntry.ID()) {
				t.Fatalf("observation %+v", obs[0])
			}
			if f := check[now.Sub(start)]; f != nil {
				f(t, fired)
			}
		}
	}
	return fired
}

func pairNames(ws []BurnWindow) string {
	var s []string
	for _, w := range ws {
		s = append(s, w.Name())
	}
	return strings.Join(s, ",")
}

func TestSLOBurnRates(t *testing.T) {
	avail := SLOConfig{Objectives: []Objective{{Service: "checkout", SLI: SLIAvailability, Target: 99.9}}}
	latency := SLOConfig{Objectives: []Objective{{Service: "checkout", SLI: SLILatency, Target: 99, Threshold: Duration(300 * time.Millisecond)}}}
	healthy := phase{d: 6 * time.Hour, errRatio: 0.0005}
	for _, tc := range []struct {
		name   string
		cfg    SLOConfig
		phases []phase
		check  map[time.Duration]func(*testing.T, []BurnWindow)
		want   string
	}{
		{
			// 2% failing is a burn rate of 20: the hour's ratio passes
			// 1.44% (14.4 x 0.1%) after about 43 minutes of it.
			name: "2% errors against 99.9% fire the fast pair", cfg: avail,
			phases: []phase{healthy, {d: time.Hour, errRatio: 0.02}},
			check: map[time.Duration]func(*testing.T, []BurnWindow){
				6*time.Hour + 40*time.Minute: func(t *testing.T, fired []BurnWindow) {
					if len(fired) > 0 {
						t.Errorf("40 min into the burn: %s fired; the hour's ratio is still under 14.4x", pairNames(fired))
					}
				},
				6*time.Hour + 46*time.Minute: func(t *testing.T, fired []BurnWindow) {
					if pairNames(fired) != "1h/5m" {
						t.Errorf("46 min into the burn: fired %q, want 1h/5m", pairNames(fired))
					}
				},
			},
			want: "1h/5m",
		},
		{
			name: "a 5 min spike does not page while the hour is not burning", cfg: avail,
			phases: []phase{healthy, {d: 5 * time.Minute, errRatio: 0.1}, {d: 30 * time.Second, errRatio: 0.0005}},
			check: map[time.Duration]func(*testing.T, []BurnWindow){
				6*time.Hour + 5*time.Minute: func(t *testing.T, fired []BurnWindow) {
					if len(fired) > 0 {
						t.Errorf("at the end of the spike: %s fired", pairNames(fired))
					}
				},
			},
			want: "",
		},
		{
			// 0.8% failing: burn rate 8, above 6, under 14.4.
			name: "a slow burn fires the slow pair only", cfg: avail,
			phases: []phase{healthy, {d: 6 * time.Hour, errRatio: 0.008}},
			want:   "6h/30m",
		},
		{
			name: "background errors well inside the budget fire nothing", cfg: avail,
			phases: []phase{{d: 7 * time.Hour, errRatio: 0.0005}},
			want:   "",
		},
		{
			// 40% of requests over 300 ms against 99% under, for 40
			// minutes: the hour burns at 27, six hours at 4.6.
			name: "a latency objective counts the requests over its threshold", cfg: latency,
			phases: []phase{{d: 6 * time.Hour, slowRatio: 0.002}, {d: 40 * time.Minute, slowRatio: 0.4}},
			want:   "1h/5m",
		},
		{
			name: "scaled windows for tests", cfg: SLOConfig{Objectives: avail.Objectives, Windows: []BurnWindow{
				{Long: Duration(time.Minute), Short: Duration(10 * time.Second), Factor: 14.4, Severity: finding.SeverityCritical}}},
			phases: []phase{{d: 5 * time.Minute, errRatio: 0.0005}, {d: time.Minute, errRatio: 0.5}},
			want:   "1m/10s",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg.withDefaults()
			if got := pairNames(runSLO(t, cfg, tc.phases, tc.check)); got != tc.want {
				t.Errorf("fired %q at the end, want %q", got, tc.want)
			}
		})
	}
}

// TestSLOBurnLifecycle runs the detector in the Engine: the burn goes
// pending, fires critical with its evidence, and resolves once the short
// window stops burning.
func TestSLOBurnLifecycle(t *testing.T) {
	const bucket = 5 * time.Second
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	src := &fakeBuckets{now: &now, bucket: bucket}
	cfg, err := ParseSLOConfig([]byte(`
windows:
  - {long: 2m, short: 20s, factor: 14.4, severity: critical}
objectives:
  - {service: checkout, sli: availability, target: 99.9}
`), 0)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewSLOBurn(SLOBurnOptions{Config: cfg, Buckets: src, Bucket: bucket, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(EngineOptions{Detectors: []Detector{d}, Interval: bucket, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	step := func(errs uint64) {
		src.buckets = append(src.buckets, graph.EdgeBucket{Start: now, Width: bucket, Source: sloClient, Target: sloEntry, Kind: graph.EdgeSync, Requests: 100, Errors: errs})
		now = now.Add(bucket)
		e.Eval(context.Background(), nil)
	}
	for range 24 {
		step(0)
	}
	var states []finding.State
	for range 12 {
		step(20)
		if fs := e.Findings(0); len(fs) == 1 && (len(states) == 0 || states[len(states)-1] != fs[0].State) {
			states = append(states, fs[0].State)
		}
	}
	fs := e.Findings(finding.StateFiring)
	if len(fs) != 1 {
		t.Fatalf("firing %v, want one slo_burn", fs)
	}
	f := fs[0]
	if f.Kind != finding.KindSLOBurn || f.Severity != finding.SeverityCritical || f.Subject.Node != "checkout" {
		t.Errorf("finding %s %s on %+v", f.Kind, f.Severity, f.Subject)
	}
	if br, _ := f.Evidence["burn_rate"].(float64); br < 14.4 {
		t.Errorf("burn_rate %v in %v", f.Evidence["burn_rate"], f.Evidence)
	}
	if !strings.Contains(f.Summary, "checkout's availability objective (99.9%) burns its error budget") {
		t.Errorf("summary %q", f.Summary)
	}
	for range 12 {
		step(0)
	}
	if fs := e.Findings(finding.StateResolved); len(fs) != 1 {
		t.Errorf("after the burn stopped: resolved %v", fs)
	}
	if len(states) < 2 || states[0] != finding.StatePending || states[1] != finding.StateFiring {
		t.Errorf("states %v, want pending then firing", states)
	}
}

func TestSLOConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown field", "objectives:\n  - {service: a, sli: availability, target: 99.9, route: GET}\n", "field route not found"},
		{"target out of range", "objectives:\n  - {service: a, sli: availability, target: 100}\n", "target 100 is out of range"},
		{"target as a ratio", "objectives:\n  - {service: a, sli: availability, target: 0}\n", "target 0 is out of range"},
		{"latency without threshold", "objectives:\n  - {service: a, sli: latency, target: 99}\n", "needs a positive threshold"},
		{"unknown sli", "objectives:\n  - {service: a, sli: errors, target: 99}\n", `sli "errors" is neither`},
		{"no service", "objectives:\n  - {sli: availability, target: 99}\n", "service is required"},
		{"duplicate names", "objectives:\n  - {service: a, sli: availability, target: 99}\n  - {service: a, sli: availability, target: 98}\n", `name "a-availability" is also`},
		{"short not shorter", "windows:\n  - {long: 5m, short: 5m, factor: 2}\nobjectives:\n  - {service: a, sli: availability, target: 99}\n", "must be shorter"},
		{"bad severity", "windows:\n  - {long: 1h, short: 5m, factor: 2, severity: page}\nobjectives:\n  - {service: a, sli: availability, target: 99}\n", "page"},
		{"window beyond period", "period: 1h\nwindows:\n  - {long: 6h, short: 30m, factor: 6}\nobjectives:\n  - {service: a, sli: availability, target: 99}\n", "longer than the period"},
		{"bad days", "period: 1.5d\nobjectives:\n  - {service: a, sli: availability, target: 99}\n", "whole number"},
		{"empty", "", "no objectives"},
		{"ok", "period: 28d\nobjectives:\n  - {service: a, namespace: shop, sli: latency, target: 99, threshold: 300ms}\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseSLOConfig([]byte(tc.yaml), 0)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			if tc.want == "" && (c.Period != Duration(28*24*time.Hour) || len(c.Windows) != 2 || c.Objectives[0].Name != "a-latency") {
				t.Errorf("defaults not filled: %+v", c)
			}
		})
	}
	if _, err := ParseSLOConfig([]byte("objectives:\n  - {service: a, sli: availability, target: 99}\n  - {service: b, sli: availability, target: 99}\n"), 1); err == nil || !strings.Contains(err.Error(), "--slo-max-objectives 1") {
		t.Errorf("two objectives past a bound of one: %v", err)
	}
}

// BenchmarkSLOBurnDetect is one evaluation of n objectives at the default
// windows, their rings full (6 h of 5 s slots): taking the new buckets and
// summing every window.
func BenchmarkSLOBurnDetect(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			const bucket = 5 * time.Second
			now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
			src := &fakeBuckets{now: &now, bucket: bucket}
			var cfg SLOConfig
			for i := range n {
				cfg.Objectives = append(cfg.Objectives, Objective{Service: "svc" + strconv.Itoa(i), SLI: SLIAvailability, Target: 99.9})
			}
			d, err := NewSLOBurn(SLOBurnOptions{Config: cfg.withDefaults(), Buckets: src, Bucket: bucket, Now: func() time.Time { return now }})
			if err != nil {
				b.Fatal(err)
			}
			for _, st := range d.objs {
				for ep := now.Add(-6*time.Hour).UnixNano() / int64(bucket); ep < now.UnixNano()/int64(bucket); ep++ {
					d.spread(st, time.Unix(0, ep*int64(bucket)), bucket, 100, 1)
				}
			}
			d.cursor = now.Add(-bucket)
			b.ResetTimer()
			for b.Loop() {
				src.buckets = src.buckets[:0]
				for i := range n {
					src.buckets = append(src.buckets, graph.EdgeBucket{Start: now, Width: bucket, Source: sloClient,
						Target: graph.NodeKey{Kind: graph.NodeService, Name: "svc" + strconv.Itoa(i)}, Requests: 100, Errors: 1})
				}
				now = now.Add(bucket)
				d.Detect(context.Background(), nil)
			}
		})
	}
}
