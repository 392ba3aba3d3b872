package pairing

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// numbering numbers names as a caller of the store numbers its nodes,
// edges and peer candidates.
type numbering struct {
	ids   map[string]int32
	names []string
}

func (n *numbering) id(name string) int32 {
	if n.ids == nil {
		n.ids = map[string]int32{}
	}
	if i, ok := n.ids[name]; ok {
		return i
	}
	i := int32(len(n.names))
	n.ids[name] = i
	n.names = append(n.names, name)
	return i
}

// renumber keeps the names in keep, numbered anew in their order, and
// returns the remap from the old numbers to the new (-1: gone), as a
// caller that retires some does.
func (n *numbering) renumber(keep ...string) []int32 {
	remap := make([]int32, len(n.names))
	next := numbering{}
	for i, name := range n.names {
		remap[i] = -1
		if slices.Contains(keep, name) {
			remap[i] = next.id(name)
		}
	}
	*n = next
	return remap
}

func (n *numbering) name(i int32) string {
	if i < 0 || int(i) >= len(n.names) {
		return fmt.Sprintf("#%d", i)
	}
	return n.names[i]
}

// recording is a Recorder and Peers that writes down what the store tells
// it, one line an event, naming nodes, edges and peers.
type recording struct {
	nodes, edges, peers numbering
	// many are the peer candidates that stand for many peers.
	many map[string]bool
	// batch is the batch being consumed, for Peer and Example.
	batch    []tspan
	events   []string
	examples []string
	// refuse, when set, is what the recording methods return.
	refuse error
}

func (r *recording) add(format string, args ...any) {
	r.events = append(r.events, fmt.Sprintf(format, args...))
}

// retries writes the further attempts of a call as one retry each.
func (r *recording) retries(from, to string, attempts uint8) {
	for range attempts {
		r.add("retry %s->%s", from, to)
	}
}

func (r *recording) Pair(c, sv Half, attempts, _ uint8) error {
	from, to := r.nodes.name(c.Node), r.nodes.name(sv.Node)
	r.add("call %s->%s", from, to)
	r.retries(from, to, attempts)
	return r.refuse
}

func (r *recording) Hop(from int32, h Half, clientSide bool, attempts, _ uint8) error {
	side := ""
	if clientSide {
		side = " (client side)"
	}
	r.add("hop %s->%s%s", r.nodes.name(from), r.nodes.name(h.Node), side)
	r.retries(r.nodes.name(from), r.nodes.name(h.Node), attempts)
	return r.refuse
}

func (r *recording) Uncalled(h Half, clientSide bool, attempts, _ uint8) error {
	side := ""
	if clientSide {
		side = " (client side)"
	}
	r.add("uncalled ->%s%s", r.nodes.name(h.Node), side)
	r.retries("client", r.nodes.name(h.Node), attempts)
	return r.refuse
}

func (r *recording) Attempt(from int32, sv Half) error {
	r.add("retry %s->%s", r.nodes.name(from), r.nodes.name(sv.Node))
	return r.refuse
}

func (r *recording) Unpaired(c Half) error {
	r.add("unpaired %s->peer %s", r.nodes.name(c.Node), r.peers.name(c.Peer))
	return r.refuse
}

func (r *recording) Unanswered(c Half, callee int32, sampledOut bool) {
	what := "unanswered"
	if sampledOut {
		what = "sampled out"
	}
	r.add("%s %s->%s", what, r.nodes.name(c.Node), r.nodes.name(callee))
}

func (r *recording) Message(p Half, w Waiter) {
	via := r.edges.name(w.Edge)
	if w.Edge < 0 {
		via = "group " + w.Group
	}
	r.add("message %s->%s via %s, delay %dms", r.nodes.name(p.Node), r.nodes.name(w.Node), via, (w.Start-p.End)/1e6)
}

func (r *recording) LateMessage(w Waiter, end int64) {
	r.add("late message ->%s via %s, delay %dms", r.nodes.name(w.Node), r.edges.name(w.Edge), (w.Start-end)/1e6)
}

var reasonNames = map[Reason]string{ReasonClientNoPeer: "client_no_peer", ReasonParentNotSeen: "parent_not_seen", ReasonSampledOut: "sampled_out"}

func (r *recording) Unplaced(node int32, reason Reason) {
	r.add("unplaced %s %s", r.nodes.name(node), reasonNames[reason])
}

func (r *recording) Example(ref, node int32, reason Reason) {
	r.examples = append(r.examples, fmt.Sprintf("%s %s %s", r.nodes.name(node), reasonNames[reason], r.batch[ref].name))
}

func (r *recording) Peer(ref int32) int32 {
	if p := r.batch[ref].peer; p != "" {
		return r.peers.id(p)
	}
	return -1
}

func (r *recording) ManyPeers(p int32) bool { return r.many[r.peers.name(p)] }

// tspan is a span of a test, by name: ids are small numbers in one trace
// (tr), services, peers, destination edges and consumer groups are names.
type tspan struct {
	name           string
	tr, id, parent uint8
	links          []uint8 // producers (span ids in trace tr) a consumer names
	kind           Kind
	role           Role
	svc            string
	peer           string // a client's peer candidate
	db             bool   // a client calling a database
	selfPeer       bool   // a client naming its own service
	dest           string // a producer's destination node
	edge           string // a consumer's destination -> consumer edge
	group          string // a consumer's group
	start, end     int64  // ms
	n              uint32 // sampling weight (0: 1)
	err, retry     bool
}

