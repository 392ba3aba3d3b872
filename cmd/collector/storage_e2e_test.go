package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sendAB posts n a->b calls over OTLP/HTTP JSON.
func sendAB(t *testing.T, col started, n int) {
	t.Helper()
	for i := range n {
		code, _, body := postOTLPJSON(t, col, otlpJSONTrace(fmt.Sprintf("%032x", time.Now().UnixNano()+int64(i))))
		require.Equal(t, http.StatusOK, code, string(body))
	}
}

func edgeRequests(t *testing.T, col started, path string) uint64 {
	t.Helper()
	code, _, body := httpGet(t, apiURL(col, path))
	require.Equal(t, http.StatusOK, code, string(body))
	var g wireGraph
	require.NoError(t, json.Unmarshal(body, &g), string(body))
	if e := g.edge("service:a", "service:b"); e != nil && e.Requests != nil {
		return *e.Requests
	}
	return 0
}

func storedEdgeRows(t *testing.T, col started) float64 {
	t.Helper()
	_, _, body := httpGet(t, apiURL(col, "/metrics"))
	v, ok := metricValue(string(body), `cartograph_storage_rows_total{kind="edge",outcome="written"}`)
	if !ok {
		return 0
	}
	var f float64
	_, _ = fmt.Sscan(v, &f)
	return f
}

// TestE2ERestartKeepsHistory: the embedded store brings the last window back
// after a restart, and answers history and diff queries.
func TestE2ERestartKeepsHistory(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--data-dir=" + dir, "--bucket=500ms", "--flush-interval=200ms", "--window=1m"}
	// Stored history begins on the minute of the oldest row (rollups start
	// on their minute), and the diff below reads "from" a second before
	// the first send: keep that second and the sends in one minute, or
	// "from" falls before stored history (404) on a slow machine.
	waitForSecondsIntoMinute(t, 2, 40)
	before := time.Now().UTC()
	ctx1, stop1 := context.WithCancel(context.Background())
	col1, done1 := runCollector(t, ctx1, args...)
	sendAB(t, col1, 10)
	require.Eventually(t, func() bool { return edgeRequests(t, col1, "/api/v1/graph") == 10 }, 10*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool { return storedEdgeRows(t, col1) > 0 }, 10*time.Second, 50*time.Millisecond, "buckets reach storage")
	stop1()
	require.NoError(t, <-done1)

	ctx2, stop2 := context.WithCancel(context.Background())
	t.Cleanup(stop2)
	col2, _ := runCollector(t, ctx2, args...)
	require.Equal(t, uint64(10), edgeRequests(t, col2, "/api/v1/graph"), "the live window is back after the restart")

	now := time.Now().UTC().Add(time.Second)
	at := now.Format(time.RFC3339Nano)
	require.Equal(t, uint64(10), edgeRequests(t, col2, "/api/v1/graph?at="+at+"&window=1m"), "history from storage")

	code, _, body := httpGet(t, apiURL(col2, "/api/v1/graph/diff?from="+before.Add(-time.Second).Format(time.RFC3339Nano)+"&to="+at+"&window=1m"))
	require.Equal(t, http.StatusOK, code, string(body))
	var d struct {
		AddedEdges []struct {
			ID string `json:"id"`
		} `json:"added_edges"`
		AddedNodes []struct {
			ID string `json:"id"`
		} `json:"added_nodes"`
	}
	require.NoError(t, json.Unmarshal(body, &d))
	require.Len(t, d.AddedEdges, 1)
	require.Equal(t, "service:a->service:b http", d.AddedEdges[0].ID)
	require.Len(t, d.AddedNodes, 2)
}

// waitForSecondsIntoMinute sleeps, if needed, until the clock's seconds
// within the minute are in [lo, hi].
func waitForSecondsIntoMinute(t *testing.T, lo, hi int) {
	t.Helper()
	now := time.Now()
	sec := now.Second()
	if sec >= lo && sec <= hi {
		return
	}
	next := now.Truncate(time.Minute).Add(time.Duration(lo) * time.Second)
	if sec > hi {
		next = next.Add(time.Minute)
	}
	time.Sleep(time.Until(next))
}

