package deploy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// root is the repository root, relative to this package.
const root = ".."

// composeFile is the part of the Compose specification docker-compose.yaml
// uses. Decoding is strict: a misspelt key fails the test, as `docker
// compose config` would.
type composeFile struct {
	Name       string                    `yaml:"name"`
	Services   map[string]composeService `yaml:"services"`
	Volumes    map[string]any            `yaml:"volumes"`
	Extensions map[string]any            `yaml:",inline"` // x-* anchors
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       *composeBuild     `yaml:"build"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	Healthcheck *struct {
		Test        []string `yaml:"test"`
		Interval    string   `yaml:"interval"`
		Timeout     string   `yaml:"timeout"`
		Retries     int      `yaml:"retries"`
		StartPeriod string   `yaml:"start_period"`
	} `yaml:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Restart  string         `yaml:"restart"`
	Ulimits  map[string]any `yaml:"ulimits"`
	MemLimit string         `yaml:"mem_limit"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

// interpolation matches ${NAME} and ${NAME:-default}, the forms of
// Compose variable interpolation docker-compose.yaml uses.
var interpolation = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}`)

// loadCompose reads docker-compose.yaml with variables interpolated from
// the environment (or their defaults) as compose does.
func loadCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yaml"))
	require.NoError(t, err)
	raw = interpolation.ReplaceAllFunc(raw, func(m []byte) []byte {
		sub := interpolation.FindSubmatch(m)
		if v := os.Getenv(string(sub[1])); v != "" {
			return []byte(v)
		}
		return sub[2]
	})
	var c composeFile
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&c), "docker-compose.yaml")
	for k := range c.Extensions {
		require.True(t, strings.HasPrefix(k, "x-"), "unknown top-level key %q in docker-compose.yaml", k)
	}
	return c
}

// builtFromRepo reports whether s runs the image built from the
// repository's Dockerfile.
func (s composeService) builtFromRepo() bool { return s.Build != nil }

