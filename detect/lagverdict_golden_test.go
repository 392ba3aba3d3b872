package detect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// lagGoldenFile holds the consumer-lag verdicts of TestLagVerdictGolden,
// one JSON object a line.
const lagGoldenFile = "testdata/lag-verdicts.jsonl"

// lagVerdict is one group's evaluation as the golden file records it: the
// verdict (state and reason) and the numbers an edge's lag shows.
type lagVerdict struct {
	Case       string    `json:"case"`
	At         string    `json:"at"` // since the case's start
	Window     string    `json:"window"`
	Group      string    `json:"group"` // system/destination/group
	State      lag.State `json:"state"`
	Reason     string    `json:"reason"`
	Messages   *float64  `json:"messages,omitempty"`
	Seconds    *float64  `json:"seconds,omitempty"`
	Drain      *float64  `json:"drain,omitempty"`
	Produce    *float64  `json:"produce,omitempty"`
	Consume    *float64  `json:"consume,omitempty"`
	Consumers  *float64  `json:"consumers,omitempty"`
	Partitions int       `json:"partitions"`
	Updated    string    `json:"updated"` // since the case's start
	Sources    []string  `json:"sources,omitempty"`
	Subjects   []string  `json:"subjects,omitempty"`
}

// lagCase is a sequence of sample batches, each handed to the store when
// the clock reaches its time, and the evaluations made between them.
type lagCase struct {
	name       string
	staleAfter time.Duration // 0: the default
	batches    []lagBatch
	evals      []lagEval
}

type lagBatch struct {
	at      time.Duration // since start: the clock when Add is called
	samples []lag.Sample
}

type lagEval struct {
	at     time.Duration
	window time.Duration
}

// lagStart is the start of every case.
var lagStart = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

// lagEvaluator is the code path under test: readings in, the statuses of
// every group out, as the snapshot joins them onto edges.
type lagEvaluator struct {
	add      func([]lag.Sample) int
	evaluate func(window time.Duration) []lag.Status
}

func newLagEvaluator(t *testing.T, now func() time.Time, staleAfter time.Duration) lagEvaluator {
	t.Helper()
	store, err := lag.New(lag.Options{Now: now, MaxAhead: staleAfter})
	require.NoError(t, err)
	judge, err := NewLagJudge(store, LagJudgeOptions{StaleAfter: staleAfter})
	require.NoError(t, err)
	return lagEvaluator{add: store.Add, evaluate: judge.Evaluate}
}

// run plays c and returns its verdicts.
func (c lagCase) run(t *testing.T) []lagVerdict {
	t.Helper()
	now := lagStart
	ev := newLagEvaluator(t, func() time.Time { return now }, c.staleAfter)
	var out []lagVerdict
	bi := 0
	for _, e := range c.evals {
		for ; bi < len(c.batches) && c.batches[bi].at <= e.at; bi++ {
			now = lagStart.Add(c.batches[bi].at)
			ev.add(c.batches[bi].samples)
		}
		now = lagStart.Add(e.at)
		for _, st := range ev.evaluate(e.window) {
			out = append(out, lagVerdict{
				Case: c.name, At: e.at.String(), Window: e.window.String(),
				Group: st.System + "/" + st.Destination + "/" + st.Group, State: st.State, Reason: st.Reason,
				Messages: st.Messages, Seconds: st.Seconds, Drain: st.DrainSeconds, Produce: st.ProduceRate, Consume: st.ConsumeRate,
				Consumers: st.Consumers, Partitions: len(st.Partitions), Updated: st.UpdatedAt.Sub(lagStart).String(),
				Sources: st.Sources, Subjects: st.Subjects,
			})
		}
	}
	return out
}

