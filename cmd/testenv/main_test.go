package main

import (
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
)

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

// build compiles testenv into a temporary directory. The tests run it with
// -only redis: Redis starts in a fraction of a second. They run under
// testenv, which has installed redis-server (need.Redis tells them so).
func build(t *testing.T) string {
	t.Helper()
	need.Redis(t)
	bin := filepath.Join(t.TempDir(), "testenv")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

// testenvCmd is testenv with args, run from the repository root, its
// stderr in a buffer. The test's own CARTOGRAPH_TEST_REDIS is removed, so
// that testenv starts a Redis of its own.
func testenvCmd(bin string, args ...string) (*exec.Cmd, *syncBuffer) {
	cmd := exec.Command(bin, append([]string{"-install=false", "-only=redis"}, args...)...)
	cmd.Dir = "../.."
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, need.EnvRedis+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	return cmd, &stderr
}

var serverDir = regexp.MustCompile(`in (/\S+/cartograph-test-redis-\d+)\)`)

// assertGone checks that nothing listens on addr and dir is removed.
func assertGone(t *testing.T, addr, dir string) {
	t.Helper()
	_, err := net.DialTimeout("tcp", addr, time.Second)
	assert.Error(t, err, "Redis at %s stopped", addr)
	assert.NoDirExists(t, dir)
}

// TestRunsCommandAndStops: the command gets the server's address, its exit
// status is testenv's, and after it the server is stopped and its
// directory removed.
func TestRunsCommandAndStops(t *testing.T) {
	bin := build(t)
	out := filepath.Join(t.TempDir(), "addr")
	cmd, stderr := testenvCmd(bin, "--", "sh", "-c", `echo "$`+need.EnvRedis+`" > `+out+`; exit 3`)
	err := cmd.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "%s", stderr)
	assert.Equal(t, 3, ee.ExitCode(), "%s", stderr)

	b, err := os.ReadFile(out)
	require.NoError(t, err)
	addr := strings.TrimSpace(string(b))
	require.Regexp(t, `^127\.0\.0\.1:\d+$`, addr)
	log := stderr.String()
	assert.Contains(t, log, "testenv: redis        Redis ")
	assert.Contains(t, log, "testenv: stopped redis")
	m := serverDir.FindStringSubmatch(log)
	require.NotNil(t, m, "%s", log)
	assertGone(t, addr, m[1])
}

// TestSignalStopsAll: SIGTERM to testenv while the command runs is passed
// on to the command; testenv then stops the server and exits 128+15.
func TestSignalStopsAll(t *testing.T) {
	bin := build(t)
	out := filepath.Join(t.TempDir(), "addr")
	cmd, stderr := testenvCmd(bin, "--", "sh", "-c", `echo "$`+need.EnvRedis+`" > `+out+`.tmp; mv `+out+`.tmp `+out+`; exec sleep 60`)
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	require.Eventually(t, func() bool { _, err := os.Stat(out); return err == nil }, time.Minute, 20*time.Millisecond, "%s", stderr)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	addr := strings.TrimSpace(string(b))

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-done:
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "%s", stderr)
		assert.Equal(t, 128+int(syscall.SIGTERM), ee.ExitCode())
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("testenv did not exit within 30 s of SIGTERM:\n%s", stderr)
	}
	log := stderr.String()
	assert.Contains(t, log, "passing it on to the command")
	m := serverDir.FindStringSubmatch(log)
	require.NotNil(t, m, "%s", log)
	assertGone(t, addr, m[1])
}

// TestStartFailureNamesServer: a server that does not answer in time is
// named with why and its log; the command does not run and testenv exits 1.
func TestStartFailureNamesServer(t *testing.T) {
	bin := build(t)
	marker := filepath.Join(t.TempDir(), "ran")
	cmd, stderr := testenvCmd(bin, "-start-timeout=1ns", "--", "touch", marker)
	err := cmd.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "%s", stderr)
	assert.Equal(t, 1, ee.ExitCode())
	log := stderr.String()
	assert.Contains(t, log, "testenv: redis: Redis did not start: no answer within 1ns")
	assert.NoFileExists(t, marker, "the command did not run")
	m := regexp.MustCompile(`--- last lines of (\S+)/redis.log ---`).FindStringSubmatch(log)
	require.NotNil(t, m, "%s", log)
	assert.NoDirExists(t, m[1], "its directory is removed")
}

// TestUsage: no command is a usage error; an unknown component is named.
func TestUsage(t *testing.T) {
	_, err := parseFlags(nil, io.Discard)
	assert.EqualError(t, err, "no command given")
	_, err = components("redis,kafka")
	assert.EqualError(t, err, `-only: no component "kafka"`)
	c, err := parseFlags([]string{"-only=redis", "--", "go", "test", "-run", "X"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, []string{"go", "test", "-run", "X"}, c.command)
}
