package otlp

// Tests of bearer-token authentication and TLS on both transports, sending
// with the OpenTelemetry SDK's own OTLP exporters where they apply.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/seed-a49a8342/cartograph/ingest"
)

var errUnavailableForTest = fmt.Errorf("%w: storage down (test)", ingest.ErrUnavailable)

const (
	tokenA = "token-AAAAAAAAAAAAAAAAAAAAAAAA"
	tokenB = "token-BBBBBBBBBBBBBBBBBBBBBBBB"
)

// testTokens is a TokenAuthenticator over a fixed secret -> name table,
// compared in constant time like the production one (web/auth.Tokens,
// which this package may not import).
type testTokens map[string]string

func (tt testTokens) Authenticate(tok string) (string, bool) {
	name, ok := "", false
	for secret, n := range tt {
		if subtle.ConstantTimeCompare([]byte(secret), []byte(tok)) == 1 {
			name, ok = n, true
		}
	}
	return name, ok
}

func (tt testTokens) Names() []string {
	var out []string
	for _, n := range tt {
		out = append(out, n)
	}
	return out
}

// nameRecorder passes data on to a sink and remembers the token name the
// consumer saw for each call.
type nameRecorder struct {
	*sink
	mu    sync.Mutex
	names []string
}

func (n *nameRecorder) record(ctx context.Context) {
	name, _ := TokenName(ctx)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.names = append(n.names, name)
}

func (n *nameRecorder) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	n.record(ctx)
	return n.sink.ConsumeTraces(ctx, td)
}

func (n *nameRecorder) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	n.record(ctx)
	return n.sink.ConsumeMetrics(ctx, md)
}

func (n *nameRecorder) seen() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.names...)
}

// testSpans returns n finished spans of service "checkout" as the SDK's
// exporters take them.
func testSpans(n int) []sdktrace.ReadOnlySpan {
	stubs := make(tracetest.SpanStubs, n)
	for i := range stubs {
		stubs[i] = tracetest.SpanStub{
			Name: "GET /cart",
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: trace.TraceID{1, byte(i + 1)}, SpanID: trace.SpanID{2, byte(i + 1)}, TraceFlags: trace.FlagsSampled,
			}),
			SpanKind:  trace.SpanKindServer,
			StartTime: time.Unix(1_700_000_000, 0),
			EndTime:   time.Unix(1_700_000_000, 5_000_000),
			Resource:  resource.NewSchemaless(),
		}
	}
	return stubs.Snapshots()
}

// grpcExporter returns the SDK's OTLP/gRPC trace exporter for addr, with
// retries off so a refusal is returned at once.
func grpcExporter(t *testing.T, addr string, headers map[string]string, tlsCfg *tls.Config) sdktrace.SpanExporter {
	t.Helper()
	opts := []otlptracegrpc.Option{
		otlptracegrpc.WithEndpoint(addr), otlptracegrpc.WithHeaders(headers),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}), otlptracegrpc.WithTimeout(10 * time.Second),
	}
	if tlsCfg != nil {
		opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
	} else {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	exp, err := otlptracegrpc.New(context.Background(), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	return exp
}

// httpExporter is grpcExporter for OTLP/HTTP.
func httpExporter(t *testing.T, addr string, headers map[string]string, tlsCfg *tls.Config) sdktrace.SpanExporter {
	t.Helper()
	opts := []otlptracehttp.Option{
		otlptracehttp.WithEndpoint(addr), otlptracehttp.WithHeaders(headers),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}), otlptracehttp.WithTimeout(10 * time.Second),
	}
	if tlsCfg != nil {
		opts = append(opts, otlptracehttp.WithTLSClientConfig(tlsCfg))
	} else {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	return exp
}

func bearer(tok string) map[string]string { return map[string]string{"authorization": "Bearer " + tok} }

