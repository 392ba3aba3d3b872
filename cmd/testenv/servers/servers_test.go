package servers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
)

// testLog is an io.Writer into t.Log, one call per write.
type testLog struct {
	mu sync.Mutex
	t  *testing.T
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// testEnv is an Env that installs nothing, on the cache cmd/testenv
// filled: these tests run under it, which has installed every program and
// made every download and build already.
func testEnv(t *testing.T) *Env {
	t.Helper()
	cache := os.Getenv("CARTOGRAPH_CACHE")
	if cache == "" {
		t.Fatalf("needs the cache cmd/testenv fills (CARTOGRAPH_CACHE is unset): run the tests as `%s`", need.TestCommand)
	}
	return &Env{Cache: cache, Root: "../../..", Log: &testLog{t: t}, Install: false, Apt: &Apt{},
		StartTimeout: 3 * time.Minute, StopTimeout: 30 * time.Second}
}

// TestServersStartAnswerStop starts each server as cmd/testenv does,
// checks that it answers at the addresses in its variables, stops it, and
// checks that its ports are closed, its processes gone and its directory
// removed. It also shows that none of them collides with a system server
// on the usual ports (RabbitMQ on 5672, PostgreSQL on 5432, ...).
func TestServersStartAnswerStop(t *testing.T) {
	env := testEnv(t)
	for _, tc := range []struct {
		comp   Component
		answer func(t *testing.T, vars map[string]string)
	}{
		{&ClickHouse{}, func(t *testing.T, vars map[string]string) {
			body, err := httpGet(t.Context(), "http://"+vars[need.EnvClickHouseHTTP]+"/?query=SELECT%20version()", "", "")
			require.NoError(t, err)
			assert.True(t, strings.HasPrefix(body, "26.7."), "version %q", body)
			require.NoError(t, dialable(t.Context(), vars[need.EnvClickHouse]))
		}},
		{&ClickHouseCluster{}, func(t *testing.T, vars map[string]string) {
			name, nodes, ok := strings.Cut(vars[need.EnvClickHouseCluster], "/")
			require.True(t, ok)
			assert.Equal(t, ClusterName, name)
			for _, n := range strings.Split(nodes, ",") {
				require.NoError(t, dialable(t.Context(), n)) // each saw both in system.clusters before Start returned
			}
		}},
		{&RabbitMQ{}, func(t *testing.T, vars map[string]string) {
			conn, err := amqp.Dial(vars[need.EnvRabbitMQAMQP])
			require.NoError(t, err)
			require.NoError(t, conn.Close())
			u, err := url.Parse(vars[need.EnvRabbitMQMgmt])
			require.NoError(t, err)
			pw, _ := u.User.Password()
			body, err := httpGet(t.Context(), "http://"+u.Host+"/api/overview", u.User.Username(), pw)
			require.NoError(t, err)
			// Statistics every second, kept a minute (rabbitmqConf).
			assert.Contains(t, body, `"sample_retention_policies":{"global":[60],"basic":[60],"detailed":[60]}`)
		}},
		{&Redis{}, func(t *testing.T, vars map[string]string) {
			v, err := redisVersion(t.Context(), vars[need.EnvRedis])
			require.NoError(t, err)
			assert.NotEmpty(t, v)
		}},
		{&Postgres{}, func(t *testing.T, vars map[string]string) {
			conn, err := pgx.Connect(t.Context(), vars[need.EnvPostgres])
			require.NoError(t, err)
			defer conn.Close(context.Background())
			var n int
			require.NoError(t, conn.QueryRow(t.Context(), "SELECT 1 + 1").Scan(&n))
			assert.Equal(t, 2, n)
		}},
	} {
		t.Run(tc.comp.Name(), func(t *testing.T) {
			t.Parallel()
			for _, tool := range tc.comp.Tools() {
				_, err := tool.Find()
				require.NoError(t, err, "cmd/testenv installs it")
			}
			require.NoError(t, tc.comp.Prepare(t.Context(), env))
			s, err := tc.comp.Start(t.Context(), env)
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Stop() })
			t.Logf("%s (%v)", s.Summary, s.Took)

			vars := map[string]string{}
			var names []string
			for _, v := range s.Vars {
				vars[v.Name] = v.Value
				names = append(names, v.Name)
			}
			assert.Equal(t, tc.comp.Vars(), names, "Vars() names what Start sets, in order")
			require.DirExists(t, s.Dir)
			tc.answer(t, vars)

			addrs := listening(t, s)
			require.NotEmpty(t, addrs)
			for _, a := range addrs {
				require.NoError(t, dialable(t.Context(), a), "listens on %s before Stop", a)
			}
			require.NoError(t, s.Stop())
			for _, p := range s.procs {
				assert.True(t, p.exited(), "%s exited", p.name)
			}
			for _, a := range addrs {
				assert.Error(t, dialable(t.Context(), a), "nothing listens on %s after Stop", a)
			}
			assert.NoDirExists(t, s.Dir)
			require.NoError(t, s.Stop(), "a second Stop does nothing")
		})
	}
}

