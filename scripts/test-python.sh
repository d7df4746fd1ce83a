#!/usr/bin/env bash
# The Python package's tests: a virtual environment inside the clone (target/pyenv: nothing cached outside it),
# maturin, numpy and pytest from PyPI, `pip install ./python` (the native module built with cargo's dev profile
# and without the GPU backends, to keep CI short; a user's `pip install ./python` builds release with them),
# then pytest on python/tests against the mxrt binary `cargo test` built (MXRT_BIN).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/pyenv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check "maturin>=1.5,<2" "pytest>=7" "numpy>=1.21"
PATH="$PWD/$venv/bin:$PATH" MATURIN_PEP517_ARGS="--profile dev --no-default-features" \
  "$venv/bin/pip" install -q --disable-pip-version-check --no-build-isolation --force-reinstall --no-deps ./python
MXRT_BIN="$PWD/target/debug/mxrt" "$venv/bin/python" -m pytest -q python/tests
