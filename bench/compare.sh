#!/usr/bin/env bash
# Side by side: cartograph against the OpenTelemetry Collector with the
# service_graph connector (contrib's servicegraphconnector, the pairing logic
# of Grafana Tempo's service graphs), on the same load, on this machine.
#
# Builds the peer once with the OpenTelemetry Collector Builder (config in
# bench/otelcol/builder.yaml; binary cached in ~/.cache/cartograph/otelcol,
# about 4 minutes of CPU the first time), builds cmd/collector, cmd/loadgen
# and bench/edgecheck, then:
#
#  1. throughput, ROUNDS rounds alternating cartograph and peer, each run on a
#     fresh process on free 127.0.0.1 ports: loadgen replays the generated
#     system (simulate/scenario, SERVICES services, no faults) over OTLP/gRPC as
#     fast as the receiver takes it, for DUR seconds. Per run: accepted
#     spans/s, refusals (backpressure) and drops, receiver CPU seconds per
#     million spans (utime+stime from /proc/PID/stat, until TAIL seconds after
#     the load stops so the expiry of half-edges is included), peak RSS
#     (VmHWM). A run that saw refusals or drops is followed by a paced run at
#     80% of its rate, to find a rate sustained with none.
#  2. correctness: the same fixed traffic (loadgen --passes 1) to both at
#     once, then bench/edgecheck compares the edges and request counts of
#     cartograph's /api/v1/graph with the connector's
#     traces_service_graph_request_total.
#
# Both sides wait 10 s for the other half of an edge (cartograph --pair-ttl,
# the connector's store.ttl). Loadgen shares the machine's cores with the
# receiver; its own CPU is printed.
#
# Usage: bench/compare.sh        (ROUNDS=3 DUR=20 TAIL=12 SERVICES=24 WORKERS=2 SHAPE=system)
#   SHAPE=telemetrygen sends 2-span client/server traces shaped as the
#   Collector's telemetrygen sends them instead of the generated system.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DUR=${DUR:-20}
TAIL=${TAIL:-12}
SERVICES=${SERVICES:-24}
SHAPE=${SHAPE:-system}
WORKERS=${WORKERS:-2}
TPR=${TPR:-50} # traces per request
HOST=127.0.0.1
OTELCOL_VERSION=v0.158.0
CACHE=${CARTOGRAPH_CACHE:-$HOME/.cache/cartograph}
PEER=$CACHE/otelcol/otelcol-servicegraph-$OTELCOL_VERSION/otelcol-servicegraph

cd "$(dirname "$0")/.."
REPO=$PWD
tmp=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export GOPROXY=${GOPROXY:-https://proxy.golang.org}
if [[ ! -x $PEER ]]; then
	echo "# building the peer with the OpenTelemetry Collector Builder $OTELCOL_VERSION (once; cached in $CACHE/otelcol)"
	mkdir -p "$CACHE/otelcol" "$CACHE/bin"
	GOBIN=$CACHE/bin nice -n 10 go install "go.opentelemetry.io/collector/cmd/builder@$OTELCOL_VERSION"
	(cd "$CACHE/otelcol" && nice -n 10 "$CACHE/bin/builder" --config "$REPO/bench/otelcol/builder.yaml" >"$CACHE/otelcol/build.log" 2>&1) || {
		tail -n 30 "$CACHE/otelcol/build.log" >&2
		exit 1
	}
fi
echo "# building cartograph, loadgen, edgecheck"
go build -o "$tmp/collector" ./cmd/collector
go build -o "$tmp/loadgen" ./cmd/loadgen
go build -o "$tmp/edgecheck" ./bench/edgecheck
CLK_TCK=$(getconf CLK_TCK)

echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), go $(go env GOVERSION), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "# peer: $($PEER --version 2>/dev/null | head -n1)"
load="simulate/scenario, $SERVICES services"
[ "$SHAPE" = system ] || load="--shape $SHAPE"
echo "# load: $load, $TPR traces per request, $WORKERS loadgen workers over OTLP/gRPC; DUR=${DUR}s, TAIL=${TAIL}s, ROUNDS=$ROUNDS"
echo

cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
hwm_mb() { awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

# free_port: a TCP port nothing listens on.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/$HOST/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}

# sum_metric URL NAME: the sum of every series of a counter.
sum_metric() {
	curl -sf "$1" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%.0f\n", s }'
}

# start_cartograph: sets PID, ENDPOINT, API.
start_cartograph() {
	local log=$tmp/cartograph.log
	: >"$log"
	"$tmp/collector" --otlp-grpc-addr $HOST:0 --otlp-http-addr $HOST:0 --api-addr $HOST:0 --ui-addr "" \
		--pair-ttl 10s --max-pending 2000000 --data-dir "$(mktemp -d -p "$tmp")" 2>"$log" &
	PID=$!
	pids+=("$PID")
	local i
	for i in $(seq 100); do
		API=$(sed -n 's/.*msg="api listening" addr=\([0-9.:]*\).*/\1/p' "$log")
		ENDPOINT=$(sed -n 's/.*msg="otlp grpc listening" addr=\([0-9.:]*\).*/\1/p' "$log")
		if [[ -n $API && -n $ENDPOINT ]] && curl -sf "http://$API/readyz" >/dev/null; then
			return
		fi
		sleep 0.1
	done
	echo "cartograph did not start:" >&2
	cat "$log" >&2
	exit 1
}

# start_peer: sets PID, ENDPOINT, PROM (connector metrics), TELEMETRY.
start_peer() {
	local log=$tmp/peer.log
	: >"$log"
	ENDPOINT=$HOST:$(free_port)
	PROM=$HOST:$(free_port)
	local tport
	tport=$(free_port)
	TELEMETRY=$HOST:$tport
	PEER_OTLP_GRPC=$ENDPOINT PEER_OTLP_HTTP=$HOST:$(free_port) PEER_PROM=$PROM PEER_TELEMETRY_PORT=$tport \
		"$PEER" --config "$REPO/bench/otelcol/config.yaml" 2>"$log" &
	PID=$!
	pids+=("$PID")
	local i
	for i in $(seq 100); do
		if curl -sf "http://$TELEMETRY/metrics" >/dev/null && (exec 3<>"/dev/tcp/${ENDPOINT/://}") 2>/dev/null; then
			return
		fi
		sleep 0.1
	done
	echo "peer did not start:" >&2
	cat "$log" >&2
	exit 1
}

stop() {
	kill -TERM "$PID"
	wait "$PID" 2>/dev/null || true
}

# dropped TARGET: spans the receiver took but could not use (cartograph:
# refused by the graph; peer: dropped by the connector's full store).
dropped() {
	case $1 in
	cartograph) sum_metric "http://$API/metrics" cartograph_graph_spans_refused_total ;;
	peer) sum_metric "http://$TELEMETRY/metrics" otelcol_connector_servicegraph_dropped_spans_total ;;
	esac
}

start() {
	case $1 in
	cartograph) start_cartograph ;;
	peer) start_peer ;;
	esac
}

rows=()

# measure TARGET ROUND RATE: one run against a fresh TARGET at RATE spans/s
# (0: as fast as it takes them). Sets LAST_RATE, LAST_BAD.
measure() {
	local target=$1 round=$2 rate=$3
	start "$target"
	local cpu0 cpu_run cpu1 hwm drops
	cpu0=$(cpu_ticks "$PID")
	"$tmp/loadgen" --endpoint "$ENDPOINT" --protocol grpc --shape "$SHAPE" --services "$SERVICES" --workers "$WORKERS" \
		--traces-per-request "$TPR" --rate "$rate" --duration "${DUR}s" --metrics-interval 0 --seed "$round" >"$tmp/sender.out" 2>&1 || true
	cpu_run=$(cpu_ticks "$PID")
	sleep "$TAIL"
	cpu1=$(cpu_ticks "$PID")
	hwm=$(hwm_mb "$PID")
	drops=$(dropped "$target")
	stop
	local result
	result=$(grep '^RESULT ' "$tmp/sender.out") || {
		cat "$tmp/sender.out" >&2
		exit 1
	}
	local acc el refused failed scpu
	acc=$(sed 's/.* accepted=\([0-9]*\).*/\1/' <<<"$result")
	el=$(sed 's/.*elapsed_s=\([0-9.]*\).*/\1/' <<<"$result")
	refused=$(sed 's/.* refused=\([0-9]*\).*/\1/' <<<"$result")
	failed=$(sed 's/.* failed=\([0-9]*\).*/\1/' <<<"$result")
	scpu=$(sed 's/.*sender_cpu_s=\([0-9.]*\).*/\1/' <<<"$result")
	local row
	row=$(awk -v t="$target" -v r="$round" -v rate="$rate" -v acc="$acc" -v el="$el" -v ref="$refused" -v fail="$failed" \
		-v drops="$drops" -v c0="$cpu0" -v cr="$cpu_run" -v c1="$cpu1" -v tck="$CLK_TCK" -v hwm="$hwm" -v scpu="$scpu" 'BEGIN {
		cs = (c1 - c0) / tck; crun = (cr - c0) / tck
		printf "%-10s %5d %9s %12.0f %9d %7d %7d %10.3f %7.0f%% %7d %8.2f", t, r, rate == 0 ? "max" : rate, acc / el, ref, fail, drops,
			acc ? cs / (acc / 1e6) : 0, 100 * crun / el, hwm, scpu
	}')
	echo "$row"
	rows+=("$row")
	LAST_RATE=$(awk -v acc="$acc" -v el="$el" 'BEGIN { printf "%.0f", acc / el }')
	LAST_BAD=$((refused + failed + drops))
}

