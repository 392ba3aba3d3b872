// Command coreload measures a collector binary from the outside, so that
// any build of cmd/collector (an old commit and a new one, in the same
// run) is measured the same way. It starts the binary itself (loopback
// port 0 everywhere, a temporary --data-dir), reads the addresses it
// bound from its log ("api listening addr=...", "otlp http listening
// addr=...", "ui listening addr=..."), and reads its CPU from
// /proc/PID/stat. Two scenarios (issue 18):
//
// attack: the API under a cardinality attack. -senders OTLP/HTTP clients
// send -attack-spans spans (2.9M, as in the issue) in traces of two spans
// (a CLIENT span of one service and the SERVER span of another answering
// it: one edge) whose services are -attack-names invented names, new ones
// at a steady pace per span, paced over -attack-duration (25 s) at best
// and retrying 429/503 after Retry-After as an OTLP exporter does. Every
// build gets the same work and ends with the same graph; a slower one
// takes longer. The default 25,600 names make the graph the issue saw
// (its 100,000 names left 25,615 nodes, 35,477 edges, 20 MB of JSON): about
// 25.6k nodes, 36k edges. The collector runs with its UI off and
// -max-nodes/-max-edges large enough for every name to become a node.
// Meanwhile, and for -attack-tail after, one client GETs /api/v1/graph in
// a loop, one request at a time, in turn plain and with Accept-Encoding:
// gzip as a browser sends: latency p50/p90/p99/max and bytes, during and
// after the load. Then -attack-quiet with no request at all. Reported:
// spans/s accepted, the collector's CPU in each stretch, the final graph's
// node and edge count and JSON size, graph metrics, peak RSS.
//
// idle: the CPU per evaluation tick of a steady graph (-idle-services,
// -idle-edges, -idle-rate spans/s over edges drawn at random, with varying
// latencies and a few errors, so that the numbers a page shows move from
// tick to tick) at --eval-interval, each phase -idle-measure long after
// -idle-warmup: with the UI off and no client; UI off with one
// /api/v1/stream websocket client (the bytes it receives per tick are what
// the collector encodes for the stream); then, in a second process with
// the built-in UI on (--ui-addr 127.0.0.1:0), no page open; then one live
// map page, opened as a browser does (GET /, its script and styles, then
// the websocket the page's data-ws names, offering permessage-deflate,
// with the page's Origin). The page fetches nothing else: every update
// comes over that websocket. Reported: CPU per tick, per UI refresh
// (cartograph_ui_refreshes_total) and per page update, websocket bytes
// per tick, and the GET /api/v1/graph the collector serves per tick (the
// built-in UI reads the graph through the API; times the graph's JSON
// size, what it encodes for it).
//
// Ticks are counted from cartograph_detect_eval_seconds_count when the
// build exposes it, else as wall time / -eval-interval. The tool shares
// the machine with the collector: its own CPU and that of every other
// process are printed next to each reading.
//
// Output: "# " comment lines, one "RESULT <rev> <measurement> <value>
// <unit>" line per measurement as it is taken, and a table per scenario.
// bench/coreload.sh joins two runs' RESULT lines into a comparison.
//
// Usage:
//
//	go build -o /tmp/collector ./cmd/collector
//	go run ./bench/coreload -bin /tmp/collector -rev $(git rev-parse --short HEAD)
//	go run ./bench/coreload -bin /tmp/collector -scenarios idle -idle-measure 30s
//	bench/coreload.sh BASE_REV HEAD_REV   # both revisions, and a comparison
//
// A full run takes about 6 minutes with the defaults (attack about 1.5,
// idle about 4.5).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// options are the tool's flags.
type options struct {
	Bin, Rev      string
	Scenarios     string
	ExtraArgs     string
	EvalInterval  time.Duration
	StartTimeout  time.Duration
	KeepDir       bool
	Attack        attackOptions
	MaxNodes      int
	MaxEdges      int
	Idle          idleOptions
	attack, idle  bool
	collectorArgs []string
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("coreload", flag.ContinueOnError)
	fs.StringVar(&o.Bin, "bin", "", "collector binary to measure (required)")
	fs.StringVar(&o.Rev, "rev", "", "revision label printed on every row (default: the binary's file name)")
	fs.StringVar(&o.Scenarios, "scenarios", "attack,idle", "scenarios to run, comma-separated: attack, idle")
	fs.StringVar(&o.ExtraArgs, "collector-args", "", "more flags for the collector, space-separated (both scenarios)")
	fs.DurationVar(&o.EvalInterval, "eval-interval", 5*time.Second, "--eval-interval given to the collector (5s is its default)")
	fs.DurationVar(&o.StartTimeout, "start-timeout", 30*time.Second, "how long the collector may take to listen and be ready")
	fs.BoolVar(&o.KeepDir, "keep", false, "keep the temporary directory (collector logs and data)")

	fs.Int64Var(&o.Attack.Spans, "attack-spans", 2_900_000, "attack: spans sent in all (the same work for every build)")
	fs.IntVar(&o.Attack.Names, "attack-names", 25_600, "attack: service names invented over those spans (25,600 makes the issue's graph of about 25.6k nodes, 36k edges; 100000 makes every one of the issue's 100,000 names a node)")
	fs.DurationVar(&o.Attack.Duration, "attack-duration", 25*time.Second, "attack: the spans are paced over this at best (longer when the collector takes them slower)")
	fs.BoolVar(&o.Attack.Unpaced, "attack-unpaced", false, "attack: send as fast as the collector takes the spans instead")
	fs.DurationVar(&o.Attack.MaxDuration, "attack-max-duration", 2*time.Minute, "attack: the load stops by then; spans not sent are counted")
	fs.DurationVar(&o.Attack.Tail, "attack-tail", 20*time.Second, "attack: how long GET /api/v1/graph keeps running after the load")
	fs.DurationVar(&o.Attack.Quiet, "attack-quiet", 10*time.Second, "attack: a last stretch with no request, for the collector's own CPU")
	fs.IntVar(&o.Attack.Senders, "senders", 4, "attack: concurrent OTLP/HTTP senders")
	fs.IntVar(&o.Attack.CallsPerRequest, "calls-per-request", 300, "attack: traces (of 2 spans) per export request")
	fs.IntVar(&o.MaxNodes, "max-nodes", 100_000, "attack: the collector's --max-nodes")
	fs.IntVar(&o.MaxEdges, "max-edges", 200_000, "attack: the collector's --max-edges")

	fs.DurationVar(&o.Idle.Warmup, "idle-warmup", 20*time.Second, "idle: steady traffic before measuring, in each of the two processes")
	fs.DurationVar(&o.Idle.Measure, "idle-measure", 60*time.Second, "idle: length of each of the four measured phases")
	fs.IntVar(&o.Idle.Services, "idle-services", 60, "idle: services of the steady graph")
	fs.IntVar(&o.Idle.Edges, "idle-edges", 150, "idle: edges of the steady graph")
	fs.Float64Var(&o.Idle.Rate, "idle-rate", 200, "idle: spans per second of the steady graph")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.Bin == "" {
		return o, errors.New("-bin is required")
	}
	if o.Rev == "" {
		o.Rev = filepath.Base(o.Bin)
	}
	for s := range strings.SplitSeq(o.Scenarios, ",") {
		switch strings.TrimSpace(s) {
		case "attack":
			o.attack = true
		case "idle":
			o.idle = true
		case "":
		default:
			return o, fmt.Errorf("unknown scenario %q (attack, idle)", s)
		}
	}
	if o.Attack.Senders < 1 || o.Attack.CallsPerRequest < 1 || o.Attack.Names < 1 || o.Attack.Spans < 2*spansPerCall ||
		o.Attack.Duration <= 0 || o.Attack.MaxDuration <= 0 {
		return o, errors.New("-senders, -calls-per-request, -attack-names, -attack-spans, -attack-duration and -attack-max-duration must be positive")
	}
	if o.Idle.Services < 2 || o.Idle.Edges < 1 || o.Idle.Rate <= 0 || o.Idle.Measure <= 0 || o.EvalInterval <= 0 {
		return o, errors.New("-idle-services (at least 2), -idle-edges, -idle-rate, -idle-measure and -eval-interval must be positive")
	}
	o.Idle.EvalInterval = o.EvalInterval
	o.collectorArgs = append([]string{"--eval-interval=" + o.EvalInterval.String()}, strings.Fields(o.ExtraArgs)...)
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "coreload:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "coreload:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	bin, err := filepath.Abs(o.Bin)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "coreload-")
	if err != nil {
		return err
	}
	if o.KeepDir {
		fmt.Printf("# keeping %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	rep := newReport(o.Rev, os.Stdout)
	version, _ := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	v, _, _ := strings.Cut(strings.TrimSpace(string(version)), "\n")
	rep.notef("coreload: %s (%s); machine: %d cores, %s", o.Rev, v, runtime.NumCPU(), loadavg())

	n := 0
	start := func(ctx context.Context, ui bool, args ...string) (*collector, error) {
		n++
		data := filepath.Join(dir, fmt.Sprintf("data-%d", n))
		if err := os.MkdirAll(data, 0o755); err != nil {
			return nil, err
		}
		so := startOptions{
			Bin: bin, DataDir: data, LogPath: filepath.Join(dir, fmt.Sprintf("collector-%d.log", n)),
			UI: ui, Args: append(append([]string{}, o.collectorArgs...), args...), Timeout: o.StartTimeout,
		}
		c, err := startCollector(ctx, so)
		if err != nil {
			return nil, err
		}
		rep.notef("collector pid %d: %s %s; api %s, otlp http %s, ui %q", c.cmd.Process.Pid, filepath.Base(bin), joinArgs(c.cmd.Args[1:]), c.API, c.OTLPHTTP, c.UI)
		return c, nil
	}

	if o.attack {
		c, err := start(ctx, false, fmt.Sprintf("--max-nodes=%d", o.MaxNodes), fmt.Sprintf("--max-edges=%d", o.MaxEdges))
		if err != nil {
			return err
		}
		err = runAttack(ctx, c, o.Attack, rep)
		alive := c.alive()
		c.stop()
		if err != nil {
			return err
		}
		if !alive {
			return fmt.Errorf("the collector exited during the attack:\n%s", c.logTail(30))
		}
		rep.table("attack: GET /api/v1/graph while names are invented")
	}
	if o.idle {
		err := runIdle(ctx, func(ctx context.Context, ui bool) (*collector, error) { return start(ctx, ui) }, o.Idle, rep)
		if err != nil {
			return err
		}
		rep.table("idle: CPU per evaluation tick of a steady graph")
	}
	return nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "loadavg ?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "loadavg ?"
	}
	return "loadavg " + strings.Join(f[:3], " ")
}
