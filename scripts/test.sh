#!/usr/bin/env bash
# The test command (README, CI): fetch the public base model the tests convert and NVIDIA's NVRTC library
# (so the CUDA kernels are compiled even without a GPU), make sure a Vulkan adapter exists for the wgpu tests
# (Mesa's lavapipe on machines without a GPU), then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/fetch-models.sh
nvrtc=$(./scripts/fetch-nvrtc.sh)
export LD_LIBRARY_PATH="$nvrtc${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
./scripts/setup-lavapipe.sh
# Mesa's Vulkan WSI complains on every device when this is unset (harmless, but noisy).
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
cargo test --workspace
