#!/usr/bin/env bash
# Converts a checkpoint under the four reference recipes (all f32; MXINT8 weights + activations; fixed:8.4;
# MXINT8 + 50 % global l1) and prints one markdown table: file size against the FP32 size and the checkpoint's
# safetensors, conversion wall time (whole process, median of 3), and the worst-SQNR tensor.
# Usage: scripts/recipe-table.sh CHECKPOINT_DIR...   (needs a release build: cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - "$@" <<'PY'
import json, os, statistics, subprocess, sys, tempfile, time
mxrt = "target/release/mxrt"
recipes = [
    ("all f32", ["--weights", "f32"]),
    ("MXINT8 weights + activations", ["--weights", "mxint8", "--activations", "mxint8"]),
    ("fixed:8.4 weights + activations", ["--weights", "fixed:8.4", "--activations", "fixed:8.4"]),
    ("MXINT8 + 50 % global l1", ["--weights", "mxint8", "--activations", "mxint8", "--prune", "l1", "--sparsity", "0.5", "--scope", "global"]),
]
print("| model | recipe | file bytes | vs FP32 tensors | vs checkpoint safetensors | convert ms | worst SQNR (tensor) |")
print("|---|---|---:|---:|---:|---:|---|")
with tempfile.TemporaryDirectory() as tmp:
    for ckpt in sys.argv[1:]:
        name = os.path.basename(os.path.normpath(ckpt))
        for label, args in recipes:
            out = os.path.join(tmp, "m.mxrt")
            times = []
            for _ in range(3):
                t = time.perf_counter()
                r = subprocess.run([mxrt, "convert", ckpt, "-o", out, "--json", *args], capture_output=True, text=True, check=True)
                times.append(time.perf_counter() - t)
            rep = json.loads(r.stdout)["totals"]
            fp32 = rep["fp32_bytes"]
            worst = rep["worst_sqnr"]
            worst = "exact" if worst is None else f"{worst[1]:.1f} dB ({worst[0]})"
            print(f"| {name} | {label} | {rep['file_bytes']:,} | {100*rep['file_bytes']/fp32:.1f} % of {fp32:,} | "
                  f"{100*rep['file_bytes']/rep['source_bytes']:.1f} % of {rep['source_bytes']:,} | {1000*statistics.median(times):.0f} | {worst} |")
PY
