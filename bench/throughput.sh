#!/usr/bin/env bash
# Throughput of the collector under OTLP trace load, on loopback only.
#
# loadgen sends the fixed 8-span shop trace of simulate/synth (--services 0),
# so figures stay comparable with earlier runs; bench/compare.sh uses the
# generated system of simulate/scenario instead.
#
# Builds ./cmd/collector and ./cmd/loadgen into a temp dir, and for every run
# starts a fresh collector on free 127.0.0.1 ports (--max-pending 2000000),
# drives it with loadgen (gRPC and HTTP, several worker counts) or with
# telemetrygen (a few rates), and prints per run:
#   - accepted spans/s as the sender saw it, cross-checked against the
#     collector's cartograph_graph_spans_total (and cartograph_graph_pairs_total
#     per span; synth traces make 3 pairs per 8 spans),
#   - collector CPU seconds per million spans (utime+stime from /proc/PID/stat,
#     sampled before the sender starts and TAIL seconds after it stops, so the
#     expiry of the run's half-edges after the pair TTL is included),
#   - collector peak RSS (VmHWM),
#   - sender CPU seconds (loadgen: its own figure for the sending phase;
#     telemetrygen: `times` of its process over its whole life): the sender
#     shares the machine's cores with the collector, so it limits what one box
#     can measure.
#
# Usage: bench/throughput.sh          (DUR=20 TAIL=12 to change the timings)
set -euo pipefail

DUR=${DUR:-20}   # seconds of load per run
TAIL=${TAIL:-12} # seconds to wait after a run before the last CPU sample (pair TTL is 10 s)
HOST=127.0.0.1

cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
pids=()
cleanup() {
	local p
	if [[ -f $tmp/sender.pid ]]; then
		kill -TERM "$(cat "$tmp/sender.pid")" 2>/dev/null || true
	fi
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
TG=${TELEMETRYGEN:-$HOME/go/bin/telemetrygen}
if [[ ! -x $TG ]]; then
	echo "# installing telemetrygen"
	GOPROXY=https://proxy.golang.org go install github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen@v0.161.0
fi
CLK_TCK=$(getconf CLK_TCK)

echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), go $(go env GOVERSION)"
echo "# collector and sender share these cores"
echo "# DUR=${DUR}s per run, CPU sampled until ${TAIL}s after the sender stops"
echo

# cpu_ticks PID: utime+stime of PID in clock ticks.
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

# busy_ticks: CPU ticks the whole machine spent busy (user, nice, system,
# irq, softirq, steal).
busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

# metric NAME: the sum of every series of a collector counter.
metric() {
	curl -sf "http://$API/metrics" | awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%.0f\n", s }'
}

start_collector() {
	"$tmp/collector" --otlp-grpc-addr $HOST:0 --otlp-http-addr $HOST:0 --api-addr $HOST:0 \
		--max-pending 2000000 2>"$tmp/collector.log" &
	CPID=$!
	pids+=("$CPID")
	local i
	for i in $(seq 100); do
		API=$(sed -n 's/.*msg="api listening" addr=\([0-9.:]*\).*/\1/p' "$tmp/collector.log")
		GRPC=$(sed -n 's/.*msg="otlp grpc listening" addr=\([0-9.:]*\).*/\1/p' "$tmp/collector.log")
		HTTP=$(sed -n 's/.*msg="otlp http listening" addr=\([0-9.:]*\).*/\1/p' "$tmp/collector.log")
		if [[ -n $API && -n $GRPC && -n $HTTP ]] && curl -sf "http://$API/readyz" >/dev/null; then
			return
		fi
		sleep 0.1
	done
	echo "collector did not start:" >&2
	cat "$tmp/collector.log" >&2
	exit 1
}

stop_collector() {
	kill -TERM "$CPID"
	wait "$CPID" || true
}

# run_sender OUT CMD...: runs CMD to OUT; sets SENDER_CPU (s, user+sys) and
# SENDER_WALL (s).
run_sender() {
	local out=$1
	shift
	local t0 t1
	t0=$(date +%s.%N)
	(
		"$@" >"$out" 2>&1 &
		echo $! >"$tmp/sender.pid"
		rc=0
		wait $! || rc=$?
		times >"$tmp/times"
		exit $rc
	) &
	local sub=$!
	pids+=("$sub")
	local rc=0
	wait "$sub" || rc=$?
	t1=$(date +%s.%N)
	rm -f "$tmp/sender.pid"
	SENDER_RC=$rc
	SENDER_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	# `times` prints the subshell's own times, then its children's: "XmY.YYYs XmY.YYYs".
	SENDER_CPU=$(sed -n 2p "$tmp/times" | awk '{ t = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); t += a[1] * 60 + a[2] } printf "%.2f", t }')
	SENDER_CPU_ALL=$SENDER_CPU
	SENDER_WALL_ALL=$SENDER_WALL
}

