// Package incident groups findings into incidents and ranks their probable
// root causes (SPEC.md "GET /api/v1/incidents"). On every evaluation tick
// the runner (detect/runner) hands the Tracker the tick's snapshot and
// findings; the Tracker
//
//   - learns a baseline of every node's and edge's figures (the latency and
//     error ratio of the calls into a node, its critical-path self time,
//     the rates it produces and consumes; each edge's latency, error ratio
//     and p95), as exponentially weighted means bounded in number, frozen
//     while an incident is open on them;
//   - groups the firing findings that are connected on the graph (one on
//     the path of the other from an entry point, sharing the node they
//     point at, or explained by the same anomalous node) into incidents,
//     which keep their id for life: the id of their first finding;
//   - ranks the nodes that could explain each incident's findings by how
//     far their own behaviour moved from its baseline, how many of the
//     findings their place on the graph explains (downstream of the
//     symptom on sync paths, the stuck consumer or the flooding producer on
//     async ones), and whether their anomaly began first;
//   - says what the users of the entry points feel: the entry points whose
//     error ratio or p95 moved, before and now, with the share of their
//     traffic that passes through the first root cause.
//
// docs/incidents.md explains the ranking and its limits.
package incident

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a49a8342/cartograph/detect"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// Change is a change recorded on the graph (a new version of a service, an
// edge appearing): evidence an incident cites when it happened on one of
// its nodes shortly before it began.
type Change struct {
	ID string
	At time.Time
	// NodeID or EdgeID is what changed.
	NodeID, EdgeID string
	// Summary says what changed, in words ("version 1.42 of payment").
	Summary string
}

// ChangeSource lists the changes recorded in [from, to], oldest first.
// It is where a recorder of changes plugs in (nil: incidents list none).
// ChangesBetween is called from the Tracker's goroutine, once per open
// incident and tick; the caller owns the slice.
type ChangeSource interface {
	ChangesBetween(from, to time.Time) []Change
}

// Defaults of Options.
const (
	DefaultMaxIncidents    = 1_000
	DefaultMaxBaselines    = 100_000
	DefaultBaselineHorizon = 30 * time.Minute
	DefaultReopenWithin    = time.Minute
	DefaultRetention       = 24 * time.Hour
	DefaultChangeLookback  = 10 * time.Minute
)

// Options configure a Tracker. Zero fields take the defaults.
type Options struct {
	// Interval is the evaluation interval (default 5s): the resolution of
	// onset order, and the step of the baselines' learning.
	Interval time.Duration
	// MaxIncidents bounds the incidents kept, open and resolved (default
	// 1,000): the oldest resolved go first; an incident that would open
	// beyond it is dropped and counted.
	MaxIncidents int
	// Retention is how long resolved incidents are kept (default 24h).
	Retention time.Duration
	// ReopenWithin: a new finding that the first root cause of an incident
	// resolved no longer ago than this could explain reopens it rather than
	// opening another (default 1m).
	ReopenWithin time.Duration
	// MaxBaselines bounds the nodes, edges and entry points whose baseline
	// is learnt (default 100,000); beyond, they are counted and not
	// judged.
	MaxBaselines int
	// BaselineHorizon is the horizon of the baselines' exponential means
	// (default 30m).
	BaselineHorizon time.Duration
	// MinSamples is how many evaluations must have taught a baseline
	// before a node or edge is judged against it (default 3).
	MinSamples uint32
	// Changes, when set, lists the changes an incident cites.
	Changes ChangeSource
	// ChangeLookback is how long before an incident's start a change on
	// one of its nodes is cited (default 10m).
	ChangeLookback time.Duration
	Now            func() time.Time
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
}

