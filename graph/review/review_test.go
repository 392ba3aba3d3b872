package review_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/critpath"
	"github.com/seed-a49a8342/cartograph/graph/review"
)

var update = flag.Bool("update", false, "rewrite testdata/*.md and testdata/*.json")

type calls []critpath.CallPattern

func (c calls) Calls(time.Duration) []critpath.CallPattern { return c }

func sid(ns, name string) string {
	return graph.NodeKey{Kind: graph.NodeService, Group: ns, Name: name}.ID()
}

func svc(ns, name string) graph.Node {
	return graph.Node{ID: sid(ns, name), Kind: graph.NodeService, Name: name, Namespace: ns}
}

func syncEdge(src, dst graph.Node, req, errs uint64, p95 float64) graph.Edge {
	e := graph.Edge{ID: graph.EdgeID(src.ID, dst.ID, graph.ProtocolHTTP, ""), Source: src.ID, Target: dst.ID, Kind: graph.EdgeSync,
		Protocol: graph.ProtocolHTTP, Requests: req, Errors: errs, RatePerS: float64(req) / 60,
		Latency: &graph.Quantiles{P50: p95 / 2, P95: p95, P99: p95 * 2}}
	if req > 0 {
		e.ErrorRatio = float64(errs) / float64(req)
	}
	e.Recent = &graph.Recent{Requests: req / 4, Errors: errs / 4}
	return e
}

