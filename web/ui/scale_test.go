package ui

import (
	"cmp"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/lag"
	"github.com/seed-a49a8342/cartograph/web/ui/layout/layouttest"
)

// The map at scale: a graph of hundreds of services, as the UI's Source
// serves it, drawn through the UI's handler and checked on the SVG a
// browser receives (benchmarks of the same graphs are in bench_test.go).

var namespaceNames = []string{
	"checkout", "payments", "catalog", "search", "identity", "shipping", "inventory", "pricing",
	"notifications", "analytics", "reviews", "recommendations", "ads", "fraud", "loyalty",
	"support", "media", "billing", "accounts", "orders",
}

// scaleSnapshot returns a deterministic graph of the given number of
// services shaped like a real system: namespaces of about 50 services, in
// layers (edge-facing domains call core ones, which call platform ones),
// each depending on two to four others and each with a gateway that
// browser and mobile clients or other namespaces call; calls mostly within
// a namespace (to later services: call graphs are mostly layered), some
// across to a namespace it depends on, a few the other way; databases
// owned by a namespace; Kafka topics and RabbitMQ queues produced in one
// namespace and consumed in others (some consumers lagging); a few
// external APIs.
func scaleSnapshot(services int) *graph.Snapshot {
	rnd := rand.New(rand.NewPCG(uint64(services), 7))
	s := &graph.Snapshot{GeneratedAt: now, WindowSeconds: 60}
	nsCount := max(1, (services+25)/50)
	type svc struct{ id, ns string }
	var svcs []svc
	byNS := make([][]svc, nsCount)
	nsName := func(i int) string {
		n := namespaceNames[i%len(namespaceNames)]
		if i >= len(namespaceNames) {
			n += "-" + strconv.Itoa(i/len(namespaceNames)+1)
		}
		return n
	}
	for i := range services {
		ns := i % nsCount
		name := fmt.Sprintf("%s-svc-%03d", nsName(ns), len(byNS[ns]))
		if len(byNS[ns]) == 0 {
			name = nsName(ns) + "-gateway"
		}
		id := graph.NodeKey{Kind: graph.NodeService, Group: nsName(ns), Name: name}.ID()
		s.Nodes = append(s.Nodes, graph.Node{ID: id, Kind: graph.NodeService, Name: name, Namespace: nsName(ns)})
		svcs = append(svcs, svc{id, nsName(ns)})
		byNS[ns] = append(byNS[ns], svc{id, nsName(ns)})
	}
	// deps[i] are the namespaces namespace i calls: mostly later ones.
	deps := make([][]int, nsCount)
	for i := range deps {
		for range 2 + rnd.IntN(3) {
			switch {
			case i+1 < nsCount && rnd.IntN(10) > 0:
				deps[i] = append(deps[i], i+1+rnd.IntN(min(nsCount-i-1, 6)))
			case i > 0:
				deps[i] = append(deps[i], rnd.IntN(i))
			}
		}
	}
	seen := map[string]bool{}
	edge := func(src, dst string, kind graph.EdgeKind, proto graph.Protocol, group string) *graph.Edge {
		id := graph.EdgeID(src, dst, proto, group)
		if src == dst || seen[id] {
			return nil
		}
		seen[id] = true
		rate := math.Round(math.Exp(rnd.NormFloat64()*1.2+2)*100) / 100
		req := uint64(rate * s.WindowSeconds)
		errRatio := 0.0
		switch p := rnd.Float64(); {
		case p < 0.03:
			errRatio = 0.05 + rnd.Float64()*0.2
		case p < 0.10:
			errRatio = 0.01 + rnd.Float64()*0.03
		case p < 0.6:
			errRatio = rnd.Float64() * 0.005
		}
		errs := uint64(float64(req) * errRatio)
		p50 := math.Round((1+rnd.ExpFloat64()*20)*10) / 10
		e := graph.Edge{
			ID: id, Source: src, Target: dst, Kind: kind, Protocol: proto, ConsumerGroup: group,
			Requests: req, RatePerS: rate, Errors: errs, ErrorRatio: float64(errs) / float64(max(req, 1)),
			Latency: &graph.Quantiles{P50: p50, P95: p50 * 3, P99: p50 * 5},
		}
		if kind == graph.EdgeAsync {
			e.Latency = nil
			if group != "" && rnd.IntN(10) == 0 {
				e.Lag = &graph.Lag{Messages: f64(float64(rnd.IntN(50_000))), Seconds: f64(float64(rnd.IntN(900))), Status: lag.StateWarning, UpdatedAt: now}
			}
		}
		s.Edges = append(s.Edges, e)
		return &s.Edges[len(s.Edges)-1]
	}
	// Clients call the first gateways.
	for i, c := range []string{"web", "mobile"} {
		id := graph.NodeKey{Kind: graph.NodeClient, Name: c}.ID()
		s.Nodes = append(s.Nodes, graph.Node{ID: id, Kind: graph.NodeClient, Name: c})
		for ns := i; ns < nsCount; ns += 3 {
			edge(id, byNS[ns][0].id, graph.EdgeSync, graph.ProtocolHTTP, "")
		}
	}
	// Calls: each service calls one to three others, 85% in its namespace,
	// else a namespace it depends on (its gateway, now and then any
	// service there).
	for ns, list := range byNS {
		for i, from := range list {
			for range 1 + rnd.IntN(3) {
				var to svc
				switch {
				case (rnd.IntN(20) >= 3 || len(deps[ns]) == 0) && i+1 < len(list):
					to = list[i+1+rnd.IntN(len(list)-i-1)]
				case len(deps[ns]) > 0:
					dep := byNS[deps[ns][rnd.IntN(len(deps[ns]))]]
					to = dep[0]
					if rnd.IntN(4) == 0 {
						to = dep[rnd.IntN(len(dep))]
					}
				default:
					continue
				}
				proto := graph.ProtocolGRPC
				if rnd.IntN(3) == 0 {
					proto = graph.ProtocolHTTP
				}
				edge(from.id, to.id, graph.EdgeSync, proto, "")
			}
		}
	}
	// Databases: about one per eight services, each used by one to four
	// services of its namespace.
	systems := []string{"postgresql", "mysql", "redis", "mongodb"}
	for i := range max(1, services*12/100) {
		ns := i % nsCount
		sys := systems[rnd.IntN(len(systems))]
		name := fmt.Sprintf("%s-db-%02d", nsName(ns), i/nsCount)
		id := graph.NodeKey{Kind: graph.NodeDatabase, Group: sys, Name: name}.ID()
		s.Nodes = append(s.Nodes, graph.Node{ID: id, Kind: graph.NodeDatabase, Name: name, System: sys})
		for range 1 + rnd.IntN(4) {
			edge(byNS[ns][rnd.IntN(len(byNS[ns]))].id, id, graph.EdgeSync, graph.ProtocolDB, "")
		}
	}
	// Topics and queues: produced in one namespace, consumed by one to three
	// consumer groups anywhere.
	dest := func(kind graph.NodeKind, sys string, proto graph.Protocol, n int) {
		for i := range n {
			ns := rnd.IntN(nsCount)
			name := fmt.Sprintf("%s.events.%02d", nsName(ns), i)
			id := graph.NodeKey{Kind: kind, Group: sys, Name: name}.ID()
			s.Nodes = append(s.Nodes, graph.Node{ID: id, Kind: kind, Name: name, System: sys})
			for range 1 + rnd.IntN(2) {
				edge(byNS[ns][rnd.IntN(len(byNS[ns]))].id, id, graph.EdgeAsync, proto, "")
			}
			for range 1 + rnd.IntN(3) {
				cns := byNS[rnd.IntN(nsCount)]
				c := cns[rnd.IntN(len(cns))]
				edge(id, c.id, graph.EdgeAsync, proto, strings.TrimPrefix(c.id, "service:"))
			}
		}
	}
	dest(graph.NodeTopic, "kafka", graph.ProtocolKafka, max(1, services*8/100))
	dest(graph.NodeQueue, "rabbitmq", graph.ProtocolRabbitMQ, max(1, services*2/100))
	// External APIs, called by a few services each.
	for i := range max(2, services/100) {
		name := fmt.Sprintf("api-%02d.partner.example", i)
		id := graph.NodeKey{Kind: graph.NodeExternal, Name: name}.ID()
		s.Nodes = append(s.Nodes, graph.Node{ID: id, Kind: graph.NodeExternal, Name: name})
		for range 1 + rnd.IntN(3) {
			edge(svcs[rnd.IntN(len(svcs))].id, id, graph.EdgeSync, graph.ProtocolHTTP, "")
		}
	}
	slices.SortFunc(s.Nodes, func(a, b graph.Node) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(s.Edges, func(a, b graph.Edge) int { return strings.Compare(a.ID, b.ID) })
	return s
}

// scaleFindings returns a few findings on the busiest edges and a database.
func scaleFindings(s *graph.Snapshot) []finding.Finding {
	edges := slices.Clone(s.Edges)
	slices.SortFunc(edges, func(a, b graph.Edge) int { return cmp.Compare(b.RatePerS, a.RatePerS) })
	var out []finding.Finding
	for i, e := range edges[:min(4, len(edges))] {
		out = append(out, finding.Finding{ID: "rs" + strconv.Itoa(i), Kind: finding.KindRetryStorm, State: finding.StateFiring, Severity: finding.SeverityWarning,
			Subject: finding.Subject{EdgeID: e.ID}, Summary: "retries on " + e.ID, StartedAt: now.Add(-time.Minute)})
	}
	for _, n := range s.Nodes {
		if n.Kind == graph.NodeDatabase {
			out = append(out, finding.Finding{ID: "bn", Kind: finding.KindBottleneck, State: finding.StatePending, Severity: finding.SeverityCritical,
				Subject: finding.Subject{NodeID: n.ID}, Summary: n.Name + " is most of the critical path", StartedAt: now})
			break
		}
	}
	return out
}

// box is a rectangle drawn on the map.
type box = layouttest.Box

// drawnMap is what the map's SVG draws, read back from a page.
type drawnMap struct {
	Width, Height float64 // the svg element's size
	ViewBox       box
	Topology      string
	Nodes         []box // node shapes, by data-node
	Kinds         map[string]string
	Clusters      []box // namespace boxes, by name
	Labels        []box // edge label boxes, by data-edge (drawn ones)
	Edges         int
	HoverEdges    int // edges whose label shows on hover only
}

// parseMap reads the map's SVG out of an HTML page. A node's box is the
// union of its shapes' outlines (rect, polygon, path), as drawn.
func parseMap(page string) (*drawnMap, error) {
	i := strings.Index(page, `<svg id="map"`)
	if i < 0 {
		return nil, errors.New("no map svg on the page")
	}
	j := strings.Index(page[i:], "</svg>")
	if j < 0 {
		return nil, errors.New("map svg not closed")
	}
	d := xml.NewDecoder(strings.NewReader(page[i : i+j+len("</svg>")]))
	d.Strict = true
	m := &drawnMap{Kinds: map[string]string{}}
	type open struct {
		kind string // node, cluster, edge or ""
		id   string
		b    *bounds
	}
	var stack []open
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("map svg: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			a := attrs(t)
			class := strings.Fields(a["class"])
			var top open
			if len(stack) > 0 {
				top = stack[len(stack)-1]
			}
			switch {
			case t.Name.Local == "svg":
				var err error
				if m.Width, err = strconv.ParseFloat(a["width"], 64); err != nil {
					return nil, fmt.Errorf("svg width: %w", err)
				}
				if m.Height, err = strconv.ParseFloat(a["height"], 64); err != nil {
					return nil, fmt.Errorf("svg height: %w", err)
				}
				vb, err := numbers(a["viewBox"])
				if err != nil || len(vb) != 4 {
					return nil, fmt.Errorf("svg viewBox %q", a["viewBox"])
				}
				m.ViewBox = box{X: vb[0], Y: vb[1], W: vb[2], H: vb[3]}
				m.Topology = a["data-topology"]
			case t.Name.Local == "g" && slices.Contains(class, "node"):
				top = open{kind: "node", id: a["data-node"], b: &bounds{}}
				m.Kinds[a["data-node"]] = strings.TrimPrefix(class[1], "k-")
			case t.Name.Local == "g" && slices.Contains(class, "cluster"):
				top = open{kind: "cluster", id: a["id"], b: &bounds{}}
			case t.Name.Local == "g" && slices.Contains(class, "edge"):
				top = open{kind: "edge", id: a["data-edge"]}
				m.Edges++
				if slices.Contains(class, "hover-label") {
					top.kind = "hover-edge" // its label is not drawn but on hover
					m.HoverEdges++
				}
			case t.Name.Local == "g" && slices.Contains(class, "elabel") && top.kind == "edge":
				top = open{kind: "elabel", id: top.id, b: &bounds{}}
			case top.kind == "node" && slices.Contains(class, "shape"),
				top.kind == "cluster" && t.Name.Local == "rect",
				top.kind == "elabel" && t.Name.Local == "rect":
				if err := top.b.addShape(t.Name.Local, a); err != nil {
					return nil, fmt.Errorf("%s %s: %w", top.kind, top.id, err)
				}
			}
			stack = append(stack, top)
		case xml.EndElement:
			o := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			parent := open{}
			if len(stack) > 0 {
				parent = stack[len(stack)-1]
			}
			if o.b == nil || o.b == parent.b {
				continue
			}
			if !o.b.ok {
				return nil, fmt.Errorf("%s %s: no shape", o.kind, o.id)
			}
			b := o.b.box(o.id)
			switch o.kind {
			case "node":
				m.Nodes = append(m.Nodes, b)
			case "cluster":
				m.Clusters = append(m.Clusters, b)
			case "elabel":
				m.Labels = append(m.Labels, b)
			}
		}
	}
	return m, nil
}

