// Package critpath finds where the end-to-end latency of requests goes. It
// samples whole traces (every trace while they fit, else a share chosen by
// trace id, so collectors under the same load take the same traces),
// assembles each until its root has arrived and nothing more is awaited,
// walks its critical path the way Uber's CRISP does, and charges every
// stretch of the path to the node whose own work it is: a service's self
// time (including, for a call, the wait before its request left), or the
// callee of a call (its answer travelling back, an uninstrumented callee's
// work, a database). Time lost to retries (an attempt that failed and was
// retried, and the wait before its retry) is no node's own work and is
// charged to none, so the nodes' shares of such a path add up to less
// than 1. Results are kept per entry operation (the root span's
// service and name) in time buckets over a sliding window, in mergeable
// form.
//
// A Sampler is a graph.PathSource: the graph hands it every span it takes
// and asks it for the breakdowns when it builds a snapshot.
package critpath

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Options.
const (
	DefaultSampleOneIn      = 1
	DefaultTraceIdle        = 5 * time.Second
	DefaultRootWait         = 30 * time.Second
	DefaultMaxTraces        = 10_000
	DefaultMaxSpansPerTrace = 1_000
	DefaultWindow           = time.Minute
	DefaultMaxEntries       = 1_000
)

// maxNodesPerEntry bounds the nodes whose self time one entry keeps per
// bucket; self time on further nodes is dropped and counted.
const maxNodesPerEntry = 1_000

// Options configure a Sampler. Zero fields take the documented defaults.
type Options struct {
	// SampleOneIn keeps at most the traces whose trace id hash is a
	// multiple of it (default 1: every trace). The hash is fixed, so
	// collectors that share the work sample the same traces. Under load
	// the sampler takes fewer (see MaxTraces).
	SampleOneIn int
	// TraceIdle is how long a trace whose root span has arrived must go
	// without a new span to be complete (default 5s, the OpenTelemetry SDK
	// batch processor's export delay: the batches of other services may
	// come after the root's). Spans arriving later are ignored and counted.
	TraceIdle time.Duration
	// RootWait is how long a trace whose root span (the one without a
	// parent) has not arrived must go without a new span before it is
	// analysed anyway, from its earliest span whose parent is not in the
	// trace, and counted as rootless (default 30s). A root is exported at
	// most one export delay after it ends, after every span of its trace
	// ended: a trace still without one is one whose root is never sent (an
	// uninstrumented proxy's, a browser's).
	RootWait time.Duration
	// MaxTraces bounds the traces being assembled (default 10,000). The
	// sampler keeps them under half of it by taking a smaller share of
	// traces (halving it, by trace id hash, each time they exceed half;
	// doubling it back when they fall under an eighth); new traces beyond
	// the bound are not sampled, and counted.
	MaxTraces int
	// MaxSpansPerTrace bounds one trace (default 1,000); a trace that grows
	// beyond it is dropped whole, and counted.
	MaxSpansPerTrace int
	// Window is how long per-entry results are kept (default 1m, the
	// graph's window); Paths merges at most this much.
	Window time.Duration
	// Bucket is the width of the time buckets results are kept in (default
	// Window/12, at least 1s); the window slides bucket by bucket.
	Bucket time.Duration
	// MaxEntries bounds the entry operations kept (default 1,000); traces
	// of further entries are dropped and counted until old entries age out.
	MaxEntries int
	// MaxCallPatterns bounds the call patterns (caller, callee, operation:
	// see Calls) one time bucket keeps (default 10,000); calls of further
	// patterns are dropped and counted.
	MaxCallPatterns int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Registerer receives the sampler's metrics, cartograph_critpath_*
	// (nil: not registered).
	Registerer prometheus.Registerer
}

// Validate reports whether the options are usable, after defaults.
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	if o.SampleOneIn < 1 {
		errs = append(errs, fmt.Errorf("sample one in %d: must be at least 1", o.SampleOneIn))
	}
	if o.TraceIdle <= 0 {
		errs = append(errs, fmt.Errorf("trace idle %v: must be positive", o.TraceIdle))
	}
	if o.RootWait <= 0 {
		errs = append(errs, fmt.Errorf("root wait %v: must be positive", o.RootWait))
	}
	if o.MaxTraces < 1 || o.MaxSpansPerTrace < 1 || o.MaxEntries < 1 || o.MaxCallPatterns < 1 {
		errs = append(errs, errors.New("max traces, spans per trace, entries and call patterns must be positive"))
	}
	if o.Window <= 0 {
		errs = append(errs, fmt.Errorf("window %v: must be positive", o.Window))
	} else if o.Bucket <= 0 || o.Bucket > o.Window {
		errs = append(errs, fmt.Errorf("bucket %v: must be in (0, window]", o.Bucket))
	} else if n := o.Window / o.Bucket; n > 3600 {
		errs = append(errs, fmt.Errorf("window/bucket = %d buckets: at most 3600", n))
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	if o.SampleOneIn == 0 {
		o.SampleOneIn = DefaultSampleOneIn
	}
	if o.TraceIdle == 0 {
		o.TraceIdle = DefaultTraceIdle
	}
	if o.RootWait == 0 {
		o.RootWait = DefaultRootWait
	}
	if o.MaxTraces == 0 {
		o.MaxTraces = DefaultMaxTraces
	}
	if o.MaxSpansPerTrace == 0 {
		o.MaxSpansPerTrace = DefaultMaxSpansPerTrace
	}
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	if o.Bucket == 0 {
		o.Bucket = max(o.Window/12, time.Second)
		if o.Bucket > o.Window {
			o.Bucket = o.Window
		}
	}
	if o.MaxEntries == 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.MaxCallPatterns == 0 {
		o.MaxCallPatterns = DefaultMaxCallPatterns
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}
