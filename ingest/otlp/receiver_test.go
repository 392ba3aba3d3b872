package otlp

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// testReceiver is a started Receiver with its sink and metrics registry.
type testReceiver struct {
	*Receiver
	sink *sink
	reg  *prometheus.Registry
}

// startReceiver starts a Receiver on loopback port 0 for both transports and
// both signals, feeding a new sink; mod may change the options first. The
// receiver is shut down when the test ends.
func startReceiver(t *testing.T, mod func(*Options)) *testReceiver {
	t.Helper()
	s := newSink()
	reg := prometheus.NewRegistry()
	opts := Options{
		GRPCAddr:   "127.0.0.1:0",
		HTTPAddr:   "127.0.0.1:0",
		Traces:     s,
		Metrics:    s,
		Registerer: reg,
		RetryAfter: 1500 * time.Millisecond,
	}
	if mod != nil {
		mod(&opts)
	}
	r, err := New(opts)
	require.NoError(t, err)
	require.NoError(t, r.Start(t.Context()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, r.Shutdown(ctx))
	})
	return &testReceiver{Receiver: r, sink: s, reg: reg}
}

// grpcConn dials the receiver's gRPC address.
func (tr *testReceiver) grpcConn(t *testing.T) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(tr.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// httpURL returns the URL of path on the receiver's HTTP address.
func (tr *testReceiver) httpURL(path string) string {
	return "http://" + tr.HTTPAddr().String() + path
}

// metric returns the value of the series of family name whose labels include
// labels: a counter or gauge value, or a histogram's sample count. It fails
// the test if there is no such series.
func (tr *testReceiver) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := gatherValue(t, tr.reg, name, labels)
	require.Truef(t, ok, "no series %s%v", name, labels)
	return v
}

// eventually waits until the metric reaches want (for series recorded after
// the answer reaches the client, such as gRPC refusals made by gRPC itself).
func (tr *testReceiver) eventually(t *testing.T, name string, labels map[string]string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := gatherValue(t, tr.reg, name, labels)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func gatherValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			return metricValue(m), true
		}
	}
	return 0, false
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

func lbl(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// makeTraces returns traces with n spans of service "checkout".
func makeTraces(n int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	ss := rs.ScopeSpans().AppendEmpty()
	for i := range n {
		sp := ss.Spans().AppendEmpty()
		sp.SetName("GET /cart")
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetTraceID(pcommon.TraceID{1, 2, 3, byte(i)})
		sp.SetSpanID(pcommon.SpanID{4, 5, byte(i)})
		sp.SetStartTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000))
		sp.SetEndTimestamp(pcommon.Timestamp(1_700_000_000_005_000_000))
	}
	return td
}

