#!/usr/bin/env bash
# Runs every test of the workspace. On a fresh Debian machine it first installs what the tests
# need (idempotently): the Go notary programs (Debian package `notary` 0.7.0) used as peers,
# openssl and curl. Everything the tests start (servers on loopback) they stop themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v notary >/dev/null 2>&1 || need_pkgs+=(notary)
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "==> installing ${need_pkgs[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
echo "==> Go notary CLI: $(command -v notary)"

echo "==> cargo test --workspace"
cargo test --workspace --locked 2>&1
