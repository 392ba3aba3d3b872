package realism

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/seed-a49a8342/cartograph/detect"
	"github.com/seed-a49a8342/cartograph/detect/incident"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/critpath"
	"github.com/seed-a49a8342/cartograph/graph/lag"
	"github.com/seed-a49a8342/cartograph/graph/resilience"
	"github.com/seed-a49a8342/cartograph/ingest"
	"github.com/seed-a49a8342/cartograph/ingest/semconv"
)

// BrokerPollInterval is the collector's default --broker-poll-interval
// (ingest/brokers uses the same 15s when a source names none).
const BrokerPollInterval = 15 * time.Second

// ExpireEvery is how often the collector calls Graph.Expire (a 1s ticker in
// cmd/collector).
const ExpireEvery = time.Second

// evKind is what a simulation event does.
type evKind uint8

const (
	evArrival evKind = iota
	evSpanEnd
	evTick
	evDeliver
	evExpire
	evEval
	evBrokerPoll
	evConsumerPoll
	evBatchDone
	evBackground
	evCron
	evRestart
	evShutdown
)

type event struct {
	at   int64
	seq  uint64
	kind evKind
	i    int // entry, topic, cron, service index; replica index for restarts
	gen  uint64
	span *Span
	rep  *replica
	exp  *Export
	mem  *member
}

type eventHeap []event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

type replica struct {
	svc      *service
	res      *Resource
	bsp      *BatchProcessor
	started  time.Time
	restart  bool // started by a rolling restart (warms up)
	draining bool
	stopped  bool
}

type service struct {
	Service
	idx      int
	replicas []*replica
	live     []*replica // taking requests
	next     int        // instance counter
}

type message struct {
	ref    SpanRef
	traced bool
}

type partition struct {
	base int64 // offset of msgs[0]
	msgs []message
	end  int64 // next offset
	// fetched is the group's position (next offset to fetch), processed
	// what its member finished, committed what it committed.
	fetched, processed, committed int64
}

type topic struct {
	Topic
	parts []*partition
	bg    *Poisson
}

type member struct {
	grp        *group
	rep        *replica
	parts      []int
	budget     float64
	rr         int   // rotates the partition a fetch starts at
	seenEnd    int64 // sum of its partitions' end offsets at the last poll
	lastCommit time.Time
	// inflight holds the offsets a batch being processed reaches.
	inflight map[int]int64
}

type group struct {
	Group
	svc     *service
	topic   *topic
	members []*member
}

// sim is one run: the simulated system, its SDKs and the collector's
// pipeline under a simulated clock.
type sim struct {
	c     Case
	sys   System
	clock *Clock
	rng   *rand.Rand
	ev    eventHeap
	seq   uint64
	start time.Time
	end   time.Time

	services map[string]*service
	svcList  []*service
	topics   map[string]*topic
	groups   []*group
	entries  []*Poisson

	pipe      *semconv.Pipeline
	g         *graph.Graph
	lags      *lag.Store
	engine    *detect.Engine
	incidents *incident.Tracker
	paths     *critpath.Sampler
	opts      Settings

	faultVisible time.Time
	stats        Stats
	obs          *observer
	// onDeliver, when set, sees every export request as it reaches the
	// collector (tests of the traffic model).
	onDeliver func(x *Export, t time.Time)
	// onLag, when set, sees every broker poll's samples.
	onLag func([]lag.Sample)
	// onEval, when set, sees every snapshot after the engine judged it.
	onEval func(t time.Time, snap *graph.Snapshot)
	// resendShare is ResendShare unless a test changes it.
	resendShare float64
}

// Settings are the collector settings a run uses: the defaults of each
// component, filled in from their own options so they cannot drift from
// what the collector runs with.
type Settings struct {
	Window, Bucket, PairTTL time.Duration
	EvalInterval            time.Duration
	Hold, KeepFiring        time.Duration
	TraceIdle               time.Duration
	SampleOneIn             int
	BrokerPoll              time.Duration
}

