#!/usr/bin/env bash
# Builds the CPU emulator of the CUDA driver (tools/cuda-emu: kernels/*.cu compiled for the host by g++, behind
# the driver calls cudarc makes) into target/cuda-emu/libcuda.so.1 and prints that directory. With it first
# on LD_LIBRARY_PATH (and NVRTC beside it: scripts/fetch-nvrtc.sh), `--backend cuda` and the CUDA kernel
# tests run on a machine without a GPU: a check of the backend's host code and of the kernels' logic, not of
# a GPU. Never put it on LD_LIBRARY_PATH on a machine with a real driver. Needs g++ (x86-64 Linux).
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/cuda-emu
mkdir -p "$out"
sources=(tools/cuda-emu/*.cpp tools/cuda-emu/*.h kernels/*.cu kernels/*.cuh scripts/build-cuda-emu.sh)
if [ ! -f "$out/libcuda.so.1" ] || [ -n "$(find "${sources[@]}" -newer "$out/libcuda.so.1" | head -1)" ]; then
  # gcc, not g++: nothing may link libstdc++ (it crashes NVRTC, which carries its own, in the same process).
  gcc -x c++ -std=c++17 -O2 -g -fPIC -shared -fvisibility=hidden -fno-exceptions -fno-rtti -fno-gnu-unique \
    -ffp-contract=off -fno-fast-math \
    -fsanitize=shift,signed-integer-overflow,integer-divide-by-zero,float-cast-overflow,bounds \
    -fsanitize-undefined-trap-on-error \
    -Wall -Wextra -Wno-unknown-pragmas -Wno-unused-parameter \
    -Wl,-soname,libcuda.so.1 -Wl,--no-undefined -o "$out/libcuda.so.1.tmp" tools/cuda-emu/*.cpp -lm -lpthread
  mv "$out/libcuda.so.1.tmp" "$out/libcuda.so.1"
  ln -sf libcuda.so.1 "$out/libcuda.so"
fi
echo "$(pwd)/$out"
