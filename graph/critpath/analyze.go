package critpath

import (
	"cmp"
	"slices"

	"github.com/seed-a49a8342/cartograph/graph"
)

// nodeSelf is the self time one trace's critical path spends on a node.
type nodeSelf struct {
	key graph.NodeKey
	ns  int64
}

// frame is a span being walked: its interval [lo, hi] clamped into its
// parent's, the point t the walk has come back to, and the next child to
// look at.
type frame struct {
	i      int32
	lo, hi int64
	t      int64
	next   int32
	last   int32 // the child whose start t is, -1 before the first
}

// analyzer walks one trace's critical path. Its buffers are reused from
// trace to trace; it is used by one goroutine at a time. After analyze
// returns true, entry, op, dur and out describe the trace.
type analyzer struct {
	index  map[graph.SpanID]int32
	parent []int32 // parent span index, -1 when not in the trace
	off    []int32 // children of i: kids[off[i]:off[i+1]]
	kids   []int32
	fill   []int32 // children placed so far, while laying them out
	self   []int64
	lead   []int64 // of self: the stretch before the first child on the path
	// retried marks the spans of an attempt that failed and was retried
	// (see retryOf), and everything below them on the path: their self
	// time is retry overhead, no node's own work.
	retried []bool
	visited []bool
	stack   []frame
	nodes   map[graph.NodeKey]int64

	t *trace // the trace being analysed, for its names

	entry graph.NodeKey // the root span's service
	op    string        // the root span's name
	dur   int64         // the root span's duration, ns
	out   []nodeSelf
	// calls are the trace's client calls (collectCalls).
	calls []callRec
}

// syncKind reports whether a child of kind k runs on its parent's request
// path. PRODUCER and CONSUMER children are asynchronous hops: the request
// does not wait for them.
func syncKind(k graph.SpanKind) bool {
	return k == graph.SpanServer || k == graph.SpanClient || k == graph.SpanInternal || k == graph.SpanUnspecified
}

func clamp(v, lo, hi int64) int64 { return min(max(v, lo), hi) }

// endAt returns the span's end, never before its start.
func (sp *span) endAt() int64 { return max(sp.end, sp.start) }

// analyze walks the critical path of a complete trace, CRISP style: from
// the root's end backwards, each span's path goes through the child that
// ends last before the point reached so far (children clamped into the
// span's interval, so clock skew cannot push time outside it), then from that
// child's start on; what no such child covers is the span's self time. An
// attempt on the path that failed and was retried (see retryOf), with
// everything below it and the wait until its retry, is retry overhead
// rather than anyone's self time. The self times on the path and the
// retry overhead add up to the root's duration exactly. A span
// naming itself as parent has none; spans in a cycle of parent links or
// sharing an id are walked at most once. It reports false when the trace
// has no usable root interval.
func (a *analyzer) analyze(t *trace) bool {
	spans := t.spans
	n := len(spans)
	if n == 0 {
		return false
	}
	a.reset(n)
	a.t = t
	defer func() { a.t = nil }()
	for i := range spans {
		if _, dup := a.index[spans[i].id]; !dup {
			a.index[spans[i].id] = int32(i)
		}
	}
	roots, root := 0, -1
	for i := range spans {
		a.parent[i] = -1
		if p := spans[i].parent; p.IsZero() {
			roots++
			if root < 0 {
				root = i
			}
		} else if j, ok := a.index[p]; ok && int(j) != i {
			a.parent[i] = j
		}
	}
	if roots != 1 {
		root = earliest(spans, func(i int) bool { return a.parent[i] < 0 })
		if root < 0 { // every span's parent is in the trace: a cycle
			root = earliest(spans, func(int) bool { return true })
		}
	}
	a.children(spans)

	r := &spans[root]
	lo, hi := r.start, r.endAt()
	if hi-lo < 0 { // overflow
		return false
	}
	a.entry = graph.NodeKey{Kind: graph.NodeService, Group: t.str(r.namespace), Name: t.str(r.service)}
	a.op = t.str(r.op)
	a.dur = hi - lo
	a.walk(spans, int32(root), lo, hi)
	a.attribute(spans)
	return true
}