// newSim wires the pipeline with the collector's defaults (cmd/collector
// main.go: zero options everywhere but the clock), the incident tracker
// judging each evaluation after the engine, as the runner has it.
func newSim(c Case, sys System) (*sim, error) {
	s := &sim{c: c, sys: sys, rng: rand.New(rand.NewPCG(c.Seed, c.Seed^0x9e3779b97f4a7c15)),
		start: c.start(), services: map[string]*service{}, topics: map[string]*topic{}}
	s.end = s.start.Add(c.Duration)
	s.resendShare = ResendShare
	s.clock = NewClock(s.start)
	now := s.clock.Now
	var err error
	if s.lags, err = lag.New(lag.Options{Now: now}); err != nil {
		return nil, err
	}
	lagStatus, err := detect.NewLagJudge(s.lags, detect.LagJudgeOptions{})
	if err != nil {
		return nil, err
	}
	breakers, err := resilience.New(resilience.Options{Now: now})
	if err != nil {
		return nil, err
	}
	paths, err := critpath.New(critpath.Options{Now: now})
	if err != nil {
		return nil, err
	}
	if s.g, err = graph.New(graph.Options{Lag: lagStatus, Circuits: breakers, Paths: paths, Now: now}); err != nil {
		return nil, err
	}
	if s.pipe, err = semconv.NewPipeline(semconv.Options{Sink: s.g}); err != nil {
		return nil, err
	}
	if s.engine, err = detect.NewEngine(detect.EngineOptions{
		Detectors: []detect.Detector{
			detect.NewRetryStorm(detect.RetryStormOptions{}),
			detect.NewConsumerLag(detect.ConsumerLagOptions{}),
			detect.NewOpenCircuit(detect.OpenCircuitOptions{}),
			detect.NewBottleneck(detect.BottleneckOptions{}),
		},
		Now: now,
	}); err != nil {
		return nil, err
	}
	if s.incidents, err = incident.New(incident.Options{Now: now}); err != nil {
		return nil, err
	}
	s.paths = paths
	s.opts = settingsOf(s.g, paths)
	s.obs = newObserver(s)
	return s, nil
}

// EvalInterval is the collector's default --eval-interval, which is also
// detect.EngineOptions' default Interval (the engine does not export the
// options in force, so this one value is mirrored here); the engine's
// default hold (one interval) and keep-firing time (two) follow from it.
const EvalInterval = 5 * time.Second

// settingsOf reads the settings in force from the components.
func settingsOf(g *graph.Graph, p *critpath.Sampler) Settings {
	interval := EvalInterval
	o := g.Options()
	return Settings{Window: o.Window, Bucket: o.Bucket, PairTTL: o.PairTTL, EvalInterval: interval,
		Hold: interval, KeepFiring: 2 * interval, TraceIdle: p.Options().TraceIdle, SampleOneIn: p.Options().SampleOneIn,
		BrokerPoll: BrokerPollInterval}
}

func (s *sim) push(e event) {
	s.seq++
	e.seq = s.seq
	heap.Push(&s.ev, e)
}

func (s *sim) at(t time.Time, kind evKind) event { return event{at: t.UnixNano(), kind: kind} }

