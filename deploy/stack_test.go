package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
	"github.com/seed-a49a8342/cartograph/deploy/composetest"
)

// TestComposeStack runs the cartograph services of docker-compose.yaml as
// plain processes, with the commands, environment and health checks the
// file gives them: only the addresses are rewritten (free loopback ports
// instead of container names and fixed ports, the test ClickHouse and a
// fresh database instead of the clickhouse service). The schema migrates,
// both collectors and the UI pass their health checks, the demo load is
// accepted, its edges and broker lag reach ClickHouse, exactly one of the
// two collectors (both judge candidates) judges, both serve the merged
// graph, and the UI answers. The OpenTelemetry Collector is not run: the load goes
// to collector-1 directly.
func TestComposeStack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the collectors, the UI and ClickHouse")
	}
	c := loadCompose(t)
	bin := binaries(t)
	chAddr := startClickHouse(t)
	db := fmt.Sprintf("cartograph_deploy_%d_%d", os.Getpid(), time.Now().UnixNano())
	conn, err := ch.Open(&ch.Options{Addr: []string{chAddr}})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+db+"` SYNC")
		conn.Close()
	})

	// Where each service's listeners really are: service -> container port
	// -> host:port here.
	addrs := map[string]map[string]string{}
	port := func(svc, containerPort string) string {
		if addrs[svc] == nil {
			addrs[svc] = map[string]string{}
		}
		if a, ok := addrs[svc][containerPort]; ok {
			return a
		}
		a := freeAddr(t)
		addrs[svc][containerPort] = a
		return a
	}
	// rewrite maps an address as one container sees it (service:port, or
	// 0.0.0.0:port for a listener of svc itself) to this machine.
	rewrite := func(svc, v string) string {
		u, err := url.Parse(v)
		if err == nil && u.Scheme == "http" {
			host, p, err := net.SplitHostPort(u.Host)
			require.NoError(t, err)
			u.Host = port(host, p)
			return u.String()
		}
		host, p, err := net.SplitHostPort(v)
		if err != nil {
			return v
		}
		if host == "0.0.0.0" {
			return port(svc, p)
		}
		if _, ok := c.Services[host]; ok {
			return port(host, p)
		}
		return v
	}
	args := func(svc string) []string {
		s := c.Services[svc]
		var out []string
		for i := 0; i < len(s.Command); i++ {
			a := s.Command[i]
			name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
			switch {
			case !strings.HasPrefix(a, "-"):
				out = append(out, rewrite(svc, a))
			case hasVal:
				out = append(out, "--"+name+"="+rewrite(svc, val))
			default:
				out = append(out, a)
			}
		}
		return out
	}
	env := func(svc string) []string {
		e := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		for k, v := range composetest.Env(c.Services[svc]) {
			if k == "CARTOGRAPH_CLICKHOUSE_DSN" {
				u, err := url.Parse(v)
				require.NoError(t, err)
				host, p, _ := net.SplitHostPort(u.Host)
				require.Equal(t, "clickhouse", host)
				require.Equal(t, "9000", p, "the native protocol port of the clickhouse service")
				v = "clickhouse://" + chAddr + "/" + db
			}
			if strings.HasPrefix(k, "CARTOGRAPH_") {
				e = append(e, k+"="+v)
			}
		}
		return e
	}

	// migrate: a one-shot job that must exit 0.
	mig := exec.Command(filepath.Join(bin, "collector"), args("migrate")...)
	mig.Env, mig.Dir = env("migrate"), t.TempDir()
	out, err := mig.CombinedOutput()
	require.NoError(t, err, "migrate: %s", out)

	start := func(svc string) {
		s := c.Services[svc]
		cmd := exec.Command(filepath.Join(bin, composetest.Binary(s)), args(svc)...)
		cmd.Env, cmd.Dir = env(svc), t.TempDir()
		var log syncBuffer
		cmd.Stdout, cmd.Stderr = &log, &log
		require.NoError(t, cmd.Start(), svc)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			if t.Failed() {
				t.Logf("%s log:\n%s", svc, log.String())
			}
		})
		// Its health check, against where it listens here.
		hc := s.HealthCheck.Test
		require.Equal(t, "wget", hc[1], svc)
		u, err := url.Parse(hc[len(hc)-1])
		require.NoError(t, err)
		_, p, _ := net.SplitHostPort(u.Host)
		u.Host = port(svc, p)
		deadline := time.Now().Add(60 * time.Second)
		for {
			resp, err := http.Get(u.String())
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
			select {
			case <-done:
				t.Fatalf("%s exited before its health check passed:\n%s", svc, log.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: health check %s not passing after 60s (%v):\n%s", svc, u, err, log.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	start("collector-1")
	start("collector-2")
	start("ui")

	// The demo load, for a few seconds, into collector-1 (the OpenTelemetry
	// Collector it goes through in compose is not run here).
	addrs["otel-collector"] = map[string]string{"4317": port("collector-1", "4317")}
	lg := args("loadgen")
	for i, a := range lg {
		if a == "8760h" {
			lg[i] = "3s"
		}
	}
	cmd := exec.Command(filepath.Join(bin, "loadgen"), lg...)
	cmd.Env = env("loadgen")
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "loadgen: %s", out)
	require.Contains(t, string(out), "failed=0")

	api := func(svc, path string) []byte {
		resp, err := http.Get("http://" + port(svc, "8070") + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s %s: %s", svc, path, b)
		return b
	}
	// Both collectors are judge candidates (--detect merged): the judge's
	// lease elects exactly one. Both serve the merged graph
	// (--serve-merged): every collector's flushed share, settled a bucket
	// and a flush behind now; so collector-2 shows the edges of the load
	// only collector-1 received, whichever judges.
	judges := func() (n int) {
		for _, svc := range []string{"collector-1", "collector-2"} {
			if v, ok := metricLine(string(api(svc, "/metrics")), "cartograph_judge"); ok && v == "1" {
				n++
			}
		}
		return n
	}
	require.Eventually(t, func() bool { return judges() == 1 }, 30*time.Second, 250*time.Millisecond, "exactly one collector judges")
	for _, svc := range []string{"collector-1", "collector-2"} {
		require.Eventually(t, func() bool {
			var g struct {
				Edges []json.RawMessage `json:"edges"`
			}
			require.NoError(t, json.Unmarshal(api(svc, "/api/v1/graph?window=60s"), &g))
			return len(g.Edges) > 0
		}, 45*time.Second, 500*time.Millisecond, "%s shows no edges of the load", svc)
	}
	require.Equal(t, 1, judges(), "still exactly one judge")

	// The closed buckets reach the shared ClickHouse (flush every 5s).
	deadline := time.Now().Add(45 * time.Second)
	for {
		var n uint64
		err := conn.QueryRow(context.Background(), "SELECT count() FROM `"+db+"`.edge_buckets WHERE collector = 'collector-1'").Scan(&n)
		if err == nil && n > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "no edge buckets of collector-1 in ClickHouse after 45s (%v)", err)
		time.Sleep(500 * time.Millisecond)
	}
	// The scenario's broker metrics became lag samples in ClickHouse (what
	// the consumer-lag dashboard reads).
	for {
		var n uint64
		err := conn.QueryRow(context.Background(), "SELECT count() FROM `"+db+"`.lag_samples").Scan(&n)
		if err == nil && n > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "no lag samples in ClickHouse after 45s (%v)", err)
		time.Sleep(500 * time.Millisecond)
	}
	// collector-1 serves its share of the graph as Grafana's service
	// graph series (--grafana-service-graph-metrics), for Prometheus.
	require.Eventually(t, func() bool {
		return strings.Contains(string(api("collector-1", "/metrics")), "traces_service_graph_request_total{")
	}, 20*time.Second, 500*time.Millisecond, "collector-1 serves no traces_service_graph_request_total")
	// Both serve the findings the judge stores.
	require.Contains(t, string(api("collector-2", "/api/v1/findings?state=all")), "findings")
	require.Contains(t, string(api("collector-1", "/api/v1/findings?state=all")), "findings")
	// The UI draws collector-1's graph (it reads it every --refresh).
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + port("ui", "8080") + "/")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK && strings.Contains(string(b), `data-name="gateway"`)
	}, 20*time.Second, 250*time.Millisecond, "the UI's map page shows the scenario's gateway")
}

// startClickHouse returns the native address of the test ClickHouse
// (cmd/testenv's, or CARTOGRAPH_TEST_CLICKHOUSE).
// metricLine returns the value of the unlabelled series name in a
// Prometheus text exposition.
func metricLine(exposition, name string) (string, bool) {
	for l := range strings.Lines(exposition) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), name+" "); ok {
			return v, true
		}
	}
	return "", false
}

func startClickHouse(t *testing.T) string {
	t.Helper()
	native, _ := need.ClickHouse(t)
	return native
}

// freeAddr returns a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// syncBuffer is a bytes.Buffer safe for a process writing while a test
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
