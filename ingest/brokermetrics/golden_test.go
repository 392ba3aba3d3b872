package brokermetrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/seed-a49a8342/cartograph/graph/lag"
	"github.com/seed-a49a8342/cartograph/graph/resilience"
	"github.com/seed-a49a8342/cartograph/ingest/brokermetrics"
)

var update = flag.Bool("update", false, "rewrite the golden files (testdata/*-samples.json)")

// testNow is the test clock: points without a timestamp get it. The points
// in testdata are stamped 2026-01-01T00:00:00Z and shortly after.
var testNow = time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)

// sinks records what the consumer hands on, like consumertest.MetricsSink;
// it refuses the first reject* samples of each call.
type sinks struct {
	mu            sync.Mutex
	lag           []lag.Sample
	circuits      []resilience.CircuitSample
	retries       []resilience.RetrySample
	rejectLag     int
	rejectCircuit int
	rejectRetry   int
}

func (s *sinks) Add(samples []lag.Sample) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lag = append(s.lag, samples...)
	return min(s.rejectLag, len(samples))
}

func (s *sinks) AddCircuits(samples []resilience.CircuitSample) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.circuits = append(s.circuits, samples...)
	return min(s.rejectCircuit, len(samples))
}

func (s *sinks) AddRetries(samples []resilience.RetrySample) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retries = append(s.retries, samples...)
	return min(s.rejectRetry, len(samples))
}

// golden is what testdata/<case>-samples.json holds: each request's result,
// the point counts by family/outcome, and the samples the sinks received.
type golden struct {
	Results  []string                   `json:"results"`
	Points   map[string]float64         `json:"points"`
	Lag      []lag.Sample               `json:"lag"`
	Circuits []resilience.CircuitSample `json:"circuits"`
	Retries  []resilience.RetrySample   `json:"retries"`
}

// goldenCases lists the cases in testdata: each <case>-metrics.json has a
// <case>-samples.json beside it.
func goldenCases(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*-metrics.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no testdata/*-metrics.json")
	cases := make([]string, len(files))
	for i, f := range files {
		cases[i] = strings.TrimSuffix(filepath.Base(f), "-metrics.json")
	}
	return cases
}

// readRequests decodes testdata/<name>-metrics.json: a JSON array of OTLP/JSON
// ExportMetricsServiceRequest objects, one per request, in sending order.
func readRequests(t testing.TB, name string) []pmetric.Metrics {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+"-metrics.json"))
	require.NoError(t, err)
	var raw []json.RawMessage
	require.NoError(t, json.Unmarshal(b, &raw), "%s-metrics.json must hold a JSON array of requests", name)
	require.NotEmpty(t, raw)
	var u pmetric.JSONUnmarshaler
	out := make([]pmetric.Metrics, len(raw))
	for i, r := range raw {
		md, err := u.UnmarshalMetrics(r)
		require.NoError(t, err, "request %d", i)
		out[i] = md
	}
	return out
}

// newConsumer returns a consumer into s on a fresh registry and the test
// clock.
func newConsumer(t testing.TB, s *sinks, o brokermetrics.Options) (*brokermetrics.Consumer, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	o.Lag, o.Resilience, o.Registerer = s, s, reg
	if o.Now == nil {
		o.Now = func() time.Time { return testNow }
	}
	c, err := brokermetrics.New(o)
	require.NoError(t, err)
	return c, reg
}

// pointCounts returns the nonzero cartograph_ingest_metric_points_total
// series as "family/outcome".
func pointCounts(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "cartograph_ingest_metric_points_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if v := m.GetCounter().GetValue(); v != 0 {
				var fam, oc string
				for _, l := range m.GetLabel() {
					switch l.GetName() {
					case "family":
						fam = l.GetValue()
					case "outcome":
						oc = l.GetValue()
					}
				}
				out[fam+"/"+oc] = v
			}
		}
	}
	return out
}

// TestGolden sends each case's requests through a consumer and compares the
// results, point counts and samples with testdata/<case>-samples.json. Run
// with -update to rewrite the goldens, then review the diff.
func TestGolden(t *testing.T) {
	for _, name := range goldenCases(t) {
		t.Run(name, func(t *testing.T) {
			s := &sinks{}
			c, reg := newConsumer(t, s, brokermetrics.Options{})
			g := golden{Results: []string{}}
			total := 0
			for _, md := range readRequests(t, name) {
				total += md.DataPointCount()
				res := "ok"
				if err := c.ConsumeMetrics(context.Background(), md); err != nil {
					res = err.Error()
				}
				g.Results = append(g.Results, res)
			}
			g.Points = pointCounts(t, reg)
			g.Lag, g.Circuits, g.Retries = s.lag, s.circuits, s.retries

			sum := 0.0
			for _, v := range g.Points {
				sum += v
			}
			require.Equal(t, float64(total), sum, "every data point is counted once")
			for _, smp := range s.lag {
				require.NoError(t, smp.Validate())
			}

			got := marshalGolden(t, g)
			path := filepath.Join("testdata", name+"-samples.json")
			if *update {
				require.NoError(t, os.WriteFile(path, got, 0o644))
				return
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run go test ./ingest/brokermetrics/ -run TestGolden -update to create it")
			require.Equal(t, string(want), string(got))
		})
	}
}

// marshalGolden encodes g indented by two spaces.
func marshalGolden(t testing.TB, g golden) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	require.NoError(t, enc.Encode(g))
	return b.Bytes()
}
