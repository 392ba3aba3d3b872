package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/simulate/scenario"
	"github.com/seed-a49a8342/cartograph/simulate/scenario/demo"
)

// TestE2EDemo runs `collector --demo` with its timings compressed (a 3 s
// window, 6 s phases) and watches the API: each of the four findings fires
// on the subject of its fault, in the order of the cycle, and resolves,
// and so do the cascade's two retry storms, in one incident naming the
// database first; nothing else fires; the graph holds the generated system with its
// asynchronous edges; the telemetry went through the OTLP receiver.
func TestE2EDemo(t *testing.T) {
	const phase = 6 * time.Second
	start := time.Now()
	col, logs := startCollectorLogged(t, nil, "--demo", "--demo-rate=60", "--demo-phase="+phase.String(),
		"--window=3s", "--eval-interval=500ms", "--pair-ttl=1s", "--trace-idle=500ms", "--trace-sample-one-in=2")

	gen, err := scenario.New(scenario.Options{})
	require.NoError(t, err)
	order := demo.DefaultFaults()
	// faultOf says which fault a finding is of: the one whose expected
	// findings (a cascade has two) name its kind and subject.
	faultOf := func(f wireFinding) (scenario.Fault, bool) {
		for _, fl := range order {
			e := gen.Expect(fl)
			for _, x := range append([]scenario.Expectation{e}, e.Also...) {
				if f.Kind == x.Kind && f.Subject["node"] == x.Node && f.Subject["source"] == x.Source && f.Subject["target"] == x.Target {
					return fl, true
				}
			}
		}
		return 0, false
	}

	// Fault i is on from (2i+1) phases after the start to (2i+2); its
	// findings must fire and then resolve. Allow the last one four phases
	// more to resolve.
	deadline := start.Add(time.Duration(2*len(order)+5) * phase)
	fired, resolved := map[scenario.Fault]time.Duration{}, map[scenario.Fault]time.Duration{}
	seen := map[scenario.Fault]map[string]bool{} // the findings of each fault seen firing
	var cascade wireIncident
	for len(resolved) < len(order) && time.Now().Before(deadline) {
		for _, f := range getFindings(t, col, "all") {
			fl, ok := faultOf(f)
			require.True(t, ok, "only the faults' own findings fire: %s %v: %s", f.Kind, f.Subject, f.Summary)
			at := time.Since(start)
			if f.State != "pending" {
				if seen[fl] == nil {
					seen[fl] = map[string]bool{}
				}
				seen[fl][f.Kind+" "+f.Subject["source"]+f.Subject["node"]] = true
			}
			if _, ok := fired[fl]; !ok && f.State != "pending" {
				fired[fl] = at
			}
			if _, ok := resolved[fl]; !ok && f.State == "resolved" && len(seen[fl]) == 1+len(gen.Expect(fl).Also) {
				resolved[fl] = at
			}
		}
		for _, inc := range getIncidents(t, col, "all") {
			if inc.cause() == gen.Expect(scenario.FaultCascade).Cause && len(inc.Findings) >= 2 {
				cascade = inc
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	for i, f := range order {
		on := time.Duration(2*i+1) * phase
		t.Logf("%-12s on at %4.1fs: firing after %4.1fs, resolved %4.1fs after it went off", f, on.Seconds(),
			(fired[f] - on).Seconds(), (resolved[f] - on - phase).Seconds())
	}
	for i, f := range order {
		require.Contains(t, fired, f, "%s never fired", f)
		require.Contains(t, resolved, f, "%s never resolved", f)
		require.Greater(t, fired[f], time.Duration(2*i+1)*phase, "%s fired before its fault was on", f)
		require.Greater(t, resolved[f], time.Duration(2*i+2)*phase, "%s resolved before its fault went off", f)
	}
	require.NotEmpty(t, cascade.ID, "the cascade's two retry storms make one incident naming the database first")
	require.Contains(t, cascade.RootCauses[0].Reasons, "raised no finding of its own: only the findings of those that depend on it point here")

	g := getGraph(t, col)
	kinds := map[string]int{}
	for _, n := range g.Nodes {
		kinds[n.Kind]++
	}
	require.Equal(t, scenario.DefaultServices, kinds["service"], "every generated service: %v", kinds)
	for _, k := range []string{"topic", "queue", "database", "external"} {
		require.Positive(t, kinds[k], "a %s node: %v", k, kinds)
	}
	var fromTopic, fromQueue, toDest int
	for _, e := range g.Edges {
		if e.Kind != "async" {
			continue
		}
		switch src, dst := g.node(e.Source), g.node(e.Target); {
		case src != nil && src.Kind == "topic" && e.ConsumerGroup != "":
			fromTopic++
		case src != nil && src.Kind == "queue":
			fromQueue++
		case dst != nil && (dst.Kind == "topic" || dst.Kind == "queue"):
			toDest++
		}
	}
	require.Positive(t, fromTopic, "topic -> consumer group edges")
	require.Positive(t, fromQueue, "queue -> consumer edges")
	require.Positive(t, toDest, "producer -> destination edges")

	_, _, body := httpGet(t, apiURL(col, "/metrics"))
	require.Positive(t, sample(string(body), "cartograph_receiver_items_total", "signal", "traces", "transport", "grpc", "result", "accepted"),
		"the demo sends over OTLP/gRPC")
	require.Positive(t, sample(string(body), "cartograph_receiver_items_total", "signal", "metrics", "transport", "grpc", "result", "accepted"),
		"and its broker metrics too")
	require.Contains(t, logs.String(), "DEMO MODE")
	require.Contains(t, logs.String(), `msg="demo: retry_storm on"`)
	require.Contains(t, logs.String(), `msg="demo: consumer_lag off"`)
}

// TestE2EDemoIngestTokens: with ingest tokens the demo feeds the pipeline
// in-process, and the OTLP receiver still refuses senders without a token.
func TestE2EDemoIngestTokens(t *testing.T) {
	col, logs := startCollectorLogged(t, map[string]string{envIngestTokens: "team-shop:0123456789abcdef0123456789abcdef"},
		"--demo", "--demo-rate=60", "--window=4s")
	g := pollGraph(t, col, 15*time.Second, func(g *wireGraph) bool {
		for _, e := range g.Edges {
			if e.Kind == "async" && e.ConsumerGroup != "" {
				return true
			}
		}
		return false
	})
	require.NotEmpty(t, g.Edges, "the demo's traffic reaches the graph")
	require.Contains(t, logs.String(), `via="in-process`)
	_, _, body := httpGet(t, apiURL(col, "/metrics"))
	require.Zero(t, sample(string(body), "cartograph_receiver_items_total", "signal", "traces", "transport", "grpc", "result", "accepted"))
}

func TestDemoConfig(t *testing.T) {
	parse := func(env map[string]string, args ...string) (config, error) {
		return parseConfig(args, func(k string) string { return env[k] }, io.Discard)
	}
	c, err := parse(nil)
	require.NoError(t, err)
	require.False(t, c.Demo)
	require.Equal(t, time.Minute, c.Window, "no demo, no demo defaults")

	c, err = parse(nil, "--demo")
	require.NoError(t, err)
	require.True(t, c.Demo)
	require.Equal(t, 8*time.Second, c.Window)
	require.Equal(t, time.Second, c.EvalInterval)
	require.Equal(t, 2*time.Second, c.PairTTL)
	require.Equal(t, time.Second, c.TraceIdle)
	require.Equal(t, "./cartograph-demo-data", c.DataDir, "synthetic history kept apart")
	require.Equal(t, demo.DefaultPhase, c.DemoPhase)

	c, err = parse(map[string]string{"CARTOGRAPH_DEMO": "true", "CARTOGRAPH_WINDOW": "20s"}, "--eval-interval=2s")
	require.NoError(t, err)
	require.True(t, c.Demo)
	require.Equal(t, 20*time.Second, c.Window, "a window from the environment wins")
	require.Equal(t, 2*time.Second, c.EvalInterval, "a flag wins")
	require.Equal(t, 2*time.Second, c.PairTTL)

	_, err = parse(nil, "--demo", "--storage=clickhouse", "--clickhouse-dsn=clickhouse://127.0.0.1:9000/cartograph")
	require.ErrorContains(t, err, "--demo refuses --storage clickhouse")
	_, err = parse(map[string]string{"CARTOGRAPH_DEMO": "1", "CARTOGRAPH_STORAGE": "clickhouse", "CARTOGRAPH_CLICKHOUSE_DSN": "clickhouse://x"})
	require.ErrorContains(t, err, "--demo refuses --storage clickhouse")
	_, err = parse(nil, "--demo", "--detect=off")
	require.ErrorContains(t, err, "--demo needs --detect local")
	_, err = parse(nil, "--demo", "--demo-rate=0")
	require.ErrorContains(t, err, "--demo-rate must be positive")
	_, err = parse(nil, "--storage=clickhouse", "--clickhouse-dsn=clickhouse://x", "--demo-rate=0")
	require.NoError(t, err, "demo flags are not judged without --demo")
	require.False(t, strings.Contains(demoDefaults[len(demoDefaults)-1].value, "cartograph-data/"), "never the default data directory")
}
