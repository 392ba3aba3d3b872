package charttest_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/seed-a49a8342/cartograph/deploy/helm/charttest"
)

// TestLint runs `helm lint --strict` on the chart with its defaults and
// with every values file under ci/.
func TestLint(t *testing.T) {
	helm := charttest.Helm(t)
	for _, f := range append([]string{""}, charttest.ValuesFiles(t)...) {
		t.Run(name(f), func(t *testing.T) {
			args := []string{"lint", charttest.ChartDir(), "--strict", "--namespace", charttest.Namespace}
			if f != "" {
				args = append(args, "--values", f)
			}
			out, err := exec.Command(helm, args...).CombinedOutput()
			require.NoError(t, err, "helm %v:\n%s", args, out)
			require.Contains(t, string(out), "1 chart(s) linted, 0 chart(s) failed")
		})
	}
}

func name(valuesFile string) string {
	if valuesFile == "" {
		return "defaults"
	}
	return strings.TrimSuffix(filepath.Base(valuesFile), ".yaml")
}

// values is a values file merged over the chart's values.yaml, as helm
// merges them.
type values map[string]any

func loadValues(t *testing.T, file string) values {
	t.Helper()
	var base map[string]any
	raw, err := os.ReadFile(filepath.Join(charttest.ChartDir(), "values.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, &base))
	var over map[string]any
	raw, err = os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, &over))
	return values(mergeMaps(base, over))
}

