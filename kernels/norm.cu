// LayerNorm over each row of (x + residual): (v - mean) / sqrt(var + eps) * gamma + beta, biased variance,
// two-pass, as the CPU reference computes it (runtime/src/cpu/kernels/reference.rs): the residual added in f32, then
// mean, variance and the normalized value in f64, rounded to f32 before gamma and beta. One block of 64
// threads per row.

extern "C" __global__ void layer_norm(const float* x, const float* residual, const float* gamma,
                                      const float* beta, float* out, u32 rows, u32 cols, u32 has_residual,
                                      float eps) {
    __shared__ double partial[2];
    const u32 row = grid_index();
    if (row >= rows) return;
    const u32 t = threadIdx.x;
    const size_t base = (size_t)row * cols;
#define VALUE(i) (has_residual ? x[base + (i)] + residual[base + (i)] : x[base + (i)])
    double s = 0.0;
    for (u32 c = t; c < cols; c += 64u) s += (double)VALUE(c);
    const double mean = block_sum64(s, partial) / (double)cols;
    double q = 0.0;
    for (u32 c = t; c < cols; c += 64u) {
        const double d = (double)VALUE(c) - mean;
        q += d * d;
    }
    const double variance = block_sum64(q, partial) / (double)cols;
    const double inv = 1.0 / sqrt(variance + (double)eps);
    for (u32 c = t; c < cols; c += 64u) out[base + c] = (float)(((double)VALUE(c) - mean) * inv) * gamma[c] + beta[c];
#undef VALUE
}
