package main

import (
	"io"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/seed-a49a8342/cartograph/deploy/helm/charttest"
)

// TestHelmChartUIFlags renders deploy/helm/cartograph with every values
// file under its ci/ (helm 4, see charttest) and gives the UI's command
// line to this binary's own flag set and parseConfig, with the
// environment and the Secret files the kubelet would give the pod (token
// files hold a placeholder token, which parseConfig reads), so a renamed
// flag or a bad value fails here. It then checks that the UI listens on
// the port its container declares and its probes reach, and that it reads
// the collector API through a rendered Service, over TLS when the
// collectors serve it.
func TestHelmChartUIFlags(t *testing.T) {
	fileFlags := []string{"tokens-file", "tls-cert-file", "tls-key-file", "tls-client-ca-file", "collector-ca-file", "collector-cert-file", "collector-key-file"}
	secretEnv := []string{"CARTOGRAPH_COLLECTOR_TOKEN", "CARTOGRAPH_UI_TOKENS"}
	for _, f := range charttest.ValuesFiles(t) {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			m := charttest.Render(t, f)
			uis := m.Containers("ui")
			require.Len(t, uis, 1)
			wc := uis[0]
			c := wc.Container
			require.Equal(t, []string{"/usr/local/bin/ui"}, c.Command, "the image's entry point is the collector; the Dockerfile puts ui in /usr/local/bin")
			env, err := charttest.Env(c, wc.PodNames()[0], charttest.PlaceholderSecret)
			require.NoError(t, err)
			fs := newFlagSet(&config{}, io.Discard)
			for name := range env {
				rest, ok := strings.CutPrefix(name, "CARTOGRAPH_")
				require.True(t, ok, "env %s", name)
				flagName := strings.ToLower(strings.ReplaceAll(rest, "_", "-"))
				require.True(t, fs.Lookup(flagName) != nil || slices.Contains(secretEnv, name), "env %s names no flag and no secret of the UI", name)
			}
			flags, err := charttest.ParseFlags(c.Args)
			require.NoError(t, err)
			mo, err := charttest.MountSecrets(&wc.Pod.Spec, c, t.TempDir())
			require.NoError(t, err)
			var args []string
			for _, fl := range flags {
				require.NotNil(t, fs.Lookup(fl.Name), "the chart passes --%s, which the UI does not have", fl.Name)
				v := charttest.Expand(fl.Value, env)
				if slices.Contains(fileFlags, fl.Name) {
					local, ok := mo.Files[v]
					require.True(t, ok, "--%s=%s is no key of a mounted Secret", fl.Name, v)
					v = local
				}
				args = append(args, "--"+fl.Name+"="+v)
			}
			cfg, err := parseConfig(args, func(k string) string { return env[k] }, io.Discard)
			require.NoError(t, err, "ui %s", strings.Join(c.Args, " "))

			host, port, err := net.SplitHostPort(cfg.Listen)
			require.NoError(t, err)
			require.Contains(t, []string{"", "0.0.0.0", "::"}, host, "--listen %s is out of the Service's reach", cfg.Listen)
			cp, ok := charttest.ContainerPort(c, "http", 0)
			require.True(t, ok)
			require.Equal(t, strconv.Itoa(int(cp.ContainerPort)), port)
			for kind, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
				require.NotNil(t, p, kind)
				require.NotNil(t, p.HTTPGet, kind)
				pp, ok := charttest.ContainerPort(c, p.HTTPGet.Port.StrVal, p.HTTPGet.Port.IntVal)
				require.True(t, ok)
				require.Equal(t, port, strconv.Itoa(int(pp.ContainerPort)), "%s probe on --listen's port", kind)
				require.Equal(t, "/healthz", p.HTTPGet.Path, "%s probe: /healthz is the path the UI leaves open", kind)
				scheme := corev1.URISchemeHTTP
				if cfg.TLSCertFile != "" {
					scheme = corev1.URISchemeHTTPS
				}
				require.Equal(t, scheme, p.HTTPGet.Scheme, kind)
			}

			// The collector API it reads.
			u, err := url.Parse(cfg.Collector)
			require.NoError(t, err)
			svcName, rest, _ := strings.Cut(u.Hostname(), ".")
			require.Equal(t, charttest.Namespace+".svc.cluster.local", rest)
			svc := m.Service(svcName)
			require.NotNil(t, svc, "--collector %s names no rendered Service", cfg.Collector)
			var served bool
			for _, sp := range svc.Spec.Ports {
				served = served || strconv.Itoa(int(sp.Port)) == u.Port()
			}
			require.True(t, served, "--collector %s: no such port on %s", cfg.Collector, svcName)
			collectorTLS := false
			for _, col := range m.Containers("collector") {
				if charttest.Selects(svc.Spec.Selector, col.Pod.Labels) {
					collectorTLS = slices.ContainsFunc(col.Container.Args, func(a string) bool { return strings.HasPrefix(a, "--tls-cert-file=") })
				}
			}
			require.Equal(t, map[bool]string{true: "https", false: "http"}[collectorTLS], u.Scheme)
			if collectorTLS {
				require.NotEmpty(t, cfg.CollectorCAFile, "the UI verifies the collectors' certificate against the chart's CA")
			}
			if strings.Contains(strings.Join(m.Containers("collector")[0].Container.Args, " "), "--api-tokens-file=") {
				require.NotEmpty(t, cfg.CollectorToken, "the API asks for a token")
				require.NotEmpty(t, cfg.Tokens, "the UI asks browsers for the API's viewer tokens")
			}
		})
	}
}
