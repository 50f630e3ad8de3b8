#!/usr/bin/env bash
# Benchmark: our notary-server (release build) and Debian's Go notary-server side by side, on
# the same private Postgres (fsync on, as in production), both over TLS with the same
# certificate, each with its local trust service. Prints notary-bench's table for each.
# Usage: bash scripts/bench.sh [notary-bench options, e.g. --concurrency 64 --seconds 3 --half-peak-secs 5 --publishes 20]
#        bash scripts/bench.sh --rss-guns 10000   (memory of our server with that many repositories cached)
#        bash scripts/bench.sh --history 10000    (rows and database size before and after `prune`)
#        bash scripts/bench.sh --flamegraph      (perf profile of our current reads at peak, as
#             docs/performance/flamegraph.svg; needs perf and `cargo install inferno`)
#        bash scripts/bench.sh --key-binding 1000000  (the first start on a database of that many
#             repositories whose server keys were never bound, as a Go database: time to healthy,
#             and until every root is read in the background)
#        bash scripts/bench.sh --publication [--publishes-visible 100]  (static publication: GET
#             timestamp.json from nginx serving the published tree vs our server, and the delay from
#             a publish returning to the tree holding it, p50/p99; docs/static-publication.md)
#        bash scripts/bench.sh --kms [--publishes 10]  (the AWS KMS key store against moto vs the SQL
#             store: publish throughput and p99 through a remote signer on each, and the cost per
#             signature, the store's own work apart; docs/key-storage.md)
#        bash scripts/bench.sh --upload [--targets 20000]  (one large upload's parse and validation
#             alone: p50 ms each and the peak heap per upload byte; docs/performance.md)
#        bash scripts/bench.sh --stalls [--targets 20000]  (small reads' p50/p99 alone and while a
#             large repository is published and its new targets.json first compressed, again and
#             again; docs/performance.md)
#        bash scripts/bench.sh --curves [--max-repos 1000000] [--max-versions 10000]
#             (cost vs targets per repository, vs repositories, vs history: a CSV, the SVG plots in
#              docs/performance/ and the query plans, docs/performance.md)
#             [--repo-points 1000000] (only these repository counts, comma-separated)
#             [--curves-out DIR] (CSVs and plots there instead of docs/performance)
#        NOTARY_RS_SERVER=PATH bash scripts/bench.sh …  (the default run against another build of
#             our server, e.g. an older commit's, with this load generator: before/after figures)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh
command -v notary-server >/dev/null || { apt-get update -qq && apt-get install -y -qq notary >/dev/null; }
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }

cargo build --release --locked -p notary-tools -p notary-bench -p notary-signer
# Upload mode (docs/performance.md, issue 32 item 3): the server's CPU and peak heap for one
# large upload, parse and validation alone (no server, no database).
case " $* " in *" --upload "*)
  t=$(echo " $* " | sed -nE 's/.* --targets ([0-9]+).*/\1/p')
  ./target/release/notary-bench-upload --targets "${t:-20000}"
  exit 0 ;;
esac
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}" $(cat "$work/rs.pid" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
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
publish_block=""
case " $* " in *" --publication "*) publish_block=',"publish":{"directory":"'"$work"'/tree","interval_ms":100}' ;; esac
cat > "$work/rs.json" <<JSON
{"server":{"http_addr":"127.0.0.1:$rs_port","tls_cert_file":"$work/tls/server.crt","tls_key_file":"$work/tls/server.key","key_creations_per_minute":0},
 "trust_service":{"type":"local","key_algorithm":"ecdsa"},
 "storage":{"backend":"postgres","db_url":"$PG_URL/notary_rs"},"logging":{"level":"warn"}$publish_block}
JSON
cat > "$work/go.json" <<JSON
{"server":{"http_addr":"127.0.0.1:$go_port","tls_cert_file":"$work/tls/server.crt","tls_key_file":"$work/tls/server.key"},
 "trust_service":{"type":"local","hostname":"","port":"","key_algorithm":"ecdsa"},
 "storage":{"backend":"postgres","db_url":"$PG_URL/notary_go?sslmode=disable"},"logging":{"level":"error"}}
