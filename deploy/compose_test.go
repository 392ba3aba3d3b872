package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/seed-a49a8342/cartograph/deploy/composetest"
)

// root is the repository root, relative to this package.
const root = ".."

// loadCompose loads docker-compose.yaml with compose-go, as `docker
// compose config` would (see composetest): the Compose specification's
// schema (an unknown or misspelt key fails), interpolation with every
// variable at its default, normalisation, paths resolved.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	return composetest.Load(t)
}

// builtFromRepo reports whether s runs the image built from the
// repository's Dockerfile.
func builtFromRepo(s types.ServiceConfig) bool { return s.Build != nil }

// flagValue returns the value of --name in args (forms --name=v, -name=v,
// --name v), and whether it is there.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		n := strings.TrimLeft(a, "-")
		if n == a {
			continue
		}
		if k, v, ok := strings.Cut(n, "="); ok && k == name {
			return v, true
		}
		if n == name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

func TestComposeServices(t *testing.T) {
	c := loadCompose(t)
	require.Equal(t, "cartograph", c.Name)
	want := []string{"clickhouse", "migrate", "collector-1", "collector-2", "ui", "otel-collector", "rabbitmq", "loadgen", "prometheus", "grafana"}
	require.ElementsMatch(t, want, c.ServiceNames())

	images := map[string]string{
		"clickhouse":     "clickhouse/clickhouse-server",
		"otel-collector": "otel/opentelemetry-collector-contrib",
		"grafana":        "grafana/grafana",
		"prometheus":     "prom/prometheus",
		"rabbitmq":       "rabbitmq",
	}
	for name, repo := range images {
		t.Run(name+" official image", func(t *testing.T) {
			img := c.Services[name].Image
			require.True(t, strings.HasPrefix(img, repo+":"), "%s: image %q, want %s:<tag>", name, img, repo)
			require.Nil(t, c.Services[name].Build, "%s runs the official image, built from nothing here", name)
		})
	}
	for name, s := range c.Services {
		if builtFromRepo(s) {
			require.Equal(t, composetest.RepoRoot(), s.Build.Context, "%s: built from the repository", name)
			require.FileExists(t, filepath.Join(s.Build.Context, s.Build.Dockerfile), name)
			bin := composetest.Binary(s)
			require.DirExists(t, filepath.Join(root, "cmd", bin), "%s runs %s, a command of the repository", name, bin)
			require.LessOrEqual(t, len(s.Entrypoint), 1, "%s: the entrypoint is the binary alone", name)
			if len(s.Entrypoint) == 1 {
				require.Equal(t, "/usr/local/bin/"+bin, s.Entrypoint[0], "%s: the Dockerfile copies the binaries to /usr/local/bin", name)
			}
		} else {
			require.NotEmpty(t, s.Image, "%s: an image or a build", name)
		}
	}
}

// pinnedRef matches an image reference with a tag or digest that names a
// version: not latest, not a bare major like "12" (which moves).
var pinnedRef = regexp.MustCompile(`^[a-z0-9./_-]+(:[A-Za-z0-9._-]*[0-9][A-Za-z0-9._-]*)?(@sha256:[0-9a-f]{64})?$`)

func pinned(ref string) error {
	if !pinnedRef.MatchString(ref) {
		return fmt.Errorf("image %q: not a valid reference", ref)
	}
	name, tag, hasTag := strings.Cut(strings.Split(ref, "@")[0], ":")
	switch {
	case !hasTag && !strings.Contains(ref, "@sha256:"):
		return fmt.Errorf("image %q: no tag or digest (means latest)", ref)
	case tag == "latest" || strings.HasPrefix(tag, "latest-"):
		return fmt.Errorf("image %q: latest is not pinned", ref)
	case name == "":
		return fmt.Errorf("image %q: no name", ref)
	}
	return nil
}

func TestImagesPinned(t *testing.T) {
	for _, tc := range []struct {
		ref string
		ok  bool
	}{
		{"grafana/grafana:12.2.0", true},
		{"clickhouse/clickhouse-server:25.8", true},
		{"golang:1.26.8-bookworm", true},
		{"grafana/grafana", false},
		{"grafana/grafana:latest", false},
		{"alpine@sha256:" + strings.Repeat("a", 64), true},
	} {
		require.Equal(t, tc.ok, pinned(tc.ref) == nil, tc.ref)
	}

	c := loadCompose(t)
	for name, s := range c.Services {
		t.Run(name, func(t *testing.T) {
			if builtFromRepo(s) {
				require.Equal(t, "cartograph:dev", s.Image, "services built from the repository share one local image")
				return
			}
			require.NoError(t, pinned(s.Image))
		})
	}
	t.Run("Dockerfile", func(t *testing.T) {
		args, froms := dockerfile(t)
		require.GreaterOrEqual(t, len(froms), 2, "multi-stage build")
		for _, from := range froms {
			ref := from
			if strings.HasPrefix(ref, "${") {
				ref = args[strings.Trim(ref, "${}")]
			}
			require.NoError(t, pinned(ref), "FROM %s", from)
		}
	})
}

