// Command vulncanary exists only to be checked by govulncheck: it calls
// golang.org/x/image/tiff.Decode at v0.25.0, which known advisories
// (GO-2026-4815, GO-2026-5066) reach. .ci/vulncheck.sh expects govulncheck
// to report it; if it does not, the database or the check is broken and the
// check of the real code would pass for nothing.
package main

import (
	"os"

	"golang.org/x/image/tiff"
)

func main() {
	_, _ = tiff.Decode(os.Stdin)
}