func (a *analyzer) reset(n int) {
	if a.index == nil {
		a.index = make(map[graph.SpanID]int32, n)
		a.nodes = make(map[graph.NodeKey]int64)
	}
	clear(a.index)
	clear(a.nodes)
	a.parent = resize(a.parent, n)
	a.off = resize(a.off, n+1)
	a.self = resize(a.self, n)
	a.lead = resize(a.lead, n)
	a.retried = resize(a.retried, n)
	a.visited = resize(a.visited, n)
	a.stack = a.stack[:0]
	a.out = a.out[:0]
}

// resize returns a zeroed slice of length n, reusing b's storage.
func resize[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	b = b[:n]
	clear(b)
	return b
}

// earliest returns the earliest-starting span (first on ties) for which ok
// holds, or -1.
func earliest(spans []span, ok func(int) bool) int {
	best := -1
	for i := range spans {
		if ok(i) && (best < 0 || spans[i].start < spans[best].start) {
			best = i
		}
	}
	return best
}

// children lays out each span's synchronous children, latest end first.
func (a *analyzer) children(spans []span) {
	n := len(spans)
	for i := range spans {
		if p := a.parent[i]; p >= 0 && syncKind(spans[i].kind) {
			a.off[p+1]++
		}
	}
	for i := range n {
		a.off[i+1] += a.off[i]
	}
	a.kids = resize(a.kids, int(a.off[n]))
	a.fill = resize(a.fill, n)
	fill := a.fill
	for i := range spans {
		if p := a.parent[i]; p >= 0 && syncKind(spans[i].kind) {
			a.kids[a.off[p]+fill[p]] = int32(i)
			fill[p]++
		}
	}
	for i := range n {
		if k := a.kids[a.off[i]:a.off[i+1]]; len(k) > 1 {
			slices.SortFunc(k, func(x, y int32) int {
				if c := cmp.Compare(spans[y].endAt(), spans[x].endAt()); c != 0 {
					return c
				}
				return cmp.Compare(x, y)
			})
		}
	}
}

// walk accumulates the self time of each span on the critical path below
// root, whose interval is [lo, hi]. It is iterative: deep traces do not grow
// the goroutine stack.
func (a *analyzer) walk(spans []span, root int32, lo, hi int64) {
	a.visited[root] = true
	a.stack = append(a.stack, frame{i: root, lo: lo, hi: hi, t: hi, next: a.off[root], last: -1})
	for len(a.stack) > 0 {
		f := &a.stack[len(a.stack)-1]
		child := int32(-1)
		var cs, ce int64
		for f.next < a.off[f.i+1] {
			c := a.kids[f.next]
			f.next++
			if a.visited[c] {
				continue
			}
			sp := &spans[c]
			cs, ce = clamp(sp.start, f.lo, f.hi), clamp(sp.endAt(), f.lo, f.hi)
			if ce > f.t {
				continue // ran alongside the child already on the path
			}
			child = c
			break
		}
		if child < 0 {
			a.self[f.i] += f.t - f.lo
			if f.t < f.hi { // a child is on the path: this stretch came before it
				a.lead[f.i] = f.t - f.lo
			}
			a.stack = a.stack[:len(a.stack)-1]
			continue
		}
		retried := a.retried[f.i] || f.last >= 0 && a.retryOf(spans, f.i, f.last, child)
		if !retried || a.retried[f.i] { // else waiting before the retry: overhead
			a.self[f.i] += f.t - ce
		}
		f.t, f.last = cs, child
		a.visited[child] = true
		a.retried[child] = retried
		a.stack = append(a.stack, frame{i: child, lo: cs, hi: ce, t: ce, next: a.off[child], last: -1})
	}
}

