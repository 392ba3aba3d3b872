package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
	"github.com/seed-a49a8342/cartograph/simulate/synth"
)

// chTCP and chHTTP are the native and HTTP addresses of the test
// ClickHouse (cmd/testenv's, or CARTOGRAPH_TEST_CLICKHOUSE and _HTTP);
// empty when none is given, and then clickhouseDB fails the test saying so.
var chTCP, chHTTP, _ = need.LookupClickHouse()

// clickhouseDB makes sure the test ClickHouse answers and returns a fresh
// database name, dropped when the test ends.
func clickhouseDB(t *testing.T) string {
	t.Helper()
	need.ClickHouse(t)
	resp, err := http.Get("http://" + chHTTP + "/ping")
	require.NoError(t, err, "ClickHouse's HTTP interface (%s)", need.EnvClickHouseHTTP)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "ClickHouse's /ping")
	db := fmt.Sprintf("cartograph_e2e_%d_%d", os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() {
		resp, err := http.Post("http://"+chHTTP+"/", "text/plain", strings.NewReader("DROP DATABASE IF EXISTS "+db+" SYNC"))
		if err == nil {
			resp.Body.Close()
		}
	})
	return db
}

// postTraces sends td to a collector over OTLP/HTTP protobuf.
func postTraces(t *testing.T, col started, td ptrace.Traces) {
	t.Helper()
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	require.NoError(t, err)
	resp, err := testClient.Post("http://"+col.OTLPHTTP.String()+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// splitByTrace splits td in two by trace id, as the OpenTelemetry
// Collector's loadbalancing exporter does.
func splitByTrace(td ptrace.Traces) (ptrace.Traces, ptrace.Traces) {
	a, b := ptrace.NewTraces(), ptrace.NewTraces()
	for _, rs := range td.ResourceSpans().All() {
		ra, rb := a.ResourceSpans().AppendEmpty(), b.ResourceSpans().AppendEmpty()
		rs.Resource().CopyTo(ra.Resource())
		rs.Resource().CopyTo(rb.Resource())
		sa, sb := ra.ScopeSpans().AppendEmpty(), rb.ScopeSpans().AppendEmpty()
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				dst := sa
				if id := sp.TraceID(); id[15]%2 == 1 {
					dst = sb
				}
				sp.CopyTo(dst.Spans().AppendEmpty())
			}
		}
	}
	return a, b
}

type historyEdge struct {
	ID       string `json:"id"`
	Requests uint64 `json:"requests"`
	Errors   uint64 `json:"errors"`
	Latency  *struct {
		P50, P95, P99 float64
	} `json:"latency_ms"`
	Delay *struct {
		P95 float64
	} `json:"delay_ms"`
}

func historyEdges(t *testing.T, col started, at time.Time) map[string]historyEdge {
	t.Helper()
	code, _, body := httpGet(t, apiURL(col, "/api/v1/graph?window=5m&at="+at.UTC().Format(time.RFC3339Nano)))
	require.Equal(t, http.StatusOK, code, string(body))
	var g struct {
		Edges []historyEdge `json:"edges"`
	}
	require.NoError(t, json.Unmarshal(body, &g))
	out := map[string]historyEdge{}
	for _, e := range g.Edges {
		out[e.ID] = e
	}
	return out
}

