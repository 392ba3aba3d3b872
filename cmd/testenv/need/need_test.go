package need

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// allReqs is every requirement, by the function tests call.
var allReqs = map[string]requirement{
	"ClickHouse": clickhouseReq, "RabbitMQ": rabbitmqReq, "Redis": redisReq, "Postgres": postgresReq,
	"NATSServer": natsServerReq, "Chromium": chromiumReq, "Alertmanager": alertmanagerReq, "HotROD": hotrodReq, "Helm": helmReq,
	"OtelcolLB": otelcolLBReq, "ClickHouseCluster": clickhouseClusterReq,
}

// unsetAll clears every variable of r for the test.
func unsetAll(t *testing.T, r requirement) {
	for _, v := range r.Vars {
		t.Setenv(v.Name, "")
	}
}

// TestMessageNamesWhatAndHow: with its variables unset, each requirement's
// error wraps ErrMissing and says what is needed, which variables are unset,
// the test command that provides it, and how to point it at one's own.
func TestMessageNamesWhatAndHow(t *testing.T) {
	for name, r := range allReqs {
		t.Run(name, func(t *testing.T) {
			unsetAll(t, r)
			_, err := r.Lookup()
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrMissing)
			msg := err.Error()
			assert.Contains(t, msg, "needs "+r.What)
			assert.Contains(t, msg, "`"+TestCommand+"`, which "+r.Verb)
			for _, v := range r.Vars {
				assert.Contains(t, msg, v.Name)
				assert.Contains(t, msg, v.Example)
			}
		})
	}
}

// TestMessageClickHouse is the exact text for the one the docs quote.
func TestMessageClickHouse(t *testing.T) {
	unsetAll(t, clickhouseReq)
	_, _, err := LookupClickHouse()
	require.EqualError(t, err, "needs ClickHouse 26.7 (CARTOGRAPH_TEST_CLICKHOUSE and CARTOGRAPH_TEST_CLICKHOUSE_HTTP are unset): "+
		"run the tests as `go run ./cmd/testenv -- go test ./...`, which starts its own, or set "+
		"CARTOGRAPH_TEST_CLICKHOUSE to host:port of its native protocol (e.g. 127.0.0.1:9000) and "+
		"CARTOGRAPH_TEST_CLICKHOUSE_HTTP to host:port of its HTTP interface (e.g. 127.0.0.1:8123)")

	t.Setenv(EnvClickHouse, "127.0.0.1:9000")
	_, _, err = LookupClickHouse()
	require.ErrorIs(t, err, ErrMissing)
	assert.Contains(t, err.Error(), "(CARTOGRAPH_TEST_CLICKHOUSE_HTTP is unset)")
}

// TestBadValues: a value of the wrong form is refused with the variable's
// name and the form it should have; it is not ErrMissing.
func TestBadValues(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "prog")
	require.NoError(t, os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755))
	plain := filepath.Join(t.TempDir(), "plain")
	require.NoError(t, os.WriteFile(plain, nil, 0o644))
	for _, tc := range []struct {
		name string
		r    requirement
		vals []string
		ok   bool
	}{
		{"clickhouse ok", clickhouseReq, []string{"127.0.0.1:9000", "localhost:8123"}, true},
		{"clickhouse no port", clickhouseReq, []string{"127.0.0.1", "127.0.0.1:8123"}, false},
		{"clickhouse a URL", clickhouseReq, []string{"127.0.0.1:9000", "http://127.0.0.1:8123"}, false},
		{"rabbitmq ok", rabbitmqReq, []string{"amqp://u:p@127.0.0.1:5672/", "http://u:p@127.0.0.1:15672"}, true},
		{"rabbitmq mgmt not http", rabbitmqReq, []string{"amqp://u:p@127.0.0.1:5672/", "127.0.0.1:15672"}, false},
		{"postgres ok", postgresReq, []string{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"}, true},
		{"postgres host:port", postgresReq, []string{"127.0.0.1:5432"}, false},
		{"program ok", chromiumReq, []string{exe}, true},
		{"program missing", chromiumReq, []string{filepath.Join(t.TempDir(), "none")}, false},
		{"program not executable", natsServerReq, []string{plain}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i, v := range tc.r.Vars {
				t.Setenv(v.Name, tc.vals[i])
			}
			got, err := tc.r.Lookup()
			if tc.ok {
				require.NoError(t, err)
				assert.Equal(t, tc.vals, got)
				return
			}
			require.Error(t, err)
			assert.False(t, errors.Is(err, ErrMissing), "%v", err)
			assert.Contains(t, err.Error(), "needs "+tc.r.What)
		})
	}
}

// TestRabbitMQSplitsCredentials: the management URL's user and password
// come apart from its base URL (the pollers refuse credentials in URLs).
func TestRabbitMQSplitsCredentials(t *testing.T) {
	t.Setenv(EnvRabbitMQAMQP, "amqp://guest:guest@127.0.0.1:5672/")
	t.Setenv(EnvRabbitMQMgmt, "http://admin:s3cret@127.0.0.1:15672/")
	r := RabbitMQ(t)
	assert.Equal(t, Rabbit{AMQP: "amqp://guest:guest@127.0.0.1:5672/", Management: "http://127.0.0.1:15672",
		User: "admin", Password: "s3cret"}, r)
}

// TestHelperNeedsClickHouse is run by TestFailsNotSkips in a child process;
// on its own it does nothing.
func TestHelperNeedsClickHouse(t *testing.T) {
	if os.Getenv("NEED_TEST_HELPER") != "1" {
		return
	}
	ClickHouse(t)
	t.Log("not reached")
}

// TestFailsNotSkips runs a test that needs ClickHouse with its variables
// unset: it fails (not skips), with the message, and stops there.
func TestFailsNotSkips(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperNeedsClickHouse$", "-test.v")
	cmd.Env = append(os.Environ(), "NEED_TEST_HELPER=1", EnvClickHouse+"=", EnvClickHouseHTTP+"=")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "the helper test passed:\n%s", out)
	assert.Equal(t, 1, ee.ExitCode())
	s := string(out)
	assert.Contains(t, s, "--- FAIL: TestHelperNeedsClickHouse")
	assert.NotContains(t, s, "SKIP")
	assert.NotContains(t, s, "not reached")
	assert.Contains(t, s, "needs ClickHouse 26.7 (CARTOGRAPH_TEST_CLICKHOUSE and CARTOGRAPH_TEST_CLICKHOUSE_HTTP are unset)")
	assert.True(t, strings.Contains(s, "need_test.go:"), "the failure is reported at the caller's line:\n%s", s)
}