// system is a shop whose web entry runs through six sync hops, whose
// checkout calls a failing pay at full rate, whose cart calls items in a
// loop and retries stock at once; its twin, ops, does each thing well.
func system() (*graph.Snapshot, calls) {
	web, a, b, c, d, e, f := svc("shop", "web"), svc("shop", "checkout"), svc("shop", "cart"), svc("shop", "items"),
		svc("shop", "stock"), svc("shop", "pay"), svc("shop", "ledger")
	opsEntry, opsQ, opsWork := svc("ops", "status"), graph.Node{ID: "queue:rabbitmq/jobs", Kind: graph.NodeQueue, Name: "jobs", System: "rabbitmq"}, svc("ops", "worker")
	slow, opsSlow := svc("shop", "slow"), svc("ops", "slow")
	nodes := []graph.Node{web, a, b, c, d, e, f, opsEntry, opsQ, opsWork, slow, opsSlow}
	edges := []graph.Edge{
		syncEdge(web, a, 6000, 6, 40), syncEdge(a, b, 6000, 3, 30), syncEdge(b, c, 6000, 0, 20), syncEdge(c, d, 6000, 12, 15),
		syncEdge(d, e, 6000, 0, 12), syncEdge(e, f, 6000, 6, 5),
		syncEdge(a, e, 6000, 4500, 80), // checkout -> pay: failing, and still called on every request
		{ID: graph.EdgeID(opsEntry.ID, opsQ.ID, graph.ProtocolRabbitMQ, ""), Source: opsEntry.ID, Target: opsQ.ID, Kind: graph.EdgeAsync, Protocol: graph.ProtocolRabbitMQ, Requests: 600, RatePerS: 10},
		{ID: graph.EdgeID(opsQ.ID, opsWork.ID, graph.ProtocolRabbitMQ, ""), Source: opsQ.ID, Target: opsWork.ID, Kind: graph.EdgeAsync, Protocol: graph.ProtocolRabbitMQ, Requests: 600, RatePerS: 10},
		syncEdge(opsEntry, opsWork, 1200, 900, 3), // failing, but a breaker stops most calls
	}
	// cart waits for slow's worst cases; status cuts them off at 300 ms.
	noTimeout, timeout := syncEdge(b, slow, 600, 0, 1500), syncEdge(opsEntry, opsSlow, 600, 30, 1500)
	noTimeout.ServerLatency = &graph.Quantiles{P50: 4, P95: 12, P99: 1600}
	noTimeout.ClientLatency = &graph.Quantiles{P50: 5, P95: 14, P99: 1610}
	timeout.ServerLatency = &graph.Quantiles{P50: 4, P95: 12, P99: 1600}
	timeout.ClientLatency = &graph.Quantiles{P50: 5, P95: 14, P99: 301}
	edges = append(edges, noTimeout, timeout)
	// Two two-stage pipelines: web's, whose enricher keeps messages
	// waiting 20 s; status's, fast.
	topic := func(name string) graph.Node {
		return graph.Node{ID: "topic:kafka/" + name, Kind: graph.NodeTopic, Name: name, System: "kafka"}
	}
	raw, enriched, done := topic("raw"), topic("enriched"), topic("done")
	enricher, indexer, archiver := svc("shop", "enricher"), svc("shop", "indexer"), svc("ops", "archiver")
	nodes = append(nodes, raw, enriched, done, enricher, indexer, archiver)
	async := func(src, dst graph.Node, delayP50, workP50 float64) graph.Edge {
		e := graph.Edge{ID: graph.EdgeID(src.ID, dst.ID, graph.ProtocolKafka, ""), Source: src.ID, Target: dst.ID, Kind: graph.EdgeAsync,
			Protocol: graph.ProtocolKafka, Requests: 600, RatePerS: 10}
		if delayP50 > 0 {
			e.Delay = &graph.Quantiles{P50: delayP50, P95: 2 * delayP50, P99: 3 * delayP50}
			e.Latency = &graph.Quantiles{P50: workP50, P95: 2 * workP50, P99: 3 * workP50}
		}
		return e
	}
	edges = append(edges, async(web, raw, 0, 0), async(raw, enricher, 20_000, 150), async(enricher, enriched, 0, 0), async(enriched, indexer, 40, 3),
		async(opsWork, done, 0, 0), async(done, archiver, 30, 2))
	edges[8].Delay = &graph.Quantiles{P50: 25, P95: 60, P99: 90} // jobs -> worker
	edges[8].Latency = &graph.Quantiles{P50: 4, P95: 9, P99: 12}
	edges[9].Unanswered = 1100
	edges[9].Errors = 1150
	edges[9].Recent = &graph.Recent{Requests: 300, Errors: 290, Unanswered: 280}
	edges[6].Recent = &graph.Recent{Requests: 1500, Errors: 1150}
	s := graph.NewSnapshot(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), time.Minute, nodes, edges)
	s.RecentSeconds = 15
	s.Paths = []graph.EntryPath{
		{Node: web.ID, Operation: "GET /buy", Traces: 6000, P50Ms: 60, P95Ms: 140, Shares: []graph.PathShare{
			{Node: web.ID, Share: 0.1}, {Node: a.ID, Share: 0.2}, {Node: b.ID, Share: 0.2}, {Node: c.ID, Share: 0.1},
			{Node: d.ID, Share: 0.1}, {Node: e.ID, Share: 0.2}, {Node: f.ID, Share: 0.1}}},
		{Node: opsEntry.ID, Operation: "GET /status", Traces: 600, P50Ms: 2, P95Ms: 4, Shares: []graph.PathShare{{Node: opsEntry.ID, Share: 1}}},
	}
	cp := calls{
		// stock does not wait for pay's answer before replying: a queue
		// candidate.
		{Caller: d.ID, Callee: e.ID, Operation: "POST /pay", Parents: 6000, Requests: 6000, Calls: 6000, Detached: 5400,
			PerParent: critpath.Dist{P50: 1, P95: 1, Min: 1, Max: 1, Mean: 1}},
		{Caller: b.ID, Callee: c.ID, Operation: "GET /item", Parents: 600, Requests: 7200, Calls: 7200,
			PerParent: critpath.Dist{P50: 12, P95: 20, Min: 3, Max: 31, Mean: 12}},
		{Caller: opsEntry.ID, Callee: opsWork.ID, Operation: "GET /w", Parents: 600, Requests: 1200, Calls: 1200,
			PerParent: critpath.Dist{P50: 2, P95: 2, Min: 2, Max: 2, Mean: 2}},
		{Caller: c.ID, Callee: d.ID, Operation: "GET /stock", Parents: 6000, Requests: 6000, Calls: 6030, Failed: 42,
			Retried: 12, Repeats: 30, Multi: 8, Growing: 0, GapMs: &critpath.Dist{P50: 0.3, P95: 1.1, Min: 0.1, Max: 2}, Attempts: [critpath.MaxAttempts]int{5988, 4, 8}},
		{Caller: opsEntry.ID, Callee: opsWork.ID, Operation: "POST /w", Parents: 600, Requests: 600, Calls: 640, Failed: 45,
			Retried: 20, Repeats: 40, Multi: 20, Growing: 19, GapMs: &critpath.Dist{P50: 150, P95: 420, Min: 80, Max: 900}, Attempts: [critpath.MaxAttempts]int{580, 0, 20}},
	}
	return s, cp
}

