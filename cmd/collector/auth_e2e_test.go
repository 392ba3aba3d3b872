package main

// End-to-end tests of access control: the collector runs in-process with
// token files, token environment variables and TLS flags, and real OTLP
// exporters, HTTP clients and a websocket client talk to it.

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/seed-a49a8342/cartograph/web/auth/authtest"
)

const (
	ingestSecretA = "ingest-AAAAAAAAAAAAAAAAAAAAAAAA"
	ingestSecretB = "ingest-BBBBBBBBBBBBBBBBBBBBBBBB"
	viewerSecret  = "viewer-CCCCCCCCCCCCCCCCCCCCCCCC"
	wrongSecret   = "wrong-ZZZZZZZZZZZZZZZZZZZZZZZZZ"
)

// logBuffer collects the collector's log output.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startCollectorLogged is startCollectorEnv logging at debug level into
// the returned buffer.
func startCollectorLogged(t *testing.T, env map[string]string, extraArgs ...string) (started, *logBuffer) {
	t.Helper()
	args := []string{
		"--otlp-grpc-addr=127.0.0.1:0", "--otlp-http-addr=127.0.0.1:0", "--api-addr=127.0.0.1:0",
		"--pair-ttl=1s", "--eval-interval=200ms", "--data-dir=" + t.TempDir(),
	}
	if newFlagSet(&config{}, io.Discard).Lookup("ui-addr") != nil {
		args = append(args, "--ui-addr=") // no built-in UI on a fixed port
	}
	cfg, err := parseConfig(append(args, extraArgs...), func(k string) string { return env[k] }, io.Discard)
	require.NoError(t, err)
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan started, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, logger, func(s started) { addrs <- s }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err, "run returned an error at shutdown")
		case <-time.After(15 * time.Second):
			t.Error("run did not return within 15s of its context being cancelled")
		}
	})
	select {
	case s := <-addrs:
		return s, logs
	case err := <-done:
		t.Fatalf("run returned before starting: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("collector did not start within 10s")
	}
	return started{}, nil
}

// apiClient talks to the collector's API, optionally with a bearer token
// and TLS, without following redirects.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

func newAPIClient(base, token string, tlsCfg *tls.Config) *apiClient {
	return &apiClient{base: base, token: token, http: &http.Client{
		Timeout:       5 * time.Second,
		Transport:     &http.Transport{DisableKeepAlives: true, TLSClientConfig: tlsCfg},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (c *apiClient) do(t *testing.T, method, path string, hdr http.Header, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, c.base+path, body)
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header[k] = v
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func (c *apiClient) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, body := c.do(t, http.MethodGet, path, nil, nil)
	return resp.StatusCode, body
}

// sample returns the value of the series of name whose labels include
// every label in labels, from a Prometheus text exposition.
func sample(exposition, name string, labels ...string) float64 {
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `\{([^}]*)\} (\S+)$`)
lines:
	for line := range strings.Lines(exposition) {
		m := re.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if !strings.Contains(m[1], labels[i]+`="`+labels[i+1]+`"`) {
				continue lines
			}
		}
		v, _ := strconv.ParseFloat(m[2], 64)
		return v
	}
	return -1
}

// exportSpan sends one server span of service through exp and returns the
// export's error (ForceFlush returns it).
func exportSpan(t *testing.T, exp sdktrace.SpanExporter, service string) error {
	t.Helper()
	tp := newTracerProvider(t, exp, service, "")
	_, span := tp.Tracer("auth-e2e").Start(context.Background(), "GET /cart", trace.WithSpanKind(trace.SpanKindServer))
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return tp.ForceFlush(ctx)
}

func grpcExporterWith(t *testing.T, addr string, headers map[string]string, tlsCfg *tls.Config) sdktrace.SpanExporter {
	t.Helper()
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(addr), otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false})}
	if headers != nil { // else OTEL_EXPORTER_OTLP_HEADERS applies
		opts = append(opts, otlptracegrpc.WithHeaders(headers))
	}
	if tlsCfg != nil {
		opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
	} else {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	exp, err := otlptracegrpc.New(context.Background(), opts...)
	require.NoError(t, err)
	return exp
}

func httpExporterWith(t *testing.T, addr string, headers map[string]string, tlsCfg *tls.Config) sdktrace.SpanExporter {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: tlsCfg}
	t.Cleanup(tr.CloseIdleConnections)
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(addr), otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}),
		otlptracehttp.WithHTTPClient(&http.Client{Transport: tr, Timeout: 5 * time.Second})}
	if headers != nil { // else OTEL_EXPORTER_OTLP_HEADERS applies
		opts = append(opts, otlptracehttp.WithHeaders(headers))
	}
	if tlsCfg == nil {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	require.NoError(t, err)
	return exp
}

