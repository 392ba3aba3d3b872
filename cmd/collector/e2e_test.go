package main

// End-to-end tests: the collector runs in-process on loopback ports picked by
// the kernel, and real OpenTelemetry SDKs, exporters and instrumentations
// (otelhttp, otelgrpc) send it the traces of a small instrumented system.
// The graph is read back over the JSON API and parsed into local structs
// mirroring the wire shape, so these tests check the contract of SPEC.md, not
// the graph package's Go types.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// --- wire shape of GET /api/v1/graph (SPEC.md "HTTP API") -------------------

type wireGraph struct {
	GeneratedAt   *time.Time `json:"generated_at"`
	WindowSeconds float64    `json:"window_seconds"`
	Nodes         []wireNode `json:"nodes"`
	Edges         []wireEdge `json:"edges"`
}

type wireNode struct {
	ID        string     `json:"id"`
	Kind      string     `json:"kind"`
	Name      string     `json:"name"`
	Namespace string     `json:"namespace"`
	Idle      bool       `json:"idle"`
	LastSeen  *time.Time `json:"last_seen"`
}

type wireEdge struct {
	ID            string           `json:"id"`
	Source        string           `json:"source"`
	Target        string           `json:"target"`
	Kind          string           `json:"kind"`
	Protocol      string           `json:"protocol"`
	ConsumerGroup string           `json:"consumer_group"`
	Requests      *uint64          `json:"requests"`
	RatePerS      *float64         `json:"rate_per_s"`
	Errors        *uint64          `json:"errors"`
	ErrorRatio    *float64         `json:"error_ratio"`
	Retries       *uint64          `json:"retries"`
	RetryRatio    *float64         `json:"retry_ratio"`
	Latency       *wireQuantiles   `json:"latency_ms"`
	ServerLatency *wireQuantiles   `json:"server_latency_ms"`
	ClientLatency *wireQuantiles   `json:"client_latency_ms"`
	Delay         *wireQuantiles   `json:"delay_ms"`
	Lag           *json.RawMessage `json:"lag"`
}

type wireQuantiles struct {
	P50 *float64 `json:"p50"`
	P95 *float64 `json:"p95"`
	P99 *float64 `json:"p99"`
}

func (g *wireGraph) edge(source, target string) *wireEdge {
	for i := range g.Edges {
		if g.Edges[i].Source == source && g.Edges[i].Target == target {
			return &g.Edges[i]
		}
	}
	return nil
}

func (g *wireGraph) node(id string) *wireNode {
	for i := range g.Nodes {
		if g.Nodes[i].ID == id {
			return &g.Nodes[i]
		}
	}
	return nil
}

func (g *wireGraph) String() string {
	b, _ := json.MarshalIndent(g, "", "  ")
	return string(b)
}

func (e *wireEdge) requests() uint64 {
	if e == nil || e.Requests == nil {
		return 0
	}
	return *e.Requests
}

// --- the collector under test -------------------------------------------------

// startCollector runs the collector in-process on kernel-picked loopback
// ports and returns the addresses it bound. At cleanup it cancels run's
// context and requires run to return nil.
func startCollector(t *testing.T, extraArgs ...string) started {
	t.Helper()
	return startCollectorEnv(t, nil, extraArgs...)
}

// startCollectorEnv is startCollector with environment variables env.
func startCollectorEnv(t *testing.T, env map[string]string, extraArgs ...string) started {
	t.Helper()
	args := append([]string{
		"--otlp-grpc-addr=127.0.0.1:0",
		"--otlp-http-addr=127.0.0.1:0",
		"--api-addr=127.0.0.1:0",
		"--ui-addr=",
		"--pair-ttl=2s",
		"--log-level=warn",
		"--data-dir=" + t.TempDir(),
	}, extraArgs...)
	cfg, err := parseConfig(args, func(k string) string { return env[k] }, io.Discard)
	require.NoError(t, err)

	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: cfg.LogLevel}))
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan started, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, logger, func(s started) { addrs <- s }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err, "run returned an error at shutdown")
		case <-time.After(15 * time.Second): // run allows its components 10s
			t.Error("run did not return within 15s of its context being cancelled")
		}
	})

	select {
	case s := <-addrs:
		require.NotNil(t, s.OTLPGRPC)
		require.NotNil(t, s.OTLPHTTP)
		require.NotNil(t, s.API)
		return s
	case err := <-done:
		t.Fatalf("run returned before starting: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("collector did not start within 5s")
	}
	return started{}
}

