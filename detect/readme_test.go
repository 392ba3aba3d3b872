package detect

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite generated documentation sections (docs/findings.md) and the golden files (testdata/lag-verdicts.jsonl)")

// TestREADMEThresholds keeps the threshold table in docs/findings.md equal
// to the catalogue, and its table of summary templates equal to Messages; -update
// rewrites them.
func TestREADMEThresholds(t *testing.T) {
	var b strings.Builder
	b.WriteString("| detector | key | default | unit | |\n|---|---|---|---|---|\n")
	for _, th := range Catalogue() {
		fmt.Fprintf(&b, "| `%s` | `%s` | `%s` | %s | %s |\n", th.Detector, th.Key, th.Default, th.Unit, th.Doc)
	}
	b.WriteString("\nSummary templates (`detect.Messages`): a detector's `message` key replaces its default, in Go\n" +
		"`text/template` syntax over the fields listed. A template that fails to parse is rejected at start; one that\n" +
		"fails on a finding (a missing or nil field) gives the default summary followed by\n" +
		"`(message template failed: <error>)`.\n\n")
	b.WriteString("| detector | key | default template | fields |\n|---|---|---|---|\n")
	for _, m := range Messages() {
		fields := make([]string, len(m.Fields))
		for i, f := range m.Fields {
			fields[i] = fmt.Sprintf("`%s` %s", f.Name, f.Doc)
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | `%s` | %s |\n", m.Detector, m.Key, tableCell(m.Template), tableCell(strings.Join(fields, "<br>")))
	}
	b.WriteString("\nFunctions besides the built-ins (`printf`, `eq`, `gt`, ...):")
	for i, f := range MessageFuncs() {
		sep := ";"
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(&b, "%s `%s` %s", sep, f.Name, f.Doc)
	}
	b.WriteString(".\n")
	replaceSection(t, "../docs/findings.md", "thresholds", b.String())
}

// tableCell escapes s for a Markdown table cell.
func tableCell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

// replaceSection checks (or with -update rewrites) the text of the file at
// path between the markers "<!-- name: ... -->" and "<!-- /name -->".
func replaceSection(t *testing.T, path, name, body string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	s := string(raw)
	start := strings.Index(s, "<!-- "+name+":")
	end := strings.Index(s, "<!-- /"+name+" -->")
	require.True(t, start >= 0 && end > start, "markers for %s in %s", name, path)
	start += strings.Index(s[start:], "-->") + len("-->\n")
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(s[:start]+body+s[end:]), 0o644))
		return
	}
	require.Equal(t, body, s[start:end], "section %s of %s is stale: run with -update", name, path)
}