func attrs(t xml.StartElement) map[string]string {
	m := make(map[string]string, len(t.Attr))
	for _, a := range t.Attr {
		m[a.Name.Local] = a.Value
	}
	return m
}

// bounds accumulates a bounding box.
type bounds struct {
	ok                     bool
	minX, minY, maxX, maxY float64
}

func (b *bounds) add(x, y float64) {
	if !b.ok {
		*b = bounds{ok: true, minX: x, minY: y, maxX: x, maxY: y}
		return
	}
	b.minX, b.maxX = min(b.minX, x), max(b.maxX, x)
	b.minY, b.maxY = min(b.minY, y), max(b.maxY, y)
}

func (b *bounds) box(id string) box {
	return box{ID: id, X: b.minX, Y: b.minY, W: b.maxX - b.minX, H: b.maxY - b.minY}
}

// addShape adds the outline of an SVG rect, polygon or path (absolute M, L,
// H, V, C, A and Z commands, as the map draws them).
func (b *bounds) addShape(elem string, a map[string]string) error {
	switch elem {
	case "rect":
		v, err := numbers(a["x"] + " " + a["y"] + " " + a["width"] + " " + a["height"])
		if err != nil || len(v) != 4 {
			return fmt.Errorf("rect %v", a)
		}
		b.add(v[0], v[1])
		b.add(v[0]+v[2], v[1]+v[3])
	case "polygon":
		v, err := numbers(a["points"])
		if err != nil || len(v) < 6 || len(v)%2 != 0 {
			return fmt.Errorf("polygon %q", a["points"])
		}
		for i := 0; i < len(v); i += 2 {
			b.add(v[i], v[i+1])
		}
	case "path":
		return b.addPath(a["d"])
	default:
		return fmt.Errorf("shape <%s> not understood", elem)
	}
	return nil
}

