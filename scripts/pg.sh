# Sourced by the test and bench scripts: a private, throwaway Postgres cluster on a free loopback
# port (installed from Debian if missing). `start_pg` exports PG_URL; `stop_pg` removes it all.
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

start_pg() {
  PG_BIN=$(pg_bin)
  PG_DIR=$(mktemp -d /tmp/notary-rs-pg.XXXXXX)
  chown postgres "$PG_DIR"
  PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres >/dev/null
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 ${PG_EXTRA_OPTS:-} -c max_connections=400" start >/dev/null
  PG_URL="postgres://postgres@127.0.0.1:$PG_PORT"
  export PG_URL
  echo "==> Postgres $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT"
}

stop_pg() {
  [ -n "${PG_DIR:-}" ] || return 0
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
}

# A second throwaway cluster that requires TLS, with certificates from a private CA made here:
# `hostssl` only; user `certuser` must present a client certificate (CN=certuser) from that CA.
# Exports NOTARY_TEST_PG_TLS_URL (no TLS parameters), NOTARY_TEST_PG_TLS_DIR (ca.crt,
# client.crt, client.key, other-ca.crt). `stop_pg_tls` removes it.
start_pg_tls() {
  PG_BIN=$(pg_bin)
  PG_TLS_DIR=$(mktemp -d /tmp/notary-rs-pgtls.XXXXXX)
  chown postgres "$PG_TLS_DIR"
  local d=$PG_TLS_DIR c=$PG_TLS_DIR/certs
  mkdir -p "$c"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=notary-rs test PG CA" \
    -keyout "$c/ca.key" -out "$c/ca.crt" 2>/dev/null
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=another CA" \
    -keyout "$c/other-ca.key" -out "$c/other-ca.crt" 2>/dev/null
  for who in server client; do
    local cn=localhost; [ $who = client ] && cn=certuser
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn" -keyout "$c/$who.key" -out "$c/$who.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$c/$who.ext"
    openssl x509 -req -in "$c/$who.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" -CAcreateserial -days 2 -extfile "$c/$who.ext" \
      -out "$c/$who.crt" 2>/dev/null
  done
  chmod 600 "$c"/*.key; chmod 755 "$c"; chmod 644 "$c"/*.crt
  PG_TLS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  runuser -u postgres -- "$PG_BIN/initdb" -D "$d/data" -A trust -U postgres >/dev/null
  cp "$c/server.crt" "$c/server.key" "$c/ca.crt" "$d/data/"; chown postgres "$d/data/server.key" "$d/data/server.crt" "$d/data/ca.crt"
  printf 'hostssl all certuser 127.0.0.1/32 cert\nhostssl all all 127.0.0.1/32 trust\nlocal all all trust\n' > "$d/data/pg_hba.conf"
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$d/data" -l "$d/log" -w \
    -o "-p $PG_TLS_PORT -k $d -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key -c ssl_ca_file=ca.crt" \
    start >/dev/null
  runuser -u postgres -- "$PG_BIN/psql" -q -h "$d" -p "$PG_TLS_PORT" -U postgres -c "CREATE ROLE certuser LOGIN SUPERUSER" >/dev/null
  export NOTARY_TEST_PG_TLS_URL="postgres://postgres@127.0.0.1:$PG_TLS_PORT/postgres" NOTARY_TEST_PG_TLS_DIR="$c"
  echo "==> Postgres with TLS required on 127.0.0.1:$PG_TLS_PORT"
}

stop_pg_tls() {
  [ -n "${PG_TLS_DIR:-}" ] || return 0
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_TLS_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_TLS_DIR"
}
