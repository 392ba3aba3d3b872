// Package diagram renders a graph.Snapshot as text an architecture
// document can embed: a Mermaid flowchart or a Graphviz DOT digraph.
//
// Both are meant to be pasted: node ids are stable (derived from the node's
// id, so the same service has the same id in every export), labels are
// escaped for the target syntax, services are grouped by namespace, each
// edge is labelled with its rate, error ratio and p95, and asynchronous
// hops through topics and queues are drawn dashed. Idle nodes and edges
// (seen lately, not in the window) are left out.
//
// The package is pure: it keeps no state and performs no I/O.
package diagram

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/seed-a49a8342/cartograph/graph"
)

// Filter selects the part of a snapshot to draw. The zero Filter draws
// everything.
type Filter struct {
	// Namespace keeps the services of that service.namespace and the
	// nodes they have an edge to or from ("" keeps all).
	Namespace string
	// Focus keeps only the node with this id and what lies within Hops
	// edges of it, either direction ("" keeps all). A focus the snapshot
	// lacks draws nothing.
	Focus string
	Hops  int
	// Hide lists node ids not drawn, with their edges.
	Hide []string
}

// view is the part of a snapshot being drawn, in the snapshot's order
// (nodes and edges sorted by id).
type view struct {
	nodes []graph.Node
	edges []graph.Edge
	ids   map[string]string // node id -> diagram id
}

// selectView applies f to s and assigns every kept node its diagram id.
func selectView(s *graph.Snapshot, f Filter) view {
	keep := make(map[string]bool, len(s.Nodes))
	for _, n := range s.Nodes {
		keep[n.ID] = true
	}
	for _, id := range f.Hide {
		delete(keep, id)
	}
	if f.Namespace != "" {
		ns := map[string]bool{}
		for _, n := range s.Nodes {
			if n.Namespace == f.Namespace && keep[n.ID] {
				ns[n.ID] = true
			}
		}
		for _, e := range s.Edges {
			if ns[e.Source] && keep[e.Target] {
				ns[e.Target] = true
			}
			if ns[e.Target] && keep[e.Source] {
				ns[e.Source] = true
			}
		}
		keep = ns
	}
	if f.Focus != "" {
		near := map[string]bool{}
		if keep[f.Focus] {
			near[f.Focus] = true
			frontier := []string{f.Focus}
			for range max(f.Hops, 0) {
				var next []string
				for _, e := range s.Edges {
					if !keep[e.Source] || !keep[e.Target] {
						continue
					}
					for _, pair := range [2][2]string{{e.Source, e.Target}, {e.Target, e.Source}} {
						if slices.Contains(frontier, pair[0]) && !near[pair[1]] {
							near[pair[1]] = true
							next = append(next, pair[1])
						}
					}
				}
				frontier = next
			}
		}
		keep = near
	}
	v := view{ids: map[string]string{}}
	used := map[string]bool{}
	for _, n := range s.Nodes {
		if !keep[n.ID] {
			continue
		}
		v.nodes = append(v.nodes, n)
		id := safeID(n.ID)
		for i := 2; used[id]; i++ { // two ids that differ only in punctuation
			id = safeID(n.ID) + "_" + strconv.Itoa(i)
		}
		used[id] = true
		v.ids[n.ID] = id
	}
	for _, e := range s.Edges {
		if keep[e.Source] && keep[e.Target] {
			v.edges = append(v.edges, e)
		}
	}
	return v
}

// safeID maps a node id ("service:shop/frontend") to an identifier both
// Mermaid and DOT take unquoted: letters, digits and '_' ("service_shop_frontend").
func safeID(id string) string {
	var b strings.Builder
	b.Grow(len(id))
	under := false
	for _, r := range id {
		ok := r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		switch {
		case ok:
			b.WriteRune(r)
			under = false
		case !under:
			b.WriteByte('_')
			under = true
		}
	}
	return strings.TrimRight(b.String(), "_")
}

// groups returns the namespaces of the kept services, sorted, and the
// nodes outside any namespace.
func (v view) groups() (names []string, members map[string][]graph.Node, loose []graph.Node) {
	members = map[string][]graph.Node{}
	for _, n := range v.nodes {
		if n.Namespace == "" {
			loose = append(loose, n)
			continue
		}
		if _, ok := members[n.Namespace]; !ok {
			names = append(names, n.Namespace)
		}
		members[n.Namespace] = append(members[n.Namespace], n)
	}
	slices.Sort(names)
	return names, members, loose
}

// nodeLabel is what a node is called on the diagram: its name, and for a
// database, topic or queue its system.
func nodeLabel(n graph.Node) string {
	name := graph.NodeKey{Kind: n.Kind, Name: n.Name}.DisplayName()
	if n.System != "" && n.Kind != graph.NodeService {
		return name + " (" + n.System + ")"
	}
	return name
}

// edgeLabel is an edge's label: protocol and consumer group when known,
// rate, error ratio and p95 (for a destination -> consumer edge with no
// consumer latency, the delay's p95).
func edgeLabel(e graph.Edge) string {
	var parts []string
	if e.Protocol != graph.ProtocolUnknown {
		parts = append(parts, e.Protocol.String())
	}
	if e.ConsumerGroup != "" {
		parts = append(parts, "group "+e.ConsumerGroup)
	}
	parts = append(parts, fmtNum(e.RatePerS)+"/s")
	parts = append(parts, fmtNum(e.ErrorRatio*100)+"% err")
	switch {
	case e.Latency != nil:
		parts = append(parts, "p95 "+fmtNum(e.Latency.P95)+" ms")
	case e.Delay != nil:
		parts = append(parts, "delay p95 "+fmtNum(e.Delay.P95)+" ms")
	}
	return strings.Join(parts, " · ")
}

