// Package otlp implements cartograph's OTLP receivers: OTLP/gRPC
// (TraceService/Export, MetricsService/Export) and OTLP/HTTP (POST /v1/traces,
// POST /v1/metrics; protobuf and JSON; gzip). Decoded data is handed
// synchronously to an ingest.TracesConsumer or ingest.MetricsConsumer, and the
// consumer's error is turned into the OTLP answer: success, partial success,
// backpressure (gRPC RESOURCE_EXHAUSTED or UNAVAILABLE with RetryInfo, HTTP
// 429 or 503 with Retry-After) or permanent rejection.
//
// Both transports and both signals share one in-flight limit; a request that
// finds it full is refused at once instead of queueing.
//
// Optionally (Options.Auth, Options.TLS) every request must carry a bearer
// token, checked before its body is read, and both transports serve TLS,
// with client certificates required when the TLS configuration says so.
package otlp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // registers the gzip compressor so gRPC senders may compress.

	"github.com/seed-a49a8342/cartograph/ingest"
)

// Defaults applied by New to zero-valued Options fields.
const (
	// DefaultMaxRequestBytes is the default limit on one request's body, both
	// as sent and after decompression.
	DefaultMaxRequestBytes int64 = 16 << 20
	// DefaultRetryAfter is the default delay that refused senders are told to wait.
	DefaultRetryAfter = time.Second
)

// gRPC flow-control windows, fixed (gRPC's estimate of the bandwidth-delay
// product is off): a stream's window covers a request of 256 KiB without a
// WINDOW_UPDATE (one is sent when a quarter of the window is read), the
// connection's is updated every 2 MiB read. What a sender can have
// buffered unread is bounded as before: a stream is only read once the
// in-flight limit admitted it (the data of a refused one is discarded), and
// the dynamic windows could grow to 16 MiB.
const (
	grpcStreamWindow = 1 << 20
	grpcConnWindow   = 8 << 20
)

// maxRequestBytesLimit bounds Options.MaxRequestBytes: gRPC takes the limit as
// an int and OTLP batches that large make no sense.
const maxRequestBytesLimit = math.MaxInt32

// DefaultMaxInFlight returns the default in-flight limit: twice GOMAXPROCS.
func DefaultMaxInFlight() int { return 2 * runtime.GOMAXPROCS(0) }

