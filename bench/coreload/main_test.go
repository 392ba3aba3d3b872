package main

import (
	"bytes"
	"compress/gzip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

func TestParseAddrs(t *testing.T) {
	for _, tc := range []struct {
		name, log string
		want      map[string]string
	}{
		{"text", `time=2026-12-07T12:07:25.830Z level=INFO msg="api listening" addr=127.0.0.1:37121 tls=false auth=false
time=2026-12-07T12:07:25.830Z level=INFO msg="otlp http listening" addr=127.0.0.1:41781 tls=false auth=false
time=2026-12-07T12:07:25.830Z level=INFO msg="otlp grpc listening" addr=127.0.0.1:4317 tls=false
time=2026-12-07T12:07:25.831Z level=INFO msg="ui listening" addr=127.0.0.1:40983 url=http://127.0.0.1:40983/ auth=false
`, map[string]string{"api": "127.0.0.1:37121", "otlp http": "127.0.0.1:41781", "otlp grpc": "127.0.0.1:4317", "ui": "127.0.0.1:40983"}},
		{"json", `{"time":"x","level":"INFO","msg":"api listening","addr":"127.0.0.1:9","tls":false}`, map[string]string{"api": "127.0.0.1:9"}},
		{"other lines", `msg="web UI not served: its default address is taken; set --ui-addr" addr=127.0.0.1:8080`, map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, parseAddrs(tc.log))
		})
	}
}

func TestPromText(t *testing.T) {
	p := parseProm(`# HELP cartograph_ui_refreshes_total Reads.
# TYPE cartograph_ui_refreshes_total counter
cartograph_ui_refreshes_total{result="error"} 2
cartograph_ui_refreshes_total{result="ok"} 40
cartograph_ui_refreshes_total_other 7
cartograph_detect_eval_seconds_count 12
cartograph_graph_unplaced{reason="no parent span"} 1.5e+06
cartograph_api_request_duration_seconds_count{code="200",route="/api/v1/graph"} 5
cartograph_api_request_duration_seconds_count{code="500",route="/api/v1/graph"} 1
cartograph_api_request_duration_seconds_count{code="200",route="/api/v1/graph/diff"} 3
cartograph_api_request_duration_seconds_count{route="/api/v1/graph",code="304"} 2
`)
	for _, tc := range []struct {
		name   string
		sum    float64
		series string
		get    float64
	}{
		{"cartograph_ui_refreshes_total", 42, `cartograph_ui_refreshes_total{result="ok"}`, 40},
		{"cartograph_detect_eval_seconds_count", 12, "cartograph_detect_eval_seconds_count", 12},
		{"cartograph_graph_unplaced", 1.5e6, `cartograph_graph_unplaced{reason="no parent span"}`, 1.5e6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ok := p.sum(tc.name)
			require.True(t, ok)
			require.Equal(t, tc.sum, s)
			g, ok := p.get(tc.series)
			require.True(t, ok)
			require.Equal(t, tc.get, g)
		})
	}
	_, ok := p.sum("cartograph_missing")
	require.False(t, ok)
	gets, ok := p.sumWith("cartograph_api_request_duration_seconds_count", `route="/api/v1/graph"`)
	require.True(t, ok)
	require.Equal(t, 8.0, gets, "every code, not other routes")
	_, ok = p.sumWith("cartograph_api_request_duration_seconds_count", `route="/api/v1/findings"`)
	require.False(t, ok)
}

func TestSummarise(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	l := summarise(d)
	require.Equal(t, latencies{N: 100, P50: 50 * time.Millisecond, P90: 90 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond}, l)
	require.Equal(t, latencies{N: 1, P50: 7, P90: 7, P99: 7, Max: 7}, summarise([]time.Duration{7}))
	require.Equal(t, latencies{}, summarise(nil))
}

// TestAttackNames: every name up to the last is a node (a caller or a
// callee) whatever the order in which the calls' sequence numbers are
// spent, and there are about 1.4 edges per node.
func TestAttackNames(t *testing.T) {
	o := attackOptions{Names: 1000, Spans: 29_000}
	planned := o.plannedCalls()
	require.EqualValues(t, 14_500, planned)
	nodes := map[string]bool{}
	edges := map[[2]string]bool{}
	for seq := range planned {
		c := attackCall(seq, o.frontier(seq))
		nodes[c.Caller], nodes[c.Callee] = true, true
		edges[[2]string{c.Caller, c.Callee}] = true
	}
	for i := range o.Names {
		require.True(t, nodes[attackName(i)], "name %d unused", i)
	}
	require.LessOrEqual(t, len(nodes), o.Names+3)
	ratio := float64(len(edges)) / float64(len(nodes))
	require.InDelta(t, 1.4, ratio, 0.05)
	require.Equal(t, o.Names+1, o.frontier(planned))
}

