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
	// Spans are sent in all, whoever is measured: the same work and the
	// same graph for every build.
	Spans int64
	// Names are invented evenly over the spans.
	Names int
	// Duration paces the spans: Spans / Duration per second at most
	// (the load lasts longer when the collector takes them slower).
	Duration time.Duration
	// Unpaced sends as fast as the collector takes them instead.
	Unpaced bool
	// MaxDuration bounds the load; spans not sent by then are counted.
	MaxDuration time.Duration
	// Tail is how long GET /api/v1/graph keeps running after the load.
	Tail time.Duration
	// Quiet is a last stretch with no request at all: the collector's
	// own cost of holding the graph.
	Quiet time.Duration
	// Senders are concurrent OTLP/HTTP clients.
	Senders int
	// CallsPerRequest is calls (two spans each) per export request.
	CallsPerRequest int
}

func (o attackOptions) plannedCalls() uint64 { return uint64(o.Spans / spansPerCall) }

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
// come at a steady pace per call, so that the graph holds every name
// whoever is slow, and a sender held up by a slow answer leaves no gap of
// unused names.
func (o attackOptions) frontier(calls uint64) int {
	return max(1, int(float64(o.Names)*float64(calls)/float64(o.plannedCalls()))+1)
}

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
	planned := o.plannedCalls()
	rate := float64(o.Spans) / o.Duration.Seconds()
	pace := fmt.Sprintf("paced at %.0f spans/s at most", rate)
	if o.Unpaced {
		pace = "as fast as taken"
	}
	rep.notef("attack: %d spans inventing %d names, %s, by %d senders of %d spans per request; GET /api/v1/graph in a loop during it and %s after; then %s quiet",
		planned*spansPerCall, o.Names, pace, o.Senders, o.CallsPerRequest*spansPerCall, o.Tail, o.Quiet)

	m0 := c.metrics(ctx)
	load := startMeter(c)
	start := load.t0
	deadline := start.Add(o.MaxDuration)

	// The GET loop: one request at a time, plain and gzip in turn.
	var samples []getSample
	loadDone := make(chan struct{})
	var loadEnd time.Time // set before loadDone is closed
	getDone := make(chan struct{})
	go func() {
		defer close(getDone)
		for i := 0; ctx.Err() == nil; i++ {
			inTail := false
			select {
			case <-loadDone:
				if time.Since(loadEnd) >= o.Tail {
					return
				}
				inTail = true
			default:
			}
			s := getter.get(ctx, i%2 == 1, false)
			s.InTail = inTail
			samples = append(samples, s)
			if s.Err != nil && ctx.Err() == nil {
				time.Sleep(100 * time.Millisecond) // refused at once: do not spin
			}
		}
	}()

	// The senders: each takes the next calls in turn until all planned
	// are sent.
	var seq atomic.Uint64
	stats := make([]exportStats, o.Senders)
	var wg sync.WaitGroup
	for w := range o.Senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(deadline) {
				first := seq.Add(uint64(o.CallsPerRequest)) - uint64(o.CallsPerRequest)
				if first >= planned {
					return
				}
				calls := make([]call, min(uint64(o.CallsPerRequest), planned-first))
				if !o.Unpaced {
					due := start.Add(time.Duration(float64(first*spansPerCall) / rate * float64(time.Second)))
					if d := time.Until(due); d > 0 {
						time.Sleep(d)
					}
				}
				for i := range calls {
					calls[i] = attackCall(first+uint64(i), o.frontier(first+uint64(i)))
				}
				spans := len(calls) * spansPerCall
				body, err := buildRequest(calls, time.Now())
				if err != nil {
					stats[w].Failed += int64(spans)
					continue
				}
				stats[w].add(exp.export(ctx, body, spans, deadline))
			}
		}()
	}
	wg.Wait()
	loadR := load.read()
	loadEnd = time.Now()
	close(loadDone)
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
	sent := min(seq.Load(), planned) * spansPerCall
	unsent := int64(planned*spansPerCall - sent)
	rep.add("attack.load.seconds", loadSec, "s", fmt.Sprintf("to send %d spans (%s)", planned*spansPerCall, pace))
	rep.add("attack.load.spans_not_taken", float64(st.Rejected+st.Abandoned+st.Failed+unsent), "spans", fmt.Sprintf("rejected %d, abandoned after 429/503 %d, failed %d, not sent within -attack-max-duration %d; %d refusals retried", st.Rejected, st.Abandoned, st.Failed, unsent, st.Refusals))
	rep.add("attack.load.names_invented", float64(o.frontier(min(seq.Load(), planned))+1), "names", "in the calls sent")
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
