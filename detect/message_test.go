package detect

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/lag"
	"github.com/seed-a49a8342/cartograph/graph/resilience"
)

var sumNow = time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)

func sumSvc(name string) graph.Node {
	return graph.Node{ID: "service:" + name, Kind: graph.NodeService, Name: name}
}

func sumSnap(nodes []graph.Node, edges ...graph.Edge) *graph.Snapshot {
	return graph.NewSnapshot(sumNow, time.Minute, nodes, edges)
}

func sumSync(src, dst string) graph.Edge {
	return graph.Edge{ID: "service:" + src + "->service:" + dst + " http", Source: "service:" + src, Target: "service:" + dst, Kind: graph.EdgeSync}
}

func f64(v float64) *float64 { return &v }

// summaryCase is a detector and the snapshots it is run on in turn; the
// last run's summaries are the case's.
type summaryCase struct {
	name string
	det  Detector
	runs []*graph.Snapshot
}

// summaryCases covers every wording variant of every detector's summary,
// with detectors configured by opts.
func summaryCases(opts detectorOptions) []summaryCase {
	var cases []summaryCase
	add := func(name string, det Detector, runs ...*graph.Snapshot) {
		cases = append(cases, summaryCase{name, det, runs})
	}
	nodes := []graph.Node{sumSvc("a"), sumSvc("b"), sumSvc("edge"), sumSvc("payment")}

	// retry_storm
	e := sumSync("a", "b")
	e.Requests, e.Retries, e.RetryRatio = 100, 40, 0.4
	add("retry traces", NewRetryStorm(opts.retry), sumSnap(nodes, e))
	m := sumSnap(nodes, sumSync("edge", "payment"))
	m.RetryRates = []resilience.RetryRate{{BreakerKey: resilience.BreakerKey{Service: "edge", Name: "outbound|9090||payment.default"}, Retries: 60, Calls: 100, Seconds: 30}}
	add("retry metrics", NewRetryStorm(opts.retry), m)
	e2 := sumSync("edge", "payment")
	e2.Requests, e2.Retries, e2.RetryRatio = 1000, 500, 0.5
	m = sumSnap(nodes, e2)
	m.RetryRates = []resilience.RetryRate{{BreakerKey: resilience.BreakerKey{Service: "edge", Name: "payment"}, Retries: 60, Calls: 100, Seconds: 30}}
	add("retry merged", NewRetryStorm(opts.retry), m)

	// open_circuit
	cn := []graph.Node{sumSvc("orders"), sumSvc("stock"), sumSvc("cart"), sumSvc("billing")}
	unans := func(src, dst string, req, un uint64, p50 float64, normal float64) graph.Edge {
		e := sumSync(src, dst)
		e.Requests, e.Unanswered, e.Errors = req, un, un
		e.UnansweredLatency = &graph.Quantiles{P50: p50, P95: p50, P99: p50}
		if normal > 0 {
			e.ClientLatency = &graph.Quantiles{P50: normal, P95: normal, P99: normal}
		}
		return e
	}
	add("circuit half-open window", NewOpenCircuit(opts.circuit), sumSnap(cn, unans("orders", "stock", 50, 48, 0.4, 21)))
	add("circuit open absolute", NewOpenCircuit(opts.circuit), sumSnap(cn, unans("cart", "stock", 10, 10, 0.4, 0)))
	hist := sumSync("orders", "stock")
	hist.Requests, hist.ClientLatency = 5, &graph.Quantiles{P50: 3.25, P95: 5, P99: 5}
	add("circuit open history", NewOpenCircuit(opts.circuit), sumSnap(cn, hist), sumSnap(cn, unans("orders", "stock", 12, 12, 0.05, 0)))
	br := func(s *graph.Snapshot, cs ...resilience.Circuit) *graph.Snapshot { s.Circuits = cs; return s }
	circ := func(svc, name string, st resilience.CircuitState) resilience.Circuit {
		return resilience.Circuit{BreakerKey: resilience.BreakerKey{Service: svc, Name: name}, State: st, UpdatedAt: sumNow}
	}
	add("circuit traces and breaker", NewOpenCircuit(opts.circuit), br(sumSnap(cn, unans("orders", "stock", 50, 48, 0.4, 21)), circ("orders", "stock", resilience.CircuitOpen)))
	add("circuit traces and named breaker", NewOpenCircuit(opts.circuit), br(sumSnap(cn, unans("cart", "stock", 10, 10, 2.5, 0)), circ("cart", "stock_primary", resilience.CircuitHalfOpen)))
	idle := sumSync("orders", "stock")
	add("circuit breaker idle edge", NewOpenCircuit(opts.circuit), br(sumSnap(cn, idle), circ("orders", "stock", resilience.CircuitForcedOpen)))
	add("circuit breaker no edge", NewOpenCircuit(opts.circuit), br(sumSnap(cn), circ("billings", "ledger", resilience.CircuitHalfOpen)))
	busy := sumSync("orders", "stock")
	busy.Requests = 7
	add("circuit breaker busy edge", NewOpenCircuit(opts.circuit), br(sumSnap(cn, busy), circ("orders", "stock.svc", resilience.CircuitOpen)))

	// consumer_lag
	ln := []graph.Node{{ID: "topic:kafka/orders", Kind: graph.NodeTopic, Name: "orders"}, sumSvc("billing"), sumSvc("shop")}
	lagEdge := func(group string, l *graph.Lag) graph.Edge {
		return graph.Edge{ID: "topic:kafka/orders->service:billing kafka", Source: "topic:kafka/orders", Target: "service:billing", Kind: graph.EdgeAsync, ConsumerGroup: group, Lag: l}
	}
	add("lag stopped", NewConsumerLag(opts.lag), sumSnap(ln, lagEdge("billing", &graph.Lag{Status: lag.StateStopped, Messages: f64(400), Seconds: f64(95), Reason: "no consumers in the group"})))
	add("lag stalled", NewConsumerLag(opts.lag), sumSnap(ln, lagEdge("", &graph.Lag{Status: lag.StateStalled, Messages: f64(1234.5678)})))
	add("lag warning", NewConsumerLag(opts.lag), sumSnap(ln, lagEdge("billing", &graph.Lag{Status: lag.StateWarning})))
	add("lag max seconds", NewConsumerLag(opts.lag), sumSnap(ln, lagEdge("billing", &graph.Lag{Status: lag.StateOK, Messages: f64(10), Seconds: f64(3700)})))
	add("lag max drain", NewConsumerLag(opts.lag), sumSnap(ln, lagEdge("billing", &graph.Lag{Status: lag.StateOK, DrainSeconds: f64(1000), Seconds: f64(12.25), Reason: "slow"})))
	var lagRuns []*graph.Snapshot
	for _, d := range []float64{21_000, 30_000, 45_000, 61_000} {
		c := graph.Edge{ID: "topic:kafka/orders->service:billing kafka @billing", Source: "topic:kafka/orders", Target: "service:billing", Kind: graph.EdgeAsync, ConsumerGroup: "billing",
			RatePerS: 61.25, Delay: &graph.Quantiles{P50: d / 2, P95: d, P99: d}}
		p := graph.Edge{ID: "service:shop->topic:kafka/orders kafka", Source: "service:shop", Target: "topic:kafka/orders", Kind: graph.EdgeAsync, RatePerS: 100.5}
		lagRuns = append(lagRuns, sumSnap(ln, p, c))
	}
	add("lag traces", NewConsumerLag(opts.lag), lagRuns...)

	// bottleneck
	bn := []graph.Node{sumSvc("web"), sumSvc("api"), sumSvc("db")}
	path := func(entry, op string, traces int, p95 float64, node string, sh float64) graph.EntryPath {
		return graph.EntryPath{Node: "service:" + entry, Operation: op, Traces: traces, P50Ms: p95 / 2, P95Ms: p95,
			Shares: []graph.PathShare{{Node: "service:" + node, Share: sh, SelfMs: sh * p95}}}
	}
	withPaths := func(ps ...graph.EntryPath) *graph.Snapshot { s := sumSnap(bn); s.Paths = ps; return s }
	// Three evaluations 5 s apart teach the usual; the fourth is slow.
	usualThen := func(sec int, p graph.EntryPath) *graph.Snapshot {
		s := withPaths(p)
		s.GeneratedAt = s.GeneratedAt.Add(time.Duration(sec) * time.Second)
		return s
	}
	add("bottleneck usual", NewBottleneck(opts.bottleneck),
		usualThen(0, path("web", "GET /", 50, 400, "db", 0.3)),
		usualThen(5, path("web", "GET /", 50, 400, "db", 0.3)),
		usualThen(10, path("web", "GET /", 50, 400, "db", 0.3)),
		usualThen(15, path("web", "GET /", 50, 1234.5, "db", 0.64)))
	add("bottleneck others", NewBottleneck(withObjective(opts.bottleneck)),
		withPaths(path("web", "GET /", 50, 400, "db", 0.91), path("web", "POST /", 50, 80, "db", 0.6), path("api", "GET /x", 30, 99.5, "db", 0.7)))
	return cases
}

