#!/usr/bin/env bash
# Kernel benchmarks (`cargo bench -p mxrt-runtime --bench kernels`, divan) with each result set beside this
# machine's peaks, measured in the same run by `mxrt bench --kernels` (FP32 FMA and int8 multiply-add loops of
# the best kernel tier on every thread; MXRT_CPU picks a lower tier). DRAM bandwidth is not measured: GEMV
# rows compare against an assumed 17 GB/s (the 2-core lab VMs). Prints divan's table, then one markdown table
# (median throughput and fraction of peak); BENCHMARKS.md keeps it in its "Kernels" section
# (scripts/bench-peers.sh preserves that section when it rewrites the file).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --bin mxrt
peaks=$(target/debug/mxrt bench --kernels --json --iterations 1 --warmup 0)
out=$(cargo bench -q -p mxrt-runtime --bench kernels -- "$@" 2>&1)
echo "$out"
python3 - "$out" "$peaks" <<'PY'
import json, re, sys
lines = sys.argv[1].splitlines()
measured = json.loads(sys.argv[2])["peaks"]
f32_peak, int8_peak = measured["f32_gflops"] * 1e9, measured["int8_gops"] * 1e9
unit = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
peaks = {"item": None, "B": 17e9}
print("\n| kernel | median | median throughput | peak | fraction of peak |\n|---|---:|---:|---:|---:|")
for i, line in enumerate(lines):
    m = re.match(r"^[│├╰─ ]*([a-z0-9_]+)\s+\S+ \S+\s+│\s+\S+ \S+\s+│\s+(\S+ \S+)", line)
    if not m or i + 1 >= len(lines):
        continue
    name, median = m.group(1), m.group(2)
    # The throughput line under a benchmark: fastest │ slowest │ median │ mean (after the tree drawing).
    cols = [c.strip() for c in lines[i + 1].strip().lstrip("│").split("│")]
    t = re.match(r"([\d.]+) ([KMGT]?)(item|B)/s", cols[2] if len(cols) > 2 else "")
    if not t:
        continue
    value = float(t.group(1)) * unit[t.group(2)]
    if t.group(3) == "B":
        peak, label = 17e9, "DRAM ~17 GB/s (assumed)"
        shown = f"{value/1e9:.1f} GB/s"
    elif "mxint8_activations" in name or "fixed8" in name:
        peak, label = int8_peak, f"int8 {int8_peak/1e9:.0f} GOP/s (measured)"
        shown = f"{value/1e9:.1f} GOP/s"
    else:
        peak, label = f32_peak, f"FP32 {f32_peak/1e9:.0f} GFLOP/s (measured)"
        shown = f"{value/1e9:.1f} GFLOP/s"
    print(f"| {name} | {median} | {shown} | {label} | {100*value/peak:.0f} % |")
PY
