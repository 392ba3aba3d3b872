package ui

import (
	"cmp"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/web/ui/layout"
)

// Layouter places a graph's nodes and routes its edges.
type Layouter interface {
	Layout(ctx context.Context, g layout.Graph) (*layout.Result, error)
}

// Sizes of what the map draws, in SVG user units (points).
const (
	nodeW, nodeH = 168.0, 46.0
	// groupW and groupH are a group's box on the overview: its kind, name
	// and figures on three lines.
	groupW, groupH = 256.0, 64.0
	labelW, labelH = 172.0, 28.0
	// subjectEdgeWidth is the least width of a finding's edge: it stands
	// out from the busiest healthy edge at any scale.
	subjectEdgeWidth = 7.0
)

// mapModel is the map page's picture: everything placed, ready to draw.
type mapModel struct {
	W, H     float64
	Nodes    []mapNode
	Edges    []mapEdge
	Clusters []mapCluster
	// Notes say what the map leaves out or changed on its own.
	Notes []string
	// Empty says the graph has no nodes (yet).
	Empty bool
	// Topology identifies the layout: when it changes, the whole map is
	// redrawn; otherwise only changed nodes and edges are sent.
	Topology string
	// Firing is how many findings the marking was drawn for (firing ones,
	// or the one the incident view names); Incident says the map is the
	// incident view: only what they touch is drawn.
	Firing   int
	Incident bool
	// Overview says the map is the overview of groups; Drilled that it
	// is a drill-in: groups open, with the groups around them.
	Overview, Drilled bool
	// Marks are the Review page's markers: the observations on each
	// subject drawn.
	Marks []reviewMark
}

type mapCluster struct {
	DOMID, Name string
	X, Y, W, H  float64
	Href        string // collapses it (a namespace) or closes it (an open group)
	Title       string
}

type mapNode struct {
	ID, DOMID, Name, Kind, Namespace, System string
	Owner, Environment                       string
	X, Y                                     float64
	// Members is the number of nodes a collapsed namespace or a group
	// box stands for; Stat is a group box's figures, GroupKind what its
	// group is ("namespace", "team", "groups" for a merged box).
	Members   int
	Stat      string
	GroupKind string
	Badges    []badge
	Match     bool // matches the search
	Focus     bool
	Diff      string // added, removed (diff maps)
	Href      string // the node's page
	Expand    string // a collapsed namespace: the view that opens it
	Hidden    bool
	FocusURL  string
	HideURL   string
	// IdleFor says how long an idle node has seen no traffic ("" when
	// it is not idle).
	IdleFor string
	// Role is the node's part in the firing findings (roleSubject,
	// roleBlast, roleDim or ""), Severity the worst of those findings.
	Role, Severity string
	// Cause marks the root cause of the incident the map is drawn for.
	Cause bool
}

type mapEdge struct {
	ID, DOMID       string
	Source, Target  string // display node ids
	Async           bool
	Path            string // SVG path data
	Arrow           string // SVG polygon points
	LX, LY          float64
	Label, LagLabel string
	Width           float64
	Health          string // ok, warn, bad, idle
	Badges          []badge
	Diff            string // added, removed, changed
	Href            string
	Title           string
	Merged          int // edges drawn as this one (collapsed namespaces)
	// HoverLabel says the label shows on hover and focus only (a group's
	// edge: the layout keeps no room for its label).
	HoverLabel       bool
	Requests, Errors uint64
	// Role and Severity: as mapNode's.
	Role, Severity string
}

// badge is a finding drawn on its subject.
type badge struct {
	Kind, Severity, State, Text, Title, Href string
}

// domID returns a DOM id for a graph id: ids may hold any character, DOM ids
// in CSS selectors may not.
func domID(prefix, id string) string {
	h := sha1.Sum([]byte(id))
	return prefix + hex.EncodeToString(h[:8])
}

