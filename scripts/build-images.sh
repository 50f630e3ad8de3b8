#!/usr/bin/env bash
# Build the notary-server and notary-signer images from this workspace, without pulling
# anything: release binaries (or --debug ones) + their shared libraries on `FROM scratch`.
# Usage: bash scripts/build-images.sh [--debug] [--tag TAG]     (default tag: latest)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release; tag=latest
while [ $# -gt 0 ]; do
  case $1 in
    --debug) profile=debug ;;
    --tag) tag=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$profile" = release ]; then cargo build --release --locked -p notary-tools -p notary-signer; else cargo build --locked -p notary-tools -p notary-signer; fi
ctx=target/images; mkdir -p "$ctx"
for b in notary-server notary-signer; do
  bash docker/rootfs.sh "target/$profile/$b" "$ctx/$b.rootfs.tar"
  cp "docker/$b.Dockerfile" "$ctx/$b.Dockerfile"
  docker build -q -t "notary-rs/$b:$tag" -f "$ctx/$b.Dockerfile" "$ctx" >/dev/null
  echo "built notary-rs/$b:$tag"
done