JSON
NOTARY_SERVER_KEY_PASSPHRASE=bench "${NOTARY_RS_SERVER:-./target/release/notary-server}" --config "$work/rs.json" >"$work/rs.log" 2>&1 & pids+=($!)
notary-server -config "$work/go.json" >"$work/go.log" 2>&1 & pids+=($!)
for port in $rs_port $go_port; do
  for _ in $(seq 100); do curl -sf --cacert "$work/tls/ca.crt" "https://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
done
# Flame graph mode: where our server's CPU goes at peak on current reads (docs/performance.md).
case " $* " in *" --flamegraph "*)
  command -v perf >/dev/null || { apt-get update -qq && apt-get install -y -qq linux-perf >/dev/null; }
  command -v inferno-flamegraph >/dev/null || cargo install inferno --locked --quiet
  read_peak=(./target/release/notary-bench --url "https://127.0.0.1:$rs_port" --ca "$work/tls/ca.crt" --server-pid "${pids[0]}"
    --concurrency 16 --half-peak-secs 0 --publishes 0 --only "GET timestamp.json")
  "${read_peak[@]}" --seconds 2 >/dev/null  # seeds its repositories, warms up
  # Unwound from .eh_frame (release builds keep no frame pointers).
  perf record -F 499 --call-graph dwarf,32768 -p "${pids[0]}" -o "$work/perf.data" -- sleep 5 >/dev/null 2>&1 &
  perf_pid=$!; sleep 0.5
  "${read_peak[@]}" --seconds 6 --guns 1 | grep -E '^(operation|GET timestamp.json )'
  wait "$perf_pid"
  perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf > "$work/collapsed.txt"
  mkdir -p docs/performance
  inferno-flamegraph --title "notary-rs: GET timestamp.json at peak, 16 connections ($(date -u +%F))" --width 1400 \
    < "$work/collapsed.txt" > docs/performance/flamegraph.svg
  echo "wrote docs/performance/flamegraph.svg"
  exit 0 ;;
esac
# Peak GET timestamp.json req/s and p99 ms at $2 connections (default 16) from $1.
peak() {
  ./target/release/notary-bench --url "$1" --ca "$work/tls/ca.crt" --concurrency "${2:-16}" --seconds 3 \
    --half-peak-secs 0 --publishes 0 --only "GET timestamp.json" --guns 20 | awk '/^GET timestamp.json  /{print $4, $6}'
}
# Our server against nginx on $nginx_port (labelled $1), back to back, twice, at $2 connections.
against_nginx() {
  local round ours ours_p99 theirs theirs_p99
  for round in 1 2; do
    read -r ours ours_p99 < <(peak "https://127.0.0.1:$rs_port" "$2")
    read -r theirs theirs_p99 < <(peak "https://127.0.0.1:$nginx_port" "$2")
    printf 'round %d: notary-rs %8.0f req/s (p99 %s ms)   %s %8.0f req/s (p99 %s ms)   ratio %.2f\n' \
      "$round" "$ours" "$ours_p99" "$1" "$theirs" "$theirs_p99" "$(python3 -c "print($ours / $theirs)")"
  done
}
# Publication mode (docs/static-publication.md, issue 30 item 5): our server publishes every
# write to $work/tree; nginx serves that tree over TLS (same certificate, same load generator,
# same connections) with the documented config, falling back to our server for what the tree
# does not hold (the load generator's publishes). Then the delay from a publish returning to
# the tree holding its timestamp, over N publishes by the Go CLI.
case " $* " in *" --publication "*)
  n=$(echo " $* " | sed -nE 's/.* --publishes-visible ([0-9]+).*/\1/p'); n=${n:-100}
  nginx_port=$(free_port); mkdir -p "$work/nginx" "$work/tree"; chmod 755 "$work"
  cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes $(nproc);
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  include /etc/nginx/mime.types;
  access_log off;
  open_file_cache max=10000 inactive=60s;
  open_file_cache_valid 1s;
  server {
    listen 127.0.0.1:$nginx_port ssl;
    ssl_certificate $work/tls/server.crt;
    ssl_certificate_key $work/tls/server.key;
    keepalive_requests 100000000;
    root $work/tree;
    index index.html;
    location ~ "/_trust/tuf/([0-9]+\.|.*\.[0-9a-f]{64}\.json\$)" {
      add_header Cache-Control "public, max-age=31536000, immutable";
      try_files \$uri @notary;
    }
    location /v2/ {
      add_header Cache-Control "public, max-age=10";
      try_files \$uri \$uri/index.html @notary;
    }
    location @notary { proxy_pass https://127.0.0.1:$rs_port; proxy_temp_path $work/nginx/tmp; }
  }
}
NGINX
  nginx -c "$work/nginx/nginx.conf" -g "user root;"
  peak "https://127.0.0.1:$rs_port" >/dev/null; sleep 1  # seeds the repositories; the tree follows
  echo "## GET timestamp.json: notary-rs vs nginx $(nginx -v 2>&1 | sed 's|.*/||') serving the published tree over TLS, 16 connections"
  against_nginx "nginx, published tree" 16
  echo "## Publish to visible in the tree (publish.interval_ms 100), $n publishes by the Go notary CLI"
  python3 - "$work" "$rs_port" "$n" <<'PY'