func TestBuildRequest(t *testing.T) {
	calls := []call{{Caller: "a", Callee: "b", Seq: 1}, {Caller: "b", Callee: "c", Seq: 2, Latency: 10 * time.Millisecond, Error: true}}
	body, err := buildRequest(calls, time.Now())
	require.NoError(t, err)
	req := ptraceotlp.NewExportRequest()
	require.NoError(t, req.UnmarshalProto(body))
	td := req.Traces()
	require.Equal(t, len(calls)*spansPerCall, td.SpanCount())
	type span struct {
		service string
		kind    ptrace.SpanKind
		dur     time.Duration
		status  ptrace.StatusCode
	}
	byID := map[[8]byte]span{}
	var parents [][2][8]byte
	traces := map[[16]byte]int{}
	for _, rs := range td.ResourceSpans().All() {
		svc, _ := rs.Resource().Attributes().Get("service.name")
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				byID[sp.SpanID()] = span{svc.Str(), sp.Kind(), sp.EndTimestamp().AsTime().Sub(sp.StartTimestamp().AsTime()), sp.Status().Code()}
				traces[sp.TraceID()]++
				if !sp.ParentSpanID().IsEmpty() {
					parents = append(parents, [2][8]byte{sp.SpanID(), sp.ParentSpanID()})
				}
			}
		}
	}
	require.Len(t, byID, 4, "span ids are unique")
	require.Len(t, traces, 2, "one trace per call")
	require.Len(t, parents, 2)
	for _, p := range parents {
		child, parent := byID[p[0]], byID[p[1]]
		require.Equal(t, ptrace.SpanKindServer, child.kind)
		require.Equal(t, ptrace.SpanKindClient, parent.kind)
		require.NotEqual(t, child.service, parent.service)
		switch child.service {
		case "b":
			require.Equal(t, [2]time.Duration{time.Millisecond, 2 * time.Millisecond}, [2]time.Duration{child.dur, parent.dur}, "1 ms by default")
			require.Equal(t, ptrace.StatusCodeUnset, child.status)
		case "c":
			require.Equal(t, [2]time.Duration{10 * time.Millisecond, 11 * time.Millisecond}, [2]time.Duration{child.dur, parent.dur})
			require.Equal(t, [2]ptrace.StatusCode{ptrace.StatusCodeError, ptrace.StatusCodeError}, [2]ptrace.StatusCode{child.status, parent.status})
		}
	}
}

func TestSteadyTopology(t *testing.T) {
	for _, tc := range []struct{ services, edges, want int }{{60, 150, 150}, {3, 10, 6}, {2, 1, 1}} {
		topo := steadyTopology(tc.services, tc.edges)
		require.Len(t, topo, tc.want)
		seen := map[[2]string]bool{}
		services := map[string]bool{}
		for _, e := range topo {
			require.NotEqual(t, e[0], e[1])
			require.False(t, seen[e], "edge %v twice", e)
			seen[e] = true
			services[e[0]], services[e[1]] = true, true
		}
		require.Len(t, services, min(tc.services, tc.want+1), "every service is in the graph")
		require.Equal(t, topo, steadyTopology(tc.services, tc.edges), "the same on every run")
	}
}

func TestGraphSize(t *testing.T) {
	body := []byte(`{"generated_at":"x","nodes":[{"id":"a"},{"id":"b"}],"edges":[{"id":"a->b","source":"a","target":"b"}]}`)
	for _, gz := range []bool{false, true} {
		b := body
		if gz {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write(body)
			require.NoError(t, zw.Close())
			b = buf.Bytes()
		}
		n, e, size, err := graphSize(b, gz)
		require.NoError(t, err)
		require.Equal(t, [3]int{2, 1, len(body)}, [3]int{n, e, size})
	}
	_, _, _, err := graphSize([]byte("{"), false)
	require.Error(t, err)
}
