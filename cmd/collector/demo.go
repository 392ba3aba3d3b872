package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/seed-a49a8342/cartograph/ingest"
	"github.com/seed-a49a8342/cartograph/ingest/otlp"
	"github.com/seed-a49a8342/cartograph/simulate/scenario"
	"github.com/seed-a49a8342/cartograph/simulate/scenario/demo"
)

// demoDefaults are the flags --demo changes when neither the command line
// nor the environment sets them: a short window and evaluation interval so
// that every finding fires and resolves within one --demo-phase (a finding
// resolves about one window after its fault stops, plus the keep-firing
// time), a short pair TTL and trace idle time since the generated traces
// arrive whole, and a data directory of its own so that synthetic history
// never mixes with real history.
var demoDefaults = []struct{ flag, value string }{
	{"window", "8s"},
	{"eval-interval", "1s"},
	{"pair-ttl", "2s"},
	{"trace-idle", "1s"},
	{"data-dir", "./cartograph-demo-data"},
}

// applyDemoDefaults sets the demoDefaults that set (the flags given on the
// command line or in the environment) leaves open.
func applyDemoDefaults(fs *flag.FlagSet, set map[string]bool) error {
	for _, d := range demoDefaults {
		if !set[d.flag] {
			if err := fs.Set(d.flag, d.value); err != nil {
				return fmt.Errorf("--demo default --%s=%s: %w", d.flag, d.value, err)
			}
		}
	}
	return nil
}

// demoDefaultsUsage lists demoDefaults for --demo's usage text.
func demoDefaultsUsage() string {
	var b strings.Builder
	for i, d := range demoDefaults {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("--" + d.flag + " " + d.value)
	}
	return b.String()
}

// demoTarget is where the demo sends: the collector's own OTLP/gRPC
// receiver over loopback when it takes plain, unauthenticated requests, so
// that the demo goes through decoding, limits and backpressure like any
// sender; else straight into the same ingest pipeline in-process (an
// ingest token or the TLS trust would otherwise have to be handed to it).
type demoTarget struct {
	grpcAddr net.Addr // nil: in-process
	why      string   // why in-process
	traces   ingest.TracesConsumer
	metrics  ingest.MetricsConsumer
}

// demoTargetOf picks the demo's target from the running receiver, the
// security settings and the in-process consumers.
func demoTargetOf(recv *otlp.Receiver, sec security, traces ingest.TracesConsumer, metrics ingest.MetricsConsumer) demoTarget {
	t := demoTarget{traces: traces, metrics: metrics}
	switch {
	case sec.ingest != nil:
		t.why = "OTLP ingest requires a token"
	case sec.tls != nil:
		t.why = "OTLP is served over TLS"
	case recv.GRPCAddr() == nil:
		t.why = "OTLP/gRPC is off"
	default:
		t.grpcAddr = recv.GRPCAddr()
	}
	return t
}

// runDemo runs --demo until ctx is done: the simulate/scenario system
// (scenario.DefaultServices services) at --demo-rate traces/s with its
// broker metrics, cycling the faults every --demo-phase. It owns the gRPC
// connection it opens and closes it before returning.
func runDemo(ctx context.Context, cfg config, to demoTarget, logger *slog.Logger, now func() time.Time) error {
	gen, err := scenario.New(scenario.Options{Seed: 1})
	if err != nil {
		return err
	}
	traces, metrics, via := to.traces, to.metrics, "in-process: "+to.why
	if to.grpcAddr != nil {
		addr := loopbackOf(to.grpcAddr)
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		defer cc.Close()
		c := otlpClient{traces: ptraceotlp.NewGRPCClient(cc), metrics: pmetricotlp.NewGRPCClient(cc)}
		traces, metrics, via = c, c, "OTLP/gRPC to "+addr
	}
	d, err := demo.New(demo.Options{
		Generator: gen, Traces: traces, Metrics: metrics,
		Rate: cfg.DemoRate, Phase: cfg.DemoPhase,
		// Broker readings as often as the detectors judge, at most every
		// second: a group is judged behind only on three readings or more
		// over half the window, and the demo's windows are short.
		MetricsEvery: min(time.Second, cfg.EvalInterval),
		Now:          now, Logger: logger,
	})
	if err != nil {
		return err
	}
	logger.Warn("DEMO MODE: every span, metric and finding is synthetic, generated in this process; never run --demo in production",
		"system", gen.Topology(), "rate_traces_per_s", cfg.DemoRate, "via", via, "data_dir", cfg.DataDir)
	logger.Info("demo: each fault is on for one phase, then off for one, in turn, after one healthy phase",
		"phase", cfg.DemoPhase, "cycle", d.Schedule().Cycle(), "faults", fmt.Sprint(d.Schedule().Faults), "window", cfg.Window, "eval_interval", cfg.EvalInterval)
	return d.Run(ctx)
}

// loopbackOf is the address to dial for listener address a: its own, or
// the loopback address of its port when it binds every interface.
func loopbackOf(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port)
}

// otlpClient sends traces and metrics to an OTLP/gRPC receiver, turning
// its backpressure answers (RESOURCE_EXHAUSTED, UNAVAILABLE) into
// ingest.ErrOverloaded and ingest.ErrUnavailable and partial successes
// into *ingest.PartialError. Safe for concurrent use.
type otlpClient struct {
	traces  ptraceotlp.GRPCClient
	metrics pmetricotlp.GRPCClient
}

// otlpTimeout bounds one export.
const otlpTimeout = 10 * time.Second

func (c otlpClient) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	ctx, cancel := context.WithTimeout(ctx, otlpTimeout)
	defer cancel()
	resp, err := c.traces.Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
	if err != nil {
		return ingestError(err)
	}
	if ps := resp.PartialSuccess(); ps.RejectedSpans() > 0 {
		return &ingest.PartialError{Rejected: ps.RejectedSpans(), Reason: ps.ErrorMessage()}
	}
	return nil
}

func (c otlpClient) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	ctx, cancel := context.WithTimeout(ctx, otlpTimeout)
	defer cancel()
	resp, err := c.metrics.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md))
	if err != nil {
		return ingestError(err)
	}
	if ps := resp.PartialSuccess(); ps.RejectedDataPoints() > 0 {
		return &ingest.PartialError{Rejected: ps.RejectedDataPoints(), Reason: ps.ErrorMessage()}
	}
	return nil
}

// ingestError classifies a gRPC export error as ingest's error classes.
func ingestError(err error) error {
	msg := strings.TrimSpace(status.Convert(err).Message())
	switch status.Code(err) {
	case codes.ResourceExhausted:
		return fmt.Errorf("%w: %s", ingest.ErrOverloaded, msg)
	case codes.Unavailable:
		return fmt.Errorf("%w: %s", ingest.ErrUnavailable, msg)
	}
	return err
}
