#!/usr/bin/env bash
# A/B of two revisions of cmd/collector under bench/coreload (issue 18): the
# API under a cardinality attack, and the CPU per evaluation tick of a
# steady graph with and without the UI. See bench/coreload/main.go.
#
# Each revision's tree is exported with `git archive` into a temporary
# directory and its cmd/collector built there; bench/coreload itself is
# built once from this checkout, so both binaries are measured by the same
# tool. Then coreload runs against BASE and HEAD in turn (ROUNDS times,
# the order alternating), and the RESULT lines are joined into one table:
# measurement, unit, BASE, HEAD, HEAD/BASE (medians when ROUNDS > 1).
#
# The tool shares the machine's cores with the collector; each reading
# says how busy the tool and every other process were. QUIET_LOAD with
# QUIET_WAIT (seconds) waits, before each run, up to QUIET_WAIT for the
# 1-minute load average to fall below QUIET_LOAD.
#
# Usage: bench/coreload.sh BASE_REV HEAD_REV [coreload flags...]
#   e.g. bench/coreload.sh main HEAD
#        bench/coreload.sh HEAD~3 HEAD -scenarios attack -attack-names 100000
#        ROUNDS=2 QUIET_LOAD=1 QUIET_WAIT=300 bench/coreload.sh main HEAD
# About 6 minutes per revision and round with the defaults.
set -euo pipefail

if (($# < 2)); then
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
fi
BASE_REV=$1
HEAD_REV=$2
shift 2
ROUNDS=${ROUNDS:-1}
QUIET_LOAD=${QUIET_LOAD:-}
QUIET_WAIT=${QUIET_WAIT:-0}

cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
export GOPROXY=${GOPROXY:-https://proxy.golang.org}

declare -A label bin
for side in base head; do
	if [[ $side == base ]]; then rev=$BASE_REV; else rev=$HEAD_REV; fi
	sha=$(git rev-parse --short=10 "$rev^{commit}")
	label[$side]="$side@$sha"
	echo "# building cmd/collector at $rev ($sha, $(git log -1 --format=%s "$sha" | cut -c1-70))"
	mkdir -p "$tmp/src-$side"
	git archive "$sha" | tar -x -C "$tmp/src-$side"
	(cd "$tmp/src-$side" && go build -buildvcs=false -o "$tmp/collector-$side" ./cmd/collector)
	bin[$side]=$tmp/collector-$side
done
echo "# building bench/coreload from this checkout ($(git rev-parse --short=10 HEAD)$(git diff --quiet HEAD -- bench/coreload || echo ', modified'))"
go build -o "$tmp/coreload" ./bench/coreload
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go env GOVERSION)"
echo "# coreload flags: ${*:-(defaults)}"

wait_quiet() {
	[[ -n $QUIET_LOAD ]] || return 0
	local waited=0
	while awk -v l="$QUIET_LOAD" '{ exit !($1 >= l) }' /proc/loadavg && ((waited < QUIET_WAIT)); do
		sleep 10
		waited=$((waited + 10))
	done
	echo "# load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (waited ${waited}s for < $QUIET_LOAD)"
}

: >"$tmp/results"
for round in $(seq "$ROUNDS"); do
	order=(base head)
	if ((round % 2 == 0)); then
		order=(head base)
	fi
	for side in "${order[@]}"; do
		echo
		echo "######## round $round: ${label[$side]}"
		wait_quiet
		"$tmp/coreload" -bin "${bin[$side]}" -rev "${label[$side]}" "$@" | tee "$tmp/out"
		grep '^RESULT ' "$tmp/out" | sed "s/^RESULT ${label[$side]} /RESULT $side /" >>"$tmp/results"
	done
done

echo
echo "######## comparison: base = ${label[base]}, head = ${label[head]}$( ((ROUNDS > 1)) && echo ", medians of $ROUNDS rounds")"
awk '
	function median(k, n,   i, j, v, t) {
		for (i = 1; i <= n; i++) v[i] = vals[k, i]
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
		return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
	}
	function fmt(x) {
		if (x == "") return "-"
		if (x == int(x) && (x < 0 ? -x : x) < 1e15) return sprintf("%d", x)
		if ((x < 0 ? -x : x) >= 100) return sprintf("%.1f", x)
		if ((x < 0 ? -x : x) >= 1) return sprintf("%.2f", x)
		return sprintf("%.4f", x)
	}
	$1 == "RESULT" {
		side = $2; name = $3; v = $4; unit = $5
		if (!(name in seen)) { seen[name] = 1; names[++nn] = name; units[name] = unit }
		if (v == "NaN") next
		k = side SUBSEP name
		vals[k, ++cnt[k]] = v + 0
	}
	END {
		w = 11
		for (i = 1; i <= nn; i++) if (length(names[i]) > w) w = length(names[i])
		printf "%-*s  %-9s  %14s  %14s  %10s\n", w, "measurement", "unit", "base", "head", "head/base"
		for (i = 1; i <= nn; i++) {
			n = names[i]
			b = ("base" SUBSEP n in cnt) ? median("base" SUBSEP n, cnt["base" SUBSEP n]) : ""
			h = ("head" SUBSEP n in cnt) ? median("head" SUBSEP n, cnt["head" SUBSEP n]) : ""
			r = (b != "" && h != "" && b != 0) ? sprintf("%.2f", h / b) : "-"
			printf "%-*s  %-9s  %14s  %14s  %10s\n", w, n, units[n], fmt(b), fmt(h), r
		}
	}' "$tmp/results"