func withObjective(o BottleneckOptions) BottleneckOptions {
	o.LatencyObjectiveMs = 1
	return o
}

// detectorOptions configure the detectors of summaryCases.
type detectorOptions struct {
	retry      RetryStormOptions
	circuit    OpenCircuitOptions
	lag        ConsumerLagOptions
	bottleneck BottleneckOptions
}

// runSummaries returns the summaries of every summaryCase by case name.
func runSummaries(t *testing.T, opts detectorOptions) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	for _, c := range summaryCases(opts) {
		var obs []Observation
		for _, s := range c.runs {
			obs = c.det.Detect(context.Background(), s)
		}
		require.NotEmpty(t, obs, c.name)
		for _, o := range obs {
			got[c.name] = append(got[c.name], o.Summary)
		}
	}
	return got
}

// TestDefaultSummaries pins the summaries the default message templates
// render, one case per wording variant of each detector.
func TestDefaultSummaries(t *testing.T) {
	require.Equal(t, map[string][]string{
		"retry traces":                     {"a retries 40% of its calls to b (40.0 retries/min); each request entering at the root reaches b 1.7 times"},
		"retry metrics":                    {"edge retries 60% of its calls to payment (60.0 retries in 30.0 s, reported as metrics by outbound|9090||payment.default)"},
		"retry merged":                     {"edge retries 50% of its calls to payment (500 retries/min); each request entering at the root reaches payment 2.0 times"},
		"circuit half-open window":         {"orders' calls to stock fail fast without reaching it; cause: orders' circuit breaker open (the trickle of calls it lets through is answered, so stock is up): 48 of 50 calls in the last 60s never reached stock, failing in 0.4 ms against 21 ms normally"},
		"circuit open absolute":            {"cart's calls to stock fail fast without reaching it; cause: cart's circuit breaker open (failing in under 0.5 ms, too fast to have tried connecting): 10 of 10 calls in the last 60s never reached stock, failing in 0.4 ms, with no normal latency known to compare (fast below 10 ms)"},
		"circuit open history":             {"orders' calls to stock fail fast without reaching it; cause: orders' circuit breaker open (failing in under 0.5 ms, too fast to have tried connecting): 12 of 12 calls in the last 60s never reached stock, failing in 0.05 ms against 3.2 ms normally"},
		"circuit traces and breaker":       {"orders' calls to stock fail fast without reaching it; cause: orders' circuit breaker open (breaker \"stock\" reports open): 48 of 50 calls in the last 60s never reached stock, failing in 0.4 ms against 21 ms normally"},
		"circuit traces and named breaker": {"cart's calls to stock fail fast without reaching it; cause: cart's circuit breaker open (breaker \"stock_primary\" reports half_open): 10 of 10 calls in the last 60s never reached stock, failing in 2.5 ms, with no normal latency known to compare (fast below 10 ms)"},
		"circuit breaker idle edge":        {"orders' circuit breaker for stock reports forced_open (metrics), so its calls fail fast without reaching stock"},
		"circuit breaker no edge":          {"billings' circuit breaker for ledger reports half_open (metrics), so its calls fail fast without reaching ledger"},
		"circuit breaker busy edge":        {"orders' circuit breaker \"stock.svc\" for stock reports open (metrics), so its calls fail fast without reaching stock; 7 of 7 calls in the last 60s reached it"},
		"lag stopped":                      {"consumer group billing on orders has stopped consuming (400 messages behind, 1.6min): no consumers in the group"},
		"lag stalled":                      {"consumer group billing on orders has stalled: its position is not moving (1.23e+03 messages behind)"},
		"lag warning":                      {"consumer group billing on orders is falling further behind"},
		"lag max seconds":                  {"consumer group billing on orders is more than 300s behind (10 messages behind, 1.0h)"},
		"lag max drain":                    {"consumer group billing on orders needs more than 900s to drain its backlog: slow"},
		"lag traces":                       {"consumer group billing on orders is falling behind (from traces): it consumes 61.2/s of the 100/s produced, and the producer-to-consumer delay p95 grew to 1.0min"},
		"bottleneck usual":                 {"db's own time on the critical path of GET / at web rose from 120 to 790 ms a request, 100% of its slowdown (mean 790 ms, 6.6x its usual 120 ms; p95 1234 ms; 64% of the path over 50 traces)"},
		"bottleneck others":                {"db does 91% of the work on the critical path of GET / at web (p95 400 ms over 50 traces), and of 2 other entry operations"},
	}, runSummaries(t, detectorOptions{}))
}

