package corpus_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/XSAM/otelsql"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
)

// propagator is what every live service injects and extracts (W3C trace
// context), passed explicitly so no test touches the global one.
var propagator = propagation.TraceContext{}

// services holds one SDK TracerProvider per simulated service, each with its
// own service.name and its own batching exporter to the test's receiver, as
// separate processes would have.
type services struct {
	t   *testing.T
	e   *env
	tps []*sdktrace.TracerProvider
}

// provider returns a new TracerProvider for service name exporting over
// OTLP/HTTP (or OTLP/gRPC when overGRPC) with the SDK's default batch
// processor settings.
func (s *services) provider(name string, overGRPC bool) *sdktrace.TracerProvider {
	s.t.Helper()
	ctx := context.Background()
	var exp sdktrace.SpanExporter
	var err error
	if overGRPC {
		exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(s.e.grpcEndpoint()), otlptracegrpc.WithInsecure())
	} else {
		exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(s.e.httpEndpoint()+"/v1/traces"))
	}
	require.NoError(s.t, err)
	res, err := resource.New(ctx, resource.WithAttributes(semconv.ServiceName(name)))
	require.NoError(s.t, err)
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	s.tps = append(s.tps, tp)
	s.t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}

// flush exports every provider's spans, the last-made provider first: the
// entry service is made first, so its root spans arrive last, as they do in
// production where a root ends after all its descendants.
func (s *services) flush() {
	s.t.Helper()
	for i := len(s.tps) - 1; i >= 0; i-- {
		require.NoError(s.t, s.tps[i].ForceFlush(context.Background()))
	}
}

// serve starts an HTTP server for h on loopback and returns its base URL.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// get does a plain, uninstrumented GET (the outside world calling the entry
// service) and requires 200.
func get(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", url, body)
}

// TestLiveHTTPGRPC: gateway --otelhttp--> orders --otelgrpc--> inventory (a
// real gRPC health server). gateway and orders export over OTLP/HTTP,
// inventory over OTLP/gRPC.
func TestLiveHTTPGRPC(t *testing.T) {
	e := newEnv(t)
	s := &services{t: t, e: e}
	gatewayTP := s.provider("gateway", false)
	ordersTP := s.provider("orders", false)
	inventoryTP := s.provider("inventory", true)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gs := grpc.NewServer(grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(inventoryTP), otelgrpc.WithPropagators(propagator))))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)

	conn, err := grpc.NewClient(ln.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(ordersTP), otelgrpc.WithPropagators(propagator))))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	inventory := healthpb.NewHealthClient(conn)

	orders := serve(t, otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := inventory.Check(r.Context(), &healthpb.HealthCheckRequest{}); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	}), "orders", otelhttp.WithTracerProvider(ordersTP), otelhttp.WithPropagators(propagator)))

	client := &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport,
		otelhttp.WithTracerProvider(gatewayTP), otelhttp.WithPropagators(propagator))}
	gateway := serve(t, otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, orders+"/orders/7", nil)
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
	}), "gateway", otelhttp.WithTracerProvider(gatewayTP), otelhttp.WithPropagators(propagator)))

	for range 3 {
		get(t, gateway+"/checkout")
	}
	s.flush()
	e.assertEdges(t, "live-http-grpc")
}

// TestLiveRedis: cart (otelhttp server) reads and writes a real Redis
// through go-redis with the redisotel tracing hook.
func TestLiveRedis(t *testing.T) {
	addr := need.Redis(t)
	requireServer(t, addr, "Redis")
	e := newEnv(t)
	s := &services{t: t, e: e}
	cartTP := s.provider("cart", false)

	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	require.NoError(t, redisotel.InstrumentTracing(rdb, redisotel.WithTracerProvider(cartTP)))
	key := "cartograph-corpus:" + strconv.FormatInt(time.Now().UnixNano(), 36)
	t.Cleanup(func() { rdb.Del(context.Background(), key) })

	cart := serve(t, otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := rdb.Incr(r.Context(), key).Err(); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if err := rdb.Get(r.Context(), key).Err(); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	}), "cart", otelhttp.WithTracerProvider(cartTP), otelhttp.WithPropagators(propagator)))

	for range 3 {
		get(t, cart+"/cart")
	}
	s.flush()
	e.assertEdges(t, "live-redis")
}

