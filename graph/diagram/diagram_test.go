package diagram_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-graphviz"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/gonum/graph/formats/dot"
	"gonum.org/v1/gonum/graph/formats/dot/ast"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/diagram"
)

var update = flag.Bool("update", false, "rewrite testdata/*.mmd and testdata/*.dot")

// shopSnapshot is a small system with every node kind, a namespace, an
// async hop through a topic and names full of characters that are syntax
// in Mermaid or DOT.
func shopSnapshot() *graph.Snapshot {
	svc := func(ns, name string) graph.Node {
		k := graph.NodeKey{Kind: graph.NodeService, Group: ns, Name: name}
		return graph.Node{ID: k.ID(), Kind: graph.NodeService, Name: name, Namespace: ns}
	}
	other := func(kind graph.NodeKind, system, name string) graph.Node {
		k := graph.NodeKey{Kind: kind, Group: system, Name: name}
		return graph.Node{ID: k.ID(), Kind: kind, Name: name, System: system}
	}
	front := svc("shop", "frontend")
	quote := svc("shop", `pricing "v2" [beta]`)
	pay := svc("pay|ments", `pay\ments #1 <eu>`)
	orders := other(graph.NodeTopic, "kafka", "orders{eu}")
	db := other(graph.NodeDatabase, "postgresql", "shop-db")
	ext := other(graph.NodeExternal, "", "api.stripe.com")
	ship := svc("", "shipping")
	edge := func(src, dst graph.Node, kind graph.EdgeKind, proto graph.Protocol, group string, rate, errRatio, p95 float64) graph.Edge {
		e := graph.Edge{
			ID: graph.EdgeID(src.ID, dst.ID, proto, group), Source: src.ID, Target: dst.ID, Kind: kind, Protocol: proto,
			ConsumerGroup: group, RatePerS: rate, ErrorRatio: errRatio, Requests: uint64(rate * 60),
		}
		if p95 > 0 {
			e.Latency = &graph.Quantiles{P50: p95 / 3, P95: p95, P99: p95 * 2}
		}
		return e
	}
	nodes := []graph.Node{front, quote, pay, orders, db, ext, ship}
	edges := []graph.Edge{
		edge(front, quote, graph.EdgeSync, graph.ProtocolHTTP, "", 41.5, 0.0021, 38.26),
		edge(front, pay, graph.EdgeSync, graph.ProtocolGRPC, "", 12, 0.125, 211),
		edge(pay, ext, graph.EdgeSync, graph.ProtocolHTTP, "", 11.98, 0, 180.4),
		edge(quote, db, graph.EdgeSync, graph.ProtocolDB, "", 83, 0, 2.345),
		edge(pay, orders, graph.EdgeAsync, graph.ProtocolKafka, "", 11.98, 0, 1.2),
		edge(orders, ship, graph.EdgeAsync, graph.ProtocolKafka, "shipping \"g\"", 11.9, 0.001, 0),
	}
	edges[5].Delay = &graph.Quantiles{P50: 12, P95: 95.5, P99: 140}
	return graph.NewSnapshot(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), time.Minute, nodes, edges)
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run with -update to create %s", path)
	require.Equal(t, string(want), string(got), "%s differs (run with -update and review the diff)", path)
}

