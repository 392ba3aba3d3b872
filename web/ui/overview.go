package ui

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/web/ui/layout"
)

// The overview: above Options.MaxNodes nodes the map opens at a level of
// at most Options.MaxGroups boxes, one per group of nodes, each with the
// traffic its members serve and the findings on them, and edges between
// groups. Groups are namespaces, or the values of a resource attribute
// (View.Group). A click opens a group (View.Expand): its members drawn in
// full, the groups it talks to as boxes around it.

// Group keys that are no namespace or attribute value (parenthesised:
// namespaces and attribute values seldom are).
const (
	// groupNone holds the services without the grouping's value.
	groupNone = "(none)"
	// groupOther and groupEarlier merge the groups ranked after and
	// before the page of groups drawn (View.GroupPage).
	groupOther   = "(other)"
	groupEarlier = "(earlier)"
)

// kindGroups are the groups of the databases, destinations, external
// peers and clients that no service's group owns.
var kindGroups = map[graph.NodeKind]string{
	graph.NodeDatabase: "(databases)", graph.NodeTopic: "(topics)", graph.NodeQueue: "(queues)",
	graph.NodeExternal: "(external)", graph.NodeClient: "(clients)",
}

// groupIDPrefix starts the map id of a group's box.
const groupIDPrefix = "group:"

func groupID(key string) string { return groupIDPrefix + key }

// namespaceAttr is the resource attribute a service without
// service.namespace is grouped by in the namespace grouping.
const namespaceAttr = "k8s.namespace.name"

// grouping says how nodes are grouped: by namespace (attr "") or by a
// resource attribute's value.
type grouping struct{ attr string }

func groupingOf(v View) grouping {
	if v.Group == "service.namespace" || v.Group == "namespace" {
		return grouping{}
	}
	return grouping{attr: v.Group}
}

// label names what a group is: "namespace", "team".
func (g grouping) label() string {
	if g.attr == "" {
		return "namespace"
	}
	return g.attr
}

// value returns a service's group: its namespace (service.namespace, else
// k8s.namespace.name) or its value of the attribute; groupNone without.
func (g grouping) value(n graph.Node) string {
	v := n.Attributes[g.attr]
	if g.attr == "" {
		v = cmp.Or(n.Namespace, n.Attributes[namespaceAttr])
	}
	if v == "" {
		return groupNone
	}
	return v
}

// display returns what a group's box is called.
func (g grouping) display(key string) string {
	switch key {
	case groupNone:
		return "no " + g.label()
	case groupOther, groupEarlier:
		return key[1 : len(key)-1]
	}
	for _, k := range kindGroups {
		if k == key {
			return key[1 : len(key)-1]
		}
	}
	return key
}

// groupStats are a group's figures: its members and the calls and
// messages they serve (every edge into a member, from anywhere).
type groupStats struct {
	Members int
	Rate    float64
	// Out is the rate of the calls and messages its members send to
	// other groups (what ranks the clients' group, which serves none).
	Out      float64
	Requests uint64
	Errors   uint64
	// Groups is how many groups a merged box (other, earlier) holds.
	Groups int
}

func (s *groupStats) add(o *groupStats) {
	s.Members += o.Members
	s.Rate += o.Rate
	s.Out += o.Out
	s.Requests += o.Requests
	s.Errors += o.Errors
	s.Groups += max(o.Groups, 1)
}

// statLine is a box's figures in one line: "12 nodes · 340/s · 0.4% err".
func (s *groupStats) statLine() string {
	parts := []string{countText(s.Members, "node"), fmtRate(s.Rate)}
	if s.Requests > 0 {
		parts = append(parts, fmtPercent(float64(s.Errors)/float64(s.Requests))+" err")
	}
	return strings.Join(parts, " · ")
}

// overview is how a map's nodes are drawn at the overview: each kept node's
// group, the box each group is drawn as, and the groups opened in full.
// It is built per map and not shared.
type overview struct {
	by      grouping
	groupOf map[string]string      // kept node id -> its group key
	stats   map[string]*groupStats // by group key, boxes of merged groups included
	// box is the box a group is drawn in: itself, groupOther or
	// groupEarlier; a group not in box is not drawn.
	box map[string]string
	// open are the groups drawn in full (View.Expand).
	open map[string]bool
	// members lists the groups merged into groupOther and groupEarlier.
	members map[string][]string
	// Groups counts the groups; Page and Pages place the page drawn
	// among the pages of groups (1 when all fit).
	Groups, Page, Pages int
	// Hidden counts the groups a drill-in leaves out (not connected to an
	// open group).
	Hidden int
	// Unknown lists the open groups asked for that are not in the map.
	Unknown []string
	// rank is each group's place in the ranking (drawn groups first).
	rank map[string]int
}