// Options configures a Receiver. The zero value of each numeric field means
// its default. Options is copied by New; changing it afterwards has no effect.
type Options struct {
	// GRPCAddr is the OTLP/gRPC listen address, e.g. "127.0.0.1:4317".
	// Port 0 picks a free port. Empty disables the gRPC transport.
	GRPCAddr string
	// HTTPAddr is the OTLP/HTTP listen address, e.g. "127.0.0.1:4318".
	// Port 0 picks a free port. Empty disables the HTTP transport.
	HTTPAddr string
	// MaxRequestBytes limits one request's body, both on the wire and after
	// decompression. Larger requests are refused (gRPC RESOURCE_EXHAUSTED,
	// HTTP 413). Default DefaultMaxRequestBytes (16 MiB); at most 2 GiB-1.
	MaxRequestBytes int64
	// MaxInFlight is how many export requests, over both transports and both
	// signals, may be processed at once. A request arriving when the limit is
	// reached is refused immediately (gRPC RESOURCE_EXHAUSTED, HTTP 429).
	// An HTTP request is refused before its body is read; a gRPC request has
	// already been received and decoded by gRPC when the limit is checked.
	// Default DefaultMaxInFlight() (2*GOMAXPROCS).
	MaxInFlight int
	// MaxHeapBytes, when positive, refuses export requests (gRPC
	// RESOURCE_EXHAUSTED, HTTP 429, as for MaxInFlight) while the live heap
	// found by the last garbage collection is above it, so that a burst
	// cannot grow the process past its memory budget. 0: no bound.
	MaxHeapBytes int64
	// RetryAfter is the delay refused senders are asked to wait before
	// retrying (gRPC RetryInfo, HTTP Retry-After rounded up to whole seconds,
	// at least 1). Default DefaultRetryAfter (1s).
	RetryAfter time.Duration
	// Traces receives decoded traces. Nil disables the traces signal: the gRPC
	// TraceService is not registered and POST /v1/traces answers 404. When
	// it is an ingest.TracesProtoDecoder, it reads protobuf requests (gRPC,
	// and HTTP protobuf) from their bytes itself; pdata decodes the rest.
	Traces ingest.TracesConsumer
	// Metrics receives decoded metrics. Nil disables the metrics signal, as
	// for Traces.
	Metrics ingest.MetricsConsumer
	// Logger receives the receiver's logs. Nil discards them.
	Logger *slog.Logger
	// Registerer is where the receiver's own metrics
	// (cartograph_receiver_*) are registered. Nil means they are not registered.
	Registerer prometheus.Registerer
	// Auth, when not nil, requires every request on both transports to
	// carry a bearer token it accepts: gRPC metadata "authorization: Bearer
	// <token>", HTTP header "Authorization: Bearer <token>". Requests
	// without one or with a refused one are answered gRPC UNAUTHENTICATED
	// or HTTP 401 with WWW-Authenticate before their body is read, and
	// counted (cartograph_receiver_auth_failures_total). Items of accepted
	// requests are also counted by token name
	// (cartograph_receiver_token_items_total), and the consumer finds the
	// name with TokenName. Nil: no authentication.
	Auth TokenAuthenticator
	// TLS, when not nil, serves both transports over TLS with a clone of
	// this configuration (for mutual TLS, set ClientAuth and ClientCAs).
	// It needs a certificate (Certificates or GetCertificate). Nil: plain
	// text.
	TLS *tls.Config
}