// dockerfile returns the Dockerfile's ARG defaults and its FROM images
// (stage names stripped).
func dockerfile(t *testing.T) (args map[string]string, froms []string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	require.NoError(t, err)
	args = map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "ARG":
			if k, v, ok := strings.Cut(f[1], "="); ok {
				args[k] = v
			}
		case "FROM":
			froms = append(froms, f[1])
		}
	}
	return args, froms
}

func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	require.NoError(t, err)
	s := string(raw)
	for _, want := range []string{"CGO_ENABLED=0", "./cmd/...", "USER 10001"} {
		require.Contains(t, s, want)
	}
	require.FileExists(t, filepath.Join(root, ".dockerignore"))
}

func TestComposePortsAndVolumes(t *testing.T) {
	c := loadCompose(t)
	hostPorts := map[string]string{}
	for name, s := range c.Services {
		for _, p := range s.Ports {
			require.Equal(t, "127.0.0.1", p.HostIP, "%s: port %v: publish on loopback only (nothing authenticates)", name, p)
			require.NotEmpty(t, p.Published, "%s: port %d: a fixed host port", name, p.Target)
			require.Equal(t, "tcp", p.Protocol, "%s: port %d", name, p.Target)
			if other, dup := hostPorts[p.Published]; dup {
				t.Errorf("host port %s published by %s and %s", p.Published, other, name)
			}
			hostPorts[p.Published] = name
		}
		for _, v := range s.Volumes {
			require.True(t, strings.HasPrefix(v.Target, "/"), "%s: volume %v: absolute target", name, v)
			switch v.Type {
			case types.VolumeTypeBind:
				rel, err := filepath.Rel(composetest.RepoRoot(), v.Source)
				require.NoError(t, err)
				require.False(t, strings.HasPrefix(rel, ".."), "%s: bind mount %s is outside the repository", name, v.Source)
				_, err = os.Stat(v.Source)
				require.NoError(t, err, "%s: bind mount %q", name, v.Source)
				require.True(t, v.ReadOnly, "%s: bind mount %q should be read-only", name, v.Source)
			case types.VolumeTypeVolume:
				_, declared := c.Volumes[v.Source]
				require.True(t, declared, "%s: named volume %q is not declared", name, v.Source)
			default:
				t.Errorf("%s: volume %v of type %s", name, v, v.Type)
			}
		}
	}
	// The published ports are the ones the services listen on (the
	// cartograph services' are checked against their flags in cmd/*).
	for name, want := range map[string]string{"grafana": "3000", "prometheus": "9090", "otel-collector": "4317", "clickhouse": "8123"} {
		require.Contains(t, composetest.PublishedTargets(c.Services[name]), want, "%s publishes container port %s", name, want)
	}
}

