package ui

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/web/ui/layout"
	"github.com/seed-a49a8342/cartograph/web/ui/layout/layouttest"
)

// overviewGraph is a small graph to group: services in two namespaces
// (one known only by its Kubernetes namespace, one with none), with a
// team attribute on some; a database two namespaces call, a topic only
// consumed, an external peer and a client.
func overviewGraph() (map[string]graph.Node, []graph.Edge) {
	svc := func(ns, name string, attrs map[string]string) graph.Node {
		return graph.Node{ID: graph.NodeKey{Kind: graph.NodeService, Group: ns, Name: name}.ID(), Kind: graph.NodeService, Name: name, Namespace: ns, Attributes: attrs}
	}
	nodes := []graph.Node{
		svc("shop", "front", map[string]string{"team": "web"}),
		svc("shop", "cart", map[string]string{"team": "web"}),
		svc("", "pay", map[string]string{"k8s.namespace.name": "billing", "team": "money"}),
		svc("", "ledger", map[string]string{"k8s.namespace.name": "billing"}),
		svc("", "lonely", nil),
		{ID: "database:postgresql/orders", Kind: graph.NodeDatabase, Name: "orders"},
		{ID: "topic:kafka/events", Kind: graph.NodeTopic, Name: "events"},
		{ID: "external:api.example.com", Kind: graph.NodeExternal, Name: "api.example.com"},
		{ID: "client:client", Kind: graph.NodeClient, Name: "client"},
	}
	byID := map[string]graph.Node{}
	for _, n := range nodes {
		byID[n.ID] = n
	}
	e := func(src, dst string, rate float64) graph.Edge {
		return graph.Edge{ID: src + "->" + dst, Source: src, Target: dst, Kind: graph.EdgeSync, RatePerS: rate, Requests: uint64(rate * 60), Errors: uint64(rate)}
	}
	edges := []graph.Edge{
		e("client:client", "service:shop/front", 100),
		e("service:shop/front", "service:shop/cart", 50),
		e("service:shop/cart", "service:pay", 20),
		e("service:pay", "service:ledger", 20),
		e("service:shop/cart", "database:postgresql/orders", 30), // shop sends the orders database the most
		e("service:ledger", "database:postgresql/orders", 10),
		e("topic:kafka/events", "service:ledger", 5), // consumed by billing, produced by nobody seen
		e("service:lonely", "external:api.example.com", 1),
	}
	return byID, edges
}

func keepAll(nodes map[string]graph.Node) map[string]bool {
	keep := map[string]bool{}
	for id := range nodes {
		keep[id] = true
	}
	return keep
}

func TestGroupNodes(t *testing.T) {
	nodes, edges := overviewGraph()
	tests := []struct {
		name  string
		view  View
		want  map[string]string // node id -> group
		stats map[string]groupStats
	}{
		{
			name: "namespaces",
			view: View{},
			want: map[string]string{
				"service:shop/front": "shop", "service:shop/cart": "shop",
				"service:pay": "billing", "service:ledger": "billing", // k8s.namespace.name stands in
				"service:lonely":             groupNone,
				"database:postgresql/orders": "shop",      // its biggest caller's
				"topic:kafka/events":         "billing",   // no producer: its consumer's
				"external:api.example.com":   groupNone,   // its one caller's group, "no namespace"
				"client:client":              "(clients)", // clients have a group of their own
			},
			stats: map[string]groupStats{
				"shop":      {Members: 3, Rate: 190, Requests: 190 * 60, Errors: 190}, // front 100 + cart 50 + orders 30 + 10
				"billing":   {Members: 3, Rate: 45, Requests: 45 * 60, Errors: 45},
				groupNone:   {Members: 2, Rate: 1, Requests: 60, Errors: 1},
				"(clients)": {Members: 1},
			},
		},
		{
			name: "by an attribute",
			view: View{Group: "team"},
			want: map[string]string{
				"service:shop/front": "web", "service:shop/cart": "web", "service:pay": "money",
				"service:ledger": groupNone, "service:lonely": groupNone,
				"database:postgresql/orders": "web", "topic:kafka/events": groupNone,
				"external:api.example.com": groupNone, "client:client": "(clients)",
			},
		},
		{
			name: "an attribute no node has",
			view: View{Group: "cloud.region"},
			want: map[string]string{
				"service:shop/front": groupNone, "service:shop/cart": groupNone, "service:pay": groupNone,
				"service:ledger": groupNone, "service:lonely": groupNone,
				"database:postgresql/orders": groupNone, "topic:kafka/events": groupNone,
				"external:api.example.com": groupNone, "client:client": "(clients)",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ov := groupNodes(overviewInput{Nodes: nodes, Edges: edges, Keep: keepAll(nodes), View: tt.view, MaxGroups: 50})
			require.Equal(t, tt.want, ov.groupOf)
			for g, want := range tt.stats {
				got := *ov.stats[g]
				require.Equal(t, want.Members, got.Members, g)
				require.InDelta(t, want.Rate, got.Rate, 1e-6, g)
				require.Equal(t, want.Requests, got.Requests, g)
				require.Equal(t, want.Errors, got.Errors, g)
			}
			for g := range ov.stats {
				require.Equal(t, g, ov.box[g], "every group drawn as itself")
			}
			require.Equal(t, 1, ov.Pages)
		})
	}
	t.Run("a database without a caller's group joins its kind's", func(t *testing.T) {
		keep := map[string]bool{"database:postgresql/orders": true, "client:client": true}
		ov := groupNodes(overviewInput{Nodes: nodes, Edges: edges, Keep: keep, View: View{}, MaxGroups: 50})
		require.Equal(t, map[string]string{"database:postgresql/orders": "(databases)", "client:client": "(clients)"}, ov.groupOf)
		require.Equal(t, "databases", ov.by.display("(databases)"))
		require.Equal(t, "kind", ov.boxKind("(databases)"))
	})
}