func TestGolden(t *testing.T) {
	s := shopSnapshot()
	for _, c := range []struct {
		name string
		f    diagram.Filter
	}{
		{"shop", diagram.Filter{}},
		{"shop-namespace", diagram.Filter{Namespace: "shop"}},
		{"shop-focus", diagram.Filter{Focus: "service:shop/frontend", Hops: 1, Hide: []string{"database:postgresql/shop-db"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			mmd := diagram.Mermaid(s, c.f)
			checkMermaid(t, string(mmd))
			golden(t, c.name+".mmd", mmd)
			d := diagram.DOT(s, c.f)
			checkDOT(t, d)
			golden(t, c.name+".dot", d)
		})
	}
}

// TestDOTParses parses the DOT with gonum's parser (generated from the DOT
// grammar) and checks that every node and edge of the snapshot is there,
// with its label read back exactly, and async edges dashed.
func TestDOTParses(t *testing.T) {
	s := shopSnapshot()
	f, err := dot.ParseBytes(diagram.DOT(s, diagram.Filter{}))
	require.NoError(t, err)
	require.Len(t, f.Graphs, 1)
	g := f.Graphs[0]
	require.True(t, g.Directed)

	labels := map[string]string{}  // diagram id -> label
	edges := map[string][]string{} // "a -> b" -> attrs
	var walk func([]ast.Stmt)
	walk = func(stmts []ast.Stmt) {
		for _, st := range stmts {
			switch st := st.(type) {
			case *ast.NodeStmt:
				for _, a := range st.Attrs {
					if a.Key == "label" {
						labels[st.Node.ID] = unquote(t, a.Val)
					}
				}
			case *ast.EdgeStmt:
				from := st.From.(*ast.Node).ID
				to := st.To.Vertex.(*ast.Node).ID
				var attrs []string
				for _, a := range st.Attrs {
					attrs = append(attrs, a.Key+"="+unquote(t, a.Val))
				}
				edges[from+" -> "+to] = attrs
			case *ast.Subgraph:
				walk(st.Stmts)
			}
		}
	}
	walk(g.Stmts)
	require.Len(t, labels, len(s.Nodes))
	require.Len(t, edges, len(s.Edges))
	require.Equal(t, `pay\ments #1 <eu>`, labels["service_pay_ments_pay_ments_1_eu"])
	require.Equal(t, `pricing "v2" [beta]`, labels["service_shop_pricing_v2_beta"])
	require.Equal(t, "orders{eu} (kafka)", labels["topic_kafka_orders_eu"])
	require.Equal(t, []string{`label=kafka · group shipping "g" · 11.9/s · 0.1% err · delay p95 95.5 ms`, "style=dashed"},
		edges["topic_kafka_orders_eu -> service_shipping"])
	require.Equal(t, []string{"label=http · 41.5/s · 0.21% err · p95 38.3 ms"},
		edges["service_shop_frontend -> service_shop_pricing_v2_beta"])
}

func unquote(t *testing.T, v string) string {
	t.Helper()
	if !strings.HasPrefix(v, `"`) {
		return v
	}
	// DOT's escapes are \" and \\ (what dotString writes), which Go's
	// unquoting reads alike; no other escape is written.
	s, err := strconv.Unquote(v)
	require.NoError(t, err, v)
	return s
}

// Mermaid has no Go parser: checkMermaid holds every line to the grammar
// of the subset Mermaid emits, and every label to the characters allowed
// inside a quoted Mermaid string.
var (
	mmdID    = `[A-Za-z][A-Za-z0-9_]*`
	mmdText  = `"[^"\[\]{}|<>#;` + "`" + `\x00-\x1f]*(?:#(?:quot|[0-9]+);[^"\[\]{}|<>#;` + "`" + `\x00-\x1f]*)*"`
	mmdLines = []*regexp.Regexp{
		regexp.MustCompile(`^%% [^\n]*$`),
		regexp.MustCompile(`^flowchart LR$`),
		regexp.MustCompile(`^  subgraph ns_[0-9]+\[` + mmdText + `\]$`),
		regexp.MustCompile(`^  end$`),
		regexp.MustCompile(`^ {2,4}` + mmdID + `(?:\[` + mmdText + `\]|\[\(` + mmdText + `\)\]|\[/` + mmdText + `/\]|\(` + mmdText + `\))$`),
		regexp.MustCompile(`^  ` + mmdID + ` (?:-->|-\.->)\|` + mmdText + `\| ` + mmdID + `$`),
	}
	mmdReserved = map[string]bool{"end": true, "subgraph": true, "flowchart": true, "graph": true, "style": true, "class": true, "click": true}
)

func checkMermaid(t *testing.T, src string) {
	t.Helper()
	require.True(t, strings.HasSuffix(src, "\n"))
	declared := map[string]bool{}
	depth := 0
	for i, line := range strings.Split(strings.TrimSuffix(src, "\n"), "\n") {
		ok := false
		for _, re := range mmdLines {
			if re.MatchString(line) {
				ok = true
				break
			}
		}
		require.True(t, ok, "line %d is outside the grammar: %q", i+1, line)
		f := strings.Fields(line)
		switch {
		case f[0] == "subgraph":
			depth++
		case f[0] == "end":
			depth--
			require.GreaterOrEqual(t, depth, 0, "line %d: end without subgraph", i+1)
		case len(f) >= 3 && (strings.HasPrefix(f[1], "-->|") || strings.HasPrefix(f[1], "-.->|")):
			require.True(t, declared[f[0]], "line %d: edge from undeclared %s", i+1, f[0])
			require.True(t, declared[f[len(f)-1]], "line %d: edge to undeclared %s", i+1, f[len(f)-1])
		case strings.HasPrefix(line, "  ") && !strings.HasPrefix(f[0], "%%") && f[0] != "flowchart":
			id := regexp.MustCompile(`^` + mmdID).FindString(f[0])
			require.False(t, mmdReserved[strings.ToLower(id)], "line %d: reserved id %s", i+1, id)
			require.False(t, declared[id], "line %d: %s declared twice", i+1, id)
			declared[id] = true
		}
	}
	require.Zero(t, depth, "unclosed subgraph")
}

func checkDOT(t *testing.T, src []byte) {
	t.Helper()
	_, err := dot.ParseBytes(src)
	require.NoError(t, err, "%s", src)
}

// TestMermaidEscapes renders names made of nothing but syntax and checks
// they come out as entity codes only.
func TestMermaidEscapes(t *testing.T) {
	for _, name := range []string{`"]`, `a"b`, `x|y`, `#quot;`, "tab\there", `end`, `[[{(<>)}]]`, "`md`", `a;b`} {
		k := graph.NodeKey{Kind: graph.NodeService, Name: name}
		s := graph.NewSnapshot(time.Unix(0, 0), time.Minute, []graph.Node{{ID: k.ID(), Kind: graph.NodeService, Name: name}}, nil)
		out := string(diagram.Mermaid(s, diagram.Filter{}))
		checkMermaid(t, out)
		d := diagram.DOT(s, diagram.Filter{})
		f, err := dot.ParseBytes(d)
		require.NoError(t, err, "%q: %s", name, d)
		ns := f.Graphs[0].Stmts[len(f.Graphs[0].Stmts)-1].(*ast.NodeStmt)
		want := strings.ReplaceAll(name, "\t", " ")
		require.Equal(t, want, unquote(t, ns.Attrs[0].Val), "%q", name)
	}
}

func TestEmptyAndUnknownFocus(t *testing.T) {
	s := shopSnapshot()
	out := string(diagram.Mermaid(s, diagram.Filter{Focus: "service:nowhere"}))
	checkMermaid(t, out)
	require.NotContains(t, out, "-->")
	_, err := dot.ParseBytes(diagram.DOT(graph.NewSnapshot(time.Unix(0, 0), time.Minute, nil, nil), diagram.Filter{}))
	require.NoError(t, err)
}

// TestDOTRendersWithGraphviz lays the DOT out with Graphviz itself
// (compiled to WebAssembly, as the UI's layout uses it) and reads the
// text it draws from the SVG: every label comes out as the name it
// stands for (Graphviz reads the escaping as meant), and the async edges
// are dashed.
func TestDOTRendersWithGraphviz(t *testing.T) {
	ctx := context.Background()
	gv, err := graphviz.New(ctx)
	require.NoError(t, err)
	defer gv.Close()
	s := shopSnapshot()
	g, err := graphviz.ParseBytes(diagram.DOT(s, diagram.Filter{}))
	require.NoError(t, err)
	defer g.Close()
	var buf bytes.Buffer
	require.NoError(t, gv.Render(ctx, g, graphviz.SVG, &buf))
	var texts []string
	dec := xml.NewDecoder(&buf)
	inText, dashed := false, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			inText = tok.Name.Local == "text"
			for _, a := range tok.Attr {
				if tok.Name.Local == "path" && a.Name.Local == "stroke-dasharray" {
					dashed++
				}
			}
		case xml.CharData:
			if inText {
				texts = append(texts, string(tok))
			}
		case xml.EndElement:
			inText = false
		}
	}
	for _, want := range []string{`pay\ments #1 <eu>`, `pricing "v2" [beta]`, "pay|ments", "orders{eu} (kafka)",
		`kafka · group shipping "g" · 11.9/s · 0.1% err · delay p95 95.5 ms`} {
		require.Contains(t, texts, want)
	}
	require.Equal(t, 2, dashed, "async edges drawn dashed")
}
