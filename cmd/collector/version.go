package main

import (
	"errors"
	"fmt"
	"io"
	"runtime/debug"
)

// errVersion is returned by parseConfig when -version was asked for.
var errVersion = errors.New("version requested")

// printVersion writes the build information of this binary to w: the main
// module's version ("(devel)" for a build from a checkout), the VCS
// revision, its time and whether the tree was modified (recorded by `go
// build` / `go install` in a git checkout), and the Go version. Missing
// fields print as "unknown", e.g. a build with -buildvcs=false.
func printVersion(w io.Writer, command string) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintf(w, "cartograph %s: no build information in this binary\n", command)
		return
	}
	rev, at, modified := "unknown", "unknown", ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = " (modified)"
			}
		}
	}
	version := bi.Main.Version
	if version == "" {
		version = "unknown"
	}
	fmt.Fprintf(w, "cartograph %s %s\n  module    %s\n  revision  %s%s\n  time      %s\n  go        %s\n",
		command, version, bi.Main.Path, rev, modified, at, bi.GoVersion)
}
