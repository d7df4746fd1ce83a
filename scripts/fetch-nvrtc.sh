#!/usr/bin/env bash
# Fetches NVIDIA's NVRTC (the CUDA runtime compiler library; PyPI package nvidia-cuda-nvrtc-cu12 12.9.86, an
# 89 MB wheel) into target/nvrtc, so that the tests can compile every CUDA kernel (kernels/*.cu) on machines
# without a GPU or CUDA toolkit: `cuda::tests::kernels_compile_with_nvrtc` loads it from LD_LIBRARY_PATH.
# Idempotent. Prints the library directory on stdout. Needs python3 with pip.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=target/nvrtc
if [ ! -f "$dest/.complete" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "fetching nvidia-cuda-nvrtc-cu12==12.9.86 from PyPI (89 MB) ..." >&2
  python3 -m pip download --quiet --no-deps --disable-pip-version-check --only-binary=:all: \
    --platform manylinux2010_x86_64 -d "$tmp" nvidia-cuda-nvrtc-cu12==12.9.86
  rm -rf "$dest"
  mkdir -p "$dest"
  python3 - "$tmp" "$dest" <<'PY'
import pathlib, sys, zipfile
src, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(src.glob("*.whl"))
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        # the library and its builtins; not the .alt variants
        base = name.rsplit("/", 1)[-1]
        if "/lib/" in name and base.startswith(("libnvrtc.so", "libnvrtc-builtins.so")):
            (dest / base).write_bytes(z.read(name))
PY
  touch "$dest/.complete"
fi
echo "$(pwd)/$dest"