func mergeMaps(base, over map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if b, ok := out[k].(map[string]any); ok {
			if o, ok := v.(map[string]any); ok {
				out[k] = mergeMaps(b, o)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// get returns the value at a dotted path.
func (v values) get(path string) any {
	var cur any = map[string]any(v)
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func (v values) str(path string) string {
	s, _ := v.get(path).(string)
	return s
}

func (v values) boolean(path string) bool {
	b, _ := v.get(path).(bool)
	return b
}

// secretNames returns the Secrets a values file names: values of keys
// existingSecret, secretName, *SecretName, and secretKeyRef names in the
// environment it adds. These are the Secrets the user creates.
func (v values) secretNames() map[string]bool {
	out := map[string]bool{}
	var walk func(key string, x any, parent string)
	walk = func(key string, x any, parent string) {
		switch x := x.(type) {
		case map[string]any:
			for k, y := range x {
				walk(k, y, key)
			}
		case []any:
			for _, y := range x {
				walk(key, y, parent)
			}
		case string:
			if x != "" && (key == "existingSecret" || key == "secretName" || strings.HasSuffix(key, "SecretName") || (key == "name" && parent == "secretKeyRef")) {
				out[x] = true
			}
		}
	}
	walk("", map[string]any(v), "")
	return out
}

// fullname is the chart's resource name prefix for charttest.Release.
const fullname = charttest.Release + "-cartograph"

func fqdn(service string) string {
	return service + "." + charttest.Namespace + ".svc.cluster.local"
}

// TestRender renders every values file under ci/ and checks the objects
// against each other: what Services select and target, what probes reach,
// which Secrets and volumes are used, the scale-out topology, the load
// balancer's configuration and the ServiceMonitor. The collectors' and
// the UI's command lines are checked against their own flag sets in
// cmd/collector and cmd/ui (TestHelmChart...).
func TestRender(t *testing.T) {
	for _, f := range charttest.ValuesFiles(t) {
		t.Run(name(f), func(t *testing.T) {
			m := charttest.Render(t, f)
			v := loadValues(t, f)
			t.Run("resources and security", func(t *testing.T) { checkResources(t, m) })
			t.Run("services", func(t *testing.T) { checkServices(t, m) })
			t.Run("probes", func(t *testing.T) { checkProbes(t, m) })
			t.Run("volumes", func(t *testing.T) { checkVolumes(t, m, v) })
			t.Run("secrets", func(t *testing.T) { checkSecrets(t, m, v) })
			t.Run("topology", func(t *testing.T) { checkTopology(t, m, v) })
			t.Run("load balancer", func(t *testing.T) { checkLoadBalancer(t, m, v) })
			t.Run("service monitor", func(t *testing.T) { checkServiceMonitor(t, m, v) })
			t.Run("migration job", func(t *testing.T) { checkMigrate(t, m, v) })
			t.Run("ui", func(t *testing.T) { checkUI(t, m, v) })
		})
	}
}

// args returns a container's flags as a map (the chart writes only
// --name=value; cmd/collector and cmd/ui check that strictly).
func args(t *testing.T, c *corev1.Container) map[string]string {
	t.Helper()
	a := c.Args
	if len(a) > 0 && !strings.HasPrefix(a[0], "-") {
		a = a[1:] // a subcommand (collector migrate)
	}
	fl, err := charttest.ParseFlags(a)
	require.NoError(t, err, c.Name)
	out := map[string]string{}
	for _, f := range fl {
		out[f.Name] = f.Value
	}
	return out
}

// collectors are the collector containers of long-running workloads.
func collectors(m *charttest.Manifest) []charttest.WorkloadContainer {
	var out []charttest.WorkloadContainer
	for _, c := range m.Containers("collector") {
		if c.Kind != "Job" {
			out = append(out, c)
		}
	}
	return out
}

func checkResources(t *testing.T, m *charttest.Manifest) {
	for _, w := range m.Workloads() {
		ps := w.Pod.Spec
		require.NotNil(t, ps.SecurityContext, w.Name)
		require.True(t, ps.SecurityContext.RunAsNonRoot != nil && *ps.SecurityContext.RunAsNonRoot, "%s: runAsNonRoot", w.Name)
		for _, c := range ps.Containers {
			r := c.Resources
			require.False(t, r.Requests.Cpu().IsZero(), "%s/%s: a CPU request", w.Name, c.Name)
			require.False(t, r.Requests.Memory().IsZero(), "%s/%s: a memory request", w.Name, c.Name)
			require.False(t, r.Limits.Memory().IsZero(), "%s/%s: a memory limit", w.Name, c.Name)
			require.LessOrEqual(t, r.Requests.Memory().Value(), r.Limits.Memory().Value(), "%s/%s", w.Name, c.Name)
			require.NotNil(t, c.SecurityContext, "%s/%s", w.Name, c.Name)
			require.True(t, *c.SecurityContext.ReadOnlyRootFilesystem, "%s/%s: read-only root", w.Name, c.Name)
			require.False(t, *c.SecurityContext.AllowPrivilegeEscalation, "%s/%s", w.Name, c.Name)
			for _, p := range c.Ports {
				require.Empty(t, validation.IsValidPortName(p.Name), "%s/%s port %q", w.Name, c.Name, p.Name)
			}
		}
	}
}

// checkServices: every Service selects pods of a rendered workload, and
// each of its ports targets a port that every selected container exposes.
func checkServices(t *testing.T, m *charttest.Manifest) {
	for _, s := range m.Services {
		t.Run(s.Name, func(t *testing.T) {
			var selected int
			for _, w := range m.Workloads() {
				if w.Kind == "Job" || !charttest.Selects(s.Spec.Selector, w.Pod.Labels) {
					continue
				}
				selected++
				for _, sp := range s.Spec.Ports {
					require.Empty(t, validation.IsValidPortName(sp.Name), "port name %q", sp.Name)
					var found bool
					for i := range w.Pod.Spec.Containers {
						cp, ok := charttest.ContainerPort(&w.Pod.Spec.Containers[i], sp.TargetPort.StrVal, sp.TargetPort.IntVal)
						if ok {
							require.Equal(t, sp.Protocol, cp.Protocol, "port %s", sp.Name)
							found = true
						}
					}
					require.True(t, found, "service %s port %s targets %s, which %s %s does not expose", s.Name, sp.Name, sp.TargetPort.String(), w.Kind, w.Name)
				}
			}
			require.Positive(t, selected, "service %s selects no rendered pods (selector %v)", s.Name, s.Spec.Selector)
		})
	}
	// The headless Service of every collector.
	h := m.Service(fullname + "-collector")
	require.NotNil(t, h)
	require.Equal(t, corev1.ClusterIPNone, h.Spec.ClusterIP)
}

// checkProbes: every long-running container has liveness and readiness
// probes on a port it exposes, at the paths its program serves.
func checkProbes(t *testing.T, m *charttest.Manifest) {
	paths := map[string]struct{ live, ready string }{
		"collector": {"/healthz", "/readyz"},
		"ui":        {"/healthz", "/healthz"},
		"otelcol":   {"/", "/"}, // the health_check extension
	}
	for _, w := range m.Workloads() {
		if w.Kind == "Job" {
			continue
		}
		for i := range w.Pod.Spec.Containers {
			c := &w.Pod.Spec.Containers[i]
			want, ok := paths[c.Name]
			require.True(t, ok, "container %s: no probe expectations", c.Name)
			tls := false
			mtls := false
			if c.Name == "collector" {
				a := args(t, c)
				_, tls = a["tls-cert-file"]
				_, mtls = a["tls-client-ca-file"]
			}
			if c.Name == "ui" {
				_, tls = args(t, c)["tls-cert-file"]
			}
			for kind, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
				if p == nil {
					require.NotEqual(t, "liveness", kind, "%s/%s: no liveness probe", w.Name, c.Name)
					require.NotEqual(t, "readiness", kind, "%s/%s: no readiness probe", w.Name, c.Name)
					continue
				}
				if mtls {
					// The kubelet presents no client certificate.
					require.NotNil(t, p.TCPSocket, "%s %s probe: mutual TLS refuses the kubelet's HTTPS", c.Name, kind)
					_, ok := charttest.ContainerPort(c, p.TCPSocket.Port.StrVal, p.TCPSocket.Port.IntVal)
					require.True(t, ok, "%s %s probe port %s", c.Name, kind, p.TCPSocket.Port.String())
					continue
				}
				require.NotNil(t, p.HTTPGet, "%s/%s %s probe", w.Name, c.Name, kind)
				_, ok := charttest.ContainerPort(c, p.HTTPGet.Port.StrVal, p.HTTPGet.Port.IntVal)
				require.True(t, ok, "%s %s probe port %s is not a port of the container", c.Name, kind, p.HTTPGet.Port.String())
				path := want.live
				if kind == "readiness" {
					path = want.ready
				}
				require.Equal(t, path, p.HTTPGet.Path, "%s %s probe", c.Name, kind)
				scheme := corev1.URISchemeHTTP
				if tls {
					scheme = corev1.URISchemeHTTPS
				}
				require.Equal(t, scheme, p.HTTPGet.Scheme, "%s %s probe", c.Name, kind)
			}
		}
	}
}

// checkVolumes: every mount names a volume of its pod, every volume is
// mounted, ConfigMaps and claims exist, Secret volumes name their keys.
func checkVolumes(t *testing.T, m *charttest.Manifest, v values) {
	for _, w := range m.Workloads() {
		mounted := map[string]bool{}
		for i := range w.Pod.Spec.Containers {
			c := &w.Pod.Spec.Containers[i]
			_, err := charttest.MountSecrets(&w.Pod.Spec, c, t.TempDir())
			require.NoError(t, err, "%s/%s", w.Name, c.Name)
			for _, vm := range c.VolumeMounts {
				mounted[vm.Name] = true
			}
		}
		for _, vol := range w.Pod.Spec.Volumes {
			require.True(t, mounted[vol.Name], "%s: volume %s is mounted by no container", w.Name, vol.Name)
			if cm := vol.ConfigMap; cm != nil {
				var found *corev1.ConfigMap
				for _, c := range m.ConfigMaps {
					if c.Name == cm.Name {
						found = c
					}
				}
				require.NotNil(t, found, "%s: ConfigMap %s is not rendered", w.Name, cm.Name)
				for _, it := range cm.Items {
					require.Contains(t, found.Data, it.Key, "%s: ConfigMap %s", w.Name, cm.Name)
				}
			}
			if pvc := vol.PersistentVolumeClaim; pvc != nil {
				var rendered bool
				for _, c := range m.PVCs {
					rendered = rendered || c.Name == pvc.ClaimName
				}
				require.True(t, rendered || pvc.ClaimName == v.str("persistence.existingClaim"), "%s: claim %s", w.Name, pvc.ClaimName)
				require.Equal(t, "Deployment", w.Kind)
				for _, d := range m.Deployments {
					if d.Name == w.Name {
						require.Equal(t, "Recreate", string(d.Spec.Strategy.Type), "one writer of the embedded store at a time")
					}
				}
			}
		}
	}
}

// checkSecrets: every Secret the manifest refers to is one the values
// name (the chart creates none), and every Secret the values name is
// used.
func checkSecrets(t *testing.T, m *charttest.Manifest, v values) {
	named := v.secretNames()
	used := map[string]bool{}
	use := func(where, name string) {
		require.True(t, named[name], "%s refers to Secret %q, which the values do not name", where, name)
		used[name] = true
	}
	for _, w := range m.Workloads() {
		for _, vol := range w.Pod.Spec.Volumes {
			if vol.Secret != nil {
				use(w.Name+" volume "+vol.Name, vol.Secret.SecretName)
			}
		}
		for _, c := range w.Pod.Spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					use(w.Name+" env "+e.Name, e.ValueFrom.SecretKeyRef.Name)
				}
			}
		}
	}
	for _, sm := range m.ServiceMonitors {
		for _, ep := range sm.Spec.Endpoints {
			if ep.Authorization != nil {
				use("ServiceMonitor authorization", ep.Authorization.Credentials.Name)
			}
			if tc := ep.TLSConfig; tc != nil {
				if tc.CA.Secret != nil {
					use("ServiceMonitor CA", tc.CA.Secret.Name)
				}
				if tc.Cert.Secret != nil {
					use("ServiceMonitor cert", tc.Cert.Secret.Name)
				}
				if tc.KeySecret != nil {
					use("ServiceMonitor key", tc.KeySecret.Name)
				}
			}
		}
	}
	for n := range named {
		require.True(t, used[n], "the values name Secret %q, which nothing uses", n)
	}
}