// TestLagVerdictGolden keeps the consumer-lag verdict, state and reason,
// and the numbers beside it, equal to testdata/lag-verdicts.jsonl over a
// broad table of reading sequences: the rules' own cases, simulated Kafka
// groups (noisy lag that never returns to zero, 15 s and 60 s polls,
// bursts, rebalances, stalls, stops, a slow group over many partitions)
// and seeded random sequences of Kafka offsets, RabbitMQ counters with
// resets and NATS backlogs, with partitions going stale, restarts, offset
// resets and readings arriving late, under several windows and stale-after
// settings. -update rewrites the file; review the diff.
func TestLagVerdictGolden(t *testing.T) {
	var cases []lagCase
	cases = append(cases, ruleCases()...)
	cases = append(cases, simCases()...)
	for seed := uint64(1); seed <= 100; seed++ {
		cases = append(cases, randomLagCase(seed))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	n := 0
	for _, c := range cases {
		for _, v := range c.run(t) {
			require.NoError(t, enc.Encode(v))
			n++
		}
	}
	t.Logf("%d cases, %d verdicts", len(cases), n)
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(lagGoldenFile, buf.Bytes(), 0o644))
		return
	}
	want, err := os.ReadFile(lagGoldenFile)
	require.NoError(t, err, "run with -update to write it")
	gotLines, wantLines := strings.Split(buf.String(), "\n"), strings.Split(string(want), "\n")
	bad := 0
	for i := range max(len(gotLines), len(wantLines)) {
		var g, w string
		if i < len(gotLines) {
			g = gotLines[i]
		}
		if i < len(wantLines) {
			w = wantLines[i]
		}
		if g != w {
			if bad < 10 {
				t.Errorf("line %d:\n got: %s\nwant: %s", i+1, g, w)
			}
			bad++
		}
	}
	require.Zero(t, bad, "lines differ from %s", lagGoldenFile)
	// The table must exercise every state.
	for st := lag.StateOK; st <= lag.StateStale; st++ {
		require.Contains(t, buf.String(), fmt.Sprintf(`"state":"%s"`, st))
	}
}

// kafkaAt is a Kafka reading at offset `at` since lagStart, offsets known
// and the lag left for the store to derive.
func kafkaAt(part int32, at time.Duration, end, committed float64) lag.Sample {
	return lag.Sample{
		Time: lagStart.Add(at), Key: lag.Key{System: "kafka", Destination: "orders", Group: "billing", Partition: part},
		Lag: lag.Unknown, End: end, Committed: committed, Consumers: 1,
		Produced: lag.Unknown, Consumed: lag.Unknown, Source: "kafka:poller",
	}
}

// oneShot is a case of readings all added at `at`, evaluated then.
func oneShot(name string, at, window time.Duration, samples ...lag.Sample) lagCase {
	return lagCase{name: name, batches: []lagBatch{{at: at, samples: samples}}, evals: []lagEval{{at: at, window: window}}}
}

// everyAt returns n readings 10 s apart ending at `end`, reading i made by f.
func everyAt(n int, end time.Duration, f func(i int, at time.Duration) lag.Sample) []lag.Sample {
	out := make([]lag.Sample, n)
	for i := range n {
		out[i] = f(i, end-time.Duration(n-1-i)*10*time.Second)
	}
	return out
}

