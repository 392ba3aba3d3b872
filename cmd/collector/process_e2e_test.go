package main

// The collector as a real process: built from this package, started with
// flags, read from /proc, signalled. Used by the overload, crash and
// outage tests, which need what an in-process collector cannot give: its
// own RSS, a SIGKILL, a SIGTERM handled by main.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// buildCollector builds the collector binary into a temporary directory
// removed when the test ends.
func buildCollector(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "collector")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// syncBuffer is a bytes.Buffer safe for one writer and many readers.
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

// proc is a collector process.
type proc struct {
	started
	cmd    *exec.Cmd
	log    *syncBuffer // everything it wrote to stderr
	done   chan struct{}
	state  *os.ProcessState
	waitMu sync.Mutex
}

// startProcess runs bin with args (listeners on loopback port 0 unless
// args say otherwise) and waits until it logs every address it bound. The
// process is killed when the test ends if it still runs.
func startProcess(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	return startProcessEnv(t, bin, nil, args...)
}

// startProcessEnv is startProcess with env added to the process's
// environment.
func startProcessEnv(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	args = append([]string{"--otlp-grpc-addr=127.0.0.1:0", "--otlp-http-addr=127.0.0.1:0", "--api-addr=127.0.0.1:0", "--ui-addr=127.0.0.1:0", "--log-level=info"}, args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), "GOTRACEBACK=all"), env...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, log: &syncBuffer{}, done: make(chan struct{})}
	addrs := make(chan [3]string, 1)
	go func() {
		var a [3]string
		sent := false
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.log, line)
			if sent {
				continue
			}
			for i, msg := range []string{`msg="api listening"`, `msg="otlp grpc listening"`, `msg="otlp http listening"`} {
				if strings.Contains(line, msg) {
					a[i] = logField(line, "addr")
				}
			}
			if a[0] != "" && a[1] != "" && a[2] != "" {
				addrs <- a
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		p.waitMu.Lock()
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		p.waitMu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("collector log (last 4 KiB):\n%s", tail(p.log.String(), 4096))
		}
	})
	select {
	case a := <-addrs:
		p.API, p.OTLPGRPC, p.OTLPHTTP = tcpAddr(t, a[0]), tcpAddr(t, a[1]), tcpAddr(t, a[2])
		return p
	case <-p.done:
		t.Fatalf("collector exited before it was ready: %s", p.log.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("collector not ready within 30s: %s", p.log.String())
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func tcpAddr(t *testing.T, s string) net.Addr {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp", s)
	require.NoError(t, err)
	return a
}

// logField returns the value of key in a logfmt line.
func logField(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return strings.Trim(v, `"`)
}

// alive reports whether the process is still running.
func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// statusKB reads a field of /proc/<pid>/status in KiB (VmRSS, VmHWM).
func (p *proc) statusKB(field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return -1
}

// signal sends sig and returns how long the process took to exit, failing
// the test if it takes longer than within.
func (p *proc) stop(t *testing.T, sig syscall.Signal, within time.Duration) time.Duration {
	t.Helper()
	t0 := time.Now()
	require.NoError(t, p.cmd.Process.Signal(sig))
	select {
	case <-p.done:
		return time.Since(t0)
	case <-time.After(within):
		t.Fatalf("collector still running %v after %v", within, sig)
	}
	return 0
}

// exitCode is the process's exit code once it has exited (-1 if killed by
// a signal).
func (p *proc) exitCode() int {
	<-p.done
	p.waitMu.Lock()
	defer p.waitMu.Unlock()
	return p.state.ExitCode()
}
