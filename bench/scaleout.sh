#!/usr/bin/env bash
# Scale-out figures for planning (issue 22): collectors on ClickHouse, one
# on its own and three behind the OpenTelemetry Collector's load_balancing
# exporter (routing by trace id), on this machine.
#
# Run it under cmd/testenv, which starts ClickHouse and builds the load
# balancer (an OpenTelemetry Collector v0.158.0 with the load_balancing
# exporter):
#
#   go run ./cmd/testenv -only clickhouse,otelcol-lb -- bash bench/scaleout.sh
#
# For each setup, on a fresh database: loadgen replays simulate/synth's
# 8-span shop trace (--services 0, the traffic of bench/throughput.sh) over
# OTLP/gRPC as fast as it is taken, for DUR seconds, with WORKERS workers.
# Per setup it prints:
#   - spans/s taken, from the collectors' own cartograph_graph_spans_total,
#   - CPU seconds per million spans of each process (collectors, load
#     balancer, ClickHouse's server, loadgen), from /proc/PID/stat, until
#     TAIL seconds after the load stops (the half-edges' expiry and the
#     last flushes are paid for), and their peak RSS,
#   - what reached ClickHouse: rows and bytes on disk per table
#     (system.parts, after the last flush), rows/s while loading, and bytes
#     per million spans.
# The collectors run as the docs' scaled-out setup does: --storage
# clickhouse --detect merged (one judges), default flags otherwise.
#
# Everything shares the machine's cores: the figures to plan with are the
# CPU seconds per million spans, not the spans/s of this box.
set -euo pipefail

DUR=${DUR:-20}
TAIL=${TAIL:-14}
WORKERS=${WORKERS:-4}
LB_CONSUMERS=${LB_CONSUMERS:-16}     # the load balancer's sending_queue consumers: requests it has in flight
LB_COMPRESSION=${LB_COMPRESSION:-gzip} # its OTLP exporters' compression (gzip is the exporter's default)
HOST=127.0.0.1
: "${CARTOGRAPH_TEST_CLICKHOUSE:?run under cmd/testenv: go run ./cmd/testenv -only clickhouse,otelcol-lb -- bash bench/scaleout.sh}"
: "${CARTOGRAPH_TEST_CLICKHOUSE_HTTP:?run under cmd/testenv}"
: "${CARTOGRAPH_TEST_OTELCOL_LB:?run under cmd/testenv}"
CH=$CARTOGRAPH_TEST_CLICKHOUSE
CHHTTP=$CARTOGRAPH_TEST_CLICKHOUSE_HTTP
LB=$CARTOGRAPH_TEST_OTELCOL_LB

cd "$(dirname "$0")/.."
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

echo "# building"
go build -o "$tmp/collector" ./cmd/collector
go build -o "$tmp/loadgen" ./cmd/loadgen
CLK_TCK=$(getconf CLK_TCK)
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), go $(go env GOVERSION)"
echo "# DUR=${DUR}s WORKERS=$WORKERS LB_CONSUMERS=$LB_CONSUMERS LB_COMPRESSION=$LB_COMPRESSION, CPU until ${TAIL}s after the load stops; everything shares these cores"

cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
hwm_mb() { awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
chq() { curl -sf "http://$CHHTTP/" --data-binary "$1"; }
# The ClickHouse server's process: the one serving the native port.
CHPID=$(for p in /proc/[0-9]*; do
	if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q -- "--tcp_port=${CH##*:} "; then basename "$p"; fi
done | head -n1)
[[ -n $CHPID ]] || { echo "no ClickHouse process serves $CH" >&2; exit 1; }

# start_collector N DB: collector N on its own free ports; sets API_N, GRPC_N, PID_N.
start_collector() {
	local n=$1 db=$2 log=$tmp/collector$1.log
	"$tmp/collector" --otlp-grpc-addr $HOST:0 --otlp-http-addr $HOST:0 --api-addr $HOST:0 --ui-addr= \
		--storage clickhouse --clickhouse-dsn "clickhouse://$CH/$db" --collector-id "c$n" --detect merged 2>"$log" &
	local pid=$!
	pids+=("$pid")
	local i api grpc
	for i in $(seq 200); do
		api=$(sed -n 's/.*msg="api listening" addr=\([0-9.:]*\).*/\1/p' "$log")
		grpc=$(sed -n 's/.*msg="otlp grpc listening" addr=\([0-9.:]*\).*/\1/p' "$log")
		if [[ -n $api && -n $grpc ]] && curl -sf "http://$api/readyz" >/dev/null; then
			eval "API_$n=$api GRPC_$n=$grpc PID_$n=$pid"
			return
		fi
		sleep 0.1
	done
	echo "collector $n did not start:" >&2
	cat "$log" >&2
	exit 1
}

# start_lb BACKENDS...: the load balancer, static resolver; sets LB_GRPC, LB_PID.
start_lb() {
	local port mport
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	local hosts="" b
	for b in "$@"; do hosts+="\"$b\", "; done
	cat >"$tmp/lb.yaml" <<EOF
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "$HOST:$port", max_recv_msg_size_mib: 64}
exporters:
  load_balancing:
    routing_key: traceID
    timeout: 10s
    retry_on_failure: {enabled: true, initial_interval: 200ms, max_interval: 1s, max_elapsed_time: 2m}
    sending_queue: {enabled: true, num_consumers: $LB_CONSUMERS, queue_size: $((2 * LB_CONSUMERS))}
    protocol:
      otlp:
        timeout: 10s
        compression: $LB_COMPRESSION
        tls: {insecure: true}
        retry_on_failure: {enabled: false}
        sending_queue: {enabled: false}
    resolver:
      static: {hostnames: [${hosts%, }]}
service:
  telemetry:
    logs: {level: warn}
    metrics:
      level: basic
      readers:
        - pull: {exporter: {prometheus: {host: "$HOST", port: $mport}}}
  pipelines:
    traces: {receivers: [otlp], exporters: [load_balancing]}
EOF
	"$LB" --config "$tmp/lb.yaml" 2>"$tmp/lb.log" &
	LB_PID=$!
	pids+=("$LB_PID")
	local i
	for i in $(seq 200); do
		if curl -sf "http://$HOST:$mport/metrics" >/dev/null 2>&1; then
			LB_GRPC=$HOST:$port
			return
		fi
		sleep 0.1
	done
	echo "load balancer did not start:" >&2
	cat "$tmp/lb.log" >&2
	exit 1
}

# spans_of API: the spans a collector took, each once (a span re-sent by the
# load balancer's retry of a whole batch is recognised and not counted).
spans_of() {
	curl -sf "http://$1/metrics" | awk '$1 == "cartograph_graph_spans_total" { s += $2 }
		index($1, "cartograph_graph_observations_dropped_total{reason=\"resent_span\"}") == 1 { s -= $2 } END { printf "%.0f\n", s }'
}

