#!/usr/bin/env bash
# Checks and unit-tests the Prometheus alerting rules in dashboards/ with
# promtool, installing promtool into a cache dir first if it is missing.
#
# promtool is built outside this repository (its own module, in a temporary
# directory) so that the repo's go.mod is never touched.
#
#   PROMTOOL            use this promtool binary instead (no install)
#   PROMTOOL_VERSIONS   Prometheus versions to try, in order
#   CARTOGRAPH_CACHE    cache dir (default $HOME/.cache/cartograph)
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${CARTOGRAPH_CACHE:-$HOME/.cache/cartograph}"
bin="$cache/bin"
promtool="${PROMTOOL:-$bin/promtool}"
versions="${PROMTOOL_VERSIONS:-v0.315.0 v0.316.0 v0.314.0}"

# install_promtool builds promtool into $bin: first with `go install
# pkg@version`; when the proxy lacks a dependency or Prometheus's go.mod has
# replace directives (which `go install pkg@version` refuses), by building
# ./cmd/promtool inside a copy of that version's module, where its go.mod
# applies.
install_promtool() {
  mkdir -p "$bin"
  local tmp v dir
  tmp=$(mktemp -d)
  trap 'chmod -R u+w "$tmp" 2>/dev/null || true; rm -rf "$tmp"' RETURN
  export GOPROXY="${GOPROXY:-https://proxy.golang.org}" GOFLAGS= GOWORK=off
  for v in $versions; do
    echo "== promtool: go install github.com/prometheus/prometheus/cmd/promtool@$v"
    if (cd "$tmp" && GOBIN="$bin" go install "github.com/prometheus/prometheus/cmd/promtool@$v"); then
      return 0
    fi
    echo "== promtool: building $v from its module source"
    if dir=$(cd "$tmp" && go mod download -json "github.com/prometheus/prometheus@$v" |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') && [ -n "$dir" ]; then
      rm -rf "$tmp/src"
      cp -r "$dir" "$tmp/src"
      chmod -R u+w "$tmp/src"
      if (cd "$tmp/src" && go build -ldflags "-X github.com/prometheus/common/version.Version=module-$v" -o "$bin/promtool" ./cmd/promtool); then
        return 0
      fi
    fi
  done
  echo "promtool: could not install any of: $versions" >&2
  return 1
}

if [ ! -x "$promtool" ]; then
  if [ -n "${PROMTOOL:-}" ]; then
    echo "PROMTOOL=$PROMTOOL is not executable" >&2
    exit 1
  fi
  install_promtool
fi

echo "== $("$promtool" --version 2>&1 | head -n1)"
echo "== promtool check rules dashboards/alerts.yaml"
"$promtool" check rules dashboards/alerts.yaml
echo "== promtool test rules dashboards/alerts_test.yaml"
"$promtool" test rules dashboards/alerts_test.yaml
