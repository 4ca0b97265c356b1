#!/usr/bin/env bash
# Starts the services the tests talk to, on loopback, if they are not running:
# RabbitMQ on 127.0.0.1:5672 (management API on :15672) and a single-node Garage S3 on 127.0.0.1:3900
# with a test key and bucket. Garage started here keeps its data in a fresh
# temporary directory, so no run depends on an earlier one's objects.
#
#   scripts/services.sh start   start what is missing (default)
#   scripts/services.sh stop    stop the Garage this script started
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# Test credentials: loopback-only, also the defaults of tests/src/services.rs.
S3_KEY_ID="${MONTEUR_TEST_S3_KEY_ID:-GK5b1c0d2e3f4a5b6c7d8e9f0a}"
S3_SECRET="${MONTEUR_TEST_S3_SECRET:-9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a1c3e5b7d9f0a2c4e6b8d0f}"
S3_BUCKET="${MONTEUR_TEST_S3_BUCKET:-monteur-test}"
GARAGE_DIR="${MONTEUR_GARAGE_DIR:-/tmp/monteur-garage}"
GARAGE_RPC_SECRET=3a1f5c7e9b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a

# The management API (the queue depths KEDA's RabbitMQ scaler reads, and the
# fleet test's scaler with it), on loopback like the broker; statistics every
# second instead of five so the scaler sees a burst soon.
RABBITMQ_MANAGEMENT='management.tcp.ip = 127.0.0.1
management.tcp.port = 15672
collect_statistics_interval = 1000'

start_rabbitmq() {
  command -v rabbitmq-server >/dev/null || die "rabbitmq-server is not installed: run scripts/setup.sh"
  if [ ! -e /etc/rabbitmq/rabbitmq.conf ]; then
    # Loopback only: a test broker must not be reachable from elsewhere.
    as_root mkdir -p /etc/rabbitmq
    printf 'listeners.tcp.default = 127.0.0.1:5672\n' | as_root tee /etc/rabbitmq/rabbitmq.conf >/dev/null
    printf 'NODENAME=rabbit@localhost\nERL_EPMD_ADDRESS=127.0.0.1\n' | as_root tee /etc/rabbitmq/rabbitmq-env.conf >/dev/null
  fi
  if ! grep -q '^management.tcp.ip' /etc/rabbitmq/rabbitmq.conf; then
    printf '%s\n' "$RABBITMQ_MANAGEMENT" | as_root tee -a /etc/rabbitmq/rabbitmq.conf >/dev/null
  fi
  if port_open 5672; then
    if port_open 15672; then say "RabbitMQ already listening on 127.0.0.1:5672 (management on 15672)"; return; fi
    # Started before the management settings were written: they are read at
    # boot only, so a restart (the tests start what they need).
    say "restarting RabbitMQ to start its management API"
    as_root rabbitmqctl stop >/dev/null 2>&1 || true
    for _ in $(seq 1 120); do port_open 5672 || break; sleep 0.25; done
  fi
  as_root rabbitmq-plugins --offline enable rabbitmq_management >/dev/null \
    || die "could not enable RabbitMQ's management plugin"
  say "starting RabbitMQ"
  as_root rabbitmq-server -detached >/dev/null 2>&1 || true
  # await_startup fails straight after -detached; the ports are the signal.
  wait_port 5672 60 || die "RabbitMQ did not open 127.0.0.1:5672 within 60 s (see /var/log/rabbitmq)"
  wait_port 15672 60 || die "RabbitMQ's management API did not open 127.0.0.1:15672 within 60 s"
}

garage() { "$GARAGE_BIN" -c "$GARAGE_DIR/garage.toml" "$@"; }