// build instantiates the system: replicas, topics, groups, schedules.
func (s *sim) build() error {
	for i, sv := range s.sys.Services {
		if sv.Replicas < 1 {
			sv.Replicas = 1
		}
		if sv.Language == "" {
			sv.Language = "go"
		}
		svc := &service{Service: sv, idx: i}
		s.services[sv.Name] = svc
		s.svcList = append(s.svcList, svc)
		for r := 0; r < sv.Replicas; r++ {
			// Replicas started at different times before the run: each
			// exporter has its own phase.
			started := s.start.Add(-time.Duration(s.rng.Int64N(int64(ScheduledDelay))))
			svc.addReplica(s, started, false)
		}
		for _, off := range sv.Restarts {
			e := s.at(s.start.Add(off), evRestart)
			e.i = i
			s.push(e)
		}
	}
	for _, tp := range s.sys.Topics {
		if tp.Partitions == 0 {
			tp.Partitions = Partitions
		}
		t := &topic{Topic: tp}
		for range tp.Partitions {
			t.parts = append(t.parts, &partition{})
		}
		s.topics[tp.Name] = t
		if tp.Background > 0 {
			t.bg = NewPoisson(s.rng, s.start, tp.Background, func(time.Time) float64 { return tp.Background })
			e := s.at(t.bg.Next(), evBackground)
			e.i = len(s.topics) - 1
			s.push(e)
		}
	}
	for _, gr := range s.sys.Groups {
		svc, t := s.services[gr.Service], s.topics[gr.Topic]
		if svc == nil || t == nil {
			return fmt.Errorf("realism: group %s: unknown service %q or topic %q", gr.Name, gr.Service, gr.Topic)
		}
		g := &group{Group: gr, svc: svc, topic: t}
		for i, rep := range svc.replicas {
			m := &member{grp: g, rep: rep, inflight: map[int]int64{}, lastCommit: s.start}
			for p := i; p < len(t.parts); p += len(svc.replicas) {
				m.parts = append(m.parts, p)
			}
			g.members = append(g.members, m)
			e := s.at(s.start.Add(time.Duration(s.rng.Int64N(int64(ConsumerPollIdle)))), evConsumerPoll)
			e.mem = m
			s.push(e)
		}
		s.groups = append(s.groups, g)
	}
	for i, name := range s.sys.Entries {
		if s.services[name] == nil {
			return fmt.Errorf("realism: unknown entry %q", name)
		}
		rate := s.c.Rate
		peak, factor := 1.0, func(string, time.Time) float64 { return 1 }
		if f := s.sys.Dynamics.RateFactor; f != nil {
			peak, factor = max(s.sys.Dynamics.RatePeak, 1), f
		}
		p := NewPoisson(s.rng, s.start, rate*(1+DiurnalAmplitude)*peak, func(t time.Time) float64 { return rate * diurnal(t) * factor(name, t) })
		s.entries = append(s.entries, p)
		e := s.at(p.Next(), evArrival)
		e.i = i
		s.push(e)
	}
	for i, cr := range s.sys.Crons {
		if s.services[cr.Service] == nil {
			return fmt.Errorf("realism: unknown cron service %q", cr.Service)
		}
		e := s.at(s.start.Add(cr.Every/2), evCron)
		e.i = i
		s.push(e)
	}
	for t := s.start.Truncate(ExpireEvery).Add(ExpireEvery); !t.After(s.end); t = t.Add(ExpireEvery) {
		s.push(s.at(t, evExpire))
	}
	for t := s.start.Truncate(s.opts.EvalInterval).Add(s.opts.EvalInterval); !t.After(s.end); t = t.Add(s.opts.EvalInterval) {
		s.push(s.at(t, evEval))
	}
	if len(s.groups) > 0 {
		for t := s.start.Add(3 * time.Second); !t.After(s.end); t = t.Add(s.opts.BrokerPoll) {
			s.push(s.at(t, evBrokerPoll))
		}
	}
	return nil
}

func (svc *service) addReplica(s *sim, started time.Time, restart bool) *replica {
	svc.next++
	r := &replica{svc: svc, started: started, restart: restart}
	r.res = &Resource{Service: svc.Name, Namespace: s.sys.Namespace, Language: svc.Language,
		Instance: fmt.Sprintf("%s-%08x-%d", svc.Name, s.rng.Uint32(), svc.next), Version: "1.4." + strconv.Itoa(svc.next/100)}
	r.bsp = NewBatchProcessor(r.res, started, func(e Export) { s.export(e) })
	svc.replicas = append(svc.replicas, r)
	svc.live = append(svc.live, r)
	s.scheduleTick(r)
	return r
}

func (s *sim) scheduleTick(r *replica) {
	next, gen := r.bsp.Next()
	if next.IsZero() {
		return
	}
	if next.Before(s.clock.Now()) {
		// A replica started before the run: its timer has been running.
		d := s.clock.Now().Sub(next)
		next = next.Add((d/r.bsp.Delay + 1) * r.bsp.Delay)
		r.bsp.next = next
	}
	e := s.at(next, evTick)
	e.rep, e.gen = r, gen
	s.push(e)
}

// export receives a batch from a replica's SDK and schedules its arrival at
// the collector after a network delay; a small share arrives twice.
func (s *sim) export(x Export) {
	s.stats.Exports++
	if x.Reason == "full" {
		s.stats.FullExports++
	}
	arrive := x.At.Add(time.Millisecond + time.Duration(s.rng.Int64N(int64(20*time.Millisecond))))
	e := s.at(arrive, evDeliver)
	e.exp = &x
	s.push(e)
	if s.rng.Float64() < s.resendShare {
		s.stats.Resent++
		e := s.at(arrive.Add(ResendAfter+time.Duration(s.rng.Int64N(int64(time.Second)))), evDeliver)
		e.exp = &x
		s.push(e)
	}
}

