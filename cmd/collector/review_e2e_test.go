package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// The communication review's twin test: two systems run side by side
// through the real pipeline, each service a real HTTP server (otelhttp) in
// two replicas, each replica with its own TracerProvider and
// service.instance.id exporting over OTLP/gRPC through the SDK's batch
// processor with its 5 s delay (so traces arrive split, their roots
// last), requests arriving as a Poisson process. Namespace "bad" talks
// the way that turns failures into outages; namespace "good" does the
// same work the way that does not:
//
//	judgement                   bad                                  good
//	1 sync chain                front → c1 → c2 → c3 → c4 → c5 → c6   front → g1 → g2, then a topic
//	2 retries without backoff   c1 retries flaky at once             g1 backs off 50 ms × 2^k ± 20%
//	3 no timeout                profile waits for slow's 1.5 s tail  g4 cuts it off at 300 ms
//	4 no circuit breaking       c2 calls down on every request       g2's breaker opens after 3 failures
//	6 chatty edge               front fetches 12 items one by one    front fetches them in one call
//	8 async pipeline            c6 → raw → enricher (200 ms a        g4 → raw → enricher (1 ms)
//	                            message: behind) → enriched → indexer → enriched → indexer: info
//	9 hub                       front calls 4 services on every path front calls 2
//
// Each observation must appear on the bad subject and not on its good
// twin; the good namespace yields no warning at all.

// reviewTwinRate is each system's request rate, per second.
const reviewTwinRate = 8

// twinSvc is one service of the twin systems: its replicas' URLs.
type twinSvc struct {
	urls []string
	next atomic.Uint64
}

func (s *twinSvc) url(path string) string {
	return s.urls[s.next.Add(1)%uint64(len(s.urls))] + path
}

// twinReplica is what a handler gets: the replica's instrumented client
// and tracer.
type twinReplica struct {
	client *http.Client
	tracer trace.Tracer
}

// get calls url with the request's context and returns the status (0 when
// the call failed outright).
func (rp *twinReplica) get(ctx context.Context, url string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0
	}
	resp, err := rp.client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// twinProvider is a replica's TracerProvider: the SDK's batch processor
// with its default 5 s delay, exporting to the collector over OTLP/gRPC.
func twinProvider(t *testing.T, col started, ns, name string, replica int) *sdktrace.TracerProvider {
	t.Helper()
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name), attribute.String("service.namespace", ns),
			attribute.String("service.instance.id", fmt.Sprintf("%s-%s-%d", ns, name, replica)))),
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithBatcher(grpcExporter(t, col.OTLPGRPC), sdktrace.WithBatchTimeout(5*time.Second)),
	)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(ctx)
	})
	return tp
}

// startTwinSvc starts a service of two replicas serving h.
func startTwinSvc(t *testing.T, col started, ns, name string, h func(rp *twinReplica, w http.ResponseWriter, r *http.Request)) *twinSvc {
	t.Helper()
	prop := propagation.TraceContext{}
	s := &twinSvc{}
	for i := range 2 {
		tp := twinProvider(t, col, ns, name, i)
		tr := http.DefaultTransport.(*http.Transport).Clone()
		t.Cleanup(tr.CloseIdleConnections)
		rp := &twinReplica{
			client: &http.Client{Transport: otelhttp.NewTransport(tr, otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(prop)), Timeout: 5 * time.Second},
			tracer: tp.Tracer("twin"),
		}
		srv := httptest.NewServer(otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h(rp, w, r) }),
			name, otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(prop)))
		t.Cleanup(srv.Close)
		s.urls = append(s.urls, srv.URL)
	}
	return s
}

// leaf answers after work, failing with 503 a share of the time.
func leaf(work time.Duration, failShare float64) func(*twinReplica, http.ResponseWriter, *http.Request) {
	return func(_ *twinReplica, w http.ResponseWriter, _ *http.Request) {
		time.Sleep(work)
		if rand.Float64() < failShare {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}
}

// slowLeaf answers in about 2 ms, but one call in twenty takes 1.5 s: a
// long tail.
func slowLeaf(_ *twinReplica, w http.ResponseWriter, _ *http.Request) {
	d := 2 * time.Millisecond
	if rand.Float64() < 0.05 {
		d = 1500 * time.Millisecond
	}
	time.Sleep(d)
	_, _ = io.WriteString(w, "ok")
}

// forward calls next, then answers.
func forward(next *twinSvc) func(*twinReplica, http.ResponseWriter, *http.Request) {
	return func(rp *twinReplica, w http.ResponseWriter, r *http.Request) {
		rp.get(r.Context(), next.url("/"))
		_, _ = io.WriteString(w, "ok")
	}
}

// breaker is a minimal circuit breaker, as a library would keep it: open
// after three failures in a row, one probe a second while open. An open
// breaker fails the call before any request is made.
type breaker struct {
	mu       sync.Mutex
	failures int
	openedAt time.Time
}

func (b *breaker) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures < 3 {
		return true
	}
	if time.Since(b.openedAt) >= time.Second {
		b.openedAt = time.Now() // half-open: this call is the probe
		return true
	}
	return false
}

