#!/usr/bin/env bash
# Records what a build of mxrt computes, for a before/after comparison of a refactoring that must not change
# one bit (scripts/numerics-diff.sh runs it on two builds on the same machine and compares).
#
#   scripts/numerics-snapshot.sh MXRT_BINARY OUT_DIR
#
# Models (converted by the binary under test): minilm-sst2 as FP32, MXINT8 weights, and MXINT8 weights +
# activations (recipes/mxint8.toml); all-MiniLM-L6-v2 (sentence embeddings) as FP32 and MXINT8 w+a; every JSC
# MLP in ../shared/models as f32, MXINT8 w+a and fixed:8.5. Inputs: the 16 reference sentences of
# ../shared/reference (the first 16 of SST-2 dev) and each JSC model's 32 reference input rows. Every model
# runs on each CPU kernel tier the binary can be asked for on this machine (MXRT_CPU=<tier> where the binary
# knows it, plus the reference through MXRT_FORCE_REFERENCE=1 and the best table with and without
# MXRT_NO_AMX=1), on wgpu (any adapter; lavapipe here) and on CUDA when a device or the emulator loads.
# Each run writes OUT_DIR/<model>.<backend>.jsonl: `mxrt run --json` lines, whose floats print the f32
# results exactly, so equal text means equal bits. A backend that cannot run writes <...>.unavailable.
set -euo pipefail
cd "$(dirname "$0")/.."
mxrt=$(realpath "$1")
out=$(mkdir -p "$2" && realpath "$2")
shared=../shared
work="$out/.work"
mkdir -p "$work"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

# The inputs, from the reference files (read without numpy).
python3 - "$shared" "$work" <<'PY'
import csv, json, struct, sys, pathlib
shared, work = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
sentences = json.loads((shared / "reference/minilm-sst2-dev16.json").read_text())["sentences"]
with open(work / "sentences.tsv", "w", newline="") as f:
    w = csv.writer(f, delimiter="\t")
    w.writerow(["sentence"])
    for s in sentences:
        w.writerow([s])
for ref in sorted((shared / "reference").glob("jsc-*-32.safetensors")):
    data = ref.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    info = header["inputs"]
    rows, cols = info["shape"]
    start, end = info["data_offsets"]
    values = struct.unpack(f"<{rows * cols}f", data[8 + n + start:8 + n + end])
    model = ref.name[: -len("-32.safetensors")]
    with open(work / f"{model}.csv", "w") as f:
        for r in range(rows):
            # %.9g round-trips every f32 exactly.
            f.write(",".join("%.9g" % values[r * cols + c] for c in range(cols)) + "\n")
PY

convert() { # NAME SOURCE ARGS...
  local name=$1 source=$2
  shift 2
  [ -f "$work/$name.mxrt" ] || "$mxrt" convert "$source" -o "$work/$name.mxrt" --quiet "$@" >/dev/null
}
convert minilm-sst2.f32 "$shared/models/minilm-sst2" --weights f32
convert minilm-sst2.mxint8w "$shared/models/minilm-sst2" --weights mxint8
convert minilm-sst2.mxint8wa "$shared/models/minilm-sst2" --recipe recipes/mxint8.toml
convert minilm-embed.f32 target/models/all-MiniLM-L6-v2 --weights f32
convert minilm-embed.mxint8wa target/models/all-MiniLM-L6-v2 --recipe recipes/mxint8.toml
jsc_models=()
for dir in "$shared"/models/jsc-*; do
  m=$(basename "$dir")
  [ -f "$work/$m.csv" ] || continue
  jsc_models+=("$m")
  convert "$m.f32" "$dir" --weights f32
  convert "$m.mxint8wa" "$dir" --weights mxint8 --activations mxint8
  convert "$m.fixed" "$dir" --weights fixed:8.5 --activations fixed:8.5
done

# Backends: name, then the environment and the --backend value.
backends=("cpu-reference|MXRT_FORCE_REFERENCE=1|cpu" "cpu-best|MXRT_NO_SUCH=0|cpu" "cpu-no-amx|MXRT_NO_AMX=1|cpu")
for tier_isa in reference:reference avx2:avx2+fma avx2vnni:avx2+fma+avxvnni avx512:avx512vnni amx:avx512vnni+amx; do
  tier=${tier_isa%%:*} isa=${tier_isa#*:}
  # Only where the binary runs that table under MXRT_CPU (a build without MXRT_CPU, or a tier above this
  # machine's, runs another table: left out rather than recorded under the wrong name).
  used=$(MXRT_CPU=$tier "$mxrt" run "$work/${jsc_models[0]}.f32.mxrt" --input "$work/${jsc_models[0]}.csv" -v 2>&1 >/dev/null | head -1 || true)
  if [ "$used" = "backend: cpu ($isa)" ]; then
    backends+=("cpu-tier-$tier|MXRT_CPU=$tier|cpu")
  fi
done
backends+=("wgpu|MXRT_NO_SUCH=0|wgpu" "cuda|MXRT_NO_SUCH=0|cuda")

for model in "$work"/*.mxrt; do
  name=$(basename "$model" .mxrt)
  base=${name%%.*}
  if [ -f "$work/$base.csv" ]; then input="$work/$base.csv"; else input="$work/sentences.tsv"; fi
  for b in "${backends[@]}"; do
    IFS='|' read -r bname benv bflag <<<"$b"
    target="$out/$name.$bname"
    if env "$benv" "$mxrt" run "$model" --input "$input" --backend "$bflag" --json >"$target.jsonl" 2>"$target.err"; then
      rm -f "$target.err"
    else
      mv "$target.err" "$target.unavailable"
      rm -f "$target.jsonl"
    fi
  done
done
# What each CPU run actually used (a tier may fall back on a machine without it).
for b in "${backends[@]}"; do
  IFS='|' read -r bname benv bflag <<<"$b"
  env "$benv" "$mxrt" run "$work/${jsc_models[0]}.f32.mxrt" --input "$work/${jsc_models[0]}.csv" --backend "$bflag" -v 2>&1 >/dev/null |
    head -1 | sed "s/^/$bname: /" >>"$out/backends.txt" || true
done
echo "$(ls "$out"/*.jsonl | wc -l) runs recorded in $out ($(ls "$out"/*.unavailable 2>/dev/null | wc -l) unavailable)" >&2