import hashlib, os, ssl, subprocess, sys, time, urllib.request
work, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
gun = "bench.example.com/visible"
env = dict(os.environ, **{f"NOTARY_{r}_PASSPHRASE": "bench-pass" for r in ("ROOT", "TARGETS", "SNAPSHOT")})
cli = ["notary", "-s", f"https://127.0.0.1:{port}", "--tlscacert", f"{work}/tls/ca.crt", "-d", f"{work}/cli"]
ctx = ssl.create_default_context(cafile=f"{work}/tls/ca.crt")
run = lambda *a: subprocess.run(cli + list(a), env=env, check=True, capture_output=True)
open(f"{work}/t.txt", "w").write("visible\n")
run("init", gun); run("publish", gun)
tree = f"{work}/tree/v2/{gun}/_trust/tuf/timestamp.json"
delays = []
for i in range(n):
    run("add", gun, f"t{i}", f"{work}/t.txt"); run("publish", gun)
    t0 = time.monotonic()
    want = urllib.request.urlopen(f"https://127.0.0.1:{port}/v2/{gun}/_trust/tuf/timestamp.json", context=ctx).read()
    while True:
        try:
            if open(tree, "rb").read() == want:
                break
        except FileNotFoundError:
            pass
        time.sleep(0.001)
    delays.append((time.monotonic() - t0) * 1000)
delays.sort()
q = lambda p: delays[min(len(delays) - 1, int(p * len(delays)))]
print(f"publish returned -> tree holds it: p50 {q(0.5):.0f} ms, p99 {q(0.99):.0f} ms, max {delays[-1]:.0f} ms over {n} publishes")
PY
  kill "$(cat "$work/nginx/nginx.pid")"; rm -f "$work/nginx/nginx.pid"
  exit 0 ;;
esac
# Stall mode (docs/performance.md, issue 32 item 4): small reads alone and beside large work.
case " $* " in *" --stalls "*)
  t=$(echo " $* " | sed -nE 's/.* --targets ([0-9]+).*/\1/p'); t=${t:-20000}
  ./target/release/notary-bench --url "https://127.0.0.1:$rs_port" --ca "$work/tls/ca.crt" --server-pid "${pids[0]}" \
    --stalls 10 --targets "$t" --concurrency 16 --rate 1000 | grep -vE "^(seeded|$)"
  exit 0 ;;
