package graph

import (
	"slices"
)

// Environments returns the deployment environments of s's service nodes
// (idle ones included), sorted, none repeated; nil when no node names one.
func (s *Snapshot) Environments() []string {
	var envs []string
	for _, ns := range [][]Node{s.Nodes, s.IdleNodes} {
		for _, n := range ns {
			if n.Environment != "" && !slices.Contains(envs, n.Environment) {
				envs = append(envs, n.Environment)
			}
		}
	}
	slices.Sort(envs)
	return envs
}

// InEnvironment returns the part of s that belongs to the deployment
// environment env: the nodes of that environment; the nodes that name no
// environment (databases, topics, queues, external and inferred services,
// services that send none) when they have an edge to or from one of them;
// and the edges between the nodes kept. Idle nodes and edges are filtered
// alike. Nodes and edges keep their figures, which are the whole graph's
// (an environment's services rarely talk to another's, so they mostly
// agree); cycles, the longest chain, circuits and paths are dropped, as
// they span the whole graph. The result shares nodes' attribute maps and
// edges' sketches with s: read only, as s is.
func (s *Snapshot) InEnvironment(env string) *Snapshot {
	out := &Snapshot{
		GeneratedAt: s.GeneratedAt, WindowSeconds: s.WindowSeconds,
		BetweennessSkipped: s.BetweennessSkipped, RecentSeconds: s.RecentSeconds,
		Nodes: []Node{}, Edges: []Edge{},
	}
	envOf := make(map[string]string, len(s.Nodes)+len(s.IdleNodes))
	for _, ns := range [][]Node{s.Nodes, s.IdleNodes} {
		for _, n := range ns {
			envOf[n.ID] = n.Environment
		}
	}
	keep := map[string]bool{}
	for id, e := range envOf {
		if e == env {
			keep[id] = true
		}
	}
	for _, es := range [][]Edge{s.Edges, s.IdleEdges} {
		for _, e := range es {
			switch {
			case envOf[e.Source] == env && envOf[e.Target] == "":
				keep[e.Target] = true
			case envOf[e.Target] == env && envOf[e.Source] == "":
				keep[e.Source] = true
			}
		}
	}
	for _, n := range s.Nodes {
		if keep[n.ID] {
			out.Nodes = append(out.Nodes, n)
		}
	}
	for _, n := range s.IdleNodes {
		if keep[n.ID] {
			out.IdleNodes = append(out.IdleNodes, n)
		}
	}
	for _, e := range s.Edges {
		if keep[e.Source] && keep[e.Target] {
			out.Edges = append(out.Edges, e)
		}
	}
	for _, e := range s.IdleEdges {
		if keep[e.Source] && keep[e.Target] {
			out.IdleEdges = append(out.IdleEdges, e)
		}
	}
	out.nodeIndex = make(map[string]int, len(out.Nodes))
	for i, n := range out.Nodes {
		out.nodeIndex[n.ID] = i
	}
	return out
}
