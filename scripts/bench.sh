#!/usr/bin/env bash
# Benchmark: our notary-server (release build) and Debian's Go notary-server side by side, on
# the same private Postgres (fsync on, as in production), both over TLS with the same
# certificate, each with its local trust service. Prints notary-bench's table for each.
# Usage: bash scripts/bench.sh [notary-bench options, e.g. --concurrency 32 --requests 20000]
#        bash scripts/bench.sh --rss-guns 10000   (memory of our server with that many repositories cached)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh
command -v notary-server >/dev/null || { apt-get update -qq && apt-get install -y -qq notary >/dev/null; }

cargo build --release --locked -p notary-server -p notary-bench
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; stop_pg; rm -rf "$work"; }
trap cleanup EXIT
start_pg
psql() { "$PG_BIN/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }
psql -c "CREATE DATABASE notary_rs" -c "CREATE DATABASE notary_go"
psql -d notary_go -f fixtures/go-server-postgres-schema.sql >/dev/null
./target/release/notary-server --generate-tls "$work/tls" >/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rs_port=$(free_port); go_port=$(free_port)
cat > "$work/rs.json" <<JSON
{"server":{"http_addr":"127.0.0.1:$rs_port","tls_cert_file":"$work/tls/server.crt","tls_key_file":"$work/tls/server.key"},
 "trust_service":{"type":"local","key_algorithm":"ecdsa"},
 "storage":{"backend":"postgres","db_url":"$PG_URL/notary_rs"},"logging":{"level":"warn"}}
JSON
cat > "$work/go.json" <<JSON
{"server":{"http_addr":"127.0.0.1:$go_port","tls_cert_file":"$work/tls/server.crt","tls_key_file":"$work/tls/server.key"},
 "trust_service":{"type":"local","hostname":"","port":"","key_algorithm":"ecdsa"},
 "storage":{"backend":"postgres","db_url":"$PG_URL/notary_go?sslmode=disable"},"logging":{"level":"error"}}
JSON
NOTARY_SERVER_KEY_PASSPHRASE=bench ./target/release/notary-server --config "$work/rs.json" >"$work/rs.log" 2>&1 & pids+=($!)
notary-server -config "$work/go.json" >"$work/go.log" 2>&1 & pids+=($!)
for port in $rs_port $go_port; do
  for _ in $(seq 100); do curl -sf --cacert "$work/tls/ca.crt" "https://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
done
echo "## notary-rs (this repository) --against Go notary-server $(dpkg-query -W -f '${Version}' notary) (Debian), $(nproc) cores"
./target/release/notary-bench --url "https://127.0.0.1:$rs_port" --ca "$work/tls/ca.crt" --server-pid "${pids[0]}" \
  --against "https://127.0.0.1:$go_port" --against-pid "${pids[1]}" "$@" ||
  { echo "notary-bench failed; last lines of the servers' logs:"; tail -n 20 "$work/rs.log" "$work/go.log"; exit 1; }