func apiURL(s started, path string) string { return "http://" + s.API.String() + path }

// testClient talks to the collector. It keeps no connection open, so the
// collector's graceful shutdown never waits on one.
var testClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true},
	Timeout:   15 * time.Second,
}

func httpGet(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	// 15 s: a collector's /metrics or a history read can take seconds on
	// cores shared with other tests; a hang still fails.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := testClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, body
}

func getGraph(t *testing.T, s started) *wireGraph {
	t.Helper()
	code, hdr, body := httpGet(t, apiURL(s, "/api/v1/graph"))
	require.Equal(t, http.StatusOK, code, "GET /api/v1/graph: %s", body)
	require.Contains(t, hdr.Get("Content-Type"), "application/json")
	var g wireGraph
	require.NoError(t, json.Unmarshal(body, &g), "GET /api/v1/graph body: %s", body)
	return &g
}

// pollGraph polls the graph every 100ms until done holds or the deadline
// passes, and returns the last graph read.
func pollGraph(t *testing.T, s started, timeout time.Duration, done func(*wireGraph) bool) *wireGraph {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		g := getGraph(t, s)
		if done(g) || time.Now().After(deadline) {
			return g
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metricValue returns the value of the unlabelled sample name in a
// Prometheus text exposition.
func metricValue(exposition, name string) (string, bool) {
	for line := range strings.Lines(exposition) {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == name {
			return f[1], true
		}
	}
	return "", false
}

// --- the instrumented system ----------------------------------------------------

// newTracerProvider returns a TracerProvider of its own for one service,
// batching to exp with a short timeout; it is shut down at cleanup.
func newTracerProvider(t *testing.T, exp sdktrace.SpanExporter, service, namespace string) *sdktrace.TracerProvider {
	t.Helper()
	attrs := []attribute.KeyValue{attribute.String("service.name", service)}
	if namespace != "" {
		attrs = append(attrs, attribute.String("service.namespace", namespace))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(50*time.Millisecond)),
	)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, tp.Shutdown(ctx), "shutdown of %s's TracerProvider", service)
	})
	return tp
}

func grpcExporter(t *testing.T, addr net.Addr, opts ...otlptracegrpc.Option) sdktrace.SpanExporter {
	t.Helper()
	opts = append([]otlptracegrpc.Option{otlptracegrpc.WithEndpoint(addr.String()), otlptracegrpc.WithInsecure()}, opts...)
	exp, err := otlptracegrpc.New(context.Background(), opts...)
	require.NoError(t, err)
	return exp
}

func httpExporter(t *testing.T, addr net.Addr, opts ...otlptracehttp.Option) sdktrace.SpanExporter {
	t.Helper()
	// The exporter's Shutdown leaves its keep-alive connections open, and
	// net/http's Transport may hold one it dialled but never sent a request
	// on; the collector's http.Server.Shutdown waits up to 5s for such a
	// connection. Close them once the TracerProvider (registered after this
	// cleanup, so shut down before it runs) is done.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	opts = append([]otlptracehttp.Option{
		otlptracehttp.WithEndpoint(addr.String()), otlptracehttp.WithInsecure(),
		otlptracehttp.WithHTTPClient(&http.Client{Transport: tr, Timeout: 5 * time.Second}),
	}, opts...)
	exp, err := otlptracehttp.New(context.Background(), opts...)
	require.NoError(t, err)
	return exp
}

// shop is the instrumented system: frontend calls backend over HTTP and
// inventory over gRPC for every request it serves.
type shop struct {
	frontendURL string
	providers   []*sdktrace.TracerProvider
}