func bearerHeader(secret string) map[string]string {
	return map[string]string{"authorization": "Bearer " + secret}
}

func TestAuthTokensE2E(t *testing.T) {
	dir := t.TempDir()
	ingestFile := authtest.WriteFile(t, dir, "ingest-tokens", []byte("# OTLP senders\nteam-a:"+ingestSecretA+"\n"))
	apiFile := authtest.WriteFile(t, dir, "api-tokens", []byte("viewer:"+viewerSecret+"\n"))
	col, logs := startCollectorLogged(t,
		map[string]string{envIngestTokens: "team-b:" + ingestSecretB},
		"--ingest-tokens-file="+ingestFile, "--api-tokens-file="+apiFile)
	base := "http://" + col.API.String()
	viewer := newAPIClient(base, viewerSecret, nil)
	anon := newAPIClient(base, "", nil)

	t.Run("ingest", func(t *testing.T) {
		require.NoError(t, exportSpan(t, grpcExporterWith(t, col.OTLPGRPC.String(), bearerHeader(ingestSecretA), nil), "checkout"))
		require.NoError(t, exportSpan(t, httpExporterWith(t, col.OTLPHTTP.String(), bearerHeader(ingestSecretB), nil), "payments"))

		// The SDK's standard variable, as docs/operations.md shows it.
		t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20"+ingestSecretA)
		require.NoError(t, exportSpan(t, grpcExporterWith(t, col.OTLPGRPC.String(), nil, nil), "checkout"))
		require.NoError(t, exportSpan(t, httpExporterWith(t, col.OTLPHTTP.String(), nil, nil), "checkout"))
		t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "")

		err := exportSpan(t, grpcExporterWith(t, col.OTLPGRPC.String(), bearerHeader(wrongSecret), nil), "intruder")
		require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
		err = exportSpan(t, grpcExporterWith(t, col.OTLPGRPC.String(), nil, nil), "intruder")
		require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
		err = exportSpan(t, httpExporterWith(t, col.OTLPHTTP.String(), bearerHeader(wrongSecret), nil), "intruder")
		require.ErrorContains(t, err, "401")
		err = exportSpan(t, httpExporterWith(t, col.OTLPHTTP.String(), bearerHeader(viewerSecret), nil), "intruder")
		require.ErrorContains(t, err, "401", "a viewer token cannot send telemetry")

		code, metrics := viewer.get(t, "/metrics")
		require.Equal(t, 200, code)
		require.Equal(t, 3.0, sample(metrics, "cartograph_receiver_token_items_total", "token", "team-a", "signal", "traces", "result", "accepted"), "spans counted by token name")
		require.Equal(t, 1.0, sample(metrics, "cartograph_receiver_token_items_total", "token", "team-b", "signal", "traces", "result", "accepted"))
		require.Equal(t, 1.0, sample(metrics, "cartograph_receiver_auth_failures_total", "transport", "grpc", "signal", "traces", "reason", "invalid"))
		require.Equal(t, 1.0, sample(metrics, "cartograph_receiver_auth_failures_total", "transport", "grpc", "signal", "traces", "reason", "missing"))
		require.Equal(t, 2.0, sample(metrics, "cartograph_receiver_auth_failures_total", "transport", "http", "signal", "traces", "reason", "invalid"))

		deadline := time.Now().Add(10 * time.Second)
		for {
			code, body := viewer.get(t, "/api/v1/graph")
			require.Equal(t, 200, code, body)
			if strings.Contains(body, `"name":"checkout"`) && strings.Contains(body, `"name":"payments"`) {
				require.NotContains(t, body, "intruder", "refused spans never reach the graph")
				break
			}
			require.True(t, time.Now().Before(deadline), "accepted spans never reached the graph: %s", body)
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("api", func(t *testing.T) {
		for _, tc := range []struct {
			client *apiClient
			path   string
			code   int
		}{
			{anon, "/healthz", 200},
			{anon, "/readyz", 200},
			{anon, "/api/v1/graph", 401},
			{anon, "/api/v1/findings", 401},
			{anon, "/metrics", 401},
			{newAPIClient(base, wrongSecret, nil), "/api/v1/graph", 401},
			{newAPIClient(base, ingestSecretA, nil), "/api/v1/graph", 401},
			{viewer, "/api/v1/graph", 200},
			{viewer, "/api/v1/coupling", 200},
			{viewer, "/metrics", 200},
		} {
			t.Run(fmt.Sprintf("%s %s %d", tc.path, map[bool]string{true: "anonymous", false: "token"}[tc.client.token == ""], tc.code), func(t *testing.T) {
				resp, body := tc.client.do(t, http.MethodGet, tc.path, nil, nil)
				require.Equal(t, tc.code, resp.StatusCode, body)
				if tc.code == 401 {
					require.Contains(t, resp.Header.Get("WWW-Authenticate"), `Bearer realm="cartograph"`)
				}
			})
		}
		resp, _ := anon.do(t, http.MethodGet, "/api/v1/graph", http.Header{"Accept": {"text/html"}}, nil)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, "a browser is sent to the login page")
		require.Equal(t, "/login?next=%2Fapi%2Fv1%2Fgraph", resp.Header.Get("Location"))
	})

	t.Run("stream", func(t *testing.T) {
		wsURL := "ws://" + col.API.String() + "/api/v1/stream"
		_, resp, err := websocket.DefaultDialer.Dial(wsURL, nil)
		require.ErrorIs(t, err, websocket.ErrBadHandshake)
		require.Equal(t, 401, resp.StatusCode)

		readOne := func(hdr http.Header) {
			t.Helper()
			ws, _, err := websocket.DefaultDialer.Dial(wsURL, hdr)
			require.NoError(t, err)
			defer ws.Close()
			require.NoError(t, ws.SetReadDeadline(time.Now().Add(10*time.Second)))
			_, msg, err := ws.ReadMessage()
			require.NoError(t, err)
			require.NotEmpty(t, msg)
		}
		readOne(http.Header{"Authorization": {"Bearer " + viewerSecret}})

		// A browser logs in once; its session cookie opens the websocket.
		form := url.Values{"token": {viewerSecret}, "next": {"/api/v1/graph"}}
		login, _ := anon.do(t, http.MethodPost, "/login", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, strings.NewReader(form.Encode()))
		require.Equal(t, http.StatusSeeOther, login.StatusCode)
		cookies := login.Cookies()
		require.Len(t, cookies, 1)
		require.Equal(t, apiCookieName, cookies[0].Name)
		require.True(t, cookies[0].HttpOnly)
		require.Equal(t, http.SameSiteStrictMode, cookies[0].SameSite)
		readOne(http.Header{"Cookie": {cookies[0].Name + "=" + cookies[0].Value}})
	})

	t.Run("no secrets in logs", func(t *testing.T) {
		out := logs.String()
		require.Contains(t, out, "request refused", "refusals are logged (at debug)")
		for _, secret := range []string{ingestSecretA, ingestSecretB, viewerSecret, wrongSecret} {
			require.NotContains(t, out, secret)
		}
	})
}

func TestMutualTLSE2E(t *testing.T) {
	dir := t.TempDir()
	ca := authtest.NewCA(t, "cartograph test CA")
	srv := ca.Server(t, "collector")
	args := []string{
		"--tls-cert-file=" + authtest.WriteFile(t, dir, "tls.crt", srv.CertPEM),
		"--tls-key-file=" + authtest.WriteFile(t, dir, "tls.key", srv.KeyPEM),
		"--tls-client-ca-file=" + authtest.WriteFile(t, dir, "ca.crt", ca.PEM),
		"--api-tokens-file=" + authtest.WriteFile(t, dir, "api-tokens", []byte("viewer:"+viewerSecret+"\n")),
		"--open-metrics",
	}
	col, _ := startCollectorLogged(t, nil, args...)
	withCert := &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{ca.Client(t, "otel-collector").TLS(t)}}
	noCert := &tls.Config{RootCAs: ca.Pool()}
	otherCA := &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{authtest.NewCA(t, "other").Client(t, "x").TLS(t)}}

	t.Run("ingest", func(t *testing.T) {
		require.NoError(t, exportSpan(t, grpcExporterWith(t, col.OTLPGRPC.String(), nil, withCert), "checkout"))
		require.NoError(t, exportSpan(t, httpExporterWith(t, col.OTLPHTTP.String(), nil, withCert), "checkout"))
		for name, cfg := range map[string]*tls.Config{"no client certificate": noCert, "certificate of another CA": otherCA} {
			require.Error(t, exportSpan(t, grpcExporterWith(t, col.OTLPGRPC.String(), nil, cfg), "checkout"), name)
			require.Error(t, exportSpan(t, httpExporterWith(t, col.OTLPHTTP.String(), nil, cfg), "checkout"), name)
		}
		require.Error(t, exportSpan(t, grpcExporterWith(t, col.OTLPGRPC.String(), nil, nil), "checkout"), "plain text")
	})

	t.Run("api", func(t *testing.T) {
		base := "https://" + col.API.String()
		code, _ := newAPIClient(base, "", withCert).get(t, "/healthz")
		require.Equal(t, 200, code)
		code, body := newAPIClient(base, "", withCert).get(t, "/metrics")
		require.Equal(t, 200, code, "--open-metrics serves /metrics without a token")
		require.Equal(t, 2.0, sample(body, "cartograph_receiver_items_total", "transport", "grpc", "signal", "traces", "result", "accepted")+
			sample(body, "cartograph_receiver_items_total", "transport", "http", "signal", "traces", "result", "accepted"))
		code, _ = newAPIClient(base, "", withCert).get(t, "/api/v1/graph")
		require.Equal(t, 401, code, "a client certificate does not replace the viewer token")
		code, _ = newAPIClient(base, viewerSecret, withCert).get(t, "/api/v1/graph")
		require.Equal(t, 200, code)

		for name, cfg := range map[string]*tls.Config{"no client certificate": noCert, "certificate of another CA": otherCA} {
			c := newAPIClient(base, viewerSecret, cfg)
			req, err := http.NewRequest(http.MethodGet, base+"/healthz", nil)
			require.NoError(t, err)
			resp, err := c.http.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			require.Error(t, err, name)
		}
	})
}

