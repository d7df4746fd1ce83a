#!/usr/bin/env bash
# The test command (README, CI): fetch the public base model the tests convert, make sure a Vulkan adapter
# exists for the wgpu tests (Mesa's lavapipe on machines without a GPU), then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/fetch-models.sh
./scripts/setup-lavapipe.sh
# Mesa's Vulkan WSI complains on every device when this is unset (harmless, but noisy).
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
cargo test --workspace
