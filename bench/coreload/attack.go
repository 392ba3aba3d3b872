package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// attackOptions configure the cardinality attack.
type attackOptions struct {
	// Duration is how long the senders invent names.
	Duration time.Duration
	// Tail is how long GET /api/v1/graph keeps running after the load.
	Tail time.Duration
	// Quiet is a last stretch with no request at all: the collector's
	// own cost of holding the graph.
	Quiet time.Duration
	// Names are invented evenly over Duration.
	Names int
	// Rate is spans per second over all senders; 0 sends as fast as
	// the collector takes them.
	Rate float64
	// Senders are concurrent OTLP/HTTP clients.
	Senders int
	// CallsPerRequest is calls (two spans each) per export request.
	CallsPerRequest int
}

// attackCall returns the seq-th call of the attack when frontier names
// have been invented: the caller is one of the 32 newest names, the callee
// the next name, or for two names in five alternately the one after
// (about 1.4 edges per node, as in the graph of the issue).
func attackCall(seq uint64, frontier int) call {
	a := max(0, frontier-1-int(seq%32))
	b := a + 1
	if a%5 < 2 && seq&32 != 0 {
		b = a + 2
	}
	return call{Caller: attackName(a), Callee: attackName(b), Seq: seq}
}

// frontier is the names invented once calls calls have been sent: names
// come at a steady pace per call, Names over the calls planned
// (Rate x Duration; at the default rate when unpaced), so that the graph
// holds every name whoever is slow, and a sender held up by a slow answer
// leaves no gap of unused names.
func (o attackOptions) frontier(calls uint64) int {
	rate := o.Rate
	if rate <= 0 {
		rate = defaultAttackRate
	}
	planned := rate * o.Duration.Seconds() / spansPerCall
	return max(1, int(float64(o.Names)*float64(calls)/planned)+1)
}

// defaultAttackRate is the issue's: 2.9M spans in 25 s.
const defaultAttackRate = 116_000

func attackName(i int) string { return "atk-" + strconv.Itoa(i) }

// getSample is one GET /api/v1/graph.
type getSample struct {
	Start    time.Time
	Gzip     bool // asked with Accept-Encoding: gzip
	Encoded  bool // answered with Content-Encoding: gzip
	Latency  time.Duration
	Wire     int64 // body bytes received
	Status   int
	Err      error
	InTail   bool
	Body     []byte // kept only for the last request
	Complete bool
}

// graphGetter GETs /api/v1/graph one request at a time, as a dashboard
// polling the API does.
type graphGetter struct {
	client *http.Client
	url    string
}

func newGraphGetter(api string) *graphGetter {
	return &graphGetter{
		// Compression is asked for explicitly, so that the bytes
		// counted are the bytes on the wire.
		client: &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 2}},
		url:    "http://" + api + "/api/v1/graph",
	}
}

func (g *graphGetter) get(ctx context.Context, gz bool, keep bool) getSample {
	s := getSample{Start: time.Now(), Gzip: gz}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.url, nil)
	if err != nil {
		s.Err = err
		return s
	}
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := g.client.Do(req)
	if err != nil {
		s.Err = err
		s.Latency = time.Since(s.Start)
		return s
	}
	s.Status = resp.StatusCode
	s.Encoded = resp.Header.Get("Content-Encoding") == "gzip"
	var buf bytes.Buffer
	var w io.Writer = io.Discard
	if keep {
		w = &buf
	}
	s.Wire, err = io.Copy(w, resp.Body)
	resp.Body.Close()
	s.Latency = time.Since(s.Start)
	s.Err = err
	s.Complete = err == nil && resp.StatusCode == http.StatusOK
	if keep {
		s.Body = buf.Bytes()
	}
	return s
}

// graphSize counts the nodes and edges of a /api/v1/graph body.
func graphSize(body []byte, gzipped bool) (nodes, edges int, jsonBytes int, err error) {
	if gzipped {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return 0, 0, 0, err
		}
		if body, err = io.ReadAll(zr); err != nil {
			return 0, 0, 0, err
		}
	}
	var g struct {
		Nodes []struct{} `json:"nodes"`
		Edges []struct{} `json:"edges"`
	}
	if err := json.Unmarshal(body, &g); err != nil {
		return 0, 0, len(body), fmt.Errorf("graph: %w", err)
	}
	return len(g.Nodes), len(g.Edges), len(body), nil
}