func (o Options) withDefaults() Options {
	if o.Interval == 0 {
		o.Interval = 5 * time.Second
	}
	if o.MaxIncidents == 0 {
		o.MaxIncidents = DefaultMaxIncidents
	}
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.ReopenWithin == 0 {
		o.ReopenWithin = DefaultReopenWithin
	}
	if o.MaxBaselines == 0 {
		o.MaxBaselines = DefaultMaxBaselines
	}
	if o.BaselineHorizon == 0 {
		o.BaselineHorizon = DefaultBaselineHorizon
	}
	if o.MinSamples == 0 {
		o.MinSamples = 3
	}
	if o.ChangeLookback == 0 {
		o.ChangeLookback = DefaultChangeLookback
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports whether the options are usable.
func (o Options) Validate() error {
	var errs []error
	if o.Interval < 0 || o.Retention < 0 || o.ReopenWithin < 0 || o.BaselineHorizon < 0 || o.ChangeLookback < 0 {
		errs = append(errs, errors.New("incident: interval, retention, reopen window, baseline horizon and change lookback must not be negative"))
	}
	if o.MaxIncidents < 0 || o.MaxBaselines < 0 {
		errs = append(errs, errors.New("incident: max incidents and max baselines must not be negative"))
	}
	return errors.Join(errs...)
}

// Weights of a cause's score (docs/incidents.md).
const (
	weightAnomaly  = 0.5
	weightExplains = 0.3
	weightOnset    = 0.15
	// weightDirect goes to the node findings name themselves: the
	// subject of a node finding, the callee of an edge finding, the
	// consumer of a lag finding. With no behaviour to tell them apart,
	// the finding's own subject comes before what lies beyond it.
	weightDirect = 0.05
	changeBonus  = 0.1
)

// Thresholds of anomaly scores.
const (
	// groupAnomaly: findings explained by one node this anomalous are one
	// incident, wherever they sit.
	groupAnomaly = 0.5
	// onsetAnomaly is the anomaly from which a node's onset is taken
	// (and below half of which it ends).
	onsetAnomaly = 0.3
	// slowLearnAnomaly: a node this anomalous teaches its baseline eight
	// times more slowly, so that a fault's first minutes, before any
	// finding fires, are not learnt as usual.
	slowLearnAnomaly = 0.5
)

// Bounds of one evaluation's walks.
const (
	maxReachHops = 8
	maxReach     = 4096
	maxDownHops  = 4
	maxDown      = 64
	maxCauses    = 64 // candidates tracked per incident
	maxListed    = 5  // root causes listed
	maxImpact    = 25
)

// Tracker makes incidents from the findings of each tick. Correlate is
// called from one goroutine at a time (detect/runner does so); Incidents
// and IncidentOf are safe for concurrent use with it.
type Tracker struct {
	o    Options
	base *baselines

	open      []*tracked // by start
	resolved  []*tracked // by resolution, oldest first
	byFinding map[string]*tracked
	ticks     uint64

	mu     sync.RWMutex
	out    []finding.Incident // as published by the last Correlate
	byID   map[string]int     // finding id -> index in out
	nOpen  atomic.Int64
	nBase  atomic.Int64
	metric struct {
		dropped     prometheus.Counter
		baseDropped prometheus.Counter
		open        prometheus.GaugeFunc
	}
}

// tracked is one incident being followed.
type tracked struct {
	inc     finding.Incident // the published value; its slices are never modified once published
	members map[string]*member
	order   []string // member ids, oldest first
	causes  map[string]*causeState
}

// member is what an incident remembers of one of its findings.
type member struct {
	id      string
	kind    finding.Kind
	subject finding.Subject
	started time.Time
	firing  bool
	// top and bottom are the node ids its subject spans: an edge's source
	// and target, or a node twice. cands are the node ids that could
	// explain it, with how.
	top, bottom string
	cands       map[string]string
	blast       []string
}

// causeState is a candidate cause of an incident: its anomaly at its
// worst and when that began.
type causeState struct {
	name    string
	peak    float64
	aspects []aspect
	since   time.Time
}

// New returns a Tracker for o.
func New(o Options) (*Tracker, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	tr := &Tracker{o: o, base: newBaselines(o.MaxBaselines), byFinding: map[string]*tracked{}, byID: map[string]int{}}
	tr.metric.dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cartograph_incidents_dropped_total",
		Help: "Incidents not opened because --max-incidents were open.",
	})
	tr.metric.baseDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cartograph_incident_baselines_dropped_total",
		Help: "Nodes, edges and entry points whose baseline was not learnt because --incident-max-baselines were kept.",
	})
	tr.metric.open = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cartograph_incidents_open",
		Help: "Incidents open: groups of related findings firing, each with its probable root cause.",
	}, func() float64 { return float64(tr.nOpen.Load()) })
	bases := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cartograph_incident_baselines",
		Help: "Nodes, edges and entry points whose baseline is learnt.",
	}, func() float64 { return float64(tr.nBase.Load()) })
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{tr.metric.dropped, tr.metric.baseDropped, tr.metric.open, bases} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("incident: register metrics: %w", err)
			}
		}
	}
	return tr, nil
}

// Incidents returns the incidents in state (0: every state) as the last
// Correlate left them: open first, newest first. The slices inside are
// shared and read-only.
func (tr *Tracker) Incidents(state finding.IncidentState) []finding.Incident {
	tr.mu.RLock()
	defer tr.mu.RUnlock()
	out := make([]finding.Incident, 0, len(tr.out))
	for _, inc := range tr.out {
		if state == 0 || inc.State == state {
			out = append(out, inc)
		}
	}
	return out
}

// IncidentOf returns the incident holding the finding with id.
func (tr *Tracker) IncidentOf(findingID string) (finding.Incident, bool) {
	tr.mu.RLock()
	defer tr.mu.RUnlock()
	i, ok := tr.byID[findingID]
	if !ok {
		return finding.Incident{}, false
	}
	return tr.out[i], true
}

