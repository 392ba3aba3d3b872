package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
)

// wireBroker is one entry of GET /api/v1/brokers.
type wireBroker struct {
	Name        string     `json:"name"`
	Kind        string     `json:"kind"`
	LastSuccess *time.Time `json:"last_success"`
	LastError   string     `json:"last_error"`
	LastErrorAt *time.Time `json:"last_error_at"`
	Polls       int        `json:"polls"`
	Failures    int        `json:"failures"`
}

// down reports whether the broker's last poll failed: the signal a UI
// banner reads.
func (b wireBroker) down() bool {
	return b.LastErrorAt != nil && (b.LastSuccess == nil || b.LastErrorAt.After(*b.LastSuccess))
}

func getBroker(t *testing.T, col started) wireBroker {
	t.Helper()
	code, _, body := httpGet(t, apiURL(col, "/api/v1/brokers"))
	require.Equal(t, http.StatusOK, code, string(body))
	var resp struct {
		Brokers []wireBroker `json:"brokers"`
	}
	require.NoError(t, json.Unmarshal(body, &resp), string(body))
	require.Len(t, resp.Brokers, 1, string(body))
	return resp.Brokers[0]
}

func metricsText(t *testing.T, col started) string {
	t.Helper()
	code, _, body := httpGet(t, apiURL(col, "/metrics"))
	require.Equal(t, http.StatusOK, code)
	return string(body)
}

// brokerOutage checks one broker going away and coming back: the outage
// shows in /api/v1/brokers and in cartograph_broker_polls_total, the
// collector stays ready (ingest does not depend on a broker), and polling
// resumes by itself once the broker is back.
func brokerOutage(t *testing.T, col started, cut, restore func()) {
	t.Helper()
	require.Eventually(t, func() bool { b := getBroker(t, col); return b.LastSuccess != nil && !b.down() },
		20*time.Second, 100*time.Millisecond, "first successful poll")

	cut()
	require.Eventually(t, func() bool { return getBroker(t, col).down() }, 20*time.Second, 100*time.Millisecond, "the outage shows")
	b := getBroker(t, col)
	require.NotEmpty(t, b.LastError)
	require.Positive(t, b.Failures)
	require.Contains(t, metricsText(t, col), `cartograph_broker_polls_total{outcome="error",source="`+b.Name+`"}`)
	code, _, body := httpGet(t, apiURL(col, "/readyz"))
	require.Equal(t, http.StatusOK, code, "a broker outage does not stop ingest: %s", body)
	sendAB(t, col, 3) // and traces are still taken

	back := time.Now()
	restore()
	require.Eventually(t, func() bool {
		b := getBroker(t, col)
		return !b.down() && b.LastSuccess.After(back)
	}, 30*time.Second, 100*time.Millisecond, "polling resumes without a restart")
}

// TestE2EBrokerOutages takes each polled broker away while the collector
// runs and brings it back: RabbitMQ's management API behind a proxy the
// test cuts (the shared broker stays up for other tests), and a NATS server
// of the test's own, killed and restarted on the same ports.
func TestE2EBrokerOutages(t *testing.T) {
	t.Run("rabbitmq", func(t *testing.T) {
		rmq := need.RabbitMQ(t)
		mgmt := strings.TrimPrefix(rmq.Management, "http://")
		c, err := net.DialTimeout("tcp", mgmt, 2*time.Second)
		require.NoError(t, err, "RabbitMQ's management API must answer on %s", mgmt)
		c.Close()
		proxy := newTCPProxy(t, mgmt)
		addr := proxy.ln.Addr().String()
		col := startCollectorEnv(t, map[string]string{"CARTOGRAPH_RABBITMQ_PASSWORD": rmq.Password},
			"--rabbitmq-url=http://"+addr, "--rabbitmq-user="+rmq.User, "--broker-poll-interval=300ms")
		brokerOutage(t, col, proxy.close, func() { newTCPProxyAt(t, addr, mgmt) })
	})
	t.Run("nats", func(t *testing.T) {
		bin := need.NATSServer(t)
		dir := t.TempDir()
		ports := freePorts(t, 2)
		mon := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
		start := func() *exec.Cmd {
			cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(ports[0]), "-m", strconv.Itoa(ports[1]),
				"-js", "-sd", filepath.Join(dir, "js"))
			require.NoError(t, cmd.Start(), "nats-server")
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			require.Eventually(t, func() bool {
				resp, err := http.Get(mon + "/healthz?js-enabled-only=true")
				if err != nil {
					return false
				}
				resp.Body.Close()
				return resp.StatusCode == http.StatusOK
			}, 10*time.Second, 50*time.Millisecond, "nats-server ready")
			return cmd
		}
		server := start()
		col := startCollector(t, "--nats-monitor-url="+mon, "--broker-poll-interval=300ms")
		brokerOutage(t, col, func() {
			require.NoError(t, server.Process.Signal(syscall.SIGKILL))
			_ = server.Wait()
		}, func() { server = start() })
	})
}