// manyGroups is a chain of n namespaces of two services each, namespace i
// calling namespace i+1 at a rate falling with i (ns-00 the busiest).
func manyGroups(n int) (map[string]graph.Node, []graph.Edge) {
	nodes := map[string]graph.Node{}
	var edges []graph.Edge
	id := func(i, j int) string { return fmt.Sprintf("service:ns-%02d/s%d", i, j) }
	for i := range n {
		for j := range 2 {
			nodes[id(i, j)] = graph.Node{ID: id(i, j), Kind: graph.NodeService, Name: fmt.Sprintf("s%d", j), Namespace: fmt.Sprintf("ns-%02d", i)}
		}
		edges = append(edges, graph.Edge{ID: id(i, 0) + ">" + id(i, 1), Source: id(i, 0), Target: id(i, 1), RatePerS: float64(1000 - i)})
		if i > 0 {
			edges = append(edges, graph.Edge{ID: id(i-1, 1) + ">" + id(i, 0), Source: id(i-1, 1), Target: id(i, 0), RatePerS: 1})
		}
	}
	return nodes, edges
}

func TestGroupPages(t *testing.T) {
	nodes, edges := manyGroups(12)
	boxes := func(ov *overview) (own []string, merged map[string]int) {
		merged = map[string]int{}
		for g, b := range ov.box {
			if b == g {
				own = append(own, g)
			} else {
				merged[b]++
			}
		}
		slices.Sort(own)
		return own, merged
	}
	tests := []struct {
		name   string
		view   View
		max    int
		own    []string
		merged map[string]int
		page   int
	}{
		{"all fit", View{}, 12, []string{"ns-00", "ns-01", "ns-02", "ns-03", "ns-04", "ns-05", "ns-06", "ns-07", "ns-08", "ns-09", "ns-10", "ns-11"}, map[string]int{}, 1},
		{"first page: the busiest and other", View{}, 5, []string{"ns-00", "ns-01", "ns-02", "ns-03"}, map[string]int{groupOther: 8}, 1},
		{"second page: earlier, three, other", View{GroupPage: 2}, 5, []string{"ns-04", "ns-05", "ns-06"}, map[string]int{groupEarlier: 4, groupOther: 5}, 2},
		{"last page: earlier and the rest", View{GroupPage: 4}, 5, []string{"ns-10", "ns-11"}, map[string]int{groupEarlier: 10}, 4},
		{"a page past the last is the last", View{GroupPage: 99}, 5, []string{"ns-10", "ns-11"}, map[string]int{groupEarlier: 10}, 4},
		{"a search match comes first", View{Search: "ns-09"}, 5, []string{"ns-00", "ns-01", "ns-02", "ns-09"}, map[string]int{groupOther: 8}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ov := groupNodes(overviewInput{Nodes: nodes, Edges: edges, Keep: keepAll(nodes), View: tt.view, MaxGroups: tt.max})
			own, merged := boxes(ov)
			require.Equal(t, tt.own, own)
			require.Equal(t, tt.merged, merged)
			require.Equal(t, tt.page, ov.Page)
			require.LessOrEqual(t, len(own)+len(merged), tt.max, "at most MaxGroups boxes")
			for b, n := range merged {
				require.Equal(t, n, ov.stats[b].Groups)
				require.Equal(t, 2*n, ov.stats[b].Members)
			}
		})
	}
	t.Run("a firing finding's group comes first", func(t *testing.T) {
		ov := groupNodes(overviewInput{Nodes: nodes, Edges: edges, Keep: keepAll(nodes), View: View{}, MaxGroups: 5,
			Touched: func(id string) bool { return id == "service:ns-11/s1" }})
		own, _ := boxes(ov)
		require.Equal(t, []string{"ns-00", "ns-01", "ns-02", "ns-11"}, own)
		require.Zero(t, ov.rank["ns-11"])
	})
}

