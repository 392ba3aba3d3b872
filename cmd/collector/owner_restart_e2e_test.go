package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TestE2EOwnersSurviveRestartOnClickHouse: a collector on ClickHouse
// judging the merged graph (--detect merged: its graph is read back from
// storage every tick) fires a retry storm on orders -> stock in
// production, beside healthy staging traffic, with owners from the
// services' team attribute. The finding names the callee's team, which
// the merged judge can only know from the stored node rows. After the
// collector stops and another starts on the same database, history still
// knows: /api/v1/findings?at= (while it fired) gives the owner, and
// /api/v1/graph?at=&env=production gives production's nodes with their
// environment, owner and kept k8s attributes.
func TestE2EOwnersSurviveRestartOnClickHouse(t *testing.T) {
	db := clickhouseDB(t)
	args := []string{"--storage=clickhouse", "--clickhouse-dsn=clickhouse://" + chTCP + "/" + db, "--collector-id=c1",
		"--detect=merged", "--eval-interval=1s", "--window=4s", "--bucket=1s", "--flush-interval=200ms", "--pair-ttl=2s"}
	ctx1, stop1 := context.WithCancel(context.Background())
	col1, done1 := runCollector(t, ctx1, args...)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			stop1()
			<-done1
		}
	})

	provider := func(service, env, team, deployment string) *sdktrace.TracerProvider {
		tp := sdktrace.NewTracerProvider(sdktrace.WithResource(resource.NewSchemaless(
			attribute.String("service.name", service), attribute.String("deployment.environment.name", env),
			attribute.String("team", team), attribute.String("k8s.deployment.name", deployment),
			attribute.String("service.instance.id", service+"-7f9c-1"))),
			sdktrace.WithSampler(sdktrace.AlwaysSample()),
			sdktrace.WithBatcher(grpcExporter(t, col1.OTLPGRPC), sdktrace.WithBatchTimeout(50*time.Millisecond)))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = tp.Shutdown(ctx)
		})
		return tp
	}
	ctx := context.Background()
	send := func(caller, callee *sdktrace.TracerProvider, calleeName string, stormy bool) {
		for i := range 30 {
			rctx, root := caller.Tracer("e2e").Start(ctx, "POST /orders", trace.WithSpanKind(trace.SpanKindServer))
			attrs := []attribute.KeyValue{attribute.String("http.request.method", "GET"), attribute.String("server.address", calleeName)}
			if stormy && i%10 < 4 {
				attrs = append(attrs, attribute.Int("http.request.resend_count", 1))
			}
			cctx, call := caller.Tracer("e2e").Start(rctx, "GET", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
			sctx := trace.ContextWithRemoteSpanContext(ctx, trace.SpanContextFromContext(cctx))
			_, srv := callee.Tracer("e2e").Start(sctx, "GET /stock", trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.Int("http.response.status_code", 200)))
			srv.End()
			call.End()
			root.End()
		}
		require.NoError(t, callee.ForceFlush(ctx))
		require.NoError(t, caller.ForceFlush(ctx)) // the root's batch last
	}
	orders, stock := provider("orders", "production", "team-orders", "orders"), provider("stock", "production", "team-stock", "stock")
	ordersStg, stockStg := provider("orders-stg", "staging", "team-orders", "orders"), provider("stock-stg", "staging", "team-stock", "stock")

	var stormID, owner string
	require.Eventually(t, func() bool {
		send(orders, stock, "stock", true)
		send(ordersStg, stockStg, "stock-stg", false)
		for _, f := range getFindingsOwned(t, col1, "/api/v1/findings?state=firing") {
			if f.Kind == "retry_storm" {
				stormID, owner = f.ID, f.Owner
				return true
			}
		}
		return false
	}, 30*time.Second, 300*time.Millisecond, "no retry_storm fired")
	require.Equal(t, "team-stock", owner, "the merged judge names the callee's team from the stored nodes")
	firingAt := time.Now()
	time.Sleep(time.Second) // the finding's state and the last buckets are flushed
	stop1()
	require.NoError(t, <-done1)
	stopped = true

	ctx2, stop2 := context.WithCancel(context.Background())
	col2, done2 := runCollector(t, ctx2, append(args[:2:2], "--collector-id=c2", "--detect=off")...)
	t.Cleanup(func() { stop2(); <-done2 })

	q := url.Values{"at": {firingAt.UTC().Format(time.RFC3339Nano)}, "state": {"all"}}
	var found bool
	for _, f := range getFindingsOwned(t, col2, "/api/v1/findings?"+q.Encode()) {
		if f.ID == stormID {
			found = true
			require.Equal(t, "team-stock", f.Owner, "the stored finding keeps its owner")
		}
	}
	require.True(t, found, "the storm is in the findings of %v", firingAt)

	gq := url.Values{"at": {firingAt.UTC().Format(time.RFC3339Nano)}, "window": {"1m"}, "env": {"production"}}
	code, _, body := httpGet(t, apiURL(col2, "/api/v1/graph?"+gq.Encode()))
	require.Equal(t, http.StatusOK, code, string(body))
	var g struct {
		Nodes []struct {
			ID          string            `json:"id"`
			Owner       string            `json:"owner"`
			Environment string            `json:"environment"`
			Attributes  map[string]string `json:"attributes"`
		} `json:"nodes"`
	}
	require.NoError(t, json.Unmarshal(body, &g))
	byID := map[string]int{}
	for i, n := range g.Nodes {
		byID[n.ID] = i
		require.NotContains(t, n.ID, "-stg", "production's past graph holds no staging node")
	}
	for id, team := range map[string]string{"service:orders": "team-orders", "service:stock": "team-stock"} {
		i, ok := byID[id]
		require.True(t, ok, "%s in %s", id, body)
		n := g.Nodes[i]
		require.Equal(t, team, n.Owner, id)
		require.Equal(t, "production", n.Environment, id)
		require.Equal(t, id[len("service:"):], n.Attributes["k8s.deployment.name"], id)
	}
}

// ownedFinding is a finding of the API with its owner.
type ownedFinding struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	Owner string `json:"owner"`
}

// getFindingsOwned reads a findings URL of col.
func getFindingsOwned(t *testing.T, col started, path string) []ownedFinding {
	t.Helper()
	code, _, body := httpGet(t, apiURL(col, path))
	require.Equal(t, http.StatusOK, code, string(body))
	var resp struct {
		Findings []ownedFinding `json:"findings"`
	}
	require.NoError(t, json.Unmarshal(body, &resp), string(body))
	return resp.Findings
}
