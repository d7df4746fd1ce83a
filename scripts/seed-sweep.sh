#!/usr/bin/env bash
# Runs the randomized device tests (wgpu on whatever adapter wgpu finds, CUDA on the CPU emulator of the
# driver) and the CPU kernel tests over many fixed seeds, to find the seeds a fresh run would hit only
# rarely. Not part of the test command (it takes a while); run it after changing a randomized test.
#
#   ./scripts/seed-sweep.sh [COUNT [FIRST]]      seeds FIRST .. FIRST+COUNT-1 (default 300 seeds from 1)
#
# Prints one line per failing seed (with the test binary's output in target/seed-sweep/) and a total; exits
# non-zero when any seed failed. Replay one with MXRT_TEST_SEED=<seed> and the test's name.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-300}
first=${2:-1}
out=target/seed-sweep
mkdir -p "$out"
nvrtc=$(./scripts/fetch-nvrtc.sh)
emu=$(./scripts/build-cuda-emu.sh)
./scripts/setup-lavapipe.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
# The test executables, built once.
binary() {
  cargo test "$@" --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])' | tail -1
}
lib=$(binary -p mxrt-runtime --features wgpu,cuda --lib)
kernels=$(binary -p mxrt-runtime --test kernels)
failed=0
for ((seed = first; seed < first + count; seed++)); do
  for suite in wgpu cuda kernels; do
    log="$out/$suite-$seed.log"
    case $suite in
      wgpu) cmd=(env MXRT_TEST_SEED=$seed "$lib" wgpu:: --test-threads 2) ;;
      cuda) cmd=(env MXRT_TEST_SEED=$seed LD_LIBRARY_PATH="$emu:$nvrtc" MXRT_REQUIRE_CUDA=1 "$lib" cuda:: --test-threads 2) ;;
      kernels) cmd=(env MXRT_TEST_SEED=$seed "$kernels" --test-threads 2) ;;
    esac
    if "${cmd[@]}" >"$log" 2>&1; then
      rm -f "$log"
    else
      failed=$((failed + 1))
      echo "seed $seed: $suite failed: $(grep -m1 -E "panicked|FAILED" "$log" || true) (log: $log)"
    fi
  done
  if (((seed - first + 1) % 25 == 0)); then
    echo "$((seed - first + 1)) of $count seeds done, $failed failures so far" >&2
  fi
done
echo "$count seeds ($first..$((first + count - 1))) x {wgpu, cuda emulator, cpu kernels}: $failed failing runs"
[ "$failed" -eq 0 ]