func TestGroupDrillIn(t *testing.T) {
	nodes, edges := manyGroups(30)
	// ns-05 is called by ns-04 and calls ns-06; give it twenty more
	// callers.
	for i := 10; i < 30; i++ {
		src := fmt.Sprintf("service:ns-%02d/s1", i)
		edges = append(edges, graph.Edge{ID: src + ">x", Source: src, Target: "service:ns-05/s0", RatePerS: float64(i)})
	}
	ov := groupNodes(overviewInput{Nodes: nodes, Edges: edges, Keep: keepAll(nodes), View: View{Expand: []string{"ns-05", "nope"}}, MaxGroups: 40})
	require.True(t, ov.open["ns-05"])
	require.Equal(t, []string{"nope"}, ov.Unknown)
	require.Equal(t, "service:ns-05/s0", ov.rep("service:ns-05/s0"), "an open group's members are drawn")
	require.Equal(t, "ns-05", ov.cluster("service:ns-05/s1"))
	// 22 groups around it, a quarter of 40 drawn: 9 and "other".
	own := 0
	for g, b := range ov.box {
		if b == g && g != "ns-05" {
			own++
		}
	}
	require.Equal(t, 9, own)
	require.Equal(t, 13, ov.stats[groupOther].Groups)
	require.Equal(t, groupID(groupOther), ov.rep("service:ns-04/s1"), "ns-04 sends it 1/s: among the quietest")
	require.Equal(t, groupID("ns-29"), ov.rep("service:ns-29/s0"), "the busiest neighbours are drawn")
	require.Equal(t, 30-1-22, ov.Hidden, "groups not connected to it")
	require.Empty(t, ov.rep("service:ns-07/s0"), "not drawn")
	require.Contains(t, strings.Join(ov.notes(60), "; "), "namespace ns-05 open, with the groups it talks to; 7 other groups not drawn")
}

