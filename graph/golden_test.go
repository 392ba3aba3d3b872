package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/ingest/semconv"
)

var update = flag.Bool("update", false, "rewrite the golden files (testdata/*-graph.json) and the fuzz seed files")

// goldenStart is the test clock's start; the spans in testdata end shortly
// before it.
var goldenStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const goldenPairTTL = 10 * time.Second

// testClock is a settable clock for graph.Options.Now. The graph reads it
// only from the goroutine that drives the test.
type testClock struct{ t time.Time }

func (c *testClock) now() time.Time          { return c.t }
func (c *testClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// goldenCases lists the cases in testdata: each <case>-trace.json has a
// <case>-graph.json beside it.
func goldenCases(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*-trace.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no testdata/*-trace.json")
	cases := make([]string, len(files))
	for i, f := range files {
		cases[i] = strings.TrimSuffix(filepath.Base(f), "-trace.json")
	}
	return cases
}

// readRequests decodes testdata/<name>-trace.json: a JSON array of OTLP/JSON
// ExportTraceServiceRequest objects, one per request, in sending order.
func readRequests(t testing.TB, name string) []ptrace.Traces {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+"-trace.json"))
	require.NoError(t, err)
	var raw []json.RawMessage
	require.NoError(t, json.Unmarshal(b, &raw), "%s-trace.json must hold a JSON array of requests", name)
	require.NotEmpty(t, raw)
	var u ptrace.JSONUnmarshaler
	out := make([]ptrace.Traces, len(raw))
	for i, r := range raw {
		td, err := u.UnmarshalTraces(r)
		require.NoError(t, err, "request %d", i)
		require.Positive(t, td.SpanCount(), "request %d carries no span", i)
		out[i] = td
	}
	return out
}

// TestGolden sends each case's requests through the semconv pipeline into a
// graph, lets every unpaired half-edge expire, and compares the snapshot
// with testdata/<case>-graph.json. Run with -update to rewrite the goldens,
// then review the diff.
func TestGolden(t *testing.T) {
	for _, name := range goldenCases(t) {
		t.Run(name, func(t *testing.T) {
			clk := &testClock{t: goldenStart}
			g, err := graph.New(graph.Options{PairTTL: goldenPairTTL, Now: clk.now})
			require.NoError(t, err)
			p, err := semconv.NewPipeline(semconv.Options{Sink: g, NodeAttributes: semconv.DefaultNodeAttributes()})
			require.NoError(t, err)
			for i, td := range readRequests(t, name) {
				require.NoError(t, p.ConsumeTraces(context.Background(), td), "request %d: every span is taken", i)
			}
			clk.advance(goldenPairTTL + time.Second)
			g.Expire()
			snap, err := g.Snapshot(0)
			require.NoError(t, err)
			require.NoError(t, checkSnapshot(snap))

			got, err := marshalGolden(snap)
			require.NoError(t, err)
			path := filepath.Join("testdata", name+"-graph.json")
			if *update {
				require.NoError(t, os.WriteFile(path, got, 0o644))
				return
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run go test ./graph/ -run TestGolden -update to create it")
			require.Equal(t, string(want), string(got))
		})
	}
}

// marshalGolden encodes s as the goldens hold it: indented by two spaces,
// with "->" in edge ids left readable rather than HTML-escaped.
func marshalGolden(s *graph.Snapshot) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// checkSnapshot reports the first broken invariant of s: node ids unique and
// of a valid kind, edge ids unique, every edge's endpoints among the nodes,
// counts consistent and ratios, rates and latencies finite and in range.
func checkSnapshot(s *graph.Snapshot) error {
	if s == nil {
		return errors.New("nil snapshot")
	}
	nodes := make(map[string]bool, len(s.Nodes))
	for _, n := range s.Nodes {
		if nodes[n.ID] {
			return fmt.Errorf("node %q listed twice", n.ID)
		}
		nodes[n.ID] = true
		if _, err := n.Kind.MarshalText(); err != nil {
			return fmt.Errorf("node %q: %w", n.ID, err)
		}
		if n.FanIn < 0 || n.FanOut < 0 || !inUnit(n.Instability) || n.Betweenness < 0 || !finite(n.Betweenness) {
			return fmt.Errorf("node %q: coupling figures out of range: %+v", n.ID, n)
		}
		if got, ok := s.Node(n.ID); !ok || got.ID != n.ID {
			return fmt.Errorf("node %q: not found by Snapshot.Node", n.ID)
		}
	}
	edges := make(map[string]bool, len(s.Edges))
	for _, e := range s.Edges {
		if edges[e.ID] {
			return fmt.Errorf("edge %q listed twice", e.ID)
		}
		edges[e.ID] = true
		if want := graph.EdgeID(e.Source, e.Target, e.Protocol, e.ConsumerGroup); e.ID != want {
			return fmt.Errorf("edge %q: id should be %q", e.ID, want)
		}
		if !nodes[e.Source] || !nodes[e.Target] {
			return fmt.Errorf("edge %q: endpoint not among the nodes", e.ID)
		}
		if _, err := e.Kind.MarshalText(); err != nil {
			return fmt.Errorf("edge %q: %w", e.ID, err)
		}
		if e.Errors > e.Requests || e.Retries > e.Requests {
			return fmt.Errorf("edge %q: %d errors, %d retries in %d requests", e.ID, e.Errors, e.Retries, e.Requests)
		}
		if !inUnit(e.ErrorRatio) || !inUnit(e.RetryRatio) {
			return fmt.Errorf("edge %q: error ratio %v, retry ratio %v", e.ID, e.ErrorRatio, e.RetryRatio)
		}
		if e.RatePerS < 0 || !finite(e.RatePerS) {
			return fmt.Errorf("edge %q: rate %v", e.ID, e.RatePerS)
		}
		for _, q := range []*graph.Quantiles{e.Latency, e.ServerLatency, e.ClientLatency, e.Delay} {
			if q != nil && !(q.P50 >= 0 && q.P50 <= q.P95 && q.P95 <= q.P99 && finite(q.P99)) {
				return fmt.Errorf("edge %q: quantiles %+v", e.ID, *q)
			}
		}
		if e.ConsumerGroup != "" && e.Kind != graph.EdgeAsync {
			return fmt.Errorf("edge %q: consumer group on a %v edge", e.ID, e.Kind)
		}
	}
	return nil
}

func inUnit(v float64) bool { return v >= 0 && v <= 1 }
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
