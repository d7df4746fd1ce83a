// The CUDA C++ dialect of kernels/*.cu on the host, for the CPU emulator of the CUDA driver (see README.md):
// qualifiers, the thread and block indices of the thread that runs now, barriers and warp shuffles served by
// threads.cpp, and the device intrinsics the kernels use, each with the GPU's semantics.
#pragma once

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

namespace emu {

struct Dim3 {
    unsigned x, y, z;
};

// The running thread's indices and its launch's shape (set by threads.cpp before it resumes a thread).
extern Dim3 thread_idx, block_idx, block_dim, grid_dim;

// __syncthreads(): every thread of the block that has not exited arrives before any goes on.
void sync_block();
// __shfl_xor_sync(mask, v, lane_mask) on 32 bits: the value of lane (lane ^ lane_mask) of the same warp.
unsigned shuffle_xor(unsigned mask, unsigned bits, int lane_mask);

}  // namespace emu

#define threadIdx (::emu::thread_idx)
#define blockIdx (::emu::block_idx)
#define blockDim (::emu::block_dim)
#define gridDim (::emu::grid_dim)

#define __global__
#define __device__
#define __forceinline__ inline
// One block runs at a time, so a function-local static is that block's shared memory. All of it lies in one
// section, which threads.cpp fills with 0xFF bytes before every block: a read of shared memory that no thread
// of the block wrote sees NaN or 0xFFFFFFFF (as a GPU would give it garbage), never the previous block's data.
#define __shared__ static __attribute__((section("emu_shared")))

#define __syncthreads() ::emu::sync_block()

inline float __int_as_float(int v) {
    float f;
    memcpy(&f, &v, 4);
    return f;
}
inline float __uint_as_float(unsigned v) {
    float f;
    memcpy(&f, &v, 4);
    return f;
}
inline unsigned __float_as_uint(float f) {
    unsigned v;
    memcpy(&v, &f, 4);
    return v;
}
inline int __float_as_int(float f) {
    int v;
    memcpy(&v, &f, 4);
    return v;
}

inline float __shfl_xor_sync(unsigned mask, float v, int lane_mask) {
    return __uint_as_float(emu::shuffle_xor(mask, __float_as_uint(v), lane_mask));
}
// As CUDA does it: the two 32-bit halves, one shuffle each.
inline double __shfl_xor_sync(unsigned mask, double v, int lane_mask) {
    uint64_t bits;
    memcpy(&bits, &v, 8);
    const uint64_t lo = emu::shuffle_xor(mask, (unsigned)bits, lane_mask);
    const uint64_t hi = emu::shuffle_xor(mask, (unsigned)(bits >> 32), lane_mask);
    bits = lo | (hi << 32);
    memcpy(&v, &bits, 8);
    return v;
}

inline int __popc(unsigned v) { return __builtin_popcount(v); }

// Four signed byte products summed into c (PTX dp4a.s32.s32), exact in 32-bit two's complement.
inline int __dp4a(int a, int b, int c) {
    int sum = c;
    for (int i = 0; i < 4; i++) {
        const int x = (signed char)((unsigned)a >> (8 * i));
        const int y = (signed char)((unsigned)b >> (8 * i));
        sum = (int)((unsigned)sum + (unsigned)(x * y));
    }
    return sum;
}

// Correctly rounded single operations (built with -ffp-contract=off: nothing is fused behind them).
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }

inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline int min(int a, int b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
