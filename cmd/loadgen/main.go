// Command loadgen is an OTLP load generator for the collector. It
// pre-encodes a pool of export requests before the clock starts, from the
// generated system of simulate/scenario (--services services, with optional
// --fault faults) or the fixed 8-span shop trace of simulate/synth
// (--services 0), then replays them over OTLP/gRPC or OTLP/HTTP (protobuf)
// from several workers, at a target rate or as fast as the receiver takes
// them, rewriting the trace ids on every pass over the pool so that no trace
// id repeats within a run. It honours backpressure: a refused request
// (gRPC RESOURCE_EXHAUSTED or UNAVAILABLE, HTTP 429 or 503) is retried after
// the delay the server asked for (RetryInfo, Retry-After), capped, a bounded
// number of times.
//
// Alongside, every --metrics-interval, it sends the scenario's broker
// metrics (Kafka consumer-group lag, RabbitMQ queue depth) as OTLP metrics,
// read at the time of sending; a refused or failed metrics request is
// counted, not retried (the next reading supersedes it).
//
// It prints spans sent, accepted, refused (backpressure), rejected (partial
// success) and failed, and the accepted spans per second, at the end and,
// with --progress, every second. It exits 1 if any request failed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"

	"github.com/seed-a49a8342/cartograph/simulate/scenario"
)

type config struct {
	Endpoint         string
	Protocol         string
	GRPCClient       string
	Rate             float64
	Duration         time.Duration
	Workers          int
	Conns            int
	TracesPerRequest int
	Seed             uint64
	TraceIDSalt      uint64
	Pool             int
	Timeout          time.Duration
	MaxRetries       int
	MaxRetryDelay    time.Duration
	Drain            time.Duration
	Progress         bool
	Services         int
	Shape            string
	Faults           []scenario.Fault
	MetricsInterval  time.Duration
	Passes           int
}

// The shapes of traces loadgen sends (--shape).
const (
	shapeSystem       = "system"
	shapeTelemetrygen = "telemetrygen"
)

