#!/usr/bin/env bash
# Prints the CPU kernel tiers this machine's CPU flags announce (comma-separated: avx2, avx2vnni, avx512, amx),
# read from /proc/cpuinfo, independently of the runtime's own feature detection. scripts/test.sh exports it
# as MXRT_REQUIRE_SIMD, so a tier the runtime does not detect (or a table left out) fails the kernel tests.
# The flags each tier needs are the ones runtime/src/cpu/kernels/mod.rs (x86_tables) checks. AMX is required where the flags
# announce it and the kernel can grant its permission (5.16+); a refusal there fails the tests: AMX untested.
set -euo pipefail
flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
has() { for f in "$@"; do [[ "$flags" == *" $f "* ]] || return 1; done; }
tiers=()
if has avx2 fma; then
  tiers+=(avx2)
  has avx_vnni && tiers+=(avx2vnni)
  if has avx512f avx512bw avx512dq avx512vl avx512_vnni; then
    tiers+=(avx512)
    # AMX tiles need the kernel's permission (arch_prctl ARCH_REQ_XCOMP_PERM, Linux 5.16 and later).
    IFS=. read -r major minor _ <<<"$(uname -r)"
    if has amx_tile amx_int8 && { [ "$major" -gt 5 ] || { [ "$major" -eq 5 ] && [ "${minor%%[!0-9]*}" -ge 16 ]; }; }; then
      tiers+=(amx)
    fi
  fi
fi
(IFS=,; echo "${tiers[*]:-}")
