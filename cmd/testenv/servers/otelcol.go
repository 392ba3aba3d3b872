package servers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
)

// otelcolVersion is the OpenTelemetry Collector release (core and contrib
// modules) of the load balancer the scale-out tests put in front of
// several collectors (cmd/collector's TestE2EScaleOut*), the version the
// Helm chart and docker-compose deploy.
const otelcolVersion = "v0.158.0"

// otelcolLBBuilder is the OpenTelemetry Collector Builder's configuration
// of that load balancer: OTLP in, the load_balancing exporter out (which
// brings its own OTLP/gRPC exporter per backend). output_path is relative
// to the build directory in the cache, never inside the repository.
const otelcolLBBuilder = `# Written by cartograph's cmd/testenv: the load balancer of the scale-out tests.
dist:
  name: otelcol-lb
  description: OTLP receiver + load_balancing exporter (cartograph scale-out tests)
  output_path: ./dist
  version: ` + "0.158.0" + `

receivers:
  - gomod: go.opentelemetry.io/collector/receiver/otlpreceiver ` + otelcolVersion + `

exporters:
  - gomod: github.com/open-telemetry/opentelemetry-collector-contrib/exporter/loadbalancingexporter ` + otelcolVersion + `
`

// OtelcolLB is an OpenTelemetry Collector with the load_balancing exporter,
// built with the OpenTelemetry Collector Builder from the Go module proxy
// into Env.Cache once (3-6 minutes on 2 cores; about 40 MB). The tests run
// their own, with a configuration of their own.
type OtelcolLB struct{}

func (*OtelcolLB) Name() string   { return "otelcol-lb" }
func (*OtelcolLB) Vars() []string { return []string{need.EnvOtelcolLB} }

// Tools: the tests run the load balancer in a mount namespace of its own
// (unshare, mount), where /etc/hosts is a file of the test.
func (*OtelcolLB) Tools() []Tool {
	return []Tool{{Names: []string{"unshare"}, Package: "util-linux"}, {Names: []string{"mount"}, Package: "mount"}}
}

func (*OtelcolLB) dir(env *Env) string {
	return filepath.Join(env.Cache, "otelcol-lb-"+otelcolVersion)
}

func (o *OtelcolLB) bin(env *Env) string { return filepath.Join(o.dir(env), "otelcol-lb") }

// Prepare builds the binary unless the cache has one built from this
// configuration; concurrent runs wait for each other.
func (o *OtelcolLB) Prepare(ctx context.Context, env *Env) error {
	dir := o.dir(env)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return err
	}
	defer unlock()
	bin, conf := o.bin(env), filepath.Join(dir, "builder.yaml")
	if old, err := os.ReadFile(conf); err == nil && string(old) == otelcolLBBuilder {
		if _, err := os.Stat(bin); err == nil {
			return nil
		}
	}
	env.logf("otelcol-lb: building an OpenTelemetry Collector %s with the load_balancing exporter (Collector Builder, Go module proxy) into %s (once; 3-6 minutes on 2 cores)",
		otelcolVersion, dir)
	gobin := filepath.Join(dir, "bin")
	cmd := goCommand(ctx, env, dir, "install", "go.opentelemetry.io/collector/cmd/builder@"+otelcolVersion)
	cmd.Env = append(cmd.Env, "GOBIN="+gobin)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go install the Collector Builder: %w", err)
	}
	build, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return err
	}
	defer removeAll(build)
	if err := os.WriteFile(filepath.Join(build, "builder.yaml"), []byte(otelcolLBBuilder), 0o644); err != nil {
		return err
	}
	// The builder runs go itself: it gets goCommand's module settings.
	env0 := goCommand(ctx, env, build).Env
	cmd = exec.CommandContext(ctx, filepath.Join(gobin, "builder"), "--config", "builder.yaml")
	cmd.Dir, cmd.Env = build, append(env0, "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = env.Log, env.Log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("the Collector Builder: %w", err)
	}
	if err := os.Rename(filepath.Join(build, "dist", "otelcol-lb"), bin); err != nil {
		return err
	}
	return os.WriteFile(conf, []byte(otelcolLBBuilder), 0o644)
}

// Start checks the binary runs and hands on its path.
func (o *OtelcolLB) Start(ctx context.Context, env *Env) (*Server, error) {
	s, err := program(ctx, o.Name(), o.bin(env), need.EnvOtelcolLB, "--version")
	if err != nil {
		return nil, err
	}
	if !strings.Contains(s.Summary, strings.TrimPrefix(otelcolVersion, "v")) {
		return nil, fmt.Errorf("%s: want version %s, got %s", o.bin(env), otelcolVersion, s.Summary)
	}
	return s, nil
}