// TestCustomSummaries: the message option replaces the default template.
func TestCustomSummaries(t *testing.T) {
	got := runSummaries(t, detectorOptions{
		retry:   RetryStormOptions{Message: `{{.Source}} -> {{.Target}}: {{pct .RetryRatio}} [{{.Severity}}]{{if .Metric}} per {{.Metric.Name}}{{end}}`},
		circuit: OpenCircuitOptions{Message: `{{.Source}} -> {{.Target}}: {{.State}}{{with .Breaker}}, breaker {{.Name}} {{.State}}{{end}}`},
		lag:     ConsumerLagOptions{Message: `{{.Group}} on {{.Destination}}: {{.Status}} from {{.Source}}{{with .LagMessages}}, {{count .}} behind{{end}}`},
		bottleneck: BottleneckOptions{Message: `{{.Node}} [{{.Severity}}]{{with .Top}}: {{pct .Share}} of {{.Operation}}, ` +
			`{{ms .SelfMs}} ms a trace{{end}} and {{.OtherEntries}} more`},
	})
	require.Equal(t, map[string][]string{
		"bottleneck others":                {"db [critical]: 91% of GET /, 364 ms a trace and 2 more"},
		"bottleneck usual":                 {"db [warning]: 64% of GET /, 790 ms a trace and 0 more"},
		"circuit breaker busy edge":        {"orders -> stock: open, breaker stock.svc open"},
		"circuit breaker idle edge":        {"orders -> stock: open, breaker stock forced_open"},
		"circuit breaker no edge":          {"billings -> ledger: half_open, breaker ledger half_open"},
		"circuit half-open window":         {"orders -> stock: half_open"},
		"circuit open absolute":            {"cart -> stock: open"},
		"circuit open history":             {"orders -> stock: open"},
		"circuit traces and breaker":       {"orders -> stock: open, breaker stock open"},
		"circuit traces and named breaker": {"cart -> stock: open, breaker stock_primary half_open"},
		"lag max drain":                    {"billing on orders: ok from broker_metrics"},
		"lag max seconds":                  {"billing on orders: ok from broker_metrics, 10 behind"},
		"lag stalled":                      {"billing on orders: stalled from broker_metrics, 1.23e+03 behind"},
		"lag stopped":                      {"billing on orders: stopped from broker_metrics, 400 behind"},
		"lag traces":                       {"billing on orders: warning from traces"},
		"lag warning":                      {"billing on orders: warning from broker_metrics"},
		"retry merged":                     {"edge -> payment: 50% [warning]"},
		"retry metrics":                    {"edge -> payment: 60% [warning] per outbound|9090||payment.default"},
		"retry traces":                     {"a -> b: 40% [warning]"},
	}, got)
}