// Correlate folds one tick's snapshot and findings (every state, as the
// engine lists them) into the incidents, and returns every incident kept,
// as Incidents(0) does. It must not modify s or findings, and keeps
// neither.
func (tr *Tracker) Correlate(s *graph.Snapshot, findings []finding.Finding) []finding.Incident {
	if s == nil {
		return tr.Incidents(0)
	}
	now := tr.o.Now()
	tr.ticks++
	t := newTopo(s)
	nf, ef := features(t)
	an := make([]anomaly, len(t.nodes))
	for n := range t.nodes {
		if t.kind(int32(n)) != graph.NodeClient {
			an[n] = tr.judge(t, nf, ef, int32(n))
		}
	}
	tr.noteOnsets(t, an, now)

	w := &walker{t: t, reach: map[int32]map[int32]bool{}}
	byID := make(map[string]*finding.Finding, len(findings))
	var firing []*finding.Finding
	for i := range findings {
		f := &findings[i]
		byID[f.ID] = f
		if f.State == finding.StateFiring {
			firing = append(firing, f)
		}
	}
	tr.group(t, w, an, firing, now)

	var frozen map[string]bool
	for _, inc := range tr.open {
		tr.refreshMembers(t, w, inc, byID)
	}
	for i := 0; i < len(tr.open); i++ {
		inc := tr.open[i]
		if !inc.anyFiring() {
			tr.resolve(inc, byID, now)
			i--
			continue
		}
	}
	var blaster *detect.Blaster // one per tick, shared: it memoises its walks
	for _, inc := range tr.open {
		tr.rank(t, an, inc, now)
		inc.inc.Owner = ""
		if top, ok := inc.inc.TopCause(); ok {
			n, _ := s.Node(top.NodeID)
			inc.inc.Owner = n.Owner
		}
		if blaster == nil {
			blaster = detect.NewBlaster(s)
		}
		tr.assess(t, ef, blaster, inc)
		tr.burning(t, ef, blaster, inc, byID)
		tr.cite(inc, now)
		inc.inc.UpdatedAt = now
		if frozen == nil {
			frozen = map[string]bool{}
		}
		for id := range inc.nodes() {
			frozen[id] = true
		}
	}
	tr.learn(t, nf, ef, an, frozen, now)
	tr.retain(now)
	tr.publish()
	return tr.Incidents(0)
}

// noteOnsets records when each node's anomaly began (and ended).
func (tr *Tracker) noteOnsets(t *topo, an []anomaly, now time.Time) {
	for n := range t.nodes {
		b := tr.base.peek(nodeKey(t.nodes[n].ID))
		if b == nil {
			continue
		}
		switch {
		case an[n].score >= onsetAnomaly:
			if b.since.IsZero() {
				b.since = now
			}
		case an[n].score < onsetAnomaly/2:
			b.since = time.Time{}
		}
	}
}

// walker answers reachability questions on one snapshot, memoised.
type walker struct {
	t     *topo
	reach map[int32]map[int32]bool
}

// downstream returns the nodes reachable from n (n included) over any
// edge, at most maxReachHops away and maxReach of them.
func (w *walker) downstream(n int32) map[int32]bool {
	if r, ok := w.reach[n]; ok {
		return r
	}
	r := map[int32]bool{n: true}
	frontier := []int32{n}
	for hop := 0; hop < maxReachHops && len(frontier) > 0 && len(r) < maxReach; hop++ {
		var next []int32
		for _, u := range frontier {
			for _, e := range w.t.out[u] {
				v := w.t.dst[e]
				if !r[v] && len(r) < maxReach {
					r[v] = true
					next = append(next, v)
				}
			}
		}
		frontier = next
	}
	w.reach[n] = r
	return r
}

// syncCallees returns the nodes n calls over sync edges, directly or
// through others, nearest first, at most maxDown of them within
// maxDownHops.
func (w *walker) syncCallees(n int32) []int32 {
	seen := map[int32]bool{n: true}
	var out []int32
	frontier := []int32{n}
	for hop := 0; hop < maxDownHops && len(frontier) > 0; hop++ {
		var next []int32
		for _, u := range frontier {
			for _, e := range w.t.out[u] {
				v := w.t.dst[e]
				if w.t.edges[e].Kind != graph.EdgeSync || seen[v] || len(out) >= maxDown {
					continue
				}
				seen[v] = true
				out = append(out, v)
				next = append(next, v)
			}
		}
		frontier = next
	}
	return out
}

// describe locates finding f on the snapshot: the nodes its subject spans
// and the nodes that could explain it, each with how. ok is false when
// its subject is not on the graph.
func describe(t *topo, w *walker, f *finding.Finding) (top, bottom int32, cands map[int32]string, ok bool) {
	switch {
	case f.Subject.EdgeID != "":
		e, found := t.byEID[f.Subject.EdgeID]
		if !found {
			return -1, -1, nil, false
		}
		top, bottom = t.src[e], t.dst[e]
	case f.Subject.NodeID != "":
		n, found := t.byID[f.Subject.NodeID]
		if !found {
			return -1, -1, nil, false
		}
		top, bottom = n, n
	default:
		return -1, -1, nil, false
	}
	cands = map[int32]string{}
	what := subjectText(f)
	add := func(n int32, how string) {
		if t.kind(n) == graph.NodeClient {
			return
		}
		if _, dup := cands[n]; !dup {
			cands[n] = how
		}
	}
	if f.Kind == finding.KindConsumerLag {
		// The stuck consumer (or what it waits on) explains the lag, and
		// so does a flood from a producer upstream on the async path.
		add(bottom, directMark+"the consumer of "+what)
		for _, c := range w.syncCallees(bottom) {
			add(c, "called by the consumer of "+what)
		}
		producers := 0
		for _, e := range t.in[top] {
			if p := t.src[e]; !t.destination(p) && t.kind(p) != graph.NodeClient {
				add(p, "a producer upstream of "+what+" on its async path")
				producers++
			}
		}
		if producers == 0 {
			add(top, "the destination of "+what+" (its producers are not traced)")
		}
		return top, bottom, cands, true
	}
	// Sync findings: the callee that fails or is slow, and what it calls,
	// explain the caller's symptom. A bottleneck is a node's own time,
	// which its callees' time is not part of: the node alone.
	switch {
	case f.Kind == finding.KindSLOBurn:
		// Its entry point is where users feel it: a candidate, but not
		// one the finding names as its cause.
		add(bottom, "the entry point of "+what)
	case f.Subject.EdgeID != "":
		add(bottom, directMark+"the callee of "+what)
	default:
		add(bottom, directMark+"the subject of "+what)
	}
	if f.Kind != finding.KindBottleneck {
		for _, c := range w.syncCallees(bottom) {
			add(c, "downstream of "+what+" on its sync path")
		}
	}
	if f.Subject.NodeID != "" {
		// A consumer's own time per batch grows with what it is sent:
		// a flood upstream on its async path explains it too.
		for _, e := range t.in[bottom] {
			if d := t.src[e]; t.destination(d) {
				for _, pe := range t.in[d] {
					if p := t.src[pe]; !t.destination(p) && t.kind(p) != graph.NodeClient {
						add(p, "a producer upstream of "+what+" on its async path")
					}
				}
			}
		}
	}
	return top, bottom, cands, true
}