// startShop starts frontend (namespace shop, exporting over OTLP/gRPC),
// backend (namespace shop, OTLP/HTTP protobuf with gzip) and inventory (no
// namespace, OTLP/HTTP protobuf). backend answers 500 to every 4th request.
func startShop(t *testing.T, col started) *shop {
	t.Helper()
	prop := propagation.TraceContext{}

	tpFrontend := newTracerProvider(t, grpcExporter(t, col.OTLPGRPC), "frontend", "shop")
	tpBackend := newTracerProvider(t, httpExporter(t, col.OTLPHTTP, otlptracehttp.WithCompression(otlptracehttp.GzipCompression)), "backend", "shop")
	tpInventory := newTracerProvider(t, httpExporter(t, col.OTLPHTTP), "inventory", "")

	// backend
	var backendCalls atomic.Int64
	backend := httptest.NewServer(otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if backendCalls.Add(1)%4 == 0 {
			http.Error(w, "backend failure", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}), "backend", otelhttp.WithTracerProvider(tpBackend), otelhttp.WithPropagators(prop)))
	t.Cleanup(backend.Close)

	// inventory
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	inventory := grpc.NewServer(grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(tpInventory), otelgrpc.WithPropagators(prop))))
	healthpb.RegisterHealthServer(inventory, health.NewServer())
	go func() { _ = inventory.Serve(lis) }()
	t.Cleanup(inventory.Stop)

	// frontend
	conn, err := grpc.NewClient(lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(tpFrontend), otelgrpc.WithPropagators(prop))))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	inventoryClient := healthpb.NewHealthClient(conn)
	backendClient := &http.Client{
		Transport: otelhttp.NewTransport(http.DefaultTransport.(*http.Transport).Clone(),
			otelhttp.WithTracerProvider(tpFrontend), otelhttp.WithPropagators(prop)),
		Timeout: 5 * time.Second,
	}
	t.Cleanup(backendClient.CloseIdleConnections)
	frontend := httptest.NewServer(otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, backend.URL+"/items", nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp, err := backendClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		hc, err := inventoryClient.Check(r.Context(), &healthpb.HealthCheckRequest{})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		// The frontend degrades gracefully: it answers 200 whatever backend said.
		fmt.Fprintf(w, "backend %d, inventory %s\n", resp.StatusCode, hc.GetStatus())
	}), "frontend", otelhttp.WithTracerProvider(tpFrontend), otelhttp.WithPropagators(prop)))
	t.Cleanup(frontend.Close)

	return &shop{frontendURL: frontend.URL, providers: []*sdktrace.TracerProvider{tpFrontend, tpBackend, tpInventory}}
}

func (s *shop) flush(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tp := range s.providers {
		require.NoError(t, tp.ForceFlush(ctx))
	}
}

// --- tests ------------------------------------------------------------------------

