// Package traffic makes the edge buckets a live graph writes to storage
// from production-shaped traffic, so that the storage backends' tests store
// and read back what a collector really persists. It is for tests only.
package traffic

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
)

// Graph options of every run: the collector's defaults (1m window, 5s
// buckets, 10s pair TTL).
const (
	Window = time.Minute
	Bucket = 5 * time.Second
)

// Edge ids of the traffic Sampled makes.
const (
	// SampledEdge carries calls of head-sampled traces (1 in OneIn kept).
	SampledEdge = "service:web->service:api http"
	// UnsampledEdge carries calls of traces that are all kept.
	UnsampledEdge = "service:cron->service:api http"
)

// OneIn is the head sampling of the web traces: 1 in OneIn is kept, and a
// kept span stands for OneIn calls.
const OneIn = 4

// Run is what a live graph made of the traffic.
type Run struct {
	// Start and End bound the traffic; End is a bucket boundary.
	Start, End time.Time
	// Buckets are the closed buckets, as the persister writes them.
	Buckets []graph.EdgeBucket
	// Nodes are the nodes seen per bucket (graph.Graph.ClosedNodes).
	Nodes []graph.NodeSeen
	// Live is the live graph's snapshot of the last Window at End.
	Live *graph.Snapshot
}

// NewGraph returns a graph with the options of a run whose clock stands
// at now: what a collector restarting at now builds before Restore.
func NewGraph(now time.Time) (*graph.Graph, error) {
	return graph.New(graph.Options{Window: Window, Bucket: Bucket, PairTTL: 10 * time.Second, Now: func() time.Time { return now }})
}

// Sampled runs a live graph over d from start (truncated to a bucket
// boundary; End is start + d rounded up to one) on traffic shaped like
// production: web calls api over HTTP with Poisson arrivals at 4 calls/s, of which only the traces the head
// sampler keeps (1 in OneIn, by trace id) arrive, each span weighted
// OneIn; cron calls api at 1 call/s, unsampled. 0.5% of calls fail.
// Spans arrive in export batches every second, client and server of a
// call in the same batch or the next. seed picks the arrivals and trace
// ids, so that replicas given different seeds see different calls.
func Sampled(start time.Time, d time.Duration, seed uint64) (*Run, error) {
	start = start.Truncate(Bucket)
	if start.IsZero() || d < Bucket {
		return nil, fmt.Errorf("traffic: start %v, duration %v", start, d)
	}
	now := start
	g, err := graph.New(graph.Options{Window: Window, Bucket: Bucket, PairTTL: 10 * time.Second, Now: func() time.Time { return now }})
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x5a4d1ed))
	api := graph.NodeKey{Kind: graph.NodeExternal, Name: "api:8080"}
	// next arrival times (Unix nanos) per caller.
	type caller struct {
		svc     string
		rate    float64 // calls per second of the real traffic
		sampled bool
		next    int64
	}
	callers := []*caller{{svc: "web", rate: 4, sampled: true}, {svc: "cron", rate: 1}}
	exp := func(rate float64) int64 { return int64(rng.ExpFloat64() / rate * float64(time.Second)) }
	for _, c := range callers {
		c.next = start.UnixNano() + exp(c.rate)
	}
	var (
		seq     uint64
		pending []graph.Span // server spans exported in the next batch
		run     = &Run{Start: start, End: start.Add(d).Truncate(Bucket)}
		after   time.Time
	)
	if run.End.Before(start.Add(d)) {
		run.End = run.End.Add(Bucket)
	}
	for tick := start.Add(time.Second); !tick.After(run.End); tick = tick.Add(time.Second) {
		batch := pending
		pending = nil
		for _, c := range callers {
			for ; c.next < tick.UnixNano(); c.next += exp(c.rate) {
				seq++
				var tr graph.TraceID
				binary.BigEndian.PutUint64(tr[:], seed)
				binary.BigEndian.PutUint64(tr[8:], rng.Uint64())
				if c.sampled && binary.BigEndian.Uint64(tr[8:])%OneIn != 0 {
					continue // sampled out: no span of it arrives
				}
				var cid, sid graph.SpanID
				binary.BigEndian.PutUint64(cid[:], 2*seq)
				binary.BigEndian.PutUint64(sid[:], 2*seq+1)
				dur := int64(math.Exp(math.Log(20)+0.3*rng.NormFloat64()) * float64(time.Millisecond))
				failed := rng.Float64() < 0.005
				w := 0.0
				if c.sampled {
					w = OneIn
				}
				cl := graph.Span{Trace: tr, ID: cid, Kind: graph.SpanClient, Service: c.svc, Start: c.next, End: c.next + dur + int64(time.Millisecond),
					Protocol: graph.ProtocolHTTP, Peer: api, Error: failed, Weight: w, Operation: "GET /items"}
				sv := graph.Span{Trace: tr, ID: sid, Parent: cid, Kind: graph.SpanServer, Service: "api", Start: c.next + int64(500*time.Microsecond), End: c.next + dur,
					Protocol: graph.ProtocolHTTP, Error: failed, Weight: w}
				batch = append(batch, cl)
				if rng.IntN(3) == 0 && tick.Before(run.End) { // the callee's exporter is a batch late
					pending = append(pending, sv)
				} else {
					batch = append(batch, sv)
				}
			}
		}
		// The batch of the second before tick arrives just before it, in
		// that second's bucket.
		now = tick.Add(-time.Nanosecond)
		if rej, why := g.ConsumeSpans(batch); rej > 0 {
			return nil, fmt.Errorf("traffic: %d spans refused at %v: %s", rej, tick, why)
		}
		if tick.UnixNano()%int64(Bucket) == 0 {
			// The persister's flush, as the bucket closes.
			now = tick
			run.Nodes = append(run.Nodes, g.ClosedNodes(after)...)
			var bs []graph.EdgeBucket
			bs, after = g.ClosedBuckets(after)
			run.Buckets = append(run.Buckets, bs...)
		}
	}
	now = run.End
	if run.Live, err = g.Snapshot(Window); err != nil {
		return nil, err
	}
	return run, nil
}