start_garage() {
  [ -x "$GARAGE_BIN" ] || die "Garage is not built: run scripts/setup.sh"
  if port_open 3900; then
    [ -f "$GARAGE_DIR/garage.toml" ] || die "something else listens on 127.0.0.1:3900; stop it or set up Garage there"
    say "Garage already listening on 127.0.0.1:3900"
  else
    rm -rf "$GARAGE_DIR"
    mkdir -p "$GARAGE_DIR"
    cat >"$GARAGE_DIR/garage.toml" <<TOML
metadata_dir = "$GARAGE_DIR/meta"
data_dir = "$GARAGE_DIR/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:3901"
rpc_public_addr = "127.0.0.1:3901"
rpc_secret = "$GARAGE_RPC_SECRET"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:3900"

[admin]
api_bind_addr = "127.0.0.1:3903"
TOML
    say "starting Garage $GARAGE_VERSION in $GARAGE_DIR"
    setsid "$GARAGE_BIN" -c "$GARAGE_DIR/garage.toml" server >"$GARAGE_DIR/garage.log" 2>&1 < /dev/null &
    echo $! >"$GARAGE_DIR/garage.pid"
    local i
    for ((i = 0; i < 60; i++)); do
      garage status >/dev/null 2>&1 && break
      sleep 0.5
    done
    garage status >/dev/null 2>&1 || die "Garage did not answer within 30 s (see $GARAGE_DIR/garage.log)"
  fi
  # Read the layout whole before matching: `garage layout show | grep -q`
  # under pipefail fails whenever grep exits before garage finishes writing
  # (SIGPIPE), and re-applying an applied layout is an error.
  local layout="" i
  for ((i = 0; i < 20; i++)); do
    layout=$(garage layout show 2>/dev/null) && break
    sleep 0.5
  done
  [ -n "$layout" ] || die "Garage did not report its cluster layout"
  if ! grep -q 'dc1' <<<"$layout"; then
    local node
    node=$(garage node id -q 2>/dev/null | cut -d@ -f1)
    [ -n "$node" ] || die "could not read the Garage node id"
    garage layout assign -z dc1 -c 1G "$node" >/dev/null
    garage layout apply --version 1 >/dev/null
  fi
  garage key info "$S3_KEY_ID" >/dev/null 2>&1 \
    || garage key import --yes -n monteur-test "$S3_KEY_ID" "$S3_SECRET" >/dev/null
  garage bucket info "$S3_BUCKET" >/dev/null 2>&1 || garage bucket create "$S3_BUCKET" >/dev/null
  garage bucket allow --read --write --owner "$S3_BUCKET" --key "$S3_KEY_ID" >/dev/null
  wait_port 3900 30 || die "Garage S3 API did not open 127.0.0.1:3900"
  say "Garage ready: bucket $S3_BUCKET on http://127.0.0.1:3900"
}

# moto's S3 server (versioned buckets), in memory, loopback only.
MOTO_DIR="${MONTEUR_MOTO_DIR:-/tmp/monteur-moto}"
start_moto() {
  if port_open 3950; then say "moto already listening on 127.0.0.1:3950"; return; fi
  local bin="$CACHE/pytools/bin/moto_server"
  [ -x "$bin" ] || die "moto is not installed: run scripts/setup.sh"
  mkdir -p "$MOTO_DIR"
  setsid "$bin" -H 127.0.0.1 -p 3950 >"$MOTO_DIR/moto.log" 2>&1 < /dev/null &
  echo $! >"$MOTO_DIR/moto.pid"
  wait_port 3950 30 || die "moto did not open 127.0.0.1:3950 (see $MOTO_DIR/moto.log)"
  say "moto ready on http://127.0.0.1:3950"
}

stop_moto() {
  if [ -f "$MOTO_DIR/moto.pid" ]; then
    kill "$(cat "$MOTO_DIR/moto.pid")" 2>/dev/null || true
    rm -f "$MOTO_DIR/moto.pid"
  fi
}

stop_garage() {
  if [ -f "$GARAGE_DIR/garage.pid" ]; then
    kill "$(cat "$GARAGE_DIR/garage.pid")" 2>/dev/null || true
    rm -f "$GARAGE_DIR/garage.pid"
  fi
}

case "${1:-start}" in
  start) start_rabbitmq; start_garage; start_moto ;;
  stop) stop_garage; stop_moto ;;
  *) die "usage: $0 [start|stop]" ;;
esac
