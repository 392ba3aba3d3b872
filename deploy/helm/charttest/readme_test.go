package charttest_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/deploy/helm/charttest"
)

// readmeInstalls returns the `helm install` commands of the README's
// Kubernetes section, each as its release, namespace and --set values
// (continued lines joined; $(...) replaced by a sample value).
func readmeInstalls(t *testing.T) []charttest.Options {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(charttest.RepoRoot(), "README.md"))
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(raw), "\n## Kubernetes\n")
	require.True(t, ok, "README has a Kubernetes section")
	section, _, _ = strings.Cut(section, "\n## ")
	var out []charttest.Options
	section = regexp.MustCompile(`\$\([^)]*\)`).ReplaceAllString(strings.ReplaceAll(section, "\\\n", " "), "abc1234")
	for _, cmd := range strings.Split(section, "\n") {
		f := strings.Fields(cmd)
		if len(f) < 4 || f[0] != "helm" || f[1] != "install" {
			continue
		}
		require.Equal(t, "deploy/helm/cartograph", f[3], "%s: installs the chart of the repository", cmd)
		o := charttest.Options{Release: f[2]}
		for i := 4; i < len(f); i++ {
			switch f[i] {
			case "--namespace":
				i++
				o.Namespace = f[i]
			case "--create-namespace":
			case "--set":
				i++
				o.Set = append(o.Set, f[i])
			default:
				t.Fatalf("%s: argument %q is not checked here", cmd, f[i])
			}
		}
		out = append(out, o)
	}
	return out
}

// TestREADMEInstallCommands renders each `helm install` command of the
// README's Kubernetes section as written (helm template with its --set
// values) and decodes it strictly: the one-collector install runs one
// Deployment judging its own graph; the scaled-out one runs one
// StatefulSet of that many collectors, every one a judge candidate
// (--detect=merged, the judge's lease elects one) serving the merged
// graph, and no fixed judge.
func TestREADMEInstallCommands(t *testing.T) {
	installs := readmeInstalls(t)
	require.Len(t, installs, 2, "the README shows one collector and several")
	helm := charttest.Helm(t)
	for i, o := range installs {
		t.Run([]string{"one collector", "scaled out"}[i], func(t *testing.T) {
			out, err := charttest.Template(helm, o)
			require.NoError(t, err)
			m, err := charttest.Decode(out)
			require.NoError(t, err)
			cs := m.Containers("collector")
			require.Len(t, cs, 1)
			flags, err := charttest.ParseFlags(cs[0].Container.Args)
			require.NoError(t, err)
			args := map[string]string{}
			for _, f := range flags {
				args[f.Name] = f.Value
			}
			require.Equal(t, "registry.example/cartograph:abc1234", cs[0].Container.Image)
			if i == 0 {
				require.Equal(t, "Deployment", cs[0].Kind)
				require.Equal(t, "local", args["detect"])
				require.Equal(t, "embedded", args["storage"])
				return
			}
			require.Equal(t, "StatefulSet", cs[0].Kind)
			require.Equal(t, int32(3), cs[0].Replicas)
			require.Equal(t, "merged", args["detect"], "every collector is a judge candidate")
			require.Equal(t, "true", args["serve-merged"])
			require.Equal(t, "clickhouse", args["storage"])
			require.Len(t, m.Containers("otelcol"), 1, "behind the load balancer")
			require.Len(t, m.Containers("migrate"), 1, "the migration hook")
		})
	}
}
