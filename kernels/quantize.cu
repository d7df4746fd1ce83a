// Activation quantization at a linear layer's input, bit-exact with mxrt-format (the same algorithm as
// shaders/quantize.wgsl): MX blocks of 32 along each row with the reference's shared exponent and rounding,
// or fixed point per element. One thread per block of 32.

struct QuantParams {
    u32 rows, cols, blocks_per_row, mode;  // mode 0: MX, 1: fixed point
    u32 ebits, mbits;
    i32 emax;
    u32 even;
    float max_norm, frac_up, frac_down, lo, hi;
};

__device__ __forceinline__ bool is_nan_bits(float v) {
    return (__float_as_uint(v) & 0x7fffffffu) > 0x7f800000u;
}

// floor(log2f(v)) as the reference computes it, from the per-exponent round-up thresholds.
__device__ __forceinline__ i32 floor_log2f(float v, const u32* round_up) {
    const u32 b = __float_as_uint(v);
    const u32 e = b >> 23;
    if (e == 0u) return -127;
    if (e == 255u) return 128;
    return (i32)e - 127 + (b >= round_up[e] ? 1 : 0);
}

__device__ __forceinline__ float pow2(i32 e) {
    if (e >= -126) return __uint_as_float((u32)(e + 127) << 23);
    return __uint_as_float(1u << (u32)(e + 149));
}

__device__ __forceinline__ float round_ref(float v, u32 even) {
    const float a = fabsf(v);
    float r = floorf(__fadd_rn(a, 0.5f));
    if (even) {
        const float fl = floorf(a);
        if (__fsub_rn(a, fl) == 0.5f && __fsub_rn(fl, 2.0f * floorf(fl * 0.5f)) == 0.0f) r = r - 1.0f;
    }
    return v > 0.0f ? r : (v < 0.0f ? -r : 0.0f);
}

__device__ __forceinline__ float round_exact(float v, u32 even) {
    if (fabsf(v) >= 8388608.0f) return v;
    const float t = truncf(v);
    const float f = fabsf(__fsub_rn(v, t));
    bool up = f > 0.5f;
    if (f == 0.5f) up = !even || (t - 2.0f * truncf(t * 0.5f)) != 0.0f;
    return up ? t + (v > 0.0f ? 1.0f : -1.0f) : t;
}

__device__ i32 shared_exponent(const float* x, u32 n, const QuantParams& p, const u32* round_up) {
    float amax = 0.0f;
    for (u32 c = 0; c < n; c++) {
        const float v = x[c];
        if (is_nan_bits(v)) return 1000;
        amax = fmaxf(amax, fabsf(v));
    }
    if (amax == 0.0f) amax = __uint_as_float(0x00800000u);
    const i32 e = floor_log2f(amax, round_up) - p.emax;
    if (e > 127) return 1000;
    return e < -127 ? -127 : e;
}

__device__ float quantize_element(float y, const QuantParams& p, const u32* round_up) {
    if (p.ebits == 0u) {
        const float m = pow2((i32)p.mbits - 2);
        const float q_max = pow2((i32)p.mbits - 1) - 1.0f;
        return fminf(fmaxf(round_ref(__fmul_rn(y, m), p.even), -q_max), q_max) / m;
    }
    const i32 min_exp = 2 - (1 << (p.ebits - 1u));
    const float a = y == 0.0f ? 1.0f : fabsf(y);
    i32 private_exp = floor_log2f(a, round_up);
    if (private_exp < min_exp) private_exp = min_exp;
    const float m_scale = pow2((i32)p.mbits - 2);
    const float n = round_ref(__fmul_rn(__fmul_rn(y, pow2(-private_exp)), m_scale), p.even);
    return fminf(fmaxf(__fmul_rn(n / m_scale, pow2(private_exp)), -p.max_norm), p.max_norm);
}

extern "C" __global__ void fake_quant(QuantParams p, const float* x, const u32* round_up, float* out) {
    const u32 id = grid_index() * blockDim.x + threadIdx.x;
    if (id >= p.rows * p.blocks_per_row) return;
    const u32 row = id / p.blocks_per_row;
    const u32 c0 = (id % p.blocks_per_row) * 32u;
    const u32 n = min(32u, p.cols - c0);
    const size_t base = (size_t)row * p.cols + c0;
    if (p.mode == 1u) {
        for (u32 c = 0; c < n; c++) {
            const float v = x[base + c];
            out[base + c] = is_nan_bits(v) ? v
                : __fmul_rn(fminf(fmaxf(round_exact(__fmul_rn(v, p.frac_up), p.even), p.lo), p.hi), p.frac_down);
        }
        return;
    }
    const i32 e = shared_exponent(x + base, n, p, round_up);
    for (u32 c = 0; c < n; c++) {
        out[base + c] = e == 1000 ? F32_NAN
            : __fmul_rn(quantize_element(__fmul_rn(x[base + c], pow2(-e)), p, round_up), pow2(e));
    }
}

extern "C" __global__ void mxint8_codes(QuantParams p, const float* x, const u32* round_up, float* out_scale,
                                        u32* out_codes) {
    const u32 id = grid_index() * blockDim.x + threadIdx.x;
    if (id >= p.rows * p.blocks_per_row) return;
    const u32 row = id / p.blocks_per_row;
    const u32 c0 = (id % p.blocks_per_row) * 32u;
    const u32 n = min(32u, p.cols - c0);
    const size_t base = (size_t)row * p.cols + c0;
    const i32 e = shared_exponent(x + base, n, p, round_up);
    u32 packed[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (e == 1000) {
        out_scale[id] = F32_NAN;
    } else {
        const float down = pow2(-e);
        for (u32 c = 0; c < n; c++) {
            const float q = fminf(fmaxf(round_ref(__fmul_rn(__fmul_rn(x[base + c], down), 64.0f), p.even), -127.0f), 127.0f);
            packed[c / 4u] |= ((u32)(i32)q & 255u) << ((c % 4u) * 8u);
        }
        out_scale[id] = pow2(e) * (1.0f / 64.0f);
    }
    for (u32 w = 0; w < 8; w++) out_codes[(size_t)id * 8u + w] = packed[w];
}
