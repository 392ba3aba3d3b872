package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// inventedNames is an OTLP request in which every span invents names: a
// service of its own (root server span), a peer of its own (client span
// nobody answers), a topic of its own (producer span), a span name and an
// attribute value of its own.
func inventedNames(t *testing.T, from, n int) []byte {
	t.Helper()
	td := ptrace.NewTraces()
	now := time.Now()
	for i := from; i < from+n; i++ {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", fmt.Sprintf("svc-%d", i))
		spans := rs.ScopeSpans().AppendEmpty().Spans()
		var tid pcommon.TraceID
		binary.BigEndian.PutUint64(tid[8:], uint64(i)+1)
		tid[0] = 0xca
		for k, kind := range []ptrace.SpanKind{ptrace.SpanKindServer, ptrace.SpanKindClient, ptrace.SpanKindProducer} {
			sp := spans.AppendEmpty()
			sp.SetTraceID(tid)
			var sid pcommon.SpanID
			binary.BigEndian.PutUint64(sid[:], uint64(i)*4+uint64(k)+1)
			sp.SetSpanID(sid)
			sp.SetKind(kind)
			sp.SetName("op-" + strconv.Itoa(i))
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
			sp.Attributes().PutStr("user.id", "u-"+strconv.Itoa(i))
			switch kind {
			case ptrace.SpanKindServer:
				sp.Attributes().PutStr("http.request.method", "GET")
			case ptrace.SpanKindClient:
				sp.SetParentSpanID(sid) // its own parent: no server will answer
				sp.Attributes().PutStr("http.request.method", "GET")
				sp.Attributes().PutStr("server.address", fmt.Sprintf("host-%d.example", i))
			case ptrace.SpanKindProducer:
				sp.Attributes().PutStr("messaging.system", "kafka")
				sp.Attributes().PutStr("messaging.destination.name", fmt.Sprintf("topic-%d", i))
				sp.Attributes().PutStr("messaging.operation.type", "publish")
			}
		}
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	require.NoError(t, err)
	return b
}

// exportProto posts an OTLP/HTTP protobuf request to url as an OTLP
// exporter does: a 429 or 503 (the pipeline is behind, as on a loaded CI
// machine) is retried after the server's Retry-After, for up to a minute;
// any other answer but 200 fails the test.
func exportProto(t *testing.T, url string, body []byte) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Post(url, "application/x-protobuf", bytes.NewReader(body))
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		retryable := resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable
		if retryable && time.Now().Before(deadline) {
			secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			time.Sleep(time.Duration(max(secs, 1)) * time.Second)
			continue
		}
		require.Equal(t, http.StatusOK, resp.StatusCode)
		return
	}
}

// TestE2ECardinalityAttack: a sender invents new service, peer, topic,
// span and attribute names on every span. The graph stops growing at
// --max-nodes / --max-edges; the excess lands on one overflow node per kind
// that /api/v1/graph shows with the traffic on its edges; /metrics counts
// it; the process's memory stops growing with the names.
func TestE2ECardinalityAttack(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	const maxNodes, maxEdges = 500, 1000
	bin := buildCollector(t)
	// A memory limit makes the garbage collector keep the heap near what
	// is live, so RSS follows the state kept rather than the garbage.
	const memoryLimit = 256 << 20
	// The table of recent spans remembers every span of the last two pair
	// TTLs whatever its names (150k spans/s here), up to a tenth of the
	// memory limit.
	p := startProcess(t, bin, fmt.Sprintf("--max-nodes=%d", maxNodes), fmt.Sprintf("--max-edges=%d", maxEdges),
		fmt.Sprintf("--memory-limit=%d", memoryLimit),
		"--pair-ttl=1s", "--window=1m", "--data-dir="+t.TempDir())
	url := "http://" + p.OTLPHTTP.String() + "/v1/traces"
	send := func(from, n int) { exportProto(t, url, inventedNames(t, from, n)) }
	const batch, third = 500, 40_000
	var rss [4]int64
	for phase := range 4 {
		for i := phase * third; i < (phase+1)*third; i += batch {
			send(i, batch)
		}
		time.Sleep(2 * time.Second) // unanswered calls expire into edges
		rss[phase] = p.statusKB("VmRSS")
	}
	t.Logf("RSS after each %d invented names of each kind: %d, %d, %d, %d MiB (--memory-limit %d MiB)", third, rss[0]>>10, rss[1]>>10, rss[2]>>10, rss[3]>>10, memoryLimit>>20)
	for _, r := range rss {
		require.Less(t, r>>10, int64(memoryLimit>>20), "RSS stays under the memory limit while names keep coming")
	}
	const half = 2 * third

	m := metricsText(t, p.started)
	for name, bound := range map[string]int{"cartograph_graph_nodes": maxNodes + 6, "cartograph_graph_edges": maxEdges + 6*6*9} {
		v, ok := metricValue(m, name)
		require.True(t, ok, name)
		n, err := strconv.ParseFloat(v, 64)
		require.NoError(t, err)
		require.LessOrEqual(t, n, float64(bound), name)
	}
	for _, kind := range []string{"service", "external", "topic"} {
		v, _ := metricValue(m, `cartograph_graph_overflow_total{kind="`+kind+`"}`)
		require.NotEqual(t, "0", v, kind)
	}
	// The API serves the last evaluation tick: wait for the one that has
	// every span.
	var g *wireGraph
	require.Eventually(t, func() bool {
		g = getGraph(t, p.started)
		var total uint64
		for _, e := range g.Edges {
			total += e.requests()
		}
		return total == 3*2*half
	}, 15*time.Second, 200*time.Millisecond)
	for id, name := range map[string]string{"service:__overflow__": "(other services)", "external:__overflow__": "(other externals)", "topic:__overflow__": "(other topics)"} {
		n := g.node(id)
		require.NotNil(t, n, "overflow node %s", id)
		require.Equal(t, name, n.Name)
	}
	var total, onOverflow uint64
	for _, e := range g.Edges {
		total += e.requests()
		if strings.HasSuffix(e.Source, ":__overflow__") || strings.HasSuffix(e.Target, ":__overflow__") {
			onOverflow += e.requests()
		}
	}
	require.EqualValues(t, 3*2*half, total, "every span still counts")
	require.Greater(t, onOverflow, uint64(2*3*half*9/10), "most of it on edges of overflow nodes")
	require.LessOrEqual(t, len(g.Nodes), maxNodes+6)
}