// overviewAspect is the shape (width over height) the overview's grid is
// laid out for: the map's share of a wide window.
const overviewAspect = 1.5

// minDrillScale is the scale (of a map fitted to a window of
// overviewAspect, 1 the map's height) below which a drill-in is laid out
// top to bottom too, to take the larger.
const minDrillScale = 1.0 / 1200

// fitScale is the scale at which r fits a window of overviewAspect whose
// height is 1.
func fitScale(r *layout.Result) float64 {
	return min(overviewAspect/max(r.Width+16, 1), 1/max(r.Height+16, 1))
}

// sortByRank orders the overview's boxes by rank: the busiest first, the
// merged boxes last.
func (ov *overview) sortByRank(nodes []layout.Node) {
	at := func(id string) int {
		if r, ok := ov.rank[strings.TrimPrefix(id, groupIDPrefix)]; ok && isGroupID(id) {
			return r
		}
		return len(ov.rank)
	}
	slices.SortStableFunc(nodes, func(a, b layout.Node) int { return cmp.Compare(at(a.ID), at(b.ID)) })
}

// overviewInput is what an overview is built from.
type overviewInput struct {
	Nodes map[string]graph.Node
	Edges []graph.Edge
	Keep  map[string]bool
	View  View
	// MaxGroups is the most boxes drawn (at least 3).
	MaxGroups int
	// Touched reports whether a firing finding touches a node: its group
	// is ranked first.
	Touched func(id string) bool
}

