// LayerNorm over each row of (x + residual): (v - mean) / sqrt(var + eps) * gamma + beta, biased variance,
// two-pass. One block of 64 threads per row.

extern "C" __global__ void layer_norm(const float* x, const float* residual, const float* gamma,
                                      const float* beta, float* out, u32 rows, u32 cols, u32 has_residual,
                                      float eps) {
    __shared__ float partial[2];
    const u32 row = grid_index();
    if (row >= rows) return;
    const u32 t = threadIdx.x;
    const size_t base = (size_t)row * cols;
#define VALUE(i) (has_residual ? x[base + (i)] + residual[base + (i)] : x[base + (i)])
    float s = 0.0f;
    for (u32 c = t; c < cols; c += 64u) s += VALUE(c);
    const float mean = block_sum64(s, partial) / (float)cols;
    float q = 0.0f;
    for (u32 c = t; c < cols; c += 64u) {
        const float d = VALUE(c) - mean;
        q += d * d;
    }
    const float variance = block_sum64(q, partial) / (float)cols;
    const float inv = 1.0f / sqrtf(variance + eps);
    for (u32 c = t; c < cols; c += 64u) out[base + c] = (VALUE(c) - mean) * inv * gamma[c] + beta[c];
#undef VALUE
}
