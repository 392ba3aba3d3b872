// Package layout computes layered graph layouts on the server with Graphviz
// dot (github.com/goccy/go-graphviz: Graphviz compiled to WebAssembly, no
// cgo). It returns coordinates only; drawing is the caller's job, so every
// node, edge and label can carry its own id and CSS class.
//
// A layout depends only on the topology (nodes, edges, clusters and their
// sizes), never on the figures drawn on it, and is cached by topology: the
// same graph always gets the same picture, so nodes do not jump when rates
// change.
package layout

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/goccy/go-graphviz"
)

// ErrTooLarge is returned for graphs with more nodes than Options.MaxNodes.
var ErrTooLarge = errors.New("layout: graph too large")

// Node is a box to place. Sizes are in points (1/72 inch), which the
// result's coordinates are in too.
type Node struct {
	ID            string
	Width, Height float64
	// Cluster groups nodes in a box of their own (e.g. a namespace); empty
	// for none.
	Cluster string
}

// Edge is a directed edge with a label box reserved beside it.
type Edge struct {
	ID, From, To string
	// LabelWidth and LabelHeight reserve room for a label (0: none).
	LabelWidth, LabelHeight float64
}

// Graph is the input of a layout.
type Graph struct {
	Nodes []Node
	Edges []Edge
	// RankDir, when set, is dot's rankdir for this graph instead of
	// Options.RankDir ("TB": callers on top).
	RankDir string
}

// Point is a position, origin top left, y growing down.
type Point struct{ X, Y float64 }

// Rect is a box: its top-left corner and size.
type Rect struct{ X, Y, W, H float64 }

// EdgePath is the route of an edge: a cubic B-spline as Graphviz returns it
// (start point, then three points per segment) and, when the edge has an
// arrow head, its tip.
type EdgePath struct {
	Points []Point
	Tip    *Point
	Label  Point // centre of the label box
}

// Result is a computed layout. It is immutable and shared between callers.
type Result struct {
	Width, Height float64
	Nodes         map[string]Point // centres
	Edges         map[string]EdgePath
	Clusters      map[string]Rect
	// Took is how long the layout took to compute (0 when cached).
	Took time.Duration
}

// Options configure a Layouter.
type Options struct {
	// MaxNodes refuses larger graphs with ErrTooLarge (default 600): dot's
	// time grows quickly beyond a few hundred nodes.
	MaxNodes int
	// MaxCached bounds the layouts kept (default 64), least recently used
	// dropped first.
	MaxCached int
	// RankDir is dot's rankdir (default "LR": callers on the left).
	RankDir string
	// MaxSplineEdges is the most edges a graph may have to get curved
	// routes around nodes and dot's full effort at reducing crossings
	// (default 300). Larger graphs get straight edges and a quicker
	// pass: dot's spline routing and crossing reduction take seconds to
	// minutes on a few hundred nodes with a thousand edges (BENCHMARKS.md).
	MaxSplineEdges int
}

// Layouter computes and caches layouts. Graphviz runs in one WebAssembly
// instance, so layouts are computed one at a time; it is safe for
// concurrent use. Close releases the instance.
type Layouter struct {
	o Options

	mu    sync.Mutex // serialises Graphviz and guards the cache
	gv    *graphviz.Graphviz
	cache map[[32]byte]*cacheEntry
	tick  uint64
}

type cacheEntry struct {
	r    *Result
	used uint64
}

// New returns a Layouter, starting the Graphviz instance.
func New(ctx context.Context, o Options) (*Layouter, error) {
	if o.MaxNodes <= 0 {
		o.MaxNodes = 600
	}
	if o.MaxCached <= 0 {
		o.MaxCached = 64
	}
	if o.RankDir == "" {
		o.RankDir = "LR"
	}
	if o.MaxSplineEdges <= 0 {
		o.MaxSplineEdges = 300
	}
	gv, err := graphviz.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("layout: start graphviz: %w", err)
	}
	return &Layouter{o: o, gv: gv, cache: map[[32]byte]*cacheEntry{}}, nil
}

// Close releases Graphviz.
func (l *Layouter) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gv.Close()
}

