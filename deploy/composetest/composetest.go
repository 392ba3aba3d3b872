// Package composetest loads the repository's docker-compose.yaml with
// compose-go, the Compose specification's own Go library (what `docker
// compose config` is built on): the file is validated against the
// specification's schema, interpolated, normalised and checked for
// consistency as Docker would, without a Docker engine. The tests that
// check the file use it: deploy's, and those of cmd/collector, cmd/ui and
// cmd/loadgen, which give each service's command line and environment to
// their binary's real flag set.
//
// It is test support: nothing outside tests imports it.
package composetest

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// RepoRoot returns the absolute path of the repository.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// File returns the absolute path of docker-compose.yaml.
func File() string { return filepath.Join(RepoRoot(), "docker-compose.yaml") }

// Load loads docker-compose.yaml as `docker compose config` would, with
// no variable set in the environment (each ${VAR:-default} takes its
// default, so that the result is the same on every machine), paths
// resolved against the repository. It fails t when the file does not
// follow the Compose specification.
func Load(t testing.TB) *types.Project {
	t.Helper()
	p, err := LoadEnv(nil)
	if err != nil {
		t.Fatalf("docker-compose.yaml: %v", err)
	}
	return p
}

// LoadEnv is Load with the variables env ("NAME=value") set.
func LoadEnv(env []string) (*types.Project, error) {
	root := RepoRoot()
	opts, err := cli.NewProjectOptions([]string{File()},
		cli.WithWorkingDirectory(root), cli.WithEnv(env),
		cli.WithInterpolation(true), cli.WithNormalization(true), cli.WithConsistency(true), cli.WithResolvedPaths(true))
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

// Binary returns the cartograph command a service built from the
// repository runs: the image's entry point is the collector, and a
// service picks another with its entrypoint (/usr/local/bin/<command>).
// It returns "" for a service that runs another image.
func Binary(s types.ServiceConfig) string {
	if s.Build == nil {
		return ""
	}
	if len(s.Entrypoint) == 0 {
		return "collector"
	}
	return filepath.Base(s.Entrypoint[0])
}

// Services returns the services that run the cartograph command binary,
// ordered by name.
func Services(p *types.Project, binary string) []types.ServiceConfig {
	var out []types.ServiceConfig
	for _, s := range p.Services {
		if Binary(s) == binary {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b types.ServiceConfig) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Env returns a service's environment as its container gets it; a
// variable listed without a value (taken from the host by compose) is "".
func Env(s types.ServiceConfig) map[string]string {
	out := make(map[string]string, len(s.Environment))
	for k, v := range s.Environment {
		if v != nil {
			out[k] = *v
		} else {
			out[k] = ""
		}
	}
	return out
}

// Getenv returns a getenv over a service's environment, as a binary in
// its container would read it.
func Getenv(s types.ServiceConfig) func(string) string {
	env := Env(s)
	return func(k string) string { return env[k] }
}

// HealthURL returns the URL a service's health check fetches: the last
// argument of an exec-form (CMD) check that runs wget or curl.
func HealthURL(s types.ServiceConfig) (*url.URL, error) {
	hc := s.HealthCheck
	if hc == nil || len(hc.Test) < 3 || hc.Test[0] != "CMD" {
		return nil, fmt.Errorf("service %s: no exec-form (CMD) health check", s.Name)
	}
	if tool := hc.Test[1]; tool != "wget" && tool != "curl" {
		return nil, fmt.Errorf("service %s: health check runs %s, not wget or curl", s.Name, tool)
	}
	u, err := url.Parse(hc.Test[len(hc.Test)-1])
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("service %s: health check URL %q: %v", s.Name, hc.Test[len(hc.Test)-1], err)
	}
	return u, nil
}

// PublishedTargets returns the container ports a service publishes.
func PublishedTargets(s types.ServiceConfig) []string {
	var out []string
	for _, p := range s.Ports {
		out = append(out, fmt.Sprint(p.Target))
	}
	return out
}