// mapInput is what a map is drawn from.
type mapInput struct {
	Snap     *graph.Snapshot
	Findings []finding.Finding
	// Incidents are those a view's incident= may name.
	Incidents []finding.Incident
	View      View
	// MaxNodes draws the overview of at most MaxGroups groups (a diff's
	// map: collapses namespaces), then keeps the busiest nodes, when the
	// view has more nodes than this.
	MaxNodes, MaxGroups int
	// Diff, when set, marks what changed between two times: Snap is the
	// later graph and removed nodes and edges are added back, marked.
	Diff *graph.Diff
	// Base is the path links on the map keep (the page it is drawn on).
	Base string
}

type aggEdge struct {
	graph.Edge
	merged int
	ids    []string
	ends   [][2]string // source and target of each of ids
}

// buildMap lays out and decorates the view of a snapshot.
func buildMap(ctx context.Context, lay Layouter, in mapInput) (*mapModel, error) {
	v := in.View
	s := in.Snap
	nodes := make(map[string]graph.Node, len(s.Nodes)+len(s.IdleNodes))
	for _, n := range s.Nodes {
		nodes[n.ID] = n
	}
	// Idle nodes and edges (traffic lately, none in the window) stay
	// drawn, greyed: the services behind a broken call matter most when
	// they stop hearing from it.
	for _, n := range s.IdleNodes {
		if _, ok := nodes[n.ID]; !ok {
			nodes[n.ID] = n
		}
	}
	edges := slices.Concat(s.Edges, s.IdleEdges)
	diffOf := map[string]string{}
	if in.Diff != nil {
		for _, n := range in.Diff.AddedNodes {
			diffOf[n.ID] = "added"
		}
		for _, n := range in.Diff.RemovedNodes {
			nodes[n.ID] = n
			diffOf[n.ID] = "removed"
		}
		for _, e := range in.Diff.AddedEdges {
			diffOf[e.ID] = "added"
		}
		for _, e := range in.Diff.RemovedEdges {
			edges = append(edges, e)
			diffOf[e.ID] = "removed"
		}
		for _, c := range in.Diff.ChangedEdges {
			diffOf[c.ID] = "changed"
		}
	}
	model := &mapModel{}
	inc := incidentOf(in.Findings, v, edges, in.Incidents)
	model.Firing = inc.Findings
	dim := !v.NoDim
	hidden := map[string]bool{}
	for _, id := range v.Hide {
		if _, ok := nodes[id]; ok {
			hidden[id] = true
		}
	}
	if len(hidden) > 0 {
		model.Notes = append(model.Notes, fmt.Sprintf("%d hidden", len(hidden)))
	}
	keep := map[string]bool{}
	for id := range nodes {
		if !hidden[id] {
			keep[id] = true
		}
	}
	switch {
	case v.Incident != "" && inc.Findings == 0 && len(inc.Causes) == 0:
		switch {
		case inc.Missing && strings.HasPrefix(v.Incident, incidentPrefix):
			model.Notes = append(model.Notes, "incident view: that incident is not known (resolved incidents are kept for a while, and not in storage); the whole map is drawn")
		case inc.Missing:
			model.Notes = append(model.Notes, "incident view: that finding is not in this window; the whole map is drawn")
		default:
			model.Notes = append(model.Notes, "incident view: nothing is firing; the whole map is drawn")
		}
	case v.Incident != "":
		// The incident view: the subjects, their blast radius and the
		// edges between them, nothing else.
		model.Incident = true
		for id := range keep {
			if !inc.affected(id) {
				delete(keep, id)
			}
		}
		what := fmt.Sprintf("%d firing findings", inc.Findings)
		if inc.Findings == 1 {
			what = "1 firing finding"
		}
		switch {
		case inc.Of != nil:
			what = fmt.Sprintf("incident %s (%s)", inc.Of.ID, plural(len(inc.Of.Findings), "finding"))
			if c, ok := inc.Of.TopCause(); ok {
				what += ", root cause " + c.Name()
			}
		case inc.NotFiring:
			what = "a finding that is not firing"
		}
		model.Notes = append(model.Notes, fmt.Sprintf("incident view: %d nodes touched by %s", len(keep), what))
	case v.Focus != "":
		if _, ok := nodes[v.Focus]; ok {
			keep = neighbourhood(v.Focus, v.Hops, edges, hidden)
		} else {
			model.Notes = append(model.Notes, "the focused node is not in this window")
		}
	}

	// Too many nodes to draw readably: the overview of groups (the
	// incident view's and a focus's nodes too), but on a diff's map.
	var ov *overview
	nsOf := map[string]string{} // the namespace boxes of a map drawn whole
	if len(keep) > in.MaxNodes && in.MaxGroups > 0 && in.Diff == nil {
		ov = groupNodes(overviewInput{Nodes: nodes, Edges: edges, Keep: keep, View: v, MaxGroups: in.MaxGroups, Touched: inc.affected})
		model.Notes = append(model.Notes, ov.notes(len(keep))...)
		model.Overview = len(ov.open) == 0
		model.Drilled = len(ov.open) > 0
	} else {
		nsOf = namespaces(nodes, edges)
	}

	// Collapse namespaces asked for, and on a diff's map all of them (but
	// those expanded) when there are too many nodes to draw readably.
	collapsed := map[string]bool{}
	for _, ns := range v.Collapse {
		collapsed[ns] = true
	}
	if model.Incident || ov != nil {
		clear(collapsed) // the incident view draws every node it touches; the overview groups them
	} else if len(keep) > in.MaxNodes {
		auto := 0
		for id := range keep {
			if ns := nsOf[id]; ns != "" && !slices.Contains(v.Expand, ns) && !collapsed[ns] {
				collapsed[ns] = true
				auto++
			}
		}
		if auto > 0 {
			model.Notes = append(model.Notes, fmt.Sprintf("%d nodes: namespaces collapsed to stay readable (open one by clicking it)", len(keep)))
		}
	}
	rep := func(id string) string {
		if ov != nil {
			if id == v.Focus {
				return id
			}
			return ov.rep(id) // "" when not drawn
		}
		if ns := nsOf[id]; ns != "" && collapsed[ns] && id != v.Focus {
			return "namespace:" + ns
		}
		return id
	}
	members := map[string]int{}
	repRole := map[string]finding.Severity{} // a collapsed namespace: its members' worst, subjects over blast
	repBlast := map[string]finding.Severity{}
	for id := range keep {
		if r := rep(id); r != id && r != "" {
			members[r]++
			repRole[r] = max(repRole[r], inc.Subjects[id])
			repBlast[r] = max(repBlast[r], inc.Blast[id])
		}
	}
	shown := map[string]bool{}
	for id := range keep {
		if r := rep(id); r != "" {
			shown[r] = true
		}
	}
	// Still too many: keep the busiest.
	if len(shown) > in.MaxNodes {
		traffic := map[string]float64{}
		for _, e := range edges {
			traffic[rep(e.Source)] += e.RatePerS
			traffic[rep(e.Target)] += e.RatePerS
		}
		ids := make([]string, 0, len(shown))
		for id := range shown {
			ids = append(ids, id)
		}
		// What a firing finding touches is drawn first.
		touched := map[string]bool{}
		for id := range keep {
			if inc.affected(id) {
				touched[rep(id)] = true
			}
		}
		slices.SortFunc(ids, func(a, b string) int {
			if touched[a] != touched[b] {
				if touched[a] {
					return -1
				}
				return 1
			}
			if c := cmp.Compare(traffic[b], traffic[a]); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
		for _, id := range ids[in.MaxNodes:] {
			delete(shown, id)
		}
		model.Notes = append(model.Notes, fmt.Sprintf("%d quieter nodes not drawn: search or focus to see them", len(ids)-in.MaxNodes))
	}

	// Edges between shown nodes, merged where namespaces collapsed.
	agg := map[string]*aggEdge{}
	var order []string
	for _, e := range edges {
		if !keep[e.Source] || !keep[e.Target] {
			continue
		}
		src, dst := rep(e.Source), rep(e.Target)
		if !shown[src] || !shown[dst] || (src == dst && e.Source != e.Target) {
			continue
		}
		if model.Drilled && isGroupID(src) && isGroupID(dst) {
			continue // a drill-in draws what the open groups exchange, not the traffic between the groups around them
		}
		key := e.ID
		if src != e.Source || dst != e.Target {
			key = src + "\x00" + dst + "\x00" + e.Kind.String()
		}
		a, ok := agg[key]
		if !ok {
			a = &aggEdge{Edge: e}
			a.ID = key
			a.Source, a.Target = src, dst
			agg[key] = a
			order = append(order, key)
		} else {
			mergeInto(&a.Edge, e)
		}
		a.merged++
		a.ids = append(a.ids, e.ID)
		a.ends = append(a.ends, [2]string{e.Source, e.Target})
	}

	// Layout.
	var lg layout.Graph
	ids := make([]string, 0, len(shown))
	for id := range shown {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		n := layout.Node{ID: id, Width: nodeW, Height: nodeH, Cluster: nsOf[id]}
		if ov != nil {
			n.Cluster = ov.cluster(id)
			if isGroupID(id) {
				n.Width, n.Height = groupW, groupH
			}
		}
		lg.Nodes = append(lg.Nodes, n)
	}
	slices.Sort(order)
	for _, key := range order {
		a := agg[key]
		le := layout.Edge{ID: key, From: a.Source, To: a.Target, LabelWidth: labelW, LabelHeight: labelH}
		if isGroupID(a.Source) || isGroupID(a.Target) {
			// A group's edges show their labels on hover (style.css): no
			// room is kept for them, or the overview's dense edges would
			// spread its boxes over a map too large to read.
			le.LabelWidth, le.LabelHeight = 0, 0
		}
		lg.Edges = append(lg.Edges, le)
	}
	model.Empty = len(ids) == 0
	if model.Empty {
		return model, nil
	}
	var (
		res *layout.Result
		err error
	)
	if model.Overview {
		// Boxes only: a layered grid the shape of a window (dot spreads
		// dense groups over ranks far wider than one).
		ov.sortByRank(lg.Nodes)
		res = layout.Grid(lg, overviewAspect)
	} else if res, err = lay.Layout(ctx, lg); err != nil {
		return nil, err
	} else if model.Drilled && fitScale(res) < minDrillScale {
		// A drill-in laid out left to right too wide for a window: top
		// to bottom instead, when that reads larger.
		lg.RankDir = "TB"
		tb, err := lay.Layout(ctx, lg)
		if err != nil {
			return nil, err
		}
		if fitScale(tb) > fitScale(res) {
			res = tb
		}
	}
	model.W, model.H = res.Width, res.Height
	model.Topology = topologyKey(lg)

	// Findings by subject, on whatever stands for the subject.
	nodeBadges := map[string][]badge{}
	edgeBadges := map[string][]badge{}
	edgeRep := map[string]string{}
	var edgeByKey map[string]graph.Edge // the overview's, for findings on edges inside a group
	edgeOf := func(id string) (graph.Edge, bool) {
		if edgeByKey == nil {
			edgeByKey = make(map[string]graph.Edge, len(edges))
			for _, e := range edges {
				edgeByKey[e.ID] = e
			}
		}
		e, ok := edgeByKey[id]
		return e, ok
	}
	for _, key := range order {
		for _, id := range agg[key].ids {
			edgeRep[id] = key
		}
	}
	for _, f := range in.Findings {
		if f.State != finding.StateFiring && f.State != finding.StatePending {
			continue
		}
		b := badgeOf(f)
		switch {
		case f.Subject.EdgeID != "":
			key, onEdge := edgeRep[f.Subject.EdgeID]
			if onEdge && (isGroupID(agg[key].Source) || isGroupID(agg[key].Target)) {
				onEdge = false // a group's edge: on the box of its subject (the target)
			}
			if onEdge {
				edgeBadges[key] = append(edgeBadges[key], b)
			} else if id := rep(f.Subject.NodeID); f.Subject.NodeID != "" && shown[id] {
				nodeBadges[id] = append(nodeBadges[id], b)
			} else if e, ok := edgeOf(f.Subject.EdgeID); ov != nil && ok && keep[e.Target] && shown[rep(e.Target)] {
				// An edge inside a group or to one: on the box or node of
				// its target.
				nodeBadges[rep(e.Target)] = append(nodeBadges[rep(e.Target)], b)
			}
		case f.Subject.NodeID != "":
			if id := rep(f.Subject.NodeID); shown[id] {
				nodeBadges[id] = append(nodeBadges[id], b)
			}
		}
	}

	search := strings.ToLower(v.Search)
	groupMatch := map[string]bool{} // group boxes holding a match
	if ov != nil && search != "" {
		for id := range keep {
			if r := rep(id); isGroupID(r) && strings.Contains(strings.ToLower(nodes[id].Name), search) {
				groupMatch[r] = true
			}
		}
	}
	for _, id := range ids {
		p := res.Nodes[id]
		n, ok := nodes[id]
		mn := mapNode{ID: id, DOMID: domID("n-", id), X: p.X, Y: p.Y, Badges: sortBadges(nodeBadges[id]), Diff: diffOf[id]}
		switch {
		case ok:
			mn.Name, mn.Kind, mn.Namespace, mn.System = n.Name, n.Kind.String(), n.Namespace, n.System
			mn.Owner, mn.Environment = n.Owner, n.Environment
			if n.Idle {
				mn.IdleFor = idleFor(n.LastSeen, s.GeneratedAt)
			}
			mn.Href = detailHref("/node", v, id)
			mn.FocusURL = v.With(func(w *View) { w.Focus = id }).Href(in.Base)
			mn.HideURL = v.With(func(w *View) { w.Hide = append(w.Hide, id); w.Focus = "" }).Href(in.Base)
		case isGroupID(id):
			groupBox(&mn, ov, strings.TrimPrefix(id, groupIDPrefix), v, in.Base)
			members[id] = mn.Members
			mn.Match = groupMatch[id]
		default:
			ns := strings.TrimPrefix(id, "namespace:")
			mn.Name, mn.Kind, mn.Namespace, mn.Members = ns, "namespace", ns, members[id]
			mn.Expand = v.With(func(w *View) {
				w.Collapse = slices.DeleteFunc(w.Collapse, func(s string) bool { return s == ns })
				w.Expand = append(w.Expand, ns)
			}).Href(in.Base)
		}
		mn.Role, mn.Severity = inc.nodeRole(id, dim)
		mn.Cause = inc.cause(id)
		if mn.Members > 0 {
			switch {
			case repRole[id] > 0:
				mn.Role, mn.Severity = roleSubject, repRole[id].String()
			case repBlast[id] > 0:
				mn.Role, mn.Severity = roleBlast, repBlast[id].String()
			}
		}
		if mn.Role == roleDim && len(mn.Badges) > 0 {
			mn.Role = "" // a pending finding's subject stays readable
		}
		mn.Focus = id == v.Focus
		mn.Match = mn.Match || search != "" && strings.Contains(strings.ToLower(mn.Name), search)
		model.Nodes = append(model.Nodes, mn)
	}
	for name, r := range res.Clusters {
		c := mapCluster{
			DOMID: domID("c-", name), Name: name, X: r.X, Y: r.Y, W: r.W, H: r.H,
			Href: v.With(func(w *View) {
				w.Collapse = append(w.Collapse, name)
				w.Expand = slices.DeleteFunc(w.Expand, func(s string) bool { return s == name })
			}).Href(in.Base),
			Title: "collapse namespace " + name,
		}
		if ov != nil { // an open group: closing it goes back to the overview
			c.Name = ov.by.display(name)
			c.Title = "close " + ov.by.label() + " " + c.Name
			c.Href = v.With(func(w *View) { w.Expand = slices.DeleteFunc(w.Expand, func(s string) bool { return s == name }) }).Href(in.Base)
		}
		model.Clusters = append(model.Clusters, c)
	}
	slices.SortFunc(model.Clusters, func(a, b mapCluster) int { return cmp.Compare(a.Name, b.Name) })
	for _, key := range order {
		a := agg[key]
		p := res.Edges[key]
		me := mapEdge{
			// Merged keys hold NULs, which XML refuses: the page would
			// drop the edge's live updates (parsed as SVG).
			ID: strings.ReplaceAll(key, "\x00", " "), DOMID: domID("e-", key), Source: a.Source, Target: a.Target,
			Async: a.Kind == graph.EdgeAsync, Path: splinePath(p.Points), LX: p.Label.X, LY: p.Label.Y,
			Label: edgeLabel(a.Edge), LagLabel: lagLabel(a.Edge), Width: edgeWidth(a.RatePerS), Health: health(a.Edge),
			Badges: sortBadges(edgeBadges[key]), Diff: diffOf[key], Merged: a.merged, Requests: a.Requests, Errors: a.Errors,
			HoverLabel: isGroupID(a.Source) || isGroupID(a.Target),
		}
		if a.merged > 1 {
			me.Diff = ""
		}
		me.Role, me.Severity = inc.edgeRole(a.ids, a.ends, dim)
		switch {
		case me.Role == roleSubject:
			me.Width = max(me.Width, subjectEdgeWidth)
		case me.Role == roleDim && len(me.Badges) > 0:
			me.Role = "" // a pending finding's subject stays readable
		}
		if p.Tip != nil && len(p.Points) > 0 {
			me.Arrow = arrowHead(p.Points[len(p.Points)-1], *p.Tip)
		}
		if a.merged == 1 {
			me.Href = detailHref("/edge", v, a.ids[0])
		}
		me.Title = edgeTitle(a, nodes, ov)
		if a.Idle {
			d := idleFor(a.LastSeen, s.GeneratedAt)
			me.Label, me.Title = "idle · "+d, me.Title+"\nno traffic for "+d
		}
		model.Edges = append(model.Edges, me)
	}
	return model, nil
}

// namespaces returns the namespace each node is drawn in: a service's
// own, and for a database, topic or queue without one, the namespace of
// every service it is connected to, when they all share one (the
// namespace owns it: it is drawn in its box and collapses with it).
// Nodes shared between namespaces, clients and external APIs stay
// outside every namespace.
func namespaces(nodes map[string]graph.Node, edges []graph.Edge) map[string]string {
	ns := make(map[string]string, len(nodes))
	for id, n := range nodes {
		if n.Namespace != "" {
			ns[id] = n.Namespace
		}
	}
	owner := map[string]string{} // candidate -> namespace of its services; "" when shared
	see := func(candidate, other string) {
		n := nodes[candidate]
		if n.Namespace != "" || (n.Kind != graph.NodeDatabase && n.Kind != graph.NodeTopic && n.Kind != graph.NodeQueue) {
			return
		}
		o := nodes[other]
		theirs := o.Namespace
		if o.Kind != graph.NodeService {
			theirs = "" // connected to something that is not a service of a namespace
		}
		if prev, seen := owner[candidate]; seen && prev != theirs {
			theirs = ""
		}
		owner[candidate] = theirs
	}
	for _, e := range edges {
		see(e.Source, e.Target)
		see(e.Target, e.Source)
	}
	for id, o := range owner {
		if o != "" {
			ns[id] = o
		}
	}
	return ns
}

// detailHref links to a node or edge page, keeping the view's time.
func detailHref(path string, v View, id string) string {
	q := url.Values{"id": {id}}
	if v.Window > 0 {
		q.Set("window", fmtDuration(v.Window))
	}
	if !v.At.IsZero() {
		q.Set("at", v.At.UTC().Format(time.RFC3339))
	}
	return path + "?" + q.Encode()
}

// neighbourhood returns focus and the nodes up to hops calls away from it,
// downstream and upstream, not through hidden nodes.
func neighbourhood(focus string, hops int, edges []graph.Edge, hidden map[string]bool) map[string]bool {
	keep := map[string]bool{focus: true}
	for _, down := range []bool{true, false} {
		frontier := []string{focus}
		seen := map[string]bool{focus: true}
		for range hops {
			var next []string
			for _, e := range edges {
				from, to := e.Source, e.Target
				if !down {
					from, to = to, from
				}
				if slices.Contains(frontier, from) && !seen[to] && !hidden[to] {
					seen[to] = true
					keep[to] = true
					next = append(next, to)
				}
			}
			frontier = next
		}
	}
	return keep
}

// mergeInto adds e's counts to a (edges merged by a collapsed namespace):
// counts and rates add up, quantiles take the worst.
func mergeInto(a *graph.Edge, e graph.Edge) {
	if a.Idle && e.Idle && e.LastSeen != nil && (a.LastSeen == nil || e.LastSeen.After(*a.LastSeen)) {
		a.LastSeen = e.LastSeen
	}
	a.Idle = a.Idle && e.Idle
	a.Requests += e.Requests
	a.Errors += e.Errors
	a.Retries += e.Retries
	a.RatePerS += e.RatePerS
	a.RetriesSeen = a.RetriesSeen || e.RetriesSeen
	a.Estimated = a.Estimated || e.Estimated
	if a.Requests > 0 {
		a.ErrorRatio = float64(a.Errors) / float64(a.Requests)
		a.RetryRatio = float64(a.Retries) / float64(a.Requests)
	}
	if e.Latency != nil && (a.Latency == nil || e.Latency.P95 > a.Latency.P95) {
		a.Latency = e.Latency
	}
	if e.Lag != nil && (a.Lag == nil || ptrVal(e.Lag.Messages) > ptrVal(a.Lag.Messages)) {
		a.Lag = e.Lag
	}
}

func ptrVal(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

func topologyKey(g layout.Graph) string {
	h := sha1.New()
	for _, n := range g.Nodes {
		fmt.Fprintf(h, "%s\x00%s\x00", n.ID, n.Cluster)
	}
	for _, e := range g.Edges {
		fmt.Fprintf(h, "%s\x00", e.ID)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// splinePath turns Graphviz's B-spline points into SVG path data.
func splinePath(p []layout.Point) string {
	if len(p) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "M%.1f,%.1f", p[0].X, p[0].Y)
	for i := 1; i+2 < len(p); i += 3 {
		fmt.Fprintf(&b, " C%.1f,%.1f %.1f,%.1f %.1f,%.1f", p[i].X, p[i].Y, p[i+1].X, p[i+1].Y, p[i+2].X, p[i+2].Y)
	}
	return b.String()
}

// arrowHead returns the points of a triangle from the end of the line to
// the tip.
func arrowHead(from, tip layout.Point) string {
	dx, dy := tip.X-from.X, tip.Y-from.Y
	l := math.Hypot(dx, dy)
	if l == 0 {
		return ""
	}
	ux, uy := dx/l, dy/l
	const half = 4.5
	return fmt.Sprintf("%.1f,%.1f %.1f,%.1f %.1f,%.1f", tip.X, tip.Y, from.X-uy*half, from.Y+ux*half, from.X+uy*half, from.Y-ux*half)
}

// edgeWidth grows with the logarithm of the rate.
func edgeWidth(rate float64) float64 {
	w := 1.2 + 1.4*math.Log10(1+rate)
	return math.Round(min(w, 9)*10) / 10
}

// idleFor says how long ago last was, at now: "40 s", "3 min".
func idleFor(last *time.Time, now time.Time) string {
	if last == nil {
		return "a while"
	}
	return fmtSeconds(max(now.Sub(*last).Seconds(), 0))
}

func health(e graph.Edge) string {
	switch {
	case e.Requests == 0:
		return "idle"
	case e.ErrorRatio >= 0.05:
		return "bad"
	case e.ErrorRatio >= 0.01:
		return "warn"
	default:
		return "ok"
	}
}

func edgeLabel(e graph.Edge) string {
	rate := fmtRate(e.RatePerS)
	if e.Estimated {
		rate = "≈" + rate // estimated from sampled traces
	}
	parts := []string{rate}
	if e.Requests > 0 {
		parts = append(parts, fmtPercent(e.ErrorRatio)+" err")
	}
	if e.Latency != nil {
		parts = append(parts, "p95 "+fmtMs(e.Latency.P95))
	}
	return strings.Join(parts, " · ")
}

func lagLabel(e graph.Edge) string {
	if e.Lag == nil {
		return ""
	}
	var parts []string
	if e.Lag.Messages != nil {
		parts = append(parts, "lag "+fmtCount(*e.Lag.Messages))
	}
	if e.Lag.Seconds != nil {
		parts = append(parts, fmtSeconds(*e.Lag.Seconds))
	}
	if e.Lag.DrainSeconds != nil && !math.IsInf(*e.Lag.DrainSeconds, 0) {
		parts = append(parts, "drain "+fmtSeconds(*e.Lag.DrainSeconds))
	}
	if s := e.Lag.Status.String(); s != "" && s != "ok" && s != "current" {
		parts = append(parts, s)
	}
	return strings.Join(parts, " · ")
}

func edgeTitle(a *aggEdge, nodes map[string]graph.Node, ov *overview) string {
	name := func(id string) string {
		if n, ok := nodes[id]; ok {
			return n.Name
		}
		if ov != nil && isGroupID(id) {
			g := strings.TrimPrefix(id, groupIDPrefix)
			return ov.by.display(g) + " (" + ov.boxKind(g) + ")"
		}
		return strings.TrimPrefix(id, "namespace:") + " (namespace)"
	}
	t := fmt.Sprintf("%s → %s (%s", name(a.Source), name(a.Target), a.Kind)
	if a.Protocol.String() != "" {
		t += ", " + a.Protocol.String()
	}
	if a.ConsumerGroup != "" {
		t += ", group " + a.ConsumerGroup
	}
	t += ")"
	if a.merged > 1 {
		t += fmt.Sprintf(", %d edges merged", a.merged)
	}
	return t
}

var kindText = map[finding.Kind]string{
	finding.KindBottleneck:  "bottleneck",
	finding.KindRetryStorm:  "retry storm",
	finding.KindOpenCircuit: "open circuit",
	finding.KindConsumerLag: "consumer lag",
	finding.KindSLOBurn:     "SLO burn",
}

func badgeOf(f finding.Finding) badge {
	text := kindText[f.Kind]
	if f.State == finding.StatePending {
		text += "?"
	}
	return badge{
		Kind: f.Kind.String(), Severity: f.Severity.String(), State: f.State.String(),
		Text: text, Title: f.Severity.String() + " " + f.State.String() + ": " + f.Summary,
		Href: "/findings#" + domID("f-", f.ID),
	}
}

// sortBadges puts firing before pending, then critical before warning.
func sortBadges(b []badge) []badge {
	rank := func(x badge) int {
		r := 0
		if x.State != "firing" {
			r += 2
		}
		if x.Severity != "critical" {
			r++
		}
		return r
	}
	slices.SortFunc(b, func(x, y badge) int {
		if c := cmp.Compare(rank(x), rank(y)); c != 0 {
			return c
		}
		return cmp.Compare(x.Text, y.Text)
	})
	return b
}
