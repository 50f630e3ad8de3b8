#!/usr/bin/env bash
# Certificates for a local trial of docker-compose.yml: one local CA, and a certificate (server
# and client use) for the names notary-server, notary-signer, localhost, 127.0.0.1 — used for
# HTTPS to notary-server and for mutual TLS between server and signer. Not for production.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=docker/compose/certs
if [ -x target/release/notary-server ]; then bin=target/release/notary-server; else cargo build -q -p notary-tools; bin=target/debug/notary-server; fi
"$bin" --generate-tls "$dir"
chmod 644 "$dir"/*
echo "clients trust $dir/ca.crt, e.g. notary -s https://localhost:4443 --tlscacert $dir/ca.crt"