func TestWarnExposed(t *testing.T) {
	tokens := func(t *testing.T, name string) string {
		return authtest.WriteFile(t, t.TempDir(), "tokens", []byte(name+":secret-0123456789abcdef\n"))
	}
	ca := authtest.NewCA(t, "ca")
	srv := ca.Server(t, "srv")
	dir := t.TempDir()
	tlsArgs := []string{
		"--tls-cert-file=" + authtest.WriteFile(t, dir, "c", srv.CertPEM),
		"--tls-key-file=" + authtest.WriteFile(t, dir, "k", srv.KeyPEM),
	}
	exposed := []string{"--otlp-grpc-addr=0.0.0.0:4317", "--otlp-http-addr=[::]:4318", "--api-addr=10.1.2.3:8070"}
	for _, tc := range []struct {
		name     string
		args     []string
		warned   []string // flags warned about
		clearTxt []string // flags noted for clear-text tokens
	}{
		{"loopback, nothing", nil, nil, nil},
		{"exposed, no auth", exposed, []string{"--otlp-grpc-addr", "--otlp-http-addr", "--api-addr"}, nil},
		{"exposed, ingest tokens", append([]string{"--ingest-tokens-file=" + tokens(t, "a")}, exposed...), []string{"--api-addr"}, []string{"--otlp-grpc-addr", "--otlp-http-addr"}},
		{"exposed, both tokens and TLS", append(append([]string{"--ingest-tokens-file=" + tokens(t, "a"), "--api-tokens-file=" + tokens(t, "b")}, tlsArgs...), exposed...), nil, nil},
		{"exposed, mutual TLS", append(append([]string{"--tls-client-ca-file=" + authtest.WriteFile(t, dir, "ca", ca.PEM)}, tlsArgs...), exposed...), nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseConfig(tc.args, func(string) string { return "" }, io.Discard)
			require.NoError(t, err)
			var out strings.Builder
			logger := slog.New(slog.NewTextHandler(&out, nil))
			sec, err := loadSecurity(cfg, logger)
			require.NoError(t, err)
			sec.warnExposed(cfg, logger)
			var warned, clear []string
			for line := range strings.Lines(out.String()) {
				flag := regexp.MustCompile(`flag=(\S+)`).FindStringSubmatch(line)
				require.NotNil(t, flag, line)
				switch {
				case strings.Contains(line, "level=WARN") && strings.Contains(line, "without authentication"):
					warned = append(warned, flag[1])
				case strings.Contains(line, "clear text"):
					clear = append(clear, flag[1])
				default:
					t.Fatalf("unexpected log line %q", line)
				}
			}
			require.ElementsMatch(t, tc.warned, warned)
			require.ElementsMatch(t, tc.clearTxt, clear)
		})
	}
}

func TestSecurityConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"cert without key", []string{"--tls-cert-file=x"}, nil, "go together"},
		{"client CA without cert", []string{"--tls-client-ca-file=x"}, nil, "needs --tls-cert-file"},
		{"missing tokens file", []string{"--api-tokens-file=" + dir + "/none"}, nil, "no such file"},
		{"bad token in env", nil, map[string]string{envIngestTokens: "team-a:tooshort"}, "shorter than"},
		{"empty tokens file", []string{"--ingest-tokens-file=" + authtest.WriteFile(t, dir, "empty", []byte("\n"))}, nil, "no tokens"},
		{"unreadable certificate", []string{"--tls-cert-file=" + dir + "/c", "--tls-key-file=" + dir + "/k"}, nil, "TLS certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err == nil {
				_, err = loadSecurity(cfg, slog.New(slog.DiscardHandler))
			}
			require.ErrorContains(t, err, tc.wantErr)
			require.NotContains(t, err.Error(), "tooshort", "errors never show a secret")
		})
	}
}
