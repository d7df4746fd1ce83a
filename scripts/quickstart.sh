#!/usr/bin/env bash
# The main job, on a fresh machine with Rust: build, generate a checkpoint, pack it as MXINT8, inspect it,
# verify it, and unpack it again. Output goes to target/quickstart/ (or the folder given as $1).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/quickstart}"
mkdir -p "$out"
cargo build --release --bin mxrt --example make_tensors
mxrt=target/release/mxrt
target/release/examples/make_tensors "$out/synthetic.safetensors"
"$mxrt" convert "$out/synthetic.safetensors" -o "$out/synthetic.mxrt" --weights mxint8
echo
"$mxrt" inspect "$out/synthetic.mxrt"
echo
"$mxrt" verify "$out/synthetic.mxrt"
"$mxrt" dequantize "$out/synthetic.mxrt" -o "$out/synthetic.dequantized.safetensors"