func TestE2EGraphFromInstrumentedServices(t *testing.T) {
	col := startCollector(t)
	sys := startShop(t, col)

	const requests = 20
	plain := &http.Client{Timeout: 5 * time.Second} // uninstrumented caller
	t.Cleanup(plain.CloseIdleConnections)
	for i := range requests {
		resp, err := plain.Get(sys.frontendURL + "/checkout")
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "request %d: %s", i, body)
	}
	sys.flush(t)

	const (
		client    = "client:client"
		frontend  = "service:shop/frontend"
		backend   = "service:shop/backend"
		inventory = "service:inventory"
	)
	g := pollGraph(t, col, 10*time.Second, func(g *wireGraph) bool {
		return g.edge(client, frontend).requests() >= requests &&
			g.edge(frontend, backend).requests() >= requests &&
			g.edge(frontend, inventory).requests() >= requests
	})
	t.Logf("graph:\n%s", g)

	// Every client span met its server span: once the pair TTL has run
	// out, nothing is left waiting and no client or server half-edge
	// expired unpaired. (A client span exported before its parent server
	// span, the usual order, waits to learn its parent until then, paired
	// or not, so the half-edge gauge is not 0 at once.)
	var body []byte
	require.Eventually(t, func() bool {
		var code int
		code, _, body = httpGet(t, apiURL(col, "/metrics"))
		require.Equal(t, http.StatusOK, code)
		halfEdges, ok := metricValue(string(body), "cartograph_graph_half_edges")
		require.True(t, ok, "cartograph_graph_half_edges missing from /metrics")
		return halfEdges == "0"
	}, 20*time.Second, 250*time.Millisecond, "half-edges still pending a pair TTL after every span was flushed")
	for _, kind := range []string{"client", "client_no_peer", "client_unanswered", "client_sampled", "server"} {
		v, _ := metricValue(string(body), `cartograph_graph_half_edges_expired_total{kind="`+kind+`"}`)
		require.Contains(t, []string{"", "0"}, v, "%s half-edges expired unpaired", kind)
	}

	require.NotNil(t, g.GeneratedAt, "generated_at")
	require.WithinDuration(t, time.Now(), *g.GeneratedAt, time.Minute)
	require.Equal(t, 60.0, g.WindowSeconds)

	// Nodes: exactly the four, with their kinds and groups.
	ids := make([]string, 0, len(g.Nodes))
	for _, n := range g.Nodes {
		ids = append(ids, n.ID)
	}
	sort.Strings(ids)
	require.Equal(t, []string{client, inventory, backend, frontend}, ids, "node ids")
	require.Equal(t, wireNode{ID: client, Kind: "client", Name: "client"}, *g.node(client))
	require.Equal(t, wireNode{ID: frontend, Kind: "service", Name: "frontend", Namespace: "shop"}, *g.node(frontend))
	require.Equal(t, wireNode{ID: backend, Kind: "service", Name: "backend", Namespace: "shop"}, *g.node(backend))
	require.Equal(t, wireNode{ID: inventory, Kind: "service", Name: "inventory"}, *g.node(inventory))

	// Edges: exactly the three.
	require.Len(t, g.Edges, 3, "edges: %s", g)
	positive := func(name string, q *wireQuantiles) {
		t.Helper()
		require.NotNil(t, q, name)
		for _, v := range []struct {
			n string
			p *float64
		}{{"p50", q.P50}, {"p95", q.P95}, {"p99", q.P99}} {
			require.NotNil(t, v.p, "%s.%s", name, v.n)
			require.Greater(t, *v.p, 0.0, "%s.%s", name, v.n)
		}
		require.LessOrEqual(t, *q.P50, *q.P95, name)
		require.LessOrEqual(t, *q.P95, *q.P99, name)
	}
	common := func(e *wireEdge, proto string, reqs, errs uint64, ratio float64, retriesSeen bool) {
		t.Helper()
		require.NotNil(t, e)
		require.NotEmpty(t, e.ID)
		require.Equal(t, "sync", e.Kind, e.ID)
		require.Equal(t, proto, e.Protocol, e.ID)
		require.Empty(t, e.ConsumerGroup, e.ID)
		require.NotNil(t, e.Requests, e.ID)
		require.Equal(t, reqs, *e.Requests, "%s requests", e.ID)
		require.NotNil(t, e.Errors, e.ID)
		require.Equal(t, errs, *e.Errors, "%s errors", e.ID)
		require.NotNil(t, e.ErrorRatio, e.ID)
		require.InDelta(t, ratio, *e.ErrorRatio, 1e-9, "%s error_ratio", e.ID)
		require.NotNil(t, e.RatePerS, e.ID)
		require.Greater(t, *e.RatePerS, 0.0, "%s rate_per_s", e.ID)
		if retriesSeen {
			require.NotNil(t, e.Retries, e.ID)
			require.Zero(t, *e.Retries, "%s retries: no call was retried", e.ID)
			require.NotNil(t, e.RetryRatio, e.ID)
			require.Zero(t, *e.RetryRatio, e.ID)
		} else {
			require.Nil(t, e.Retries, "%s: no caller span, retries cannot be seen: omitted, not 0", e.ID)
			require.Nil(t, e.RetryRatio, e.ID)
		}
		require.Nil(t, e.Delay, "%s: delay_ms applies to async edges only", e.ID)
		require.Nil(t, e.Lag, "%s: lag applies to async edges only", e.ID)
		positive(e.ID+" latency_ms", e.Latency)
		positive(e.ID+" server_latency_ms", e.ServerLatency)
		require.Equal(t, *e.ServerLatency, *e.Latency, "%s: latency_ms is the server side where it exists", e.ID)
	}

	// The uninstrumented caller: server side only.
	cf := g.edge(client, frontend)
	common(cf, "http", requests, 0, 0, false)
	require.Nil(t, cf.ClientLatency, "client -> frontend has no client span: client_latency_ms must be omitted")

	fb := g.edge(frontend, backend)
	common(fb, "http", requests, 5, 0.25, true)
	positive("frontend->backend client_latency_ms", fb.ClientLatency)

	fi := g.edge(frontend, inventory)
	common(fi, "grpc", requests, 0, 0, true)
	positive("frontend->inventory client_latency_ms", fi.ClientLatency)
}

