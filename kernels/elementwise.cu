// Element-wise ops in place (GELU with erf, GELU's tanh approximation, tanh, ReLU, leaky ReLU, the per-column
// affine of folded BatchNorm) and the row softmax of MLP outputs.

__device__ __forceinline__ size_t element_index() {
    return (size_t)grid_index() * blockDim.x + threadIdx.x;
}

extern "C" __global__ void gelu(float* x, u32 len) {
    const size_t i = element_index();
    if (i < len) {
        const float v = x[i];
        x[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    }
}

extern "C" __global__ void gelu_tanh(float* x, u32 len) {
    const size_t i = element_index();
    if (i < len) {
        const float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    }
}

extern "C" __global__ void tanh_op(float* x, u32 len) {
    const size_t i = element_index();
    if (i < len) x[i] = tanhf(x[i]);
}

extern "C" __global__ void relu(float* x, u32 len) {
    const size_t i = element_index();
    if (i < len) x[i] = fmaxf(x[i], 0.0f);
}

extern "C" __global__ void leaky_relu(float* x, u32 len, float slope) {
    const size_t i = element_index();
    if (i < len) {
        const float v = x[i];
        x[i] = v < 0.0f ? slope * v : v;
    }
}

extern "C" __global__ void affine(float* x, const float* scale, const float* shift, u32 len, u32 width) {
    const size_t i = element_index();
    if (i < len) {
        const u32 c = (u32)(i % width);
        x[i] = x[i] * scale[c] + shift[c];
    }
}

extern "C" __global__ void softmax_rows(float* x, u32 rows, u32 width) {
    const size_t row = element_index();
    if (row >= rows) return;
    float* r = x + row * width;
    float m = r[0];
    for (u32 c = 1; c < width; c++) m = fmaxf(m, r[c]);
    float s = 0.0f;
    for (u32 c = 0; c < width; c++) {
        r[c] = expf(r[c] - m);
        s += r[c];
    }
    for (u32 c = 0; c < width; c++) r[c] = r[c] / s;
}
