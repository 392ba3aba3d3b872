#!/usr/bin/env bash
# Builds Prometheus Alertmanager (cmd/alertmanager) from the Go module proxy
# into a cache dir outside this repository, for the tests that push alerts to
# a real Alertmanager (cmd/collector's TestE2EAlertmanagerSeverityChange).
# Prints the binary's path on its last line. A cached binary is reused.
#
# The module as served by the proxy lacks ui/app/dist (the web UI's built
# assets, which `go:embed` needs), so `go install pkg@version` fails; the
# binary is built inside a copy of that version's module (its go.mod
# applies) with a one-page placeholder UI. The API (/api/v2) is unchanged.
# The repo's go.mod is never touched.
#
#   ALERTMANAGER_VERSION  version to build (default v0.35.0)
#   CARTOGRAPH_CACHE      cache dir (default $HOME/.cache/cartograph)
# A cold build takes 2-5 minutes on 2 cores.
set -euo pipefail

version="${ALERTMANAGER_VERSION:-v0.35.0}"
cache="${CARTOGRAPH_CACHE:-$HOME/.cache/cartograph}"
dir="$cache/alertmanager-$version"
bin="$dir/alertmanager"

if [ ! -x "$bin" ]; then
  mkdir -p "$dir"
  tmp=$(mktemp -d)
  trap 'chmod -R u+w "$tmp" 2>/dev/null || true; rm -rf "$tmp"' EXIT
  export GOPROXY="${GOPROXY:-https://proxy.golang.org}" GOFLAGS= GOWORK=off CGO_ENABLED=0
  echo "== alertmanager: go mod download github.com/prometheus/alertmanager@$version" >&2
  src=$(cd "$tmp" && go mod download -json "github.com/prometheus/alertmanager@$version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  if [ -z "$src" ]; then
    echo "alertmanager: the module proxy did not serve github.com/prometheus/alertmanager@$version" >&2
    exit 1
  fi
  cp -r "$src" "$tmp/src"
  chmod -R u+w "$tmp/src"
  for ui in elm mantine; do
    mkdir -p "$tmp/src/ui/app/dist/$ui"
    echo '<!doctype html><title>Alertmanager</title><p>Built without its web UI; the API is at /api/v2.' \
      >"$tmp/src/ui/app/dist/$ui/index.html"
  done
  echo "== alertmanager: go build ./cmd/alertmanager ($version) into $dir" >&2
  (cd "$tmp/src" && go build -trimpath \
    -ldflags "-X github.com/prometheus/common/version.Version=${version#v}" \
    -o "$bin.tmp$$" ./cmd/alertmanager)
  mv "$bin.tmp$$" "$bin"
fi
"$bin" --version 2>&1 | head -n1 >&2
echo "$bin"