# run NAME DB N LB: N collectors on DB, loadgen to the first collector or,
# with LB=lb, to a load balancer over them.
run() {
	local name=$1 db=$2 n=$3 via=$4 i
	echo
	echo "## $name   (loadavg $(cut -d' ' -f1-3 /proc/loadavg))"
	local backends=() procs=()
	for i in $(seq "$n"); do
		start_collector "$i" "$db"
		eval "backends+=(\$GRPC_$i); procs+=(\$PID_$i)"
	done
	local target=${backends[0]}
	if [[ $via == lb ]]; then
		start_lb "${backends[@]}"
		target=$LB_GRPC
		procs+=("$LB_PID")
	fi
	procs+=("$CHPID")
	local -A c0
	local p s0=0 s1=0
	for p in "${procs[@]}"; do c0[$p]=$(cpu_ticks "$p"); done
	for i in $(seq "$n"); do eval "s0=\$((s0 + \$(spans_of \$API_$i)))"; done
	local rows0
	rows0=$(chq "SELECT sum(rows) FROM system.parts WHERE database = '$db' AND active")
	"$tmp/loadgen" --endpoint "$target" --services 0 --workers "$WORKERS" --conns "$WORKERS" --duration "${DUR}s" >"$tmp/loadgen.out" 2>&1
	grep '^RESULT ' "$tmp/loadgen.out" | sed 's/^/    loadgen /'
	local elapsed sender
	elapsed=$(sed -n 's/^RESULT .*elapsed_s=\([0-9.]*\).*/\1/p' "$tmp/loadgen.out")
	sender=$(sed -n 's/^RESULT .*sender_cpu_s=\([0-9.]*\).*/\1/p' "$tmp/loadgen.out")
	local accepted
	accepted=$(sed -n 's/^RESULT .* accepted=\([0-9]*\).*/\1/p' "$tmp/loadgen.out")
	sleep "$TAIL"
	for i in $(seq "$n"); do eval "s1=\$((s1 + \$(spans_of \$API_$i)))"; done
	local spans=$((s1 - s0))
	echo "    the collectors took $spans spans (each once) of the $accepted accepted by the first hop (by the end of the tail)"
	local rows1
	rows1=$(chq "SELECT sum(rows) FROM system.parts WHERE database = '$db' AND active")
	awk -v s="$accepted" -v e="$elapsed" 'BEGIN { printf "    taken: %d spans in %.1fs = %.0f spans/s\n", s, e, s / e }'
	awk -v c="$sender" -v s="$spans" 'BEGIN { printf "    loadgen: %.2f CPU-s per million spans\n", c / (s / 1e6) }'
	for p in "${procs[@]}"; do
		local what=collector
		[[ $p == "$CHPID" ]] && what=clickhouse
		[[ $via == lb && $p == "$LB_PID" ]] && what=load-balancer
		awk -v w="$what" -v p="$p" -v a="${c0[$p]}" -v b="$(cpu_ticks "$p")" -v t="$CLK_TCK" -v s="$spans" -v e="$elapsed" -v m="$(hwm_mb "$p")" \
			'BEGIN { printf "    %-13s pid %-7s %.2f CPU-s per million spans (%.0f%% of a core over the run), peak RSS %d MB\n", w, p, (b - a) / t / (s / 1e6), 100 * (b - a) / t / e, m }'
	done
	chq "SELECT table, sum(rows), sum(bytes_on_disk), count() FROM system.parts WHERE database = '$db' AND active GROUP BY table ORDER BY table FORMAT TSV" |
		awk -v s="$spans" '{ printf "    table %-16s %8d rows %10d bytes on disk (%d parts) = %.0f bytes per million spans\n", $1, $2, $3, $4, $3 / (s / 1e6); r += $2; b += $3 }
			END { printf "    clickhouse total  %8d rows %10d bytes = %.1f rows and %.0f bytes per million spans\n", r, b, r / (s / 1e6), b / (s / 1e6) }'
	awk -v a="$rows0" -v b="$rows1" -v e="$elapsed" 'BEGIN { printf "    rows written to ClickHouse: %.0f rows/s over the run\n", (b - a) / e }'
	for i in $(seq "$n"); do
		eval "kill -TERM \$PID_$i; wait \$PID_$i 2>/dev/null || true"
	done
	if [[ $via == lb ]]; then kill -TERM "$LB_PID"; wait "$LB_PID" 2>/dev/null || true; fi
	chq "DROP DATABASE IF EXISTS $db SYNC" >/dev/null
}

if [[ ${ONLY_LB:-} == "" ]]; then
	run "one collector, loadgen straight to it" "bench_scaleout_one_$$" 1 direct
fi
run "three collectors behind the load balancer (static resolver)" "bench_scaleout_three_$$" 3 lb
