#!/usr/bin/env bash
# Kernel benchmarks (`cargo bench -p mxrt-runtime --bench kernels`, divan) with each result set beside this
# machine's measured peaks: FP32 FMA ~180 GFLOP/s, int8 multiply-add ~345 GOP/s, DRAM ~17 GB/s (2 cores).
# Prints divan's table, then one markdown table (median throughput and fraction of peak); BENCHMARKS.md keeps it in
# its "Kernels" section (scripts/bench-peers.sh preserves that section when it rewrites the file).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(cargo bench -q -p mxrt-runtime --bench kernels -- "$@" 2>&1)
echo "$out"
python3 - "$out" <<'PY'
import re, sys
lines = sys.argv[1].splitlines()
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
        peak, label = 17e9, "DRAM ~17 GB/s"
        shown = f"{value/1e9:.1f} GB/s"
    elif "mxint8_activations" in name or "fixed8" in name:
        peak, label = 345e9, "int8 ~345 GOP/s"
        shown = f"{value/1e9:.1f} GOP/s"
    else:
        peak, label = 180e9, "FP32 ~180 GFLOP/s"
        shown = f"{value/1e9:.1f} GFLOP/s"
    print(f"| {name} | {median} | {shown} | {label} | {100*value/peak:.0f} % |")
PY