func TestComposeHealthAndOrder(t *testing.T) {
	c := loadCompose(t)
	// Images without a shell or an HTTP client cannot run a health
	// command; one-shot jobs and the load generator need none.
	noHealth := []string{"otel-collector", "migrate", "loadgen"}
	for name, s := range c.Services {
		t.Run(name, func(t *testing.T) {
			if slices.Contains(noHealth, name) {
				require.Nil(t, s.HealthCheck)
			} else {
				require.NotNil(t, s.HealthCheck, "health check")
				require.NotEmpty(t, s.HealthCheck.Test)
				require.Equal(t, "CMD", s.HealthCheck.Test[0], "exec form: the image may have no shell")
				require.NotNil(t, s.HealthCheck.Retries)
				require.Positive(t, *s.HealthCheck.Retries)
				require.NotNil(t, s.HealthCheck.Interval, "an interval")
				require.NotNil(t, s.HealthCheck.Timeout, "a timeout")
				require.LessOrEqual(t, *s.HealthCheck.Timeout, *s.HealthCheck.Interval)
				if s.HealthCheck.Test[1] == "wget" {
					u, err := composetest.HealthURL(s)
					require.NoError(t, err)
					require.Equal(t, "127.0.0.1", u.Hostname(), "the check runs inside the container")
					require.Contains(t, composetest.PublishedTargets(s), u.Port(), "it checks the port the service publishes")
				}
			}
			for dep, d := range s.DependsOn {
				ds, ok := c.Services[dep]
				require.True(t, ok, "depends on unknown service %q", dep)
				switch d.Condition {
				case "service_healthy":
					require.NotNil(t, ds.HealthCheck, "waits for %s to be healthy, which has no health check", dep)
				case "service_completed_successfully":
					require.Equal(t, "no", ds.Restart, "waits for %s to complete, which restarts", dep)
				case "service_started":
					require.Nil(t, ds.HealthCheck, "%s has a health check: wait for service_healthy", dep)
				default:
					t.Fatalf("depends_on %s: condition %q", dep, d.Condition)
				}
			}
		})
	}
	// Order: ClickHouse, then the schema, then the collectors, then
	// everything that sends to or reads from them.
	order := map[string][]string{
		"migrate":        {"clickhouse"},
		"collector-1":    {"clickhouse", "migrate"},
		"collector-2":    {"clickhouse", "migrate"},
		"ui":             {"collector-1"},
		"otel-collector": {"collector-1", "collector-2", "rabbitmq"},
		"loadgen":        {"otel-collector", "collector-1", "collector-2"},
		"grafana":        {"clickhouse", "migrate"},
		"prometheus":     {"collector-1", "collector-2"},
	}
	for name, deps := range order {
		for _, d := range deps {
			_, ok := c.Services[name].DependsOn[d]
			require.True(t, ok, "%s must wait for %s", name, d)
		}
	}
	// No cycles.
	state := map[string]int{}
	var visit func(string, []string)
	visit = func(n string, path []string) {
		switch state[n] {
		case 1:
			t.Fatalf("depends_on cycle: %v", append(path, n))
		case 2:
			return
		}
		state[n] = 1
		for d := range c.Services[n].DependsOn {
			visit(d, append(path, n))
		}
		state[n] = 2
	}
	for n := range c.Services {
		visit(n, nil)
	}
}

