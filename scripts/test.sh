#!/usr/bin/env bash
# The test command (README, CI): fetch the public base model the tests convert, then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/fetch-models.sh
cargo test --workspace
