package main

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

type wireFinding struct {
	ID       string            `json:"id"`
	Kind     string            `json:"kind"`
	State    string            `json:"state"`
	Severity string            `json:"severity"`
	Subject  map[string]string `json:"subject"`
	Summary  string            `json:"summary"`
	Evidence map[string]any    `json:"evidence"`
	Blast    *struct {
		Upstream    []map[string]any `json:"upstream"`
		EntryPoints []map[string]any `json:"entry_points"`
	} `json:"blast_radius"`
}

func getFindings(t *testing.T, col started, state string) []wireFinding {
	t.Helper()
	code, _, body := httpGet(t, apiURL(col, "/api/v1/findings?state="+state))
	require.Equal(t, http.StatusOK, code, string(body))
	var resp struct {
		Findings []wireFinding `json:"findings"`
	}
	require.NoError(t, json.Unmarshal(body, &resp), string(body))
	return resp.Findings
}

// TestE2ERetryStorm drives a retry storm through OTLP with the Go SDK and
// checks the finding fires within three evaluation intervals of the spans
// arriving, then resolves once the retries stop.
func TestE2ERetryStorm(t *testing.T) {
	const interval = time.Second
	col := startCollector(t, "--eval-interval=1s", "--window=4s", "--bucket=1s")
	orders := newTracerProvider(t, grpcExporter(t, col.OTLPGRPC), "orders", "")
	stock := newTracerProvider(t, grpcExporter(t, col.OTLPGRPC), "stock", "")
	ordersT, stockT := orders.Tracer("e2e"), stock.Tracer("e2e")

	ws, _, err := websocket.DefaultDialer.Dial("ws://"+col.API.String()+"/api/v1/stream", nil)
	require.NoError(t, err)
	t.Cleanup(func() { ws.Close() })

	ctx := context.Background()
	for i := range 30 {
		rctx, root := ordersT.Start(ctx, "POST /orders", trace.WithSpanKind(trace.SpanKindServer))
		attrs := []attribute.KeyValue{attribute.String("http.request.method", "GET"), attribute.String("server.address", "stock")}
		if i%10 < 4 {
			attrs = append(attrs, attribute.Int("http.request.resend_count", 1))
		}
		cctx, call := ordersT.Start(rctx, "GET", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
		sctx := trace.ContextWithRemoteSpanContext(ctx, trace.SpanContextFromContext(cctx))
		_, srv := stockT.Start(sctx, "GET /stock", trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.Int("http.response.status_code", 200)))
		srv.End()
		call.End()
		root.End()
	}
	require.NoError(t, orders.ForceFlush(ctx))
	require.NoError(t, stock.ForceFlush(ctx))
	flushed := time.Now()

	var storm wireFinding
	require.Eventually(t, func() bool {
		for _, f := range getFindings(t, col, "firing") {
			if f.Kind == "retry_storm" {
				storm = f
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "no retry_storm finding fired")
	latency := time.Since(flushed)
	t.Logf("retry_storm fired %v after the spans were flushed (eval interval %v)", latency, interval)
	// Three intervals at worst (the next aligned tick sees it pending, it
	// holds one interval, the tick after fires it), plus what measuring
	// costs: the 50 ms poll and a loaded CI machine's scheduling.
	require.LessOrEqual(t, latency, 3*interval+250*time.Millisecond, "detection latency")

	require.Equal(t, map[string]string{"source": "orders", "target": "stock", "edge_id": "service:orders->service:stock http"}, storm.Subject)
	require.InDelta(t, 0.4, storm.Evidence["retry_ratio"], 1e-9)
	require.EqualValues(t, 12, storm.Evidence["retries"])
	require.NotEmpty(t, storm.Summary)
	// The stream pushes it too, without being asked.
	require.NoError(t, ws.SetReadDeadline(time.Now().Add(5*time.Second)))
	for pushed := false; !pushed; {
		var m struct {
			Type string `json:"type"`
			Data struct {
				Findings []wireFinding `json:"findings"`
			} `json:"data"`
		}
		require.NoError(t, ws.ReadJSON(&m))
		for _, f := range m.Data.Findings {
			pushed = pushed || (m.Type == "findings" && f.ID == storm.ID && f.State == "firing")
		}
	}
	require.NotNil(t, storm.Blast, "every finding says what it takes down")
	require.Equal(t, "orders", storm.Blast.EntryPoints[0]["node"])
	require.EqualValues(t, 1, storm.Blast.EntryPoints[0]["share"], "every request into orders calls stock")
	for _, f := range getFindings(t, col, "all") {
		if f.ID != storm.ID {
			require.NotEqual(t, "retry_storm", f.Kind, "one storm, one finding: %+v", f)
		}
	}

	// The retries stop: once the 4s window slides past them and the
	// keep-firing time runs out, the finding resolves.
	require.Eventually(t, func() bool {
		for _, f := range getFindings(t, col, "resolved") {
			if f.ID == storm.ID {
				return true
			}
		}
		return false
	}, 15*time.Second, 100*time.Millisecond, "the storm never resolved")
	require.Empty(t, getFindings(t, col, "firing"))
}