// runAttack measures the API under a cardinality attack: senders invent
// service names while GET /api/v1/graph runs in a loop, during the load
// and for o.Tail after it; then o.Quiet with no request.
func runAttack(ctx context.Context, c *collector, o attackOptions, rep *report) error {
	exp := newExporter(c.OTLPHTTP, o.Senders)
	getter := newGraphGetter(c.API)
	spansPerReq := o.CallsPerRequest * spansPerCall
	rep.notef("attack: %d senders, %d names over %s, %d spans per request, rate %s; GET /api/v1/graph in a loop during it and %s after; then %s quiet",
		o.Senders, o.Names, o.Duration, spansPerReq, rateText(o.Rate), o.Tail, o.Quiet)

	m0 := c.metrics(ctx)
	load := startMeter(c)
	start := load.t0
	end := start.Add(o.Duration)
	tailEnd := end.Add(o.Tail)

	// The GET loop: one request at a time, plain and gzip in turn.
	var samples []getSample
	getDone := make(chan struct{})
	go func() {
		defer close(getDone)
		for i := 0; time.Now().Before(tailEnd) && ctx.Err() == nil; i++ {
			s := getter.get(ctx, i%2 == 1, false)
			s.InTail = !s.Start.Before(end)
			samples = append(samples, s)
			if s.Err != nil && ctx.Err() == nil {
				time.Sleep(100 * time.Millisecond) // refused at once: do not spin
			}
		}
	}()

	// The senders.
	var scheduled atomic.Int64
	var seq atomic.Uint64
	stats := make([]exportStats, o.Senders)
	var wg sync.WaitGroup
	for w := range o.Senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			calls := make([]call, o.CallsPerRequest)
			for ctx.Err() == nil {
				now := time.Now()
				if !now.Before(end) {
					return
				}
				if o.Rate > 0 {
					n := scheduled.Add(int64(spansPerReq)) - int64(spansPerReq)
					due := start.Add(time.Duration(float64(n) / o.Rate * float64(time.Second)))
					if !due.Before(end) {
						return
					}
					if d := time.Until(due); d > 0 {
						time.Sleep(d)
					}
					now = time.Now()
				}
				first := seq.Add(uint64(len(calls))) - uint64(len(calls))
				for i := range calls {
					calls[i] = attackCall(first+uint64(i), o.frontier(first+uint64(i)))
				}
				body, err := buildRequest(calls, now)
				if err != nil {
					stats[w].Failed += int64(spansPerReq)
					continue
				}
				stats[w].add(exp.export(ctx, body, spansPerReq, end))
			}
		}()
	}
	wg.Wait()
	loadR := load.read()
	var st exportStats
	for _, s := range stats {
		st.add(s)
	}
	tail := startMeter(c)
	<-getDone
	tailR := tail.read()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	quiet := startMeter(c)
	select {
	case <-time.After(o.Quiet):
	case <-ctx.Done():
		return ctx.Err()
	}
	quietR := quiet.read()
	m1 := c.metrics(ctx)
	final := getter.get(ctx, false, true)

	loadSec := loadR.Wall.Seconds()
	rep.notef("senders: %s over %.1fs", st, loadSec)
	rep.add("attack.load.spans_accepted_per_s", float64(st.Accepted)/loadSec, "spans/s", fmt.Sprintf("%d spans in %.1fs", st.Accepted, loadSec))
	rep.add("attack.load.spans_not_taken", float64(st.Rejected+st.Abandoned+st.Failed), "spans", fmt.Sprintf("rejected %d, abandoned after 429/503 %d, failed %d; %d refusals retried", st.Rejected, st.Abandoned, st.Failed, st.Refusals))
	rep.add("attack.load.names_invented", float64(o.frontier(seq.Load())+1), "names", "in the calls sent")
	if v0, ok := m0.sum("cartograph_graph_spans_total"); ok {
		v1, _ := m1.sum("cartograph_graph_spans_total")
		rep.add("attack.graph_spans_counted", v1-v0, "spans", "cartograph_graph_spans_total")
	}

	for _, ph := range []struct {
		name string
		tail bool
		r    meterReading
	}{{"load", false, loadR}, {"tail", true, tailR}} {
		for _, mode := range []struct {
			name string
			gz   bool
		}{{"plain", false}, {"gzip", true}} {
			var d []time.Duration
			var bytesMax int64
			var bad int
			var encoded bool
			for _, s := range samples {
				if s.InTail != ph.tail || s.Gzip != mode.gz {
					continue
				}
				if !s.Complete {
					bad++
					continue
				}
				d = append(d, s.Latency)
				bytesMax = max(bytesMax, s.Wire)
				encoded = encoded || s.Encoded
			}
			l := summarise(d)
			p := "attack." + ph.name + ".get_graph_" + mode.name
			note := ""
			if mode.gz {
				note = "Accept-Encoding: gzip; answered uncompressed"
				if encoded {
					note = "Accept-Encoding: gzip; answered gzip"
				}
			}
			if bad > 0 {
				note += fmt.Sprintf("; %d failed", bad)
			}
			rep.add(p+".n", float64(l.N), "requests", note)
			rep.add(p+".p50", ms(l.P50), "ms", "")
			rep.add(p+".p90", ms(l.P90), "ms", "")
			rep.add(p+".p99", ms(l.P99), "ms", "")
			rep.add(p+".max", ms(l.Max), "ms", "")
			rep.add(p+".bytes_max", float64(bytesMax)/1e6, "MB", "largest body on the wire")
		}
		what := "during the load"
		if ph.tail {
			what = "after the load, GET loop still running"
		}
		rep.add("attack."+ph.name+".collector_cpu", ph.r.Collector, "cpu-s", fmt.Sprintf("%s, %.1fs", what, ph.r.Wall.Seconds()))
		rep.add("attack."+ph.name+".collector_cpu_pct", ph.r.share(ph.r.Collector), "%core", machineNote(ph.r))
	}
	rep.add("attack.quiet.collector_cpu_pct", quietR.share(quietR.Collector), "%core", fmt.Sprintf("no requests, %.1fs; %s", quietR.Wall.Seconds(), machineNote(quietR)))
	if final.Complete {
		n, e, b, err := graphSize(final.Body, final.Encoded)
		if err != nil {
			return err
		}
		rep.add("attack.graph.nodes", float64(n), "nodes", "GET /api/v1/graph at the end")
		rep.add("attack.graph.edges", float64(e), "edges", "")
		rep.add("attack.graph.json", float64(b)/1e6, "MB", "")
		rep.add("attack.final_get_graph", ms(final.Latency), "ms", "with no other load")
	} else {
		rep.notef("final GET /api/v1/graph failed: status %d, %v", final.Status, final.Err)
	}
	for _, m := range []struct{ series, name, unit string }{
		{"cartograph_graph_nodes", "attack.metric.graph_nodes", "nodes"},
		{"cartograph_graph_edges", "attack.metric.graph_edges", "edges"},
		{"cartograph_graph_overflow_total", "attack.metric.graph_overflow", "count"},
		{"cartograph_graph_observations_dropped_total", "attack.metric.observations_dropped", "count"},
		{"cartograph_graph_spans_refused_total", "attack.metric.spans_refused", "spans"},
		{"cartograph_graph_half_edges_expired_total", "attack.metric.half_edges_expired", "count"},
	} {
		if v, ok := m1.sum(m.series); ok {
			rep.add(m.name, v, m.unit, m.series+" at the end")
		}
	}
	if u, err := usage(c.cmd.Process.Pid); err == nil {
		rep.add("attack.collector_rss_peak", float64(u.HWMKB)/1024, "MiB", "VmHWM")
	}
	return nil
}

func rateText(r float64) string {
	if r <= 0 {
		return "as fast as taken"
	}
	return fmt.Sprintf("%.0f spans/s", r)
}