// checkTopology: one collector in a Deployment, or one StatefulSet of
// them all behind the headless Service, every one a judge candidate
// (--detect=merged, elected through the judge's lease) serving the merged
// graph, with the pods' cartograph/detect label saying what --detect says.
func checkTopology(t *testing.T, m *charttest.Manifest, v values) {
	want := v.get("collector.replicas").(int)
	var total, merged int
	for _, c := range collectors(m) {
		detect := args(t, c.Container)["detect"]
		require.Equal(t, detect, c.Pod.Labels["cartograph/detect"], "%s", c.Name)
		total += int(c.Replicas)
		if detect == "merged" {
			merged += int(c.Replicas)
		}
	}
	require.Equal(t, want, total, "collectors")
	entry := m.Service(fullname)
	require.NotNil(t, entry)
	if want == 1 {
		require.Len(t, m.Deployments, 1+btoi(v.boolean("ui.enabled")))
		require.Empty(t, m.StatefulSets)
		require.Equal(t, "collector", entry.Spec.Selector["app.kubernetes.io/component"], "OTLP goes straight to the collector")
		return
	}
	require.Equal(t, want, merged, "every collector is a judge candidate: no fixed judge")
	require.Len(t, m.StatefulSets, 1)
	for _, s := range m.StatefulSets {
		require.Equal(t, fullname+"-collector", s.Spec.ServiceName, s.Name)
		require.True(t, charttest.Selects(m.Service(s.Spec.ServiceName).Spec.Selector, s.Spec.Template.Labels), "%s: its Service selects its pods", s.Name)
	}
	require.Equal(t, "load-balancer", entry.Spec.Selector["app.kubernetes.io/component"], "OTLP goes through the load balancer")
	api := m.Service(fullname + "-api")
	for _, c := range collectors(m) {
		require.Equal(t, "true", args(t, c.Container)["serve-merged"], "%s serves the merged graph whoever judges", c.Name)
		require.True(t, charttest.Selects(api.Spec.Selector, c.Pod.Labels), "the API Service selects every collector (%s)", c.Name)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// otelcolConfig is the part of the OpenTelemetry Collector configuration
// the load balancer uses, decoded strictly (a field not listed fails).
type otelcolConfig struct {
	Extensions struct {
		HealthCheck   struct{ Endpoint string } `yaml:"health_check"`
		HeadersSetter *struct {
			Headers []struct {
				Key         string `yaml:"key"`
				FromContext string `yaml:"from_context"`
				Action      string `yaml:"action"`
			} `yaml:"headers"`
		} `yaml:"headers_setter"`
	} `yaml:"extensions"`
	Receivers struct {
		OTLP struct {
			Protocols struct {
				GRPC otlpServer `yaml:"grpc"`
				HTTP otlpServer `yaml:"http"`
			} `yaml:"protocols"`
		} `yaml:"otlp"`
	} `yaml:"receivers"`
	Processors struct {
		MemoryLimiter struct {
			CheckInterval        string `yaml:"check_interval"`
			LimitPercentage      int    `yaml:"limit_percentage"`
			SpikeLimitPercentage int    `yaml:"spike_limit_percentage"`
		} `yaml:"memory_limiter"`
	} `yaml:"processors"`
	Exporters struct {
		LoadBalancing struct {
			RoutingKey string `yaml:"routing_key"`
			Protocol   struct {
				OTLP otlpClient `yaml:"otlp"`
			} `yaml:"protocol"`
			Resolver struct {
				DNS *struct {
					Hostname string `yaml:"hostname"`
					Port     string `yaml:"port"`
					Interval string `yaml:"interval"`
				} `yaml:"dns"`
				K8s *struct {
					Service string  `yaml:"service"`
					Ports   []int32 `yaml:"ports"`
				} `yaml:"k8s"`
			} `yaml:"resolver"`
		} `yaml:"load_balancing"`
		// Collectors are the exporters otlp_grpc/collector-<i>, one per
		// collector (inline: any other exporter fails the strict decode).
		Collectors map[string]otlpClient `yaml:",inline"`
	} `yaml:"exporters"`
	Service struct {
		Extensions []string                       `yaml:"extensions"`
		Pipelines  map[string]map[string][]string `yaml:"pipelines"`
	} `yaml:"service"`
}

type otlpServer struct {
	Endpoint        string     `yaml:"endpoint"`
	IncludeMetadata bool       `yaml:"include_metadata"`
	TLS             *tlsConfig `yaml:"tls"`
}

type otlpClient struct {
	Endpoint string    `yaml:"endpoint"`
	Timeout  string    `yaml:"timeout"`
	TLS      tlsConfig `yaml:"tls"`
	Auth     *struct {
		Authenticator string `yaml:"authenticator"`
	} `yaml:"auth"`
	SendingQueue *struct {
		Batch struct {
			Partition struct {
				MetadataKeys []string `yaml:"metadata_keys"`
			} `yaml:"partition"`
		} `yaml:"batch"`
	} `yaml:"sending_queue"`
}

type tlsConfig struct {
	Insecure           bool   `yaml:"insecure"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ClientCAFile       string `yaml:"client_ca_file"`
	ServerNameOverride string `yaml:"server_name_override"`
}

// files returns the TLS files a configuration names.
func (c tlsConfig) files() []string {
	var out []string
	for _, f := range []string{c.CAFile, c.CertFile, c.KeyFile, c.ClientCAFile} {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

// checkLoadBalancer: when scaled out, the OpenTelemetry Collector in front
// routes traces by trace id over the collectors' headless Service on the
// port they receive OTLP/gRPC on, metrics to the judging collector, with
// the TLS and token pass-through the collectors expect, and serves the
// ports its Service and probes use.
func checkLoadBalancer(t *testing.T, m *charttest.Manifest, v values) {
	lbs := m.Containers("otelcol")
	if v.get("collector.replicas").(int) == 1 {
		require.Empty(t, lbs)
		require.Empty(t, m.ConfigMaps)
		return
	}
	require.Len(t, lbs, 1)
	lb := lbs[0]
	require.Len(t, m.ConfigMaps, 1)
	cm := m.ConfigMaps[0]
	raw := cm.Data["config.yaml"]
	var cfg otelcolConfig
	dec := yaml.NewDecoder(strings.NewReader(raw))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&cfg), "load balancer config:\n%s", raw)
	sum := sha256.Sum256([]byte(strings.TrimSuffix(raw, "\n")))
	require.Equal(t, hex.EncodeToString(sum[:]), lb.Pod.Annotations["checksum/config"], "pods roll when the config changes")
	require.Equal(t, []string{"--config=/conf/config.yaml"}, lb.Container.Args)
	mo, err := charttest.MountSecrets(&lb.Pod.Spec, lb.Container, t.TempDir())
	require.NoError(t, err)
	require.True(t, mo.Under("/conf/config.yaml"))

	// Pipelines.
	p := cfg.Service.Pipelines
	require.Equal(t, map[string][]string{"receivers": {"otlp"}, "processors": {"memory_limiter"}, "exporters": {"load_balancing"}}, p["traces"])
	replicas := v.get("collector.replicas").(int)
	var metricsTo []string
	for i := range replicas {
		metricsTo = append(metricsTo, fmt.Sprintf("otlp_grpc/collector-%d", i))
	}
	slices.Sort(metricsTo)
	require.Equal(t, map[string][]string{"receivers": {"otlp"}, "processors": {"memory_limiter"}, "exporters": metricsTo}, p["metrics"],
		"metrics to every collector: any may be the judge")
	require.Len(t, p, 2)

	// Routing by trace id over the collectors.
	var judge charttest.WorkloadContainer
	var grpcPort int32
	for _, c := range collectors(m) {
		a := args(t, c.Container)
		judge = c
		cp, ok := charttest.ContainerPort(c.Container, "otlp-grpc", 0)
		require.True(t, ok)
		_, port, err := net.SplitHostPort(a["otlp-grpc-addr"])
		require.NoError(t, err)
		require.Equal(t, strconv.Itoa(int(cp.ContainerPort)), port)
		grpcPort = cp.ContainerPort
	}
	lbx := cfg.Exporters.LoadBalancing
	require.Equal(t, "traceID", lbx.RoutingKey, "all spans of a trace must reach one collector")
	headless := fullname + "-collector"
	switch v.str("loadBalancer.resolver") {
	case "dns":
		require.NotNil(t, lbx.Resolver.DNS)
		require.Nil(t, lbx.Resolver.K8s)
		require.Equal(t, fqdn(headless), lbx.Resolver.DNS.Hostname)
		require.Equal(t, strconv.Itoa(int(grpcPort)), lbx.Resolver.DNS.Port)
		require.Empty(t, lb.Pod.Spec.ServiceAccountName)
	case "k8s":
		require.NotNil(t, lbx.Resolver.K8s)
		require.Nil(t, lbx.Resolver.DNS)
		require.Equal(t, headless+"."+charttest.Namespace, lbx.Resolver.K8s.Service)
		require.Equal(t, []int32{grpcPort}, lbx.Resolver.K8s.Ports)
		checkResolverRBAC(t, m, lb.Pod.Spec.ServiceAccountName)
	default:
		t.Fatalf("resolver %q", v.str("loadBalancer.resolver"))
	}
	require.NotNil(t, m.Service(headless))

	// Metrics to every collector (each a judge candidate), through each
	// StatefulSet pod's DNS name.
	require.Equal(t, "StatefulSet", judge.Kind)
	require.Equal(t, int32(replicas), judge.Replicas)
	require.Len(t, cfg.Exporters.Collectors, replicas)
	clients := []otlpClient{lbx.Protocol.OTLP}
	for i := range replicas {
		e, ok := cfg.Exporters.Collectors[fmt.Sprintf("otlp_grpc/collector-%d", i)]
		require.True(t, ok, "an exporter to collector %d", i)
		require.Equal(t, fmt.Sprintf("%s-%d.%s:%d", judge.Name, i, fqdn(judge.ServiceName), grpcPort), e.Endpoint)
		clients = append(clients, e)
	}

	// TLS as the collectors serve it; every file mounted.
	ca := args(t, judge.Container)
	_, collectorsTLS := ca["tls-cert-file"]
	_, mutual := ca["tls-client-ca-file"]
	for _, client := range clients {
		require.Equal(t, !collectorsTLS, client.TLS.Insecure)
		if collectorsTLS {
			require.NotEmpty(t, client.TLS.CAFile)
			require.Equal(t, headless+"."+charttest.Namespace+".svc", client.TLS.ServerNameOverride, "the name every collector's certificate carries")
		}
		require.Equal(t, mutual, client.TLS.CertFile != "", "a client certificate exactly with mutual TLS")
		for _, f := range client.TLS.files() {
			require.Contains(t, mo.Files, f, "%s is not a mounted Secret key", f)
		}
	}
	for _, srv := range []otlpServer{cfg.Receivers.OTLP.Protocols.GRPC, cfg.Receivers.OTLP.Protocols.HTTP} {
		require.Equal(t, collectorsTLS, srv.TLS != nil, "the load balancer serves TLS as the collectors do")
		if srv.TLS != nil {
			require.Equal(t, mutual, srv.TLS.ClientCAFile != "")
			for _, f := range srv.TLS.files() {
				require.Contains(t, mo.Files, f)
			}
		}
	}

	// Tokens: each sender's header goes on to the collectors.
	_, tokens := ca["ingest-tokens-file"]
	for _, srv := range []otlpServer{cfg.Receivers.OTLP.Protocols.GRPC, cfg.Receivers.OTLP.Protocols.HTTP} {
		require.Equal(t, tokens, srv.IncludeMetadata)
	}
	require.Equal(t, tokens, cfg.Extensions.HeadersSetter != nil)
	require.Equal(t, tokens, slices.Contains(cfg.Service.Extensions, "headers_setter"))
	require.Contains(t, cfg.Service.Extensions, "health_check")
	if tokens {
		require.Len(t, cfg.Extensions.HeadersSetter.Headers, 1)
		h := cfg.Extensions.HeadersSetter.Headers[0]
		require.Equal(t, "authorization", h.Key)
		require.Equal(t, "authorization", h.FromContext)
		for _, client := range clients {
			require.NotNil(t, client.Auth)
			require.Equal(t, "headers_setter", client.Auth.Authenticator)
			require.NotNil(t, client.SendingQueue, "batches in the queue must keep senders apart")
			require.Equal(t, []string{"authorization"}, client.SendingQueue.Batch.Partition.MetadataKeys)
		}
	}

	// Ports: what it listens on is what its container, Service and probes use.
	for name, ep := range map[string]string{"otlp-grpc": cfg.Receivers.OTLP.Protocols.GRPC.Endpoint, "otlp-http": cfg.Receivers.OTLP.Protocols.HTTP.Endpoint, "health": cfg.Extensions.HealthCheck.Endpoint} {
		_, port, err := net.SplitHostPort(ep)
		require.NoError(t, err, ep)
		cp, ok := charttest.ContainerPort(lb.Container, name, 0)
		require.True(t, ok, "container port %s", name)
		require.Equal(t, strconv.Itoa(int(cp.ContainerPort)), port, name)
	}
	require.Equal(t, "health", lb.Container.LivenessProbe.HTTPGet.Port.StrVal)
}

func checkResolverRBAC(t *testing.T, m *charttest.Manifest, sa string) {
	require.NotEmpty(t, sa, "the k8s resolver needs a service account")
	require.Len(t, m.ServiceAccounts, 1)
	require.Equal(t, sa, m.ServiceAccounts[0].Name)
	require.Len(t, m.Roles, 1)
	rules := m.Roles[0].Rules
	require.Len(t, rules, 1)
	require.Equal(t, []string{"discovery.k8s.io"}, rules[0].APIGroups)
	require.Equal(t, []string{"endpointslices"}, rules[0].Resources)
	require.ElementsMatch(t, []string{"get", "list", "watch"}, rules[0].Verbs)
	require.Len(t, m.RoleBindings, 1)
	rb := m.RoleBindings[0]
	require.Equal(t, "Role", rb.RoleRef.Kind)
	require.Equal(t, m.Roles[0].Name, rb.RoleRef.Name)
	require.Len(t, rb.Subjects, 1)
	require.Equal(t, sa, rb.Subjects[0].Name)
	require.Equal(t, charttest.Namespace, rb.Subjects[0].Namespace)
}

// alertsJob returns the job label dashboards/alerts.yaml selects.
func alertsJob(t *testing.T) string {
	raw, err := os.ReadFile(filepath.Join(charttest.RepoRoot(), "dashboards", "alerts.yaml"))
	require.NoError(t, err)
	m := regexp.MustCompile(`up\{job="([^"]+)"\}`).FindSubmatch(raw)
	require.NotNil(t, m, "dashboards/alerts.yaml selects no job")
	return string(m[1])
}

// checkServiceMonitor: it scrapes /metrics on every collector, and only
// there, as the job the alerting rules select, with the scheme, CA and
// token the collectors ask for.
func checkServiceMonitor(t *testing.T, m *charttest.Manifest, v values) {
	if !v.boolean("serviceMonitor.enabled") {
		require.Empty(t, m.ServiceMonitors)
		return
	}
	require.Len(t, m.ServiceMonitors, 1)
	sm := m.ServiceMonitors[0]
	var selected []*corev1.Service
	for _, s := range m.Services {
		if charttest.Selects(sm.Spec.Selector.MatchLabels, s.Labels) {
			selected = append(selected, s)
		}
	}
	require.Len(t, selected, 1, "the ServiceMonitor selects the collectors' headless Service alone")
	svc := selected[0]
	require.Equal(t, fullname+"-collector", svc.Name)
	require.Equal(t, alertsJob(t), svc.Labels[sm.Spec.JobLabel], "job label: dashboards/alerts.yaml selects it")
	require.Equal(t, []string{charttest.Namespace}, sm.Spec.NamespaceSelector.MatchNames)
	for _, c := range collectors(m) {
		require.True(t, charttest.Selects(svc.Spec.Selector, c.Pod.Labels), "%s is scraped", c.Name)
	}
	a := args(t, collectors(m)[0].Container)
	_, tls := a["tls-cert-file"]
	_, mutual := a["tls-client-ca-file"]
	_, apiTokens := a["api-tokens-file"]
	require.Len(t, sm.Spec.Endpoints, 1)
	ep := sm.Spec.Endpoints[0]
	var port *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Name == ep.Port {
			port = &svc.Spec.Ports[i]
		}
	}
	require.NotNil(t, port, "endpoint port %q is not a port of %s", ep.Port, svc.Name)
	require.Equal(t, "http-api", port.TargetPort.StrVal, "/metrics is on the API port")
	require.Equal(t, "/metrics", ep.Path)
	scheme := "HTTP"
	if tls {
		scheme = "HTTPS"
	}
	require.Equal(t, scheme, string(*ep.Scheme))
	require.Equal(t, tls, ep.TLSConfig != nil)
	if tls {
		require.Equal(t, svc.Name+"."+charttest.Namespace+".svc", *ep.TLSConfig.ServerName)
		require.NotNil(t, ep.TLSConfig.CA.Secret)
		require.Equal(t, mutual, ep.TLSConfig.Cert.Secret != nil && ep.TLSConfig.KeySecret != nil)
	}
	require.Equal(t, apiTokens && a["open-metrics"] != "true", ep.Authorization != nil, "a token exactly when /metrics asks for one")
	if ep.Authorization != nil {
		require.Equal(t, "Bearer", ep.Authorization.Type)
	}
}