// TestE2ETwoCollectorsOneClickHouse: two collectors each receive half the
// traces (split by trace id) and write to one ClickHouse; the graph read back
// from it equals the graph one collector builds from all the traffic:
// same edges, same counts, same quantiles (the sketches merge exactly).
func TestE2ETwoCollectorsOneClickHouse(t *testing.T) {
	db := clickhouseDB(t)
	dsn := "clickhouse://" + chTCP + "/" + db
	common := []string{"--bucket=500ms", "--flush-interval=200ms", "--window=1m"}
	a := startCollector(t, append(common, "--storage=clickhouse", "--clickhouse-dsn="+dsn, "--collector-id=a")...)
	b := startCollector(t, append(common, "--storage=clickhouse", "--clickhouse-dsn="+dsn, "--collector-id=b")...)
	whole := startCollector(t, common...) // embedded: the reference

	gen := synth.New(7, time.Now())
	for range 5 {
		td := gen.Traces(40)
		postTraces(t, whole, td)
		ta, tb := splitByTrace(td)
		postTraces(t, a, ta)
		postTraces(t, b, tb)
	}
	time.Sleep(12 * time.Second) // pair TTL (10s) for the database calls, then a bucket and a flush
	at := time.Now().Add(time.Second)
	require.Eventually(t, func() bool {
		return len(historyEdges(t, a, at)) == len(historyEdges(t, whole, at)) && len(historyEdges(t, whole, at)) > 0
	}, 10*time.Second, 200*time.Millisecond)
	want, got := historyEdges(t, whole, at), historyEdges(t, b, at)
	require.Len(t, got, len(want))
	for id, w := range want {
		g, ok := got[id]
		require.True(t, ok, "edge %s missing from the merged graph", id)
		require.Equal(t, w.Requests, g.Requests, id)
		require.Equal(t, w.Errors, g.Errors, id)
		require.Equal(t, w.Latency, g.Latency, "quantiles of %s", id)
		require.Equal(t, w.Delay, g.Delay, "delay of %s", id)
	}
}

// TestE2EClickHouseOutage: ClickHouse becomes unreachable under load; the
// collector keeps accepting, buffers, and once it is back every span it
// accepted is in the stored aggregates.
func TestE2EClickHouseOutage(t *testing.T) {
	db := clickhouseDB(t)
	proxy := newTCPProxy(t, chTCP)
	col := startCollector(t, "--storage=clickhouse", "--clickhouse-dsn=clickhouse://"+proxy.ln.Addr().String()+"/"+db,
		"--bucket=500ms", "--flush-interval=200ms", "--window=1m")
	sendAB(t, col, 10)
	require.Eventually(t, func() bool { return storedEdgeRows(t, col) > 0 }, 10*time.Second, 50*time.Millisecond)

	proxy.close()
	sendAB(t, col, 30) // accepted while storage is down
	time.Sleep(time.Second)
	code, _, body := httpGet(t, apiURL(col, "/metrics"))
	require.Equal(t, http.StatusOK, code)
	v, _ := metricValue(string(body), `cartograph_storage_batches_total{outcome="error"}`)
	require.NotEqual(t, "0", v, "failed flushes are counted")

	// ClickHouse is reachable again at the same address.
	newTCPProxyAt(t, proxy.ln.Addr().String(), chTCP)
	require.Eventually(t, func() bool {
		return edgeRequests(t, col, "/api/v1/graph?window=5m&at="+time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)) == 40
	}, 20*time.Second, 200*time.Millisecond, "every accepted call reaches storage once it is back")
}

// TestE2EClickHouseRestartKeepsHistory: a collector on ClickHouse restarts
// and gets its own share of the last window back, without storing it twice.
func TestE2EClickHouseRestartKeepsHistory(t *testing.T) {
	db := clickhouseDB(t)
	args := []string{"--storage=clickhouse", "--clickhouse-dsn=clickhouse://" + chTCP + "/" + db, "--collector-id=c1",
		"--bucket=500ms", "--flush-interval=200ms", "--window=1m"}
	ctx1, stop1 := context.WithCancel(context.Background())
	col1, done1 := runCollector(t, ctx1, args...)
	sendAB(t, col1, 12)
	require.Eventually(t, func() bool { return storedEdgeRows(t, col1) > 0 }, 10*time.Second, 50*time.Millisecond)
	time.Sleep(time.Second) // every bucket of the 12 calls closes and is flushed
	stop1()
	require.NoError(t, <-done1)

	ctx2, stop2 := context.WithCancel(context.Background())
	t.Cleanup(stop2)
	col2, _ := runCollector(t, ctx2, args...)
	require.Equal(t, uint64(12), edgeRequests(t, col2, "/api/v1/graph"), "the live window is back")
	time.Sleep(time.Second) // let the restarted collector flush
	at := time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)
	require.Equal(t, uint64(12), edgeRequests(t, col2, "/api/v1/graph?window=5m&at="+at), "restored buckets are not stored twice")
}
