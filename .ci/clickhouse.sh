#!/usr/bin/env bash
# Installs and runs a modern ClickHouse (26.7) for the tests, outside the repo
# (see ../shared/ENV.md, "ClickHouse"). The engine is libchdb.so from the npm
# package @chdb/lib-linux-x64-gnu; a tiny C program, chserve, runs it like
# `clickhouse local` and makes it serve the native TCP and HTTP protocols.
# Idempotent: a server already answering /ping is left alone.
#
#   .ci/clickhouse.sh [start]   install if needed, start in the background
#   .ci/clickhouse.sh stop      SIGTERM the server started here, wait for exit
#   .ci/clickhouse.sh restart   stop, then start
#   .ci/clickhouse.sh status    exit 0 when it answers, 1 otherwise
#
#   CARTOGRAPH_CACHE          cache dir (default $HOME/.cache/cartograph)
#   CARTOGRAPH_CH_TCP_PORT    native protocol port (default 19000)
#   CARTOGRAPH_CH_HTTP_PORT   HTTP port (default 18123)
#   CARTOGRAPH_CH_DATA        data dir (default $CARTOGRAPH_CACHE/clickhouse/data)
#   CARTOGRAPH_CH_VERSION     chdb npm version (default 26.7.3-stable.1)
#
# Everything listens on 127.0.0.1 only; one passwordless user, `default`.
# Note: async_insert is ON by default in this engine; tests that need an
# insert to be visible at once set async_insert=0.
set -euo pipefail

cache="${CARTOGRAPH_CACHE:-$HOME/.cache/cartograph}"
dir="$cache/clickhouse"
version="${CARTOGRAPH_CH_VERSION:-26.7.3-stable.1}"
tcp_port="${CARTOGRAPH_CH_TCP_PORT:-19000}"
http_port="${CARTOGRAPH_CH_HTTP_PORT:-18123}"
data="${CARTOGRAPH_CH_DATA:-$dir/data}"
pkg="@chdb/lib-linux-x64-gnu@$version"
tgz="$dir/chdb-lib-linux-x64-gnu-$version.tgz"
lib="$dir/lib-$version"          # unpacked package: $lib/libchdb.so
bin="$lib/chserve"               # built against (and rpath'd to) $lib
pidfile="$dir/chserve.pid"
logfile="$dir/chserve.log"
ping="http://127.0.0.1:$http_port/ping"

log() { echo "clickhouse: $*" >&2; }
die() { log "$*"; exit 1; }

apt_install() {
  log "apt-get install $*"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$@" >/dev/null
}

answering() { curl -sf -o /dev/null --max-time 2 "$ping"; }