// TestE2EIdleExpiry: names that keep changing (a new service, peer and
// topic for every span) no longer fill --max-nodes for good: what went
// unseen for --idle-expiry leaves memory, counted on /metrics, and a
// service that arrives after thousands of invented names gets its own
// node instead of folding into the overflow node.
func TestE2EIdleExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	const maxNodes = 400
	bin := buildCollector(t)
	p := startProcess(t, bin, fmt.Sprintf("--max-nodes=%d", maxNodes), "--pair-ttl=1s", "--window=3s", "--bucket=1s",
		"--idle-expiry=6s", "--flush-interval=1s", "--data-dir="+t.TempDir())
	url := "http://" + p.OTLPHTTP.String() + "/v1/traces"
	send := func(body []byte) { exportProto(t, url, body) }
	const waves, names = 12, 20 // about 4 nodes per name: 960 in all
	firstWave := time.Now()
	for w := range waves {
		send(inventedNames(t, w*names, names))
		time.Sleep(2 * time.Second)
	}
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "newcomer")
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{0xfe, 1})
	sp.SetSpanID(pcommon.SpanID{0xfe, 1})
	sp.SetKind(ptrace.SpanKindServer)
	sp.SetName("GET /")
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(time.Now().Add(time.Millisecond)))
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	require.NoError(t, err)
	send(b)

	require.Eventually(t, func() bool { return getGraph(t, p.started).node("service:newcomer") != nil }, 10*time.Second, 200*time.Millisecond,
		"the newcomer has its own node")
	m := metricsText(t, p.started)
	v, ok := metricValue(m, `cartograph_graph_retired_total{kind="node"}`)
	require.True(t, ok)
	n, err := strconv.ParseFloat(v, 64)
	require.NoError(t, err)
	require.Greater(t, n, float64(waves*names), "invented names left memory")
	v, _ = metricValue(m, "cartograph_graph_nodes")
	live, err := strconv.ParseFloat(v, 64)
	require.NoError(t, err)
	require.LessOrEqual(t, live, float64(maxNodes))

	// What left memory is still in storage: the graph at the first wave
	// holds its names.
	at := firstWave.Add(4 * time.Second).UTC().Format(time.RFC3339Nano)
	code, _, body := httpGet(t, apiURL(p.started, "/api/v1/graph?window=6s&at="+at))
	require.Equal(t, http.StatusOK, code, "%s", body)
	var past wireGraph
	require.NoError(t, json.Unmarshal(body, &past))
	ids := []string{}
	for _, n := range past.Nodes {
		ids = append(ids, n.ID)
	}
	t.Logf("nodes at %s: %v", at, ids)
	require.NotNil(t, past.node("service:svc-0"), "a retired node is still in storage")
}