// checkMigrate: with ClickHouse, one hook Job migrates the schema before
// install and upgrade, with the collectors' DSN and retention.
func checkMigrate(t *testing.T, m *charttest.Manifest, v values) {
	jobs := m.Containers("migrate")
	if !v.boolean("clickhouse.enabled") {
		require.Empty(t, jobs)
		return
	}
	require.Len(t, jobs, 1)
	j := jobs[0]
	require.Equal(t, "Job", j.Kind)
	require.Equal(t, "migrate", j.Container.Args[0])
	require.Equal(t, corev1.RestartPolicyNever, j.Pod.Spec.RestartPolicy)
	job := m.Jobs[0]
	require.Equal(t, "pre-install,pre-upgrade", job.Annotations["helm.sh/hook"])
	c := collectors(m)[0]
	require.Equal(t, args(t, c.Container)["retention"], args(t, j.Container)["retention"], "the migration sets the TTL the collectors keep")
	collectorEnv := map[string]corev1.EnvVar{}
	for _, e := range c.Container.Env {
		collectorEnv[e.Name] = e
	}
	var dsn bool
	for _, e := range j.Container.Env {
		require.Equal(t, collectorEnv[e.Name], e, "the job's %s is the collectors'", e.Name)
		dsn = dsn || e.Name == "CARTOGRAPH_CLICKHOUSE_DSN"
	}
	require.True(t, dsn)
	require.Equal(t, c.Container.Image, j.Container.Image)
}

