package main

import (
	"io"
	"net"
	"slices"
	"strings"
	"testing"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/deploy/composetest"
)

// composeCollectorConfig parses a compose service's command line as the
// collector in its container would: every CARTOGRAPH_* variable of its
// environment must be a flag's or a secret's, and the arguments go
// through this binary's own flag set and parseConfig (migrate takes the
// collector's flags with --storage=clickhouse, as main does).
func composeCollectorConfig(t *testing.T, s types.ServiceConfig) config {
	t.Helper()
	fs := newFlagSet(&config{}, io.Discard)
	for name := range composetest.Env(s) {
		rest, ok := strings.CutPrefix(name, envPrefix)
		if !ok {
			continue
		}
		flagName := strings.ToLower(strings.ReplaceAll(rest, "_", "-"))
		require.True(t, fs.Lookup(flagName) != nil || slices.Contains(secretEnv, name),
			"%s: env %s names no flag and no secret of the collector", s.Name, name)
	}
	args := []string(s.Command)
	if len(args) > 0 && args[0] == "migrate" {
		args = append([]string{"--storage=clickhouse"}, args[1:]...)
	}
	cfg, err := parseConfig(args, composetest.Getenv(s), io.Discard)
	require.NoError(t, err, "%s: collector %s", s.Name, strings.Join(s.Command, " "))
	return cfg
}

// TestComposeCollectorFlags loads docker-compose.yaml with compose-go (the
// Compose specification's library) and gives every collector service's
// command line and environment, the migration's included, to this
// binary's flag set and parseConfig, so a renamed flag, a bad value or a
// combination the collector refuses fails here, on every machine, not
// at `docker compose up`. It then checks what the parsed configuration
// implies for the file: the collectors listen where the other containers
// reach them, publish their API port, and their health check asks /readyz
// on it; the soft memory limit is below the container's; and, scaled out,
// both share one ClickHouse (the clickhouse service's native port, the
// migration's DSN), each under its own --collector-id, every one a judge
// candidate (--detect merged, elected through the judge's lease) serving
// the merged graph.
func TestComposeCollectorFlags(t *testing.T) {
	p := composetest.Load(t)
	services := composetest.Services(p, "collector")
	require.NotEmpty(t, services)
	detect := map[detectMode][]string{}
	ids := map[string]bool{}
	var dsn, migrateDSN string
	serviceGraph := map[bool]int{}
	serveMerged := 0
	for _, s := range services {
		t.Run(s.Name, func(t *testing.T) {
			require.Empty(t, s.Entrypoint, "the image's entry point is the collector")
			cfg := composeCollectorConfig(t, s)
			if s.Command[0] == "migrate" {
				require.Equal(t, "no", s.Restart, "a one-shot job")
				migrateDSN = cfg.ClickHouseDSN
				return
			}
			require.Empty(t, cfg.UIAddr, "the ui service serves the UI")
			for _, addr := range []string{cfg.OTLPGRPCAddr, cfg.OTLPHTTPAddr, cfg.APIAddr} {
				host, _, err := net.SplitHostPort(addr)
				require.NoError(t, err)
				require.Equal(t, "0.0.0.0", host, "%s: reachable from the other containers", addr)
			}
			_, apiPort, _ := net.SplitHostPort(cfg.APIAddr)
			require.Equal(t, []string{apiPort}, composetest.PublishedTargets(s), "the API (and /metrics) is what is published")
			for _, pc := range s.Ports {
				require.Equal(t, "127.0.0.1", pc.HostIP, "published on loopback only: nothing authenticates")
			}
			u, err := composetest.HealthURL(s)
			require.NoError(t, err)
			require.Equal(t, "/readyz", u.Path)
			require.Equal(t, apiPort, u.Port(), "the health check asks the API port")

			require.Positive(t, s.MemLimit, "a container memory limit")
			require.Positive(t, cfg.MemoryLimit, "--memory-limit, so it pushes back before the container limit kills it")
			require.Less(t, float64(cfg.MemoryLimit), 0.9*float64(s.MemLimit), "the soft limit leaves room below the container's")

			require.Equal(t, storageClickHouse, cfg.Storage)
			require.NotEmpty(t, cfg.CollectorID)
			require.False(t, ids[cfg.CollectorID], "--collector-id %s twice", cfg.CollectorID)
			ids[cfg.CollectorID] = true
			if dsn == "" {
				dsn = cfg.ClickHouseDSN
			}
			require.Equal(t, dsn, cfg.ClickHouseDSN, "one shared ClickHouse")
			detect[cfg.Detect] = append(detect[cfg.Detect], s.Name)
			if cfg.ServeMerged {
				serveMerged++
			}
			serviceGraph[cfg.GrafanaServiceGraph]++
		})
	}
	require.Len(t, detect[detectMerged], len(ids), "every collector is a judge candidate (the judge's lease elects one): %v", detect)
	require.Equal(t, len(ids), serveMerged, "every collector serves the merged graph, whoever judges")
	require.Len(t, serviceGraph, 1, "every collector or none serves the Grafana service graph series: Prometheus sums their shares")
	require.Equal(t, dsn, migrateDSN, "the migration sets up the collectors' database")

	opts, err := ch.ParseDSN(dsn)
	require.NoError(t, err)
	require.Len(t, opts.Addr, 1)
	host, port, err := net.SplitHostPort(opts.Addr[0])
	require.NoError(t, err)
	chs, ok := p.Services[host]
	require.True(t, ok, "the DSN names the compose service %s", host)
	require.Equal(t, "9000", port, "the native protocol port")
	require.Equal(t, composetest.Env(chs)["CLICKHOUSE_USER"], opts.Auth.Username)
	require.Equal(t, composetest.Env(chs)["CLICKHOUSE_PASSWORD"], opts.Auth.Password)
	require.Equal(t, composetest.Env(chs)["CLICKHOUSE_DB"], opts.Auth.Database)
	for _, s := range services {
		if s.Command[0] == "migrate" {
			require.Equal(t, "service_healthy", s.DependsOn[host].Condition, "the migration waits for ClickHouse")
			continue
		}
		require.Equal(t, "service_healthy", s.DependsOn[host].Condition, "%s waits for ClickHouse", s.Name)
		require.Equal(t, "service_completed_successfully", s.DependsOn["migrate"].Condition, "%s waits for the schema", s.Name)
	}
}
