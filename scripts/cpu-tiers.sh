#!/usr/bin/env bash
# Prints the CPU kernel tiers this machine's CPU flags announce (comma-separated: avx2, avx2vnni, avx512, amx),
# read from /proc/cpuinfo, independently of the runtime's own feature detection. scripts/test.sh exports it
# as MXRT_REQUIRE_SIMD, so a tier the runtime does not detect (or a table left out) fails the kernel tests.
# The flags each tier needs are the ones runtime/src/cpu/x86_64.rs checks; AMX also needs the kernel's
# permission, which the runtime asks for (a refusal fails the tests too: it would leave AMX untested).
set -euo pipefail
flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
has() { for f in "$@"; do [[ "$flags" == *" $f "* ]] || return 1; done; }
tiers=()
if has avx2 fma; then
  tiers+=(avx2)
  has avx_vnni && tiers+=(avx2vnni)
  if has avx512f avx512bw avx512dq avx512vl avx512_vnni; then
    tiers+=(avx512)
    has amx_tile amx_int8 && tiers+=(amx)
  fi
fi
(IFS=,; echo "${tiers[*]:-}")
