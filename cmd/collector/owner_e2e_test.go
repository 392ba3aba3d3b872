package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TestE2EOwnershipAndEnvironments sends two environments' traffic through
// OTLP (orders -> stock in production, with retries; the same pair in
// staging, healthy), with owners from a resource attribute (orders' team)
// and from a Backstage catalog (stock, matched by its service-name
// annotation), to a collector pushing to a real Alertmanager configured
// with the README's example (its Ownership section), which routes by
// owner. ?env= separates the environments; nodes,
// the retry-storm finding (the callee's team) and its incident carry the
// owner; Alertmanager routes the alert to that team's receiver.
func TestE2EOwnershipAndEnvironments(t *testing.T) {
	am := startAlertmanagerWith(t, readmeAlertmanagerConfig(t))
	dir := t.TempDir()
	catalog := filepath.Join(dir, "catalog-info.yaml")
	require.NoError(t, os.WriteFile(catalog, []byte(`apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: stock-service
  annotations:
    opentelemetry.io/service-name: stock
spec:
  type: service
  owner: team-stock
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: orders
spec:
  type: service
  owner: catalog-says-someone-else
`), 0o600))
	cfgFile := filepath.Join(dir, "cartograph.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte("alertmanager:\n  interval: 1s\n"), 0o600))
	col := startCollector(t, "--config="+cfgFile, "--alertmanager-url="+am, "--backstage-catalog="+catalog,
		"--eval-interval=1s", "--window=4s", "--bucket=1s")

	provider := func(service, env string, extra ...attribute.KeyValue) *sdktrace.TracerProvider {
		attrs := append([]attribute.KeyValue{attribute.String("service.name", service), attribute.String("deployment.environment.name", env)}, extra...)
		tp := sdktrace.NewTracerProvider(sdktrace.WithResource(resource.NewSchemaless(attrs...)),
			sdktrace.WithSampler(sdktrace.AlwaysSample()),
			sdktrace.WithBatcher(grpcExporter(t, col.OTLPGRPC), sdktrace.WithBatchTimeout(50*time.Millisecond)))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			require.NoError(t, tp.Shutdown(ctx))
		})
		return tp
	}
	ctx := context.Background()
	// send makes 30 calls caller -> callee, retries among them when stormy.
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
		require.NoError(t, caller.ForceFlush(ctx))
		require.NoError(t, callee.ForceFlush(ctx))
	}
	orders := provider("orders", "production", attribute.String("team", "team-orders"))
	stock := provider("stock", "production")
	ordersStg := provider("orders-stg", "staging", attribute.String("team", "team-orders"))
	stockStg := provider("stock-stg", "staging")

	type node struct {
		ID          string `json:"id"`
		Owner       string `json:"owner"`
		Environment string `json:"environment"`
	}
	graphOf := func(env string) (int, map[string]node, string) {
		code, _, body := httpGet(t, apiURL(col, "/api/v1/graph?env="+url.QueryEscape(env)))
		var g struct {
			Nodes []node `json:"nodes"`
		}
		out := map[string]node{}
		if code == http.StatusOK {
			require.NoError(t, json.Unmarshal(body, &g))
			for _, n := range g.Nodes {
				out[n.ID] = n
			}
		}
		return code, out, string(body)
	}

	var storm wireFinding
	var owner string
	require.Eventually(t, func() bool {
		send(orders, stock, "stock", true)
		send(ordersStg, stockStg, "stock-stg", false)
		code, _, body := httpGet(t, apiURL(col, "/api/v1/findings?state=firing"))
		require.Equal(t, http.StatusOK, code)
		var resp struct {
			Findings []struct {
				wireFinding
				Owner string `json:"owner"`
			} `json:"findings"`
		}
		require.NoError(t, json.Unmarshal(body, &resp))
		for _, f := range resp.Findings {
			if f.Kind == "retry_storm" {
				storm, owner = f.wireFinding, f.Owner
				return true
			}
		}
		return false
	}, 20*time.Second, 300*time.Millisecond, "no retry_storm fired")
	require.Equal(t, "stock", storm.Subject["target"])
	require.Equal(t, "team-stock", owner, "the callee's team must act")

	code, prod, body := graphOf("production")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, node{ID: "service:orders", Owner: "team-orders", Environment: "production"}, prod["service:orders"], "the attribute before the catalog")
	require.Equal(t, node{ID: "service:stock", Owner: "team-stock", Environment: "production"}, prod["service:stock"], "the catalog, by annotation")
	for id := range prod {
		require.NotContains(t, id, "-stg", "production's graph holds no staging node")
	}
	code, stg, body := graphOf("staging")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, stg, "service:orders-stg")
	require.Contains(t, stg, "service:stock-stg")
	require.NotContains(t, stg, "service:orders")
	code, all, _ := graphOf("all")
	require.Equal(t, http.StatusOK, code)
	require.Subset(t, keys(all), []string{"service:orders", "service:stock", "service:orders-stg", "service:stock-stg"})
	code, _, body = graphOf("qa")
	require.Equal(t, http.StatusBadRequest, code)
	require.JSONEq(t, `{"error":"env: unknown environment \"qa\": the graph has production, staging (or ask for env=all)"}`, body)

	// Alertmanager holds the alert with the owner label, routed to the
	// owner's receiver.
	var alerts []struct {
		Labels    map[string]string `json:"labels"`
		Receivers []struct {
			Name string `json:"name"`
		} `json:"receivers"`
	}
	require.Eventually(t, func() bool {
		send(orders, stock, "stock", true)
		q := url.Values{"active": {"true"}, "filter": {fmt.Sprintf("finding_id=%q", storm.ID)}}
		resp, err := http.Get(am + "/api/v2/alerts?" + q.Encode())
		require.NoError(t, err)
		defer resp.Body.Close()
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&alerts))
		return len(alerts) == 1
	}, 20*time.Second, 300*time.Millisecond, "the finding's alert never reached Alertmanager")
	require.Equal(t, "team-stock", alerts[0].Labels["owner"])
	require.Len(t, alerts[0].Receivers, 1)
	require.Equal(t, "team-stock", alerts[0].Receivers[0].Name, "routed by owner")

	// The incident names the owner of its root cause.
	code, _, incBody := httpGet(t, apiURL(col, "/api/v1/incidents"))
	require.Equal(t, http.StatusOK, code)
	var incs struct {
		Incidents []struct {
			Findings   []string `json:"findings"`
			Owner      string   `json:"owner"`
			RootCauses []struct {
				Node string `json:"node"`
			} `json:"root_causes"`
		} `json:"incidents"`
	}
	require.NoError(t, json.Unmarshal(incBody, &incs), string(incBody))
	found := false
	for _, inc := range incs.Incidents {
		for _, id := range inc.Findings {
			if id == storm.ID {
				found = true
				require.NotEmpty(t, inc.RootCauses)
				want := map[string]string{"stock": "team-stock", "orders": "team-orders"}[inc.RootCauses[0].Node]
				require.Equal(t, want, inc.Owner, "the owner of root cause %s", inc.RootCauses[0].Node)
			}
		}
	}
	require.True(t, found, "an incident holds the storm: %s", incBody)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// readmeAlertmanagerConfig returns the Alertmanager configuration the
// README's "Ownership and paging routes" section shows: its first yaml
// block.
func readmeAlertmanagerConfig(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(raw), "\n## Ownership and paging routes\n")
	require.True(t, ok, "the README has an Ownership and paging routes section")
	section, _, _ = strings.Cut(section, "\n## ")
	_, block, ok := strings.Cut(section, "```yaml\n")
	require.True(t, ok, "the section shows an Alertmanager configuration")
	block, _, ok = strings.Cut(block, "```")
	require.True(t, ok)
	require.Contains(t, block, `owner="team-stock"`, "a route for the team this test pages")
	return block
}
