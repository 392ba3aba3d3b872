package main

import (
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/deploy/composetest"
)

// TestComposeUIFlags loads docker-compose.yaml with compose-go (the
// Compose specification's library) and gives the ui service's command
// line and environment to this binary's own flag set and parseConfig, so
// a renamed flag or a bad value fails here and not at `docker compose
// up`. It then checks that the UI listens where its published port and
// its health check (/healthz) are, and reads the API of a collector
// service, on the port that collector serves it, once it is healthy.
func TestComposeUIFlags(t *testing.T) {
	p := composetest.Load(t)
	uis := composetest.Services(p, "ui")
	require.Len(t, uis, 1)
	s := uis[0]
	require.Equal(t, []string{"/usr/local/bin/ui"}, []string(s.Entrypoint), "the image's entry point is the collector; the Dockerfile puts ui in /usr/local/bin")
	fs := newFlagSet(&config{}, io.Discard)
	for name := range composetest.Env(s) {
		rest, ok := strings.CutPrefix(name, "CARTOGRAPH_")
		require.True(t, ok, "env %s", name)
		flagName := strings.ToLower(strings.ReplaceAll(rest, "_", "-"))
		require.True(t, fs.Lookup(flagName) != nil || slices.Contains([]string{"CARTOGRAPH_COLLECTOR_TOKEN", "CARTOGRAPH_UI_TOKENS"}, name),
			"env %s names no flag and no secret of the UI", name)
	}
	cfg, err := parseConfig(s.Command, composetest.Getenv(s), io.Discard)
	require.NoError(t, err, "ui %s", strings.Join(s.Command, " "))

	host, port, err := net.SplitHostPort(cfg.Listen)
	require.NoError(t, err)
	require.Equal(t, "0.0.0.0", host, "--listen %s: reachable through the published port", cfg.Listen)
	require.Equal(t, []string{port}, composetest.PublishedTargets(s))
	hu, err := composetest.HealthURL(s)
	require.NoError(t, err)
	require.Equal(t, "/healthz", hu.Path)
	require.Equal(t, port, hu.Port(), "the health check asks --listen's port")

	cu, err := url.Parse(cfg.Collector)
	require.NoError(t, err)
	coll, ok := p.Services[cu.Hostname()]
	require.True(t, ok, "--collector %s names no compose service", cfg.Collector)
	require.Equal(t, "collector", composetest.Binary(coll), "--collector %s is no collector", cfg.Collector)
	require.Contains(t, coll.Command, "--api-addr=0.0.0.0:"+cu.Port(), "%s serves its API on the port the UI reads", coll.Name)
	require.Equal(t, "service_healthy", s.DependsOn[coll.Name].Condition, "the UI starts once %s is ready", coll.Name)
}
