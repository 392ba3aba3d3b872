package detect

import (
	"testing"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// TestFindingOwner: the owner of a finding is the team that must act: a
// node's owner; for an edge its target's, else its source's; "" when
// neither is known or the subject is not on the graph.
func TestFindingOwner(t *testing.T) {
	s := graph.NewSnapshot(time.Unix(0, 0), time.Minute, []graph.Node{
		{ID: "service:a", Kind: graph.NodeService, Name: "a", Owner: "team-a"},
		{ID: "service:b", Kind: graph.NodeService, Name: "b", Owner: "team-b"},
		{ID: "service:c", Kind: graph.NodeService, Name: "c"},
		{ID: "database:postgresql/orders", Kind: graph.NodeDatabase, Name: "orders"},
	}, []graph.Edge{
		{ID: "a->b", Source: "service:a", Target: "service:b", Kind: graph.EdgeSync},
		{ID: "a->db", Source: "service:a", Target: "database:postgresql/orders", Kind: graph.EdgeSync},
		{ID: "c->db", Source: "service:c", Target: "database:postgresql/orders", Kind: graph.EdgeSync},
	})
	tests := []struct {
		name string
		sub  finding.Subject
		want string
	}{
		{"node", finding.Subject{NodeID: "service:b"}, "team-b"},
		{"node without owner", finding.Subject{NodeID: "service:c"}, ""},
		{"edge: the target's", finding.Subject{EdgeID: "a->b"}, "team-b"},
		{"edge to an unowned database: the caller's", finding.Subject{EdgeID: "a->db"}, "team-a"},
		{"edge, nobody's", finding.Subject{EdgeID: "c->db"}, ""},
		{"edge not on the graph", finding.Subject{EdgeID: "x->y"}, ""},
		{"node not on the graph", finding.Subject{NodeID: "service:x"}, ""},
	}
	o := newOwners(s)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := o.of(tt.sub); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
