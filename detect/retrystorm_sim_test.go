package detect_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/detect"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// stormSim simulates, on an injected clock, traffic shaped like production
// running through a real graph.Graph and an Engine at default settings
// (1m window, 5s evaluation interval, default hold and keep-firing):
//
//   - requests enter "web" (3 replicas) with Poisson arrivals at a given
//     rate; each calls "api" (3 replicas) over HTTP, re-sending a failed call
//     up to 3 times, each time on another replica (http.request.resend_count
//     on the re-sent ones); one in
//     twenty also calls "audit", a low-rate edge;
//   - every api attempt fails with the background error probability
//     (0.75%), during a storm with stormFail, and always on a replica that
//     is draining for a rolling restart;
//   - every replica exports its spans with the SDK batch processor's 5 s
//     delay, each at its own phase, so the caller's and the callee's halves
//     of a call arrive in different requests, seconds apart.
type stormSim struct {
	t        *testing.T
	rng      *rand.Rand
	now      time.Time
	g        *graph.Graph
	e        *detect.Engine
	rate     float64
	next     uint64
	replicas []*simReplica // web 0-2, api 3-5
	// stormFrom, when not zero, is when api starts failing stormFail of
	// its calls.
	stormFrom time.Time
	stormFail float64
	// restartEvery, when not zero, restarts the api replicas one after the
	// other every so often, each draining (failing every call) for 3s.
	restartEvery time.Duration
	// visible is when the first re-sent call of the storm reached the
	// collector.
	visible time.Time
}

type simReplica struct {
	service string
	phase   time.Duration
	next    time.Time
	buf     []graph.Span
}

const (
	simBackgroundErrors = 0.0075
	simMaxRetries       = 3
)

func newStormSim(t *testing.T, rate float64, seed uint64) *stormSim {
	t.Helper()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	sim := &stormSim{t: t, rng: rand.New(rand.NewPCG(seed, 15)), now: t0, rate: rate}
	g, err := graph.New(graph.Options{Now: func() time.Time { return sim.now }})
	require.NoError(t, err)
	e, err := detect.NewEngine(detect.EngineOptions{
		Detectors: []detect.Detector{detect.NewRetryStorm(detect.RetryStormOptions{})},
		Now:       func() time.Time { return sim.now },
	})
	require.NoError(t, err)
	sim.g, sim.e = g, e
	for _, svc := range []string{"web", "web", "web", "api", "api", "api"} {
		ph := time.Duration(sim.rng.Int64N(int64(5 * time.Second)))
		sim.replicas = append(sim.replicas, &simReplica{service: svc, phase: ph, next: t0.Add(ph)})
	}
	return sim
}

func (s *stormSim) ids() (graph.TraceID, graph.SpanID) {
	s.next++
	var tr graph.TraceID
	var sp graph.SpanID
	binary.BigEndian.PutUint64(tr[:8], s.next)
	binary.BigEndian.PutUint64(sp[:], s.next)
	return tr, sp
}

func (s *stormSim) spanID() graph.SpanID {
	_, id := s.ids()
	return id
}

// draining reports whether api replica i (0-2) is draining at t.
func (s *stormSim) draining(i int, t time.Time) bool {
	if s.restartEvery == 0 {
		return false
	}
	// The first restart begins 5 minutes in, not as the collector starts.
	off := time.Duration((t.UnixNano() + int64(s.restartEvery) - int64(5*time.Minute)) % int64(s.restartEvery))
	start := time.Duration(i) * 20 * time.Second
	return off >= start && off < start+3*time.Second
}

// request simulates one request entering web at t.
func (s *stormSim) request(t time.Time) {
	tr, root := s.ids()
	web := s.replicas[s.rng.IntN(3)]
	ns := t.UnixNano()
	at := ns + int64(200*time.Microsecond)
	storm := !s.stormFrom.IsZero() && !t.Before(s.stormFrom)
	prev := -1
	for attempt := 0; attempt <= simMaxRetries; attempt++ {
		ai := s.rng.IntN(3)
		if prev >= 0 { // a retry goes to another replica (Envoy's previous_hosts predicate)
			ai = (prev + 1 + s.rng.IntN(2)) % 3
		}
		prev = ai
		api := s.replicas[3+ai]
		fail := s.rng.Float64() < simBackgroundErrors || s.draining(ai, t) || (storm && s.rng.Float64() < s.stormFail)
		dur := int64(2*time.Millisecond) + s.rng.Int64N(int64(8*time.Millisecond))
		cid, sid := s.spanID(), s.spanID()
		c := graph.Span{Trace: tr, ID: cid, Parent: root, Kind: graph.SpanClient, Service: "web", Start: at, End: at + dur,
			Protocol: graph.ProtocolHTTP, Operation: "GET /items", Error: fail, ResendCount: int64(attempt)}
		sv := graph.Span{Trace: tr, ID: sid, Parent: cid, Kind: graph.SpanServer, Service: "api", Start: at + int64(100*time.Microsecond),
			End: at + dur - int64(100*time.Microsecond), Protocol: graph.ProtocolHTTP, Operation: "GET /items", Error: fail}
		web.buf = append(web.buf, c)
		api.buf = append(api.buf, sv)
		at += dur + int64(time.Millisecond)
		if !fail {
			break
		}
	}
	if s.rng.IntN(20) == 0 { // the low-rate edge: one retry there is a big ratio
		audit := s.replicas[s.rng.IntN(3)]
		for attempt := 0; attempt <= simMaxRetries; attempt++ {
			fail := s.rng.Float64() < 0.02
			cid := s.spanID()
			audit.buf = append(audit.buf, graph.Span{Trace: tr, ID: cid, Parent: root, Kind: graph.SpanClient, Service: "web",
				Start: at, End: at + int64(time.Millisecond), Protocol: graph.ProtocolHTTP, Operation: "POST /audit",
				Peer: graph.NodeKey{Kind: graph.NodeExternal, Name: "audit"}, Error: fail, ResendCount: int64(attempt)})
			at += int64(2 * time.Millisecond)
			if !fail {
				break
			}
		}
	}
	web.buf = append(web.buf, graph.Span{Trace: tr, ID: root, Kind: graph.SpanServer, Service: "web", Start: ns, End: at + int64(time.Millisecond),
		Protocol: graph.ProtocolHTTP, Operation: "GET /"})
}