// TestOverviewMap draws the overview of a graph with findings: boxes with
// their figures and badges, and edges between groups whose labels show on
// hover.
func TestOverviewMap(t *testing.T) {
	nodes, edges := overviewGraph()
	snap := graph.NewSnapshot(now, 0, slices.Collect(maps.Values(nodes)), edges)
	findings := []finding.Finding{
		{ID: "f1", Kind: finding.KindRetryStorm, State: finding.StateFiring, Severity: finding.SeverityCritical, Subject: finding.Subject{EdgeID: "service:shop/cart->service:pay"}, Summary: "cart retries pay"},
		{ID: "f2", Kind: finding.KindBottleneck, State: finding.StateFiring, Severity: finding.SeverityWarning, Subject: finding.Subject{NodeID: "service:shop/front"}, Summary: "front is slow"},
	}
	lay := newLayouter(t, layout.Options{})
	m, err := buildMap(context.Background(), lay, mapInput{Snap: snap, Findings: findings, View: View{Hops: 2, Refresh: defaultRefresh}, MaxNodes: 4, MaxGroups: 50, Base: "/"})
	require.NoError(t, err)
	require.True(t, m.Overview)
	byID := map[string]mapNode{}
	for _, n := range m.Nodes {
		require.Equal(t, "group", n.Kind)
		byID[n.ID] = n
	}
	require.Len(t, byID, 4)
	shop := byID[groupID("shop")]
	require.Equal(t, "3 nodes · 190/s · 1.7% err", shop.Stat)
	require.Equal(t, "/?expand=shop", shop.Expand)
	require.Equal(t, []string{"bottleneck"}, badgeTexts(shop.Badges), "a finding on a member")
	require.Equal(t, roleSubject, shop.Role)
	billing := byID[groupID("billing")]
	require.Equal(t, []string{"retry storm"}, badgeTexts(billing.Badges), "an edge finding on the box of its target")
	require.Equal(t, roleSubject, billing.Role)
	require.Equal(t, "critical", billing.Severity)
	require.Equal(t, "no namespace", byID[groupID(groupNone)].Name)
	for _, e := range m.Edges {
		require.True(t, e.HoverLabel, e.ID)
		require.Empty(t, e.Badges, "badges are on the boxes")
	}
	var cartPay *mapEdge
	for i, e := range m.Edges {
		if e.Source == groupID("shop") && e.Target == groupID("billing") {
			cartPay = &m.Edges[i]
		}
	}
	require.NotNil(t, cartPay, "shop -> billing")
	require.Equal(t, roleSubject, cartPay.Role)
	require.EqualValues(t, 20*60+30*60-30*60, cartPay.Requests, "cart -> pay; orders is shop's own")

	dm, err := parseMap(renderString(context.Background(), mapSVG(m)))
	require.NoError(t, err)
	require.Empty(t, layouttest.Overlaps(dm.Nodes))
	for _, b := range dm.Nodes {
		require.True(t, layouttest.Contains(dm.ViewBox, b), "%v outside %v", b, dm.ViewBox)
	}
	require.Equal(t, dm.Edges, dm.HoverEdges)

	t.Run("incident view of more nodes than drawn whole", func(t *testing.T) {
		// pay's finding reaches back to the client: four nodes, more than
		// the three drawn whole; ledger, lonely and the external peer are
		// not touched.
		fs := slices.Clone(findings)
		fs[0].BlastRadius = &finding.BlastRadius{Upstream: []finding.Affected{
			{NodeID: "service:shop/cart"}, {NodeID: "service:shop/front"}, {NodeID: "client:client"}}}
		m, err := buildMap(context.Background(), lay, mapInput{Snap: snap, Findings: fs, View: View{Hops: 2, Incident: IncidentAll}, MaxNodes: 3, MaxGroups: 50, Base: "/"})
		require.NoError(t, err)
		require.True(t, m.Incident)
		var ids []string
		for _, n := range m.Nodes {
			ids = append(ids, n.ID)
			require.NotEqual(t, roleDim, n.Role)
		}
		slices.Sort(ids)
		require.Equal(t, []string{groupID("(clients)"), groupID("billing"), groupID("shop")}, ids, "the groups of what the findings touch, and only those")
		require.Contains(t, strings.Join(m.Notes, "; "), "incident view: 4 nodes touched by 2 firing findings")
	})
}

func badgeTexts(bs []badge) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Text
	}
	return out
}

// TestGridLayout: a layered grid keeps boxes apart and inside the
// picture, puts callers in earlier columns or bands, wraps into the shape
// asked for, and routes every edge from border to border.
func TestGridLayout(t *testing.T) {
	for _, n := range []int{1, 2, 7, 30, 50} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var g layout.Graph
			for i := range n {
				g.Nodes = append(g.Nodes, layout.Node{ID: fmt.Sprint(i), Width: groupW, Height: groupH})
			}
			for i := 1; i < n; i++ {
				g.Edges = append(g.Edges, layout.Edge{ID: fmt.Sprintf("%d>%d", (i-1)/3, i), From: fmt.Sprint((i - 1) / 3), To: fmt.Sprint(i)})
			}
			if n > 2 {
				g.Edges = append(g.Edges, layout.Edge{ID: "back", From: fmt.Sprint(n - 1), To: "0"}, layout.Edge{ID: "self", From: "1", To: "1"})
			}
			r := layout.Grid(g, 1.5)
			var boxes []layouttest.Box
			for _, nd := range g.Nodes {
				p, ok := r.Nodes[nd.ID]
				require.True(t, ok)
				b := layouttest.Box{ID: nd.ID, X: p.X - nd.Width/2, Y: p.Y - nd.Height/2, W: nd.Width, H: nd.Height}
				require.True(t, layouttest.Contains(layouttest.Box{X: 0, Y: 0, W: r.Width, H: r.Height}, b), "%v outside %vx%v", b, r.Width, r.Height)
				boxes = append(boxes, b)
			}
			require.Empty(t, layouttest.Overlaps(boxes))
			for _, e := range g.Edges {
				p, ok := r.Edges[e.ID]
				require.True(t, ok, e.ID)
				require.Len(t, p.Points, 4)
				require.NotNil(t, p.Tip)
			}
			if n >= 30 {
				require.InDelta(t, 1.5, r.Width/r.Height, 1.2, "close to the shape asked for: %.0f x %.0f", r.Width, r.Height)
				// The root calls: it is in the first column of the first band.
				require.Less(t, r.Nodes["0"].X, groupW)
			}
		})
	}
}