// checkUI: the UI reads the collectors' API through its Service, over TLS
// when the collectors serve it: the one collector, or any of them when
// scaled out, each a judge candidate serving the merged graph.
func checkUI(t *testing.T, m *charttest.Manifest, v values) {
	uis := m.Containers("ui")
	if !v.boolean("ui.enabled") {
		require.Empty(t, uis)
		return
	}
	require.Len(t, uis, 1)
	u, err := url.Parse(args(t, uis[0].Container)["collector"])
	require.NoError(t, err)
	require.Equal(t, fqdn(fullname+"-api"), u.Hostname())
	api := m.Service(fullname + "-api")
	require.NotNil(t, api)
	require.Len(t, api.Spec.Ports, 1)
	require.Equal(t, strconv.Itoa(int(api.Spec.Ports[0].Port)), u.Port())
	_, tls := args(t, collectors(m)[0].Container)["tls-cert-file"]
	require.Equal(t, map[bool]string{true: "https", false: "http"}[tls], u.Scheme)
	var reached int
	for _, c := range collectors(m) {
		if charttest.Selects(api.Spec.Selector, c.Pod.Labels) {
			reached += int(c.Replicas)
			a := args(t, c.Container)
			require.NotEqual(t, "off", a["detect"], "the UI reads a collector that may judge")
			if c.Replicas > 1 || len(collectors(m)) > 1 {
				require.Equal(t, "true", a["serve-merged"], "the UI reads the merged graph whichever collector answers")
			}
		}
	}
	require.Equal(t, v.get("collector.replicas").(int), reached)
}