// run drives the simulation to the end of the case.
func (s *sim) run(ctx context.Context) error {
	if err := s.build(); err != nil {
		return err
	}
	n := 0
	for s.ev.Len() > 0 {
		e := heap.Pop(&s.ev).(event)
		if e.at > s.end.UnixNano() {
			break
		}
		if n++; n%65536 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		t := time.Unix(0, e.at).UTC()
		s.clock.Set(t)
		switch e.kind {
		case evArrival:
			s.request(s.sys.Entries[e.i], t)
			ne := s.at(s.entries[e.i].Next(), evArrival)
			ne.i = e.i
			s.push(ne)
		case evSpanEnd:
			s.spanEnded(e.span, t)
		case evTick:
			if e.rep.bsp.Tick(t, e.gen) {
				s.scheduleTick(e.rep)
			}
		case evDeliver:
			if err := s.deliver(ctx, e.exp, t); err != nil {
				return err
			}
		case evExpire:
			s.g.Expire()
		case evEval:
			if err := s.eval(ctx, t); err != nil {
				return err
			}
		case evBrokerPoll:
			s.brokerPoll(t)
		case evConsumerPoll:
			s.consumerPoll(e.mem, t)
		case evBatchDone:
			s.batchDone(e.mem, t)
		case evBackground:
			tp := s.topicAt(e.i)
			s.publish(tp, message{}, t)
			ne := s.at(tp.bg.Next(), evBackground)
			ne.i = e.i
			s.push(ne)
		case evCron:
			s.cron(e.i, t)
			ne := s.at(t.Add(s.sys.Crons[e.i].Every), evCron)
			ne.i = e.i
			s.push(ne)
		case evRestart:
			s.restart(e.i, e.gen, t)
		case evShutdown:
			e.rep.stopped = true
			e.rep.bsp.Shutdown(t)
		}
	}
	return nil
}

func (s *sim) topicAt(i int) *topic {
	return s.topics[s.sys.Topics[i].Name]
}

// deliver hands an export request to the collector's OTLP pipeline.
func (s *sim) deliver(ctx context.Context, x *Export, t time.Time) error {
	s.stats.Requests++
	s.stats.Spans += len(x.Spans)
	if s.onDeliver != nil {
		s.onDeliver(x, t)
	}
	if s.faultVisible.IsZero() {
		for _, sp := range x.Spans {
			if sp.Fault {
				s.faultVisible = t
				break
			}
		}
	}
	err := s.pipe.ConsumeTraces(ctx, x.Traces())
	var partial *ingest.PartialError
	switch {
	case errors.As(err, &partial):
		// The collector answers a re-sent batch with a partial success:
		// its spans are refused as duplicates.
		s.stats.Refused += int(partial.Rejected)
	case err != nil:
		return fmt.Errorf("realism: consume traces: %w", err)
	}
	return nil
}

func (s *sim) eval(ctx context.Context, t time.Time) error {
	snap, err := s.g.Snapshot(0)
	if err != nil {
		return err
	}
	s.engine.Eval(ctx, snap)
	s.incidents.Correlate(snap, s.engine.Findings(0))
	s.stats.Evaluations++
	if s.onEval != nil {
		s.onEval(t, snap)
	}
	s.obs.after(t)
	return nil
}

// emit schedules the end of a span: it reaches its replica's SDK then.
func (s *sim) emit(sp *Span) {
	s.stats.SpansMade++
	e := s.at(sp.End, evSpanEnd)
	e.span = sp
	s.push(e)
}

func (s *sim) spanEnded(sp *Span, t time.Time) {
	r := sp.replica
	if sp.publishTo != "" {
		s.publish(s.topics[sp.publishTo], message{ref: SpanRef{Trace: sp.Trace, Span: sp.ID}, traced: true}, t)
	}
	if r.stopped {
		s.stats.SpansLost++
		return
	}
	if r.bsp.OnEnd(sp, t) {
		s.scheduleTick(r)
	}
}

// ids

