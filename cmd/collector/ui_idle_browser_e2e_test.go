package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TestUIBrowserIdle is issue #17's idle map in real Chromium: a service
// that stops being called (the service behind a call that broke) stays
// on the map, greyed, with how long it has been quiet, instead of
// vanishing once the window no longer holds its traffic; the edge to it
// stays drawn, idle. The API says the same ("idle": true, "last_seen").
func TestUIBrowserIdle(t *testing.T) {
	dir := *screenshotDir
	if dir == "" {
		dir = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	col := startCollector(t, "--ui-addr=127.0.0.1:0", "--eval-interval=500ms", "--window=3s", "--bucket=1s", "--pair-ttl=1s", "--flush-interval=1s")
	require.NotNil(t, col.UI)
	web := newTracerProvider(t, grpcExporter(t, col.OTLPGRPC), "web", "")
	ledger := newTracerProvider(t, grpcExporter(t, col.OTLPGRPC), "ledger", "")
	cart := newTracerProvider(t, grpcExporter(t, col.OTLPGRPC), "cart", "")
	ctx := context.Background()
	call := func(callee *sdktrace.TracerProvider, name string) {
		start := time.Now()
		cctx, c := web.Tracer("e2e").Start(ctx, "GET", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(start),
			trace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.String("server.address", name)))
		sctx := trace.ContextWithRemoteSpanContext(ctx, trace.SpanContextFromContext(cctx))
		_, s := callee.Tracer("e2e").Start(sctx, "GET /"+name, trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start.Add(time.Millisecond)),
			trace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.Int("http.response.status_code", 200)))
		s.End(trace.WithTimestamp(start.Add(9 * time.Millisecond)))
		c.End(trace.WithTimestamp(start.Add(10 * time.Millisecond)))
	}
	for range 5 {
		call(ledger, "ledger")
	}
	require.NoError(t, web.ForceFlush(ctx))
	require.NoError(t, ledger.ForceFlush(ctx))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // cart keeps being called; ledger is not, from now on
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
				call(cart, "cart")
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })

	browser := newBrowser(t)
	require.NoError(t, within(browser, 20*time.Second, chromedp.Navigate("http://"+col.UI.String()+"/")))
	ledgerSel := `svg#map g.node[data-node="service:ledger"]`
	require.NoError(t, pollJS(browser, 20*time.Second, `(() => { const n = document.querySelector('`+ledgerSel+`');
		return n !== null && n.classList.contains("idle") && n.querySelector("text.kind").textContent.includes("idle") })()`),
		"ledger stays on the map, idle")
	require.True(t, evalJS[bool](t, browser, `document.querySelector('svg#map g.edge.h-idle[data-edge="service:web->service:ledger http"]') !== null`),
		"the edge to ledger stays drawn, idle")
	require.False(t, evalJS[bool](t, browser, `document.querySelector('svg#map g.node[data-node="service:cart"]').classList.contains("idle")`),
		"cart, still called, is not idle")
	screenshot(t, browser, dir, "map-idle")

	g := getGraph(t, col)
	n := g.node("service:ledger")
	require.NotNil(t, n)
	require.True(t, n.Idle)
	require.NotNil(t, n.LastSeen)
	require.WithinDuration(t, time.Now(), *n.LastSeen, 30*time.Second)
}