// TestOtelcolConfig checks deploy/otelcol.yaml against the compose file:
// traces are load-balanced by trace id over exactly the two collectors'
// OTLP/gRPC ports, metrics go to both (each a judge candidate), and every
// pipeline names components that are defined.
func TestOtelcolConfig(t *testing.T) {
	c := loadCompose(t)
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "otelcol.yaml"))
	require.NoError(t, err)
	var cfg struct {
		Receivers  map[string]any `yaml:"receivers"`
		Processors map[string]any `yaml:"processors"`
		Exporters  map[string]any `yaml:"exporters"`
		Extensions map[string]any `yaml:"extensions"`
		Service    struct {
			Extensions []string `yaml:"extensions"`
			Pipelines  map[string]struct {
				Receivers  []string `yaml:"receivers"`
				Processors []string `yaml:"processors"`
				Exporters  []string `yaml:"exporters"`
			} `yaml:"pipelines"`
		} `yaml:"service"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&cfg))

	for name, p := range cfg.Service.Pipelines {
		for _, r := range p.Receivers {
			require.Contains(t, cfg.Receivers, r, "pipeline %s", name)
		}
		for _, r := range p.Processors {
			require.Contains(t, cfg.Processors, r, "pipeline %s", name)
		}
		for _, r := range p.Exporters {
			require.Contains(t, cfg.Exporters, r, "pipeline %s", name)
		}
	}
	for _, e := range cfg.Service.Extensions {
		require.Contains(t, cfg.Extensions, e)
	}
	require.Equal(t, []string{"loadbalancing"}, cfg.Service.Pipelines["traces"].Exporters)
	require.Contains(t, cfg.Service.Pipelines["metrics"].Receivers, "rabbitmq")

	var lb struct {
		RoutingKey string `yaml:"routing_key"`
		Resolver   struct {
			Static struct {
				Hostnames []string `yaml:"hostnames"`
			} `yaml:"static"`
		} `yaml:"resolver"`
	}
	remarshal(t, cfg.Exporters["loadbalancing"], &lb)
	require.Equal(t, "traceID", lb.RoutingKey, "all spans of a trace must reach one collector")
	var targets []string
	for _, h := range lb.Resolver.Static.Hostnames {
		host, port, err := net.SplitHostPort(h)
		require.NoError(t, err, h)
		s, ok := c.Services[host]
		require.True(t, ok, "loadbalancing target %s is no compose service", h)
		addr, _ := flagValue(s.Command, "otlp-grpc-addr")
		require.True(t, strings.HasSuffix(addr, ":"+port), "%s: %s listens for OTLP/gRPC on %s", h, host, addr)
		targets = append(targets, host)
	}
	sort.Strings(targets)
	require.Equal(t, []string{"collector-1", "collector-2"}, targets)

	// Metrics to every collector, each a judge candidate: whichever holds
	// the judge's lease joins them with the merged graph.
	var metricsTo []string
	for _, e := range cfg.Service.Pipelines["metrics"].Exporters {
		var exp struct {
			Endpoint string `yaml:"endpoint"`
		}
		remarshal(t, cfg.Exporters[e], &exp)
		host, port, err := net.SplitHostPort(exp.Endpoint)
		require.NoError(t, err)
		s, ok := c.Services[host]
		require.True(t, ok, "metrics exporter %s: %s is no compose service", e, host)
		addr, _ := flagValue(s.Command, "otlp-grpc-addr")
		require.True(t, strings.HasSuffix(addr, ":"+port), "%s: %s listens for OTLP/gRPC on %s", e, host, addr)
		d, _ := flagValue(s.Command, "detect")
		require.Equal(t, "merged", d, "broker metrics go to judge candidates, %s", host)
		metricsTo = append(metricsTo, host)
	}
	sort.Strings(metricsTo)
	require.Equal(t, targets, metricsTo, "broker metrics go to every collector: any may judge")

	var rmq struct {
		Endpoint string `yaml:"endpoint"`
		Username string `yaml:"username"`
		Password string `yaml:"password"`
	}
	remarshal(t, cfg.Receivers["rabbitmq"], &rmq)
	require.Equal(t, "http://rabbitmq:15672", rmq.Endpoint)
	oc := composetest.Env(c.Services["otel-collector"])
	rq := composetest.Env(c.Services["rabbitmq"])
	require.Equal(t, "${env:RABBITMQ_USER}", rmq.Username)
	require.Equal(t, "${env:RABBITMQ_PASSWORD}", rmq.Password)
	require.Equal(t, rq["RABBITMQ_DEFAULT_USER"], oc["RABBITMQ_USER"])
	require.Equal(t, rq["RABBITMQ_DEFAULT_PASS"], oc["RABBITMQ_PASSWORD"])
}

func remarshal(t *testing.T, in, out any) {
	t.Helper()
	b, err := yaml.Marshal(in)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, out))
}

func TestPrometheusAndGrafanaConfig(t *testing.T) {
	c := loadCompose(t)
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus.yml"))
	require.NoError(t, err)
	var prom struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &prom))
	require.Len(t, prom.ScrapeConfigs, 1)
	require.Equal(t, "cartograph", prom.ScrapeConfigs[0].JobName, "the job the alerting rules select")
	var targets []string
	for _, sc := range prom.ScrapeConfigs[0].StaticConfigs {
		for _, tg := range sc.Targets {
			host, port, err := net.SplitHostPort(tg)
			require.NoError(t, err)
			addr, _ := flagValue(c.Services[host].Command, "api-addr")
			require.True(t, strings.HasSuffix(addr, ":"+port), "%s: %s serves /metrics on %s", tg, host, addr)
			targets = append(targets, host)
		}
	}
	require.ElementsMatch(t, []string{"collector-1", "collector-2"}, targets)
	// mounted returns the file of the repository a path inside svc's
	// container is bind-mounted from ("" when none is).
	mounted := func(svc, target string) string {
		for _, v := range c.Services[svc].Volumes {
			if v.Type == types.VolumeTypeBind && (target == v.Target || strings.HasPrefix(target, v.Target+"/")) {
				return filepath.Join(v.Source, strings.TrimPrefix(target, v.Target))
			}
		}
		return ""
	}
	for _, rf := range prom.RuleFiles {
		src := mounted("prometheus", rf)
		require.NotEmpty(t, src, "rule file %s is not mounted", rf)
		require.FileExists(t, src)
	}

	provisioning := mounted("grafana", "/etc/grafana/provisioning")
	require.NotEmpty(t, provisioning, "Grafana's provisioning directory is mounted")
	require.Equal(t, filepath.Join(composetest.RepoRoot(), "deploy", "grafana", "provisioning"), provisioning)
	ds := grafanaDatasources(t, filepath.Join(provisioning, "datasources", "clickhouse.yaml"))
	require.Len(t, ds, 1)
	d := ds[0]
	require.Equal(t, "grafana-clickhouse-datasource", d.Type)
	require.Equal(t, "clickhouse", d.JSONData["host"])
	require.Equal(t, 9000, d.JSONData["port"])
	require.Equal(t, "native", d.JSONData["protocol"])
	ch := composetest.Env(c.Services["clickhouse"])
	gf := composetest.Env(c.Services["grafana"])
	require.Equal(t, ch["CLICKHOUSE_USER"], d.JSONData["username"])
	require.Equal(t, ch["CLICKHOUSE_DB"], d.JSONData["defaultDatabase"])
	require.Equal(t, "$CLICKHOUSE_PASSWORD", d.Secure["password"])
	require.Equal(t, ch["CLICKHOUSE_PASSWORD"], gf["CLICKHOUSE_PASSWORD"])
	require.True(t, strings.HasPrefix(gf["GF_PLUGINS_PREINSTALL_SYNC"], "grafana-clickhouse-datasource@"), "the ClickHouse plugin is installed, pinned")

	raw, err = os.ReadFile(filepath.Join(provisioning, "dashboards", "cartograph.yaml"))
	require.NoError(t, err)
	var dp struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &dp))
	require.Len(t, dp.Providers, 1)
	dir := mounted("grafana", dp.Providers[0].Options.Path)
	require.NotEmpty(t, dir, "dashboards path %s is not mounted", dp.Providers[0].Options.Path)
	jsons, err := filepath.Glob(filepath.Join(dir, "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, jsons, "no dashboards in %s", dir)
	home := gf["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
	require.FileExists(t, mounted("grafana", home))
	checkServiceGraph(t, c, provisioning, dir)
}

// grafanaDatasource is a provisioned Grafana data source.
type grafanaDatasource struct {
	Name     string            `yaml:"name"`
	UID      string            `yaml:"uid"`
	Type     string            `yaml:"type"`
	URL      string            `yaml:"url"`
	JSONData map[string]any    `yaml:"jsonData"`
	Secure   map[string]string `yaml:"secureJsonData"`
}

// grafanaDatasources reads a data source provisioning file.
func grafanaDatasources(t *testing.T, file string) []grafanaDatasource {
	t.Helper()
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	var ds struct {
		APIVersion  int                 `yaml:"apiVersion"`
		Datasources []grafanaDatasource `yaml:"datasources"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &ds), file)
	require.Equal(t, 1, ds.APIVersion, file)
	return ds.Datasources
}