// TestBadValues renders each values file under testdata/bad, which must
// fail with the message its first line names (`# want: ...`).
func TestBadValues(t *testing.T) {
	helm := charttest.Helm(t)
	files, err := filepath.Glob(filepath.Join("testdata", "bad", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(name(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			require.NoError(t, err)
			first, _ := bufio.NewReader(bytes.NewReader(raw)).ReadString('\n')
			want, ok := strings.CutPrefix(strings.TrimSpace(first), "# want: ")
			require.True(t, ok, "%s: the first line must be `# want: <part of the error>`", f)
			_, err = charttest.Template(helm, charttest.Options{Release: charttest.Release, Namespace: charttest.Namespace, Values: f})
			require.Error(t, err, "rendered, but must fail with %q", want)
			require.Contains(t, err.Error(), want)
		})
	}
}

// TestDecodeIsStrict: the decoder refuses what the API server would not
// take (these are the mistakes a template makes).
func TestDecodeIsStrict(t *testing.T) {
	good := "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  namespace: ns\nspec:\n  ports:\n    - name: http\n      port: 80\n"
	_, err := charttest.Decode([]byte(good))
	require.NoError(t, err)
	for name, doc := range map[string]string{
		"unknown field":   strings.Replace(good, "port: 80", "port: 80\n      prot: TCP", 1),
		"wrong type":      strings.Replace(good, "port: 80", "port: \"80\"", 1),
		"duplicate key":   strings.Replace(good, "  name: a\n", "  name: a\n  name: b\n", 1),
		"no namespace":    strings.Replace(good, "  namespace: ns\n", "", 1),
		"bad name":        strings.Replace(good, "name: a\n", "name: A_b\n", 1),
		"bad label":       strings.Replace(good, "  name: a\n", "  name: a\n  labels: {\"x/y/z\": \"1\"}\n", 1),
		"unknown kind":    strings.Replace(good, "kind: Service", "kind: Sevrice", 1),
		"misplaced field": strings.Replace(good, "spec:\n", "spec:\n  containers: []\n", 1),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := charttest.Decode([]byte(doc))
			require.Error(t, err)
		})
	}
}