// otlpJSONTrace is one trace in OTLP/JSON: a client span in service a and the
// server span in service b whose parent it is.
func otlpJSONTrace(traceID string) string {
	now := time.Now()
	ns := func(d time.Duration) string { return fmt.Sprint(now.Add(d).UnixNano()) }
	return `{"resourceSpans":[
 {"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}}]},
  "scopeSpans":[{"scope":{"name":"handwritten"},"spans":[
   {"traceId":"` + traceID + `","spanId":"1111111111111111","name":"GET","kind":3,
    "startTimeUnixNano":"` + ns(-50*time.Millisecond) + `","endTimeUnixNano":"` + ns(-10*time.Millisecond) + `",
    "attributes":[{"key":"http.request.method","value":{"stringValue":"GET"}},
                  {"key":"url.full","value":{"stringValue":"http://b:8080/items"}},
                  {"key":"server.address","value":{"stringValue":"b"}},
                  {"key":"http.response.status_code","value":{"intValue":"200"}}],
    "status":{}}]}]},
 {"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"b"}}]},
  "scopeSpans":[{"scope":{"name":"handwritten"},"spans":[
   {"traceId":"` + traceID + `","spanId":"2222222222222222","parentSpanId":"1111111111111111","name":"GET /items","kind":2,
    "startTimeUnixNano":"` + ns(-40*time.Millisecond) + `","endTimeUnixNano":"` + ns(-20*time.Millisecond) + `",
    "attributes":[{"key":"http.request.method","value":{"stringValue":"GET"}},
                  {"key":"http.route","value":{"stringValue":"/items"}},
                  {"key":"http.response.status_code","value":{"intValue":"200"}}],
    "status":{}}]}]}
]}`
}

