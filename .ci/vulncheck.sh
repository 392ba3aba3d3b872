#!/usr/bin/env bash
# Known vulnerabilities: govulncheck over the code, against the online Go
# vulnerability database where vuln.go.dev answers and otherwise against the
# dated snapshot in ../shared/vulndb. Fails when the code reaches a known
# vulnerability, when no database can be had, and when the canary (a tiny
# module that calls a vulnerable function on purpose) is NOT reported, so a
# broken database or check cannot pass quietly.
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${XDG_CACHE_HOME:-$HOME/.cache}/cartograph/bin"
GOBIN="$bin" go install golang.org/x/vuln/cmd/govulncheck@v1.1.4
govulncheck=("$bin/govulncheck")
snapshot="$(cd .. && pwd)/shared/vulndb"

if curl -sf -m 10 -o /dev/null https://vuln.go.dev/index/db.json; then
  db=https://vuln.go.dev
  modified=$(curl -sf -m 10 https://vuln.go.dev/index/db.json | sed -n 's/.*"modified": *"\([^"]*\)".*/\1/p')
elif [ -f "$snapshot/index/db.json" ]; then
  db="file://$snapshot"
  modified=$(sed -n 's/.*"modified": *"\([^"]*\)".*/\1/p' "$snapshot/index/db.json")
else
  echo "govulncheck: no database: vuln.go.dev is unreachable and $snapshot is missing" >&2
  exit 1
fi
echo "govulncheck database: $db (data as of ${modified:-unknown})"

echo "-- canary: a module that reaches golang.org/x/image/tiff.Decode at v0.25.0 must be reported"
set +e
(cd .ci/vulncanary && GOFLAGS=-mod=mod "${govulncheck[@]}" -db "$db" ./... >/tmp/vulncanary.$$ 2>&1)
rc=$?
set -e
if [ "$rc" -ne 3 ] || ! grep -q 'GO-2026-4815' /tmp/vulncanary.$$; then
  cat /tmp/vulncanary.$$; rm -f /tmp/vulncanary.$$
  echo "govulncheck did not report the canary's known vulnerability (exit $rc): the check cannot be trusted" >&2
  exit 1
fi
rm -f /tmp/vulncanary.$$
echo "canary reported, as it must be"

echo "-- cartograph"
"${govulncheck[@]}" -db "$db" ./...
