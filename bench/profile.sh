#!/usr/bin/env bash
# CPU and heap profiles of cartograph under the load of bench/compare.sh:
# a fresh collector (--pprof) on loopback, cmd/loadgen replaying the
# generated system (simulate/scenario) over OTLP/gRPC as fast as it takes
# it, and a CPU profile of PROFILE seconds taken WARMUP seconds in.
#
# Usage: bench/profile.sh OUTDIR   (SHAPE=system SERVICES=24 WORKERS=2 TPR=50 DUR=30 WARMUP=7 PROFILE=20;
#        EXTRA="--trace-sample-one-in 1000000" adds collector flags)
# Writes OUTDIR/cpu.pprof, heap.pprof, allocs.pprof, collector (the binary,
# for go tool pprof), sender.out, and prints the top of the CPU profile.
set -euo pipefail

OUT=${1:?usage: bench/profile.sh OUTDIR}
SERVICES=${SERVICES:-24}
SHAPE=${SHAPE:-system}
WORKERS=${WORKERS:-2}
TPR=${TPR:-50}
DUR=${DUR:-30}
WARMUP=${WARMUP:-7}
PROFILE=${PROFILE:-20}

cd "$(dirname "$0")/.."
mkdir -p "$OUT"
tmp=$(mktemp -d)
pid=""
cleanup() {
	if [[ -n $pid ]]; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$OUT/collector" ./cmd/collector
go build -o "$tmp/loadgen" ./cmd/loadgen
log=$tmp/collector.log
# shellcheck disable=SC2086 # EXTRA is a list of flags
"$OUT/collector" --otlp-grpc-addr 127.0.0.1:0 --otlp-http-addr 127.0.0.1:0 --api-addr 127.0.0.1:0 --ui-addr "" \
	--pair-ttl 10s --max-pending 2000000 --data-dir "$tmp/data" --pprof ${EXTRA:-} 2>"$log" &
pid=$!
API="" EP=""
for _ in $(seq 100); do
	API=$(sed -n 's/.*msg="api listening" addr=\([0-9.:]*\).*/\1/p' "$log")
	EP=$(sed -n 's/.*msg="otlp grpc listening" addr=\([0-9.:]*\).*/\1/p' "$log")
	if [[ -n $API && -n $EP ]] && curl -sf "http://$API/readyz" >/dev/null; then
		break
	fi
	sleep 0.1
done
"$tmp/loadgen" --endpoint "$EP" --protocol grpc --shape "$SHAPE" --services "$SERVICES" --workers "$WORKERS" --traces-per-request "$TPR" \
	--rate 0 --duration "${DUR}s" --metrics-interval 0 --seed 1 >"$OUT/sender.out" 2>&1 &
lg=$!
sleep "$WARMUP"
curl -sf -o "$OUT/cpu.pprof" "http://$API/debug/pprof/profile?seconds=$PROFILE"
curl -sf -o "$OUT/heap.pprof" "http://$API/debug/pprof/heap"
curl -sf -o "$OUT/allocs.pprof" "http://$API/debug/pprof/allocs"
wait "$lg" || true
grep '^RESULT ' "$OUT/sender.out"
go tool pprof -top -nodecount 25 "$OUT/collector" "$OUT/cpu.pprof" 2>/dev/null
