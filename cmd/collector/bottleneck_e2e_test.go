package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// amReceiver is a stand-in Alertmanager: it records every alert posted to
// /api/v2/alerts.
type amReceiver struct {
	mu     sync.Mutex
	alerts []map[string]any
}

func (a *amReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/api/v2/alerts" || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var batch []map[string]any
	if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	a.alerts = append(a.alerts, batch...)
	a.mu.Unlock()
}

// find returns the newest alert with alertname name whose endsAt satisfies ok.
func (a *amReceiver) find(name string, ok func(endsAt time.Time) bool) map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := len(a.alerts) - 1; i >= 0; i-- {
		al := a.alerts[i]
		labels, _ := al["labels"].(map[string]any)
		end, _ := time.Parse(time.RFC3339Nano, al["endsAt"].(string))
		if labels["alertname"] == name && ok(end) {
			return al
		}
	}
	return nil
}

// TestE2EBottleneckAndAlertmanager drives a service whose own work makes up
// most of a request's latency, behind a caller that only waits on it,
// through OTLP with the Go SDK. bottleneck must fire on the worker, never on
// the caller, and the finding must reach an Alertmanager receiver as a
// firing alert, then as resolved once the slowness ends.
func TestE2EBottleneckAndAlertmanager(t *testing.T) {
	am := &amReceiver{}
	amSrv := httptest.NewServer(am)
	t.Cleanup(amSrv.Close)
	cfgFile := filepath.Join(t.TempDir(), "cartograph.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(`
detectors:
  bottleneck:
    min_traces: 10
alertmanager:
  interval: 500ms
  labels: {cluster: e2e}
`), 0o600))
	col := startCollector(t, "--config="+cfgFile, "--alertmanager-url="+amSrv.URL,
		"--eval-interval=1s", "--window=4s", "--bucket=500ms", "--trace-sample-one-in=1", "--trace-idle=300ms")

	web := newTracerProvider(t, grpcExporter(t, col.OTLPGRPC), "web", "shop")
	pricing := newTracerProvider(t, grpcExporter(t, col.OTLPGRPC), "pricing", "shop")
	ctx := context.Background()
	// One request: web's server span waits on a call to pricing, whose own
	// work takes 90% of the time (slow) or 20% (healthy).
	request := func(slow bool) {
		start := time.Now().Add(-100 * time.Millisecond)
		work := 10 * time.Millisecond
		if slow {
			work = 90 * time.Millisecond
		}
		rctx, root := web.Tracer("e2e").Start(ctx, "GET /quote", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
			trace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.String("http.route", "/quote")))
		cctx, call := web.Tracer("e2e").Start(rctx, "GET", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(start.Add(2*time.Millisecond)),
			trace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.String("server.address", "pricing")))
		_, srv := pricing.Tracer("e2e").Start(trace.ContextWithRemoteSpanContext(ctx, trace.SpanContextFromContext(cctx)), "GET /price",
			trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start.Add(3*time.Millisecond)))
		srv.End(trace.WithTimestamp(start.Add(3*time.Millisecond + work)))
		call.End(trace.WithTimestamp(start.Add(4*time.Millisecond + work)))
		end := start.Add(100 * time.Millisecond)
		if !slow {
			end = start.Add(50 * time.Millisecond) // web's own work dominates when pricing is healthy
		}
		root.End(trace.WithTimestamp(end))
	}
	send := func(slow bool) {
		for range 15 {
			request(slow)
		}
		require.NoError(t, web.ForceFlush(ctx))
		require.NoError(t, pricing.ForceFlush(ctx))
	}
	bottleneck := func(state string) []wireFinding {
		var out []wireFinding
		for _, f := range getFindings(t, col, state) {
			if f.Kind == "bottleneck" {
				out = append(out, f)
			}
		}
		return out
	}

	// Healthy first, long enough for the usual latency to be learnt: web's
	// own work dominates its 50 ms requests, which is no problem.
	for deadline := time.Now().Add(3500 * time.Millisecond); time.Now().Before(deadline); {
		send(false)
		time.Sleep(200 * time.Millisecond)
	}
	require.Empty(t, bottleneck("all"), "a healthy system raises none")

	onset := time.Now()
	var fired []wireFinding
	require.Eventually(t, func() bool {
		send(true)
		fired = bottleneck("firing")
		return len(fired) > 0
	}, 15*time.Second, 200*time.Millisecond, "bottleneck never fired")
	t.Logf("bottleneck fired %v after the slowness began: %s", time.Since(onset), fired[0].Summary)
	require.Len(t, fired, 1, "the caller that only waits is not a bottleneck")
	require.Equal(t, "pricing", fired[0].Subject["node"])
	require.Equal(t, "service:shop/pricing", fired[0].Subject["node_id"])
	require.GreaterOrEqual(t, fired[0].Evidence["self_time_share"], 0.5, "the window still holds healthy traces, where pricing does little")

	// The alert reaches Alertmanager, firing (endsAt in the future).
	require.Eventually(t, func() bool {
		return am.find("CartographBottleneck", func(end time.Time) bool { return end.After(time.Now()) }) != nil
	}, 5*time.Second, 100*time.Millisecond)
	al := am.find("CartographBottleneck", func(time.Time) bool { return true })
	labels := al["labels"].(map[string]any)
	require.Equal(t, "pricing", labels["node"])
	require.Equal(t, "e2e", labels["cluster"])
	require.Equal(t, fired[0].ID, labels["finding_id"])
	require.NotEmpty(t, al["annotations"].(map[string]any)["summary"])

	// pricing recovers: the finding resolves and Alertmanager hears it.
	require.Eventually(t, func() bool {
		send(false)
		return len(bottleneck("resolved")) > 0 && len(bottleneck("firing")) == 0
	}, 20*time.Second, 200*time.Millisecond, "bottleneck never resolved")
	require.Eventually(t, func() bool {
		return am.find("CartographBottleneck", func(end time.Time) bool { return !end.After(time.Now()) }) != nil
	}, 5*time.Second, 100*time.Millisecond, "Alertmanager never got the resolution")
}