// freePorts returns n ports free at the time of the call.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// TestE2EClickHouseOutageBufferFull: ClickHouse stays away longer than the
// buffer lasts. While it buffers, the collector is ready and takes traces;
// once the buffer is full /readyz answers 503 with the storage error in its
// JSON, OTLP senders are told to retry (503 with Retry-After), dropped rows
// are counted; when ClickHouse is back it writes again and becomes ready,
// without a restart.
func TestE2EClickHouseOutageBufferFull(t *testing.T) {
	db := clickhouseDB(t)
	proxy := newTCPProxy(t, chTCP)
	addr := proxy.ln.Addr().String()
	col := startCollector(t, "--storage=clickhouse", "--clickhouse-dsn=clickhouse://"+addr+"/"+db,
		"--bucket=200ms", "--flush-interval=100ms", "--window=1m", "--storage-buffer=20")
	sendAB(t, col, 5)
	require.Eventually(t, func() bool { return storedEdgeRows(t, col) > 0 }, 10*time.Second, 50*time.Millisecond)

	proxy.close()
	cutAt := time.Now()
	var refusedAt time.Time
	var retryAfter string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		code, hdr, _ := postOTLPJSON(t, col, otlpJSONTrace(fmt.Sprintf("%032x", time.Now().UnixNano())))
		if code == http.StatusServiceUnavailable {
			refusedAt, retryAfter = time.Now(), hdr.Get("Retry-After")
			break
		}
		require.Equal(t, http.StatusOK, code)
		time.Sleep(50 * time.Millisecond)
	}
	require.False(t, refusedAt.IsZero(), "the buffer filled and senders were pushed back")
	require.NotEmpty(t, retryAfter)

	code, _, body := httpGet(t, apiURL(col, "/readyz"))
	require.Equal(t, http.StatusServiceUnavailable, code)
	var ready struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	require.NoError(t, json.Unmarshal(body, &ready), string(body))
	require.Equal(t, "not ready", ready.Status)
	require.Contains(t, ready.Error, "storage", "the reason is readable by the UI: %s", body)
	m := metricsText(t, col)
	require.Contains(t, m, `cartograph_storage_batches_total{outcome="error"}`)
	v, _ := metricValue(m, "cartograph_storage_buffered_rows")
	t.Logf("buffer full after %v: /readyz %q; buffered rows %s", refusedAt.Sub(cutAt).Round(time.Millisecond), ready.Error, v)

	newTCPProxyAt(t, addr, chTCP)
	require.Eventually(t, func() bool {
		code, _, _ := httpGet(t, apiURL(col, "/readyz"))
		return code == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "ready again once storage is back")
	before := edgeRequests(t, col, "/api/v1/graph?window=5m&at="+time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano))
	sendAB(t, col, 7)
	require.Eventually(t, func() bool {
		at := time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)
		return edgeRequests(t, col, "/api/v1/graph?window=5m&at="+at) >= before+7
	}, 20*time.Second, 200*time.Millisecond, "it writes again without a restart")
}