func tid(tr uint8) TraceID { return TraceID{15: tr, 0: 0xa} }

func sid(id uint8) SpanID {
	if id == 0 {
		return SpanID{}
	}
	return SpanID{7: id, 0: 0xb}
}

func server(tr, id, parent uint8, svc string) tspan {
	return tspan{name: fmt.Sprintf("server %s", svc), tr: tr, id: id, parent: parent, kind: KindServer, role: RoleServer, svc: svc, end: 10}
}

func client(tr, id, parent uint8, svc, peer string) tspan {
	return tspan{name: fmt.Sprintf("call %s", peer), tr: tr, id: id, parent: parent, kind: KindClient, role: RoleClient, svc: svc, peer: peer, end: 12}
}

func internal(tr, id, parent uint8, svc string) tspan {
	return tspan{name: fmt.Sprintf("work %s", svc), tr: tr, id: id, parent: parent, kind: KindInternal, role: RoleNone, svc: svc, end: 5}
}

func producer(tr, id, parent uint8, svc, dest string) tspan {
	return tspan{name: fmt.Sprintf("publish %s", dest), tr: tr, id: id, parent: parent, kind: KindProducer, role: RoleProducer, svc: svc, dest: dest, start: 20, end: 21}
}

func consumer(tr, id, parent uint8, svc, edge string) tspan {
	return tspan{name: fmt.Sprintf("process %s", edge), tr: tr, id: id, parent: parent, kind: KindConsumer, role: RoleConsumer, svc: svc, edge: edge, start: 50, end: 60}
}

const testTTL = 10 * time.Second

// harness drives a Store as the graph does: one batch at a time, expiring
// first, remembering every span of a batch before consuming any, callers
// before the rest, spans found duplicate left out.
type harness struct {
	t   *testing.T
	st  *Store
	rec *recording
	now int64 // Unix ns
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	rec := &recording{many: map[string]bool{}}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	opts.TTL = testTTL
	opts.Start, opts.Recorder, opts.Peers = start, rec, rec
	if opts.MaxItems == 0 {
		opts.MaxItems = 1000
	}
	opts.MaxRecentSpans, opts.MaxAliases, opts.MaxOrphaned = 1<<12, 1000, 1000
	st, err := New(opts)
	require.NoError(t, err)
	return &harness{t: t, st: st, rec: rec, now: start.UnixNano()}
}

// pairingSpan returns ts as the store is told of it, at the harness's
// time (span times are milliseconds after it).
func (h *harness) pairingSpan(ts tspan, ref int) Span {
	n := ts.n
	if n == 0 {
		n = 1
	}
	sp := Span{
		Trace: tid(ts.tr), ID: sid(ts.id), Parent: sid(ts.parent), Role: ts.role, Retry: ts.retry,
		SelfPeer: ts.selfPeer, Database: ts.db, Ref: int32(ref), Edge: -1, Group: ts.group,
		Half: Half{Node: h.rec.nodes.id(ts.svc), Peer: -1, Start: h.now + ts.start*1e6, End: h.now + ts.end*1e6, N: n, Err: ts.err},
	}
	if ts.dest != "" {
		sp.Half.Peer = h.rec.nodes.id(ts.dest)
	}
	if ts.edge != "" {
		sp.Edge = h.rec.edges.id(ts.edge)
	}
	for _, l := range ts.links {
		sp.Links = append(sp.Links, SpanRef{Trace: tid(ts.tr), Span: sid(l)})
	}
	return sp
}

// send hands spans to the store as one batch and returns the refusals, by
// span.
func (h *harness) send(spans ...tspan) []error {
	h.t.Helper()
	h.st.Expire(h.now)
	h.rec.batch = spans
	defer func() { h.rec.batch = nil }()
	ps := make([]Span, len(spans))
	for i, ts := range spans {
		ps[i] = h.pairingSpan(ts, i)
		h.st.Touch(&ps[i].Trace, ps[i].ID)
	}
	for i, ts := range spans {
		ps[i].Note = h.st.Remember(&ps[i].Trace, ps[i].ID, ts.kind, ps[i].Half.Node, ts.role == RoleProducer, ps[i].Half.End, h.now)
	}
	errs := make([]error, len(spans))
	for pass := range 2 {
		for i := range ps {
			if ps[i].Note == NoteDuplicate || ps[i].Role.Caller() != (pass == 0) {
				continue
			}
			errs[i] = h.st.Consume(&ps[i], h.now)
		}
	}
	return errs
}

// sendOK sends spans as one batch; none may be refused.
func (h *harness) sendOK(spans ...tspan) {
	h.t.Helper()
	for i, err := range h.send(spans...) {
		require.NoError(h.t, err, "span %d (%s)", i, spans[i].name)
	}
}

func (h *harness) advance(d time.Duration) { h.now += int64(d) }

// expireAll lets every half-edge wait out its TTL.
func (h *harness) expireAll() {
	h.advance(testTTL + time.Second)
	h.st.Expire(h.now)
}

// events returns the events recorded so far, sorted, and forgets them.
func (h *harness) events() []string {
	ev := slices.Clone(h.rec.events)
	slices.Sort(ev)
	h.rec.events = nil
	return ev
}
