#!/usr/bin/env bash
# Builds Helm 4 (helm.sh/helm/v4/cmd/helm) from the Go module proxy into a
# cache dir outside this repository, for the chart tests (deploy/helm:
# helm lint and helm template of deploy/helm/cartograph with each values
# file; the tests find the binary through CARTOGRAPH_TEST_HELM).
# Prints the binary's path on its last line. A cached binary is reused.
#
# The binary is built inside a copy of that version's module, so Helm's own
# go.mod and go.sum apply; the repo's go.mod is never touched.
#
#   HELM_VERSION      version to build (default v4.3.2)
#   CARTOGRAPH_CACHE  cache dir (default $HOME/.cache/cartograph)
# A cold build takes 2-4 minutes on 2 cores.
set -euo pipefail

version="${HELM_VERSION:-v4.3.2}"
cache="${CARTOGRAPH_CACHE:-$HOME/.cache/cartograph}"
dir="$cache/helm-$version"
bin="$dir/helm"

if [ ! -x "$bin" ]; then
  mkdir -p "$dir"
  tmp=$(mktemp -d)
  trap 'chmod -R u+w "$tmp" 2>/dev/null || true; rm -rf "$tmp"' EXIT
  export GOPROXY="${GOPROXY:-https://proxy.golang.org}" GOFLAGS= GOWORK=off CGO_ENABLED=0
  echo "== helm: go mod download helm.sh/helm/v4@$version" >&2
  src=$(cd "$tmp" && go mod download -json "helm.sh/helm/v4@$version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  if [ -z "$src" ]; then
    echo "helm: the module proxy did not serve helm.sh/helm/v4@$version" >&2
    exit 1
  fi
  cp -r "$src" "$tmp/src"
  chmod -R u+w "$tmp/src"
  echo "== helm: go build ./cmd/helm ($version) into $dir" >&2
  (cd "$tmp/src" && go build -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$version -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
    -o "$bin.tmp$$" ./cmd/helm)
  mv "$bin.tmp$$" "$bin"
fi
"$bin" version --short >&2
echo "$bin"