esac
# KMS mode (docs/key-storage.md, issue 31 item 5): two more of our servers, each signing
# through its own notary-signer (mutual TLS): one on the SQL store (Postgres, keys under a
# passphrase), one on the AWS KMS store with moto (PyPI) as KMS. The same publishes on each;
# then notary-bench-kms's cost per signature. moto answers from a Python process on this
# machine: its latency is not AWS's (tens of ms per call in a region).
case " $* " in *" --kms "*)
  python3 -c "import moto.server" 2>/dev/null || python3 -m pip install --quiet "moto[server]"
  n=$(echo " $* " | sed -nE 's/.* --publishes ([0-9]+).*/\1/p'); n=${n:-10}
  moto_port=$(free_port)
  python3 -m moto.server -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 & pids+=($!)
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 NOTARY_SIGNER_BENCH=bench-passphrase
  psql -c "CREATE DATABASE notary_keys" -c "CREATE DATABASE notary_rs_sql" -c "CREATE DATABASE notary_rs_kms"
  for _ in $(seq 100); do curl -s "http://127.0.0.1:$moto_port/" >/dev/null && break; sleep 0.1; done
  for store in sql kms; do
    signer_port=$(free_port); port=$(free_port)
    if [ $store = sql ]; then storage='{"backend":"postgres","db_url":"'"$PG_URL"'/notary_keys","default_alias":"bench"}'
    else storage='{"backend":"awskms","region":"us-east-1","endpoint":"http://127.0.0.1:'"$moto_port"'"}'; fi
    cat > "$work/signer-$store.json" <<JSON
{"server":{"grpc_addr":"127.0.0.1:$signer_port","tls_cert_file":"$work/tls/server.crt","tls_key_file":"$work/tls/server.key","client_ca_file":"$work/tls/ca.crt"},
 "storage":$storage,"logging":{"level":"warn"}}
JSON
    cat > "$work/rs-$store.json" <<JSON
{"server":{"http_addr":"127.0.0.1:$port","tls_cert_file":"$work/tls/server.crt","tls_key_file":"$work/tls/server.key","key_creations_per_minute":0},
 "trust_service":{"type":"remote","hostname":"127.0.0.1","port":"$signer_port","key_algorithm":"ecdsa",
   "tls_ca_file":"$work/tls/ca.crt","tls_client_cert":"$work/tls/server.crt","tls_client_key":"$work/tls/server.key"},
 "storage":{"backend":"postgres","db_url":"$PG_URL/notary_rs_$store"},"logging":{"level":"warn"}}
JSON
    ./target/release/notary-signer --config "$work/signer-$store.json" >"$work/signer-$store.log" 2>&1 & pids+=($!)
    ./target/release/notary-server --config "$work/rs-$store.json" >"$work/rs-$store.log" 2>&1 & pids+=($!)
    for _ in $(seq 100); do curl -sf --cacert "$work/tls/ca.crt" "https://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
    echo "## publish targets (the server signs snapshot and timestamp: 2 signatures each), signer on the ${store^^} store, 16 repositories x $n publishes, 8 connections"
    ./target/release/notary-bench --url "https://127.0.0.1:$port" --ca "$work/tls/ca.crt" --guns 16 --publishes "$n" \
      --concurrency 8 --half-peak-secs 0 --only "publish targets" | grep -E '^(operation|publish targets)'
  done
  echo "## cost per signature, AWS KMS store against moto"
  ./target/release/notary-bench-kms --endpoint "http://127.0.0.1:$moto_port"
  exit 0 ;;