// retryOf reports whether child later of parent repeats its earlier
// sibling, which failed: a CLIENT span repeating the same operation to the
// same callee (the peer it names and, when SERVER spans answer both, their
// service: HTTP client spans are often named by the method alone), a
// client retrying a call; or a SERVER span answering the same CLIENT span
// again (gRPC retry attempts: one CLIENT span answered by several SERVER
// spans).
func (a *analyzer) retryOf(spans []span, parent, later, earlier int32) bool {
	e, l := &spans[earlier], &spans[later]
	if !e.failed || e.kind != l.kind {
		return false
	}
	switch e.kind {
	case graph.SpanClient:
		if a.t.str(e.op) != a.t.str(l.op) || e.calleeKind != l.calleeKind || a.t.str(e.calleeGroup) != a.t.str(l.calleeGroup) ||
			a.t.str(e.calleeName) != a.t.str(l.calleeName) {
			return false
		}
		es, ls := a.server(spans, earlier), a.server(spans, later)
		return es < 0 || ls < 0 || a.t.str(spans[es].service) == a.t.str(spans[ls].service) &&
			a.t.str(spans[es].namespace) == a.t.str(spans[ls].namespace)
	case graph.SpanServer:
		return spans[parent].kind == graph.SpanClient
	}
	return false
}

// server returns the first SERVER span answering CLIENT span i, -1 when
// none does.
func (a *analyzer) server(spans []span, i int32) int32 {
	for _, c := range a.kids[a.off[i]:a.off[i+1]] {
		if spans[c].kind == graph.SpanServer {
			return c
		}
	}
	return -1
}

// attribute charges each span's self time to a node, except the retry
// overhead (the attempts that failed and were retried, see analyze),
// which is no node's own work and is left out of the node shares: a callee
// slow only because it fails and is called again is a retry storm's
// subject, not a bottleneck. It charges a CLIENT span's (the call's
// network and queueing, or an uninstrumented callee's work) to the
// service of the SERVER span answering it, else to the peer it names (a
// database, an external service, a messaging destination), else to the
// caller; every other span's to its own service. The exception is the
// stretch of a CLIENT span before the first of its children on the path
// when a SERVER span answers it: the request had not reached the callee
// yet (the caller waiting for a connection from its own pool, resolving,
// connecting), so it is the caller's. A callee that queues requests
// before its instrumentation starts the SERVER span shows that queueing as
// its caller's too; a clock skew between the two hosts moves time between
// them.
func (a *analyzer) attribute(spans []span) {
	for i := range spans {
		if a.self[i] <= 0 || a.retried[i] {
			continue
		}
		node, answered := a.nodeOf(spans, i)
		self := a.self[i]
		if answered && a.lead[i] > 0 {
			sp := &spans[i]
			a.nodes[graph.NodeKey{Kind: graph.NodeService, Group: a.t.str(sp.namespace), Name: a.t.str(sp.service)}] += a.lead[i]
			self -= a.lead[i]
		}
		if self > 0 {
			a.nodes[node] += self
		}
	}
	for k, ns := range a.nodes {
		a.out = append(a.out, nodeSelf{key: k, ns: ns})
	}
}

// nodeOf returns the node span i's self time is charged to, and whether
// it is a CLIENT span a SERVER span answers.
func (a *analyzer) nodeOf(spans []span, i int) (graph.NodeKey, bool) {
	sp := &spans[i]
	if sp.kind == graph.SpanClient {
		server := int32(-1)
		for _, c := range a.kids[a.off[i]:a.off[i+1]] {
			if spans[c].kind != graph.SpanServer {
				continue
			}
			if a.visited[c] {
				server = c
				break
			}
			if server < 0 {
				server = c
			}
		}
		if server >= 0 {
			return graph.NodeKey{Kind: graph.NodeService, Group: a.t.str(spans[server].namespace), Name: a.t.str(spans[server].service)}, true
		}
		if sp.calleeKind != 0 {
			return graph.NodeKey{Kind: sp.calleeKind, Group: a.t.str(sp.calleeGroup), Name: a.t.str(sp.calleeName)}, false
		}
	}
	return graph.NodeKey{Kind: graph.NodeService, Group: a.t.str(sp.namespace), Name: a.t.str(sp.service)}, false
}