// Validate reports whether o can build a Receiver: at least one transport and
// one signal must be enabled and no numeric field may be negative.
func (o Options) Validate() error {
	var errs []error
	if o.GRPCAddr == "" && o.HTTPAddr == "" {
		errs = append(errs, errors.New("no transport enabled: both GRPCAddr and HTTPAddr are empty"))
	}
	if o.Traces == nil && o.Metrics == nil {
		errs = append(errs, errors.New("no signal enabled: both Traces and Metrics consumers are nil"))
	}
	if o.MaxRequestBytes < 0 || o.MaxRequestBytes > maxRequestBytesLimit {
		errs = append(errs, fmt.Errorf("MaxRequestBytes %d out of range [0, %d]", o.MaxRequestBytes, int64(maxRequestBytesLimit)))
	}
	if o.MaxInFlight < 0 {
		errs = append(errs, fmt.Errorf("MaxInFlight %d is negative", o.MaxInFlight))
	}
	if o.RetryAfter < 0 {
		errs = append(errs, fmt.Errorf("RetryAfter %s is negative", o.RetryAfter))
	}
	if o.TLS != nil && len(o.TLS.Certificates) == 0 && o.TLS.GetCertificate == nil && o.TLS.GetConfigForClient == nil {
		errs = append(errs, errors.New("TLS has no certificate"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("otlp: invalid options: %w", err)
	}
	return nil
}

// withDefaults returns o with zero fields set to their defaults.
func (o Options) withDefaults() Options {
	if o.MaxRequestBytes == 0 {
		o.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = DefaultMaxInFlight()
	}
	if o.RetryAfter == 0 {
		o.RetryAfter = DefaultRetryAfter
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Receiver serves OTLP over gRPC and HTTP. Build it with New, call Start
// once, and Shutdown once when done; a Receiver cannot be restarted. Its
// methods are safe for concurrent use.
type Receiver struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	limiter *limiter

	grpcServer *grpc.Server   // nil when gRPC is disabled
	httpServer *http.Server   // nil when HTTP is disabled
	serving    sync.WaitGroup // Serve goroutines

	mu      sync.Mutex // guards the fields below
	started bool
	stopped bool
	grpcLn  net.Listener // bound by Start; nil when disabled
	httpLn  net.Listener // bound by Start; nil when disabled
}

// New validates opts, applies defaults and builds a Receiver. It registers the
// receiver's metrics on opts.Registerer, so building two Receivers on the same
// Registerer fails. Nothing listens until Start.
func New(opts Options) (*Receiver, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	m := newMetrics(opts.MaxInFlight)
	if named, ok := opts.Auth.(interface{ Names() []string }); ok {
		m.tokenSeries(named.Names())
	}
	if opts.Registerer != nil {
		if err := m.register(opts.Registerer); err != nil {
			return nil, fmt.Errorf("otlp: registering metrics: %w", err)
		}
	}
	r := &Receiver{
		opts:    opts,
		log:     opts.Logger,
		metrics: m,
		limiter: newLimiter(opts.MaxInFlight, m.inFlight),
	}
	heap, err := newHeapGate(opts.MaxHeapBytes, opts.Registerer)
	if err != nil {
		return nil, err
	}
	r.limiter.heap = heap
	if opts.GRPCAddr != "" {
		serverOpts := []grpc.ServerOption{
			grpc.MaxRecvMsgSize(int(opts.MaxRequestBytes)),
			grpc.StatsHandler(grpcStats{r: r}),
			grpc.InTapHandle(r.tapGRPC),
			grpc.ForceServerCodecV2(newNestingCodec()),
			// Reused stream goroutines keep their grown stacks: with a
			// goroutine per RPC, growing a fresh 8 KiB stack to what
			// decoding needs (runtime.newstack/copystack) was 6% of the
			// CPU under small requests (telemetrygen-shaped traffic).
			grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
			// Fixed flow-control windows: gRPC's dynamic ones start at
			// 64 KiB and answer nearly every request of a few tens of KB
			// with a connection WINDOW_UPDATE, a stream WINDOW_UPDATE and a
			// BDP ping, each its own write (system call) on loopback.
			grpc.InitialWindowSize(grpcStreamWindow),
			grpc.InitialConnWindowSize(grpcConnWindow),
		}
		if opts.TLS != nil {
			serverOpts = append(serverOpts, grpc.Creds(credentials.NewTLS(opts.TLS.Clone())))
		}
		r.grpcServer = grpc.NewServer(serverOpts...)
		if d, ok := opts.Traces.(ingest.TracesProtoDecoder); ok {
			r.grpcServer.RegisterService(&wireTracesDesc, &grpcWireTraces{r: r, decoder: d})
		} else if opts.Traces != nil {
			ptraceotlp.RegisterGRPCServer(r.grpcServer, &grpcTraces{r: r, consumer: opts.Traces})
		}
		if opts.Metrics != nil {
			pmetricotlp.RegisterGRPCServer(r.grpcServer, &grpcMetrics{r: r, consumer: opts.Metrics})
		}
	}
	if opts.HTTPAddr != "" {
		r.httpServer = &http.Server{
			Handler:           r.httpHandler(),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
		}
		if opts.TLS != nil {
			r.httpServer.TLSConfig = opts.TLS.Clone()
		}
	}
	return r, nil
}

var (
	errStarted = errors.New("otlp: receiver already started")
	errStopped = errors.New("otlp: receiver shut down")
)

// Start binds the enabled listeners and serves them in background goroutines,
// logging each bound address. ctx bounds only the binding, not the serving;
// stop serving with Shutdown. If a listener cannot be bound, none is left
// open. Start may be called only once.
func (r *Receiver) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.stopped:
		return errStopped
	case r.started:
		return errStarted
	}
	var lc net.ListenConfig
	var grpcLn, httpLn net.Listener
	if r.grpcServer != nil {
		ln, err := lc.Listen(ctx, "tcp", r.opts.GRPCAddr)
		if err != nil {
			return fmt.Errorf("otlp: grpc listen on %q: %w", r.opts.GRPCAddr, err)
		}
		grpcLn = ln
	}
	if r.httpServer != nil {
		ln, err := lc.Listen(ctx, "tcp", r.opts.HTTPAddr)
		if err != nil {
			if grpcLn != nil {
				_ = grpcLn.Close()
			}
			return fmt.Errorf("otlp: http listen on %q: %w", r.opts.HTTPAddr, err)
		}
		httpLn = ln
	}
	r.started = true
	r.grpcLn, r.httpLn = grpcLn, httpLn
	if grpcLn != nil {
		r.log.Info("otlp grpc listening", "addr", grpcLn.Addr().String(), "tls", r.opts.TLS != nil, "auth", r.opts.Auth != nil)
		r.serving.Go(func() {
			if err := r.grpcServer.Serve(grpcLn); err != nil {
				r.log.Error("otlp grpc server stopped", "addr", grpcLn.Addr().String(), "err", err)
			}
		})
	}
	if httpLn != nil {
		r.log.Info("otlp http listening", "addr", httpLn.Addr().String(), "tls", r.opts.TLS != nil, "auth", r.opts.Auth != nil)
		r.serving.Go(func() {
			serve := r.httpServer.Serve
			if r.opts.TLS != nil {
				serve = func(ln net.Listener) error { return r.httpServer.ServeTLS(ln, "", "") }
			}
			if err := serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				r.log.Error("otlp http server stopped", "addr", httpLn.Addr().String(), "err", err)
			}
		})
	}
	return nil
}

