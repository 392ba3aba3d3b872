package main

import (
	"io"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/deploy/composetest"
)

// TestComposeLoadgenFlags loads docker-compose.yaml with compose-go (the
// Compose specification's library) and gives the loadgen service's
// command line, with its variables at their defaults and with faults
// switched on as docs/operations.md says, to this binary's own flag
// parser, so a renamed flag or a bad value fails here and not at `docker
// compose up`. The load goes to the OpenTelemetry Collector's OTLP/gRPC
// port, once it has started.
func TestComposeLoadgenFlags(t *testing.T) {
	for name, env := range map[string][]string{
		"defaults": nil,
		"faults":   {"CARTOGRAPH_DEMO_FAULTS=retry_storm,open_circuit,consumer_lag,bottleneck"},
	} {
		t.Run(name, func(t *testing.T) {
			p, err := composetest.LoadEnv(env)
			require.NoError(t, err)
			lgs := composetest.Services(p, "loadgen")
			require.Len(t, lgs, 1)
			s := lgs[0]
			require.Equal(t, []string{"/usr/local/bin/loadgen"}, []string(s.Entrypoint))
			for k := range composetest.Env(s) {
				require.False(t, strings.HasPrefix(k, "CARTOGRAPH_"), "loadgen reads no environment variable: %s", k)
			}
			cfg, err := parseFlags(s.Command, io.Discard)
			require.NoError(t, err, "loadgen %s", strings.Join(s.Command, " "))
			if env != nil {
				require.Len(t, cfg.Faults, 4)
			}
			require.Equal(t, "grpc", cfg.Protocol)
			host, port, err := net.SplitHostPort(cfg.Endpoint)
			require.NoError(t, err)
			oc, ok := p.Services[host]
			require.True(t, ok, "--endpoint %s names no compose service", cfg.Endpoint)
			require.Contains(t, composetest.PublishedTargets(oc), port, "%s takes OTLP/gRPC on %s", host, port)
			require.Equal(t, "service_started", s.DependsOn[host].Condition)
		})
	}
}