func parseFlags(args []string, out io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.Endpoint, "endpoint", "127.0.0.1:4317", "host:port of the OTLP receiver (gRPC, or HTTP with --protocol http)")
	fs.StringVar(&c.Protocol, "protocol", "grpc", "grpc, or http (protobuf POSTed to http://ENDPOINT/v1/traces)")
	fs.StringVar(&c.GRPCClient, "grpc-client", "raw", "gRPC client: raw (replays the encoded bytes) or pdata (ptraceotlp client, encodes each send)")
	fs.Float64Var(&c.Rate, "rate", 0, "target spans per second over all workers (0: as fast as possible)")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "how long to send for")
	fs.IntVar(&c.Workers, "workers", 2, "concurrent senders, each with one request in flight")
	fs.IntVar(&c.Conns, "conns", 1, "connections (gRPC: ClientConns shared round-robin by workers; HTTP: idle connections kept)")
	fs.IntVar(&c.TracesPerRequest, "traces-per-request", 100, "traces per export request")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed of the generated traces (each worker has its own stream of it)")
	fs.IntVar(&c.Services, "services", scenario.DefaultServices, fmt.Sprintf("services in the generated system (%d-%d), or 0 for the fixed 8-span shop trace of simulate/synth", scenario.MinServices, scenario.MaxServices))
	fs.StringVar(&c.Shape, "shape", shapeSystem, "traces to send: system (the generated system of --services, or simulate/synth's shop trace with --services 0) or telemetrygen (2-span client/server traces as the Collector's telemetrygen sends them)")
	faults := fs.String("fault", "", "comma-separated faults to switch on: retry_storm, open_circuit, consumer_lag, bottleneck, cascade")
	fs.DurationVar(&c.MetricsInterval, "metrics-interval", time.Second, "how often to send the scenario's broker metrics (0: never; never with --services 0)")
	fs.Uint64Var(&c.TraceIDSalt, "trace-id-salt", 0, "mixed into the high half of every trace id so that runs do not reuse each other's ids (0: from the clock)")
	fs.IntVar(&c.Pool, "pool", 256, "distinct pre-encoded requests over all workers")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Second, "per-attempt timeout")
	fs.IntVar(&c.MaxRetries, "max-retries", 10, "retries of a refused request before it counts as failed")
	fs.DurationVar(&c.MaxRetryDelay, "max-retry-delay", 5*time.Second, "cap on the delay before a retry")
	fs.DurationVar(&c.Drain, "drain", 5*time.Second, "after --duration, how long refused requests may still be retried")
	fs.BoolVar(&c.Progress, "progress", false, "print figures every second")
	fs.IntVar(&c.Passes, "passes", 0, "stop once every worker has sent its part of the pool this many times (0: only --duration stops), for runs that must send exactly the same traffic")
	version := fs.Bool("version", false, "print the version, VCS revision and build time, then exit")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if *version {
		return c, errVersion
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var errs []error
	var err error
	if c.Faults, err = scenario.ParseFaults(*faults); err != nil {
		errs = append(errs, fmt.Errorf("--fault: %w", err))
	}
	if c.Services != 0 {
		if err := (scenario.Options{Services: c.Services}).Validate(); err != nil {
			errs = append(errs, fmt.Errorf("--services: %w", err))
		}
	} else if len(c.Faults) > 0 {
		errs = append(errs, errors.New("--fault needs a generated system (--services > 0)"))
	}
	switch c.Shape {
	case shapeSystem:
	case shapeTelemetrygen:
		if len(c.Faults) > 0 {
			errs = append(errs, errors.New("--fault needs --shape system"))
		}
	default:
		errs = append(errs, fmt.Errorf("--shape %q: want %s or %s", c.Shape, shapeSystem, shapeTelemetrygen))
	}
	if c.Passes < 0 {
		errs = append(errs, errors.New("--passes must not be negative"))
	}
	if c.MetricsInterval < 0 {
		errs = append(errs, errors.New("--metrics-interval must not be negative"))
	}
	switch c.Protocol {
	case "grpc", "http":
	default:
		errs = append(errs, fmt.Errorf("--protocol %q: want grpc or http", c.Protocol))
	}
	switch c.GRPCClient {
	case "raw", "pdata":
	default:
		errs = append(errs, fmt.Errorf("--grpc-client %q: want raw or pdata", c.GRPCClient))
	}
	if c.Endpoint == "" {
		errs = append(errs, errors.New("--endpoint must be set"))
	}
	if c.Rate < 0 {
		errs = append(errs, errors.New("--rate must not be negative"))
	}
	if c.Duration <= 0 {
		errs = append(errs, errors.New("--duration must be positive"))
	}
	if c.Workers < 1 || c.Conns < 1 || c.TracesPerRequest < 1 || c.Pool < 1 {
		errs = append(errs, errors.New("--workers, --conns, --traces-per-request and --pool must be at least 1"))
	}
	if c.MaxRetries < 0 || c.MaxRetryDelay < 0 || c.Drain < 0 || c.Timeout <= 0 {
		errs = append(errs, errors.New("--max-retries, --max-retry-delay and --drain must not be negative, --timeout must be positive"))
	}
	return c, errors.Join(errs...)
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		if errors.Is(err, errVersion) {
			printVersion(os.Stdout, "loadgen")
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := run(ctx, cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	if st.failed.Load() > 0 {
		os.Exit(1)
	}
}

// counters are the run's figures, in spans unless named otherwise.
type counters struct {
	requests, attempts                        atomic.Int64
	sent, accepted, refused, rejected, failed atomic.Int64
	// Metrics requests (not spans): accepted, refused or failed, not retried.
	metricReqs, metricFailed atomic.Int64

	mu   sync.Mutex
	errs map[string]int
}

func (c *counters) noteErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.errs == nil {
		c.errs = map[string]int{}
	}
	msg := err.Error()
	if _, ok := c.errs[msg]; ok || len(c.errs) < 20 {
		c.errs[msg]++
	}
}

// run builds the pool, sends for cfg.Duration and prints the figures.
func run(ctx context.Context, cfg config, out io.Writer) (*counters, error) {
	t0 := time.Now()
	salt := cfg.TraceIDSalt
	if salt == 0 {
		salt = uint64(t0.UnixNano())
	}
	pools := make([]*workerPool, cfg.Workers)
	for w := range cfg.Workers {
		n := cfg.Pool / cfg.Workers
		if w < cfg.Pool%cfg.Workers {
			n++
		}
		src, err := newTraceSource(cfg, w)
		if err != nil {
			return nil, err
		}
		p, err := buildPool(src, salt, max(n, 1), cfg.Protocol == "grpc" && cfg.GRPCClient == "pdata")
		if err != nil {
			return nil, err
		}
		pools[w] = p
	}
	var poolBytes, poolSpans int64
	for _, p := range pools {
		for _, e := range p.entries {
			poolBytes += int64(len(e.raw))
			poolSpans += e.spans
		}
	}
	fmt.Fprintf(out, "pool: %d requests, %d spans, %.1f MB encoded (%.0f B/span), built in %s\n",
		max(cfg.Pool, cfg.Workers), poolSpans, float64(poolBytes)/1e6, float64(poolBytes)/float64(poolSpans), time.Since(t0).Round(time.Millisecond))

	senders := make([]sender, cfg.Workers)
	switch cfg.Protocol {
	case "grpc":
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		conns := make([]*grpc.ClientConn, cfg.Conns)
		for i := range conns {
			cc, err := dialGRPC(dctx, cfg.Endpoint)
			if err != nil {
				cancel()
				return nil, err
			}
			defer cc.Close()
			conns[i] = cc
		}
		cancel()
		for w := range senders {
			cc := conns[w%len(conns)]
			if cfg.GRPCClient == "pdata" {
				senders[w] = grpcPdata{c: ptraceotlp.NewGRPCClient(cc)}
			} else {
				senders[w] = grpcRaw{cc: cc}
			}
		}
	case "http":
		client := newHTTPClient(max(cfg.Conns, cfg.Workers))
		defer client.CloseIdleConnections()
		for w := range senders {
			senders[w] = httpSender{client: client, url: "http://" + cfg.Endpoint + "/v1/traces"}
		}
	}
	client := cfg.Protocol
	if cfg.Protocol == "grpc" {
		client += "/" + cfg.GRPCClient
	}
	rate := "max"
	if cfg.Rate > 0 {
		rate = fmt.Sprintf("%.0f spans/s", cfg.Rate)
	}
	system := "the 8-span shop trace (simulate/synth)"
	var mgen *scenario.Generator
	if cfg.Shape == shapeTelemetrygen {
		system = "telemetrygen-shaped 2-span client/server traces (simulate/synth)"
	} else if cfg.Services > 0 {
		var err error
		// The metrics generator has a stream of its own; only its broker
		// readings are used.
		if mgen, err = scenario.New(scenario.Options{Services: cfg.Services, Seed: cfg.Seed, Stream: 1 << 32, Faults: cfg.Faults}); err != nil {
			return nil, err
		}
		system = "scenario: " + mgen.Topology()
		if len(cfg.Faults) > 0 {
			system += fmt.Sprintf(", faults %v", cfg.Faults)
		}
	}
	fmt.Fprintf(out, "system: %s\n", system)
	fmt.Fprintf(out, "sending: %s to %s, %d workers, %d traces (%.0f spans) per request, rate %s, for %s\n",
		client, cfg.Endpoint, cfg.Workers, cfg.TracesPerRequest, float64(poolSpans)/float64(max(cfg.Pool, cfg.Workers)), rate, cfg.Duration)
	var msend metricsSender
	if mgen != nil && cfg.MetricsInterval > 0 {
		switch cfg.Protocol {
		case "grpc":
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			cc, err := dialGRPC(dctx, cfg.Endpoint)
			cancel()
			if err != nil {
				return nil, err
			}
			defer cc.Close()
			msend = grpcMetrics{c: pmetricotlp.NewGRPCClient(cc)}
		case "http":
			client := newHTTPClient(1)
			defer client.CloseIdleConnections()
			msend = httpMetrics{client: client, url: "http://" + cfg.Endpoint + "/v1/metrics"}
		}
	}

	st := &counters{}
	cpu0 := cpuTime()
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for w := range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wk := &worker{cfg: cfg, pool: pools[w], s: senders[w], st: st, deadline: deadline}
			wk.run(ctx)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	mdone := make(chan struct{})
	if msend != nil {
		go func() {
			defer close(mdone)
			sendMetrics(ctx, msend, mgen, cfg, st, done)
		}()
	} else {
		close(mdone)
	}
	if cfg.Progress {
		progress(out, st, start, done)
	}
	<-done
	<-mdone
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	report(out, st, elapsed, cpu)
	return st, nil
}

// worker replays one pool.
type worker struct {
	cfg      config
	pool     *workerPool
	s        sender
	st       *counters
	deadline time.Time
}

func (w *worker) run(ctx context.Context) {
	var perSpan time.Duration // pacing interval per span (0: unpaced)
	if w.cfg.Rate > 0 {
		perSpan = time.Duration(float64(time.Second) * float64(w.cfg.Workers) / w.cfg.Rate)
	}
	next := time.Now()
	var pass uint64
	for i := 0; ; {
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		if !now.Before(w.deadline) {
			return
		}
		e := w.pool.entries[i]
		if perSpan > 0 {
			if wait := next.Sub(now); wait > 0 {
				if !sleep(ctx, min(wait, w.deadline.Sub(now))) || !time.Now().Before(w.deadline) {
					return
				}
			} else if wait < -time.Second {
				next = now // fell behind by over a second: do not burst to catch up
			}
			next = next.Add(time.Duration(e.spans) * perSpan)
		}
		high := w.pool.traceHigh(pass)
		if w.cfg.Protocol == "grpc" && w.cfg.GRPCClient == "pdata" {
			e.stampPdata(high)
		} else {
			e.stampRaw(high)
		}
		if !w.deliver(ctx, e) && !sleep(ctx, failurePause) {
			return
		}
		if i++; i == len(w.pool.entries) {
			i = 0
			if pass++; w.cfg.Passes > 0 && pass >= uint64(w.cfg.Passes) {
				return
			}
		}
	}
}

// failurePause is how long a worker waits after a failed request, so that a
// receiver that is down is not hammered in a tight loop.
const failurePause = 100 * time.Millisecond

// deliver sends e until it is accepted, fails, or its retries run out, and
// reports whether it was accepted.
func (w *worker) deliver(ctx context.Context, e *entry) bool {
	st := w.st
	st.requests.Add(1)
	st.sent.Add(e.spans)
	backoff := 100 * time.Millisecond
	for try := 0; ; try++ {
		st.attempts.Add(1)
		actx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
		r := w.s.send(actx, e)
		cancel()
		switch r.verdict {
		case verdictAccepted:
			rej := min(max(r.rejected, 0), e.spans)
			st.accepted.Add(e.spans - rej)
			st.rejected.Add(rej)
			return true
		case verdictFailed:
			st.failed.Add(e.spans)
			st.noteErr(r.err)
			return false
		}
		st.refused.Add(e.spans)
		delay := r.retryAfter
		if delay <= 0 {
			delay = backoff
			backoff = min(2*backoff, w.cfg.MaxRetryDelay)
		}
		delay = min(delay, w.cfg.MaxRetryDelay)
		switch {
		case try >= w.cfg.MaxRetries:
			st.failed.Add(e.spans)
			st.noteErr(fmt.Errorf("gave up after %d retries: %w", try, r.err))
			return false
		case time.Now().Add(delay).After(w.deadline.Add(w.cfg.Drain)):
			st.failed.Add(e.spans)
			st.noteErr(errRunOver)
			return false
		}
		if !sleep(ctx, delay) {
			st.failed.Add(e.spans)
			st.noteErr(fmt.Errorf("interrupted while waiting to retry: %w", ctx.Err()))
			return false
		}
	}
}

// sleep waits for d and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func progress(out io.Writer, st *counters, start time.Time, done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastSent, lastAcc int64
	last := start
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			sent, acc := st.sent.Load(), st.accepted.Load()
			dt := now.Sub(last).Seconds()
			fmt.Fprintf(out, "%6.1fs  sent %9.0f/s  accepted %9.0f/s  refused %d  rejected %d  failed %d\n",
				now.Sub(start).Seconds(), float64(sent-lastSent)/dt, float64(acc-lastAcc)/dt,
				st.refused.Load(), st.rejected.Load(), st.failed.Load())
			lastSent, lastAcc, last = sent, acc, now
		}
	}
}

