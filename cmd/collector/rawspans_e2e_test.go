package main

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/critpath"
)

// rawTraces is a request of n traces, each a front SERVER span calling
// back (CLIENT -> SERVER), with attributes and, on the back span, a link.
func rawTraces(n int) (ptrace.Traces, []pcommon.TraceID) {
	td := ptrace.NewTraces()
	now := time.Now()
	ids := make([]pcommon.TraceID, n)
	front := td.ResourceSpans().AppendEmpty()
	front.Resource().Attributes().PutStr("service.name", "front")
	front.Resource().Attributes().PutStr("service.namespace", "shop")
	back := td.ResourceSpans().AppendEmpty()
	back.Resource().Attributes().PutStr("service.name", "back")
	fs, bs := front.ScopeSpans().AppendEmpty().Spans(), back.ScopeSpans().AppendEmpty().Spans()
	for i := range n {
		ids[i] = pcommon.TraceID{0: 0x5a, 1: byte(i), 2: byte(i >> 8), 15: 1}
		mk := func(ss ptrace.SpanSlice, sid, parent byte, kind ptrace.SpanKind, startMs, endMs int) ptrace.Span {
			sp := ss.AppendEmpty()
			sp.SetTraceID(ids[i])
			sp.SetSpanID(pcommon.SpanID{0: sid, 7: byte(i)})
			if parent != 0 {
				sp.SetParentSpanID(pcommon.SpanID{0: parent, 7: byte(i)})
			}
			sp.SetKind(kind)
			sp.SetName("GET /items")
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Duration(startMs) * time.Millisecond)))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Duration(endMs) * time.Millisecond)))
			sp.Attributes().PutStr("http.request.method", "GET")
			return sp
		}
		mk(fs, 1, 0, ptrace.SpanKindServer, 0, 10)
		c := mk(fs, 2, 1, ptrace.SpanKindClient, 1, 9)
		c.Attributes().PutStr("server.address", "back")
		s := mk(bs, 3, 2, ptrace.SpanKindServer, 2, 8)
		s.Status().SetCode(ptrace.StatusCodeError)
		l := s.Links().AppendEmpty()
		l.SetTraceID(pcommon.TraceID{1})
		l.SetSpanID(pcommon.SpanID{2})
	}
	return td, ids
}

// chCount runs a count query on the test ClickHouse over HTTP.
func chCount(t *testing.T, query string) string {
	t.Helper()
	resp, err := http.Post("http://"+chHTTP+"/", "text/plain", strings.NewReader(query))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	return strings.TrimSpace(string(b))
}

type wireTrace struct {
	TraceID string `json:"trace_id"`
	Spans   []struct {
		SpanID       string            `json:"span_id"`
		ParentSpanID string            `json:"parent_span_id"`
		Service      string            `json:"service"`
		Namespace    string            `json:"namespace"`
		Name         string            `json:"name"`
		Kind         string            `json:"kind"`
		StatusCode   string            `json:"status_code"`
		Start        time.Time         `json:"start"`
		DurationMS   float64           `json:"duration_ms"`
		Attributes   map[string]string `json:"attributes"`
		Links        []struct {
			TraceID string `json:"trace_id"`
			SpanID  string `json:"span_id"`
		} `json:"links"`
	} `json:"spans"`
}