func TestMessageValidate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		validate func(msg string) error
	}{
		{"retry_storm", func(m string) error { return RetryStormOptions{Message: m}.Validate() }},
		{"open_circuit", func(m string) error { return OpenCircuitOptions{Message: m}.Validate() }},
		{"consumer_lag", func(m string) error { return ConsumerLagOptions{Message: m}.Validate() }},
		{"bottleneck", func(m string) error { return BottleneckOptions{Message: m}.Validate() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, tc.validate(""), "empty: the default")
			require.NoError(t, tc.validate(`{{.Severity}}: {{pct 0.5}} {{num 1}} {{ms 1}} {{secs 1}} {{count 1}} {{possessive "a"}}`))
			for _, bad := range []string{`{{.Severity`, `{{nope .Severity}}`, `{{if .Severity}}open`, `{{end}}`} {
				err := tc.validate(bad)
				require.ErrorIs(t, err, ErrInvalidMessage, bad)
				require.ErrorContains(t, err, tc.name+".message: ")
			}
		})
	}
}

// TestMessageFallback: a template that fails at run time (a missing field,
// a nil one) or never parsed gives the default's summary, marked.
func TestMessageFallback(t *testing.T) {
	e := sumSync("a", "b")
	e.Requests, e.Retries, e.RetryRatio = 100, 40, 0.4
	s := sumSnap([]graph.Node{sumSvc("a"), sumSvc("b")}, e)
	const def = "a retries 40% of its calls to b (40.0 retries/min); each request entering at the root reaches b 1.7 times"
	for _, tc := range []struct {
		message string
		failure string // part of the error
	}{
		{`{{.Source}} storms at {{.Nope}}`, `executing "retry_storm" at <.Nope>: can't evaluate field Nope`},
		{`{{.Metric.Name}}`, `at <.Metric.Name>: nil pointer evaluating *detect.retryMetricMessage.Name`},
		{`{{pct .Source}}`, `at <.Source>: wrong type for value; expected float64; got string`},
		{`{{.Source`, `detect: invalid message template: retry_storm.message: template: retry_storm:1: unclosed action`},
	} {
		t.Run(tc.message, func(t *testing.T) {
			obs := NewRetryStorm(RetryStormOptions{Message: tc.message}).Detect(context.Background(), s)
			require.Len(t, obs, 1)
			got := obs[0].Summary
			require.True(t, strings.HasPrefix(got, def+" (message template failed: ") && strings.HasSuffix(got, ")"), got)
			require.Contains(t, got, tc.failure)
		})
	}
	obs := NewRetryStorm(RetryStormOptions{Message: messageTemplates[finding.KindRetryStorm]}).Detect(context.Background(), s)
	require.Equal(t, def, obs[0].Summary, "the default, given explicitly")
}
