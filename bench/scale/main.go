// Command scale measures cartograph at scale, in one process, on a live
// graph.Graph built through its real ConsumeSpans path: for each size
// (services, edges), with and without 1M pending half-edges, it prints the
// heap the graph holds, the time to build a snapshot, the latency of
// GET /api/v1/graph through the real API handler (JSON encoding included),
// and the time of one detector evaluation tick (the four detectors and the
// blast radius, through detect.Engine).
//
// Heap is the live heap after a GC once the graph is built, in a fresh
// process per case.
//
// Usage: go run ./bench/scale [-reps 5] [-pending 1000000]
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"time"

	"github.com/seed-a49a8342/cartograph/detect"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/web/api"
)

func main() {
	reps := flag.Int("reps", 5, "repetitions of each timed step (the median is printed)")
	pending := flag.Int("pending", 1_000_000, "pending half-edges added for the second row of each size")
	one := flag.String("case", "", "run one case, SERVICES,EDGES,PENDING, in this process (the default runs each case in a fresh process, so heaps do not mix)")
	flag.Parse()
	if *one != "" {
		var services, edges, pend int
		if _, err := fmt.Sscanf(*one, "%d,%d,%d", &services, &edges, &pend); err != nil {
			fmt.Fprintln(os.Stderr, "scale: -case:", err)
			os.Exit(2)
		}
		if err := run(services, edges, pend, *reps); err != nil {
			fmt.Fprintln(os.Stderr, "scale:", err)
			os.Exit(1)
		}
		return
	}
	fmt.Printf("# machine: %d cores, %s; GOMAXPROCS %d\n", runtime.NumCPU(), runtime.Version(), runtime.GOMAXPROCS(0))
	fmt.Printf("%-9s %-8s %-10s %10s %12s %12s %12s %10s %10s\n", "services", "edges", "pending", "heap MB", "ingest s", "snapshot ms", "GET graph ms", "JSON MB", "tick ms")
	for _, sz := range []struct{ services, edges int }{{1_000, 10_000}, {10_000, 100_000}} {
		for _, pend := range []int{0, *pending} {
			cmd := exec.Command(os.Args[0], "-reps", fmt.Sprint(*reps), "-case", fmt.Sprintf("%d,%d,%d", sz.services, sz.edges, pend))
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintln(os.Stderr, "scale:", err)
				os.Exit(1)
			}
		}
	}
}

// world is a graph with a clock the run advances.
type world struct {
	now time.Time
	g   *graph.Graph
	seq uint64
}

func (w *world) ids() (graph.TraceID, graph.SpanID, graph.SpanID) {
	w.seq++
	var t graph.TraceID
	var c, s graph.SpanID
	binary.BigEndian.PutUint64(t[:8], w.seq)
	binary.BigEndian.PutUint64(c[:], w.seq<<1)
	binary.BigEndian.PutUint64(s[:], w.seq<<1|1)
	return t, c, s
}

func run(services, edges, pending, reps int) error {
	w := &world{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	g, err := graph.New(graph.Options{
		Now:      func() time.Time { return w.now },
		MaxNodes: 2 * services, MaxEdges: 2 * edges, MaxPending: pending + 100_000,
	})
	if err != nil {
		return err
	}
	w.g = g
	names := make([]string, services)
	for i := range names {
		names[i] = fmt.Sprintf("svc-%05d", i)
	}
	// Each edge src -> dst is called 5 times over the window, in batches
	// of 10,000 spans; edge k joins service k%N to (k%N + 1 + k/N) % N.
	start := time.Now()
	batch := make([]graph.Span, 0, 10_000)
	flush := func() error {
		if rej, why := g.ConsumeSpans(batch); rej != 0 {
			return fmt.Errorf("%d spans refused: %s", rej, why)
		}
		batch = batch[:0]
		return nil
	}
	for round := range 5 {
		for k := range edges {
			src := k % services
			dst := (src + 1 + k/services) % services
			t, cid, sid := w.ids()
			d := int64((5 + k%20 + round) * int(time.Millisecond))
			batch = append(batch,
				graph.Span{Trace: t, ID: cid, Parent: cid, Kind: graph.SpanClient, Service: names[src], Start: 0, End: d + int64(time.Millisecond),
					Protocol: graph.ProtocolHTTP, Operation: "POST /" + names[dst], Peer: graph.NodeKey{Kind: graph.NodeExternal, Name: names[dst]}},
				graph.Span{Trace: t, ID: sid, Parent: cid, Kind: graph.SpanServer, Service: names[dst], Start: 0, End: d, Protocol: graph.ProtocolHTTP})
			if len(batch) == cap(batch) {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		w.now = w.now.Add(10 * time.Second)
	}
	// Pending: client calls to an external peer that no span answers,
	// waiting out the pair TTL.
	for i := range pending {
		t, cid, _ := w.ids()
		src := i % services
		batch = append(batch, graph.Span{Trace: t, ID: cid, Parent: cid, Kind: graph.SpanClient, Service: names[src], Start: 0, End: int64(time.Millisecond),
			Protocol: graph.ProtocolHTTP, Operation: "POST", Peer: graph.NodeKey{Kind: graph.NodeExternal, Name: "api.example.com:443"}})
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	ingest := time.Since(start)
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)

	snapMs := timed(reps, func() error { _, err := g.Snapshot(0); return err })

	a, err := api.New(api.Options{Graph: g, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	srv := httptest.NewServer(a)
	defer srv.Close()
	var size int64
	getMs := timed(reps, func() error {
		res, err := http.Get(srv.URL + "/api/v1/graph")
		if err != nil {
			return err
		}
		defer res.Body.Close()
		n, err := io.Copy(io.Discard, res.Body)
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /api/v1/graph: %s", res.Status)
		}
		size = n
		return err
	})

	eng, err := detect.NewEngine(detect.EngineOptions{
		Detectors: []detect.Detector{
			detect.NewRetryStorm(detect.RetryStormOptions{}),
			detect.NewConsumerLag(detect.ConsumerLagOptions{}),
			detect.NewOpenCircuit(detect.OpenCircuitOptions{}),
			detect.NewBottleneck(detect.BottleneckOptions{}),
		},
		Now:    func() time.Time { return w.now },
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	snap, err := g.Snapshot(0)
	if err != nil {
		return err
	}
	if len(snap.Edges) < edges {
		return fmt.Errorf("snapshot has %d edges, want at least %d", len(snap.Edges), edges)
	}
	tickMs := timed(reps, func() error { eng.Eval(context.Background(), snap); return nil })

	fmt.Printf("%-9d %-8d %-10d %10.0f %12.1f %12.1f %12.1f %10.1f %10.1f\n", services, len(snap.Edges), pending,
		float64(m1.HeapAlloc)/1e6, ingest.Seconds(), snapMs, getMs, float64(size)/1e6, tickMs)
	runtime.KeepAlive(g)
	return nil
}

// timed runs f reps times and returns the median duration in ms.
func timed(reps int, f func() error) float64 {
	var ds []float64
	for range reps {
		t := time.Now()
		if err := f(); err != nil {
			fmt.Fprintln(os.Stderr, "scale:", err)
			os.Exit(1)
		}
		ds = append(ds, float64(time.Since(t).Microseconds())/1000)
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}
