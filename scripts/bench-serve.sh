#!/usr/bin/env bash
# A bounded load run against `mxrt serve` on loopback (it stops by itself, ~2 minutes): minilm-sst2 at MXINT8
# weights + activations, 2,000 /classify requests of 1-8 SST-2 dev sentences from 16 concurrent clients, with
# dynamic batching and with --no-batching, plus single one-sentence requests one at a time. Writes the
# "## Server" section of BENCHMARKS.md (scripts/peers/bench_serve.py; Python's standard library only).
# Options are passed on: --requests N --clients C --single N.
set -euo pipefail
cd "$(dirname "$0")/.."
shared="$(cd .. && pwd)/shared"
cargo build -q --release --bin mxrt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target/release/mxrt convert "$shared/models/minilm-sst2" -o "$work/minilm-mxint8.mxrt" \
  --weights mxint8 --activations mxint8 --quiet
python3 scripts/peers/bench_serve.py --mxrt target/release/mxrt --model "$work/minilm-mxint8.mxrt" \
  --sentences "$shared/data/sst2/dev.tsv" --out BENCHMARKS.md "$@"
