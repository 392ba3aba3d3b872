package main

import (
	"io"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/seed-a49a8342/cartograph/deploy/helm/charttest"
)

// secretEnv are the CARTOGRAPH_* variables the collector reads that are no
// flag: secrets kept off the command line.
var secretEnv = []string{envIngestTokens, envAPITokens, envName("kafka-sasl-password"), envName("rabbitmq-password")}

// fileFlags are the flags naming files the collector reads: in the chart
// each must be a key of a mounted Secret.
var fileFlags = []string{"tls-cert-file", "tls-key-file", "tls-client-ca-file", "ingest-tokens-file", "api-tokens-file", "config"}

// TestHelmChartCollectorFlags renders deploy/helm/cartograph with every
// values file under its ci/ (helm 4, see charttest) and gives each
// collector's command line, and the migration Job's, to this binary's own
// flag set and parseConfig, with the environment the kubelet would give
// the pod ($(VAR) references expanded, Secret keys filled with
// placeholders), so a renamed flag, a bad value or a combination the
// collector refuses fails here and not in a cluster. It then checks that
// the ports the collector would listen on are the ports its container
// exposes and its probes reach, and that scaled out every collector is a
// judge candidate (--detect merged, elected through the judge's lease)
// serving the merged graph.
func TestHelmChartCollectorFlags(t *testing.T) {
	for _, f := range charttest.ValuesFiles(t) {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			m := charttest.Render(t, f)
			detect := map[detectMode]int{}
			serveMerged := 0
			ids := map[string]bool{}
			var retention []string
			pods := 0
			for _, wc := range m.Containers("collector") {
				for _, pod := range wc.PodNames() {
					cfg := chartCollectorConfig(t, wc, wc.Container.Args, pod)
					checkChartListeners(t, wc.Container, cfg)
					checkChartMemory(t, wc.Container, cfg)
					detect[cfg.Detect]++
					if cfg.ServeMerged {
						serveMerged++
					}
					pods++
					retention = append(retention, cfg.Retention.String())
					if cfg.Storage == storageClickHouse {
						require.Equal(t, pod, cfg.CollectorID, "each collector writes its own rows under its pod's name")
						require.False(t, ids[cfg.CollectorID], "--collector-id %s twice", cfg.CollectorID)
						ids[cfg.CollectorID] = true
						checkChartDSN(t, wc.Container, cfg)
					} else {
						checkChartEmbedded(t, m, wc, cfg)
					}
				}
			}
			require.Positive(t, pods)
			if pods == 1 {
				require.Equal(t, map[detectMode]int{detectLocal: 1}, detect, "one collector judges its own graph")
			} else {
				require.Equal(t, map[detectMode]int{detectMerged: pods}, detect,
					"scaled out, every collector is a judge candidate: the judge's lease elects one at a time")
				require.Equal(t, pods, serveMerged, "and serves the merged graph, whoever judges (the API Service reaches any of them)")
				require.Len(t, ids, pods)
			}
			for _, wc := range m.Containers("migrate") {
				require.Equal(t, "migrate", wc.Container.Args[0])
				cfg := chartCollectorConfig(t, wc, append([]string{"--storage=clickhouse"}, wc.Container.Args[1:]...), wc.PodNames()[0])
				checkChartDSN(t, wc.Container, cfg)
				for _, r := range retention {
					require.Equal(t, r, cfg.Retention.String(), "the migration sets the TTL the collectors keep")
				}
			}
		})
	}
}

// chartCollectorConfig parses a rendered command line as the collector
// would in pod: every argument --name=value with a name of this flag set,
// every CARTOGRAPH_* variable a flag's or a secret's, every file flag a
// mounted Secret key; then parseConfig.
func chartCollectorConfig(t *testing.T, wc charttest.WorkloadContainer, args []string, pod string) config {
	t.Helper()
	c := wc.Container
	env, err := charttest.Env(c, pod, charttest.PlaceholderSecret)
	require.NoError(t, err)
	flags, err := charttest.ParseFlags(args)
	require.NoError(t, err, "%s: %v", wc.Name, args)
	fs := newFlagSet(&config{}, io.Discard)
	for name := range env {
		rest, ok := strings.CutPrefix(name, envPrefix)
		if !ok {
			continue
		}
		flagName := strings.ToLower(strings.ReplaceAll(rest, "_", "-"))
		require.True(t, fs.Lookup(flagName) != nil || slices.Contains(secretEnv, name),
			"%s: env %s names no flag and no secret of the collector", wc.Name, name)
	}
	mo, err := charttest.MountSecrets(&wc.Pod.Spec, c, t.TempDir())
	require.NoError(t, err)
	var expanded []string
	for _, fl := range flags {
		require.NotNil(t, fs.Lookup(fl.Name), "%s: the chart passes --%s, which the collector does not have", wc.Name, fl.Name)
		v := charttest.Expand(fl.Value, env)
		require.NotContains(t, v, "$(", "%s: --%s=%s refers to a variable the container does not have", wc.Name, fl.Name, fl.Value)
		if slices.Contains(fileFlags, fl.Name) {
			local, ok := mo.Files[v]
			require.True(t, ok, "%s: --%s=%s is no key of a mounted Secret", wc.Name, fl.Name, v)
			v = local
		}
		if fl.Name == "data-dir" {
			require.True(t, mo.Under(v), "%s: --data-dir=%s is not a mounted volume (the root file system is read-only)", wc.Name, v)
		}
		expanded = append(expanded, "--"+fl.Name+"="+v)
	}
	cfg, err := parseConfig(expanded, func(k string) string { return env[k] }, io.Discard)
	require.NoError(t, err, "%s: collector %s", wc.Name, strings.Join(args, " "))
	return cfg
}

