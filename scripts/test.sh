#!/usr/bin/env bash
# Runs every test of the workspace. On a fresh Debian machine it first installs what the tests
# need (idempotently): the Go notary programs (Debian package `notary` 0.7.0) used as peers,
# openssl and curl. Everything the tests start (servers on loopback) they stop themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

need_pkgs=()
command -v notary >/dev/null 2>&1 || need_pkgs+=(notary)
[ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/initdb" ] || need_pkgs+=(postgresql)
command -v runuser >/dev/null 2>&1 || need_pkgs+=(util-linux)
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "==> installing ${need_pkgs[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
echo "==> Go notary CLI: $(command -v notary)"

# A private Postgres cluster for the tests, on a free loopback port; stopped and removed on exit.
PG_BIN=$(pg_bin)
PG_DIR=$(mktemp -d /tmp/notary-rs-pg.XXXXXX)
chown postgres "$PG_DIR"
PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
stop_pg() {
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
}
trap stop_pg EXIT
runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres >/dev/null
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
  -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400" start >/dev/null
export NOTARY_TEST_PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
echo "==> Postgres $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT"

echo "==> cargo test --workspace"
cargo test --workspace --locked 2>&1
