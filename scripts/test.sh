#!/usr/bin/env bash
# Runs every test of the workspace. On a fresh Debian machine it first installs what the tests
# need (idempotently): the Go notary programs (Debian package `notary` 0.7.0) used as peers,
# PostgreSQL, SoftHSM2 (PKCS#11 tests), HAProxy (load-balancer tests), PgBouncer, Patroni and
# etcd (fail-over tests), Prometheus (monitoring tests), nginx and PyPI's moto (static publication tests), PyPI's kubernetes-validate (manifest checks), the docker CLI, openssl and curl. Everything the tests start (servers on loopback) they stop themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/pg.sh

need_pkgs=()
command -v notary >/dev/null 2>&1 || need_pkgs+=(notary)
[ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/initdb" ] || need_pkgs+=(postgresql)
command -v runuser >/dev/null 2>&1 || need_pkgs+=(util-linux)
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
command -v docker-registry >/dev/null 2>&1 || need_pkgs+=(docker-registry)
[ -e /usr/lib/softhsm/libsofthsm2.so ] && command -v softhsm2-util >/dev/null 2>&1 || need_pkgs+=(softhsm2)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
command -v haproxy >/dev/null 2>&1 || need_pkgs+=(haproxy)
[ -x /usr/sbin/pgbouncer ] || need_pkgs+=(pgbouncer)
command -v docker >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v patroni >/dev/null 2>&1 || need_pkgs+=(patroni)
command -v etcd >/dev/null 2>&1 || need_pkgs+=(etcd-server)
command -v prometheus >/dev/null 2>&1 || need_pkgs+=(prometheus)
command -v nginx >/dev/null 2>&1 || need_pkgs+=(nginx-light)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "==> installing ${need_pkgs[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
command -v kubernetes-validate >/dev/null 2>&1 || { echo "==> installing kubernetes-validate (PyPI, once)"; python3 -m pip install --quiet kubernetes-validate; }
python3 -c "import moto.server, boto3" 2>/dev/null || { echo "==> installing moto[server] (PyPI, once: the S3 endpoint of the publication tests)"; python3 -m pip install --quiet "moto[server]"; }
echo "==> Go notary CLI: $(command -v notary)"

# A private Postgres cluster for the tests (fsync off: throwaway data), stopped on exit.
trap 'stop_pg; stop_pg_tls' EXIT
PG_EXTRA_OPTS="-c fsync=off" start_pg
start_pg_tls
export NOTARY_TEST_PG_URL="$PG_URL/postgres"

echo "==> cargo build --workspace --bins (the tests start notary-server and notary-signer)"
cargo build --workspace --bins --locked
echo "==> cargo fmt --check, and cargo clippy with warnings as errors"
cargo fmt --all --check
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
echo "==> cargo audit: the dependency tree against the RustSec snapshot in ../shared/advisory-db (offline; exceptions with reasons in .cargo/audit.toml)"
if [ -d ../shared/advisory-db/crates ]; then
  command -v cargo-audit >/dev/null 2>&1 || { echo "==> installing cargo-audit (once)"; cargo install cargo-audit --locked --quiet; }
  advisories=$(mktemp -d /tmp/notary-rs-advisories.XXXXXX)
  cp -r ../shared/advisory-db/. "$advisories"
  audit_ok=0; cargo audit --db "$advisories" --no-fetch --deny warnings || audit_ok=$?
  rm -rf "$advisories"
  [ "$audit_ok" -eq 0 ] || { echo "cargo audit found advisories (see above)"; exit 1; }
else
  echo "==> skipped cargo audit: no ../shared/advisory-db beside this checkout"
fi
echo "==> cargo test --workspace --features notary-tools/system-tests (every test, with what they need set up above)"
rm -f target/reliability-figures.txt
cargo test --workspace --features notary-tools/system-tests --locked 2>&1
echo "==> figures of the fault tests (docs/reliability.md)"
cat target/reliability-figures.txt 2>/dev/null || echo "(none recorded)"
echo "==> fuzzing: canonical JSON, metadata parsing, publish validation (20 s each)"
bash scripts/fuzz.sh 20