// runCollector runs the collector in-process until ctx is done, returning
// its addresses and a channel with run's result.
func runCollector(t *testing.T, ctx context.Context, extra ...string) (started, chan error) {
	t.Helper()
	args := append([]string{"--otlp-grpc-addr=127.0.0.1:0", "--otlp-http-addr=127.0.0.1:0", "--api-addr=127.0.0.1:0", "--ui-addr=", "--log-level=warn"}, extra...)
	cfg, err := parseConfig(args, func(string) string { return "" }, io.Discard)
	require.NoError(t, err)
	addrs := make(chan started, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, cfg, slog.New(slog.DiscardHandler), func(s started) { addrs <- s })
	}()
	select {
	case s := <-addrs:
		return s, done
	case err := <-done:
		t.Fatalf("collector did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("collector did not start within 10s")
	}
	return started{}, done
}

// TestHelperCollectorProcess is not a test: TestE2ESigkill runs the test
// binary with CARTOGRAPH_HELPER_ARGS set, and this runs the collector as
// that child process, printing its API and OTLP/HTTP addresses.
func TestHelperCollectorProcess(t *testing.T) {
	raw := os.Getenv("CARTOGRAPH_HELPER_ARGS")
	if raw == "" {
		t.Skip("only runs as the child of TestE2ESigkillKeepsFlushedHistory")
	}
	cfg, err := parseConfig(strings.Fields(raw), func(string) string { return "" }, io.Discard)
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	err = run(context.Background(), cfg, slog.New(slog.DiscardHandler), func(s started) {
		fmt.Printf("READY %s %s\n", s.API, s.OTLPHTTP)
	})
	fmt.Println("EXIT", err)
	os.Exit(0)
}

// TestE2ESigkillKeepsFlushedHistory kills the collector with SIGKILL while
// it writes, restarts it on the same data dir, and checks the store opens
// and holds what was flushed before the kill.
func TestE2ESigkillKeepsFlushedHistory(t *testing.T) {
	dir := t.TempDir()
	args := "--otlp-grpc-addr=127.0.0.1:0 --otlp-http-addr=127.0.0.1:0 --api-addr=127.0.0.1:0 --ui-addr= --log-level=warn " +
		"--bucket=500ms --flush-interval=200ms --window=1m --data-dir=" + dir
	start := func() (*exec.Cmd, started) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCollectorProcess$")
		cmd.Env = append(os.Environ(), "CARTOGRAPH_HELPER_ARGS="+args)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "READY" {
				api, err1 := net.ResolveTCPAddr("tcp", f[1])
				otlp, err2 := net.ResolveTCPAddr("tcp", f[2])
				require.NoError(t, err1)
				require.NoError(t, err2)
				go func() { _, _ = io.Copy(io.Discard, out) }()
				return cmd, started{API: api, OTLPHTTP: otlp}
			} else if len(f) > 0 && (f[0] == "ERROR" || f[0] == "EXIT") {
				t.Fatalf("child: %s", sc.Text())
			}
		}
		t.Fatal("child exited before it was ready")
		return nil, started{}
	}

	cmd, col := start()
	sendAB(t, col, 20)
	require.Eventually(t, func() bool { return storedEdgeRows(t, col) > 0 }, 10*time.Second, 50*time.Millisecond)
	// The buckets of all 20 close (500ms) and are flushed (200ms) well
	// within this; then keep writing and kill it mid-stream.
	time.Sleep(1500 * time.Millisecond)
	sendAB(t, col, 5)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()

	_, col2 := start()
	n := edgeRequests(t, col2, "/api/v1/graph")
	require.GreaterOrEqual(t, n, uint64(20), "everything flushed before the kill is back")
	require.LessOrEqual(t, n, uint64(25))
}