func (b *breaker) result(ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ok {
		b.failures = 0
		return
	}
	if b.failures++; b.failures == 3 {
		b.openedAt = time.Now()
	}
}

// twinTopic is a Kafka topic in process: producers publish in PRODUCER
// spans whose context travels with the message, and one consumer (one
// replica of service name) takes the messages one at a time in CONSUMER
// spans, spending work on each, then calls then (nil: nothing).
type twinTopic struct {
	name string
	msgs chan propagation.MapCarrier
	wg   sync.WaitGroup
}

func startTwinTopic(t *testing.T, col started, ns, name, topic string, work time.Duration, then func(ctx context.Context, rp *twinReplica)) *twinTopic {
	t.Helper()
	tp := twinProvider(t, col, ns, name, 0)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	rp := &twinReplica{client: &http.Client{Transport: otelhttp.NewTransport(tr, otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(propagation.TraceContext{})), Timeout: 5 * time.Second}, tracer: tp.Tracer("twin")}
	tt := &twinTopic{name: topic, msgs: make(chan propagation.MapCarrier, 100_000)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for msg := range tt.msgs {
			ctx := propagation.TraceContext{}.Extract(context.Background(), msg)
			ctx, sp := rp.tracer.Start(ctx, topic+" process", trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", topic),
					attribute.String("messaging.operation.type", "process"), attribute.String("messaging.consumer.group.name", name)))
			time.Sleep(work)
			if then != nil {
				then(ctx, rp)
			}
			sp.End()
		}
	}()
	t.Cleanup(func() { tt.wg.Wait(); close(tt.msgs); <-done })
	return tt
}

// publish sends a message to the topic from rp, in a PRODUCER span under
// ctx; the broker hands it over a moment later.
func (tt *twinTopic) publish(ctx context.Context, rp *twinReplica) {
	ctx, sp := rp.tracer.Start(ctx, tt.name+" publish", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", tt.name),
			attribute.String("messaging.operation.type", "publish")))
	msg := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, msg)
	sp.End()
	tt.wg.Add(1)
	go func() {
		defer tt.wg.Done()
		time.Sleep(2 * time.Millisecond)
		select {
		case tt.msgs <- msg:
		default:
		}
	}()
}

