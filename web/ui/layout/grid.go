package layout

import (
	"cmp"
	"math"
	"slices"
)

// Gaps of a layered grid, in points: between columns (room for edges to
// turn) and between rows.
const (
	gridGapX   = 56.0
	gridGapY   = 30.0
	gridMargin = 4.0
	// gridTop leaves room above the first row for the badges drawn on
	// top of its boxes.
	gridTop  = 24.0
	arrowLen = 10.0
)

// Grid lays g out as a layered grid, for a handful of boxes joined by
// many edges (the map's overview of groups), which dot spreads over
// ranks far wider or taller than a window: every node gets a layer, the
// longest chain of edges reaching it from a node nothing calls (edges
// that close a cycle are left out), and layers are placed left to right,
// a layer of many nodes wrapped into several columns, so that the whole
// comes as close as it can to aspect (width over height) while every
// column holds as many rows as the others at most. Nodes keep g's order
// within a layer, but for the order of the nodes calling them
// (barycentres), so that edges cross less. Edges are single Bézier curves
// from border to border, labels at their middle (no room is kept for
// them). Clusters are not drawn. It is deterministic and cheap (no
// Graphviz): the result is not cached.
func Grid(g Graph, aspect float64) *Result {
	r := &Result{Nodes: make(map[string]Point, len(g.Nodes)), Edges: make(map[string]EdgePath, len(g.Edges)), Clusters: map[string]Rect{}}
	if len(g.Nodes) == 0 {
		return r
	}
	if aspect <= 0 {
		aspect = 1.5
	}
	index := make(map[string]int, len(g.Nodes))
	for i, n := range g.Nodes {
		index[n.ID] = i
	}
	out := make([][]int, len(g.Nodes))
	for _, e := range g.Edges {
		f, ok1 := index[e.From]
		t, ok2 := index[e.To]
		if ok1 && ok2 && f != t {
			out[f] = append(out[f], t)
		}
	}
	// Edges that close a cycle (back edges of a depth-first search, from
	// the nodes in g's order) are left out of the layering.
	state := make([]uint8, len(g.Nodes)) // 0 new, 1 on the stack, 2 done
	forward := make([][]int, len(g.Nodes))
	var visit func(int)
	visit = func(v int) {
		state[v] = 1
		for _, w := range out[v] {
			switch state[w] {
			case 0:
				forward[v] = append(forward[v], w)
				visit(w)
			case 2:
				forward[v] = append(forward[v], w)
			}
		}
		state[v] = 2
	}
	for v := range g.Nodes {
		if state[v] == 0 {
			visit(v)
		}
	}
	// Longest path layering, in topological order.
	indeg := make([]int, len(g.Nodes))
	for _, ws := range forward {
		for _, w := range ws {
			indeg[w]++
		}
	}
	layer := make([]int, len(g.Nodes))
	queue := []int{}
	for v := range g.Nodes {
		if indeg[v] == 0 {
			queue = append(queue, v)
		}
	}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		for _, w := range forward[v] {
			layer[w] = max(layer[w], layer[v]+1)
			if indeg[w]--; indeg[w] == 0 {
				queue = append(queue, w)
			}
		}
	}
	layers := [][]int{}
	for v, l := range layer {
		for len(layers) <= l {
			layers = append(layers, nil)
		}
		layers[l] = append(layers[l], v)
	}
	layers = slices.DeleteFunc(layers, func(l []int) bool { return len(l) == 0 })
	// Order within layers: by the mean slot of their callers in the
	// layers before, else g's order.
	slot := make([]float64, len(g.Nodes))
	in := make([][]int, len(g.Nodes))
	for v, ws := range out {
		for _, w := range ws {
			in[w] = append(in[w], v)
		}
	}
	for li, l := range layers {
		bary := make(map[int]float64, len(l))
		for _, v := range l {
			sum, n := 0.0, 0
			for _, u := range in[v] {
				if layer[u] < layer[v] {
					sum += slot[u]
					n++
				}
			}
			bary[v] = math.Inf(1)
			if n > 0 && li > 0 {
				bary[v] = sum / float64(n)
			}
		}
		slices.SortStableFunc(l, func(a, b int) int {
			if c := cmp.Compare(bary[a], bary[b]); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
		for i, v := range l {
			slot[v] = float64(i) / float64(len(l))
		}
	}

	// Columns of at most rows nodes, one layer after the other, wrapped
	// into bands of at most perBand columns stacked top to bottom: the
	// rows and columns that bring the grid closest to aspect.
	cellW, cellH := 0.0, 0.0
	for _, n := range g.Nodes {
		cellW, cellH = max(cellW, n.Width), max(cellH, n.Height)
	}
	colW, rowH := cellW+gridGapX, cellH+gridGapY
	biggest := 0
	for _, l := range layers {
		biggest = max(biggest, len(l))
	}
	columns := func(rows int) int {
		cols := 0
		for _, l := range layers {
			cols += (len(l) + rows - 1) / rows
		}
		return cols
	}
	bestRows, bestPer, bestScale := biggest, columns(biggest), 0.0
	for rows := 1; rows <= biggest; rows++ {
		cols := columns(rows)
		for per := 1; per <= cols; per++ {
			bands := (cols + per - 1) / per
			w, h := float64(per)*colW, float64(bands*rows)*rowH
			if s := min(aspect/w, 1/h); s > bestScale*1.0001 {
				bestRows, bestPer, bestScale = rows, per, s
			}
		}
	}
	rows, perBand := bestRows, bestPer
	bandH := float64(rows) * rowH
	col := 0
	for _, l := range layers {
		for start := 0; start < len(l); start += rows {
			part := l[start:min(start+rows, len(l))]
			band, c := col/perBand, col%perBand
			top := gridTop + float64(band)*bandH + (bandH-float64(len(part))*rowH)/2
			x := gridMargin + float64(c)*colW + cellW/2
			for i, v := range part {
				r.Nodes[g.Nodes[v].ID] = Point{X: x, Y: top + float64(i)*rowH + cellH/2}
			}
			col++
		}
	}
	bands := (col + perBand - 1) / perBand
	r.Width = float64(min(col, perBand))*colW - gridGapX + 2*gridMargin
	r.Height = float64(bands)*bandH - gridGapY + gridTop + gridMargin

	size := make(map[string][2]float64, len(g.Nodes))
	for _, n := range g.Nodes {
		size[n.ID] = [2]float64{n.Width, n.Height}
	}
	for _, e := range g.Edges {
		a, okA := r.Nodes[e.From]
		b, okB := r.Nodes[e.To]
		if !okA || !okB {
			continue
		}
		r.Edges[e.ID] = curve(a, b, size[e.From], size[e.To])
	}
	return r
}

// curve is an edge from the box centred at a to the box centred at b
// (sizes sa, sb): a cubic Bézier from border to border, bent a little to
// its right so that a -> b and b -> a stay apart, its arrow's tip on b's
// border. A loop gets a small arc on a's right.
func curve(a, b Point, sa, sb [2]float64) EdgePath {
	if a == b {
		x, y := a.X+sa[0]/2, a.Y
		tip := Point{X: x, Y: y + 8}
		pts := []Point{{X: x, Y: y - 8}, {X: x + 30, Y: y - 20}, {X: x + 30, Y: y + 20}, {X: x + 2, Y: y + 10}}
		return EdgePath{Points: pts, Tip: &tip, Label: Point{X: x + 24, Y: y}}
	}
	start := border(a, b, sa)
	end := border(b, a, sb)
	dx, dy := end.X-start.X, end.Y-start.Y
	l := math.Hypot(dx, dy)
	if l < 1 {
		l = 1
	}
	ux, uy := dx/l, dy/l
	// Stop short of the border for the arrow head.
	stop := Point{X: end.X - ux*arrowLen, Y: end.Y - uy*arrowLen}
	bend := min(l/6, 40.0)
	nx, ny := -uy*bend, ux*bend
	c1 := Point{X: start.X + dx/3 + nx, Y: start.Y + dy/3 + ny}
	c2 := Point{X: start.X + 2*dx/3 + nx, Y: start.Y + 2*dy/3 + ny}
	mid := Point{X: (start.X + 3*c1.X + 3*c2.X + stop.X) / 8, Y: (start.Y + 3*c1.Y + 3*c2.Y + stop.Y) / 8}
	return EdgePath{Points: []Point{start, c1, c2, stop}, Tip: &end, Label: mid}
}

// border returns where the line from the centre c of a box of size s
// towards p leaves the box.
func border(c, p Point, s [2]float64) Point {
	dx, dy := p.X-c.X, p.Y-c.Y
	if dx == 0 && dy == 0 {
		return c
	}
	tx, ty := math.Inf(1), math.Inf(1)
	if dx != 0 {
		tx = s[0] / 2 / math.Abs(dx)
	}
	if dy != 0 {
		ty = s[1] / 2 / math.Abs(dy)
	}
	t := min(tx, ty)
	return Point{X: c.X + dx*t, Y: c.Y + dy*t}
}