// groupNodes groups the kept nodes and picks the boxes to draw.
//
// Services are grouped by their value (namespace or attribute), those
// without in groupNone; a database, topic, queue or external peer joins
// the group that sends it the most traffic (of its callers and
// producers; of its consumers when it has none), else the group of its
// kind, as clients do. Groups are ranked: those a firing finding touches
// first, then those matching the search, then by the traffic they serve
// and send to other groups, then by size and name. When there are more than MaxGroups, the first
// MaxGroups-1 are drawn and the rest merged into one box, "other", that
// leads to the next page: MaxGroups-2 groups between an "earlier" box and
// an "other" box. With groups open, their members are drawn in full and
// only the groups connected to them as boxes, ranked by the traffic they
// exchange with the open groups, at most a quarter of MaxGroups (the
// rest merged into "other", which leads back to the overview).
func groupNodes(in overviewInput) *overview {
	ov := &overview{
		by: groupingOf(in.View), groupOf: make(map[string]string, len(in.Keep)), stats: map[string]*groupStats{},
		box: map[string]string{}, open: map[string]bool{}, members: map[string][]string{},
	}
	// Services first, then what they own.
	incoming := map[string]map[string]float64{} // non-service node -> group -> traffic from its services
	outgoing := map[string]map[string]float64{}
	for id := range in.Keep {
		if n := in.Nodes[id]; n.Kind == graph.NodeService {
			ov.groupOf[id] = ov.by.value(n)
		}
	}
	score := func(m map[string]map[string]float64, id, group string, rate float64) {
		if m[id] == nil {
			m[id] = map[string]float64{}
		}
		m[id][group] += rate + 1e-9 // idle edges count a little
	}
	for _, e := range in.Edges {
		if !in.Keep[e.Source] || !in.Keep[e.Target] {
			continue
		}
		if g, ok := ov.groupOf[e.Source]; ok {
			if _, svc := ov.groupOf[e.Target]; !svc {
				score(incoming, e.Target, g, e.RatePerS)
			}
		}
		if g, ok := ov.groupOf[e.Target]; ok {
			if _, svc := ov.groupOf[e.Source]; !svc {
				score(outgoing, e.Source, g, e.RatePerS)
			}
		}
	}
	for id := range in.Keep {
		if _, ok := ov.groupOf[id]; ok {
			continue
		}
		n := in.Nodes[id]
		g := dominant(incoming[id])
		if g == "" {
			g = dominant(outgoing[id])
		}
		if g == "" || n.Kind == graph.NodeClient {
			g = cmp.Or(kindGroups[n.Kind], kindGroups[graph.NodeExternal])
		}
		ov.groupOf[id] = g
	}

	// Figures.
	for _, g := range ov.groupOf {
		ov.stat(g).Members++
	}
	for _, e := range in.Edges {
		if !in.Keep[e.Source] || !in.Keep[e.Target] {
			continue
		}
		st := ov.stats[ov.groupOf[e.Target]]
		st.Rate += e.RatePerS
		st.Requests += e.Requests
		st.Errors += e.Errors
		if g := ov.groupOf[e.Source]; g != ov.groupOf[e.Target] {
			ov.stats[g].Out += e.RatePerS
		}
	}
	ov.Groups = len(ov.stats)

	// Ranking.
	touched, match := map[string]bool{}, map[string]bool{}
	search := strings.ToLower(in.View.Search)
	for id, g := range ov.groupOf {
		if in.Touched != nil && in.Touched(id) {
			touched[g] = true
		}
		if search != "" && strings.Contains(strings.ToLower(in.Nodes[id].Name), search) {
			match[g] = true
		}
	}
	for g := range ov.stats {
		if search != "" && strings.Contains(strings.ToLower(ov.by.display(g)), search) {
			match[g] = true
		}
	}
	for _, g := range in.View.Expand {
		if _, ok := ov.stats[g]; ok {
			ov.open[g] = true
		} else {
			ov.Unknown = append(ov.Unknown, g)
		}
	}
	// weight is what ranks groups after findings and the search: the
	// traffic they serve and send to other groups, or with groups open,
	// the traffic they exchange with them.
	weight := map[string]float64{}
	var candidates []string
	if len(ov.open) == 0 {
		for g, st := range ov.stats {
			weight[g] = st.Rate + st.Out
			candidates = append(candidates, g)
		}
	} else {
		linked := map[string]bool{}
		for _, e := range in.Edges {
			if !in.Keep[e.Source] || !in.Keep[e.Target] {
				continue
			}
			gs, gt := ov.groupOf[e.Source], ov.groupOf[e.Target]
			switch {
			case ov.open[gs] && !ov.open[gt]:
				weight[gt] += e.RatePerS
				linked[gt] = true
			case ov.open[gt] && !ov.open[gs]:
				weight[gs] += e.RatePerS
				linked[gs] = true
			}
		}
		for g := range linked {
			candidates = append(candidates, g)
		}
		ov.Hidden = len(ov.stats) - len(ov.open) - len(linked)
		for g := range ov.open {
			ov.box[g] = g
		}
	}
	slices.SortFunc(candidates, func(a, b string) int {
		if touched[a] != touched[b] {
			return boolFirst(touched[a])
		}
		if match[a] != match[b] {
			return boolFirst(match[a])
		}
		if c := cmp.Compare(weight[b], weight[a]); c != 0 {
			return c
		}
		if c := cmp.Compare(ov.stats[b].Members, ov.stats[a].Members); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})

	// Pages: the first holds MaxGroups-1 groups and "other"; the next
	// ones MaxGroups-2 between "earlier" and "other". A drill-in draws
	// the first page of the groups around it.
	maxGroups := max(in.MaxGroups, 3)
	if len(ov.open) > 0 {
		// Around a drill-in, a quarter: dot stacks the groups around an
		// open one in a rank of their own, as tall as they are many.
		maxGroups = max(in.MaxGroups/4, 3)
	}
	ov.Page, ov.Pages = 1, 1
	from, to := 0, len(candidates)
	if len(candidates) > maxGroups {
		first, per := maxGroups-1, maxGroups-2
		ov.Pages = 1 + (len(candidates)-first+per-1)/per
		if len(ov.open) == 0 {
			ov.Page = min(max(in.View.GroupPage, 1), ov.Pages)
		}
		to = first
		if ov.Page > 1 {
			from = first + (ov.Page-2)*per
			to = min(from+per, len(candidates))
		}
	}
	ov.rank = make(map[string]int, len(candidates))
	for i, g := range candidates {
		ov.rank[g] = i
		switch {
		case i < from:
			ov.box[g] = groupEarlier
		case i >= to:
			ov.box[g] = groupOther
		default:
			ov.box[g] = g
			continue
		}
		merged := ov.box[g]
		ov.members[merged] = append(ov.members[merged], g)
		ov.stat(merged).add(ov.stats[g])
	}
	return ov
}

// stat returns the figures of group g, created empty.
func (ov *overview) stat(g string) *groupStats {
	st, ok := ov.stats[g]
	if !ok {
		st = &groupStats{}
		ov.stats[g] = st
	}
	return st
}