# our_pid prints the pid from the pid file when that process is alive and is
# one of our chserve binaries (not a recycled pid).
our_pid() {
  local pid exe
  [ -s "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  case "$exe" in */chserve) echo "$pid" ;; *) return 1 ;; esac
}

print_dsn() {
  echo "ClickHouse $(curl -sf --max-time 5 "http://127.0.0.1:$http_port/?query=SELECT%20version()" || echo '?') on 127.0.0.1"
  echo "  DSN:  clickhouse://127.0.0.1:$tcp_port/default"
  echo "  HTTP: http://127.0.0.1:$http_port/"
}

install() {
  command -v curl >/dev/null || apt_install curl
  command -v npm >/dev/null || apt_install npm
  command -v gcc >/dev/null || apt_install gcc libc6-dev
  mkdir -p "$dir"

  if [ ! -f "$lib/libchdb.so" ]; then
    if [ ! -s "$tgz" ]; then
      log "downloading $pkg (~178 MB)"
      local tmp; tmp=$(mktemp -d "$dir/pack.XXXXXX")
      (cd "$tmp" && npm pack --silent "$pkg" >/dev/null 2>&1) ||
        { rm -rf "$tmp"; die "npm pack $pkg failed"; }
      mv "$tmp"/*.tgz "$tgz"
      rm -rf "$tmp"
    fi
    log "unpacking $(basename "$tgz")"
    rm -rf "$lib.tmp" && mkdir -p "$lib.tmp"
    tar -xzf "$tgz" -C "$lib.tmp" --strip-components=1 package/libchdb.so
    rm -rf "$lib" && mv "$lib.tmp" "$lib"
  fi

  # chserve: the C source lives here; rebuild when it changes.
  cat > "$dir/chserve.c.new" <<'C'
/* chserve: runs the ClickHouse engine in libchdb.so exactly like
 * `clickhouse local`, passing on this program's own arguments. Given
 * "SYSTEM START LISTEN TCP; SYSTEM START LISTEN HTTP" and a query that never
 * ends, it serves the native and HTTP protocols until it gets SIGTERM.
 * Written and built by .ci/clickhouse.sh. */
#include <stdio.h>
typedef struct chdb_result chdb_result;            /* opaque (chdb.h) */
chdb_result *chdb_query_cmdline(int argc, char **argv);
const char *chdb_result_error(chdb_result *r);

int main(int argc, char **argv) {
    chdb_result *r = chdb_query_cmdline(argc, argv);
    const char *err = r ? chdb_result_error(r) : "no result";
    if (err && *err) { fprintf(stderr, "chserve: %s\n", err); return 1; }
    return 0;
}
C
  if [ ! -x "$bin" ] || ! cmp -s "$dir/chserve.c.new" "$dir/chserve.c"; then
    log "building chserve"
    gcc -O2 -o "$bin.tmp" -x c "$dir/chserve.c.new" -L"$lib" -lchdb -Wl,-rpath,"$lib"
    mv "$bin.tmp" "$bin"
    mv "$dir/chserve.c.new" "$dir/chserve.c"
  else
    rm -f "$dir/chserve.c.new"
  fi
}

start() {
  if answering; then print_dsn; return 0; fi
  install
  # A chserve of ours that is alive but not answering (starting, or wedged):
  # give it the usual wait below rather than starting a second one on the
  # same data dir.
  local pid
  if ! pid=$(our_pid); then
    mkdir -p "$data"
    log "starting chserve (tcp $tcp_port, http $http_port, data $data)"
    # setsid + nohup: its own session, survives this script and its terminal.
    # The endless sleepEachRow query keeps the engine (and its listeners) up;
    # FORMAT Null keeps its rows out of the log.
    (cd "$data" && exec setsid nohup "$bin" \
      --path="$data" --listen_host=127.0.0.1 \
      --tcp_port="$tcp_port" --http_port="$http_port" \
      --multiquery --query "SYSTEM START LISTEN TCP; SYSTEM START LISTEN HTTP;
        SELECT sleepEachRow(1) FROM system.numbers
        SETTINGS max_block_size=1, max_execution_time=0 FORMAT Null" \
      >"$logfile" 2>&1 </dev/null 9>&-) &  # 9>&-: not the lock
    pid=$!
    echo "$pid" > "$pidfile"
  fi
  for _ in $(seq 1 600); do   # ~60 s
    if answering; then print_dsn; return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      log "chserve (pid $pid) exited before answering $ping; log tail ($logfile):"
      tail -n 30 "$logfile" >&2 || true
      rm -f "$pidfile"
      return 1
    fi
    sleep 0.1
  done
  log "chserve (pid $pid) did not answer $ping within 60 s; log tail ($logfile):"
  tail -n 30 "$logfile" >&2 || true
  return 1
}

stop() {
  local pid
  if ! pid=$(our_pid); then
    rm -f "$pidfile"
    if answering; then
      die "something answers $ping but was not started by this script (no live pid in $pidfile); not stopping it"
    fi
    log "not running"
    return 0
  fi
  log "stopping chserve (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do   # ~30 s, then SIGKILL
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "chserve (pid $pid) ignored SIGTERM for 30 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$pidfile"
  if answering; then die "stopped pid $pid but $ping still answers"; fi
  log "stopped"
}

status() {
  if answering; then
    print_dsn
    if pid=$(our_pid); then echo "  pid $pid (from $pidfile), log $logfile"; fi
    return 0
  fi
  echo "ClickHouse: not answering $ping"
  return 1
}

# One invocation at a time per cache dir (parallel test packages may all call start).
mkdir -p "$dir"
exec 9>"$dir/lock"
flock 9

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) status ;;
  install) install ;;
  *) echo "usage: $0 [start|stop|restart|status|install]" >&2; exit 2 ;;
esac