esac
# Key-binding mode (docs/performance.md, issue 28 item 6): N copies of one repository seeded in
# SQL, the bindings and their marks removed (a Go database's state), our server restarted.
case " $* " in *" --key-binding "*)
  n=$(echo " $* " | sed -nE 's/.* --key-binding ([0-9]+).*/\1/p'); n=${n:-1000000}
  ./target/release/notary-bench --url "https://127.0.0.1:$rs_port" --ca "$work/tls/ca.crt" --server-pid "${pids[0]}" \
    --guns 1 --targets 10 --only none --half-peak-secs 0 >/dev/null
  t0=$(date +%s)
  psql -d notary_rs -v ON_ERROR_STOP=1 -c "SET synchronous_commit = off" -c "
    INSERT INTO tuf_files (created_at, updated_at, gun, role, version, data, sha256)
    SELECT now(), now(), 'scale.example.com/repo' || i, t.role, t.version, t.data, t.sha256
    FROM generate_series(0, $n - 1) i,
         (SELECT DISTINCT ON (role) role, version, data, sha256 FROM tuf_files ORDER BY role, version DESC) t" -c "
    INSERT INTO changefeed (created_at, gun, version, sha256, category)
    SELECT now(), 'scale.example.com/repo' || i, 1, repeat('0', 64), 'update' FROM generate_series(0, $n - 1) i"
  psql -d notary_rs -c "VACUUM ANALYZE tuf_files" -c "VACUUM ANALYZE changefeed" -c "CHECKPOINT"
  echo "seeded $n repositories in $(( $(date +%s) - t0 )) s ($(psql -d notary_rs -tAc "SELECT count(*) FROM tuf_files WHERE role = 'root'") roots)"
  kill "${pids[0]}"; while kill -0 "${pids[0]}" 2>/dev/null; do sleep 0.05; done
  psql -d notary_rs -c "DELETE FROM notary_rs_server_keys" -c "DELETE FROM notary_rs_migrations WHERE set_name LIKE 'server-keys-backfill%'"
  t0=$(date +%s.%N)
  NOTARY_SERVER_KEY_PASSPHRASE=bench ./target/release/notary-server --config "$work/rs.json" >>"$work/rs.log" 2>&1 &
  echo $! > "$work/rs.pid"
  until curl -sf --cacert "$work/tls/ca.crt" "https://127.0.0.1:$rs_port/_notary_server/health" >/dev/null; do sleep 0.02; done
  healthy=$(python3 -c "import time; print(f'{time.time() - $t0:.2f}')")
  until [ -n "$(psql -d notary_rs -tAc "SELECT 1 FROM notary_rs_migrations WHERE set_name = 'server-keys-backfill'")" ]; do sleep 0.1; done
  bound=$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')")
  echo "first start with $n repositories whose keys were never bound: healthy after $healthy s; every root read and its keys bound after $bound s, in the background ($(psql -d notary_rs -tAc "SELECT count(*) FROM notary_rs_server_keys") distinct keys)"
  exit 0 ;;
esac
# Curves mode (docs/performance.md): three series of points, each measured on both servers in
# this run unless said otherwise; rows go to docs/performance/<curve>.csv, plots (every CSV
# there) to docs/performance/<curve>.svg. `--curves targets,history` runs some of them.
case " $* " in *" --curves "*)
  which=$(echo " $* " | sed -nE 's/.* --curves ([a-z,]+).*/\1/p'); which=${which:-targets,history,repos}
  max_repos=$(echo " $* " | sed -nE 's/.* --max-repos ([0-9]+).*/\1/p'); max_repos=${max_repos:-1000000}
  max_versions=$(echo " $* " | sed -nE 's/.* --max-versions ([0-9]+).*/\1/p'); max_versions=${max_versions:-10000}
  out=$(echo " $* " | sed -nE 's/.* --curves-out ([^ ]+).*/\1/p'); out=${out:-docs/performance}; mkdir -p "$out"
  repo_points=$(echo " $* " | sed -nE 's/.* --repo-points ([0-9,]+).*/\1/p'); repo_points=${repo_points:-1000,10000,100000,1000000}
  echo "${pids[0]}" > "$work/rs.pid"
  bench() { ./target/release/notary-bench --url "https://127.0.0.1:$rs_port" --ca "$work/tls/ca.crt" --server-pid-file "$work/rs.pid" "$@"; }
  against=(--against "https://127.0.0.1:$go_port" --against-pid "${pids[1]}")
  # Our server restarted (a new instance: cold cache, start-up timed); its pid in $work/rs.pid.
  cat > "$work/restart-rs.sh" <<RESTART
