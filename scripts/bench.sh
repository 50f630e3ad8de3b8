#!/usr/bin/env bash
# Benchmark: our notary-server (release build) and Debian's Go notary-server side by side, on
# the same private Postgres (fsync on, as in production), both over TLS with the same
# certificate, each with its local trust service. Prints notary-bench's table for each.
# Usage: bash scripts/bench.sh [notary-bench options, e.g. --concurrency 64 --seconds 3 --half-peak-secs 5 --publishes 20]
#        bash scripts/bench.sh --rss-guns 10000   (memory of our server with that many repositories cached)
#        bash scripts/bench.sh --history 10000    (rows and database size before and after `prune`)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh
command -v notary-server >/dev/null || { apt-get update -qq && apt-get install -y -qq notary >/dev/null; }
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }

cargo build --release --locked -p notary-server -p notary-bench
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/nginx/nginx.pid" ] && kill "$(cat "$work/nginx/nginx.pid")" 2>/dev/null || true
  stop_pg; rm -rf "$work"
}
trap cleanup EXIT
start_pg
psql() { "$PG_BIN/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }
psql -c "CREATE DATABASE notary_rs" -c "CREATE DATABASE notary_go"
psql -d notary_go -f fixtures/go-server-postgres-schema.sql >/dev/null
./target/release/notary-server --generate-tls "$work/tls" >/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rs_port=$(free_port); go_port=$(free_port)
cat > "$work/rs.json" <<JSON
{"server":{"http_addr":"127.0.0.1:$rs_port","tls_cert_file":"$work/tls/server.crt","tls_key_file":"$work/tls/server.key","key_creations_per_minute":0},
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
# History mode: one repository with N published versions on our server, then `prune`: rows
# and database size before and after (docs/operations.md).
case " $* " in *" --history "*)
  n=$(echo " $* " | sed -E 's/.* --history ([0-9]+).*/\1/')
  ./target/release/notary-bench --url "https://127.0.0.1:$rs_port" --ca "$work/tls/ca.crt" --history "$n"
  measure() { psql -d notary_rs -tA -c "SELECT count(*) || ' rows, ' || pg_size_pretty(pg_database_size('notary_rs')) FROM tuf_files"; }
  before=$(measure)
  t0=$(date +%s.%N)
  NOTARY_SERVER_KEY_PASSPHRASE=bench ./target/release/notary-server --config "$work/rs.json" prune --keep-versions 10 --keep-days 0 | tail -n 1
  t1=$(date +%s.%N)
  psql -d notary_rs -c "VACUUM FULL tuf_files" >/dev/null
  echo "prune of a $n-version repository (keep 10 newest): before $before; after $(measure) (after VACUUM FULL); prune took $(python3 -c "print(f'{$t1-$t0:.1f}')") s"
  exit 0 ;;
esac
echo "## notary-rs (this repository) --against Go notary-server $(dpkg-query -W -f '${Version}' notary) (Debian), $(nproc) cores"
./target/release/notary-bench --url "https://127.0.0.1:$rs_port" --ca "$work/tls/ca.crt" --server-pid "${pids[0]}" \
  --against "https://127.0.0.1:$go_port" --against-pid "${pids[1]}" "$@" | tee "$work/bench.out" ||
  { echo "notary-bench failed; last lines of the servers' logs:"; tail -n 20 "$work/rs.log" "$work/go.log"; exit 1; }
case " $* " in *" --rss-guns"*) exit 0 ;; esac

# A reference for the machine's and the load generator's share of the latency: the same
# open-loop load (GET timestamp.json, same rate, same connections) against nginx serving a
# cached copy over TLS — no database, no barrier, a C server returning a cached file.
# (our first open-loop row: its req/s, the second number after the name)
rate=$(awk '/^GET timestamp.json @/ { n = 0; for (i = 3; i <= NF; i++) if ($i ~ /^[0-9.]+$/ && ++n == 2) { print $i; exit } }' "$work/bench.out")
if [ -n "$rate" ]; then
  nginx_port=$(free_port)
  mkdir -p "$work/nginx/cache"
  chmod 711 "$work"  # nginx's workers (user nobody) reach their cache folder; nothing else is listable
  cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes $(nproc);
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  proxy_cache_path $work/nginx/cache levels=1:2 keys_zone=tuf:10m max_size=100m;
  upstream notary { server 127.0.0.1:$rs_port; keepalive 32; }
  server {
    listen 127.0.0.1:$nginx_port ssl;
    ssl_certificate $work/tls/server.crt;
    ssl_certificate_key $work/tls/server.key;
    keepalive_requests 100000000;
    location / {
      proxy_pass https://notary;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache tuf;
      proxy_cache_valid 200 10m;
      proxy_cache_lock on;
    }
  }
}
NGINX
  nginx -c "$work/nginx/nginx.conf"
  conc=$(awk '/concurrency [0-9]+$/ {print $NF; exit}' "$work/bench.out")
  echo
  echo "## Reference: the same open-loop load against nginx $(nginx -v 2>&1 | sed 's|.*/||') serving a cached copy over TLS"
  ./target/release/notary-bench --url "https://127.0.0.1:$nginx_port" --ca "$work/tls/ca.crt" --concurrency "${conc:-16}" \
    --seconds 1 --half-peak-secs 5 --rate "$rate" --only timestamp.json | grep -E '^(operation|GET timestamp.json @)'
  kill "$(cat "$work/nginx/nginx.pid")"; rm -f "$work/nginx/nginx.pid"
