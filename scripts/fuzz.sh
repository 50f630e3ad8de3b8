#!/usr/bin/env bash
# Fuzz the code that reads untrusted input (cargo-fuzz / libFuzzer, AddressSanitizer) for a
# bounded time per target; fails on any crash (its input is left in fuzz/artifacts/<target>/ —
# turn it into a regression test). Seeds: fuzz/seeds/<target> (Go-made metadata).
# Usage: bash scripts/fuzz.sh [seconds per target, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
command -v cargo-fuzz >/dev/null 2>&1 || { echo "==> installing cargo-fuzz 0.13.2 (once)"; cargo install cargo-fuzz --locked --version 0.13.2 --quiet; }
cd fuzz
# cargo-fuzz passes nightly-only flags (-Zsanitizer); RUSTC_BOOTSTRAP lets the stable toolchain take them.
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O 2>&1 | tail -n 1
for t in canonical_json metadata_parse publish_validation; do
  mkdir -p "corpus/$t"
  out=$(cargo fuzz run -O "$t" "corpus/$t" "seeds/$t" -- -max_total_time="$secs" 2>&1) || { echo "$out" | tail -n 40; echo "fuzz target $t crashed"; exit 1; }
  echo "fuzz $t: $(echo "$out" | grep -E '^Done [0-9]+ runs' | tail -n 1), no crash"
done
