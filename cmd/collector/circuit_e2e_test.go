package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TestE2EOpenCircuit drives a caller whose breaker opens: its calls to a
// service that used to answer start failing in a fraction of a millisecond
// without reaching it. open_circuit must fire on that edge, go from
// half-open to open as the answered calls leave the window, and resolve
// once calls reach the callee again.
func TestE2EOpenCircuit(t *testing.T) {
	const interval = time.Second
	col := startCollector(t, "--eval-interval=1s", "--window=3s", "--bucket=500ms", "--pair-ttl=1s")
	orders := newTracerProvider(t, grpcExporter(t, col.OTLPGRPC), "orders", "")
	stock := newTracerProvider(t, grpcExporter(t, col.OTLPGRPC), "stock", "")
	ctx := context.Background()
	peer := []attribute.KeyValue{attribute.String("http.request.method", "GET"), attribute.String("server.address", "stock"), attribute.Int("server.port", 8080)}

	call := func(answered bool) {
		start := time.Now()
		cctx, c := orders.Tracer("e2e").Start(ctx, "GET", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(start), trace.WithAttributes(peer...))
		if answered {
			sctx := trace.ContextWithRemoteSpanContext(ctx, trace.SpanContextFromContext(cctx))
			_, s := stock.Tracer("e2e").Start(sctx, "GET /stock", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start.Add(time.Millisecond)),
				trace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.Int("http.response.status_code", 200)))
			s.End(trace.WithTimestamp(start.Add(19 * time.Millisecond)))
			c.End(trace.WithTimestamp(start.Add(20 * time.Millisecond)))
			return
		}
		c.SetStatus(codes.Error, "circuit breaker is OPEN")
		c.End(trace.WithTimestamp(start.Add(200 * time.Microsecond)))
	}
	flush := func() {
		require.NoError(t, orders.ForceFlush(ctx))
		require.NoError(t, stock.ForceFlush(ctx))
	}
	circuit := func(state string) *wireFinding {
		for _, f := range getFindings(t, col, state) {
			if f.Kind == "open_circuit" {
				return &f
			}
		}
		return nil
	}

	for range 10 {
		call(true)
	}
	flush()
	time.Sleep(1500 * time.Millisecond) // at least one evaluation sees the edge healthy
	require.Nil(t, circuit("all"))

	onset := time.Now()
	var f *wireFinding
	for f == nil && time.Since(onset) < 15*time.Second {
		for range 10 {
			call(false)
		}
		flush()
		time.Sleep(200 * time.Millisecond)
		f = circuit("firing")
	}
	require.NotNil(t, f, "open_circuit did not fire")
	latency := time.Since(onset)
	t.Logf("open_circuit fired %v after the breaker opened (pair TTL 1s, eval interval %v): %s", latency, interval, f.Summary)
	// Unanswered calls are known when their pair TTL runs out (1s, checked
	// every second), then the finding is pending for one interval.
	require.LessOrEqual(t, latency, 2*time.Second+3*interval)
	require.Equal(t, map[string]string{"source": "orders", "target": "stock", "edge_id": "service:orders->service:stock http"}, f.Subject)
	require.Contains(t, []any{"open", "half_open"}, f.Evidence["state"])

	// Once the healthy calls have left the window, nothing gets through: open.
	require.Eventually(t, func() bool {
		for range 10 {
			call(false)
		}
		flush()
		f = circuit("firing")
		return f != nil && f.Evidence["state"] == "open"
	}, 10*time.Second, 300*time.Millisecond)
	require.Equal(t, "critical", f.Severity)
	require.Positive(t, f.Evidence["normal_p50_ms"], "the healthy latency it fails fast against")

	// The breaker closes: calls reach stock again, and the finding resolves.
	id := f.ID
	require.Eventually(t, func() bool {
		for range 10 {
			call(true)
		}
		flush()
		r := circuit("resolved")
		return r != nil && r.ID == id
	}, 15*time.Second, 300*time.Millisecond, "open_circuit never resolved")
}

// TestE2ECalleeUnreachable is issue #15 5b through real instrumentation:
// an otelhttp client calls an otelhttp server, then the server goes down
// and its port refuses connections within a fraction of a millisecond, as
// fast as an open breaker would fail. open_circuit must fire on the edge
// and say the callee is unreachable, told by the errors' own words (Go's
// "connect: connection refused"), not page the caller's breaker.
func TestE2ECalleeUnreachable(t *testing.T) {
	col := startCollector(t, "--eval-interval=1s", "--window=3s", "--bucket=500ms", "--pair-ttl=1s")
	prop := propagation.TraceContext{}
	orders := newTracerProvider(t, grpcExporter(t, col.OTLPGRPC), "orders", "")
	stock := newTracerProvider(t, grpcExporter(t, col.OTLPGRPC), "stock", "")
	srv := httptest.NewServer(otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		_, _ = io.WriteString(w, "ok")
	}), "stock", otelhttp.WithTracerProvider(stock), otelhttp.WithPropagators(prop)))
	t.Cleanup(srv.Close)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	cl := &http.Client{Transport: otelhttp.NewTransport(tr, otelhttp.WithTracerProvider(orders), otelhttp.WithPropagators(prop)), Timeout: 2 * time.Second}
	ctx := context.Background()
	call := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/stock", nil)
		require.NoError(t, err)
		resp, err := cl.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return err
	}
	flush := func() {
		require.NoError(t, orders.ForceFlush(ctx))
		require.NoError(t, stock.ForceFlush(ctx))
	}
	for range 10 {
		require.NoError(t, call())
	}
	flush()
	time.Sleep(1500 * time.Millisecond)

	srv.Close() // the port refuses connections from now on
	onset := time.Now()
	var f *wireFinding
	for f == nil && time.Since(onset) < 15*time.Second {
		for range 10 {
			err := call()
			require.ErrorContains(t, err, "connection refused")
		}
		flush()
		time.Sleep(200 * time.Millisecond)
		for _, g := range getFindings(t, col, "firing") {
			if g.Kind == "open_circuit" {
				f = &g
			}
		}
	}
	require.NotNil(t, f, "open_circuit did not fire")
	t.Logf("fired %v after the callee went down: %s (evidence %v)", time.Since(onset).Round(time.Millisecond), f.Summary, f.Evidence)
	require.Equal(t, "service:orders->service:stock http", f.Subject["edge_id"])
	require.Equal(t, "callee_unreachable", f.Evidence["cause"])
	require.Equal(t, "error_type", f.Evidence["cause_basis"])
	require.Contains(t, f.Summary, "unreachable")
}
