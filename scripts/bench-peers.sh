#!/usr/bin/env bash
# mxrt against ONNX Runtime and PyTorch, side by side on this machine (see BENCHMARKS.md for what is measured).
#   scripts/bench-peers.sh [--quick] [--rounds N] [--threads 2,1] [--jsc-only]
# (--jsc-only: the JSC cases alone, printed, BENCHMARKS.md untouched: ~2 minutes.)
# Sets up the peers once in a cached virtual environment outside the repository (scripts/peers/venv.sh,
# ~3 GB from PyPI), exports and optimises the ONNX models once (target/peers), builds mxrt in release mode,
# converts the models, then runs scripts/peers/bench_peers.py, which writes BENCHMARKS.md and BENCHMARKS.json.
# Needs ../shared (the minilm-sst2 and jsc-3layer checkpoints, SST-2 dev). Takes ~25 minutes (--quick: ~5).
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${MXRT_SHARED:-../shared}
python=$(scripts/peers/venv.sh)
work=target/peers
export HF_HUB_OFFLINE=1
if [ ! -f "$work/prepared.json" ]; then
  echo "exporting and optimising the peer models ..." >&2
  "$python" scripts/peers/prepare.py "$shared/models/minilm-sst2" "$shared/models/jsc-3layer" "$work" >&2
fi
cargo build --release --quiet
mxrt=target/release/mxrt
$mxrt convert "$shared/models/minilm-sst2" -o "$work/minilm-fp32.mxrt" --weights f32 --quiet
$mxrt convert "$shared/models/minilm-sst2" -o "$work/minilm-mxint8.mxrt" --weights mxint8 --activations mxint8 --quiet
$mxrt convert "$shared/models/jsc-3layer" -o "$work/jsc-3layer-fp32.mxrt" --weights f32 --quiet
$mxrt convert "$shared/models/jsc-3layer" -o "$work/jsc-3layer-mxint8.mxrt" --weights mxint8 --quiet
# ONNX Runtime's C API from Rust (for JSC per-call latency timed the way mxrt is): the ort crate loading the
# libonnxruntime.so of the venv's onnxruntime wheel.
CARGO_TARGET_DIR=target/ort-jsc cargo build --release --quiet --manifest-path scripts/peers/ort-jsc/Cargo.toml
ort_lib=$("$python" -c 'import glob, os, onnxruntime; print(sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so*")))[0])')
exec "$python" scripts/peers/bench_peers.py --mxrt "$mxrt" --work "$work" --minilm "$shared/models/minilm-sst2" \
  --jsc "$shared/models/jsc-3layer" --sst2 "$shared/data/sst2/dev.tsv" --out BENCHMARKS.md \
  --ort-jsc target/ort-jsc/release/ort-jsc --ort-lib "$ort_lib" "$@"
