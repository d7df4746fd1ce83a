#!/usr/bin/env bash
# The test command (README, CI): fetch the public base model the tests convert and NVIDIA's NVRTC library
# (so the CUDA kernels are compiled even without a GPU), make sure a Vulkan adapter exists for the wgpu tests
# (Mesa's lavapipe on machines without a GPU), run every test, then run the CUDA backend's tests once more on
# the CPU emulator of the CUDA driver (tools/cuda-emu), where they must not skip.
#
# Nothing this machine can run is skipped silently: the SIMD kernel tiers its CPU flags announce are required
# (MXRT_REQUIRE_SIMD, read by runtime/tests/kernels.rs: a tier the runtime fails to detect fails the tests),
# NVRTC is required once fetched, g++ (the C ABI example, the emulator) is installed when missing, and every part left out on
# purpose (MXRT_NO_CUDA_EMULATOR=1) is named on stderr and again at the end. Randomized tests print their seed
# to stderr; MXRT_TEST_SEED=<seed> replays one exactly.
set -euo pipefail
cd "$(dirname "$0")/.."
skipped=()
./scripts/fetch-models.sh
nvrtc=$(./scripts/fetch-nvrtc.sh)
export LD_LIBRARY_PATH="$nvrtc${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" MXRT_REQUIRE_NVRTC=1
./scripts/setup-lavapipe.sh
# Mesa's Vulkan WSI complains on every device when this is unset (harmless, but noisy).
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
if [ -z "${MXRT_REQUIRE_SIMD+set}" ]; then
  MXRT_REQUIRE_SIMD=$(./scripts/cpu-tiers.sh)
  export MXRT_REQUIRE_SIMD
fi
echo "kernel tiers required by this machine's CPU flags: ${MXRT_REQUIRE_SIMD:-none}" >&2
if ! command -v g++ >/dev/null; then
  # gcc compiles the C example of the C ABI (with AddressSanitizer, bindings/c/tests/c_example.rs) and its C++
  # front end the CUDA driver emulator; a fresh Debian machine with Rust may lack them.
  echo "installing g++ (the C ABI example and the CUDA driver emulator) ..." >&2
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo -n"
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y -qq --no-install-recommends g++ >/dev/null 2>&1; then
    $sudo apt-get update -qq >/dev/null
    $sudo apt-get install -y -qq --no-install-recommends g++ >/dev/null
  fi
fi
# Everything `cargo test` builds, built first with its profile, because `cargo test` alone gives the C ABI
# crate's rlib but not its shared library, which bindings/c/tests/c_example.rs links the C example against.
cargo build --profile test --workspace --lib --bins --tests --examples
cargo test --workspace
# The Python package (maturin + PyO3): built into a venv inside the clone, tested with pytest.
./scripts/test-python.sh

# The CUDA backend on the emulator: its host code (uploads, launches, buffers) and its kernels' source compiled
# for the CPU, against the CPU backend. Not a GPU run: that is scripts/gpu-check.sh. Never with a real driver.
if [ -n "${MXRT_NO_CUDA_EMULATOR:-}" ]; then
  skipped+=("the CUDA tests on the emulator (MXRT_NO_CUDA_EMULATOR is set)")
  echo "skipped: ${skipped[-1]}" >&2
else
  emu=$(./scripts/build-cuda-emu.sh)
  export LD_LIBRARY_PATH="$emu:$LD_LIBRARY_PATH" MXRT_REQUIRE_CUDA=1
  cargo test --workspace --lib -- cuda::
  MXRT_CUDA_EMULATOR_ORDER=reverse cargo test --workspace --lib -- cuda::
  # --workspace: the features every package asks for, as in the run above (the root package alone would unify
  # them differently and rebuild most dependencies)
  cargo test --workspace --test cuda_backend
fi
for s in ${skipped[@]+"${skipped[@]}"}; do
  echo "skipped: $s" >&2
done