fi

# A second view of latency at half of peak, with a load generator much lighter than ours: wrk
# (closed loop, one thread). Peak at 64 connections; then the fewest connections that reach half
# of it, and the p99 there. Closed loop under-reports stalls (a stalled connection sends nothing
# meanwhile), which the open-loop figure above does not; the two bracket the truth.
wrk_ms() { awk '{v=$1; if (v ~ /us$/) {sub("us","",v); v/=1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v*=1000}; printf "%.2f", v}'; }
wrk_half_peak() { # label url
  local out peak rate p99 c
  out=$(wrk -t1 -c64 -d5s "$2"); peak=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  for c in 1 2 3 4 5 6 8 10 12 16 24 32; do
    out=$(wrk -t1 -c$c -d5s --latency "$2")
    rate=$(awk '/Requests\/sec/{print $2}' <<<"$out")
    awk -v r="$rate" -v p="$peak" 'BEGIN{exit !(r >= p/2)}' && break
  done
  p99=$(awk '$1=="99%"{print $2}' <<<"$out" | wrk_ms)
  printf '%-26s wrk peak %8.0f req/s (64 connections); at %2d connections %8.0f req/s, p99 %s ms\n' "$1" "$peak" "$c" "$rate" "$p99"
}
echo
echo "## GET timestamp.json at half of peak, closed loop (wrk $(dpkg-query -W -f '${Version}' wrk))"
for side in rs go; do
  port=$rs_port; [ $side = go ] && port=$go_port
  gun=$(psql -d notary_$side -tAc "SELECT gun FROM tuf_files WHERE role = 'timestamp' ORDER BY id DESC LIMIT 1")
  [ -n "$gun" ] || continue
  # wrk checks no certificate; the servers are the ones this script started.
  wrk_half_peak "$([ $side = rs ] && echo notary-rs || echo 'Go notary-server')" "https://127.0.0.1:$port/v2/$gun/_trust/tuf/timestamp.json"
done

# The cost of a hostile request path (docs/security.md): the longest path notary-rs routes (8 KiB
# of `/_trust/tuf/` segments ending in no valid role) and a 60 KB one (notary-rs: 414 at once).
# Each request is a new curl, so the figures include a TLS handshake (~1-2 ms).
hostile_ms() { # url
  for _ in $(seq 30); do curl -sk -o /dev/null -w '%{time_total}\n' "$1"; done | awk '{s+=$1} END {printf "%.2f", s/NR*1000}'
}
echo
echo "## Hostile request paths (mean of 30 requests, new TLS connection each)"
seg8k=$(printf 'targets/_trust/tuf/%.0s' $(seq 420)); seg60k=$(printf 'targets/_trust/tuf/%.0s' $(seq 3200))
for side in rs go; do
  port=$rs_port; [ $side = go ] && port=$go_port
  printf '%-18s 8 KiB path %8s ms   60 KB path %8s ms\n' "$([ $side = rs ] && echo notary-rs || echo 'Go notary-server')" \
    "$(hostile_ms "https://127.0.0.1:$port/v2/g/_trust/tuf/$seg8k%20.json")" "$(hostile_ms "https://127.0.0.1:$port/v2/g/_trust/tuf/$seg60k%20.json")"
done

# Peak memory (VmHWM) after a hostile upload: a targets.json of `[0,0,…]` (a JSON value every
# two bytes), 10 MB and the largest accepted body (docs/security.md).
echo
echo "## Hostile uploads: peak resident memory of each server before and after"
python3 - "$work" <<'PY'
import sys
for name, n in (("dense-10m", 5_000_000), ("dense-max", 60_000_000)):
    with open(f"{sys.argv[1]}/{name}.json", "w") as f:
        f.write('{"signed":{"_type":"Targets","expires":"2030-01-01T00:00:00Z","version":2,"targets":{},"x":[' + "0," * n + '0]},"signatures":[]}')
PY
hwm() { awk '/VmHWM/{printf "%.0f", $2/1024}' "/proc/$1/status"; }
for side in rs go; do
  port=$rs_port; pid=${pids[0]}; [ $side = go ] && { port=$go_port; pid=${pids[1]}; }
  for f in dense-10m dense-max; do
    before=$(hwm "$pid")
    code=$(curl -sk -o /dev/null -w '%{http_code}' -F "files=@$work/$f.json;filename=targets" \
      "https://127.0.0.1:$port/v2/example.com/bench/hostile/_trust/tuf/")
    printf '%-18s %-10s %5s MiB -> %5s MiB (HTTP %s)\n' "$([ $side = rs ] && echo notary-rs || echo 'Go notary-server')" \
      "$f" "$before" "$(hwm "$pid")" "$code"
  done
done