rows=()

# measure NAME TARGET CMD...: one run against a fresh collector. CMD may use
# the placeholders @GRPC@ and @HTTP@ for the collector's addresses.
measure() {
	local name=$1 target=$2
	shift 2
	start_collector
	local args=() a
	for a in "$@"; do
		a=${a//@GRPC@/$GRPC}
		a=${a//@HTTP@/$HTTP}
		args+=("$a")
	done
	local spans0 pairs0 cpu0 spans1 pairs1 cpu1 hwm
	spans0=$(metric cartograph_graph_spans_total)
	pairs0=$(metric cartograph_graph_pairs_total)
	cpu0=$(cpu_ticks "$CPID")
	local busy0 busy1
	busy0=$(busy_ticks)
	echo "## $name   (loadavg $(cut -d' ' -f1-3 /proc/loadavg))"
	echo "\$ ${args[*]}"
	run_sender "$tmp/sender.out" "${args[@]}"
	spans1=$(metric cartograph_graph_spans_total)
	pairs1=$(metric cartograph_graph_pairs_total)
	local cpu_run
	cpu_run=$(cpu_ticks "$CPID")
	busy1=$(busy_ticks)
	sleep "$TAIL"
	cpu1=$(cpu_ticks "$CPID")
	hwm=$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$CPID/status")
	local refused_recv
	refused_recv=$(curl -sf "http://$API/metrics" | awk '$1 ~ /^cartograph_receiver_requests_total\{outcome="refused"/ { s += $2 } END { printf "%.0f", s }')
	local graph_refused
	graph_refused=$(metric cartograph_graph_spans_refused_total)
	stop_collector

	local result elapsed acc_sender sender_refused sender_rejected sender_failed
	if grep -q '^RESULT ' "$tmp/sender.out"; then
		# loadgen: its own figures.
		grep -v '^ *[0-9.]*s  sent' "$tmp/sender.out" | sed 's/^/    /'
		result=$(grep '^RESULT ' "$tmp/sender.out")
		elapsed=$(sed 's/.*elapsed_s=\([0-9.]*\).*/\1/' <<<"$result")
		acc_sender=$(sed 's/.*accepted_per_s=\([0-9]*\).*/\1/' <<<"$result")
		sender_refused=$(sed 's/.* refused=\([0-9]*\).*/\1/' <<<"$result")
		sender_rejected=$(sed 's/.* rejected=\([0-9]*\).*/\1/' <<<"$result")
		sender_failed=$(sed 's/.* failed=\([0-9]*\).*/\1/' <<<"$result")
		# loadgen's own CPU figure covers only the sending, not building its pool.
		SENDER_CPU=$(sed 's/.*sender_cpu_s=\([0-9.]*\).*/\1/' <<<"$result")
		SENDER_WALL=$elapsed
	else
		# telemetrygen: no accepted count of its own; use its wall time.
		grep -iE 'error|drop|fail|generation of traces|stopped' "$tmp/sender.out" | grep -vE 'grpclog|channelz' | tail -n 5 | cut -c1-240 | sed 's/^/    /' || true
		elapsed=$SENDER_WALL
		acc_sender=-
		sender_refused=-
		sender_rejected=-
		sender_failed=-
	fi
	local spans=$((spans1 - spans0)) pairs=$((pairs1 - pairs0))
	awk -v name="$name" -v target="$target" -v spans="$spans" -v pairs="$pairs" -v el="$elapsed" \
		-v c0="$cpu0" -v cr="$cpu_run" -v c1="$cpu1" -v tck="$CLK_TCK" -v hwm="$hwm" \
		-v scpu="$SENDER_CPU" -v swall="$SENDER_WALL" -v acc="$acc_sender" -v rc="$SENDER_RC" \
		-v b0="$busy0" -v b1="$busy1" -v sall="$SENDER_CPU_ALL" -v wall="$SENDER_WALL_ALL" \
		-v rref="$refused_recv" -v gref="$graph_refused" 'BEGIN {
		cs = (c1 - c0) / tck; crun = (cr - c0) / tck
		printf "    collector: %d spans, %d pairs (%.3f/span) in %.2fs = %.0f spans/s; refused requests %d, graph-refused spans %d\n", spans, pairs, spans ? pairs / spans : 0, el, spans / el, rref, gref
		printf "    collector CPU: %.2fs during the run (%.0f%% of one core), %.2fs incl. the %ss tail = %.2f s per million spans; peak RSS %d MB\n", crun, 100 * crun / el, cs, '"$TAIL"', spans ? cs / (spans / 1e6) : 0, hwm
		printf "    sender: exit %d, CPU %.2fs over %.2fs wall (%.0f%% of one core, %.2f s per million spans)\n", rc, scpu, swall, 100 * scpu / swall, spans ? scpu / (spans / 1e6) : 0
		other = (b1 - b0) / tck - crun - sall
		printf "    machine: %.0f%% of one core busy over the sender'"'"'s %.2fs, of which other processes %.0f%%\n", 100 * (b1 - b0) / tck / wall, wall, 100 * (other > 0 ? other : 0) / wall
	}'
	rows+=("$(awk -v name="$name" -v target="$target" -v acc="$acc_sender" -v spans="$spans" -v pairs="$pairs" -v el="$elapsed" \
		-v c0="$cpu0" -v c1="$cpu1" -v tck="$CLK_TCK" -v hwm="$hwm" -v scpu="$SENDER_CPU" -v swall="$SENDER_WALL" \
		-v ref="$sender_refused" -v rej="$sender_rejected" -v fail="$sender_failed" \
		-v cr="$cpu_run" -v b0="$busy0" -v b1="$busy1" -v sall="$SENDER_CPU_ALL" -v wall="$SENDER_WALL_ALL" 'BEGIN {
		cs = (c1 - c0) / tck; crun = (cr - c0) / tck
		other = (b1 - b0) / tck - crun - sall
		printf "%-28s %-11s %10s %10.0f %6.3f %8.2f %7.0f%% %6d %7.0f%% %7.2f %6.0f%% %8s %8s %6s\n", name, target, acc, spans / el, spans ? pairs / spans : 0, spans ? cs / (spans / 1e6) : 0, 100 * crun / el, hwm, 100 * scpu / swall, spans ? scpu / (spans / 1e6) : 0, 100 * (other > 0 ? other : 0) / wall, ref, rej, fail
	}')")
	echo
}

for w in 2 4; do
	measure "loadgen grpc w=$w" max "$tmp/loadgen" --services 0 --metrics-interval 0 --endpoint @GRPC@ --protocol grpc --workers "$w" --duration "${DUR}s"
done
for w in 2 4; do
	measure "loadgen http w=$w" max "$tmp/loadgen" --services 0 --metrics-interval 0 --endpoint @HTTP@ --protocol http --workers "$w" --duration "${DUR}s"
done
# The pdata client re-encodes every request: shows what the raw replay saves the sender.
measure "loadgen grpc/pdata w=2" max "$tmp/loadgen" --services 0 --metrics-interval 0 --endpoint @GRPC@ --protocol grpc --grpc-client pdata --workers 2 --duration "${DUR}s"
# Paced: the collector's cost at a load the box sustains comfortably.
measure "loadgen grpc w=2 paced" 100k/s "$tmp/loadgen" --services 0 --metrics-interval 0 --endpoint @GRPC@ --protocol grpc --workers 2 --rate 100000 --duration "${DUR}s"

# telemetrygen: --rate is traces/s per worker, 2 spans per trace (--child-spans 1).
# Its per-worker limiter cannot pace much above ~1000 traces/s, so the
# targets below are nominal; the collector's count is what arrived. Above
# ~80 workers its SDK queue drops spans silently.
for wr in "10 1000" "20 5000" "20 20000"; do
	read -r w r <<<"$wr"
	measure "telemetrygen w=$w rate=$r" "$((w * r * 2 / 1000))k/s" "$TG" traces --otlp-endpoint @GRPC@ --otlp-insecure \
		--workers "$w" --rate "$r" --duration "${DUR}s"
done

echo "# summary (spans/s: sender = accepted as loadgen saw it, collector = cartograph_graph_spans_total delta / sender elapsed;"
echo "#  coll s/M = collector CPU seconds per million spans incl. half-edge expiry; RSS = collector VmHWM;"
echo "#  coll% = collector CPU during the run as % of one core; sender% = sender CPU as % of one core,"
echo "#  snd s/M = sender CPU seconds per million spans; other% = CPU of other processes on the machine during the run,"
echo "#  as % of one core (high values mean the run was disturbed); refused counts span-attempts)"
printf "%-28s %-11s %10s %10s %6s %8s %8s %6s %8s %7s %7s %8s %8s %6s\n" run target "sender/s" "coll/s" pairs "coll s/M" "coll%" "RSS MB" "sender%" "snd s/M" "other%" refused rejected failed
for r in "${rows[@]}"; do
	echo "$r"
done
