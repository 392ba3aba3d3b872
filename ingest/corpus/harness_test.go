// Package corpus_test is the corpus of real, third-party instrumentations
// (issue #14): a demo application built from the Go module proxy, real
// instrumentation libraries driven against real servers, and OTLP fixtures
// in the shapes other languages' instrumentations emit. Every case sends its
// traces through the real ingest path (OTLP receiver -> semconv pipeline ->
// graph) and asserts the exact edges of the snapshot, and no others, against
// testdata/<case>-graph.json.
//
// The goldens are written by hand: they list the edges a person reading the
// traces would draw. There is deliberately no -update flag: a golden is the
// specification, not a record of what the code does today.
package corpus_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/ingest/otlp"
	"github.com/seed-a49a8342/cartograph/ingest/semconv"
)

// pairTTL is the graph's pairing TTL in every case. The clock jumps past it
// before the snapshot, so every unpaired half-edge has expired by then.
const pairTTL = 10 * time.Second

// skewClock is real time plus an offset the test can move forward; live
// instrumentations stamp spans with real time, and the graph must still see
// its pairing TTL pass without the test waiting for it.
type skewClock struct{ offset atomic.Int64 }

func (c *skewClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *skewClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// countingSink passes spans to the graph and counts them by service, so a
// test driving a real application can wait for its exporters to go quiet.
type countingSink struct {
	g *graph.Graph

	mu        sync.Mutex
	total     int
	last      time.Time
	byService map[string]int
}

func (s *countingSink) ConsumeSpans(spans []graph.Span) (int, string) {
	s.mu.Lock()
	for i := range spans {
		s.byService[spans[i].Service]++
	}
	s.total += len(spans)
	s.last = time.Now()
	s.mu.Unlock()
	return s.g.ConsumeSpans(spans)
}

// counts returns the spans seen so far, per service, and when the last came.
func (s *countingSink) counts() (total int, byService map[string]int, last time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total, maps.Clone(s.byService), s.last
}

// env is one case's cartograph: a graph behind the semconv pipeline behind
// an OTLP receiver listening on loopback (HTTP and gRPC).
type env struct {
	g    *graph.Graph
	clk  *skewClock
	sink *countingSink
	rcv  *otlp.Receiver
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clk := &skewClock{}
	g, err := graph.New(graph.Options{PairTTL: pairTTL, Now: clk.now})
	require.NoError(t, err)
	sink := &countingSink{g: g, byService: map[string]int{}}
	p, err := semconv.NewPipeline(semconv.Options{Sink: sink})
	require.NoError(t, err)
	rcv, err := otlp.New(otlp.Options{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Traces: p})
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rcv.Shutdown(ctx)
	})
	return &env{g: g, clk: clk, sink: sink, rcv: rcv}
}

// httpEndpoint is the OTLP/HTTP base URL (exporters append /v1/traces).
func (e *env) httpEndpoint() string { return "http://" + e.rcv.HTTPAddr().String() }

// grpcEndpoint is the OTLP/gRPC host:port.
func (e *env) grpcEndpoint() string { return e.rcv.GRPCAddr().String() }

// post sends one OTLP/JSON export request to the receiver, as an SDK
// exporter would, and requires it to be accepted whole.
func (e *env) post(t *testing.T, body []byte) {
	t.Helper()
	resp, err := http.Post(e.httpEndpoint()+"/v1/traces", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var msg bytes.Buffer
	_, _ = msg.ReadFrom(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "export refused: %s", msg.String())
	require.NotContains(t, msg.String(), "rejected", "partial success: %s", msg.String())
}

// edgeKey is what a golden asserts of an edge: endpoints, kind, protocol,
// consumer group, and whether the edge's figures are estimated from sampled
// traffic. Figures (rates, latencies) are not asserted.
type edgeKey struct {
	Source        string `json:"source"`
	Target        string `json:"target"`
	Kind          string `json:"kind"`
	Protocol      string `json:"protocol"`
	ConsumerGroup string `json:"consumer_group,omitempty"`
	Estimated     bool   `json:"estimated,omitempty"`
}

func (k edgeKey) String() string {
	s := fmt.Sprintf("%s -> %s (%s, %s)", k.Source, k.Target, k.Kind, cmpOr(k.Protocol, `""`))
	if k.ConsumerGroup != "" {
		s += " group=" + k.ConsumerGroup
	}
	if k.Estimated {
		s += " estimated"
	}
	return s
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// golden is testdata/<case>-graph.json: the edges, each with the reason a
// reader of the traces draws it, and a note on where the traces come from.
type golden struct {
	Note  string `json:"note"`
	Edges []struct {
		edgeKey
		Why string `json:"why"`
	} `json:"edges"`
}

func readGolden(t *testing.T, name string) []edgeKey {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+"-graph.json"))
	require.NoError(t, err)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var gd golden
	require.NoError(t, dec.Decode(&gd), "%s-graph.json", name)
	require.NotEmpty(t, gd.Edges, "%s-graph.json lists no edge", name)
	out := make([]edgeKey, len(gd.Edges))
	for i, e := range gd.Edges {
		require.NotEmpty(t, e.Why, "%s-graph.json: edge %s says not why it is drawn", name, e.edgeKey)
		out[i] = e.edgeKey
	}
	return out
}

// drawn returns the edges of the graph's snapshot once every half-edge has
// expired. It reads the snapshot's JSON, so a field the graph adds later
// (estimated) is seen without this file changing.
func (e *env) drawn(t *testing.T) []edgeKey {
	t.Helper()
	e.clk.advance(pairTTL + time.Second)
	e.g.Expire()
	snap, err := e.g.Snapshot(0)
	require.NoError(t, err)
	b, err := json.Marshal(snap)
	require.NoError(t, err)
	var raw struct {
		Edges []edgeKey `json:"edges"`
	}
	require.NoError(t, json.Unmarshal(b, &raw))
	return raw.Edges
}

// assertEdges compares the drawn edges with testdata/<name>-graph.json:
// the same set, nothing missing, nothing extra.
func (e *env) assertEdges(t *testing.T, name string) {
	t.Helper()
	want := readGolden(t, name)
	got := e.drawn(t)
	diff := diffEdges(want, got)
	if diff != "" {
		t.Errorf("case %s: the graph is not what a reader of the traces draws (testdata/%s-graph.json):\n%s", name, name, diff)
	}
}

// diffEdges lists the edges missing from got and those got has in excess,
// or returns "" when the sets are equal.
func diffEdges(want, got []edgeKey) string {
	ws := map[edgeKey]bool{}
	for _, k := range want {
		ws[k] = true
	}
	gs := map[edgeKey]bool{}
	for _, k := range got {
		gs[k] = true
	}
	var missing, extra, all []string
	for k := range ws {
		if !gs[k] {
			missing = append(missing, k.String())
		}
	}
	for k := range gs {
		all = append(all, k.String())
		if !ws[k] {
			extra = append(extra, k.String())
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return ""
	}
	slices.Sort(missing)
	slices.Sort(extra)
	slices.Sort(all)
	var b strings.Builder
	for _, s := range missing {
		b.WriteString("  missing: " + s + "\n")
	}
	for _, s := range extra {
		b.WriteString("  extra:   " + s + "\n")
	}
	b.WriteString("  drawn today:\n")
	for _, s := range all {
		b.WriteString("    " + s + "\n")
	}
	return b.String()
}
