package corpus_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
)

// freePorts returns n distinct free loopback ports.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	for _, ln := range lns {
		require.NoError(t, ln.Close())
	}
	return ports
}

// TestHotROD runs Jaeger's HotROD demo (frontend, customer, driver, route;
// a "mysql" tracer under customer and a "redis-manual" tracer under driver,
// each its own service.name) as a built binary exporting OTLP/HTTP to the
// test's cartograph, asks it to dispatch two cars, and asserts the exact
// edges of testdata/hotrod-graph.json.
func TestHotROD(t *testing.T) {
	bin := need.HotROD(t) // built by cmd/testenv from testdata/hotrod/go.mod
	e := newEnv(t)
	ports := freePorts(t, 4)
	frontend, customer, driver, route := ports[0], ports[1], ports[2], ports[3]

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "all",
		"--frontend-service-hostname=127.0.0.1", "-f", strconv.Itoa(frontend),
		"--customer-service-hostname=127.0.0.1", "-c", strconv.Itoa(customer),
		"--driver-service-hostname=127.0.0.1", "-d", strconv.Itoa(driver),
		"--route-service-hostname=127.0.0.1", "-r", strconv.Itoa(route),
		// The demo's "fixes": shorter simulated MySQL latency and a wider
		// route worker pool keep a dispatch well under a second; they change
		// timings only, not which spans are made.
		"--fix-db-query-delay=20ms", "--fix-route-worker-pool-size=10",
	)
	cmd.Env = append(os.Environ(),
		"OTEL_EXPORTER_OTLP_ENDPOINT="+e.httpEndpoint(),
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=",
	)
	logf, err := os.Create(filepath.Join(t.TempDir(), "hotrod.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("HotROD log (tail):\n%s", b)
		}
	})

	base := fmt.Sprintf("http://127.0.0.1:%d", frontend)
	waitHTTP(t, base+"/config", exited)
	for _, customerID := range []string{"123", "392"} {
		dispatch(t, base+"/dispatch?customer="+customerID)
	}

	// HotROD's batch span processors export every second (WithBatchTimeout
	// 1s); wait until every service has reported and the exporters have been
	// quiet for longer than that.
	want := []string{"frontend", "customer", "mysql", "driver", "redis-manual", "route"}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, by, last := e.sink.counts()
		all := true
		for _, s := range want {
			all = all && by[s] > 0
		}
		if all && time.Since(last) > 1500*time.Millisecond {
			t.Logf("spans by service: %v", by)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("HotROD did not report every service within 15s: %v", by)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.assertEdges(t, "hotrod")
}

// dispatch asks HotROD for a car. Its simulated Redis fails a few calls on
// purpose and a dispatch whose three retries all fail answers 500 (the spans
// are still there); the test tries again, up to three times, for a 200.
func dispatch(t *testing.T, url string) {
	t.Helper()
	var status int
	var body []byte
	for range 3 {
		resp, err := http.Get(url)
		require.NoError(t, err)
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if status = resp.StatusCode; status == http.StatusOK {
			return
		}
	}
	t.Fatalf("dispatch answered %d three times: %s", status, body)
}

// waitHTTP polls url until it answers 200, the process exits or 20 s pass.
func waitHTTP(t *testing.T, url string, exited <-chan error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("HotROD exited before serving: %v", errors.Join(err, errors.New("see its log")))
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("HotROD did not answer %s within 20s", url)
}