// fmtNum writes v with three significant digits at most, no exponent:
// 0, 0.05, 1.23, 12.3, 123, 4560.
func fmtNum(v float64) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return "0"
	}
	a := math.Abs(v)
	prec := 0
	switch {
	case a < 0.01:
		prec = 3
	case a < 1:
		prec = 2
	case a < 10:
		prec = 2
	case a < 100:
		prec = 1
	}
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// Mermaid renders the part of s that f selects as a Mermaid flowchart
// (left to right): services grouped in a subgraph per namespace,
// databases as cylinders, topics and queues as parallelograms, external
// nodes rounded; sync edges solid, async edges dashed. Labels are quoted
// and every character Mermaid could read as syntax is written as an
// entity code (#quot;, #35;, ...).
func Mermaid(s *graph.Snapshot, f Filter) []byte {
	v := selectView(s, f)
	var b strings.Builder
	fmt.Fprintf(&b, "%%%% cartograph: %s, window %ss\n", s.GeneratedAt.UTC().Format("2006-01-02T15:04:05Z"), fmtNum(s.WindowSeconds))
	b.WriteString("flowchart LR\n")
	names, members, loose := v.groups()
	for i, ns := range names {
		fmt.Fprintf(&b, "  subgraph ns_%d[\"%s\"]\n", i+1, mermaidText(ns))
		for _, n := range members[ns] {
			b.WriteString("    ")
			mermaidNode(&b, v.ids[n.ID], n)
		}
		b.WriteString("  end\n")
	}
	for _, n := range loose {
		b.WriteString("  ")
		mermaidNode(&b, v.ids[n.ID], n)
	}
	for _, e := range v.edges {
		arrow := "-->"
		if e.Kind == graph.EdgeAsync {
			arrow = "-.->"
		}
		fmt.Fprintf(&b, "  %s %s|\"%s\"| %s\n", v.ids[e.Source], arrow, mermaidText(edgeLabel(e)), v.ids[e.Target])
	}
	return []byte(b.String())
}

func mermaidNode(b *strings.Builder, id string, n graph.Node) {
	open, closing := "[", "]"
	switch n.Kind {
	case graph.NodeDatabase:
		open, closing = "[(", ")]"
	case graph.NodeTopic, graph.NodeQueue:
		open, closing = "[/", "/]"
	case graph.NodeExternal, graph.NodeClient:
		open, closing = "(", ")"
	}
	fmt.Fprintf(b, "%s%s\"%s\"%s\n", id, open, mermaidText(nodeLabel(n)), closing)
}

// mermaidText escapes s for a quoted Mermaid label: quotes, '#' (which
// starts an entity code), angle brackets (HTML labels), brackets, braces,
// '|' (which ends an edge label) and backticks (Markdown strings) become
// entity codes; control characters become spaces.
func mermaidText(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString("#quot;")
		case '#', '<', '>', '[', ']', '{', '}', '|', '`', ';':
			fmt.Fprintf(&b, "#%d;", r)
		default:
			if r < 0x20 || r == 0x7f {
				b.WriteByte(' ')
				continue
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

// DOT renders the part of s that f selects as a Graphviz digraph (left to
// right): services in a cluster per namespace, databases as cylinders,
// topics and queues as parallelograms, external nodes as ellipses; async
// edges dashed. Every id and label is a quoted string with quotes and
// backslashes escaped.
func DOT(s *graph.Snapshot, f Filter) []byte {
	v := selectView(s, f)
	var b strings.Builder
	fmt.Fprintf(&b, "// cartograph: %s, window %ss\n", s.GeneratedAt.UTC().Format("2006-01-02T15:04:05Z"), fmtNum(s.WindowSeconds))
	b.WriteString("digraph cartograph {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n")
	names, members, loose := v.groups()
	for i, ns := range names {
		fmt.Fprintf(&b, "  subgraph cluster_%d {\n    label=%s;\n", i+1, dotString(ns))
		for _, n := range members[ns] {
			b.WriteString("    ")
			dotNode(&b, v.ids[n.ID], n)
		}
		b.WriteString("  }\n")
	}
	for _, n := range loose {
		b.WriteString("  ")
		dotNode(&b, v.ids[n.ID], n)
	}
	for _, e := range v.edges {
		style := ""
		if e.Kind == graph.EdgeAsync {
			style = ", style=dashed"
		}
		fmt.Fprintf(&b, "  %s -> %s [label=%s%s];\n", v.ids[e.Source], v.ids[e.Target], dotString(edgeLabel(e)), style)
	}
	b.WriteString("}\n")
	return []byte(b.String())
}

func dotNode(b *strings.Builder, id string, n graph.Node) {
	shape := ""
	switch n.Kind {
	case graph.NodeDatabase:
		shape = ", shape=cylinder"
	case graph.NodeTopic, graph.NodeQueue:
		shape = ", shape=parallelogram"
	case graph.NodeExternal, graph.NodeClient:
		shape = ", shape=ellipse"
	}
	fmt.Fprintf(b, "%s [label=%s%s];\n", id, dotString(nodeLabel(n)), shape)
}

// dotString quotes s as a DOT string: backslashes and quotes escaped
// (Graphviz would otherwise read \n, \l and the like as its escapes),
// control characters as spaces.
func dotString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