func TestAuthWithSDKExporters(t *testing.T) {
	logs := &syncBuffer{}
	rec := &nameRecorder{sink: newSink()}
	tr := startReceiver(t, func(o *Options) {
		o.Auth = testTokens{tokenA: "team-a", tokenB: "team-b"}
		o.Traces, o.Metrics = rec, rec
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	type exporter interface {
		ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error
	}
	for _, transport := range []string{transportGRPC, transportHTTP} {
		newExp := func(headers map[string]string) exporter {
			if transport == transportGRPC {
				return grpcExporter(t, tr.GRPCAddr().String(), headers, nil)
			}
			return httpExporter(t, tr.HTTPAddr().String(), headers, nil)
		}
		for _, tc := range []struct {
			name    string
			headers map[string]string
			reason  string // "" when accepted
		}{
			{"good token", bearer(tokenA), ""},
			{"second token", map[string]string{"authorization": "bearer " + tokenB}, ""},
			{"wrong token", bearer(tokenA + "x"), authInvalid},
			{"not bearer", map[string]string{"authorization": "Basic " + tokenA}, authInvalid},
			{"missing", nil, authMissing},
		} {
			t.Run(transport+"/"+tc.name, func(t *testing.T) {
				spansBefore, _ := rec.sink.counts()
				failsBefore, _ := gatherValue(t, tr.reg, "cartograph_receiver_auth_failures_total", lbl("transport", transport, "signal", signalTraces, "reason", tc.reason))
				err := newExp(tc.headers).ExportSpans(context.Background(), testSpans(3))
				spansAfter, _ := rec.sink.counts()
				if tc.reason == "" {
					require.NoError(t, err)
					require.Equal(t, spansBefore+3, spansAfter)
					return
				}
				require.Error(t, err)
				if transport == transportGRPC {
					require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
				} else {
					require.ErrorContains(t, err, "401")
				}
				require.Equal(t, spansBefore, spansAfter, "nothing reaches the consumer")
				tr.eventually(t, "cartograph_receiver_auth_failures_total", lbl("transport", transport, "signal", signalTraces, "reason", tc.reason), failsBefore+1)
			})
		}
	}
	require.Equal(t, 6.0, tr.metric(t, "cartograph_receiver_token_items_total", lbl("token", "team-a", "signal", signalTraces, "result", itemsAccepted)), "3 spans per transport")
	require.Equal(t, 6.0, tr.metric(t, "cartograph_receiver_token_items_total", lbl("token", "team-b", "signal", signalTraces, "result", itemsAccepted)))
	require.Equal(t, 0.0, tr.metric(t, "cartograph_receiver_token_items_total", lbl("token", "team-a", "signal", signalMetrics, "result", itemsAccepted)), "series exist before use")
	require.Equal(t, 3.0, tr.metric(t, "cartograph_receiver_requests_total", lbl("transport", transportGRPC, "signal", signalTraces, "outcome", outcomeUnauthenticated)))
	require.Equal(t, 3.0, tr.metric(t, "cartograph_receiver_requests_total", lbl("transport", transportHTTP, "signal", signalTraces, "outcome", outcomeUnauthenticated)))
	require.ElementsMatch(t, []string{"team-a", "team-b", "team-a", "team-b"}, rec.seen(), "the consumer learns the token name")

	out := logs.String()
	require.Contains(t, out, "reason=invalid", "refusals are logged at debug")
	for _, secret := range []string{tokenA, tokenB} {
		require.NotContains(t, out, secret, "no token in the logs")
	}
}

// bearerCreds sends a bearer token with every RPC, over plain text too.
type bearerCreds string

func (b bearerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearerCreds) RequireTransportSecurity() bool { return false }

func TestAuthMetricsSignalAndPerToken(t *testing.T) {
	tr := startReceiver(t, func(o *Options) { o.Auth = testTokens{tokenA: "team-a"} })
	cc := tr.grpcConn(t)
	_, _, err := export(cc, signalMetrics, 4, grpc.PerRPCCredentials(bearerCreds(tokenA)))
	require.NoError(t, err)
	_, _, err = export(cc, signalMetrics, 4, grpc.PerRPCCredentials(bearerCreds(tokenB)))
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	require.Equal(t, 4.0, tr.metric(t, "cartograph_receiver_token_items_total", lbl("token", "team-a", "signal", signalMetrics, "result", itemsAccepted)))
	require.Equal(t, 4.0, tr.metric(t, "cartograph_receiver_items_total", lbl("transport", transportGRPC, "signal", signalMetrics, "result", itemsAccepted)))
	tr.eventually(t, "cartograph_receiver_auth_failures_total", lbl("transport", transportGRPC, "signal", signalMetrics, "reason", authInvalid), 1)

	// Refused items are counted per token too.
	tr.sink.setErr(errUnavailableForTest)
	_, _, err = export(cc, signalMetrics, 2, grpc.PerRPCCredentials(bearerCreds(tokenA)))
	require.Equal(t, codes.Unavailable, status.Code(err))
	require.Equal(t, 2.0, tr.metric(t, "cartograph_receiver_token_items_total", lbl("token", "team-a", "signal", signalMetrics, "result", itemsRefused)))
}

// TestAuthRefusesBeforeReadingTheBody sends requests far above
// MaxRequestBytes without a valid token: they are refused for the token,
// not for their size, so their bodies were never read.
func TestAuthRefusesBeforeReadingTheBody(t *testing.T) {
	tr := startReceiver(t, func(o *Options) {
		o.Auth = testTokens{tokenA: "team-a"}
		o.MaxRequestBytes = 1024
	})
	big := makeTraces(200) // well above 1 KiB
	_, err := exportTraces(tr.grpcConn(t), big, grpc.PerRPCCredentials(bearerCreds("nope-nope-nope-nope")))
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)

	body := protoTraces(t, big)
	require.Greater(t, len(body), 1024)
	res, err := doHTTP(http.MethodPost, tr.httpURL(pathTraces), http.Header{"Content-Type": {contentTypeProto}}, bytes.NewReader(body))
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, res.code)
	require.Equal(t, `Bearer realm="cartograph"`, res.header.Get("WWW-Authenticate"))
	require.Equal(t, codes.Unauthenticated, codes.Code(errorStatus(t, res).GetCode()), "a google.rpc.Status body in the request's format")

	res, err = doHTTP(http.MethodPost, tr.httpURL(pathTraces), http.Header{"Content-Type": {contentTypeJSON}, "Authorization": {"Bearer wrong-wrong-wrong-wrong"}}, bytes.NewReader([]byte("{}")))
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, res.code)
	require.Equal(t, `Bearer realm="cartograph", error="invalid_token"`, res.header.Get("WWW-Authenticate"))

	require.Equal(t, 0.0, tr.metric(t, "cartograph_receiver_bad_requests_total", lbl("transport", transportHTTP, "signal", signalTraces, "reason", reasonTooLarge)))
	require.Equal(t, 0.0, tr.metric(t, "cartograph_receiver_bad_requests_total", lbl("transport", transportGRPC, "signal", signalTraces, "reason", reasonTooLarge)))
}

