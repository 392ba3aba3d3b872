package main

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// storageArgs are the flags of each storage backend for crash tests.
func storageArgs(t *testing.T, backend string) []string {
	t.Helper()
	if backend == "clickhouse" {
		return []string{"--storage=clickhouse", "--clickhouse-dsn=clickhouse://" + chTCP + "/" + clickhouseDB(t), "--collector-id=crash"}
	}
	return []string{"--data-dir=" + t.TempDir()}
}

// TestE2ESigkillDuringWrites kills the collector with SIGKILL while it
// receives and writes, with each storage backend, restarts it on the same
// storage, and checks that the store opens and holds everything flushed
// before the kill: the live window and history are back, with at most what
// arrived after the last flush missing, and nothing counted twice.
func TestE2ESigkillDuringWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	bin := buildCollector(t)
	for _, backend := range []string{"embedded", "clickhouse"} {
		t.Run(backend, func(t *testing.T) {
			args := append(storageArgs(t, backend), "--bucket=500ms", "--flush-interval=200ms", "--window=1m")
			p := startProcess(t, bin, args...)
			sendAB(t, p.started, 20)
			require.Eventually(t, func() bool { return storedEdgeRows(t, p.started) > 0 }, 10*time.Second, 50*time.Millisecond)
			time.Sleep(1500 * time.Millisecond) // the buckets of all 20 close (500ms) and are flushed (200ms)
			// Keep writing while it dies.
			stop := make(chan struct{})
			sent := make(chan int)
			go func() {
				n := 0
				defer func() { sent <- n }()
				for {
					select {
					case <-stop:
						return
					default:
					}
					code, _, _ := postOTLPJSONNoFail(p.started, otlpJSONTrace(fmt.Sprintf("%032x", time.Now().UnixNano())))
					if code != http.StatusOK {
						return
					}
					n++
				}
			}()
			time.Sleep(1200 * time.Millisecond) // some of these are flushed, some not
			p.stop(t, syscall.SIGKILL, 5*time.Second)
			close(stop)
			during := <-sent
			require.Equal(t, -1, p.exitCode(), "killed, not exited")

			p2 := startProcess(t, bin, args...)
			live := edgeRequests(t, p2.started, "/api/v1/graph")
			at := time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)
			stored := edgeRequests(t, p2.started, "/api/v1/graph?window=5m&at="+at)
			t.Logf("%s: 20 calls flushed, %d more accepted while it was killed; after restart: live %d, stored %d", backend, during, live, stored)
			require.GreaterOrEqual(t, live, uint64(20), "everything flushed before the kill is back")
			require.LessOrEqual(t, live, uint64(20+during), "nothing counted twice")
			require.GreaterOrEqual(t, stored, uint64(20))
			require.LessOrEqual(t, stored, uint64(20+during))

			// The store takes writes again.
			sendAB(t, p2.started, 5)
			require.Eventually(t, func() bool {
				return edgeRequests(t, p2.started, "/api/v1/graph?window=5m&at="+time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)) >= stored+5
			}, 15*time.Second, 200*time.Millisecond)
		})
	}
}

// TestE2ESigtermFlushesAndExits: on SIGTERM the collector stops taking
// traffic, writes everything it accepted (the bucket still open included)
// and exits 0 within a bound; a restart finds all of it.
func TestE2ESigtermFlushesAndExits(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	bin := buildCollector(t)
	for _, backend := range []string{"embedded", "clickhouse"} {
		t.Run(backend, func(t *testing.T) {
			// A long flush interval and bucket: only the shutdown can have
			// written the calls.
			args := append(storageArgs(t, backend), "--bucket=2s", "--flush-interval=1m", "--window=1m")
			p := startProcess(t, bin, args...)
			sendAB(t, p.started, 30)
			took := p.stop(t, syscall.SIGTERM, sigtermBound)
			require.Equal(t, 0, p.exitCode(), "a clean exit")
			t.Logf("%s: exited %v after SIGTERM", backend, took.Round(time.Millisecond))

			p2 := startProcess(t, bin, args...)
			require.Equal(t, uint64(30), edgeRequests(t, p2.started, "/api/v1/graph"), "every accepted call was written at shutdown")
			at := time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)
			require.Equal(t, uint64(30), edgeRequests(t, p2.started, "/api/v1/graph?window=5m&at="+at))
		})
	}
}

// sigtermBound is how long the collector may take to exit after SIGTERM:
// the open bucket to close (--bucket, 2s here), a final flush, listeners
// closed. The shutdown itself is bounded to 10s plus one bucket.
const sigtermBound = 15 * time.Second

// postOTLPJSONNoFail posts an OTLP/HTTP JSON body without failing the test
// on a connection error (the collector may be gone); code 0 means no answer.
func postOTLPJSONNoFail(col started, body string) (int, []byte, error) {
	resp, err := testClient.Post("http://"+col.OTLPHTTP.String()+"/v1/traces", "application/json", strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, nil, nil
}