header() {
	printf "%-10s %5s %9s %12s %9s %7s %7s %10s %8s %7s %8s\n" target round rate "accepted/s" refused failed dropped "cpu s/M" "cpu%" "RSS MB" "snd cpu"
}

echo "## 1. throughput (refused = span-attempts refused with backpressure; dropped = spans taken but not used;"
echo "##    cpu s/M = receiver CPU seconds per million accepted spans, incl. ${TAIL}s after the load; cpu% = of one core during the load)"
header
for round in $(seq "$ROUNDS"); do
	order=(cartograph peer)
	if ((round % 2 == 0)); then
		order=(peer cartograph)
	fi
	for target in "${order[@]}"; do
		measure "$target" "$round" 0
		if ((LAST_BAD > 0)); then
			measure "$target" "$round" $((LAST_RATE * 8 / 10))
		fi
	done
done

echo
echo "## summary: medians over rounds of the unpaced runs"
printf '%s\n' "${rows[@]}" | awk '
	$3 == "max" { t = $1; n[t]++; rate[t, n[t]] = $4; cpu[t, n[t]] = $8; rss[t, n[t]] = $10; bad[t] += $5 + $6 + $7 }
	function median(a, t, k,   i, j, v, m, tmp) {
		m = n[t]
		for (i = 1; i <= m; i++) v[i] = a[t, i]
		for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { tmp = v[i]; v[i] = v[j]; v[j] = tmp }
		return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
	}
	END {
		for (t in n) { R[t] = median(rate, t); C[t] = median(cpu, t); M[t] = median(rss, t) }
		printf "%-10s %12s %10s %12s %8s %s\n", "target", "accepted/s", "cpu s/M", "spans/cpu-s", "RSS MB", "refused+failed+dropped (all max runs)"
		for (t in n) printf "%-10s %12.0f %10.3f %12.0f %8.0f %d\n", t, R[t], C[t], 1e6 / C[t], M[t], bad[t]
		if (("cartograph" in n) && ("peer" in n)) {
			printf "RATIO spans_per_cpu_s=%.2fx accepted_per_s=%.2fx peak_rss=%.2fx (cartograph / peer: spans_per_cpu_s and accepted_per_s above 1 favour cartograph, peak_rss below 1 does)\n",
				C["peer"] / C["cartograph"], R["cartograph"] / R["peer"], M["cartograph"] / M["peer"]
		}
	}'

echo
echo "## 2. correctness: the same fixed traffic to both (loadgen --passes 1), then edgecheck"
start_cartograph
C_PID=$PID C_ENDPOINT=$ENDPOINT C_API=$API
start_peer
P_PID=$PID P_ENDPOINT=$ENDPOINT P_PROM=$PROM
for ep in "$C_ENDPOINT" "$P_ENDPOINT"; do
	"$tmp/loadgen" --endpoint "$ep" --protocol grpc --shape "$SHAPE" --services "$SERVICES" --workers 1 --pool 20 --passes 1 \
		--traces-per-request "$TPR" --duration 1m --metrics-interval 0 --seed 42 --trace-id-salt 42 | grep '^RESULT'
done
# Calls to databases and external peers are edges once their half-edge
# expires unanswered (cartograph; the connector pairs database calls at
# once): wait out the 10 s TTL and an expiry loop.
wait_s=$((TAIL > 13 ? TAIL : 13))
echo "# waiting ${wait_s}s for unpaired half-edges to expire on both sides"
sleep "$wait_s"
rc=0
"$tmp/edgecheck" --cartograph "http://$C_API" --peer "http://$P_PROM/metrics" || rc=$?
PID=$C_PID stop
PID=$P_PID stop
exit $rc