func TestTLSAndMutualTLS(t *testing.T) {
	ca := newTestCA(t)
	server := ca.issue(t, true)
	client := ca.issue(t, false)
	intruder := newTestCA(t).issue(t, false)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)

	for _, mutual := range []bool{false, true} {
		t.Run(map[bool]string{false: "tls", true: "mtls"}[mutual], func(t *testing.T) {
			cfg := &tls.Config{Certificates: []tls.Certificate{server}, MinVersion: tls.VersionTLS12}
			if mutual {
				cfg.ClientCAs, cfg.ClientAuth = roots, tls.RequireAndVerifyClientCert
			}
			tr := startReceiver(t, func(o *Options) {
				o.TLS = cfg
				o.Auth = testTokens{tokenA: "team-a"}
			})
			withCert := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{client}}
			noCert := &tls.Config{RootCAs: roots}
			otherCert := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{intruder}}

			require.NoError(t, grpcExporter(t, tr.GRPCAddr().String(), bearer(tokenA), withCert).ExportSpans(context.Background(), testSpans(2)))
			require.NoError(t, httpExporter(t, tr.HTTPAddr().String(), bearer(tokenA), withCert).ExportSpans(context.Background(), testSpans(2)))
			spans, _ := tr.sink.counts()
			require.Equal(t, 4, spans)

			err := grpcExporter(t, tr.GRPCAddr().String(), bearer(tokenA), nil).ExportSpans(context.Background(), testSpans(1))
			require.Error(t, err, "plain text to a TLS listener")
			err = httpExporter(t, tr.HTTPAddr().String(), bearer(tokenA), &tls.Config{}).ExportSpans(context.Background(), testSpans(1))
			require.Error(t, err, "a client that does not trust the server's CA")

			for name, c := range map[string]*tls.Config{"no client cert": noCert, "cert of another CA": otherCert} {
				errG := grpcExporter(t, tr.GRPCAddr().String(), bearer(tokenA), c).ExportSpans(context.Background(), testSpans(1))
				errH := httpExporter(t, tr.HTTPAddr().String(), bearer(tokenA), c).ExportSpans(context.Background(), testSpans(1))
				if mutual {
					require.Error(t, errG, name)
					require.Error(t, errH, name)
				} else {
					require.NoError(t, errG, name)
					require.NoError(t, errH, name)
				}
			}
			// TLS does not replace the token.
			err = grpcExporter(t, tr.GRPCAddr().String(), nil, withCert).ExportSpans(context.Background(), testSpans(1))
			require.Equal(t, codes.Unauthenticated, status.Code(err))
		})
	}
}

func TestOptionsValidateTLS(t *testing.T) {
	err := Options{GRPCAddr: "127.0.0.1:0", Traces: newSink(), TLS: &tls.Config{}}.Validate()
	require.ErrorContains(t, err, "TLS has no certificate")
}

// testCA is a throwaway CA for TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &testCA{cert: cert, key: key}
}

// issue returns a server certificate for 127.0.0.1 or a client certificate.
func (ca *testCA) issue(t *testing.T, server bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