// ruleCases are the cases of the rules as graph/lag's tests first stated
// them, evaluated at 10 minutes.
func ruleCases() []lagCase {
	const at = 10 * time.Minute
	rabbit := func(i int, t time.Duration, lagv float64, prod, cons float64) lag.Sample {
		return lag.Sample{Time: lagStart.Add(t), Key: lag.Key{System: "rabbitmq", Destination: "emails", Partition: -1},
			Lag: lagv, Committed: lag.Unknown, End: lag.Unknown, Consumers: 2, Produced: prod, Consumed: cons, Source: "rabbitmq:mgmt"}
	}
	cases := []lagCase{
		oneShot("rule/growing", at, time.Minute, everyAt(7, at, func(i int, t time.Duration) lag.Sample {
			return kafkaAt(0, t, 1000+100*float64(i), 900+50*float64(i))
		})...),
		oneShot("rule/catching up", at, time.Minute, everyAt(7, at, func(i int, t time.Duration) lag.Sample {
			return kafkaAt(0, t, 10000+100*float64(i), 9000+200*float64(i))
		})...),
		oneShot("rule/stuck", at, time.Minute, everyAt(7, at, func(i int, t time.Duration) lag.Sample {
			return kafkaAt(0, t, 1000+100*float64(i), 500)
		})...),
		oneShot("rule/stuck briefly", at, time.Minute, everyAt(3, at, func(i int, t time.Duration) lag.Sample {
			return kafkaAt(0, t, 1000+100*float64(i), 500)
		})...),
		oneShot("rule/no consumers", at, time.Minute, everyAt(7, at, func(i int, t time.Duration) lag.Sample {
			s := kafkaAt(0, t, 1000, 900+10*float64(i))
			if i >= 3 {
				s.Consumers = 0
			}
			return s
		})...),
		oneShot("rule/rebalance", at, time.Minute, everyAt(7, at, func(i int, t time.Duration) lag.Sample {
			s := kafkaAt(0, t, 1000+100*float64(i), 900+100*float64(i))
			if i >= 5 {
				s.Committed = 1400
			}
			if i == 6 {
				s.Consumers = 0
			}
			return s
		})...),
		oneShot("rule/recently caught up", at, time.Minute, everyAt(7, at, func(i int, t time.Duration) lag.Sample {
			s := kafkaAt(0, t, 1000+100*float64(max(0, i-4)), 1000)
			s.Consumers = 0
			return s
		})...),
		oneShot("rule/idle", at, time.Minute, everyAt(7, at, func(i int, t time.Duration) lag.Sample { return kafkaAt(0, t, 500, 500) })...),
		oneShot("rule/falls and rises", at, time.Minute, everyAt(5, at, func(i int, t time.Duration) lag.Sample {
			return kafkaAt(0, t, 1000+100*float64(i), 900+[]float64{0, 150, 150, 300, 350}[i])
		})...),
		oneShot("rule/poller stopped", at, time.Minute, everyAt(7, at-5*time.Minute, func(i int, t time.Duration) lag.Sample {
			return kafkaAt(0, t, 1000+100*float64(i), 900+50*float64(i))
		})...),
		oneShot("rule/stale in a long window", at, 5*time.Minute, everyAt(7, at-3*time.Minute, func(i int, t time.Duration) lag.Sample {
			return kafkaAt(0, t, 1000, 1000)
		})...),
		oneShot("rule/one partition stalled", at, time.Minute, append(
			everyAt(7, at, func(i int, t time.Duration) lag.Sample {
				return kafkaAt(0, t, 1000+100*float64(i), 1000+100*float64(i)-20)
			}),
			everyAt(7, at, func(i int, t time.Duration) lag.Sample { return kafkaAt(1, t, 2000+100*float64(i), 1700) })...)...),
		oneShot("rule/one partition stale", at, time.Minute, append(
			everyAt(7, at, func(i int, t time.Duration) lag.Sample {
				return kafkaAt(0, t, 1000+100*float64(i), 1000+100*float64(i))
			}),
			kafkaAt(1, at-10*time.Minute+time.Second, 5000, 4000))...),
		oneShot("rule/every partition falling behind", at, time.Minute, append(
			everyAt(7, at, func(i int, t time.Duration) lag.Sample { return kafkaAt(0, t, 1000+100*float64(i), 900+50*float64(i)) }),
			everyAt(7, at, func(i int, t time.Duration) lag.Sample { return kafkaAt(1, t, 1000+100*float64(i), 960+50*float64(i)) })...)...),
		oneShot("rule/all partitions stale", at, time.Minute,
			kafkaAt(0, at-4*time.Minute, 1000, 990), kafkaAt(1, at-3*time.Minute, 1000, 980), kafkaAt(2, at-5*time.Minute, 1000, 1000)),
		oneShot("rule/some partitions stale", at, time.Minute,
			kafkaAt(0, at-4*time.Minute, 1000, 990), kafkaAt(1, at, 1000, 980), kafkaAt(2, at-5*time.Minute, 1000, 1000)),
		oneShot("rule/queue counters reset", at, time.Minute, everyAt(7, at, func(i int, t time.Duration) lag.Sample {
			return rabbit(i, t, 130, []float64{100, 200, 300, 50, 150, 250, 350}[i], []float64{90, 190, 290, 390, 20, 120, 220}[i])
		})...),
		oneShot("rule/queue consumed count stuck", at, time.Minute, everyAt(7, at, func(i int, t time.Duration) lag.Sample {
			s := rabbit(i, t, 50+10*float64(i), 1000+10*float64(i), 950)
			s.Consumers, s.Source = 1, ""
			return s
		})...),
		oneShot("rule/time lag interpolated", at, time.Minute,
			kafkaAt(0, at-60*time.Second, 1000, 900), kafkaAt(0, at-50*time.Second, 1200, 950), kafkaAt(0, at-40*time.Second, 1300, 1000), kafkaAt(0, at, 1700, 1050)),
		oneShot("rule/time lag extrapolated", at, time.Minute, everyAt(7, at, func(i int, t time.Duration) lag.Sample {
			return kafkaAt(0, t, 2000+100*float64(i), 1900)
		})...),
		oneShot("rule/nats lag only", at, time.Minute, lag.Sample{Time: lagStart.Add(at), Key: lag.Key{System: "nats", Destination: "jobs", Group: "w", Partition: -1},
			Lag: 12, Committed: lag.Unknown, End: lag.Unknown, Consumers: lag.Unknown, Produced: lag.Unknown, Consumed: lag.Unknown}),
	}
	// The group's summed lag: twelve partitions jittering by a few
	// messages, 15 s apart, then two rises of about 4 messages each (or
	// none).
	for _, trend := range []float64{0, 2, 4, 8} {
		rng := rand.New(rand.NewPCG(3, 4))
		const n = 42
		var samples []lag.Sample
		for part := range int32(12) {
			end := 1e6
			for i := range n {
				end += 7.5
				l := 3 + float64(rng.IntN(4))
				if i >= n-2 {
					l += trend * float64(i-(n-3))
				}
				samples = append(samples, kafkaAt(part, at-time.Duration(n-1-i)*15*time.Second, end, end-l))
			}
		}
		cases = append(cases, oneShot(fmt.Sprintf("rule/group sum, trend %v", trend), at, time.Minute, samples...))
	}
	return cases
}