// makeMetrics returns metrics with n gauge data points.
func makeMetrics(n int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "kafka")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("kafka.consumer_group.lag")
	dps := m.SetEmptyGauge().DataPoints()
	for i := range n {
		dp := dps.AppendEmpty()
		dp.SetIntValue(int64(i))
		dp.SetTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000))
	}
	return md
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestOptionsValidate(t *testing.T) {
	s := newSink()
	valid := Options{GRPCAddr: "127.0.0.1:0", Traces: s}
	tests := []struct {
		name    string
		mod     func(*Options)
		wantErr string
	}{
		{name: "valid", mod: func(*Options) {}},
		{name: "http only, metrics only", mod: func(o *Options) { o.GRPCAddr, o.HTTPAddr, o.Traces, o.Metrics = "", ":0", nil, s }},
		{name: "no transport", mod: func(o *Options) { o.GRPCAddr = "" }, wantErr: "no transport"},
		{name: "no signal", mod: func(o *Options) { o.Traces = nil }, wantErr: "no signal"},
		{name: "negative size", mod: func(o *Options) { o.MaxRequestBytes = -1 }, wantErr: "MaxRequestBytes"},
		{name: "huge size", mod: func(o *Options) { o.MaxRequestBytes = 1 << 40 }, wantErr: "MaxRequestBytes"},
		{name: "negative in-flight", mod: func(o *Options) { o.MaxInFlight = -1 }, wantErr: "MaxInFlight"},
		{name: "negative retry", mod: func(o *Options) { o.RetryAfter = -time.Second }, wantErr: "RetryAfter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := valid
			tt.mod(&o)
			err := o.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				_, err = New(o)
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			_, err = New(o)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{}.withDefaults()
	require.Equal(t, DefaultMaxRequestBytes, o.MaxRequestBytes)
	require.Equal(t, DefaultMaxInFlight(), o.MaxInFlight)
	require.Equal(t, DefaultRetryAfter, o.RetryAfter)
	require.NotNil(t, o.Logger)
}

func TestNewRegistersMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := Options{GRPCAddr: "127.0.0.1:0", Traces: newSink(), Registerer: reg, MaxInFlight: 7}
	_, err := New(opts)
	require.NoError(t, err)
	v, ok := gatherValue(t, reg, "cartograph_receiver_in_flight_requests_limit", nil)
	require.True(t, ok)
	require.Equal(t, 7.0, v)

	_, err = New(opts)
	require.Error(t, err, "a second receiver on the same registerer must fail")

	opts.Registerer = nil
	_, err = New(opts)
	require.NoError(t, err, "a nil Registerer registers nothing")
}

func TestStartShutdown(t *testing.T) {
	logs := &syncBuffer{}
	r, err := New(Options{
		GRPCAddr: "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0",
		Traces:   newSink(),
		Logger:   slog.New(slog.NewTextHandler(logs, nil)),
	})
	require.NoError(t, err)
	require.Nil(t, r.GRPCAddr(), "no address before Start")
	require.NoError(t, r.Start(t.Context()))
	require.ErrorIs(t, r.Start(t.Context()), errStarted)

	addrs := map[string]net.Addr{"grpc": r.GRPCAddr(), "http": r.HTTPAddr()}
	for name, addr := range addrs {
		require.NotNil(t, addr, name)
		port := addr.(*net.TCPAddr).Port
		require.NotZero(t, port, "%s: port 0 must be replaced by the bound port", name)
		require.Contains(t, logs.String(), "otlp "+name+" listening")
		require.Contains(t, logs.String(), addr.String(), "the bound address is logged")
		c, err := net.Dial("tcp", addr.String())
		require.NoError(t, err, name)
		_ = c.Close()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, r.Shutdown(ctx))
	require.NoError(t, r.Shutdown(ctx), "second Shutdown is a no-op")
	for name, addr := range addrs {
		c, err := net.DialTimeout("tcp", addr.String(), time.Second)
		if err == nil {
			_ = c.Close()
			t.Fatalf("%s: %s still accepts connections after Shutdown", name, addr)
		}
	}
	require.ErrorIs(t, r.Start(t.Context()), errStopped)
}

func TestStartFailsOnBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	r, err := New(Options{GRPCAddr: "127.0.0.1:0", HTTPAddr: ln.Addr().String(), Traces: newSink()})
	require.NoError(t, err)
	err = r.Start(t.Context())
	require.ErrorContains(t, err, "http listen")
	require.Nil(t, r.GRPCAddr(), "the gRPC listener is closed again")
}

func TestShutdownForcesAfterDeadline(t *testing.T) {
	tr := startReceiver(t, func(o *Options) { o.MaxInFlight = 4 })
	unblock := tr.sink.block()
	defer unblock()

	body := protoTraces(t, makeTraces(1))
	done := make(chan error, 1)
	go func() {
		_, err := postOTLP(tr.httpURL(pathTraces), contentTypeProto, "", body)
		done <- err
	}()
	<-tr.sink.entered
	cc := tr.grpcConn(t)
	grpcDone := make(chan error, 1)
	go func() {
		_, err := exportTraces(cc, makeTraces(1))
		grpcDone <- err
	}()
	<-tr.sink.entered

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := tr.Shutdown(ctx)
	require.True(t, errors.Is(err, context.DeadlineExceeded), "Shutdown error %v", err)
	require.Less(t, time.Since(start), 3*time.Second)
	<-done
	<-grpcDone
	require.True(t, strings.Contains(err.Error(), "grpc") && strings.Contains(err.Error(), "http"), err.Error())
	for _, transport := range []string{"http", "grpc"} {
		tr.eventually(t, "cartograph_receiver_requests_total", lbl("transport", transport, "signal", "traces", "outcome", "canceled"), 1)
	}
}
