package graph

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// jsonKeys returns the top-level keys of v encoded as JSON.
func jsonKeys(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

// TestBetweennessSkippedIsSaid: above the node bound betweenness is not
// computed; the JSON must say so instead of reporting 0 (SPEC: fields that
// do not apply are omitted, never faked; #15 defect 8).
func TestBetweennessSkippedIsSaid(t *testing.T) {
	for _, tc := range []struct {
		nodes   int
		skipped bool
	}{{10, false}, {2001, true}} {
		t.Run(fmt.Sprint(tc.nodes), func(t *testing.T) {
			nodes := make([]Node, tc.nodes)
			var edges []Edge
			for i := range nodes {
				nodes[i] = Node{ID: fmt.Sprintf("service:s%05d", i), Kind: NodeService, Name: fmt.Sprintf("s%05d", i)}
				if i > 0 {
					edges = append(edges, Edge{ID: EdgeID(nodes[i-1].ID, nodes[i].ID, ProtocolHTTP, ""), Source: nodes[i-1].ID, Target: nodes[i].ID, Kind: EdgeSync, Protocol: ProtocolHTTP})
				}
			}
			s := NewSnapshot(time.Unix(0, 0), time.Minute, nodes, edges)
			require.Equal(t, tc.skipped, s.BetweennessSkipped)
			mid := jsonKeys(t, s.Nodes[tc.nodes/2])
			if tc.skipped {
				require.NotContains(t, mid, "betweenness", "not computed: omitted, not 0")
				require.Equal(t, true, mid["betweenness_skipped"])
			} else {
				require.Greater(t, mid["betweenness"], 0.0)
				require.NotContains(t, mid, "betweenness_skipped")
			}
		})
	}
}

// TestRetriesOmittedWhereUnseen: an edge whose calls carry no retry signal
// omits retries and retry_ratio rather than reporting 0 (#15 defect 8).
// Retries can be seen on sync HTTP/gRPC/RPC edges whose caller side was
// seen (its client spans carry http.request.resend_count and the repeated
// calls the pairing recognises), and on any edge where a retry was seen.
func TestRetriesOmittedWhereUnseen(t *testing.T) {
	m := newLatencyIndex(newLatencyMapping())
	withClient := func(st Stats) Stats {
		addLatency(&st.Client, m, int64(3*time.Millisecond))
		return st
	}
	withServer := func(st Stats) Stats {
		addLatency(&st.Server, m, int64(3*time.Millisecond))
		return st
	}
	for _, tc := range []struct {
		name  string
		kind  EdgeKind
		proto Protocol
		stats Stats
		seen  bool
	}{
		{"http, caller instrumented", EdgeSync, ProtocolHTTP, withClient(Stats{Requests: 10}), true},
		{"grpc, caller instrumented", EdgeSync, ProtocolGRPC, withServer(withClient(Stats{Requests: 10})), true},
		{"http, uninstrumented caller (server spans only)", EdgeSync, ProtocolHTTP, withServer(Stats{Requests: 10}), false},
		{"database calls", EdgeSync, ProtocolDB, withClient(Stats{Requests: 10}), false},
		{"database calls with a resend seen", EdgeSync, ProtocolDB, withClient(Stats{Requests: 10, Retries: 2}), true},
		{"async publish", EdgeAsync, ProtocolKafka, withClient(Stats{Requests: 10}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := makeEdge("service:a", "service:b", tc.kind, tc.proto, "", tc.stats, 60)
			require.Equal(t, tc.seen, e.RetriesSeen)
			k := jsonKeys(t, e)
			if tc.seen {
				require.Contains(t, k, "retries")
				require.Contains(t, k, "retry_ratio")
			} else {
				require.NotContains(t, k, "retries", "retries cannot be seen: omitted, not 0")
				require.NotContains(t, k, "retry_ratio")
			}
			require.Contains(t, k, "requests")
			var back Edge
			b, _ := json.Marshal(e)
			require.NoError(t, json.Unmarshal(b, &back))
			require.Equal(t, tc.seen, back.RetriesSeen, "decoding keeps the distinction")
			require.Equal(t, e.Retries, back.Retries)
		})
	}
}
