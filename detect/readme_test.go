package detect

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite generated README sections")

// TestREADMEThresholds keeps the README's threshold table equal to the
// catalogue; -update rewrites it.
func TestREADMEThresholds(t *testing.T) {
	var b strings.Builder
	b.WriteString("| detector | key | default | unit | |\n|---|---|---|---|---|\n")
	for _, th := range Catalogue() {
		fmt.Fprintf(&b, "| `%s` | `%s` | `%s` | %s | %s |\n", th.Detector, th.Key, th.Default, th.Unit, th.Doc)
	}
	replaceSection(t, "../README.md", "thresholds", b.String())
}

// replaceSection checks (or with -update rewrites) the text between the
// README markers "<!-- name: ... -->" and "<!-- /name -->".
func replaceSection(t *testing.T, path, name, body string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	s := string(raw)
	start := strings.Index(s, "<!-- "+name+":")
	end := strings.Index(s, "<!-- /"+name+" -->")
	require.True(t, start >= 0 && end > start, "README markers for %s", name)
	start += strings.Index(s[start:], "-->") + len("-->\n")
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(s[:start]+body+s[end:]), 0o644))
		return
	}
	require.Equal(t, body, s[start:end], "README section %s is stale: run with -update", name)
}