// TestE2ERawSpans: with --raw-spans-sample-one-in 2, the spans of the
// sampled traces (and only those) come back whole from
// GET /api/v1/traces/{id}, through the persister and ClickHouse.
func TestE2ERawSpans(t *testing.T) {
	db := clickhouseDB(t)
	col := startCollector(t, "--storage=clickhouse", "--clickhouse-dsn=clickhouse://"+chTCP+"/"+db,
		"--flush-interval=200ms", "--raw-spans-sample-one-in=2", "--raw-spans-ttl=2h")
	td, ids := rawTraces(40)
	postTraces(t, col, td)

	var sampled, skipped []string
	for _, id := range ids {
		h := hex.EncodeToString(id[:])
		if critpath.TraceHash(graph.TraceID(id))%2 == 0 {
			sampled = append(sampled, h)
		} else {
			skipped = append(skipped, h)
		}
	}
	require.NotEmpty(t, sampled)
	require.NotEmpty(t, skipped)

	var tr wireTrace
	require.Eventually(t, func() bool {
		code, _, body := httpGet(t, apiURL(col, "/api/v1/traces/"+sampled[0]))
		if code != http.StatusOK {
			return false
		}
		require.NoError(t, json.Unmarshal(body, &tr))
		return true
	}, 15*time.Second, 100*time.Millisecond, "the sampled trace is stored")
	require.Equal(t, sampled[0], tr.TraceID)
	require.Len(t, tr.Spans, 3)
	root, client, server := tr.Spans[0], tr.Spans[1], tr.Spans[2]
	require.Equal(t, "front", root.Service)
	require.Equal(t, "shop", root.Namespace)
	require.Equal(t, "server", root.Kind)
	require.Empty(t, root.ParentSpanID)
	require.Equal(t, "client", client.Kind)
	require.Equal(t, root.SpanID, client.ParentSpanID)
	require.Equal(t, "back", client.Attributes["server.address"])
	require.Equal(t, "back", server.Service)
	require.Equal(t, client.SpanID, server.ParentSpanID)
	require.Equal(t, "error", server.StatusCode)
	require.Equal(t, "GET", server.Attributes["http.request.method"])
	require.InDelta(t, 6.0, server.DurationMS, 1e-6)
	require.Len(t, server.Links, 1)
	require.Equal(t, "01000000000000000000000000000000", server.Links[0].TraceID)
	require.True(t, root.Start.Before(client.Start) && client.Start.Before(server.Start), "by start time")

	// Every sampled trace whole, no skipped one.
	require.Eventually(t, func() bool {
		return chCount(t, "SELECT count() FROM "+db+".spans") == itoa(3*len(sampled))
	}, 15*time.Second, 100*time.Millisecond)
	for _, h := range sampled {
		code, _, body := httpGet(t, apiURL(col, "/api/v1/traces/"+h))
		require.Equal(t, http.StatusOK, code, string(body))
	}
	for _, h := range skipped {
		code, _, body := httpGet(t, apiURL(col, "/api/v1/traces/"+h))
		require.Equal(t, http.StatusNotFound, code, string(body))
	}
	code, _, _ := httpGet(t, apiURL(col, "/api/v1/traces/not-a-trace-id"))
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, chCount(t, "SHOW CREATE TABLE "+db+".spans"), "toIntervalSecond(7200)", "--raw-spans-ttl")
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestE2ERawSpansOffByDefault: without the flag nothing is kept and the
// endpoint answers 501; the embedded store refuses the flag at start.
func TestE2ERawSpansOffByDefault(t *testing.T) {
	db := clickhouseDB(t)
	col := startCollector(t, "--storage=clickhouse", "--clickhouse-dsn=clickhouse://"+chTCP+"/"+db, "--flush-interval=200ms")
	td, ids := rawTraces(10)
	postTraces(t, col, td)
	// Wait for a flush that wrote something (the edges), then look.
	require.Eventually(t, func() bool {
		return chCount(t, "SELECT count() FROM "+db+".edge_buckets") != "0"
	}, 15*time.Second, 100*time.Millisecond)
	require.Equal(t, "0", chCount(t, "SELECT count() FROM "+db+".spans"))
	code, _, body := httpGet(t, apiURL(col, "/api/v1/traces/"+hex.EncodeToString(ids[0][:])))
	require.Equal(t, http.StatusNotImplemented, code, string(body))

	_, err := parseConfig([]string{"--raw-spans-sample-one-in=10"}, func(string) string { return "" }, io.Discard)
	require.ErrorContains(t, err, "needs --storage clickhouse")
	_, err = parseConfig([]string{"--storage=clickhouse", "--clickhouse-dsn=clickhouse://x/y", "--raw-spans-sample-one-in=-1"}, func(string) string { return "" }, io.Discard)
	require.ErrorContains(t, err, "--raw-spans-sample-one-in")
}