// directMark starts the "how" of a candidate a finding names itself.
const directMark = "\x00"

func subjectText(f *finding.Finding) string {
	if f.Subject.Node != "" {
		return f.Kind.String() + " " + f.Subject.Node
	}
	return f.Kind.String() + " " + f.Subject.Source + " → " + f.Subject.Target
}

// group puts every firing finding into an incident: findings connected on
// the graph form one (union-find over the tick's firing findings, with the
// members of each open incident already one), joining, reopening or
// merging the incidents they belong to.
func (tr *Tracker) group(t *topo, w *walker, an []anomaly, firing []*finding.Finding, now time.Time) {
	if len(firing) == 0 {
		return
	}
	slices.SortFunc(firing, func(a, b *finding.Finding) int {
		return cmp.Or(a.StartedAt.Compare(b.StartedAt), strings.Compare(a.ID, b.ID))
	})
	uf := newUnionFind(len(firing))
	type loc struct {
		top, bottom int32
		cands       map[int32]string
		ok          bool
	}
	locs := make([]loc, len(firing))
	topAt, bottomAt, causeAt := map[int32][]int{}, map[int32][]int{}, map[int32][]int{}
	byInc := map[*tracked][]int{}
	slo := newSLOJoin(len(firing))
	for i, f := range firing {
		var l loc
		l.top, l.bottom, l.cands, l.ok = describe(t, w, f)
		locs[i] = l
		if inc := tr.byFinding[f.ID]; inc != nil {
			byInc[inc] = append(byInc[inc], i)
		}
		if !l.ok {
			continue
		}
		if f.Kind == finding.KindSLOBurn {
			slo.note(i, l.cands, an)
			continue
		}
		topAt[l.top] = append(topAt[l.top], i)
		bottomAt[l.bottom] = append(bottomAt[l.bottom], i)
		for c := range l.cands {
			if an[c].score >= groupAnomaly {
				causeAt[c] = append(causeAt[c], i)
			}
		}
	}
	for _, is := range byInc {
		for _, i := range is[1:] {
			uf.union(is[0], i)
		}
	}
	for _, m := range []map[int32][]int{bottomAt, causeAt} {
		for _, is := range m {
			for _, i := range is[1:] {
				uf.union(is[0], i)
			}
		}
	}
	// On one path: what one finding's subject leads to, the other's
	// starts from.
	for i, l := range locs {
		if !l.ok || slo.is[i] {
			continue
		}
		for v := range w.downstream(l.bottom) {
			for _, j := range topAt[v] {
				uf.union(i, j)
			}
		}
	}
	slo.join(uf, w, func(i int) int32 { return locs[i].bottom }, topAt)
	comps := map[int][]int{}
	var roots []int
	for i := range firing {
		r := uf.find(i)
		if _, ok := comps[r]; !ok {
			roots = append(roots, r)
		}
		comps[r] = append(comps[r], i)
	}
	for _, r := range roots {
		idx := comps[r]
		var incs []*tracked
		for _, i := range idx {
			if inc := tr.byFinding[firing[i].ID]; inc != nil && !slices.Contains(incs, inc) {
				incs = append(incs, inc)
			}
		}
		if len(incs) == 0 {
			if inc := tr.reopenable(t, idx, func(i int) map[int32]string { return locs[i].cands }, now); inc != nil {
				incs = append(incs, inc)
			}
		}
		var into *tracked
		switch {
		case len(incs) == 0:
			if len(tr.open) >= tr.o.MaxIncidents {
				tr.metric.dropped.Inc()
				tr.o.Logger.Warn("incident not opened: --max-incidents are open", "finding", firing[idx[0]].ID)
				continue
			}
			first := firing[idx[0]] // oldest: firing is sorted by start
			into = &tracked{members: map[string]*member{}, causes: map[string]*causeState{},
				inc: finding.Incident{ID: "inc-" + first.ID, State: finding.IncidentOpen, StartedAt: first.StartedAt}}
			tr.open = append(tr.open, into)
		default:
			for _, inc := range incs {
				if inc.inc.State == finding.IncidentResolved {
					tr.reopen(inc)
				}
			}
			slices.SortFunc(incs, func(a, b *tracked) int {
				return cmp.Or(a.inc.StartedAt.Compare(b.inc.StartedAt), strings.Compare(a.inc.ID, b.inc.ID))
			})
			into = incs[0]
			for _, other := range incs[1:] {
				tr.merge(into, other)
			}
		}
		for _, i := range idx {
			f := firing[i]
			if into.members[f.ID] == nil {
				into.addMember(f)
				tr.byFinding[f.ID] = into
			}
		}
	}
}