kill \$(cat "$work/rs.pid"); while kill -0 \$(cat "$work/rs.pid") 2>/dev/null; do sleep 0.05; done
t0=\$(date +%s.%N)
NOTARY_SERVER_KEY_PASSPHRASE=bench ./target/release/notary-server --config "$work/rs.json" >>"$work/rs.log" 2>&1 &
echo \$! > "$work/rs.pid"
until curl -sf --cacert "$work/tls/ca.crt" "https://127.0.0.1:$rs_port/_notary_server/health" >/dev/null; do sleep 0.02; done
python3 -c "import time; print(f'{time.time() - \$t0:.2f}')"
RESTART
  PSQL="$PG_BIN/psql -q -h 127.0.0.1 -p $PG_PORT -U postgres"
  echo "## Curves, $(date -u +%F), $(nproc) cores; Go notary-server $(dpkg-query -W -f '${Version}' notary)"

  # 1. Cost vs targets per repository: GET targets.json (gzip accepted, as Go clients ask) and
  #    publishing the whole list with one target changed.
  case ",$which," in *,targets,*)
    : > "$out/targets.csv"
    for t in 10 1000 5000 20000; do
      echo "### $t targets per repository"
      bench "${against[@]}" --guns 2 --targets "$t" --publishes 5 --seconds 3 --half-peak-secs 0 \
        --only "GET targets.json,publish" --csv "$out/targets.csv" --label "targets=$t" | sed -n '/^operation  *req\/s/,$p'
    done ;;
  esac

  # 2. Cost vs history, ours only: one repository published to each point, the changefeed grown
  #    to 1 000 rows per version (10 000 versions: 10 000 000 rows) with other repositories'
  #    changes, written directly (as history, not live traffic: our server is then restarted, so
  #    that it starts at the end of the feed with its read lease, and Postgres checkpointed).
  #    Before curve 3, so that its first point is a new database.
  case ",$which," in *,history,*)
    : > "$out/history.csv"
    points=$(python3 -c "print(','.join(str(p) for p in (1, 100, 1000, 10000, 100000) if p <= $max_versions))")
    bench --history-points "$points" --publishes 200 --seconds 3 --concurrency 16 --csv "$out/history.csv" --at-each-point "
      have=\$($PSQL -d notary_rs -tAc 'SELECT count(*) FROM changefeed')
      want=\$(( VERSIONS * 1000 ))
      if [ \$want -gt \$have ]; then
        $PSQL -d notary_rs -c 'SET synchronous_commit = off' -c \"INSERT INTO changefeed (created_at, gun, version, sha256, category)
          SELECT now(), 'filler.example.com/repo' || (i % 100000), 1, repeat('0', 64), 'update' FROM generate_series(\$have, \$want - 1) i\"
        $PSQL -d notary_rs -c 'VACUUM ANALYZE changefeed' -c 'CHECKPOINT'
        bash $work/restart-rs.sh >/dev/null
      fi
      echo \"changefeed: \$($PSQL -d notary_rs -tAc 'SELECT count(*) FROM changefeed') rows\"" | { grep -vE "^(seeded|$)" || true; }
    ;;
  esac

  # 3. Cost vs number of repositories, seeded directly in both databases (copies of one seeded
  #    repository's current files under new names, with their changefeed rows); reads spread
  #    uniformly. Our server is restarted at each size: start-up time, and a cold cache.
  case ",$which," in *,repos,*)
    : > "$out/repos.csv"; : > "$out/startup.csv"
    # The template: one small repository on each server.
    bench "${against[@]}" --guns 1 --targets 10 --only none --half-peak-secs 0 >/dev/null
    seeded=0
    for n in ${repo_points//,/ }; do
      [ "$n" -le "$max_repos" ] || continue
      t0=$(date +%s)
      for side in rs go; do
        psql -d notary_$side -v ON_ERROR_STOP=1 -c "SET synchronous_commit = off" -c "
          INSERT INTO tuf_files (created_at, updated_at, gun, role, version, data, sha256)
          SELECT now(), now(), 'scale.example.com/repo' || i, t.role, t.version, t.data, t.sha256
          FROM generate_series($seeded, $n - 1) i,
               (SELECT DISTINCT ON (role) role, version, data, sha256 FROM tuf_files
                WHERE gun = (SELECT gun FROM tuf_files WHERE role = 'timestamp' AND gun LIKE 'bench.%' ORDER BY id DESC LIMIT 1)
                ORDER BY role, version DESC) t" -c "
          INSERT INTO changefeed (created_at, gun, version, sha256, category)
          SELECT now(), 'scale.example.com/repo' || i, 1, repeat('0', 64), 'update' FROM generate_series($seeded, $n - 1) i"
        psql -d notary_$side -c "VACUUM ANALYZE tuf_files" -c "VACUUM ANALYZE changefeed" -c "CHECKPOINT"
      done
      seeded=$n
      echo "### $n repositories (seeded in $(( $(date +%s) - t0 )) s; database $(psql -d notary_rs -tAc "SELECT pg_size_pretty(pg_database_size('notary_rs'))"))"
      startup=$(bash "$work/restart-rs.sh")
      echo "notary-rs start-up with $n repositories: $startup s"
      echo "repos=$n,notary-rs,start-up,1,0,$startup,$startup,$startup,0" >> "$out/startup.csv"
      # The first start on a database whose server keys were never bound (a Go database): healthy
      # at once; every stored root is read in the background (issue 28, item 6).
      psql -d notary_rs -q -c "DELETE FROM notary_rs_server_keys" -c "DELETE FROM notary_rs_migrations WHERE set_name LIKE 'server-keys-backfill%'"
      first=$(bash "$work/restart-rs.sh")
      b0=$(date +%s.%N)
      until [ -n "$(psql -d notary_rs -tAc "SELECT 1 FROM notary_rs_migrations WHERE set_name = 'server-keys-backfill'")" ]; do sleep 0.1; done
      bound=$(python3 -c "import time; print(f'{time.time() - $b0 + $first:.1f}')")
      echo "notary-rs first start with $n repositories whose keys are not bound: healthy after $first s; every root read and its keys bound after $bound s, in the background"
      echo "repos=$n,notary-rs,key-binding,1,0,$bound,$bound,$bound,0" >> "$out/startup.csv"
      bench "${against[@]}" --uniform "$n" --seconds 5 --csv "$out/repos.csv" --label "repos=$n" | { grep -vE "^(seeded|$)" || true; }
    done ;;
  esac

  # The plans the constant costs rest on, on the largest database (docs/performance.md).
  gun=$(psql -d notary_rs -tAc "SELECT gun FROM tuf_files WHERE gun LIKE 'history.%' ORDER BY id DESC LIMIT 1")
  if [ -n "$gun" ]; then
    newest=$(psql -d notary_rs -tAc "SELECT max(version) FROM tuf_files WHERE gun = '$gun' AND role = 'targets'")
    last=$(psql -d notary_rs -tAc "SELECT max(id) FROM changefeed")
    late=$(psql -d notary_rs -tAc "SELECT gun FROM tuf_files WHERE role = 'targets' ORDER BY id DESC LIMIT 1")
    late_sha=$(psql -d notary_rs -tAc "SELECT sha256 FROM tuf_files WHERE role = 'targets' ORDER BY id DESC LIMIT 1")
    echo "### Query plans ($(psql -d notary_rs -tAc "SELECT count(*) FROM changefeed") changefeed rows, $(psql -d notary_rs -tAc "SELECT count(*) FROM tuf_files") tuf_files rows)"
    while IFS='|' read -r what sql; do
      echo "-- $what"
      psql -d notary_rs -tA -c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) $sql" | sed 's/^/    /'
    done <<SQL