// TestArchitectureTable: the coupling table of a graph of hundreds of
// nodes comes in pages of 50, filtered by name, with centrality as a rank
// and a share of shortest paths that tell nodes apart; the page says it
// is read on load, not "paused" beside a refresh it does not do.
func TestArchitectureTable(t *testing.T) {
	s := scaleSnapshot(500)
	snap := graph.NewSnapshot(now, time.Minute, s.Nodes, s.Edges)
	require.False(t, snap.BetweennessSkipped)
	u := newTestUI(t, &fixedSource{snap: snap})
	rows := func(body string) [][]string {
		t.Helper()
		table := section(body, `<table class="data sortable" id="coupling-table">`, "</table>")
		var out [][]string
		for _, tr := range strings.Split(table, "<tr>")[2:] {
			var cells []string
			for _, td := range strings.Split(tr, "<td")[1:] {
				cells = append(cells, stripTags("<td"+td))
			}
			out = append(out, cells)
		}
		return out
	}
	code, _, body := get(t, u, "/architecture")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, fmt.Sprintf("1–50 of %d nodes", len(snap.Nodes)))
	require.Contains(t, body, `id="coupling-next"`)
	require.NotContains(t, body, `id="coupling-prev"`)
	require.NotContains(t, body, `name="refresh"`, "no refresh on a page that does not refresh")
	require.Contains(t, body, `<span class="when">read on load: reload to update</span>`)
	first := rows(body)
	require.Len(t, first, 50)
	require.Equal(t, fmt.Sprintf("1 of %d", len(snap.Nodes)), first[0][5], "the most central first")
	shares := map[string]bool{}
	for _, r := range first {
		shares[r[6]] = true
		require.NotEqual(t, "0.000", r[6])
	}
	require.Greater(t, len(shares), 40, "the 50 most central nodes tell apart: %v", shares)

	_, _, body = get(t, u, "/architecture?cpage=2")
	require.Contains(t, body, fmt.Sprintf("51–100 of %d nodes", len(snap.Nodes)))
	require.Contains(t, body, `id="coupling-prev"`)
	require.Contains(t, body, fmt.Sprintf("51 of %d", len(snap.Nodes)))

	_, _, body = get(t, u, "/architecture?q=GATEWAY&sort=name&dir=asc")
	gw := rows(body)
	require.Len(t, gw, 10, "one gateway per namespace")
	for _, r := range gw {
		require.Contains(t, r[0], "-gateway")
	}
	require.Contains(t, body, fmt.Sprintf("1–10 of 10 nodes (of %d)", len(snap.Nodes)))
	require.True(t, slices.IsSortedFunc(gw, func(a, b []string) int { return strings.Compare(a[0], b[0]) }))

	_, _, body = get(t, u, "/architecture?cpage=999")
	require.Contains(t, body, fmt.Sprintf("of %d nodes", len(snap.Nodes)))
	require.NotContains(t, body, `id="coupling-next"`, "a page past the last is the last")

	code, _, _ = get(t, u, "/architecture?cpage=x")
	require.Equal(t, http.StatusBadRequest, code)
}

func stripTags(s string) string {
	var b strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
		case r == '>':
			in = false
		case !in:
			b.WriteRune(r)
		}
	}
	return strings.TrimSpace(b.String())
}

func TestFmtShare(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0"}, {1, "100%"}, {0.125, "12.5%"}, {0.4, "40.0%"}, {0.0123, "1.23%"},
		{0.000312, "0.0312%"}, {3.1e-7, "0.0000310%"},
	} {
		require.Equal(t, tc.want, fmtShare(tc.in), "%g", tc.in)
	}
}

// TestNodePageAttributes: a node's page lists its kept resource
// attributes.
func TestNodePageAttributes(t *testing.T) {
	nodes, edges := overviewGraph()
	snap := graph.NewSnapshot(now, time.Minute, slices.Collect(maps.Values(nodes)), edges)
	u := newTestUI(t, &fixedSource{snap: snap})
	code, _, body := get(t, u, "/node?id="+url.QueryEscape("service:pay"))
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "<dt>k8s.namespace.name</dt><dd>billing</dd>")
	require.Contains(t, body, "<dt>team</dt><dd>money</dd>")
}
