#!/usr/bin/env bash
# File sizes of every shared model at f32, MXINT8 and fixed:8.4, converted by two mxrt binaries side by side
# (e.g. a format 1.0 build and the current one), as a Markdown table with the relative change.
#
#   scripts/format-sizes.sh OLD_MXRT NEW_MXRT       e.g. scripts/format-sizes.sh /tmp/mxrt-a3888ff target/debug/mxrt
set -euo pipefail
old=$(realpath "${1:?usage: scripts/format-sizes.sh OLD_MXRT NEW_MXRT}")
new=$(realpath "${2:?usage: scripts/format-sizes.sh OLD_MXRT NEW_MXRT}")
models="$(cd "$(dirname "$0")/.." && pwd)/../shared/models"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "| model | safetensors | f32 old | f32 new | MXINT8 old | MXINT8 new | fixed:8.4 old | fixed:8.4 new |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for m in jsc-tiny jsc-3layer jsc-3layer-70pruned jsc-3layer-95pruned minilm-sst2; do
  row="| $m | $(stat -c %s "$models/$m/model.safetensors")"
  for w in f32 mxint8 fixed:8.4; do
    "$old" convert "$models/$m" -o "$work/old.mxrt" --weights "$w" --quiet
    "$new" convert "$models/$m" -o "$work/new.mxrt" --weights "$w" --quiet
    o=$(stat -c %s "$work/old.mxrt")
    n=$(stat -c %s "$work/new.mxrt")
    row="$row | $o | $n ($(awk -v o="$o" -v n="$n" 'BEGIN { printf "%+.1f %%", (n - o) / o * 100 }'))"
  done
  echo "$row |"
done