func postOTLPJSON(t *testing.T, col started, body string) (int, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+col.OTLPHTTP.String()+"/v1/traces", bytes.NewBufferString(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := testClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, b
}

func TestE2EOTLPHTTPJSON(t *testing.T) {
	col := startCollector(t)

	code, hdr, body := postOTLPJSON(t, col, otlpJSONTrace("5b8efff798038103d269b633813fc60c"))
	require.Equal(t, http.StatusOK, code, "POST /v1/traces: %s", body)
	require.Contains(t, hdr.Get("Content-Type"), "application/json")
	// Nothing was rejected. (The response carries an empty partialSuccess
	// object, which OTLP clients read as full success.)
	var resp struct {
		PartialSuccess *struct {
			RejectedSpans json.Number `json:"rejectedSpans"`
			ErrorMessage  string      `json:"errorMessage"`
		} `json:"partialSuccess"`
	}
	require.NoError(t, json.Unmarshal(body, &resp), "response body: %s", body)
	if ps := resp.PartialSuccess; ps != nil {
		require.Contains(t, []json.Number{"", "0"}, ps.RejectedSpans, "rejected spans: %s", body)
		require.Empty(t, ps.ErrorMessage, "partial success message: %s", body)
	}

	g := pollGraph(t, col, 10*time.Second, func(g *wireGraph) bool { return g.edge("service:a", "service:b") != nil })
	e := g.edge("service:a", "service:b")
	require.NotNil(t, e, "edge a -> b missing: %s", g)
	require.Equal(t, uint64(1), e.requests(), "a -> b requests: %s", g)
	require.Equal(t, "sync", e.Kind)
	require.Equal(t, "http", e.Protocol)
	require.NotNil(t, e.Errors)
	require.Zero(t, *e.Errors)
	require.NotNil(t, e.ServerLatency)
	require.NotNil(t, e.ClientLatency)
	require.Len(t, g.Edges, 1, "only a -> b: %s", g)
	require.Len(t, g.Nodes, 2, "only a and b: %s", g)
}

func TestE2EMetricsHealthAndAPIErrors(t *testing.T) {
	col := startCollector(t)

	// Give every metric family something to show: one OTLP request and one
	// API request.
	code, _, body := postOTLPJSON(t, col, otlpJSONTrace("6c9f0008a9149214e37ac744924ad71d"))
	require.Equal(t, http.StatusOK, code, "POST /v1/traces: %s", body)
	getGraph(t, col)

	code, hdr, body := httpGet(t, apiURL(col, "/metrics"))
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, hdr.Get("Content-Type"), "text/plain")
	m := string(body)
	for _, name := range []string{
		"cartograph_graph_half_edges",
		"cartograph_graph_spans_total",
		"cartograph_receiver_",
		"cartograph_api_request_duration_seconds",
	} {
		require.Contains(t, m, "\n# TYPE "+name, "/metrics lacks %s", name)
	}
	spans, ok := metricValue(m, "cartograph_graph_spans_total")
	require.True(t, ok, "cartograph_graph_spans_total has no unlabelled sample")
	require.Equal(t, "2", spans, "cartograph_graph_spans_total after one request of two spans")

	for _, p := range []string{"/healthz", "/readyz"} {
		code, _, body := httpGet(t, apiURL(col, p))
		require.Equal(t, http.StatusOK, code, "GET %s: %s", p, body)
	}

	for _, tc := range []struct{ query, why string }{
		{"window=abc", "not a duration"},
		{"window=7d", "days are not a Go duration"},
		{"window=-5s", "negative"},
	} {
		code, hdr, body := httpGet(t, apiURL(col, "/api/v1/graph?"+tc.query))
		require.Equal(t, http.StatusBadRequest, code, "?%s (%s): %s", tc.query, tc.why, body)
		require.Contains(t, hdr.Get("Content-Type"), "application/json", "?%s", tc.query)
		var e struct {
			Error string `json:"error"`
		}
		require.NoError(t, json.Unmarshal(body, &e), "?%s: body %s", tc.query, body)
		require.NotEmpty(t, e.Error, "?%s: body %s", tc.query, body)
	}

	// A window up to the in-memory one is live; a longer one comes from
	// storage.
	for _, w := range []struct {
		q    string
		secs float64
	}{{"30s", 30}, {"10m", 600}} {
		code, _, body = httpGet(t, apiURL(col, "/api/v1/graph?window="+w.q))
		require.Equal(t, http.StatusOK, code, "?window=%s: %s", w.q, body)
		var g wireGraph
		require.NoError(t, json.Unmarshal(body, &g))
		require.Equal(t, w.secs, g.WindowSeconds)
	}
}