// run advances the simulation by d in 100 ms steps and calls check after
// every evaluation.
func (s *stormSim) run(d time.Duration, check func(now time.Time)) {
	const step = 100 * time.Millisecond
	end := s.now.Add(d)
	for s.now.Before(end) {
		// Poisson arrivals within the step.
		for n := poissonN(s.rng, s.rate*step.Seconds()); n > 0; n-- {
			s.request(s.now.Add(time.Duration(s.rng.Int64N(int64(step)))))
		}
		s.now = s.now.Add(step)
		for _, r := range s.replicas {
			if s.now.Before(r.next) {
				continue
			}
			r.next = r.next.Add(5 * time.Second)
			if len(r.buf) == 0 {
				continue
			}
			for _, sp := range r.buf {
				if s.visible.IsZero() && sp.ResendCount > 0 && !s.stormFrom.IsZero() && sp.Start >= s.stormFrom.UnixNano() {
					s.visible = s.now
				}
			}
			rej, why := s.g.ConsumeSpans(r.buf)
			require.Zero(s.t, rej, why)
			r.buf = r.buf[:0]
		}
		if s.now.UnixNano()%int64(5*time.Second) == 0 {
			snap, err := s.g.Snapshot(0)
			require.NoError(s.t, err)
			s.e.Eval(context.Background(), snap)
			check(s.now)
		}
	}
}

// poissonN draws from a Poisson distribution of mean lambda (Knuth below
// 30, a rounded normal above).
func poissonN(rng *rand.Rand, lambda float64) int {
	if lambda > 30 {
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*rng.NormFloat64())))
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// TestRetryStormAtDefaultSettings: a storm fires, on the edge whose callee
// receives the re-sent calls, within 3 evaluation intervals of the first
// re-sent call reaching the collector, at 1 to 1,000 requests/s; before it,
// the healthy traffic (background errors and their single retries, a
// low-rate edge) raises nothing.
func TestRetryStormAtDefaultSettings(t *testing.T) {
	for _, rate := range []float64{1, 10, 100, 1000} {
		t.Run(fmt.Sprintf("%g/s", rate), func(t *testing.T) {
			seeds := uint64(12) // the phases of the replicas' exports vary with the seed
			if rate >= 1000 || (testing.Short() || detect.RaceEnabled) {
				seeds = 4
			}
			for seed := range seeds {
				sim := newStormSim(t, rate, seed+1)
				quiet := func(now time.Time) {
					require.Emptyf(t, sim.e.Findings(0), "at %v: healthy traffic", now)
				}
				sim.run(2*time.Minute+time.Duration(sim.rng.Int64N(int64(5*time.Second))), quiet)
				sim.stormFrom, sim.stormFail = sim.now, 0.9
				var fired time.Time
				sim.run(time.Minute, func(now time.Time) {
					for _, f := range sim.e.Findings(finding.StateFiring) {
						require.Equal(t, finding.Subject{Source: "web", Target: "api", EdgeID: "service:web->service:api http"}, f.Subject,
							"the storm's subject is the edge whose callee gets the re-sent calls")
						if fired.IsZero() {
							fired = now
						}
					}
				})
				require.False(t, sim.visible.IsZero())
				require.False(t, fired.IsZero(), "seed %d: the storm never fired", seed)
				lat := fired.Sub(sim.visible)
				t.Logf("seed %d: re-sent calls visible at +%v, fired at +%v: %v", seed, sim.visible.Sub(sim.stormFrom), fired.Sub(sim.stormFrom), lat)
				require.LessOrEqualf(t, lat, 15*time.Second, "seed %d: fired %v after the retries were visible", seed, lat)
			}
		})
	}
}

// TestRetryStormHealthyForHours: hours of healthy traffic, with background
// errors and their ordinary retries, a low-rate edge where one retry is a
// big ratio, and rolling restarts of the callee every 10 minutes, raise no
// retry storm at any rate.
func TestRetryStormHealthyForHours(t *testing.T) {
	for _, tc := range []struct {
		rate float64
		d    time.Duration
	}{{1, 12 * time.Hour}, {10, 6 * time.Hour}, {100, 3 * time.Hour}, {1000, 30 * time.Minute}} {
		t.Run(fmt.Sprintf("%g/s", tc.rate), func(t *testing.T) {
			if testing.Short() || detect.RaceEnabled {
				tc.d = min(tc.d, 10*time.Minute)
			}
			sim := newStormSim(t, tc.rate, 99)
			sim.restartEvery = 10 * time.Minute
			pending := map[string]bool{}
			sim.run(tc.d, func(now time.Time) {
				for _, f := range sim.e.Findings(0) {
					require.Equalf(t, finding.StatePending, f.State, "at %v: healthy traffic fired %+v", now, f)
					if !pending[f.ID] {
						t.Logf("at %v: pending, never fired: %s", now, f.Summary)
					}
					pending[f.ID] = true
				}
			})
			t.Logf("%v simulated, %d spans", tc.d, sim.next)
		})
	}
}