func TestReview(t *testing.T) {
	s, cp := system()
	r, err := review.New(review.Options{}, cp)
	require.NoError(t, err)
	rep := r.Review(s)
	got := map[string]review.Severity{}
	for _, o := range rep.Observations {
		got[o.ID] = o.Severity
		require.NotEmpty(t, o.Summary)
		require.NotEmpty(t, o.Why)
		require.NotEmpty(t, o.Remedy)
		require.NotEmpty(t, o.Evidence)
	}
	want := map[string]review.Severity{
		"sync_chain:service:shop/web GET /buy":                                         review.SeverityWarning,
		"no_circuit_breaker:service:shop/checkout->service:shop/pay":                   review.SeverityWarning,
		"chatty_edge:service:shop/cart->service:shop/items GET /item":                  review.SeverityWarning,
		"retry_without_backoff:service:shop/items->service:shop/stock GET /stock":      review.SeverityWarning,
		"no_timeout:service:shop/cart->service:shop/slow":                              review.SeverityWarning,
		"async_pipeline:service:shop/web->service:shop/enricher->service:shop/indexer": review.SeverityWarning,
		"async_pipeline:service:ops/status->service:ops/worker->service:ops/archiver":  review.SeverityInfo,
	}
	for id, sev := range want {
		require.Equal(t, sev, got[id], "%s in %v", id, got)
	}
	for id, sev := range got {
		if strings.HasPrefix(id, string(review.KindAsyncPipeline)) {
			continue // every pipeline is described; the slow one warns
		}
		require.NotContains(t, id, "service:ops/", "the well-behaved twin is judged well: %s (%s)", id, sev)
	}
	for _, o := range rep.InNamespace("ops").Observations {
		require.Equal(t, review.SeverityInfo, o.Severity, o.ID)
	}

	for _, o := range rep.Observations {
		if o.Kind == review.KindSyncChain {
			require.Equal(t, []string{"stock → pay"}, o.Evidence["queue_candidates"])
			require.Contains(t, o.Summary, "the caller does not wait for the answer of stock → pay")
		}
	}

	b, err := json.MarshalIndent(rep, "", "  ")
	require.NoError(t, err)
	golden(t, "shop.json", append(b, '\n'))
	golden(t, "shop.md", rep.Markdown())
}

// TestChainThresholds: a chain of four hops is info, under four nothing.
func TestChainThresholds(t *testing.T) {
	s, cp := system()
	for _, c := range []struct {
		o    review.Options
		want review.Severity
	}{
		{review.Options{}, review.SeverityWarning},
		{review.Options{ChainWarningHops: 7}, review.SeverityInfo},
		{review.Options{ChainMinHops: 7, ChainWarningHops: 8}, ""},
	} {
		r, err := review.New(c.o, cp)
		require.NoError(t, err)
		var got review.Severity
		for _, o := range r.Review(s).Observations {
			if o.Kind == review.KindSyncChain {
				got = o.Severity
				require.Equal(t, 6, o.Evidence["hops"])
			}
		}
		require.Equal(t, c.want, got, "%+v", c.o)
	}
	_, err := review.New(review.Options{ChainMinHops: 5, ChainWarningHops: 3}, nil)
	require.Error(t, err)
	_, err = review.New(review.Options{BreakerMinReached: 1.5}, nil)
	require.Error(t, err)
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run with -update to create %s", path)
	require.Equal(t, string(want), string(got), "%s differs (run with -update and review the diff)", path)
}