current targets.json|SELECT data, updated_at FROM tuf_files WHERE gun = '$gun' AND role = 'targets' AND deleted_at IS NULL ORDER BY version DESC LIMIT 1
targets.json by version (the repository stored last)|SELECT data, created_at FROM tuf_files WHERE gun = '$late' AND role = 'targets' AND version = 1 AND deleted_at IS NULL LIMIT 1
targets.json by checksum (the repository stored last)|SELECT data, created_at FROM tuf_files WHERE gun = '$late' AND role = 'targets' AND sha256 = '$late_sha' AND deleted_at IS NULL LIMIT 1
publish: is a version as new stored?|SELECT 1 FROM tuf_files WHERE gun = '$gun' AND role = 'targets' AND version >= $newest
changefeed position|SELECT MAX(id) FROM changefeed
changefeed, forward from near the end|SELECT id, created_at, gun, version, sha256, category FROM changefeed WHERE 1 = 1 AND id > $((last - 100)) ORDER BY id ASC LIMIT 100
changefeed, newest first|SELECT id, created_at, gun, version, sha256, category FROM changefeed WHERE 1 = 1 ORDER BY id DESC LIMIT 100
one repository's changefeed, newest first|SELECT id, created_at, gun, version, sha256, category FROM changefeed WHERE 1 = 1 AND gun = '$gun' ORDER BY id DESC LIMIT 100
SQL
  fi
  pids[0]=$(cat "$work/rs.pid")
  ./target/release/notary-plot "$out" "$out"/{targets,history,repos}.csv
  exit 0 ;;
