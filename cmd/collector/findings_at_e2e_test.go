package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// pastFinding is what TestE2EFindingsAtPastTime reads of a finding beyond
// wireFinding: its resolution and timeline.
type pastFinding struct {
	ID         string     `json:"id"`
	ResolvedAt *time.Time `json:"resolved_at"`
	Timeline   []struct {
		At    time.Time `json:"at"`
		State string    `json:"state"`
	} `json:"timeline"`
}

// getFindingsAt reads GET /api/v1/findings?at=&state=all, answering its
// status and findings.
func getFindingsAt(t *testing.T, col started, at time.Time) (int, []wireFinding) {
	t.Helper()
	q := url.Values{"at": {at.UTC().Format(time.RFC3339Nano)}, "state": {"all"}}
	code, _, body := httpGet(t, apiURL(col, "/api/v1/findings?"+q.Encode()))
	var resp struct {
		Findings []wireFinding `json:"findings"`
	}
	if code == http.StatusOK {
		require.NoError(t, json.Unmarshal(body, &resp), string(body))
	}
	return code, resp.Findings
}

// TestE2EFindingsAtPastTime: a retry storm fires and resolves; afterwards
// the findings of a time in between, read from storage, show it firing,
// not resolved, with no step after that time; a time after it resolved
// shows it no more.
func TestE2EFindingsAtPastTime(t *testing.T) {
	col := startCollector(t, "--eval-interval=1s", "--window=4s", "--bucket=1s", "--flush-interval=200ms")
	orders := newTracerProvider(t, grpcExporter(t, col.OTLPGRPC), "orders", "")
	stock := newTracerProvider(t, grpcExporter(t, col.OTLPGRPC), "stock", "")
	ordersT, stockT := orders.Tracer("e2e"), stock.Tracer("e2e")
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
	firingAt := time.Now()

	require.Eventually(t, func() bool {
		for _, f := range getFindings(t, col, "resolved") {
			if f.ID == storm.ID {
				return true
			}
		}
		return false
	}, 15*time.Second, 100*time.Millisecond, "the storm never resolved")
	// Once storage holds it resolved, a time after that no longer lists it.
	resolvedBy := time.Now()
	require.Eventually(t, func() bool {
		code, fs := getFindingsAt(t, col, resolvedBy)
		require.Equal(t, http.StatusOK, code)
		for _, f := range fs {
			if f.ID == storm.ID {
				return false
			}
		}
		return true
	}, 5*time.Second, 100*time.Millisecond, "storage never held the storm resolved")

	code, fs := getFindingsAt(t, col, firingAt)
	require.Equal(t, http.StatusOK, code)
	var then *wireFinding
	for i := range fs {
		if fs[i].ID == storm.ID {
			then = &fs[i]
		}
	}
	require.NotNil(t, then, "the storm is listed as it was while firing: %+v", fs)
	require.Equal(t, "firing", then.State)
	require.Equal(t, "retry_storm", then.Kind)

	// The same read, raw: no resolution and no step after that time.
	q := url.Values{"at": {firingAt.UTC().Format(time.RFC3339Nano)}}
	code, _, body := httpGet(t, apiURL(col, "/api/v1/findings?"+q.Encode()))
	require.Equal(t, http.StatusOK, code, string(body))
	var raw struct {
		Findings []pastFinding `json:"findings"`
	}
	require.NoError(t, json.Unmarshal(body, &raw))
	i := slices.IndexFunc(raw.Findings, func(f pastFinding) bool { return f.ID == storm.ID })
	require.GreaterOrEqual(t, i, 0, string(body))
	got := raw.Findings[i]
	require.Nil(t, got.ResolvedAt)
	require.NotEmpty(t, got.Timeline)
	for _, c := range got.Timeline {
		require.False(t, c.At.After(firingAt), "a step after the time asked for: %s", string(body))
		require.NotEqual(t, "resolved", c.State)
	}
	require.Equal(t, "firing", got.Timeline[len(got.Timeline)-1].State)
}
