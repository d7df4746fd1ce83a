#!/usr/bin/env bash
# Before/after check for changes that must keep every number bit for bit (refactorings): builds BASE_REV in
# a worktree (its own target directory), records scripts/numerics-snapshot.sh for it and for the working
# tree's build, on this machine, and compares the two record by record.
#
#   scripts/numerics-diff.sh BASE_REV        e.g. scripts/numerics-diff.sh 0c97906
#
# CUDA runs on the CPU emulator of the driver (tools/cuda-emu of each side) unless a real driver is present.
# Exits 0 when every run recorded on both sides is identical; prints the runs that differ (with the first
# differing line) or that only one side could run. Results in target/numerics/{base,head}.
set -euo pipefail
cd "$(dirname "$0")/.."
base_rev=$(git rev-parse --verify "${1:?usage: scripts/numerics-diff.sh BASE_REV}^{commit}")
root=$(pwd)
work=target/numerics
rm -rf "$work/base" "$work/head"
mkdir -p "$work"
./scripts/fetch-models.sh >/dev/null
nvrtc=$(./scripts/fetch-nvrtc.sh)
./scripts/setup-lavapipe.sh
if [ ! -d "$work/src" ]; then
  git worktree prune # a worktree registered by an earlier checkout whose target/ is gone
  git worktree add --detach "$work/src" "$base_rev" >/dev/null
else
  git -C "$work/src" checkout -q --detach "$base_rev"
fi
ln -sfn "$root/../shared" "$root/$work/shared"
# The base needs a target directory of its own: cargo names a workspace's crates by their path relative to
# the workspace root, so the worktree's crates would overwrite the working tree's in a shared one (newer files
# that cargo then takes as up to date: both sides would run the same code).
echo "building $base_rev (base; a cold build the first time) ..." >&2
(cd "$work/src" && CARGO_TARGET_DIR="$root/$work/target-base" cargo build -q --bin mxrt)
cp "$work/target-base/debug/mxrt" "$work/mxrt-base"
echo "building the working tree (head) ..." >&2
cargo build -q --bin mxrt
cp target/debug/mxrt "$work/mxrt-head"
if cmp -s "$work/mxrt-base" "$work/mxrt-head"; then
  echo "note: the two builds are the same binary (no code change since $base_rev)" >&2
fi
cuda_env() { # SIDE_ROOT: the emulator of that side, unless a real driver is installed
  if ldconfig -p 2>/dev/null | grep -q "libcuda.so.1 "; then
    echo "$nvrtc"
  else
    echo "$(cd "$1" && ./scripts/build-cuda-emu.sh):$nvrtc"
  fi
}
LD_LIBRARY_PATH=$(cuda_env "$work/src") ./scripts/numerics-snapshot.sh "$work/mxrt-base" "$work/base"
LD_LIBRARY_PATH=$(cuda_env .) ./scripts/numerics-snapshot.sh "$work/mxrt-head" "$work/head"
status=0
same=0
for f in "$work"/base/*.jsonl "$work"/head/*.jsonl; do
  name=$(basename "$f")
  other="$work/base/$name"
  [ "$f" = "$other" ] && other="$work/head/$name"
  if [ ! -f "$other" ]; then
    [[ "$f" == */base/* ]] && echo "only before: $name" || echo "only after: $name"
    continue
  fi
  [[ "$f" == */head/* ]] && continue
  if cmp -s "$f" "$other"; then
    same=$((same + 1))
  else
    status=1
    echo "DIFFERS: $name: $(diff <(tr ',' '\n' <"$f") <(tr ',' '\n' <"$other") | head -4 | tr '\n' ' ')"
  fi
done
echo "backends, before:"; sed 's/^/  /' "$work/base/backends.txt"
echo "backends, after:"; sed 's/^/  /' "$work/head/backends.txt"
echo "$same runs identical bit for bit$([ $status -eq 0 ] && echo ", none differs" || echo "; some differ (above)")"
exit $status
