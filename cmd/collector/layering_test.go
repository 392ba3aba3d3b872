package main

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// layeringRules are the import rules of ../shared/STYLE.md ("Which way
// imports run"), as (importer, imported) prefixes of module-relative
// package paths: no non-test import of a package under the first may reach
// a package under the second.
var layeringRules = []struct{ from, to, why string }{
	{"graph", "ingest", "graph knows no wire format"},
	{"graph", "storage", "graph knows no database"},
	{"graph", "web", "graph knows no screen"},
	{"graph", "detect", "graph judges nothing"},
	{"graph", "simulate", "graph is fed, it does not make traffic"},
	{"ingest", "web", "ingest never imports web"},
	{"ingest", "detect", "ingest only feeds the graph"},
	{"ingest", "storage", "ingest only feeds the graph"},
	{"storage", "web", "storage never imports web"},
	{"storage", "detect", "storage keeps findings (graph/finding) and knows no detector"},
	{"storage", "ingest", "storage keeps what the graph made"},
	{"detect", "web", "detect builds no UI"},
	{"detect", "storage", "detect writes no storage: a runner persists what it returns"},
	{"web", "ingest", "web never reaches into ingest"},
	{"web", "detect", "web shows findings (graph/finding) and knows no detector"},
	{"web", "storage", "web reads through its own retriever interfaces"},
	{"ingest", "simulate", "generators of traffic are not part of the way in"},
	{"storage", "simulate", "generators of traffic are not part of the way in"},
	{"web", "simulate", "generators of traffic are not part of the way in"},
	{"detect", "simulate", "generators of traffic are not part of the way in"},
}

// under reports whether the module-relative package path p is dir or
// below it.
func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// TestLayering: the layering of ../shared/STYLE.md holds for every
// non-test import of every package in the module, so that it stays true
// as the code changes.
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "-C", "../..", "list", "-e", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...").CombinedOutput()
	require.NoError(t, err, "%s", out)
	const module = "github.com/seed-a49a8342/cartograph/"
	packages := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || !strings.HasPrefix(fields[0], module) {
			continue
		}
		packages++
		from := strings.TrimPrefix(fields[0], module)
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			to := strings.TrimPrefix(imp, module)
			for _, r := range layeringRules {
				if under(from, r.from) && under(to, r.to) {
					t.Errorf("%s imports %s: %s", from, to, r.why)
				}
			}
		}
	}
	require.Greater(t, packages, 20, "every package of the module was listed:\n%s", out)
}