// checkServiceGraph checks the wiring of Grafana's service graph: every
// collector serves the traces_service_graph_* series, Prometheus scrapes
// them (TestPrometheusAndGrafanaConfig checks its targets), a Prometheus
// data source reads the prometheus service, a Tempo data source takes its
// service graph from it, and a provisioned dashboard shows that service
// graph in a Node Graph panel.
func checkServiceGraph(t *testing.T, c *types.Project, provisioning, dashboards string) {
	t.Helper()
	for _, s := range composetest.Services(c, "collector") {
		if s.Command[0] == "migrate" {
			continue
		}
		require.Contains(t, s.Command, "--grafana-service-graph-metrics", "%s serves the service graph series", s.Name)
	}
	ds := grafanaDatasources(t, filepath.Join(provisioning, "datasources", "service-graph.yaml"))
	byType := map[string]grafanaDatasource{}
	for _, d := range ds {
		byType[d.Type] = d
	}
	require.Len(t, byType, 2)
	prom, tempo := byType["prometheus"], byType["tempo"]
	u, err := url.Parse(prom.URL)
	require.NoError(t, err)
	ps, ok := c.Services[u.Hostname()]
	require.True(t, ok, "the Prometheus data source reads the compose service %s", u.Hostname())
	require.Contains(t, composetest.PublishedTargets(ps), u.Port())
	require.Equal(t, map[string]any{"datasourceUid": prom.UID}, tempo.JSONData["serviceMap"], "the Tempo data source's service graph comes from that Prometheus")

	raw, err := os.ReadFile(filepath.Join(dashboards, "service-graph", "service-graph.json"))
	require.NoError(t, err)
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Type       string `json:"type"`
			Datasource struct {
				Type string `json:"type"`
				UID  string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				QueryType  string `json:"queryType"`
				Datasource struct {
					UID string `json:"uid"`
				} `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	require.NoError(t, dec.Decode(&dash))
	require.Len(t, dash.Panels, 1)
	p := dash.Panels[0]
	require.Equal(t, "nodeGraph", p.Type)
	require.Equal(t, "tempo", p.Datasource.Type)
	require.Equal(t, tempo.UID, p.Datasource.UID)
	require.Len(t, p.Targets, 1)
	require.Equal(t, "serviceMap", p.Targets[0].QueryType, "the Tempo data source's Service Graph query")
	require.Equal(t, tempo.UID, p.Targets[0].Datasource.UID)
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds every command under cmd/ once into a temporary directory
// (the set the Dockerfile builds with ./cmd/...).
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "cartograph-deploy-bin")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+string(os.PathSeparator), "./cmd/...")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/...: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}