// reopenable returns the incident resolved within ReopenWithin whose
// first root cause could explain one of the findings idx (it is among
// their candidates: the same cause, back), the newest such; nil when there
// is none. Mere connection on the graph is not enough: a fault elsewhere
// on the same path a minute later is another incident.
func (tr *Tracker) reopenable(t *topo, idx []int, candsOf func(int) map[int32]string, now time.Time) *tracked {
	for k := len(tr.resolved) - 1; k >= 0; k-- {
		inc := tr.resolved[k]
		if inc.inc.ResolvedAt == nil || now.Sub(*inc.inc.ResolvedAt) > tr.o.ReopenWithin {
			break
		}
		c, ok := inc.inc.TopCause()
		if !ok {
			continue
		}
		n, ok := t.byID[c.NodeID]
		if !ok {
			continue
		}
		for _, i := range idx {
			if _, ok := candsOf(i)[n]; ok {
				return inc
			}
		}
	}
	return nil
}

func (inc *tracked) addMember(f *finding.Finding) {
	inc.members[f.ID] = &member{id: f.ID, kind: f.Kind, subject: f.Subject, started: f.StartedAt, firing: true}
	inc.order = append(inc.order, f.ID)
	slices.SortStableFunc(inc.order, func(a, b string) int {
		return cmp.Or(inc.members[a].started.Compare(inc.members[b].started), strings.Compare(a, b))
	})
	if f.StartedAt.Before(inc.inc.StartedAt) {
		inc.inc.StartedAt = f.StartedAt
	}
}

func (inc *tracked) anyFiring() bool {
	for _, m := range inc.members {
		if m.firing {
			return true
		}
	}
	return false
}

// nodes returns the ids of the nodes the incident touches: its findings'
// subjects and blast radii, and its candidate causes.
func (inc *tracked) nodes() map[string]bool {
	out := map[string]bool{}
	for _, m := range inc.members {
		if m.top != "" {
			out[m.top], out[m.bottom] = true, true
		}
		for c := range m.cands {
			out[c] = true
		}
		for _, b := range m.blast {
			out[b] = true
		}
	}
	return out
}

// merge moves other's members and candidates into into; other stops
// existing under its own id (into lists it as merged).
func (tr *Tracker) merge(into, other *tracked) {
	for _, id := range other.order {
		if into.members[id] == nil {
			into.members[id] = other.members[id]
			into.order = append(into.order, id)
		}
		tr.byFinding[id] = into
	}
	slices.SortStableFunc(into.order, func(a, b string) int {
		return cmp.Or(into.members[a].started.Compare(into.members[b].started), strings.Compare(a, b))
	})
	for id, c := range other.causes {
		if mine := into.causes[id]; mine == nil {
			if len(into.causes) < maxCauses {
				into.causes[id] = c
			}
		} else if c.peak > mine.peak {
			mine.peak, mine.aspects = c.peak, c.aspects
		}
	}
	if other.inc.StartedAt.Before(into.inc.StartedAt) {
		into.inc.StartedAt = other.inc.StartedAt
	}
	into.inc.Merged = append(slices.Clone(into.inc.Merged), append([]string{other.inc.ID}, other.inc.Merged...)...)
	tr.open = slices.DeleteFunc(tr.open, func(x *tracked) bool { return x == other })
	tr.resolved = slices.DeleteFunc(tr.resolved, func(x *tracked) bool { return x == other })
	tr.o.Logger.Info("incidents merged", "into", into.inc.ID, "merged", other.inc.ID)
}

func (tr *Tracker) reopen(inc *tracked) {
	tr.resolved = slices.DeleteFunc(tr.resolved, func(x *tracked) bool { return x == inc })
	inc.inc.State, inc.inc.ResolvedAt = finding.IncidentOpen, nil
	tr.open = append(tr.open, inc)
}

// refreshMembers notes which members fire, and where each sits on the
// current graph.
func (tr *Tracker) refreshMembers(t *topo, w *walker, inc *tracked, byID map[string]*finding.Finding) {
	for _, m := range inc.members {
		f := byID[m.id]
		m.firing = f != nil && f.State == finding.StateFiring
		if f == nil {
			continue
		}
		top, bottom, cands, ok := describe(t, w, f)
		if !ok {
			continue
		}
		m.top, m.bottom = t.nodes[top].ID, t.nodes[bottom].ID
		m.cands = make(map[string]string, len(cands))
		for c, how := range cands {
			m.cands[t.nodes[c].ID] = how
		}
		m.blast = m.blast[:0]
		if br := f.BlastRadius; br != nil {
			for _, a := range br.Upstream {
				m.blast = append(m.blast, a.NodeID)
			}
		}
	}
}