// TestLiveSQL: shop (otelhttp server) queries a real PostgreSQL through
// database/sql with XSAM/otelsql wrapping the pgx driver, configured as
// otelsql's README shows (the database system as the only attribute).
func TestLiveSQL(t *testing.T) {
	dsn := need.Postgres(t)
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	requireServer(t, u.Host, "PostgreSQL")
	e := newEnv(t)
	s := &services{t: t, e: e}
	shopTP := s.provider("shop", false)

	db, err := otelsql.Open("pgx", dsn,
		otelsql.WithAttributes(semconv.DBSystemNamePostgreSQL),
		otelsql.WithTracerProvider(shopTP))
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })

	shop := serve(t, otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		if err := db.QueryRowContext(r.Context(), "SELECT count(*) FROM pg_catalog.pg_class WHERE relkind = $1", "r").Scan(&n); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprint(w, n)
	}), "shop", otelhttp.WithTracerProvider(shopTP), otelhttp.WithPropagators(propagator)))

	for range 3 {
		get(t, shop+"/products")
	}
	s.flush()
	e.assertEdges(t, "live-sql")
}

// TestLiveKafka: orders (otelhttp server) produces to topic "orders" of an
// in-process Kafka cluster (kfake) through franz-go with the kotel plugin;
// billing consumes in group "billing" with kotel and a process span per
// record, as kotel's documentation shows.
func TestLiveKafka(t *testing.T) {
	e := newEnv(t)
	s := &services{t: t, e: e}
	ordersTP := s.provider("orders", false)
	billingTP := s.provider("billing", false)

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders"))
	require.NoError(t, err)
	t.Cleanup(cluster.Close)

	prodTracer := kotel.NewTracer(kotel.TracerProvider(ordersTP), kotel.TracerPropagator(propagator))
	producer, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...),
		kgo.WithHooks(kotel.NewKotel(kotel.WithTracer(prodTracer)).Hooks()...))
	require.NoError(t, err)
	t.Cleanup(producer.Close)

	consTracer := kotel.NewTracer(kotel.TracerProvider(billingTP), kotel.TracerPropagator(propagator),
		kotel.ConsumerGroup("billing"))
	consumer, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...),
		kgo.ConsumerGroup("billing"), kgo.ConsumeTopics("orders"),
		kgo.WithHooks(kotel.NewKotel(kotel.WithTracer(consTracer)).Hooks()...))
	require.NoError(t, err)
	t.Cleanup(consumer.Close)

	orders := serve(t, otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &kgo.Record{Topic: "orders", Value: []byte("order"), Context: r.Context()}
		if err := producer.ProduceSync(r.Context(), rec).FirstErr(); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	}), "orders", otelhttp.WithTracerProvider(ordersTP), otelhttp.WithPropagators(propagator)))

	const n = 3
	for range n {
		get(t, orders+"/orders")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for got := 0; got < n; {
		fetches := consumer.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "consumed %d of %d records", got, n)
		fetches.EachRecord(func(r *kgo.Record) {
			_, span := consTracer.WithProcessSpan(r)
			span.End()
			got++
		})
	}
	// A last poll ends the receive spans of the records the loop handled.
	pctx, pcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	consumer.PollFetches(pctx)
	pcancel()
	s.flush()
	e.assertEdges(t, "live-kafka")
}

// requireServer fails the test when nothing listens on addr: the servers
// these cases use are cmd/testenv's, or those the CARTOGRAPH_TEST_*
// variables name.
func requireServer(t *testing.T, addr, what string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err, "%s is not listening on %s", what, addr)
	c.Close()
}