// binary is the cartograph command a service built from the repository
// runs: the image's entrypoint is the collector.
func (s composeService) binary() string {
	if len(s.Entrypoint) == 0 {
		return "collector"
	}
	return filepath.Base(s.Entrypoint[0])
}

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
	want := []string{"clickhouse", "migrate", "collector-1", "collector-2", "ui", "otel-collector", "rabbitmq", "loadgen", "prometheus", "grafana"}
	var got []string
	for name := range c.Services {
		got = append(got, name)
	}
	require.ElementsMatch(t, want, got)

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
		})
	}
	for name, s := range c.Services {
		if s.builtFromRepo() {
			require.Equal(t, ".", s.Build.Context, name)
			require.FileExists(t, filepath.Join(root, s.Build.Context, s.Build.Dockerfile), name)
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
			if s.builtFromRepo() {
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
			parts := strings.Split(p, ":")
			require.Len(t, parts, 3, "%s: port %q: want 127.0.0.1:host:container", name, p)
			require.Equal(t, "127.0.0.1", parts[0], "%s: port %q: publish on loopback only (nothing authenticates)", name, p)
			if other, dup := hostPorts[parts[1]]; dup {
				t.Errorf("host port %s published by %s and %s", parts[1], other, name)
			}
			hostPorts[parts[1]] = name
		}
		for _, v := range s.Volumes {
			src, rest, ok := strings.Cut(v, ":")
			require.True(t, ok, "%s: volume %q", name, v)
			dst, _, _ := strings.Cut(rest, ":")
			require.True(t, strings.HasPrefix(dst, "/"), "%s: volume %q: absolute target", name, v)
			if strings.HasPrefix(src, "./") {
				_, err := os.Stat(filepath.Join(root, src))
				require.NoError(t, err, "%s: bind mount %q", name, v)
				require.True(t, strings.HasSuffix(v, ":ro"), "%s: bind mount %q should be read-only", name, v)
				continue
			}
			_, declared := c.Volumes[src]
			require.True(t, declared, "%s: named volume %q is not declared", name, src)
		}
	}
	// The published ports are the ones the services listen on.
	for name, want := range map[string]string{"collector-1": "8070", "collector-2": "8070", "ui": "8080", "grafana": "3000", "prometheus": "9090", "otel-collector": "4317"} {
		var found bool
		for _, p := range c.Services[name].Ports {
			found = found || strings.HasSuffix(p, ":"+want)
		}
		require.True(t, found, "%s publishes container port %s", name, want)
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
				require.Nil(t, s.Healthcheck)
			} else {
				require.NotNil(t, s.Healthcheck, "health check")
				require.NotEmpty(t, s.Healthcheck.Test)
				require.Equal(t, "CMD", s.Healthcheck.Test[0], "exec form: the image may have no shell")
				require.Positive(t, s.Healthcheck.Retries)
			}
			for dep, d := range s.DependsOn {
				ds, ok := c.Services[dep]
				require.True(t, ok, "depends on unknown service %q", dep)
				switch d.Condition {
				case "service_healthy":
					require.NotNil(t, ds.Healthcheck, "waits for %s to be healthy, which has no health check", dep)
				case "service_completed_successfully":
					require.Equal(t, "no", ds.Restart, "waits for %s to complete, which restarts", dep)
				case "service_started":
					require.Nil(t, ds.Healthcheck, "%s has a health check: wait for service_healthy", dep)
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

// TestComposeScaleOut checks the two-collector design: shared ClickHouse,
// one judging collector, listeners reachable from the other containers.
func TestComposeScaleOut(t *testing.T) {
	c := loadCompose(t)
	ids := map[string]bool{}
	detect := map[string]string{}
	var dsn string
	for _, name := range []string{"collector-1", "collector-2"} {
		s := c.Services[name]
		v, _ := flagValue(s.Command, "storage")
		require.Equal(t, "clickhouse", v, name)
		id, ok := flagValue(s.Command, "collector-id")
		require.True(t, ok && id != "" && !ids[id], "%s: own --collector-id", name)
		ids[id] = true
		detect[name], _ = flagValue(s.Command, "detect")
		d := s.Environment["CARTOGRAPH_CLICKHOUSE_DSN"]
		require.NotEmpty(t, d, name)
		if dsn == "" {
			dsn = d
		}
		require.Equal(t, dsn, d, "%s: same DSN", name)
		for _, f := range []string{"otlp-grpc-addr", "otlp-http-addr", "api-addr"} {
			addr, _ := flagValue(s.Command, f)
			host, _, err := net.SplitHostPort(addr)
			require.NoError(t, err, "%s --%s", name, f)
			require.Equal(t, "0.0.0.0", host, "%s --%s: reachable from the other containers", name, f)
		}
	}
	require.Equal(t, map[string]string{"collector-1": "merged", "collector-2": "off"}, detect)
	for _, name := range []string{"collector-1", "collector-2"} {
		s := c.Services[name]
		soft, ok := flagValue(s.Command, "memory-limit")
		require.True(t, ok, "%s: --memory-limit, so it pushes back before the container limit kills it", name)
		n, err := strconv.ParseInt(soft, 10, 64)
		require.NoError(t, err)
		hard, ok := strings.CutSuffix(s.MemLimit, "g")
		require.True(t, ok, "%s: mem_limit in g", name)
		g, err := strconv.ParseInt(hard, 10, 64)
		require.NoError(t, err)
		require.Less(t, float64(n), 0.9*float64(g<<30), "%s: the soft limit leaves room below the container's", name)
	}
	require.True(t, strings.Contains(dsn, "@clickhouse:9000/"), "DSN %q points at the clickhouse service", dsn)
	require.Equal(t, dsn, c.Services["migrate"].Environment["CARTOGRAPH_CLICKHOUSE_DSN"], "migrate uses the collectors' DSN")
	require.Equal(t, []string{"migrate"}, c.Services["migrate"].Command[:1])

	ui := c.Services["ui"]
	listen, _ := flagValue(ui.Command, "listen")
	require.Equal(t, "0.0.0.0:8080", listen)
	coll, _ := flagValue(ui.Command, "collector")
	require.Equal(t, "http://collector-1:8070", coll)

	lg := c.Services["loadgen"]
	ep, _ := flagValue(lg.Command, "endpoint")
	require.Equal(t, "otel-collector:4317", ep, "the demo load goes through the OpenTelemetry Collector")
}

// TestOtelcolConfig checks deploy/otelcol.yaml against the compose file:
// traces are load-balanced by trace id over exactly the two collectors'
// OTLP/gRPC ports, metrics go to the judging collector, and every pipeline
// names components that are defined.
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

	var judge struct {
		Endpoint string `yaml:"endpoint"`
	}
	require.Len(t, cfg.Service.Pipelines["metrics"].Exporters, 1)
	remarshal(t, cfg.Exporters[cfg.Service.Pipelines["metrics"].Exporters[0]], &judge)
	host, _, err := net.SplitHostPort(judge.Endpoint)
	require.NoError(t, err)
	d, _ := flagValue(c.Services[host].Command, "detect")
	require.Equal(t, "merged", d, "broker metrics go to the collector that judges, %s", host)

	var rmq struct {
		Endpoint string `yaml:"endpoint"`
		Username string `yaml:"username"`
		Password string `yaml:"password"`
	}
	remarshal(t, cfg.Receivers["rabbitmq"], &rmq)
	require.Equal(t, "http://rabbitmq:15672", rmq.Endpoint)
	oc := c.Services["otel-collector"].Environment
	require.Equal(t, "${env:RABBITMQ_USER}", rmq.Username)
	require.Equal(t, "${env:RABBITMQ_PASSWORD}", rmq.Password)
	require.Equal(t, c.Services["rabbitmq"].Environment["RABBITMQ_DEFAULT_USER"], oc["RABBITMQ_USER"])
	require.Equal(t, c.Services["rabbitmq"].Environment["RABBITMQ_DEFAULT_PASS"], oc["RABBITMQ_PASSWORD"])
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
	mounted := func(svc, target string) string {
		for _, v := range c.Services[svc].Volumes {
			parts := strings.Split(v, ":")
			if strings.HasPrefix(target, parts[1]) {
				return filepath.Join(root, parts[0], strings.TrimPrefix(target, parts[1]))
			}
		}
		return ""
	}
	for _, rf := range prom.RuleFiles {
		src := mounted("prometheus", rf)
		require.NotEmpty(t, src, "rule file %s is not mounted", rf)
		require.FileExists(t, src)
	}

	raw, err = os.ReadFile(filepath.Join(root, "deploy", "grafana", "provisioning", "datasources", "clickhouse.yaml"))
	require.NoError(t, err)
	var ds struct {
		Datasources []struct {
			UID      string            `yaml:"uid"`
			Type     string            `yaml:"type"`
			JSONData map[string]any    `yaml:"jsonData"`
			Secure   map[string]string `yaml:"secureJsonData"`
		} `yaml:"datasources"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &ds))
	require.Len(t, ds.Datasources, 1)
	d := ds.Datasources[0]
	require.Equal(t, "grafana-clickhouse-datasource", d.Type)
	require.Equal(t, "clickhouse", d.JSONData["host"])
	require.Equal(t, 9000, d.JSONData["port"])
	require.Equal(t, "native", d.JSONData["protocol"])
	ch := c.Services["clickhouse"].Environment
	require.Equal(t, ch["CLICKHOUSE_USER"], d.JSONData["username"])
	require.Equal(t, ch["CLICKHOUSE_DB"], d.JSONData["defaultDatabase"])
	require.Equal(t, "$CLICKHOUSE_PASSWORD", d.Secure["password"])
	require.Equal(t, ch["CLICKHOUSE_PASSWORD"], c.Services["grafana"].Environment["CLICKHOUSE_PASSWORD"])
	require.True(t, strings.HasPrefix(c.Services["grafana"].Environment["GF_PLUGINS_PREINSTALL_SYNC"], "grafana-clickhouse-datasource@"), "the ClickHouse plugin is installed, pinned")

	raw, err = os.ReadFile(filepath.Join(root, "deploy", "grafana", "provisioning", "dashboards", "cartograph.yaml"))
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
	home := c.Services["grafana"].Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
	require.FileExists(t, mounted("grafana", home))
	require.Contains(t, c.Services["grafana"].Volumes, "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro")
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

// TestComposeFlags runs every cartograph binary the compose file starts
// with the arguments it passes plus -version: the binaries parse all flags
// (so an unknown flag or a bad value fails) before they honour -version
// and exit 0. CARTOGRAPH_* variables must name existing collector flags.
func TestComposeFlags(t *testing.T) {
	c := loadCompose(t)
	bin := binaries(t)
	for name, s := range c.Services {
		if !s.builtFromRepo() {
			continue
		}
		t.Run(name, func(t *testing.T) {
			cmdName := s.binary()
			if _, err := os.Stat(filepath.Join(root, "cmd", cmdName)); os.IsNotExist(err) {
				// cmd/ui is written in parallel with this file; until it
				// lands there is no binary to check the flags against.
				t.Skipf("cmd/%s does not exist yet: the Dockerfile builds no %s binary", cmdName, cmdName)
			}
			require.LessOrEqual(t, len(s.Entrypoint), 1, "entrypoint is the binary alone")
			if len(s.Entrypoint) == 1 {
				require.Equal(t, "/usr/local/bin/"+cmdName, s.Entrypoint[0], "the Dockerfile copies the binaries to /usr/local/bin")
			}
			args := slices.Clone(s.Command)
			if cmdName == "collector" && len(args) > 0 && args[0] == "migrate" {
				args = args[1:] // migrate takes the collector's flags
			}
			cmd := exec.Command(filepath.Join(bin, cmdName), append(args, "-version")...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			for k, v := range s.Environment {
				if strings.HasPrefix(k, "CARTOGRAPH_") {
					cmd.Env = append(cmd.Env, k+"="+v)
				}
			}
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s %v: %s", cmdName, args, out)
			require.Contains(t, string(out), "cartograph "+cmdName)

			help, _ := exec.Command(filepath.Join(bin, cmdName), "-h").CombinedOutput()
			for k := range s.Environment {
				if f, ok := strings.CutPrefix(k, "CARTOGRAPH_"); ok {
					flag := strings.ToLower(strings.ReplaceAll(f, "_", "-"))
					h := string(help)
					require.True(t, strings.Contains(h, "\n  -"+flag+" ") || strings.Contains(h, "\n  -"+flag+"\n"), "%s: %s names no flag of %s", name, k, cmdName)
				}
			}
		})
	}
}

// TestComposeSpec loads docker-compose.yaml with compose-go, the library
// `docker compose config` is built on: the file is validated against the
// Compose specification's schema, interpolated and normalised as Docker
// would, without a Docker engine.
func TestComposeSpec(t *testing.T) {
	abs, err := filepath.Abs(root)
	require.NoError(t, err)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(abs, "docker-compose.yaml")},
		cli.WithWorkingDirectory(abs), cli.WithInterpolation(true), cli.WithResolvedPaths(true))
	require.NoError(t, err)
	p, err := opts.LoadProject(context.Background())
	require.NoError(t, err, "docker-compose.yaml does not follow the Compose specification")
	require.Equal(t, "cartograph", p.Name)
	c := loadCompose(t)
	require.Len(t, p.Services, len(c.Services))
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type == "bind" {
				_, err := os.Stat(v.Source)
				require.NoError(t, err, "%s: bind mount source", name)
			}
		}
		if s.Build != nil {
			require.FileExists(t, filepath.Join(s.Build.Context, s.Build.Dockerfile), name)
		}
	}
}

// TestComposeConfig runs `docker compose config` where the Docker client
// has the compose plugin (this machine has none: TestComposeSpec and the
// YAML-level tests stand in for it).
func TestComposeConfig(t *testing.T) {
	if err := exec.Command("docker", "compose", "version").Run(); err != nil {
		t.Skip("no `docker compose` here; the YAML-level tests check the file")
	}
	cmd := exec.Command("docker", "compose", "-f", "docker-compose.yaml", "config", "--quiet")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
}
