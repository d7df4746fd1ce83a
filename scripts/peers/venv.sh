#!/usr/bin/env bash
# Creates (once) the virtual environment that holds the peers mxrt is compared with: PyTorch, transformers,
# ONNX Runtime, onnx, scipy. It lives outside the repository, in $MXRT_PEERS_VENV (default
# ~/.cache/mxrt-peers), because it is large (PyPI's torch wheel brings its CUDA libraries) and is reused across
# clones. Prints the path of its python on stdout; progress goes to stderr.
set -euo pipefail
venv=${MXRT_PEERS_VENV:-$HOME/.cache/mxrt-peers}
# Versions pinned so that numbers recorded in BENCHMARKS.md can be reproduced.
packages=(torch==2.15.0 transformers==5.24.0 onnxruntime==1.32.0 onnx==1.23.2 scipy==1.17.1 numpy==2.4.6)
stamp="$venv/.mxrt-peers-$(echo "${packages[*]}" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setting up peers in $venv (PyPI; ~3 GB on first use) ..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}" >&2
  touch "$stamp"
fi
echo "$venv/bin/python"