// simCases are simulated Kafka groups (see simGroup) evaluated every 5 s
// with a one-minute window, as the engine does, over the stretch that
// matters: around a fault, or every 30 s of a healthy run.
func simCases() []lagCase {
	type run struct {
		name     string
		g        simGroup
		seconds  int
		from     int // first second evaluated
		every    int // seconds between evaluations
		seed     uint64
		stale    time.Duration
		polledAt func(sec int) bool // nil: every poll is delivered
	}
	fault := func(g simGroup, at int, apply func(w *simAt)) simGroup {
		base := g.at
		g.at = func(sec int, rng *rand.Rand) simAt {
			w := base(sec, rng)
			if sec > at {
				apply(&w)
			}
			return w
		}
		return g
	}
	withPoll := func(g simGroup, every int) simGroup { g.pollEvery = every; return g }
	burstOn, burstUntil := false, 0
	bursty := simGroup{parts: 12, rate: 20, capacity: 45, pipeline: 1, commitEvery: 5,
		at: func(sec int, rng *rand.Rand) simAt {
			if sec >= burstUntil {
				burstOn = !burstOn
				if burstUntil = sec + 5 + rng.IntN(16); burstOn {
					burstUntil = sec + 2 + rng.IntN(7)
				}
			}
			w := normal(sec, rng)
			if w.rateMul = 0.5; burstOn {
				w.rateMul = 3
			}
			return w
		}}
	cron := jitter
	cron.at = func(sec int, rng *rand.Rand) simAt {
		w := normal(sec, rng)
		if m := sec % 600; m >= 300 && m < 303 {
			w.extra = 300
		}
		return w
	}
	rebalance := jitter
	rebalance.at = func(sec int, rng *rand.Rand) simAt {
		w := normal(sec, rng)
		if sec >= 1200+4 && sec < 1200+24 {
			w.capMul, w.consumers = 0, 0
		}
		return w
	}
	slow := func(w *simAt) { w.capMul = 0.6 * 20 / 40 }
	stall := func(w *simAt) { w.frozen = 12 }
	stallOne := func(w *simAt) { w.frozen = 1 }
	stop := func(w *simAt) { w.capMul, w.consumers = 0, 0 }
	slowGroup := func(w *simAt) { w.capMul = 0.5 * slowParts.rate / slowParts.capacity }
	runs := []run{
		{name: "sim/steady small lag", g: simGroup{parts: 12, rate: 10, capacity: 12, pipeline: 0, inflight: 2, commitEvery: 1, at: normal}, seconds: 1500, from: 0, every: 60, seed: 15},
		{name: "sim/jitter never zero", g: jitter, seconds: 1800, from: 0, every: 60, seed: 15},
		{name: "sim/jitter polled once a minute", g: withPoll(jitter, 60), seconds: 1800, from: 0, every: 60, seed: 15},
		{name: "sim/low rate", g: simGroup{parts: 12, rate: 0.3, capacity: 5, pipeline: 1, commitEvery: 5, at: normal}, seconds: 1500, from: 0, every: 60, seed: 15},
		{name: "sim/slow partitions", g: slowParts, seconds: 1500, from: 0, every: 60, seed: 15},
		{name: "sim/bursty", g: bursty, seconds: 1500, from: 0, every: 20, seed: 15},
		{name: "sim/cron burst", g: cron, seconds: 1300, from: 1140, every: 5, seed: 15},
		{name: "sim/rebalance", g: rebalance, seconds: 1300, from: 1180, every: 5, seed: 15},
		{name: "sim/falling behind at start-up", g: fault(jitter, 10, slow), seconds: 200, from: 0, every: 5, seed: 1},
		{name: "sim/falling behind after 20m", g: fault(jitter, 1210, slow), seconds: 1380, from: 1180, every: 5, seed: 2},
		{name: "sim/falling behind polled once a minute", g: withPoll(fault(jitter, 1210, slow), 60), seconds: 1450, from: 1180, every: 10, seed: 3},
		{name: "sim/stalled", g: fault(jitter, 1210, stall), seconds: 1380, from: 1180, every: 5, seed: 1},
		{name: "sim/one partition stalled", g: fault(jitter, 1220, stallOne), seconds: 1380, from: 1180, every: 5, seed: 2},
		{name: "sim/stopped", g: fault(jitter, 1210, stop), seconds: 1380, from: 1180, every: 5, seed: 3},
		{name: "sim/stopped at start-up polled once a minute", g: withPoll(fault(jitter, 10, stop), 60), seconds: 300, from: 0, every: 10, seed: 1},
		{name: "sim/slow group within three polls", g: fault(slowParts, 1208, slowGroup), seconds: 1300, from: 1180, every: 5, seed: 2},
		{name: "sim/poller down then back", g: jitter, seconds: 1400, from: 1030, every: 15, seed: 4, polledAt: func(sec int) bool { return sec < 1050 || sec > 1300 }},
		{name: "sim/poller down, stale after 30s", g: jitter, seconds: 1250, from: 1080, every: 10, seed: 5, stale: 30 * time.Second, polledAt: func(sec int) bool { return sec < 1100 }},
	}
	var cases []lagCase
	for _, r := range runs {
		c := lagCase{name: r.name, staleAfter: r.stale}
		world := newSimWorld(r.g, r.seed)
		for sec := 1; sec <= r.seconds; sec++ {
			_, polled := world.step(sec, lagStart.Add(time.Duration(sec)*time.Second))
			if polled != nil && (r.polledAt == nil || r.polledAt(sec)) {
				c.batches = append(c.batches, lagBatch{at: time.Duration(sec) * time.Second, samples: slices.Clone(polled)})
			}
			if sec >= r.from && sec%r.every == 0 {
				c.evals = append(c.evals, lagEval{at: time.Duration(sec) * time.Second, window: time.Minute})
			}
		}
		cases = append(cases, c)
	}
	return cases
}