func (b *bounds) addPath(d string) error {
	// Split into commands: a letter and the numbers after it.
	var x, y float64
	rest := strings.TrimSpace(d)
	for rest != "" {
		cmd := rest[0]
		rest = rest[1:]
		end := strings.IndexFunc(rest, func(r rune) bool { return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' })
		if end < 0 {
			end = len(rest)
		}
		v, err := numbers(rest[:end])
		if err != nil {
			return fmt.Errorf("path %q: %w", d, err)
		}
		rest = strings.TrimSpace(rest[end:])
		want := map[byte]int{'M': 2, 'L': 2, 'H': 1, 'V': 1, 'C': 6, 'A': 7, 'Z': 0}[cmd]
		if _, known := map[byte]bool{'M': true, 'L': true, 'H': true, 'V': true, 'C': true, 'A': true, 'Z': true}[cmd]; !known || (want > 0 && (len(v) == 0 || len(v)%want != 0)) || (want == 0 && len(v) != 0) {
			return fmt.Errorf("path %q: command %c with %d numbers not understood", d, cmd, len(v))
		}
		for k := 0; k+want <= len(v) && want > 0; k += want {
			p := v[k : k+want]
			switch cmd {
			case 'M', 'L':
				x, y = p[0], p[1]
			case 'H':
				x = p[0]
			case 'V':
				y = p[0]
			case 'C':
				// A cubic Bézier lies inside its control points' hull.
				b.add(p[0], p[1])
				b.add(p[2], p[3])
				x, y = p[4], p[5]
			case 'A':
				if err := b.addArc(x, y, p); err != nil {
					return fmt.Errorf("path %q: %w", d, err)
				}
				x, y = p[5], p[6]
			}
			b.add(x, y)
		}
	}
	return nil
}

// addArc adds the points of an elliptical arc from (x1, y1) (SVG 1.1
// F.6.5, for arcs without rotation).
func (b *bounds) addArc(x1, y1 float64, p []float64) error {
	rx, ry, rot, large, sweep, x2, y2 := math.Abs(p[0]), math.Abs(p[1]), p[2], p[3] != 0, p[4] != 0, p[5], p[6]
	if rot != 0 {
		return errors.New("rotated arcs not understood")
	}
	if rx == 0 || ry == 0 {
		b.add(x2, y2)
		return nil
	}
	dx, dy := (x1-x2)/2, (y1-y2)/2
	if l := dx*dx/(rx*rx) + dy*dy/(ry*ry); l > 1 {
		rx, ry = rx*math.Sqrt(l), ry*math.Sqrt(l)
	}
	num := rx*rx*ry*ry - rx*rx*dy*dy - ry*ry*dx*dx
	den := rx*rx*dy*dy + ry*ry*dx*dx
	c := math.Sqrt(max(0, num/den))
	if large == sweep {
		c = -c
	}
	cx, cy := c*rx*dy/ry+(x1+x2)/2, -c*ry*dx/rx+(y1+y2)/2
	angle := func(ux, uy float64) float64 { return math.Atan2(uy, ux) }
	t1 := angle((dx)/rx, (dy)/ry)
	t2 := angle((-dx)/rx, (-dy)/ry)
	dt := t2 - t1
	if sweep && dt < 0 {
		dt += 2 * math.Pi
	}
	if !sweep && dt > 0 {
		dt -= 2 * math.Pi
	}
	const steps = 64
	for i := 0; i <= steps; i++ {
		t := t1 + dt*float64(i)/steps
		b.add(cx+rx*math.Cos(t), cy+ry*math.Sin(t))
	}
	return nil
}

// numbers reads numbers separated by spaces and commas.
func numbers(s string) ([]float64, error) {
	f := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\n' || r == '\t' })
	v := make([]float64, 0, len(f))
	for _, x := range f {
		n, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return nil, err
		}
		v = append(v, n)
	}
	return v, nil
}

func TestMapParserFindsOverlaps(t *testing.T) {
	// Every node shape, drawn by the map's own components: two pairs that
	// overlap (a database and a service; a topic and a collapsed namespace)
	// and a queue that touches the service without overlapping it.
	m := &mapModel{W: 1000, H: 400, Topology: "t", Nodes: []mapNode{
		{ID: "database:pg/a", DOMID: "n-1", Kind: "database", X: 100, Y: 100, Href: "/node?id=a"},
		{ID: "service:x/b", DOMID: "n-2", Kind: "service", X: 100 + nodeW - 10, Y: 100 + nodeH - 10, Href: "/node?id=b"},
		{ID: "queue:r/c", DOMID: "n-3", Kind: "queue", X: 100 + 2*nodeW - 10, Y: 100 + nodeH - 10, Href: "/node?id=c"},
		{ID: "topic:k/d", DOMID: "n-4", Kind: "topic", X: 600, Y: 300, Href: "/node?id=d"},
		{ID: "namespace:e", DOMID: "n-5", Kind: "namespace", X: 600, Y: 300 - nodeH - 1, Expand: "/?expand=e", Members: 3}, // only its frame overlaps
		{ID: "client:f", DOMID: "n-6", Kind: "client", X: 900, Y: 50, Href: "/node?id=f"},
	}}
	dm, err := parseMap(renderString(context.Background(), mapSVG(m)))
	require.NoError(t, err)
	require.Len(t, dm.Nodes, len(m.Nodes))
	byID := map[string]box{}
	for _, b := range dm.Nodes {
		byID[b.ID] = b
	}
	require.InDelta(t, nodeW, byID["service:x/b"].W, 0.01)
	require.InDelta(t, nodeH, byID["database:pg/a"].H, 0.2, "a cylinder's arcs reach the node's box: %v", byID["database:pg/a"])
	require.InDelta(t, nodeH+6, byID["namespace:e"].H, 0.01, "a namespace's outer frame counts")
	var pairs []string
	for _, p := range layouttest.Overlaps(dm.Nodes) {
		ids := []string{p[0].ID, p[1].ID}
		slices.Sort(ids)
		pairs = append(pairs, strings.Join(ids, " & "))
	}
	slices.Sort(pairs)
	require.Equal(t, []string{"database:pg/a & service:x/b", "namespace:e & topic:k/d"}, pairs)

	require.False(t, layouttest.Overlap(box{X: 0, Y: 0, W: 10, H: 10}, box{X: 10, Y: 0, W: 10, H: 10}), "touching is not overlapping")
	require.True(t, layouttest.Overlap(box{X: 0, Y: 0, W: 10, H: 10}, box{X: 9.5, Y: 9.5, W: 10, H: 10}))
	require.True(t, layouttest.Overlap(box{X: 0, Y: 0, W: 100, H: 100}, box{X: 10, Y: 10, W: 5, H: 5}), "inside is overlapping")
}

// readableSize checks a map is of a size a browser scrolls (at full size:
// the page fits it to the window by default) and not mostly empty.
func readableSize(t *testing.T, m *drawnMap) {
	t.Helper()
	require.LessOrEqual(t, m.Width, 10_000.0, "too wide to read")
	require.LessOrEqual(t, m.Height, 10_000.0, "too tall to read")
	require.LessOrEqual(t, m.Width*m.Height/float64(len(m.Nodes)), 60*nodeW*nodeH, "mostly empty space")
}

// scaleCase is a graph of many services and what the map of it should
// show.
type scaleCase struct {
	snap         *graph.Snapshot
	namespaces   []string
	unspaced     int               // nodes outside any namespace
	perNamespace map[string]int    // nodes drawn in it: services and those it owns
	owner        map[string]string // database, topic or queue -> the one namespace of all its services
}

func newScaleCase(services int) scaleCase {
	c := scaleCase{snap: scaleSnapshot(services), perNamespace: map[string]int{}, owner: map[string]string{}}
	byID := map[string]graph.Node{}
	for _, n := range c.snap.Nodes {
		byID[n.ID] = n
	}
	// A database, topic or queue all of whose neighbours are services of
	// one namespace is drawn in that namespace.
	neighbours := map[string][]graph.Node{}
	for _, e := range c.snap.Edges {
		neighbours[e.Source] = append(neighbours[e.Source], byID[e.Target])
		neighbours[e.Target] = append(neighbours[e.Target], byID[e.Source])
	}
	for _, n := range c.snap.Nodes {
		if n.Kind != graph.NodeDatabase && n.Kind != graph.NodeTopic && n.Kind != graph.NodeQueue {
			continue
		}
		ns := neighbours[n.ID][0].Namespace
		if !slices.ContainsFunc(neighbours[n.ID], func(o graph.Node) bool { return o.Kind != graph.NodeService || o.Namespace != ns }) {
			c.owner[n.ID] = ns
		}
	}
	for _, n := range c.snap.Nodes {
		ns := cmp.Or(n.Namespace, c.owner[n.ID])
		if ns == "" {
			c.unspaced++
			continue
		}
		if c.perNamespace[ns] == 0 {
			c.namespaces = append(c.namespaces, ns)
		}
		c.perNamespace[ns]++
	}
	slices.Sort(c.namespaces)
	return c
}

// TestMap500Services draws a graph of more nodes than the map draws
// whole: it opens at the overview, one box per namespace (and one for
// the clients), and a click on a namespace opens it.
func TestMap500Services(t *testing.T) {
	c := newScaleCase(500)
	require.Len(t, c.namespaces, 10)
	require.Greater(t, len(c.snap.Nodes), 600, "more nodes than the UI draws by default")
	src := &fixedSource{snap: c.snap, findings: scaleFindings(c.snap)}
	u := newTestUI(t, src)

	t.Run("overview", func(t *testing.T) {
		m, body := readMap(t, u, "/")
		require.Contains(t, body, fmt.Sprintf("%d nodes in %d groups by namespace: the overview", len(c.snap.Nodes), len(c.namespaces)+1))
		require.NotContains(t, body, "quieter nodes not drawn")
		require.Empty(t, m.Clusters, "no group is open")
		var ns []string
		for id, k := range m.Kinds {
			require.Equal(t, "group", k, "%s drawn outside a group", id)
			if g := strings.TrimPrefix(id, groupIDPrefix); g != "(clients)" {
				ns = append(ns, g)
			}
		}
		slices.Sort(ns)
		require.Equal(t, c.namespaces, ns, "one box per namespace, and the clients'")
		require.Positive(t, m.Edges)
		require.Contains(t, body, `class="stat"`, "each box with its figures")
		t.Logf("overview: %d boxes, %d edges, %.0f x %.0f pt, %d KB page", len(m.Nodes), m.Edges, m.Width, m.Height, len(body)>>10)
		labelsClear(t, m)
	})

	t.Run("one namespace open", func(t *testing.T) {
		open := c.namespaces[3]
		m, body := readMap(t, u, "/?expand="+open)
		require.Contains(t, body, "namespace "+open+" open, with the groups it talks to")
		require.Contains(t, body, `id="overview-link"`, "the way back")
		require.Len(t, m.Clusters, 1)
		require.Equal(t, domID("c-", open), m.Clusters[0].ID)
		cl := m.Clusters[0]
		services, boxes := 0, 0
		for _, n := range m.Nodes {
			switch {
			case m.Kinds[n.ID] == "group":
				boxes++
				require.NotEqual(t, groupID(open), n.ID)
				require.False(t, layouttest.Overlap(cl, n), "%v inside the open namespace %v", n, cl)
			default:
				require.True(t, layouttest.Contains(cl, n), "%v outside the open namespace %v", n, cl)
				if strings.HasPrefix(n.ID, "service:") {
					require.True(t, strings.HasPrefix(n.ID, "service:"+open+"/"), n.ID)
					services++
				}
			}
		}
		require.Equal(t, 50, services, "every service of the namespace")
		require.Positive(t, boxes, "the namespaces it talks to, as boxes")
		require.Less(t, boxes, len(c.namespaces)+1)
		t.Logf("open: %d nodes (%d boxes), %d edges, %.0f x %.0f pt, %d KB page", len(m.Nodes), boxes, m.Edges, m.Width, m.Height, len(body)>>10)
		labelsClear(t, m)
		readableSize(t, m)
	})
}

// TestMapNamespacesOpen draws a graph just under the size that collapses
// namespaces: every namespace is a box around its services.
func TestMapNamespacesOpen(t *testing.T) {
	c := newScaleCase(200)
	require.Len(t, c.namespaces, 4)
	require.Less(t, len(c.snap.Nodes), 300)
	u := newTestUI(t, &fixedSource{snap: c.snap, findings: scaleFindings(c.snap)})
	m, body := readMap(t, u, "/")
	require.NotContains(t, body, "namespaces collapsed")
	require.Len(t, m.Nodes, len(c.snap.Nodes))
	require.Len(t, m.Clusters, len(c.namespaces))
	namespacesBoxed(t, m, c, c.perNamespace)
	t.Logf("%d nodes, %d edges, %.0f x %.0f pt, %d KB page", len(m.Nodes), m.Edges, m.Width, m.Height, len(body)>>10)
	labelsClear(t, m)
	readableSize(t, m)
}

// labelsClear checks every edge has a label and none covers a node or
// another label.
func labelsClear(t *testing.T, m *drawnMap) {
	t.Helper()
	require.Len(t, m.Labels, m.Edges-m.HoverEdges, "every edge labelled (but those labelled on hover)")
	require.Empty(t, layouttest.CrossOverlaps(m.Labels, m.Nodes), "labels over nodes")
	require.Empty(t, layouttest.Overlaps(m.Labels), "labels over labels")
}

// readMap renders a map page through the handler and checks what every
// readable map must be: no node overlaps another, everything inside the
// picture, drawn at full size.
func readMap(t *testing.T, u *UI, target string) (*drawnMap, string) {
	t.Helper()
	code, _, body := get(t, u, target)
	require.Equal(t, http.StatusOK, code, body)
	m, err := parseMap(body)
	require.NoError(t, err)
	require.Empty(t, layouttest.Overlaps(m.Nodes), "overlapping nodes")
	require.InDelta(t, m.ViewBox.W, m.Width, 0.5, "drawn at full size")
	require.InDelta(t, m.ViewBox.H, m.Height, 0.5, "drawn at full size")
	require.Positive(t, m.Width)
	require.Positive(t, m.Height)
	for _, b := range slices.Concat(m.Nodes, m.Clusters, m.Labels) {
		require.True(t, layouttest.Contains(m.ViewBox, b), "%v outside the picture %v", b, m.ViewBox)
	}
	return m, body
}

// namespacesBoxed checks that the services of each open namespace (name:
// count of its services and the nodes it owns) and the nodes it owns lie
// inside its box and nothing else does.
func namespacesBoxed(t *testing.T, m *drawnMap, c scaleCase, open map[string]int) {
	t.Helper()
	for ns, want := range open {
		i := slices.IndexFunc(m.Clusters, func(b box) bool { return b.ID == domID("c-", ns) })
		require.GreaterOrEqual(t, i, 0, "no box for namespace %s", ns)
		cl := m.Clusters[i]
		inside := 0
		for _, n := range m.Nodes {
			if strings.HasPrefix(n.ID, "service:"+ns+"/") || c.owner[n.ID] == ns {
				inside++
				require.True(t, layouttest.Contains(cl, n), "%v outside the box of its namespace %s %v", n, ns, cl)
			} else {
				require.False(t, layouttest.Overlap(cl, n), "%v inside the box of namespace %s %v", n, ns, cl)
			}
		}
		require.Equal(t, want, inside, "nodes of %s", ns)
	}
}