// resolve ends an incident none of whose findings fires any more: it
// resolved when the last of them did.
func (tr *Tracker) resolve(inc *tracked, byID map[string]*finding.Finding, now time.Time) {
	var at time.Time
	for id := range inc.members {
		if f := byID[id]; f != nil && f.ResolvedAt != nil && f.ResolvedAt.After(at) {
			at = *f.ResolvedAt
		}
	}
	if at.IsZero() {
		at = now
	}
	inc.inc.State, inc.inc.ResolvedAt, inc.inc.UpdatedAt = finding.IncidentResolved, &at, now
	tr.open = slices.DeleteFunc(tr.open, func(x *tracked) bool { return x == inc })
	tr.resolved = append(tr.resolved, inc)
}

// rank scores the incident's candidate causes and lists the best.
func (tr *Tracker) rank(t *topo, an []anomaly, inc *tracked, now time.Time) {
	explained := map[string][]string{} // node id -> how it explains each member
	total := 0
	subjects := map[string]bool{} // nodes with a finding of their own
	for _, id := range inc.order {
		m := inc.members[id]
		if m.cands == nil {
			continue
		}
		total++
		for c, how := range m.cands {
			explained[c] = append(explained[c], how)
		}
		if m.subject.NodeID != "" {
			subjects[m.subject.NodeID] = true
		} else if m.bottom != "" {
			subjects[m.bottom] = true
		}
	}
	for id := range explained {
		n, ok := t.byID[id]
		c := inc.causes[id]
		if c == nil {
			if len(inc.causes) >= maxCauses {
				continue
			}
			c = &causeState{}
			inc.causes[id] = c
		}
		if !ok {
			continue
		}
		c.name = t.nodes[n].Name
		if a := an[n]; a.score > c.peak || c.aspects == nil && a.score > 0 {
			c.peak, c.aspects = a.score, a.aspects
		}
		if b := tr.base.peek(nodeKey(id)); b != nil && !b.since.IsZero() && (c.since.IsZero() || b.since.Before(c.since)) {
			c.since = b.since
		}
	}
	var changes []Change
	if tr.o.Changes != nil {
		changes = tr.o.Changes.ChangesBetween(inc.inc.StartedAt.Add(-tr.o.ChangeLookback), now)
	}
	// Causes start first: onsets count from the earliest of the first
	// finding and the first candidate's anomaly.
	first, firstName := inc.inc.StartedAt, ""
	for id, c := range inc.causes {
		if len(explained[id]) > 0 && !c.since.IsZero() && c.since.Before(first) {
			first, firstName = c.since, c.name
		}
	}
	causes := make([]finding.Cause, 0, len(inc.causes))
	for id, c := range inc.causes {
		hows := explained[id]
		if c.name == "" || len(hows) == 0 || total == 0 {
			continue
		}
		cause := finding.Cause{Subject: finding.Subject{Node: c.name, NodeID: id}}
		cause.Anomaly = round(c.peak, 3)
		cause.Explains = round(float64(len(hows))/float64(total), 3)
		for _, a := range c.aspects {
			cause.Reasons = append(cause.Reasons, a.reason)
		}
		direct := 0
		words := make([]string, 0, len(hows))
		for _, h := range hows {
			if w, ok := strings.CutPrefix(h, directMark); ok {
				direct++
				h = w
			}
			words = append(words, h)
		}
		slices.Sort(words)
		cause.Reasons = append(cause.Reasons, fmt.Sprintf("explains %d of %d findings by its place on the graph: %s", len(hows), total, strings.Join(slices.Compact(words), "; ")))
		if !c.since.IsZero() {
			since := c.since
			cause.AnomalousSince = &since
			switch d := c.since.Sub(first); {
			case d <= tr.o.Interval:
				cause.Onset = 1
			default:
				cause.Onset = round(1/(1+float64(d-tr.o.Interval)/float64(3*tr.o.Interval)), 3)
			}
			r := "its anomaly began "
			if d := c.since.Sub(inc.inc.StartedAt); d <= 0 {
				r += fmtDur(-d) + " before the first finding"
			} else {
				r += fmtDur(d) + " after the first finding"
			}
			if d := c.since.Sub(first); d > tr.o.Interval && firstName != "" {
				r += fmt.Sprintf(", %s after %s's", fmtDur(d), firstName)
			}
			cause.Reasons = append(cause.Reasons, r)
		}
		score := weightAnomaly*cause.Anomaly + weightExplains*cause.Explains + weightOnset*cause.Onset + weightDirect*float64(direct)/float64(total)
		for _, ch := range changes {
			if ch.NodeID == id && !ch.At.After(now) {
				score += changeBonus
				d := inc.inc.StartedAt.Sub(ch.At)
				cause.Reasons = append(cause.Reasons, fmt.Sprintf("changed %s before the incident began: %s", fmtDur(d), cmp.Or(ch.Summary, ch.ID)))
				break
			}
		}
		if !subjects[id] {
			cause.Reasons = append(cause.Reasons, "raised no finding of its own: only the findings of those that depend on it point here")
		}
		cause.Score = round(min(score, 1), 3)
		causes = append(causes, cause)
	}
	slices.SortFunc(causes, func(a, b finding.Cause) int {
		return cmp.Or(cmp.Compare(b.Score, a.Score), cmp.Compare(b.Anomaly, a.Anomaly), strings.Compare(a.NodeID, b.NodeID))
	})
	if len(causes) > maxListed {
		causes = causes[:maxListed]
	}
	inc.inc.RootCauses = causes
	inc.inc.Findings = slices.Clone(inc.order)
}