// TestUserCollectorValues checks deploy/helm/otelcol-values.yaml, what
// users add to their own OpenTelemetry Collector: traces and the
// kafkametrics and rabbitmq receivers' metrics go to the OTLP Service the
// chart renders for the release and namespace it names, every pipeline
// component is defined, and every defined one used.
func TestUserCollectorValues(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(charttest.ChartDir(), "..", "otelcol-values.yaml"))
	require.NoError(t, err)
	var vals struct {
		Mode  string `json:"mode"`
		Image struct {
			Repository string `json:"repository"`
			Tag        string `json:"tag"`
		} `json:"image"`
		Command struct {
			Name string `json:"name"`
		} `json:"command"`
		ExtraEnvs []corev1.EnvVar `json:"extraEnvs"`
		Config    struct {
			Receivers  map[string]any `json:"receivers"`
			Processors map[string]any `json:"processors"`
			Exporters  map[string]struct {
				Endpoint string `json:"endpoint"`
				TLS      struct {
					Insecure bool `json:"insecure"`
				} `json:"tls"`
			} `json:"exporters"`
			Service struct {
				Pipelines map[string]struct {
					Receivers  []string `json:"receivers"`
					Processors []string `json:"processors"`
					Exporters  []string `json:"exporters"`
				} `json:"pipelines"`
			} `json:"service"`
		} `json:"config"`
	}
	require.NoError(t, sigsyaml.UnmarshalStrict(raw, &vals))
	require.Equal(t, "otel/opentelemetry-collector-contrib", vals.Image.Repository, "kafkametrics and rabbitmq are contrib receivers")
	require.Equal(t, "otelcol-contrib", vals.Command.Name)
	cfg := vals.Config
	used := map[string]bool{}
	for name, p := range cfg.Service.Pipelines {
		for _, r := range p.Receivers {
			require.Contains(t, cfg.Receivers, r, "pipeline %s", name)
			used["receiver "+r] = true
		}
		for _, r := range p.Processors {
			require.Contains(t, cfg.Processors, r, "pipeline %s", name)
			used["processor "+r] = true
		}
		for _, r := range p.Exporters {
			require.Contains(t, cfg.Exporters, r, "pipeline %s", name)
			used["exporter "+r] = true
		}
	}
	for r := range cfg.Receivers {
		require.True(t, used["receiver "+r], "receiver %s is in no pipeline", r)
	}
	for r := range cfg.Exporters {
		require.True(t, used["exporter "+r], "exporter %s is in no pipeline", r)
	}
	require.Equal(t, []string{"otlp/cartograph"}, cfg.Service.Pipelines["traces"].Exporters)
	require.Equal(t, []string{"otlp/cartograph"}, cfg.Service.Pipelines["metrics"].Exporters)
	require.Subset(t, cfg.Service.Pipelines["metrics"].Receivers, []string{"kafkametrics", "rabbitmq"})

	// The endpoint is the chart's OTLP Service for release and namespace
	// "cartograph", single and scaled out alike.
	endpoint := cfg.Exporters["otlp/cartograph"].Endpoint
	host, port, err := net.SplitHostPort(endpoint)
	require.NoError(t, err)
	for _, values := range []string{"", filepath.Join(charttest.ChartDir(), "ci", "scaleout-values.yaml")} {
		out, err := charttest.Template(charttest.Helm(t), charttest.Options{Release: "cartograph", Namespace: "cartograph", Values: values})
		require.NoError(t, err)
		m, err := charttest.Decode(out)
		require.NoError(t, err)
		svcName, ns, ok := strings.Cut(host, ".")
		require.True(t, ok)
		require.Equal(t, "cartograph.svc.cluster.local", ns)
		svc := m.Service(svcName)
		require.NotNil(t, svc, "%s names no Service the chart renders", endpoint)
		var found bool
		for _, p := range svc.Spec.Ports {
			found = found || (strconv.Itoa(int(p.Port)) == port && p.Name == "otlp-grpc")
		}
		require.True(t, found, "%s: port %s is not the Service's OTLP/gRPC port", endpoint, port)
	}
}