esac
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

# The machine's limit: nginx serving the same bytes from disk over TLS (same certificate, same
# load generator, same connections), against our current reads, back to back, twice each.
# nginx fetches each file once from our server and stores it under its root (`proxy_store`);
# every measured request is then a static file read by nginx, no proxying. The open-loop row
# repeats ours' at the same rate (a reference for the latency the machine itself adds).
rate=$(awk '/^GET timestamp.json @/ { n = 0; for (i = 3; i <= NF; i++) if ($i ~ /^[0-9.]+$/ && ++n == 2) { print $i; exit } }' "$work/bench.out")
conc=$(awk '/concurrency [0-9]+$/ {print $NF; exit}' "$work/bench.out")
if [ -n "$rate" ] && [ -z "${NO_NGINX:-}" ]; then
  nginx_port=$(free_port)
  mkdir -p "$work/nginx/root"
  chmod 711 "$work"  # nginx's workers (user nobody) reach their folder; nothing else is listable
  cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes $(nproc);
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  default_type application/json;
  open_file_cache max=10000 inactive=60s;  # nginx at its best: no open() per request
  open_file_cache_valid 60s;
  upstream notary { server 127.0.0.1:$rs_port; keepalive 32; }
  server {
    listen 127.0.0.1:$nginx_port ssl;
    ssl_certificate $work/tls/server.crt;
    ssl_certificate_key $work/tls/server.key;
    keepalive_requests 100000000;
    root $work/nginx/root;
    proxy_temp_path $work/nginx/tmp;
    location ~ /_trust/tuf/timestamp\.json\$ { try_files \$uri @store; }
    location @store {
      proxy_pass https://notary;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_store on;
      proxy_store_access user:rw group:r all:r;
    }
    location / {
      proxy_pass https://notary;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGINX
  chown -R nobody "$work/nginx/root" 2>/dev/null || true
  nginx -c "$work/nginx/nginx.conf"
  echo
  echo "## The machine's limit: GET timestamp.json from nginx $(nginx -v 2>&1 | sed 's|.*/||') serving the same bytes from disk over TLS, $conc connections"
  against_nginx "nginx from disk" "${conc:-16}"
  echo "## The same open-loop load as ours above against nginx serving it from disk"
  ./target/release/notary-bench --url "https://127.0.0.1:$nginx_port" --ca "$work/tls/ca.crt" --concurrency "${conc:-16}" \
    --seconds 1 --half-peak-secs 5 --rate "$rate" --publishes 0 --only timestamp.json | grep -E '^(operation|GET timestamp.json @)'
  kill "$(cat "$work/nginx/nginx.pid")"; rm -f "$work/nginx/nginx.pid"
fi
# With --only, only what was asked for: not the wrk and hostile-input sections below.
case " $* " in *" --only "*) exit 0 ;; esac

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