// assess works out the user impact of an open incident: the entry points
// whose error ratio or p95 latency moved from their baseline and whose
// traffic reaches the first root cause, with the share that does (the
// blast radius's estimate: the product of the call rates along the way).
func (tr *Tracker) assess(t *topo, ef []edgeFeat, blaster *detect.Blaster, inc *tracked) {
	top, ok := inc.inc.TopCause()
	if !ok {
		inc.inc.Impact = []finding.Impact{}
		return
	}
	share := map[string]float64{top.NodeID: 1}
	if br := blaster.Radius(finding.Subject{NodeID: top.NodeID}); br != nil {
		for _, a := range br.EntryPoints {
			share[a.NodeID] = a.Share
		}
	}
	var out []finding.Impact
	for _, x := range entries(t, ef) {
		sh := share[t.nodes[x.node].ID]
		if sh <= 0 {
			continue
		}
		b := tr.base.peek(entryKey(t.nodes[x.node].ID))
		if !tr.moved(b, x) {
			continue
		}
		errUsual, _ := b.usualOf(mEdgeErr, tr.o.MinSamples)
		p95Usual, _ := b.usualOf(mEdgeP95, tr.o.MinSamples)
		errNow := 0.0
		if x.req > 0 {
			errNow = x.err / x.req
		}
		out = append(out, finding.Impact{
			Entry: t.nodes[x.node].Name, EntryID: t.nodes[x.node].ID,
			ErrorRatio: finding.Before{Before: round(errUsual, 4), Now: round(errNow, 4)},
			P95Ms:      finding.Before{Before: round(p95Usual, 1), Now: round(x.p95, 1)},
			Share:      round(sh, 4), RatePerS: round(x.rate, 3),
		})
	}
	slices.SortFunc(out, func(a, b finding.Impact) int {
		return cmp.Or(cmp.Compare(b.Share*b.RatePerS, a.Share*a.RatePerS), strings.Compare(a.EntryID, b.EntryID))
	})
	if len(out) > maxImpact {
		out = out[:maxImpact]
	}
	if out == nil {
		out = []finding.Impact{}
	}
	inc.inc.Impact = out
}

// moved reports whether entry x's error ratio rose beyond the noise of its
// calls, or its p95 latency by a quarter and 5 ms, from baseline b.
func (tr *Tracker) moved(b *baseline, x entry) bool {
	errUsual, okE := b.usualOf(mEdgeErr, tr.o.MinSamples)
	p95Usual, okP := b.usualOf(mEdgeP95, tr.o.MinSamples)
	if okE && x.req > 0 {
		p := max(errUsual, minErrBase)
		if x.err/x.req-errUsual > max(0.01, errSigmas*math.Sqrt(p*(1-p)/x.req)) {
			return true
		}
	}
	return okP && x.hasP95 && x.p95 >= 1.25*p95Usual && x.p95-p95Usual >= 5
}

// entry is an entry point's figures: the calls the outside world (the
// client node) makes to it.
type entry struct {
	node           int32
	req, err, rate float64
	p95            float64
	hasP95         bool
}

// entries sums the calls from client nodes into each entry point.
func entries(t *topo, ef []edgeFeat) []entry {
	at := map[int32]int{}
	var out []entry
	for i := range t.edges {
		if t.kind(t.src[i]) != graph.NodeClient || t.edges[i].Idle {
			continue
		}
		n := t.dst[i]
		j, ok := at[n]
		if !ok {
			j = len(out)
			at[n] = j
			out = append(out, entry{node: n})
		}
		x := &out[j]
		x.req += ef[i].req
		x.err += ef[i].err
		x.rate += t.edges[i].RatePerS
		if ef[i].hasP95 {
			x.p95, x.hasP95 = max(x.p95, ef[i].p95), true
		}
	}
	return out
}

// cite lists the changes on the incident's nodes, from ChangeLookback
// before it began.
func (tr *Tracker) cite(inc *tracked, now time.Time) {
	inc.inc.Changes = []string{}
	if tr.o.Changes == nil {
		return
	}
	nodes := inc.nodes()
	edges := map[string]bool{}
	for _, m := range inc.members {
		if m.subject.EdgeID != "" {
			edges[m.subject.EdgeID] = true
		}
	}
	for _, ch := range tr.o.Changes.ChangesBetween(inc.inc.StartedAt.Add(-tr.o.ChangeLookback), now) {
		if nodes[ch.NodeID] || edges[ch.EdgeID] {
			inc.inc.Changes = append(inc.inc.Changes, ch.ID)
		}
	}
}