// randomLagCase is a seeded random case: one to three groups, on Kafka
// (offsets, sometimes only the lag the kafkametrics receiver gives),
// RabbitMQ (a queue's counters, which reset) or NATS (a stream's backlog,
// named by subjects), each partition following a random course (keeping
// pace with jitter, falling behind, draining, stuck, without consumers,
// rebalancing, batch commits, offset resets), polled every 10 s to a minute
// with readings that go missing, arrive late or stop; evaluated at random
// times under a random window and stale-after.
func randomLagCase(seed uint64) lagCase {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	pick := func(xs ...float64) float64 { return xs[rng.IntN(len(xs))] }
	c := lagCase{
		name:       fmt.Sprintf("random/%d", seed),
		staleAfter: []time.Duration{0, 30 * time.Second, 2 * time.Minute, 5 * time.Minute}[rng.IntN(4)],
	}
	duration := time.Duration(3+rng.IntN(22)) * time.Minute
	type course int
	const (
		pace course = iota
		behind
		drain
		stuck
		noConsumers
		rebalance
		batch
		reset
		caughtUp
		nCourses
	)
	type part struct {
		id                  int32
		end, committed      float64
		produced, consumed  float64
		rate                float64
		course              course
		from                time.Duration // when the course starts
		jitter              float64
		stopAt              time.Duration // readings stop (0: never)
		commitEvery, polled int
	}
	type group struct {
		system, dest, name string
		lagOnly            bool // kafkametrics: lag and offsets, but sometimes only lag
		poll               time.Duration
		late               time.Duration // readings delivered this late (0: at once)
		missing            float64       // share of polls lost
		parts              []*part
		subjects           []string
	}
	var groups []*group
	for gi := range 1 + rng.IntN(3) {
		g := &group{poll: time.Duration(pick(10, 15, 15, 30, 60)) * time.Second, missing: pick(0, 0, 0, 0.1, 0.3)}
		if rng.IntN(5) == 0 {
			g.late = time.Duration(1+rng.IntN(40)) * time.Second
		}
		nparts := 1
		switch rng.IntN(5) {
		case 0, 1, 2:
			g.system, g.dest, g.name = "kafka", fmt.Sprintf("topic-%d", gi), fmt.Sprintf("group-%d", gi)
			g.lagOnly = rng.IntN(4) == 0
			nparts = 1 + rng.IntN(6)
		case 3:
			g.system, g.dest = "rabbitmq", fmt.Sprintf("queue-%d", gi)
		default:
			g.system, g.dest, g.name = "nats", fmt.Sprintf("STREAM%d", gi), fmt.Sprintf("durable-%d", gi)
			g.subjects = []string{fmt.Sprintf("orders.%d.*", gi), "orders.>"}
		}
		for p := range nparts {
			pt := &part{
				id: int32(p), end: pick(0, 1e6, 5e7), rate: pick(0, 0.3, 2, 20, 200),
				course: course(rng.IntN(int(nCourses))), from: time.Duration(rng.Int64N(int64(duration))),
				jitter: pick(0, 2, 10, 60), commitEvery: 1 + rng.IntN(4),
			}
			if g.system != "kafka" {
				pt.id = -1
			}
			pt.committed = pt.end - float64(rng.IntN(50))
			pt.produced = pick(0, 1e5)
			pt.consumed = pt.produced - (pt.end - pt.committed)
			if rng.IntN(6) == 0 {
				pt.stopAt = time.Duration(rng.Int64N(int64(duration)))
			}
			g.parts = append(g.parts, pt)
		}
		groups = append(groups, g)
	}
	// The world, second by second; each group polled on its own period.
	var pending []lagBatch // late deliveries
	for sec := time.Second; sec <= duration; sec += time.Second {
		for gi, g := range groups {
			for _, p := range g.parts {
				produced := poisson(rng, p.rate)
				p.end += produced
				p.produced += produced
				want := p.end - math.Round(rng.Float64()*p.jitter)
				consumed := 0.0
				if sec < p.from {
					consumed = max(0, want-p.committed)
				} else {
					switch p.course {
					case pace, rebalance, caughtUp:
						consumed = max(0, want-p.committed)
						if p.course == caughtUp && rng.IntN(3) == 0 {
							consumed = p.end - p.committed
						}
					case behind:
						consumed = min(max(0, p.end-p.committed), math.Round(p.rate*0.6))
					case drain:
						consumed = min(max(0, p.end-p.committed), math.Round(p.rate*1.5)+5)
					case stuck, noConsumers:
					case batch:
						if int(sec/time.Second)%(p.commitEvery*15) == 0 {
							consumed = max(0, p.end-p.committed)
						}
					case reset:
						if sec-p.from < time.Second {
							p.end, p.committed = math.Round(p.end/1000), 0 // the topic recreated
							p.produced = 0
						}
						consumed = max(0, want-p.committed)
					}
				}
				if p.course == drain && sec == p.from {
					p.committed = max(0, p.committed-500) // a backlog to drain
				}
				p.committed += consumed
				p.consumed += consumed
			}
			if sec%g.poll != time.Duration(gi*3+1)*time.Second%g.poll || rng.Float64() < g.missing {
				continue
			}
			at := lagStart.Add(sec)
			var samples []lag.Sample
			for _, p := range g.parts {
				if p.stopAt > 0 && sec > p.stopAt {
					continue
				}
				consumers := 2.0
				if sec >= p.from && (p.course == noConsumers || p.course == rebalance && sec-p.from < 25*time.Second) {
					consumers = 0
				}
				x := lag.Sample{Time: at, Key: lag.Key{System: g.system, Destination: g.dest, Group: g.name, Partition: p.id},
					Lag: lag.Unknown, Committed: lag.Unknown, End: lag.Unknown, Consumers: consumers,
					Produced: lag.Unknown, Consumed: lag.Unknown, Source: g.system + ":poller", Subjects: g.subjects}
				switch g.system {
				case "kafka":
					x.Committed, x.End = p.committed, p.end
					if g.lagOnly && rng.IntN(2) == 0 {
						x.Committed, x.End, x.Lag = lag.Unknown, lag.Unknown, p.end-p.committed
					}
				case "rabbitmq":
					x.Lag, x.Produced, x.Consumed = p.end-p.committed, p.produced, p.consumed
					if rng.IntN(40) == 0 { // the broker restarted: counters from zero
						p.produced, p.consumed = 0, 0
					}
				default:
					x.Lag = p.end - p.committed
					if rng.IntN(3) == 0 {
						x.Consumers = lag.Unknown
					}
				}
				samples = append(samples, x)
			}
			if g.late > 0 {
				pending = append(pending, lagBatch{at: sec + g.late, samples: samples})
				continue
			}
			c.batches = append(c.batches, lagBatch{at: sec, samples: samples})
		}
	}
	c.batches = append(c.batches, pending...)
	slices.SortStableFunc(c.batches, func(a, b lagBatch) int { return int(a.at - b.at) })
	// Evaluations: every 30 s over the last 2 minutes and the minute after,
	// and three at random.
	windows := []time.Duration{30 * time.Second, time.Minute, time.Minute, 5 * time.Minute, 20 * time.Minute}
	window := windows[rng.IntN(len(windows))]
	for i := range 3 {
		at := time.Duration(rng.Int64N(int64(duration)))
		c.evals = append(c.evals, lagEval{at: at.Truncate(time.Second), window: windows[(rng.IntN(len(windows))+i)%len(windows)]})
	}
	for at := max(duration-2*time.Minute, 0); at <= duration+time.Minute; at += 30 * time.Second {
		c.evals = append(c.evals, lagEval{at: at, window: window})
	}
	slices.SortStableFunc(c.evals, func(a, b lagEval) int { return int(a.at - b.at) })
	return c
}