// Layout returns the layout of g, from the cache when g's topology was laid
// out before. The order of g's nodes and edges does not matter.
func (l *Layouter) Layout(ctx context.Context, g Graph) (*Result, error) {
	if len(g.Nodes) > l.o.MaxNodes {
		return nil, fmt.Errorf("%w: %d nodes, at most %d", ErrTooLarge, len(g.Nodes), l.o.MaxNodes)
	}
	g = canonical(g)
	key := keyOf(g)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tick++
	if e, ok := l.cache[key]; ok {
		e.used = l.tick
		return e.r, nil
	}
	start := time.Now()
	r, err := l.compute(ctx, g)
	if err != nil {
		return nil, err
	}
	r.Took = time.Since(start)
	if len(l.cache) >= l.o.MaxCached {
		var oldest [32]byte
		min := uint64(1<<64 - 1)
		for k, e := range l.cache {
			if e.used < min {
				oldest, min = k, e.used
			}
		}
		delete(l.cache, oldest)
	}
	l.cache[key] = &cacheEntry{r: r, used: l.tick}
	return r, nil
}

func canonical(g Graph) Graph {
	nodes := slices.Clone(g.Nodes)
	slices.SortFunc(nodes, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	edges := slices.Clone(g.Edges)
	slices.SortFunc(edges, func(a, b Edge) int { return cmp.Compare(a.ID, b.ID) })
	return Graph{Nodes: nodes, Edges: edges, RankDir: g.RankDir}
}

func keyOf(g Graph) [32]byte {
	h := sha256.New()
	fmt.Fprintf(h, "r\x00%s\x00", g.RankDir)
	for _, n := range g.Nodes {
		fmt.Fprintf(h, "n\x00%s\x00%g\x00%g\x00%s\x00", n.ID, n.Width, n.Height, n.Cluster)
	}
	for _, e := range g.Edges {
		fmt.Fprintf(h, "e\x00%s\x00%s\x00%s\x00%g\x00%g\x00", e.ID, e.From, e.To, e.LabelWidth, e.LabelHeight)
	}
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k
}

const inch = 72.0

func (l *Layouter) compute(ctx context.Context, in Graph) (*Result, error) {
	g, err := l.gv.Graph()
	if err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	defer g.Close()
	var attrErr error // the first attribute that Graphviz refused
	set := func(err error) {
		if attrErr == nil && err != nil {
			attrErr = err
		}
	}
	set(g.SafeSet("rankdir", cmp.Or(in.RankDir, l.o.RankDir), "TB"))
	// 18pt between neighbours: room for the 14pt finding badge the map
	// draws 2pt above a label.
	set(g.SafeSet("nodesep", "0.25", "0.25"))
	set(g.SafeSet("ranksep", "0.4", "0.5"))
	set(g.SafeSet("fontsize", "11", "14"))
	if len(in.Edges) <= l.o.MaxSplineEdges {
		set(g.SafeSet("mclimit", "0.5", "1"))
	} else {
		// Straight edges, a tenth of the default effort at placing nodes
		// and a hundredth at reducing crossings: 0.4 s instead of 3 s on
		// 128 nodes with 368 edges, 2 s instead of 7 minutes on 300 with
		// 936.
		set(g.SafeSet("splines", "line", ""))
		set(g.SafeSet("mclimit", "0.01", "1"))
		set(g.SafeSet("nslimit", "0.1", ""))
		set(g.SafeSet("nslimit1", "0.1", ""))
	}

	// Names inside Graphviz are indexes, so no id needs escaping.
	clusters := map[string]string{}
	var clusterNames []string
	for _, n := range in.Nodes {
		if n.Cluster != "" {
			if _, ok := clusters[n.Cluster]; !ok {
				clusters[n.Cluster] = "cluster_" + strconv.Itoa(len(clusters))
				clusterNames = append(clusterNames, n.Cluster)
			}
		}
	}
	byName := map[string]string{}
	for _, c := range clusterNames {
		byName[clusters[c]] = c
	}
	clusterOf := make(map[string]string, len(in.Nodes))
	nodeByName := make(map[string]string, len(in.Nodes))
	gvNodes := map[string]*graphviz.Node{}
	for i, n := range in.Nodes {
		parent := g
		if n.Cluster != "" {
			sub, err := g.SubGraphByName(clusters[n.Cluster])
			if err != nil || sub == nil {
				sub, err = g.CreateSubGraphByName(clusters[n.Cluster])
				if err != nil {
					return nil, fmt.Errorf("layout: cluster: %w", err)
				}
				set(sub.SafeSet("label", " ", ""))
				set(sub.SafeSet("margin", "14", ""))
			}
			parent = sub
		}
		name := "n" + strconv.Itoa(i)
		gn, err := parent.CreateNodeByName(name)
		if err != nil {
			return nil, fmt.Errorf("layout: node: %w", err)
		}
		boxNode(gn, n.Width, n.Height, set)
		clusterOf[n.ID] = n.Cluster
		nodeByName[name] = n.ID
		gvNodes[n.ID] = gn
	}
	// A labelled edge is drawn through a node of its label's size (its
	// label node): dot then keeps every label clear of every node and
	// label. dot's own edge labels do not, once clusters call each other
	// (it ranks the clusters wrongly: nodes overlap and leave their
	// cluster). The label node lies in the edge's cluster when both ends
	// share one, else outside every cluster.
	parts := make([][]int, len(in.Edges)) // Graphviz edges (by number) of each edge, in order
	labelNodes := map[string]int{}        // Graphviz name of a label node -> edge index
	edgeCount := 0
	addEdge := func(i int, from, to *graphviz.Node) (*graphviz.Edge, error) {
		name := "e" + strconv.Itoa(edgeCount)
		ge, err := g.CreateEdgeByName(name, from, to)
		if err != nil {
			return nil, fmt.Errorf("layout: edge: %w", err)
		}
		// The output lists edges in its own order (_gvid is not the order
		// of creation): the id attribute names them there.
		set(ge.SafeSet("id", name, ""))
		parts[i] = append(parts[i], edgeCount)
		edgeCount++
		return ge, nil
	}
	for i, e := range in.Edges {
		from, ok1 := gvNodes[e.From]
		to, ok2 := gvNodes[e.To]
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("layout: edge %q joins a node not in the graph", e.ID)
		}
		if e.LabelWidth <= 0 || e.From == e.To {
			ge, err := addEdge(i, from, to)
			if err != nil {
				return nil, err
			}
			if e.LabelWidth > 0 { // a loop: dot places its label beside it
				set(ge.SafeSet("label", labelText(e.LabelWidth, e.LabelHeight), ""))
			}
			continue
		}
		parent := g
		if c := clusterOf[e.From]; c != "" && c == clusterOf[e.To] {
			sub, err := g.SubGraphByName(clusters[c])
			if err != nil || sub == nil {
				return nil, fmt.Errorf("layout: cluster %q of a label: %w", c, err)
			}
			parent = sub
		}
		name := "l" + strconv.Itoa(i)
		ln, err := parent.CreateNodeByName(name)
		if err != nil {
			return nil, fmt.Errorf("layout: label node: %w", err)
		}
		boxNode(ln, e.LabelWidth, e.LabelHeight, set)
		labelNodes[name] = i
		head, err := addEdge(i, from, ln)
		if err != nil {
			return nil, err
		}
		set(head.SafeSet("arrowhead", "none", "normal"))
		if _, err := addEdge(i, ln, to); err != nil {
			return nil, err
		}
	}
	if attrErr != nil {
		return nil, fmt.Errorf("layout: graphviz attribute: %w", attrErr)
	}
	var buf bytes.Buffer
	if err := l.gv.Render(ctx, g, graphviz.Format("json0"), &buf); err != nil {
		return nil, fmt.Errorf("layout: graphviz: %w", err)
	}
	return parse(buf.Bytes(), in, parts, labelNodes, nodeByName, byName)
}

