package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite generated documentation sections (docs/configuration.md)")

// TestREADMEFlags keeps the flag reference in docs/configuration.md equal to
// the flag definitions; -update rewrites it.
// flagsDoc is the documentation file holding the generated flag table.
const flagsDoc = "../../docs/configuration.md"

func TestREADMEFlags(t *testing.T) {
	var (
		c config
		b strings.Builder
	)
	b.WriteString("| flag | env | default | |\n|---|---|---|---|\n")
	newFlagSet(&c, io.Discard).VisitAll(func(f *flag.Flag) {
		def := f.DefValue
		if def == "" || def == "[]" {
			def = " "
		} else {
			def = "`" + def + "`"
		}
		fmt.Fprintf(&b, "| `--%s` | `%s` | %s | %s |\n", f.Name, envName(f.Name), def, strings.ReplaceAll(f.Usage, "|", "\\|"))
	})
	raw, err := os.ReadFile(flagsDoc)
	require.NoError(t, err)
	s := string(raw)
	start := strings.Index(s, "<!-- flags:")
	end := strings.Index(s, "<!-- /flags -->")
	require.True(t, start >= 0 && end > start, "flag markers in %s", flagsDoc)
	start += strings.Index(s[start:], "-->") + len("-->\n")
	if *update {
		require.NoError(t, os.WriteFile(flagsDoc, []byte(s[:start]+b.String()+s[end:]), 0o644))
		return
	}
	require.Equal(t, b.String(), s[start:end], flagsDoc+" flag reference is stale: go test ./cmd/collector -run TestREADMEFlags -update")
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:4317": true, "[::1]:80": true, "localhost:8070": true, ":4317": false, "0.0.0.0:4317": false, "10.0.0.5:1": false, "bogus": false} {
		require.Equal(t, want, loopback(addr), addr)
	}
}
