#!/usr/bin/env bash
# Installs and starts the servers the tests need, when they are not already
# there (see ../shared/ENV.md). Idempotent; safe to run on a developer machine.
set -euo pipefail

apt_install() {
  if ! dpkg -s "$@" >/dev/null 2>&1; then
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$@"
  fi
}

wait_for() { # url seconds
  for _ in $(seq 1 $(( $2 * 10 ))); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "timed out waiting for $1" >&2
  return 1
}

# --- NATS: tests start their own nats-server (with monitoring) on free ports.
apt_install nats-server curl

# --- Chromium: the UI's browser tests drive it headless (chromedp).
apt_install chromium

# --- RabbitMQ with the management and prometheus plugins on 127.0.0.1.
rabbit_up() { rabbitmqctl status >/dev/null 2>&1; }
if ! rabbit_up; then
  apt_install rabbitmq-server
  base=/var/lib/cartograph-ci/rabbitmq
  mkdir -p "$base/mnesia" "$base/log"
  cat > "$base/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:5672
management.tcp.ip = 127.0.0.1
management.tcp.port = 15672
prometheus.tcp.ip = 127.0.0.1
prometheus.tcp.port = 15692
collect_statistics_interval = 1000
management.sample_retention_policies.global.minute = 1
management.sample_retention_policies.basic.minute = 1
management.sample_retention_policies.detailed.10 = 1
loopback_users.guest = true
CONF
  chown -R rabbitmq:rabbitmq "$base" 2>/dev/null || true
  export RABBITMQ_CONFIG_FILE="$base/rabbitmq" RABBITMQ_MNESIA_BASE="$base/mnesia" \
    RABBITMQ_LOG_BASE="$base/log" RABBITMQ_ENABLED_PLUGINS_FILE="$base/enabled_plugins" \
    RABBITMQ_PID_FILE="$base/rabbitmq.pid" ERL_EPMD_ADDRESS=127.0.0.1
  rabbitmq-plugins enable --offline rabbitmq_management rabbitmq_prometheus >/dev/null
  rabbitmq-server -detached
  rabbitmqctl wait --timeout 110 "$RABBITMQ_PID_FILE" >/dev/null
else
  rabbitmq-plugins enable rabbitmq_management rabbitmq_prometheus >/dev/null
  # A broker started by the machine refreshes management stats every 5s,
  # which makes the poller tests wait; give it 1s stats and restart it once.
  if ! rabbitmqctl eval 'application:get_env(rabbit, collect_statistics_interval).' 2>/dev/null | grep -q '{ok,1000}'; then
    conf=/etc/rabbitmq/rabbitmq.conf
    touch "$conf"
    for line in "collect_statistics_interval = 1000" \
                "management.sample_retention_policies.global.minute = 1" \
                "management.sample_retention_policies.basic.minute = 1" \
                "management.sample_retention_policies.detailed.10 = 1"; do
      grep -qF "${line%% =*}" "$conf" || echo "$line" >> "$conf"
    done
    rabbitmqctl stop >/dev/null 2>&1 || true
    for _ in $(seq 1 100); do rabbit_up || break; sleep 0.1; done
    rabbitmq-server -detached
    for _ in $(seq 1 300); do rabbit_up && break; sleep 0.2; done
    rabbitmq-plugins enable rabbitmq_management rabbitmq_prometheus >/dev/null
  fi
fi
wait_for http://guest:guest@127.0.0.1:15672/api/overview 60

# --- Redis and PostgreSQL: ingest/corpus drives redisotel and otelsql against
# them (127.0.0.1:6379; 127.0.0.1:5432 as user postgres without a password).
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  apt_install redis-server
  redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --daemonize yes
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  apt_install postgresql
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  hba=/etc/postgresql/$ver/main/pg_hba.conf
  grep -q '^host all postgres 127.0.0.1/32 trust' "$hba" || sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
  pg_ctlcluster "$ver" main start || pg_ctlcluster "$ver" main reload
  for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.1; done
fi
echo "services: rabbitmq management on 127.0.0.1:15672, redis on :6379, postgresql on :5432, nats-server $(nats-server --version 2>&1 | head -1)"
