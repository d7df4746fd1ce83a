#!/usr/bin/env bash
# Fixed point, calibrated (`mxrt convert --calibrate`): held-out SST-2 accuracy of minilm-sst2 at 8-bit fixed
# weights and activations for each calibration method and the hand-set widths, the speed of the calibrated
# model against MXINT8 on every kernel tier this CPU runs, and all-MiniLM-L6-v2's embedding cosine (when
# ./scripts/fetch-models.sh has run). Writes the "## Fixed point, calibrated" section of BENCHMARKS.md
# (~20 minutes). Options are passed on: --rounds N.
set -euo pipefail
cd "$(dirname "$0")/.."
shared="$(cd .. && pwd)/shared"
cargo build -q --release --bin mxrt
python3 scripts/peers/bench_calibration.py --mxrt target/release/mxrt --shared "$shared" --out BENCHMARKS.md "$@"