// checkChartListeners: every listener the collector opens is reachable
// from other pods on the port its container declares, and the probes
// reach the API port over the scheme it serves.
func checkChartListeners(t *testing.T, c *corev1.Container, cfg config) {
	t.Helper()
	require.Empty(t, cfg.UIAddr, "the chart runs cmd/ui: the collector serves no UI")
	for _, l := range []struct{ addr, port string }{{cfg.OTLPGRPCAddr, "otlp-grpc"}, {cfg.OTLPHTTPAddr, "otlp-http"}, {cfg.APIAddr, "http-api"}} {
		host, port, err := net.SplitHostPort(l.addr)
		require.NoError(t, err, l.addr)
		require.Contains(t, []string{"", "0.0.0.0", "::"}, host, "%s: %s listens on %s, out of the Services' reach", c.Name, l.port, l.addr)
		cp, ok := charttest.ContainerPort(c, l.port, 0)
		require.True(t, ok, "container port %s", l.port)
		require.Equal(t, strconv.Itoa(int(cp.ContainerPort)), port, "%s: it listens on %s, the container declares %d", l.port, l.addr, cp.ContainerPort)
	}
	_, apiPort, _ := net.SplitHostPort(cfg.APIAddr)
	for kind, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		require.NotNil(t, p, "%s probe", kind)
		if cfg.TLSClientCAFile != "" {
			// Mutual TLS: the kubelet presents no client certificate.
			require.NotNil(t, p.TCPSocket, "%s probe: a TCP check under mutual TLS", kind)
			cp, ok := charttest.ContainerPort(c, p.TCPSocket.Port.StrVal, p.TCPSocket.Port.IntVal)
			require.True(t, ok)
			require.Equal(t, apiPort, strconv.Itoa(int(cp.ContainerPort)), "%s probe", kind)
			continue
		}
		require.NotNil(t, p.HTTPGet, "%s probe", kind)
		cp, ok := charttest.ContainerPort(c, p.HTTPGet.Port.StrVal, p.HTTPGet.Port.IntVal)
		require.True(t, ok)
		require.Equal(t, apiPort, strconv.Itoa(int(cp.ContainerPort)), "%s probe: /healthz and /readyz are on --api-addr", kind)
		want := map[string]string{"startup": "/healthz", "liveness": "/healthz", "readiness": "/readyz"}[kind]
		require.Equal(t, want, p.HTTPGet.Path, "%s probe", kind)
		scheme := corev1.URISchemeHTTP
		if cfg.TLSCertFile != "" {
			scheme = corev1.URISchemeHTTPS
		}
		require.Equal(t, scheme, p.HTTPGet.Scheme, "%s probe", kind)
	}
}

// checkChartMemory: the soft limit leaves room below the container's
// memory limit, so the collector pushes back on senders before it is
// killed.
func checkChartMemory(t *testing.T, c *corev1.Container, cfg config) {
	t.Helper()
	limit := c.Resources.Limits.Memory()
	require.False(t, limit.IsZero(), "a memory limit")
	require.Positive(t, cfg.MemoryLimit, "--memory-limit")
	require.Less(t, float64(cfg.MemoryLimit), 0.9*float64(limit.Value()), "--memory-limit %d against a %s limit", cfg.MemoryLimit, limit)
}

// dsnReference is a $(VAR) reference in an environment value.
var dsnReference = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// checkChartDSN: the DSN the kubelet builds (the password expanded from
// its Secret) is one the ClickHouse driver takes, with that password.
func checkChartDSN(t *testing.T, c *corev1.Container, cfg config) {
	t.Helper()
	opts, err := ch.ParseDSN(cfg.ClickHouseDSN)
	require.NoError(t, err, "DSN %q", cfg.ClickHouseDSN)
	require.NotEmpty(t, opts.Addr)
	byName := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		byName[e.Name] = e
	}
	dsn, ok := byName[envName("clickhouse-dsn")]
	require.True(t, ok, "the DSN comes from the environment, not the command line")
	if dsn.ValueFrom != nil {
		require.NotNil(t, dsn.ValueFrom.SecretKeyRef)
		require.Equal(t, charttest.PlaceholderSecret(dsn.Name, "", ""), cfg.ClickHouseDSN, "the DSN from its Secret")
		return
	}
	for _, ref := range dsnReference.FindAllStringSubmatch(dsn.Value, -1) {
		e, ok := byName[ref[1]]
		require.True(t, ok, "the DSN refers to $(%s), which the container does not define", ref[1])
		require.NotNil(t, e.ValueFrom, "$(%s) is a secret", ref[1])
		require.Equal(t, charttest.PlaceholderSecret(e.Name, "", ""), opts.Auth.Password, "the password from Secret %s reaches the driver", e.ValueFrom.SecretKeyRef.Name)
	}
}

// checkChartEmbedded: the embedded store is on the data volume, below
// the claim's size when it is one.
func checkChartEmbedded(t *testing.T, m *charttest.Manifest, wc charttest.WorkloadContainer, cfg config) {
	t.Helper()
	require.Equal(t, "Deployment", wc.Kind)
	require.Equal(t, int32(1), wc.Replicas, "one process opens the embedded store")
	for _, v := range wc.Pod.Spec.Volumes {
		if v.PersistentVolumeClaim == nil {
			continue
		}
		for _, pvc := range m.PVCs {
			if pvc.Name == v.PersistentVolumeClaim.ClaimName {
				size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
				require.Less(t, cfg.MaxStorageBytes, size.Value(), "--max-storage-bytes below the claim's %s", size.String())
				require.Greater(t, cfg.MaxStorageBytes, size.Value()/2, "most of the claim holds history")
			}
		}
	}
}