func startReviewTwins(t *testing.T, col started) (bad, good *twinSvc) {
	t.Helper()
	// bad: a two-stage pipeline whose middle consumer cannot keep up
	badEnriched := startTwinTopic(t, col, "bad", "indexer", "bad-enriched", 0, nil)
	badRaw := startTwinTopic(t, col, "bad", "enricher", "bad-raw", 200*time.Millisecond, badEnriched.publish)
	badFlaky := startTwinSvc(t, col, "bad", "flaky", leaf(time.Millisecond, 0.3))
	badDown := startTwinSvc(t, col, "bad", "down", leaf(0, 1))
	badCatalog := startTwinSvc(t, col, "bad", "catalog", leaf(200*time.Microsecond, 0))
	badSlow := startTwinSvc(t, col, "bad", "slow", slowLeaf)
	badProfile := startTwinSvc(t, col, "bad", "profile", func(rp *twinReplica, w http.ResponseWriter, r *http.Request) {
		rp.get(r.Context(), badSlow.url("/")) // as long as it takes
		_, _ = io.WriteString(w, "ok")
	})
	badPrefs := startTwinSvc(t, col, "bad", "prefs", leaf(500*time.Microsecond, 0))
	c6 := startTwinSvc(t, col, "bad", "c6", func(rp *twinReplica, w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Millisecond)
		badRaw.publish(r.Context(), rp)
		_, _ = io.WriteString(w, "ok")
	})
	c5 := startTwinSvc(t, col, "bad", "c5", forward(c6))
	c4 := startTwinSvc(t, col, "bad", "c4", forward(c5))
	c3 := startTwinSvc(t, col, "bad", "c3", forward(c4))
	c2 := startTwinSvc(t, col, "bad", "c2", func(rp *twinReplica, w http.ResponseWriter, r *http.Request) {
		rp.get(r.Context(), c3.url("/"))
		rp.get(r.Context(), badDown.url("/")) // every request, whatever down answered before
		_, _ = io.WriteString(w, "ok")
	})
	c1 := startTwinSvc(t, col, "bad", "c1", func(rp *twinReplica, w http.ResponseWriter, r *http.Request) {
		rp.get(r.Context(), c2.url("/"))
		for range 4 { // retried at once
			if code := rp.get(r.Context(), badFlaky.url("/")); code > 0 && code < 500 {
				break
			}
		}
		_, _ = io.WriteString(w, "ok")
	})
	bad = startTwinSvc(t, col, "bad", "front", func(rp *twinReplica, w http.ResponseWriter, r *http.Request) {
		rp.get(r.Context(), c1.url("/"))
		for i := range 12 { // N+1: one call per item
			rp.get(r.Context(), badCatalog.url(fmt.Sprintf("/item?id=%d", i)))
		}
		rp.get(r.Context(), badProfile.url("/"))
		rp.get(r.Context(), badPrefs.url("/"))
		_, _ = io.WriteString(w, "ok")
	})

	// good: the same pipeline, its middle consumer quick
	goodEnriched := startTwinTopic(t, col, "good", "indexer", "good-enriched", 0, nil)
	goodRaw := startTwinTopic(t, col, "good", "enricher", "good-raw", time.Millisecond, goodEnriched.publish)
	goodFlaky := startTwinSvc(t, col, "good", "flaky", leaf(time.Millisecond, 0.3))
	goodDown := startTwinSvc(t, col, "good", "down", leaf(0, 1))
	goodCatalog := startTwinSvc(t, col, "good", "catalog", leaf(time.Millisecond, 0))
	goodSlow := startTwinSvc(t, col, "good", "slow", slowLeaf)
	g4 := startTwinSvc(t, col, "good", "g4", func(rp *twinReplica, w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 300*time.Millisecond) // a timeout
		defer cancel()
		rp.get(ctx, goodSlow.url("/"))
		goodRaw.publish(r.Context(), rp)
		_, _ = io.WriteString(w, "ok")
	})
	// g3 consumes the jobs topic: each message in a CONSUMER span whose
	// parent is the PRODUCER span, then a call to g4.
	jobs := make(chan propagation.MapCarrier, 1024)
	g3tp := twinProvider(t, col, "good", "g3", 0)
	g3tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(g3tr.CloseIdleConnections)
	g3 := &twinReplica{client: &http.Client{Transport: otelhttp.NewTransport(g3tr, otelhttp.WithTracerProvider(g3tp),
		otelhttp.WithPropagators(propagation.TraceContext{})), Timeout: 5 * time.Second}, tracer: g3tp.Tracer("twin")}
	consumerDone := make(chan struct{})
	go func() {
		defer close(consumerDone)
		for msg := range jobs {
			ctx := propagation.TraceContext{}.Extract(context.Background(), msg)
			ctx, sp := g3.tracer.Start(ctx, "jobs process", trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", "jobs"),
					attribute.String("messaging.operation.type", "process"), attribute.String("messaging.consumer.group.name", "g3")))
			g3.get(ctx, g4.url("/"))
			sp.End()
		}
	}()
	t.Cleanup(func() { close(jobs); <-consumerDone })
	var published sync.WaitGroup
	t.Cleanup(published.Wait) // before jobs closes
	br := &breaker{}
	g2 := startTwinSvc(t, col, "good", "g2", func(rp *twinReplica, w http.ResponseWriter, r *http.Request) {
		ctx, sp := rp.tracer.Start(r.Context(), "jobs publish", trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", "jobs"),
				attribute.String("messaging.operation.type", "publish")))
		msg := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(ctx, msg)
		sp.End()
		published.Add(1)
		go func() { // the broker hands it over a little later
			defer published.Done()
			time.Sleep(2 * time.Millisecond)
			select {
			case jobs <- msg:
			default:
			}
		}()
		if br.allow() {
			code := rp.get(r.Context(), goodDown.url("/"))
			br.result(code > 0 && code < 500)
		}
		_, _ = io.WriteString(w, "ok")
	})
	g1 := startTwinSvc(t, col, "good", "g1", func(rp *twinReplica, w http.ResponseWriter, r *http.Request) {
		rp.get(r.Context(), g2.url("/"))
		wait := 50 * time.Millisecond
		for range 4 { // exponential backoff with jitter
			if code := rp.get(r.Context(), goodFlaky.url("/")); code > 0 && code < 500 {
				break
			}
			time.Sleep(time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64())))
			wait *= 2
		}
		_, _ = io.WriteString(w, "ok")
	})
	good = startTwinSvc(t, col, "good", "front", func(rp *twinReplica, w http.ResponseWriter, r *http.Request) {
		rp.get(r.Context(), g1.url("/"))
		rp.get(r.Context(), goodCatalog.url("/items?ids=0,1,2,3,4,5,6,7,8,9,10,11")) // one batched call
		_, _ = io.WriteString(w, "ok")
	})
	return bad, good
}

