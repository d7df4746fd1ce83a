// Shared by every kernel of the CUDA backend (first in the one NVRTC program that runtime/src/cuda/mod.rs
// builds from every kernels/*.cu):
// fixed-width types without system headers (NVRTC has none), E8M0 scales, and the decoding of weights as
// they are stored in the .mxrt file (FORMAT.md sections 5 and 6) -- the same semantics as shaders/weights.wgsl.

typedef unsigned int u32;
typedef int i32;
typedef unsigned char u8;
typedef unsigned long long u64;

#define F32_NAN __int_as_float(0x7fc00000)
#define F32_NEG_INF __int_as_float(0xff800000)

// E8M0: 2^(s-127); 255 is NaN; 0 is the subnormal 2^-127. Exact for every byte (unlike the bf16 bit trick,
// which has no 2^-127 and no NaN).
__device__ __forceinline__ float scale_value(u32 s) {
    if (s == 255u) return F32_NAN;
    if (s == 0u) return __int_as_float(0x00400000);
    return __int_as_float((int)(s << 23));
}

// How a weight chunk is stored: the same fields as WeightDesc in shaders/weights.wgsl.
struct WeightDesc {
    u32 kind;            // 0 f32, 1 f16, 2 bf16, 3 MX (table lookup times the block scale), 4 fixed point
    u32 bits;            // bits per element code (the container width for fixed point)
    u32 cols;
    u32 stride;          // codes per stored dense row (MX rows are padded to whole blocks)
    u32 blocks_per_row;
    u32 rows;            // rows in this chunk
    u32 row0;            // first row of this chunk in the whole tensor
    u32 bit0;            // bit position of the chunk's first code in `elements`
    float frac_scale;    // fixed point: 2^-F
    u32 sparse;
    u32 pad0, pad1;
    float table[256];    // MX: the value of every element code
};

struct Weight {
    const WeightDesc* d;
    const u32* elements;
    const u8* scales;
    const u32* masks;
    const u32* offsets;
};

__device__ __forceinline__ u32 w_code(const Weight& w, u32 k) {
    const u32 bits = w.d->bits;
    const u64 bit = (u64)w.d->bit0 + (u64)k * bits;
    const u64 word = bit >> 5;
    const u32 off = (u32)(bit & 31u);
    u32 code = w.elements[word] >> off;
    if (off + bits > 32u) code |= w.elements[word + 1] << (32u - off);
    if (bits == 32u) return code;
    return code & ((1u << bits) - 1u);
}

__device__ __forceinline__ i32 sign_extend(u32 code, u32 bits) {
    const u32 shift = 32u - bits;
    return ((i32)(code << shift)) >> shift;
}

__device__ __forceinline__ float half_bits_to_float(u32 h) {
    // IEEE binary16 to binary32, subnormals, infinities and NaN included.
    const u32 sign = (h & 0x8000u) << 16;
    const u32 exp = (h >> 10) & 0x1fu;
    const u32 mant = h & 0x3ffu;
    if (exp == 0u) {
        float v = (float)mant * 5.9604644775390625e-8f;  // 2^-24
        return sign ? -v : v;
    }
    if (exp == 31u) return __int_as_float((int)(sign | 0x7f800000u | (mant << 13)));
    return __int_as_float((int)(sign | ((exp + 112u) << 23) | (mant << 13)));
}

// The value of a code of chunk-relative block `block` (the block matters for MX only).
__device__ __forceinline__ float w_value(const Weight& w, u32 code, u32 block) {
    switch (w.d->kind) {
        case 0u: return __int_as_float((int)code);
        case 1u: return half_bits_to_float(code);
        case 2u: return __int_as_float((int)(code << 16));
        case 3u: return w.d->table[code] * scale_value(w.scales[block]);
        default: return (float)sign_extend(code, w.d->bits) * w.d->frac_scale;
    }
}

__device__ __forceinline__ float w_dense(const Weight& w, u32 r, u32 c) {
    return w_value(w, w_code(w, r * w.d->stride + c), r * w.d->blocks_per_row + (c >> 5));
}

// Element (r, c) of a sparse chunk: zero unless its mask bit is set; otherwise its index among the row's
// stored codes is the row offset plus the set bits before it.
__device__ __forceinline__ float w_sparse(const Weight& w, u32 r, u32 c) {
    const u32 j = c >> 5, i = c & 31u;
    const u32 base = r * w.d->blocks_per_row;
    const u32 m = w.masks[base + j];
    if (((m >> i) & 1u) == 0u) return 0.0f;
    u32 k = w.offsets[r] + __popc(m & ((1u << i) - 1u));
    for (u32 b = 0; b < j; b++) k += __popc(w.masks[base + b]);
    return w_value(w, w_code(w, k), base + j);
}

__device__ __forceinline__ float w_at(const Weight& w, u32 r, u32 c) {
    return w.d->sparse ? w_sparse(w, r, c) : w_dense(w, r, c);
}

// Workgroup-style reductions over a block of 64 threads (two warps) through shared memory (float or double).
template <typename T>
__device__ __forceinline__ T block_sum64(T v, T* partial) {
    const u32 t = threadIdx.x;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if ((t & 31u) == 0u) partial[t >> 5] = v;
    __syncthreads();
    return partial[0] + partial[1];
}

__device__ __forceinline__ float block_max64(float v, float* partial) {
    const u32 t = threadIdx.x;
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads();
    if ((t & 31u) == 0u) partial[t >> 5] = v;
    __syncthreads();
    return fmaxf(partial[0], partial[1]);
}

__device__ __forceinline__ u32 grid_index() {
    return blockIdx.x + blockIdx.y * gridDim.x;
}