func TestConfigFlagsAndEnv(t *testing.T) {
	env := func(kv map[string]string) func(string) string {
		return func(k string) string { return kv[k] }
	}
	parse := func(args []string, kv map[string]string) (config, error) {
		return parseConfig(args, env(kv), io.Discard)
	}

	t.Run("defaults", func(t *testing.T) {
		c, err := parse(nil, nil)
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1:4317", c.OTLPGRPCAddr)
		require.Equal(t, "127.0.0.1:4318", c.OTLPHTTPAddr)
		require.Equal(t, "127.0.0.1:8070", c.APIAddr)
		require.Equal(t, storageEmbedded, c.Storage)
		require.Equal(t, 5*time.Second, c.EvalInterval)
		require.Equal(t, time.Minute, c.Window)
	})

	t.Run("env", func(t *testing.T) {
		c, err := parse(nil, map[string]string{
			"CARTOGRAPH_WINDOW":         "2m",
			"CARTOGRAPH_OTLP_GRPC_ADDR": "127.0.0.1:14317",
			"CARTOGRAPH_EVAL_INTERVAL":  "10s",
			"CARTOGRAPH_MAX_INFLIGHT":   "3",
			"CARTOGRAPH_LOG_LEVEL":      "debug",
		})
		require.NoError(t, err)
		require.Equal(t, 2*time.Minute, c.Window)
		require.Equal(t, "127.0.0.1:14317", c.OTLPGRPCAddr)
		require.Equal(t, 10*time.Second, c.EvalInterval)
		require.Equal(t, 3, c.MaxInFlight)
		require.Equal(t, slog.LevelDebug, c.LogLevel)
	})

	t.Run("flag wins over env", func(t *testing.T) {
		c, err := parse([]string{"--window=30s", "--otlp-grpc-addr", "127.0.0.1:24317"},
			map[string]string{"CARTOGRAPH_WINDOW": "2m", "CARTOGRAPH_OTLP_GRPC_ADDR": "127.0.0.1:14317"})
		require.NoError(t, err)
		require.Equal(t, 30*time.Second, c.Window)
		require.Equal(t, "127.0.0.1:24317", c.OTLPGRPCAddr)

		// Even a flag set to its default value wins.
		c, err = parse([]string{"--window=1m"}, map[string]string{"CARTOGRAPH_WINDOW": "2m"})
		require.NoError(t, err)
		require.Equal(t, time.Minute, c.Window)

		// An invalid env var for a flag given on the command line is not read.
		c, err = parse([]string{"--window=1m"}, map[string]string{"CARTOGRAPH_WINDOW": "abc"})
		require.NoError(t, err)
		require.Equal(t, time.Minute, c.Window)
	})

	t.Run("invalid", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			args []string
			env  map[string]string
			want string // substring of the error
		}{
			{"bad window flag", []string{"--window=abc"}, nil, "window"},
			{"bad window env", nil, map[string]string{"CARTOGRAPH_WINDOW": "abc"}, "CARTOGRAPH_WINDOW"},
			{"bad int env", nil, map[string]string{"CARTOGRAPH_MAX_NODES": "many"}, "CARTOGRAPH_MAX_NODES"},
			{"bad log level", []string{"--log-level=loud"}, nil, "log-level"},
			{"bogus storage flag", []string{"--storage", "bogus"}, nil, "bogus"},
			{"bogus storage env", nil, map[string]string{"CARTOGRAPH_STORAGE": "bogus"}, "bogus"},
			{"clickhouse without dsn", []string{"--storage=clickhouse"}, nil, "clickhouse-dsn"},
			{"zero eval interval", []string{"--eval-interval=0s"}, nil, "eval-interval"},
			{"no api addr", []string{"--api-addr="}, nil, "api-addr"},
			{"no otlp listener", []string{"--otlp-grpc-addr=", "--otlp-http-addr="}, nil, "otlp"},
			{"unknown flag", []string{"--nope"}, nil, "nope"},
			{"stray argument", []string{"extra"}, nil, "extra"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := parse(tc.args, tc.env)
				require.Error(t, err)
				require.Contains(t, err.Error(), tc.want)
			})
		}
	})

	t.Run("help", func(t *testing.T) {
		_, err := parse([]string{"-h"}, nil)
		require.ErrorIs(t, err, errHelp)
	})
}