// GRPCAddr returns the address the gRPC listener is bound to, or nil if gRPC
// is disabled or Start has not succeeded.
func (r *Receiver) GRPCAddr() net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.grpcLn == nil {
		return nil
	}
	return r.grpcLn.Addr()
}

// HTTPAddr returns the address the HTTP listener is bound to, or nil if HTTP
// is disabled or Start has not succeeded.
func (r *Receiver) HTTPAddr() net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.httpLn == nil {
		return nil
	}
	return r.httpLn.Addr()
}

// httpShutdownGrace bounds the graceful part of the HTTP server's shutdown.
const httpShutdownGrace = 2 * time.Second

// Shutdown stops accepting requests, closes the listeners and waits for
// requests being processed to finish. When ctx ends first, remaining
// connections are closed forcibly (their requests' contexts are canceled) and
// ctx's error is returned. Shutdown before Start just prevents a later Start.
// Calls after the first return nil at once.
func (r *Receiver) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return nil
	}
	r.stopped = true
	started := r.started
	r.mu.Unlock()
	if !started {
		return nil
	}

	var wg sync.WaitGroup
	var grpcErr, httpErr error
	if r.grpcServer != nil {
		wg.Go(func() { grpcErr = stopGRPC(ctx, r.grpcServer) })
	}
	if r.httpServer != nil {
		wg.Go(func() {
			// Requests in flight finish within the grace; past it, what is
			// left are idle or never-used connections (an exporter that
			// opened one and sent nothing holds Shutdown for 5s), closed.
			grace, cancel := context.WithTimeout(ctx, httpShutdownGrace)
			defer cancel()
			if err := r.httpServer.Shutdown(grace); err != nil {
				_ = r.httpServer.Close()
				if ctx.Err() != nil {
					httpErr = fmt.Errorf("otlp: http shutdown: %w", err)
				}
			}
		})
	}
	wg.Wait()
	r.serving.Wait()
	return errors.Join(grpcErr, httpErr)
}

// stopGRPC stops s gracefully, or forcibly once ctx ends.
func stopGRPC(ctx context.Context, s *grpc.Server) error {
	done := make(chan struct{})
	go func() {
		s.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Stop()
		<-done
		return fmt.Errorf("otlp: grpc shutdown: %w", ctx.Err())
	}
}
