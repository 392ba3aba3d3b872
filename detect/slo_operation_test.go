package detect

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
)

// TestSLOBurnOperation: objectives of one entry operation count only the
// root server spans of that operation of that service, as they arrive
// (several batches at once, late ones, sampled ones weighted), not the
// entry point's other operations, not spans further down a trace, and
// not another namespace's service of the same name. POST /pay fails 3%
// of the time from minute 12 and burns (the long window passing 14.4 near
// minute 17); GET /cart at 0.05% errors, GET
// /health failing half the time and failing child spans burn nothing.
func TestSLOBurnOperation(t *testing.T) {
	const bucket = 5 * time.Second
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cfg, err := ParseSLOConfig([]byte(`
windows:
  - {long: 10m, short: 1m, factor: 14.4, severity: critical}
objectives:
  - {service: checkout, namespace: shop, operation: POST /pay, sli: availability, target: 99.9}
  - {service: checkout, namespace: shop, operation: GET /cart, sli: availability, target: 99.9}
  - {service: checkout, namespace: shop, operation: GET /cart, sli: latency, target: 99, threshold: 300ms}
`), 0)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Objectives[0].Name != "checkout POST /pay-availability" {
		t.Errorf("default name %q", cfg.Objectives[0].Name)
	}
	d, err := NewSLOBurn(SLOBurnOptions{Config: cfg, Buckets: &fakeBuckets{now: &now, bucket: bucket}, Bucket: bucket, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if !d.CountsOperations() {
		t.Fatal("CountsOperations: false")
	}
	rng := rand.New(rand.NewPCG(7, 11))
	span := func(at time.Time, ns, op string, parent bool, failed bool, ms float64, weight float64) graph.Span {
		s := graph.Span{Kind: graph.SpanServer, Service: "checkout", Namespace: ns, Operation: op, Error: failed, Weight: weight,
			Start: at.UnixNano(), End: at.Add(time.Duration(ms * float64(time.Millisecond))).UnixNano()}
		s.ID[0] = byte(rng.Uint32())
		if parent {
			s.Parent[0] = 1
		}
		return s
	}
	var late []graph.Span // each bucket's last spans arrive with the next
	fired := map[time.Duration][]string{}
	for elapsed := time.Duration(0); elapsed < 20*time.Minute; elapsed += bucket {
		mu.Lock()
		start := now
		mu.Unlock()
		var batch []graph.Span
		payErr := 0.0005
		if elapsed >= 12*time.Minute {
			payErr = 0.03
		}
		// Poisson arrivals: about 8 pays, 20 carts, 2 health checks a second.
		for _, op := range []struct {
			name   string
			rate   float64
			errP   float64
			weight float64
		}{{"POST /pay", 8, payErr, 1}, {"GET /cart", 10, 0.0005, 2}, {"GET /health", 2, 0.5, 1}} {
			for at := start.Add(time.Duration(rng.ExpFloat64() / op.rate * float64(time.Second))); at.Before(start.Add(bucket)); at = at.Add(time.Duration(rng.ExpFloat64() / op.rate * float64(time.Second))) {
				batch = append(batch, span(at, "shop", op.name, false, rng.Float64() < op.errP, 20+rng.ExpFloat64()*30, op.weight))
				// A failing child span under each request, and the same
				// operation in another namespace failing always.
				batch = append(batch, span(at, "shop", op.name, true, true, 5, 1), span(at, "staging", op.name, false, true, 5, 1))
			}
		}
		rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
		cut := len(batch) * 4 / 5
		var wg sync.WaitGroup
		for _, part := range [][]graph.Span{late, batch[:cut/2], batch[cut/2 : cut]} {
			wg.Go(func() { d.ObserveSpans(part) })
		}
		wg.Wait()
		late = batch[cut:]
		mu.Lock()
		now = now.Add(bucket)
		mu.Unlock()
		var names []string
		for _, o := range d.Detect(context.Background(), nil) {
			if o.Subject.Node != "checkout" || o.Subject.NodeID != (graph.NodeKey{Kind: graph.NodeService, Group: "shop", Name: "checkout"}).ID() {
				t.Errorf("subject %+v", o.Subject)
			}
			for _, ob := range o.Evidence["objectives"].([]any) {
				names = append(names, ob.(map[string]any)["name"].(string))
			}
		}
		fired[elapsed] = names
	}
	for elapsed, names := range fired {
		switch {
		case elapsed < 12*time.Minute && len(names) > 0:
			t.Errorf("%v: %v burn before the fault", elapsed, names)
		// 3% over 0.1% is a burn of 30: the 10-minute window passes 14.4
		// when about half of it is the fault's, near minute 17.
		case elapsed >= 18*time.Minute && (len(names) != 1 || names[0] != "checkout POST /pay-availability"):
			t.Errorf("%v: burning %v, want POST /pay's availability alone", elapsed, names)
		}
	}
}