func report(out io.Writer, st *counters, elapsed, cpu time.Duration) {
	acc := st.accepted.Load()
	perSec := float64(acc) / elapsed.Seconds()
	fmt.Fprintf(out, "elapsed              %.3fs\n", elapsed.Seconds())
	fmt.Fprintf(out, "requests             %d (%d attempts)\n", st.requests.Load(), st.attempts.Load())
	fmt.Fprintf(out, "spans sent           %d\n", st.sent.Load())
	fmt.Fprintf(out, "accepted             %d\n", acc)
	fmt.Fprintf(out, "refused              %d (backpressure, span-attempts)\n", st.refused.Load())
	fmt.Fprintf(out, "rejected             %d (partial success)\n", st.rejected.Load())
	fmt.Fprintf(out, "failed               %d\n", st.failed.Load())
	fmt.Fprintf(out, "accepted spans/s     %.0f\n", perSec)
	perM := 0.0
	if acc > 0 {
		perM = cpu.Seconds() / (float64(acc) / 1e6)
	}
	fmt.Fprintf(out, "sender cpu           %.2fs (%.2f s per million accepted spans)\n", cpu.Seconds(), perM)
	if n := st.metricReqs.Load(); n > 0 {
		fmt.Fprintf(out, "metrics requests     %d (%d refused or failed)\n", n, st.metricFailed.Load())
	}
	if len(st.errs) > 0 {
		msgs := make([]string, 0, len(st.errs))
		for m := range st.errs {
			msgs = append(msgs, m)
		}
		sort.Strings(msgs)
		fmt.Fprintln(out, "errors:")
		for _, m := range msgs {
			fmt.Fprintf(out, "  %6d × %s\n", st.errs[m], m)
		}
	}
	fmt.Fprintf(out, "RESULT sent=%d accepted=%d refused=%d rejected=%d failed=%d elapsed_s=%.3f accepted_per_s=%.0f sender_cpu_s=%.2f\n",
		st.sent.Load(), acc, st.refused.Load(), st.rejected.Load(), st.failed.Load(), elapsed.Seconds(), perSec, cpu.Seconds())
}