// listening returns the loopback host:port addresses in s's variables.
func listening(t *testing.T, s *Server) []string {
	var addrs []string
	for _, v := range s.Vars {
		a := v.Value
		if _, list, ok := strings.Cut(a, "/"); ok && !strings.Contains(a, "://") {
			addrs = append(addrs, strings.Split(list, ",")...) // a cluster's nodes
			continue
		}
		if u, err := url.Parse(a); err == nil && u.Host != "" {
			a = u.Host
		}
		if _, _, err := net.SplitHostPort(a); err == nil {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// TestProgramsFound: the programs the tests run themselves are found and
// run; their variables are their paths.
func TestProgramsFound(t *testing.T) {
	env := testEnv(t)
	for _, c := range []Component{&NATSServer{}, &Chromium{}, &Alertmanager{}, &HotROD{}, &OtelcolLB{}} {
		t.Run(c.Name(), func(t *testing.T) {
			require.NoError(t, c.Prepare(t.Context(), env), "cmd/testenv built it already: nothing to do")
			s, err := c.Start(t.Context(), env)
			require.NoError(t, err)
			require.Len(t, s.Vars, 1)
			assert.Equal(t, c.Vars()[0], s.Vars[0].Name)
			assert.NoError(t, executable(s.Vars[0].Value))
			assert.Empty(t, s.procs, "nothing left running")
			require.NoError(t, s.Stop())
		})
	}
}

// TestStartFailureSaysWhy: a server that exits before it answers is named,
// with why and its log's last lines; one that never answers times out.
func TestStartFailureSaysWhy(t *testing.T) {
	dir := t.TempDir()
	p, err := startProc("broken", exec.Command("sh", "-c", "echo one; echo 'bind: Address already in use'; exit 3"), dir+"/broken.log")
	require.NoError(t, err)
	err = errStart("Broken", p, waitReady(t.Context(), 10*time.Second, p, func(context.Context) error { return errors.New("no") }))
	require.ErrorIs(t, err, errPortTaken)
	assert.Contains(t, err.Error(), "Broken did not start: a port was taken: exited: exit status 3")
	assert.Contains(t, err.Error(), "--- last lines of "+dir+"/broken.log ---\none\nbind: Address already in use")

	p, err = startProc("silent", exec.Command("sleep", "60"), dir+"/silent.log")
	require.NoError(t, err)
	t0 := time.Now()
	err = waitReady(t.Context(), 300*time.Millisecond, p, func(context.Context) error { return errors.New("refused") })
	assert.EqualError(t, err, "no answer within 300ms (last: refused)")
	assert.Less(t, time.Since(t0), 3*time.Second)
	require.NoError(t, p.stop(5*time.Second))
	assert.True(t, p.exited())
}

// TestStopKillsWhatIgnoresSIGTERM: a process that ignores its stop signal
// is killed after the stop timeout, with the helpers it started.
func TestStopKillsWhatIgnoresSIGTERM(t *testing.T) {
	dir := t.TempDir()
	// The shell ignores TERM and so does the sleep it leaves behind.
	p, err := startProc("stubborn", exec.Command("sh", "-c", "trap '' TERM; sleep 60 & echo $! > "+dir+"/child; wait"), dir+"/log")
	require.NoError(t, err)
	require.Eventually(t, func() bool { b, _ := os.ReadFile(dir + "/child"); return len(b) > 0 }, 5*time.Second, 10*time.Millisecond)
	b, _ := os.ReadFile(dir + "/child")
	child := strings.TrimSpace(string(b))
	err = p.stop(300 * time.Millisecond)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "did not exit within 300ms of signal terminated: killed")
	assert.Eventually(t, func() bool {
		_, err := os.Stat("/proc/" + child)
		return err != nil
	}, 5*time.Second, 10*time.Millisecond, "the sleep it started is gone too")
}

// TestWithPortsRetries: a start that lost a port to someone else is tried
// again with new ports; other errors are not retried.
func TestWithPortsRetries(t *testing.T) {
	var seen [][]int
	s, err := withPorts(2, func(ports []int) (*Server, error) {
		seen = append(seen, ports)
		if len(seen) < 3 {
			return nil, fmt.Errorf("start: %w", errPortTaken)
		}
		return &Server{Name: "x"}, nil
	})
	require.NoError(t, err)
	assert.Equal(t, "x", s.Name)
	require.Len(t, seen, 3)
	assert.NotEqual(t, seen[0][0], seen[0][1])

	calls := 0
	_, err = withPorts(1, func([]int) (*Server, error) { calls++; return nil, io.ErrUnexpectedEOF })
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Equal(t, 1, calls)
}

// TestFindPicksHighestVersion: versioned directories are searched highest
// first (PostgreSQL 15 before 9).
func TestFindPicksHighestVersion(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"9", "15", "13"} {
		require.NoError(t, os.MkdirAll(root+"/pg/"+v+"/bin", 0o755))
		require.NoError(t, os.WriteFile(root+"/pg/"+v+"/bin/cartograph-test-prog", []byte("#!/bin/sh\n"), 0o755))
	}
	p, err := Tool{Names: []string{"cartograph-test-prog"}, Dirs: []string{root + "/pg/*/bin"}, Package: "x"}.Find()
	require.NoError(t, err)
	assert.Equal(t, root+"/pg/15/bin/cartograph-test-prog", p)

	_, err = Tool{Names: []string{"cartograph-no-such-prog"}, Dirs: []string{root + "/pg/*/bin"}, Package: "pkg-x"}.Find()
	require.ErrorIs(t, err, ErrMissing)
	assert.EqualError(t, err, "missing: cartograph-no-such-prog (Debian package pkg-x)")

	dirs := []string{"/x/15/bin", "/x/9/bin", "/x/10/bin", "/x/100/bin"}
	slices.SortFunc(dirs, compareVersions)
	assert.Equal(t, []string{"/x/9/bin", "/x/10/bin", "/x/15/bin", "/x/100/bin"}, dirs)
}

// TestInstallRefusedSaysHow: without leave to install, missing packages are
// an error that gives the apt-get command.
func TestInstallRefusedSaysHow(t *testing.T) {
	env := &Env{Log: io.Discard, Install: false, Apt: &Apt{}}
	err := env.Apt.Install(t.Context(), env, []string{"redis-server", "nats-server"})
	require.ErrorIs(t, err, ErrMissing)
	assert.EqualError(t, err, "missing: Debian packages redis-server, nats-server; install them (apt-get install -y redis-server nats-server) or run without -install=false")
}