func (s *sim) traceID() (id [16]byte) {
	a, b := s.rng.Uint64(), s.rng.Uint64()
	for i := range 8 {
		id[i], id[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
	}
	return id
}

func (s *sim) spanID() (id [8]byte) {
	a := s.rng.Uint64() | 1
	for i := range 8 {
		id[i] = byte(a >> (8 * i))
	}
	return id
}

// lognormal returns median m scaled by exp(sigma N(0,1)), sigma 0.25.
func (s *sim) lognormal(m time.Duration) time.Duration {
	return time.Duration(float64(m) * math.Exp(0.25*s.rng.NormFloat64()))
}

// net is one network hop.
func (s *sim) net() time.Duration {
	return 200*time.Microsecond + time.Duration(s.rng.Int64N(int64(300*time.Microsecond)))
}

func (svc *service) pick(s *sim) *replica {
	if len(svc.live) == 0 {
		return svc.replicas[len(svc.replicas)-1]
	}
	return svc.live[s.rng.IntN(len(svc.live))]
}

// request is one request entering the system at entry at t: a root SERVER
// span, its caller uninstrumented.
func (s *sim) request(entry string, t time.Time) {
	s.stats.Traces++
	s.serve(entry, t, s.traceID(), [8]byte{}, true)
}

// serve makes the server span of one request to service name starting at
// t, with everything below it, and returns when it ends and whether it
// failed.
func (s *sim) serve(name string, t time.Time, tr [16]byte, parent [8]byte, root bool) (time.Time, bool) {
	svc := s.services[name]
	r := svc.pick(s)
	id := s.spanID()
	fault := false
	self := s.lognormal(svc.Self)
	if f := s.sys.Dynamics.SelfFactor; f != nil {
		k, fl := f(name, t)
		self = time.Duration(float64(self) * k)
		fault = fault || fl
	}
	errRate := svc.ErrRate
	errFault := false // the error rate is the fault's: a failure it causes is its span
	if f := s.sys.Dynamics.ErrRate; f != nil {
		if v, ok, fl := f(name, t); ok {
			errRate, errFault = v, fl
		}
	}
	if r.restart && t.Sub(r.started) < WarmUp {
		self *= 3
		if t.Sub(r.started) < WarmUpErrors {
			errRate = max(errRate, WarmUpErrRate)
		}
	}
	start := t
	cur := t.Add(self * 3 / 10)
	failed := false
	if svc.Parallel {
		end := cur
		for i := range svc.Calls {
			e, f := s.call(r, &svc.Calls[i], cur.Add(time.Duration(i)*20*time.Microsecond), tr, id)
			end = maxTime(end, e)
			failed = failed || f
		}
		cur = end
	} else {
		for i := range svc.Calls {
			e, f := s.call(r, &svc.Calls[i], cur, tr, id)
			cur = e.Add(50 * time.Microsecond)
			failed = failed || f
		}
	}
	cur = cur.Add(self - self*3/10)
	own := s.rng.Float64() < errRate
	failed = failed || own
	// An error fault shapes the spans it fails, not the calls that still
	// succeed: those show nothing wrong.
	fault = fault || (own && errFault)
	sp := &Span{Trace: tr, ID: id, Parent: parent, Kind: ptrace.SpanKindServer, Start: start, End: cur, Error: failed, Fault: fault, replica: r}
	switch svc.Serve {
	case GRPC:
		svcName, method, _ := strings.Cut(svc.Route, "/")
		code := int64(0)
		if failed {
			code = 13 // INTERNAL
		}
		sp.Name = svc.Route
		sp.Attrs = []Attr{S("rpc.system", "grpc"), S("rpc.service", svcName), S("rpc.method", method), I("rpc.grpc.status_code", code),
			S("server.address", svc.Name), I("server.port", 50051), S("network.peer.address", "10.1.2."+strconv.Itoa(s.rng.IntN(250)+1))}
	default:
		status := int64(200)
		if failed {
			status = 500
		}
		method := "GET"
		if strings.Contains(svc.Route, "order") || strings.Contains(svc.Route, "charge") {
			method = "POST"
		}
		host, port, scheme := svc.Name, int64(8080), "http"
		if root {
			host, port, scheme = "shop.example.com", 443, "https"
		}
		sp.Name = method + " " + svc.Route
		sp.Attrs = []Attr{S("http.request.method", method), S("http.route", svc.Route), S("url.path", strings.ReplaceAll(svc.Route, "{id}", strconv.Itoa(s.rng.IntN(100000)))),
			S("url.scheme", scheme), S("server.address", host), I("server.port", port), I("http.response.status_code", status),
			S("network.protocol.version", "1.1"), S("client.address", "10.0."+strconv.Itoa(s.rng.IntN(16))+"."+strconv.Itoa(s.rng.IntN(250)+1)),
			S("user_agent.original", "Go-http-client/1.1")}
	}
	s.emit(sp)
	return cur, failed
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// call makes one outgoing call c of replica r at t, with its retries, and
// returns when the last attempt ended and whether it failed.
func (s *sim) call(r *replica, c *Call, t time.Time, tr [16]byte, parent [8]byte) (time.Time, bool) {
	attempts := 1 + c.Retries
	var end time.Time
	var failed bool
	for a := range attempts {
		end, failed = s.attempt(r, c, t, tr, parent, a)
		if !failed || a == attempts-1 {
			break
		}
		t = end.Add(c.Backoff)
	}
	return end, failed
}

func (s *sim) attempt(r *replica, c *Call, t time.Time, tr [16]byte, parent [8]byte, attempt int) (time.Time, bool) {
	id := s.spanID()
	sp := &Span{Trace: tr, ID: id, Parent: parent, Kind: ptrace.SpanKindClient, Start: t, replica: r}
	failFast := s.sys.Dynamics.FailFast != nil && (c.Proto == HTTP || c.Proto == GRPC) && s.sys.Dynamics.FailFast(r.svc.Name, c, t)
	var end time.Time
	failed := false
	switch {
	case failFast:
		end = t.Add(s.lognormal(time.Millisecond))
		failed = true
		sp.Fault = true
	case c.Proto == HTTP || c.Proto == GRPC:
		srvEnd, f := s.serve(c.To, t.Add(s.net()), tr, id, false)
		end = srvEnd.Add(s.net())
		failed = f
		sp.Fault = f && s.faultOn(c.To, t)
	case c.Proto == DB:
		lat, errRate := s.lognormal(c.Latency), 0.001
		if f := s.sys.Dynamics.DB; f != nil {
			if k, e, ok := f(c.To, t); ok {
				lat, errRate = time.Duration(float64(lat)*k), e
				sp.Fault = true
			}
		}
		end = t.Add(lat)
		failed = s.rng.Float64() < errRate
	case c.Proto == Kafka:
		end = t.Add(s.lognormal(c.Latency))
		sp.publishTo = c.To
	}
	if c.Timeout > 0 && end.Sub(t) > c.Timeout {
		end, failed = t.Add(c.Timeout), true
	}
	sp.End, sp.Error = end, failed
	switch c.Proto {
	case HTTP:
		method := "GET"
		if strings.Contains(c.Op, "order") || strings.Contains(c.Op, "charge") {
			method = "POST"
		}
		sp.Name = method
		sp.Attrs = []Attr{S("http.request.method", method), S("url.full", "http://"+c.To+":8080"+strings.ReplaceAll(c.Op, "{id}", strconv.Itoa(s.rng.IntN(100000)))),
			S("server.address", c.To), I("server.port", 8080), S("network.protocol.version", "1.1")}
		switch {
		case failFast:
			sp.Attrs = append(sp.Attrs, S("error.type", "io.github.resilience4j.circuitbreaker.CallNotPermittedException"))
		case failed:
			sp.Attrs = append(sp.Attrs, I("http.response.status_code", 500), S("error.type", "500"))
		default:
			sp.Attrs = append(sp.Attrs, I("http.response.status_code", 200))
		}
		if attempt > 0 && c.ResendCount {
			sp.Attrs = append(sp.Attrs, I("http.request.resend_count", int64(attempt)))
		}
	case GRPC:
		svcName, method, _ := strings.Cut(c.Op, "/")
		code := int64(0)
		switch {
		case failFast:
			code = 14 // UNAVAILABLE, raised by the client's breaker
		case failed:
			code = 13
		}
		sp.Name = c.Op
		sp.Attrs = []Attr{S("rpc.system", "grpc"), S("rpc.service", svcName), S("rpc.method", method), I("rpc.grpc.status_code", code),
			S("server.address", c.To), I("server.port", 50051)}
	case DB:
		verb, table, _ := strings.Cut(c.Op, " ")
		sp.Name = c.Op
		sp.Attrs = []Attr{S("db.system.name", "postgresql"), S("db.namespace", c.To), S("db.operation.name", verb), S("db.collection.name", table),
			S("server.address", "pg-"+c.To), I("server.port", 5432)}
		if failed {
			sp.Attrs = append(sp.Attrs, S("error.type", "40001"))
		}
	case Kafka:
		sp.Kind = ptrace.SpanKindProducer
		sp.Name = "send " + c.To
		sp.Attrs = []Attr{S("messaging.system", "kafka"), S("messaging.operation.type", "send"), S("messaging.operation.name", "send"),
			S("messaging.destination.name", c.To), S("server.address", "kafka-"+strconv.Itoa(s.rng.IntN(3))), I("server.port", 9092),
			S("messaging.kafka.message.key", strconv.Itoa(s.rng.IntN(1_000_000)))}
	}
	s.emit(sp)
	return end, failed
}

// faultOn reports whether service name's errors at t are the fault's.
func (s *sim) faultOn(name string, t time.Time) bool {
	if f := s.sys.Dynamics.ErrRate; f != nil {
		_, _, fl := f(name, t)
		return fl
	}
	return false
}