// poisson sends requests to entry at rate a second, Poisson arrivals,
// from an uninstrumented client (the entry's server span is the root),
// until ctx is done.
func poisson(ctx context.Context, wg *sync.WaitGroup, entry *twinSvc, rate float64, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed*7+1))
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(rng.ExpFloat64() / rate * float64(time.Second))):
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := client.Get(entry.url("/"))
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
	}()
}

type wireObservation struct {
	ID        string         `json:"id"`
	Kind      string         `json:"kind"`
	Severity  string         `json:"severity"`
	Subject   map[string]any `json:"subject"`
	Namespace string         `json:"namespace"`
	Summary   string         `json:"summary"`
	Why       string         `json:"why"`
	Evidence  map[string]any `json:"evidence"`
	Remedy    string         `json:"remedy"`
}

func getReview(t *testing.T, col started, query string) []wireObservation {
	t.Helper()
	code, hdr, body := httpGet(t, apiURL(col, "/api/v1/review"+query))
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.Contains(t, hdr.Get("Content-Type"), "application/json")
	var rep struct {
		Observations []wireObservation `json:"observations"`
	}
	require.NoError(t, json.Unmarshal(body, &rep), "%s", body)
	return rep.Observations
}

func TestE2ECommunicationReviewTwins(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for half a minute, more on a loaded machine")
	}
	cfgFile := filepath.Join(t.TempDir(), "cartograph.yaml")
	// Each system carries half the entry traffic: a gateway carries 50%.
	// The slow pipeline's messages wait seconds, not the default's 10 s,
	// within the test's half minute; the good twin's breaker lets a call
	// or two a second through, and those are judged too.
	require.NoError(t, os.WriteFile(cfgFile, []byte("detectors:\n  review:\n    hub_min_entry_share: 0.3\n    async_warning_ms: 2000\n    breaker_min_calls: 20\n"), 0o600))
	// The pair TTL outlasts the SDK's 5 s export delay: a call whose
	// server span comes one export later is answered, not unanswered.
	col := startCollector(t, "--config="+cfgFile, "--pair-ttl=15s", "--eval-interval=1s")
	bad, good := startReviewTwins(t, col)

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	poisson(ctx, &wg, bad, reviewTwinRate, 1)
	poisson(ctx, &wg, good, reviewTwinRate, 2)
	defer func() { stop(); wg.Wait() }()

	want := map[string]string{ // id -> severity, on the bad system
		"sync_chain:service:bad/front GET":                                            "warning",
		"retry_without_backoff:service:bad/c1->service:bad/flaky HTTP GET":            "warning",
		"no_circuit_breaker:service:bad/c2->service:bad/down":                         "warning",
		"chatty_edge:service:bad/front->service:bad/catalog HTTP GET":                 "warning",
		"no_timeout:service:bad/profile->service:bad/slow":                            "warning",
		"async_pipeline:service:bad/c6->service:bad/enricher->service:bad/indexer":    "warning",
		"async_pipeline:service:good/g4->service:good/enricher->service:good/indexer": "info",
		"hub:service:bad/front":                                                       "info",
	}
	var obs []wireObservation
	missing := func() []string {
		got := map[string]string{}
		for _, o := range obs {
			got[o.ID] = o.Severity
		}
		var out []string
		for id, sev := range want {
			if got[id] != sev {
				out = append(out, id)
			}
		}
		return out
	}
	// Wait for every observation on the bad system, and for the good
	// twin's slow callee to have the calls a timeout is judged on (it is
	// reached through the topic, a little behind).
	judgeable := func() bool {
		g := getGraph(t, col)
		return g.edge("service:good/g4", "service:good/slow").requests() >= 120 && g.edge("service:good/g2", "service:good/down").requests() >= 20
	}
	deadline := time.Now().Add(150 * time.Second) // about 30 s on an idle machine
	for {
		time.Sleep(2 * time.Second)
		ready := judgeable()
		obs = getReview(t, col, "")
		if len(missing()) == 0 && ready || time.Now().After(deadline) {
			break
		}
	}
	b, _ := json.MarshalIndent(obs, "", "  ")
	require.Empty(t, missing(), "observations missing; the review has:\n%s", b)

	for _, o := range obs {
		require.NotEmpty(t, o.Summary)
		require.NotEmpty(t, o.Why)
		require.NotEmpty(t, o.Remedy)
		require.NotEmpty(t, o.Evidence)
		if o.Namespace == "good" {
			require.NotEqual(t, "warning", o.Severity, "the well-behaved twin yields no warning: %s", b)
			for _, kind := range []string{"sync_chain", "retry_without_backoff", "no_timeout", "no_circuit_breaker", "chatty_edge", "hub"} {
				require.NotEqual(t, kind, o.Kind, "the well-behaved twin is judged well: %s", b)
			}
		}
	}
	byID := map[string]wireObservation{}
	for _, o := range obs {
		byID[o.ID] = o
		t.Logf("%s %s: %s", o.Severity, o.ID, o.Summary)
	}
	chain := byID["sync_chain:service:bad/front GET"]
	require.EqualValues(t, 6, chain.Evidence["hops"])
	chatty := byID["chatty_edge:service:bad/front->service:bad/catalog HTTP GET"]
	require.EqualValues(t, 12, chatty.Evidence["calls_per_parent"].(map[string]any)["p50"])
	retry := byID["retry_without_backoff:service:bad/c1->service:bad/flaky HTTP GET"]
	require.Less(t, retry.Evidence["wait_before_retry_ms"].(map[string]any)["p50"].(float64), 10.0)
	require.Contains(t, retry.Evidence["attempts_per_request"], "2")
	cb := byID["no_circuit_breaker:service:bad/c2->service:bad/down"]
	require.InDelta(t, 1, cb.Evidence["error_ratio"].(float64), 0.001)
	require.Equal(t, []any{"client:client"}, byID["hub:service:bad/front"].Evidence["depend_on_it"], "front is an entry: only its uninstrumented clients call it")

	// The good twin did the same work, and its review had the data to
	// judge it: it retried flaky (after waiting), fetched the catalog on
	// every request, and its breaker let a few calls through to down.
	g := getGraph(t, col)
	goodFlaky := g.edge("service:good/g1", "service:good/flaky")
	require.NotNil(t, goodFlaky, "%s", g)
	require.NotNil(t, goodFlaky.Retries)
	require.Positive(t, *goodFlaky.Retries, "g1 retried flaky")
	require.Greater(t, g.edge("service:good/front", "service:good/catalog").requests(), uint64(50))
	require.GreaterOrEqual(t, g.edge("service:good/g4", "service:good/slow").requests(), uint64(120), "g4 called slow as often as no_timeout needs")
	probes, served := g.edge("service:good/g2", "service:good/down").requests(), g.edge("service:good/g1", "service:good/g2").requests()
	require.GreaterOrEqual(t, probes, uint64(20), "the breaker's probes are judged (breaker_min_calls 20)")
	require.Less(t, probes*2, served, "the breaker stopped most calls to down")

	// The same through the filters and as Markdown.
	for _, o := range getReview(t, col, "?namespace=good") {
		require.Equal(t, "good", o.Namespace)
	}
	code, hdr, md := httpGet(t, apiURL(col, "/api/v1/review.md?namespace=bad"))
	require.Equal(t, http.StatusOK, code, "%s", md)
	require.Equal(t, "text/markdown; charset=utf-8", hdr.Get("Content-Type"))
	require.Contains(t, string(md), "## Namespace `bad`")
	require.Contains(t, string(md), "### Chatty edge: front → catalog (`HTTP GET`)")
	require.NotContains(t, string(md), "Namespace `good`")
	code, _, _ = httpGet(t, apiURL(col, "/api/v1/review?namespace=nope"))
	require.Equal(t, http.StatusBadRequest, code)

	// The exports draw the async hop dashed.
	code, _, mmd := httpGet(t, apiURL(col, "/api/v1/graph.mmd?namespace=good"))
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(mmd), "service_good_g2 -.->|\"kafka")
	require.NotContains(t, string(mmd), "service_bad_c1")
	code, _, dot := httpGet(t, apiURL(col, "/api/v1/graph.dot"))
	require.Equal(t, http.StatusOK, code)
	require.True(t, strings.Contains(string(dot), "service_bad_c1 -> service_bad_c2 [label=\"http · "), "%s", dot)
}