// rep returns the map id node id is drawn as: itself when its group is
// open, else its group's box ("" when not drawn).
func (ov *overview) rep(id string) string {
	g, ok := ov.groupOf[id]
	if !ok {
		return ""
	}
	if ov.open[g] {
		return id
	}
	b, ok := ov.box[g]
	if !ok {
		return ""
	}
	return groupID(b)
}

// cluster returns the open group node id is drawn in ("" for none).
func (ov *overview) cluster(id string) string {
	if g := ov.groupOf[id]; ov.open[g] {
		return g
	}
	return ""
}

// dominant returns the key of the largest score, ties to the first by
// name ("" when none).
func dominant(m map[string]float64) string {
	best, bestV := "", -1.0
	for k, v := range m {
		if v > bestV || v == bestV && k < best {
			best, bestV = k, v
		}
	}
	return best
}

func boolFirst(a bool) int {
	if a {
		return -1
	}
	return 1
}

// groupNotes says what the overview draws.
func (ov *overview) notes(nodes int) []string {
	label := ov.by.label()
	var out []string
	if len(ov.open) == 0 {
		out = append(out, fmt.Sprintf("%d nodes in %d groups by %s: the overview (click a group to open it)", nodes, ov.Groups, label))
		if ov.Pages > 1 {
			out = append(out, fmt.Sprintf("page %d of %d of the groups (busiest first; findings and search matches before them)", ov.Page, ov.Pages))
		}
	} else {
		names := make([]string, 0, len(ov.open))
		for g := range ov.open {
			names = append(names, ov.by.display(g))
		}
		slices.Sort(names)
		n := fmt.Sprintf("%s %s open, with the groups it talks to", label, strings.Join(names, ", "))
		if ov.Hidden > 0 {
			n += fmt.Sprintf("; %d other groups not drawn", ov.Hidden)
		}
		out = append(out, n)
	}
	for _, g := range ov.Unknown {
		out = append(out, fmt.Sprintf("no group %q in this map", g))
	}
	return out
}

// isGroupID reports whether a map id is a group's box (graph node ids
// start with their kind: service:, topic:, ...).
func isGroupID(id string) bool { return strings.HasPrefix(id, groupIDPrefix) }

// boxKind says what the box of group key is: the grouping's label, "kind"
// for the groups of a kind, "groups" for a merged box.
func (ov *overview) boxKind(key string) string {
	switch key {
	case groupOther, groupEarlier:
		return "groups"
	case groupNone:
		return ov.by.label()
	}
	for _, k := range kindGroups {
		if k == key {
			return "kind"
		}
	}
	return ov.by.label()
}

// groupBox fills the map node of the box of group key: its name, figures
// and link (a group opens; "other" and "earlier" turn the page).
func groupBox(mn *mapNode, ov *overview, key string, v View, base string) {
	st := ov.stats[key]
	mn.Kind, mn.GroupKind, mn.Name = "group", ov.boxKind(key), ov.by.display(key)
	if st == nil {
		return
	}
	mn.Members, mn.Stat = st.Members, st.statLine()
	switch key {
	case groupOther, groupEarlier:
		mn.Name = fmt.Sprintf("%s (%d groups)", mn.Name, st.Groups)
		if len(ov.open) > 0 {
			// Around a drill-in: the groups not drawn are on the overview.
			mn.Expand = v.With(func(w *View) { w.Expand = nil; w.GroupPage = 1 }).Href(base)
			return
		}
		page := ov.Page + 1
		if key == groupEarlier {
			page = ov.Page - 1
		}
		mn.Expand = v.With(func(w *View) { w.GroupPage = page }).Href(base)
	default:
		// One group at a time: a neighbour's box moves the drill-in there.
		mn.Expand = v.With(func(w *View) { w.Expand = []string{key}; w.GroupPage = 1 }).Href(base)
	}
}

// maxGroupChoices bounds the attributes offered to group by.
const maxGroupChoices = 32

// groupChoices are what the overview can group by: namespaces and the
// resource attributes the snapshot's nodes carry (and the view's own).
func groupChoices(v View, snap *graph.Snapshot) []option {
	keys := map[string]bool{}
	if v.Group != "" {
		keys[v.Group] = true
	}
	if snap != nil {
		for _, n := range snap.Nodes {
			for k := range n.Attributes {
				if len(keys) < maxGroupChoices {
					keys[k] = true
				}
			}
		}
	}
	out := []option{{Value: "", Text: "namespace", Selected: v.Group == ""}}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		out = append(out, option{Value: k, Text: k, Selected: v.Group == k})
	}
	return out
}
