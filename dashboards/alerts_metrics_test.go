package dashboards

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

var (
	metricRef = regexp.MustCompile(`\bcartograph_[a-z0-9_]+`)
	// A metric name in Go source: a string literal, or prometheus Opts with
	// Namespace, Subsystem and Name fields on one line.
	literalName = regexp.MustCompile(`"(cartograph_[a-z0-9_]+)"`)
	splitName   = regexp.MustCompile(`Namespace:\s*"([a-z0-9_]+)",\s*Subsystem:\s*"([a-z0-9_]+)",\s*Name:\s*"([a-z0-9_]+)"`)
)

// registeredMetrics returns the metric names the collector's code defines.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range literalName.FindAllSubmatch(src, -1) {
			names[string(m[1])] = true
		}
		for _, m := range splitName.FindAllSubmatch(src, -1) {
			names[string(m[1])+"_"+string(m[2])+"_"+string(m[3])] = true
		}
		return nil
	})
	require.NoError(t, err)
	return names
}

// TestAlertRulesUseRealMetrics fails when an alerting rule (or a promtool
// test series) names a cartograph metric the code does not define, e.g.
// after a rename: such a rule would never fire.
func TestAlertRulesUseRealMetrics(t *testing.T) {
	defined := registeredMetrics(t)
	require.Contains(t, defined, "cartograph_storage_batches_total")
	require.Contains(t, defined, "cartograph_ingest_spans_invalid_total", "Namespace/Subsystem/Name are joined")

	raw, err := os.ReadFile("alerts.yaml")
	require.NoError(t, err)
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &rules))
	var used []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			for _, m := range metricRef.FindAllString(r.Expr, -1) {
				used = append(used, r.Alert+": "+m)
			}
		}
	}
	require.NotEmpty(t, used)
	tests, err := os.ReadFile("alerts_test.yaml")
	require.NoError(t, err)
	for _, m := range metricRef.FindAllString(string(tests), -1) {
		used = append(used, "alerts_test.yaml: "+m)
	}
	var missing []string
	for _, u := range used {
		_, m, _ := strings.Cut(u, ": ")
		base := m
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(m, suf); ok && defined[b] {
				base = b
			}
		}
		if !defined[base] {
			missing = append(missing, u)
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "metrics no code defines")
}
