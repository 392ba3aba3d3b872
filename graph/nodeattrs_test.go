package graph

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNodeAttributes: a service node carries the kept resource attributes
// of its spans: the newest set replaces the last, a resource with none
// leaves them, idle nodes keep them, JSON omits them when there are none,
// and at most MaxNodeAttributes are kept.
func TestNodeAttributes(t *testing.T) {
	g, clk, _ := newTestGraph(t, Options{})
	team := func(v string) []Attr {
		return []Attr{{Key: "k8s.namespace.name", Value: "prod"}, {Key: "team", Value: v}}
	}
	span := func(b byte, svc string, attrs []Attr) Span {
		s := server(tid(b), sid(b), SpanID{}, svc, 0, ms)
		s.Attributes = attrs
		return s
	}
	attrsOf := func(id string) map[string]string {
		t.Helper()
		snap, err := g.Snapshot(0)
		require.NoError(t, err)
		for _, n := range append(snap.Nodes, snap.IdleNodes...) {
			if n.ID == id {
				return n.Attributes
			}
		}
		t.Fatalf("no node %s", id)
		return nil
	}

	rej, why := g.ConsumeSpans([]Span{span(1, "a", team("blue")), span(2, "a", team("blue")), span(3, "b", nil)})
	require.Zero(t, rej, why)
	require.Equal(t, map[string]string{"k8s.namespace.name": "prod", "team": "blue"}, attrsOf("service:a"))
	require.Nil(t, attrsOf("service:b"))
	require.Nil(t, attrsOf("client:client"), "only services carry attributes")

	// A later resource with other values replaces them; one without any
	// (an exporter that sets none) leaves them.
	rej, why = g.ConsumeSpans([]Span{span(4, "a", team("green")), span(5, "a", nil)})
	require.Zero(t, rej, why)
	require.Equal(t, map[string]string{"k8s.namespace.name": "prod", "team": "green"}, attrsOf("service:a"))

	// The attributes outlive the request they came in (copied).
	buf := []byte("orange")
	rej, why = g.ConsumeSpans([]Span{span(6, "a", []Attr{{Key: "team", Value: string(buf)}})})
	require.Zero(t, rej, why)
	copy(buf, "XXXXXX")
	require.Equal(t, map[string]string{"team": "orange"}, attrsOf("service:a"))

	// Bounded.
	var many []Attr
	for i := range MaxNodeAttributes + 4 {
		many = append(many, Attr{Key: "k" + strconv.Itoa(i), Value: "v"})
	}
	rej, why = g.ConsumeSpans([]Span{span(7, "c", many)})
	require.Zero(t, rej, why)
	require.Len(t, attrsOf("service:c"), MaxNodeAttributes)

	// JSON: "attributes" when there are some, left out when none.
	snap, err := g.Snapshot(0)
	require.NoError(t, err)
	b, err := json.Marshal(snap)
	require.NoError(t, err)
	var back struct {
		Nodes []map[string]any `json:"nodes"`
	}
	require.NoError(t, json.Unmarshal(b, &back))
	for _, n := range back.Nodes {
		_, has := n["attributes"]
		require.Equal(t, n["id"] == "service:a" || n["id"] == "service:c", has, "node %v", n["id"])
	}

	// Idle nodes keep theirs.
	clk.advance(g.opts.Window + 2*g.opts.Bucket)
	require.Equal(t, map[string]string{"team": "orange"}, attrsOf("service:a"))
}