// learn teaches every baseline the tick's figures, except those of the
// nodes (and their edges and entry points) an open incident holds.
func (tr *Tracker) learn(t *topo, nf []nodeFeat, ef []edgeFeat, an []anomaly, frozen map[string]bool, now time.Time) {
	alpha := float64(tr.o.Interval) / float64(tr.o.BaselineHorizon)
	before := tr.base.dropped
	for n := range t.nodes {
		nd := &t.nodes[n]
		if nd.Kind == graph.NodeClient || nd.Idle {
			continue
		}
		b := tr.base.get(nodeKey(nd.ID), now)
		if b == nil || frozen[nd.ID] {
			continue
		}
		slow := 1.0
		if an[n].score >= slowLearnAnomaly {
			slow = 1.0 / 8
		}
		f := &nf[n]
		if f.hasMean {
			b.m[mInMean].learn(f.inMean, alpha, slow)
		}
		if f.inReq > 0 {
			b.m[mInErr].learn(f.inErr/f.inReq, alpha, slow)
		}
		if f.hasSelf {
			b.m[mSelf].learn(f.self, alpha, slow)
		}
		if f.producer {
			b.m[mProduce].learn(f.produce, alpha, slow)
		}
		if f.consumer {
			b.m[mConsume].learn(f.consume, alpha, slow)
		}
	}
	for i, e := range t.edges {
		if e.Idle || ef[i].req == 0 {
			continue
		}
		b := tr.base.get(edgeKey(e.ID), now)
		if b == nil || frozen[e.Source] || frozen[e.Target] {
			continue
		}
		f := &ef[i]
		slow := 1.0
		if max(an[t.src[i]].score, an[t.dst[i]].score) >= slowLearnAnomaly {
			slow = 1.0 / 8
		}
		if f.hasMean {
			b.m[mEdgeMean].learn(f.mean, alpha, slow)
		}
		if work := nf[t.src[i]].inRate + nf[t.src[i]].consume; work > 0 {
			b.m[mEdgeK].learn(edgeRate(t, int32(i))/work, alpha, slow)
		}
		b.m[mEdgeErr].learn(f.err/f.req, alpha, slow)
		if f.hasP95 {
			b.m[mEdgeP95].learn(f.p95, alpha, slow)
		}
	}
	for _, x := range entries(t, ef) {
		id := t.nodes[x.node].ID
		b := tr.base.get(entryKey(id), now)
		if b == nil || frozen[id] || x.req == 0 {
			continue
		}
		slow := 1.0
		if tr.moved(b, x) {
			slow = 1.0 / 8 // its users feel something: not the usual
		}
		b.m[mEdgeErr].learn(x.err/x.req, alpha, slow)
		if x.hasP95 {
			b.m[mEdgeP95].learn(x.p95, alpha, slow)
		}
	}
	if d := tr.base.dropped - before; d > 0 {
		tr.metric.baseDropped.Add(float64(d))
	}
	if tr.ticks%64 == 0 {
		tr.base.expire(now.Add(-max(time.Hour, 2*tr.o.BaselineHorizon)))
	}
	tr.nBase.Store(int64(len(tr.base.m)))
}

// retain forgets resolved incidents past Retention, and the oldest
// resolved beyond MaxIncidents.
func (tr *Tracker) retain(now time.Time) {
	cut := 0
	for cut < len(tr.resolved) && (len(tr.open)+len(tr.resolved)-cut > tr.o.MaxIncidents || now.Sub(*tr.resolved[cut].inc.ResolvedAt) > tr.o.Retention) {
		for id := range tr.resolved[cut].members {
			if tr.byFinding[id] == tr.resolved[cut] {
				delete(tr.byFinding, id)
			}
		}
		cut++
	}
	tr.resolved = slices.Delete(tr.resolved, 0, cut)
}

// publish makes the incidents as they stand what Incidents returns:
// copies whose slices are never written again.
func (tr *Tracker) publish() {
	out := make([]finding.Incident, 0, len(tr.open)+len(tr.resolved))
	for _, inc := range tr.open {
		out = append(out, inc.snapshot())
	}
	slices.SortFunc(out, func(a, b finding.Incident) int {
		return cmp.Or(b.StartedAt.Compare(a.StartedAt), strings.Compare(a.ID, b.ID))
	})
	for i := len(tr.resolved) - 1; i >= 0; i-- {
		out = append(out, tr.resolved[i].snapshot())
	}
	byID := make(map[string]int, len(tr.byFinding))
	for i := range out {
		for _, id := range out[i].Findings {
			byID[id] = i
		}
	}
	tr.mu.Lock()
	tr.out, tr.byID = out, byID
	tr.mu.Unlock()
	tr.nOpen.Store(int64(len(tr.open)))
}

// snapshot returns the incident's published value: a copy whose slices
// the tracker never writes again.
func (inc *tracked) snapshot() finding.Incident {
	v := inc.inc
	v.Findings = slices.Clone(inc.order)
	v.RootCauses = slices.Clone(v.RootCauses)
	if v.RootCauses == nil {
		v.RootCauses = []finding.Cause{}
	}
	v.Impact = slices.Clone(v.Impact)
	if v.Impact == nil {
		v.Impact = []finding.Impact{}
	}
	v.Changes = slices.Clone(v.Changes)
	if v.Changes == nil {
		v.Changes = []string{}
	}
	v.Merged = slices.Clone(v.Merged)
	return v
}

func round(v float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(v*p) / p
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Second:
		return "under a second"
	case d < time.Minute:
		return fmt.Sprintf("%.0f s", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// unionFind is a disjoint-set forest over 0..n-1.
type unionFind []int

func newUnionFind(n int) unionFind {
	u := make(unionFind, n)
	for i := range u {
		u[i] = i
	}
	return u
}

func (u unionFind) find(i int) int {
	for u[i] != i {
		u[i] = u[u[i]]
		i = u[i]
	}
	return i
}

func (u unionFind) union(a, b int) {
	ra, rb := u.find(a), u.find(b)
	if ra == rb {
		return
	}
	if rb < ra {
		ra, rb = rb, ra
	}
	u[rb] = ra
}