// boxNode makes gn an unlabelled box of exactly w x h points; set keeps
// the first attribute Graphviz refuses.
func boxNode(gn *graphviz.Node, w, h float64, set func(error)) {
	set(gn.SafeSet("shape", "box", "ellipse"))
	set(gn.SafeSet("fixedsize", "true", "false"))
	set(gn.SafeSet("label", "", "\\N"))
	set(gn.SafeSet("width", ftoa(w/inch), "0.75"))
	set(gn.SafeSet("height", ftoa(h/inch), "0.5"))
}

// labelText returns a placeholder label whose box Graphviz sizes to about
// w x h points: lines of "x" in its default 14pt Times (about 7pt a
// character, 17pt a line).
func labelText(w, h float64) string {
	line := strings.Repeat("x", max(1, int(w/7)))
	lines := make([]string, max(1, int(h/17+0.5)))
	for i := range lines {
		lines[i] = line
	}
	return strings.Join(lines, "\\n")
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', 3, 64) }

// parse reads Graphviz's json0 output. parts lists the Graphviz edges of
// each input edge (two, through its label node, for a labelled one);
// labelNodes names the label nodes.
func parse(b []byte, in Graph, parts [][]int, labelNodes map[string]int, nodeByName, clusterByName map[string]string) (*Result, error) {
	var out struct {
		BB      string `json:"bb"`
		Objects []struct {
			Name string `json:"name"`
			Pos  string `json:"pos"`
			BB   string `json:"bb"`
		} `json:"objects"`
		Edges []struct {
			ID  string `json:"id"`
			Pos string `json:"pos"`
			LP  string `json:"lp"`
		} `json:"edges"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("layout: graphviz output: %w", err)
	}
	bb, err := floats(out.BB, 4)
	if err != nil {
		return nil, fmt.Errorf("layout: bounding box: %w", err)
	}
	h := bb[3]
	flip := func(x, y float64) Point { return Point{X: x, Y: h - y} }
	r := &Result{Width: bb[2], Height: bb[3], Nodes: map[string]Point{}, Edges: map[string]EdgePath{}, Clusters: map[string]Rect{}}
	labelAt := map[int]Point{}
	for _, o := range out.Objects {
		if c, ok := clusterByName[o.Name]; ok && o.BB != "" {
			v, err := floats(o.BB, 4)
			if err != nil {
				return nil, err
			}
			r.Clusters[c] = Rect{X: v[0], Y: h - v[3], W: v[2] - v[0], H: v[3] - v[1]}
			continue
		}
		id, isNode := nodeByName[o.Name]
		edge, isLabel := labelNodes[o.Name]
		if !isNode && !isLabel {
			continue
		}
		v, err := floats(o.Pos, 2)
		if err != nil {
			return nil, fmt.Errorf("layout: node position: %w", err)
		}
		if isLabel {
			labelAt[edge] = flip(v[0], v[1])
			continue
		}
		r.Nodes[id] = flip(v[0], v[1])
	}
	type gvEdge struct {
		points []Point
		tip    *Point
		label  *Point
	}
	byID := make(map[int]gvEdge, len(out.Edges))
	for _, e := range out.Edges {
		var ge gvEdge
		for _, part := range strings.Fields(e.Pos) {
			switch {
			case strings.HasPrefix(part, "e,"):
				v, err := floats(part[2:], 2)
				if err != nil {
					return nil, err
				}
				tip := flip(v[0], v[1])
				ge.tip = &tip
			case strings.HasPrefix(part, "s,"):
				// start arrow: not drawn
			default:
				v, err := floats(part, 2)
				if err != nil {
					return nil, err
				}
				ge.points = append(ge.points, flip(v[0], v[1]))
			}
		}
		if e.LP != "" {
			v, err := floats(e.LP, 2)
			if err != nil {
				return nil, err
			}
			lp := flip(v[0], v[1])
			ge.label = &lp
		}
		n, err := strconv.Atoi(strings.TrimPrefix(e.ID, "e"))
		if err != nil || !strings.HasPrefix(e.ID, "e") {
			return nil, fmt.Errorf("layout: graphviz returned edge %q", e.ID)
		}
		byID[n] = ge
	}
	for i, ids := range parts {
		var p EdgePath
		for k, id := range ids {
			ge, ok := byID[id]
			if !ok || len(ge.points) == 0 {
				return nil, fmt.Errorf("layout: graphviz did not route edge %q", in.Edges[i].ID)
			}
			if k > 0 {
				// Through the label node: a straight segment from where the
				// first part ends to where the second starts.
				a, b := p.Points[len(p.Points)-1], ge.points[0]
				p.Points = append(p.Points,
					Point{X: a.X + (b.X-a.X)/3, Y: a.Y + (b.Y-a.Y)/3},
					Point{X: a.X + 2*(b.X-a.X)/3, Y: a.Y + 2*(b.Y-a.Y)/3})
			}
			p.Points = append(p.Points, ge.points...)
			p.Tip = ge.tip
			if ge.label != nil {
				p.Label = *ge.label
			}
		}
		if lp, ok := labelAt[i]; ok {
			p.Label = lp
		} else if p.Label == (Point{}) && len(p.Points) > 0 {
			p.Label = p.Points[len(p.Points)/2]
		}
		r.Edges[in.Edges[i].ID] = p
	}
	return r, nil
}

func floats(s string, n int) ([]float64, error) {
	parts := strings.Split(s, ",")
	if len(parts) != n {
		return nil, fmt.Errorf("layout: %q: want %d numbers", s, n)
	}
	v := make([]float64, n)
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return nil, fmt.Errorf("layout: %q: %w", s, err)
		}
		v[i] = f
	}
	return v, nil
}
