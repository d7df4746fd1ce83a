#!/usr/bin/env bash
# The test command (README, CI): fetch the public base model the tests convert and NVIDIA's NVRTC library
# (so the CUDA kernels are compiled even without a GPU), make sure a Vulkan adapter exists for the wgpu tests
# (Mesa's lavapipe on machines without a GPU), run every test, then run the CUDA backend's tests once more on
# the CPU emulator of the CUDA driver (kernels/emu), where they must not skip.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/fetch-models.sh
nvrtc=$(./scripts/fetch-nvrtc.sh)
export LD_LIBRARY_PATH="$nvrtc${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
./scripts/setup-lavapipe.sh
# Mesa's Vulkan WSI complains on every device when this is unset (harmless, but noisy).
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
cargo test --workspace

# The CUDA backend on the emulator: its host code (uploads, launches, buffers) and its kernels' source compiled
# for the CPU, against the CPU backend. Not a GPU run: that is scripts/gpu-check.sh. Never with a real driver.
if [ -n "${MXRT_NO_CUDA_EMULATOR:-}" ]; then
  echo "skipped: the CUDA tests on the emulator (MXRT_NO_CUDA_EMULATOR is set)"
elif ! command -v g++ >/dev/null; then
  echo "skipped: the CUDA tests on the emulator (no C++ compiler to build kernels/emu)"
else
  emu=$(./scripts/build-cuda-emu.sh)
  export LD_LIBRARY_PATH="$emu:$LD_LIBRARY_PATH" MXRT_REQUIRE_CUDA=1
  cargo test --workspace --lib -- cuda::
  MXRT_CUDA_EMULATOR_ORDER=reverse cargo test --workspace --lib -- cuda::
  cargo test --test cuda_backend
fi
