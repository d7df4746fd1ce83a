// kernels/*.cu compiled for the host, in the order the CUDA backend concatenates them for NVRTC
// (runtime/src/cuda/mod.rs), and one launcher per kernel that unpacks cuLaunchKernel's parameters by the
// kernel's own signature.
#include "dialect.h"
#include "kernels.h"

#include "../../kernels/common.cuh"
#include "../../kernels/linear.cu"
#include "../../kernels/quantize.cu"
#include "../../kernels/norm.cu"
#include "../../kernels/attention.cu"
#include "../../kernels/elementwise.cu"
#include "../../kernels/gather.cu"

// The structs the host fills (runtime/src/device_upload.rs: QuantParams, and a chunk's descriptor of 12
// header words and 256 table entries), word for word.
static_assert(sizeof(QuantParams) == 13 * 4, "QuantParams differs from device_upload.rs");
static_assert(sizeof(WeightDesc) == (12 + 256) * 4, "WeightDesc differs from device_upload.rs");

namespace {

// Parameter i: cuLaunchKernel passes a pointer to each argument's value (device pointers are 64-bit).
template <typename T>
T arg(void** params, int i) {
    T v;
    memcpy(&v, params[i], sizeof(T));
    return v;
}

#define P(T, i) arg<T>(p, i)

void launch_linear_tiled(void** p) {
    linear_tiled(P(const WeightDesc*, 0), P(const u32*, 1), P(const u8*, 2), P(const u32*, 3), P(const u32*, 4),
                 P(const float*, 5), P(const float*, 6), P(float*, 7), P(u32, 8), P(u32, 9), P(u32, 10));
}
void launch_gemv_mxint8(void** p) {
    gemv_mxint8(P(const WeightDesc*, 0), P(const u32*, 1), P(const u8*, 2), P(const float*, 3), P(const float*, 4),
                P(float*, 5), P(u32, 6), P(u32, 7), P(u32, 8));
}
void launch_linear_mxint8_i8(void** p) {
    linear_mxint8_i8(P(const WeightDesc*, 0), P(const u32*, 1), P(const u8*, 2), P(const u32*, 3),
                     P(const float*, 4), P(const float*, 5), P(float*, 6), P(u32, 7), P(u32, 8), P(u32, 9));
}
void launch_mxint8_dequantize(void** p) {
    mxint8_dequantize(P(const u8*, 0), P(const u8*, 1), P(float*, 2), P(u32, 3), P(u32, 4), P(u32, 5));
}
void launch_fake_quant(void** p) {
    fake_quant(P(QuantParams, 0), P(const float*, 1), P(const u32*, 2), P(float*, 3));
}
void launch_mxint8_codes(void** p) {
    mxint8_codes(P(QuantParams, 0), P(const float*, 1), P(const u32*, 2), P(float*, 3), P(u32*, 4));
}
void launch_layer_norm(void** p) {
    layer_norm(P(const float*, 0), P(const float*, 1), P(const float*, 2), P(const float*, 3), P(float*, 4),
               P(u32, 5), P(u32, 6), P(u32, 7), P(float, 8));
}
void launch_attention(void** p) {
    attention(P(const float*, 0), P(const float*, 1), P(const float*, 2), P(const u32*, 3), P(float*, 4),
              P(u32, 5), P(u32, 6), P(u32, 7), P(u32, 8), P(float, 9));
}
void launch_gelu(void** p) { gelu(P(float*, 0), P(u32, 1)); }
void launch_gelu_tanh(void** p) { gelu_tanh(P(float*, 0), P(u32, 1)); }
void launch_tanh_op(void** p) { tanh_op(P(float*, 0), P(u32, 1)); }
void launch_relu(void** p) { relu(P(float*, 0), P(u32, 1)); }
void launch_leaky_relu(void** p) { leaky_relu(P(float*, 0), P(u32, 1), P(float, 2)); }
void launch_affine(void** p) {
    affine(P(float*, 0), P(const float*, 1), P(const float*, 2), P(u32, 3), P(u32, 4));
}
void launch_softmax_rows(void** p) { softmax_rows(P(float*, 0), P(u32, 1), P(u32, 2)); }
void launch_embedding(void** p) {
    embedding(P(const WeightDesc*, 0), P(const u32*, 1), P(const u8*, 2), P(const u32*, 3), P(const u32*, 4),
              P(const u32*, 5), P(float*, 6), P(u32, 7), P(u32, 8), P(u32, 9), P(u32, 10));
}
void launch_first_tokens(void** p) {
    first_tokens(P(const float*, 0), P(float*, 1), P(u32, 2), P(u32, 3), P(u32, 4));
}
void launch_pool(void** p) {
    pool(P(const float*, 0), P(const u32*, 1), P(float*, 2), P(u32, 3), P(u32, 4), P(u32, 5), P(u32, 6), P(u32, 7));
}

#undef P

const emu::KernelEntry TABLE[] = {
    {"linear_tiled", launch_linear_tiled},
    {"gemv_mxint8", launch_gemv_mxint8},
    {"linear_mxint8_i8", launch_linear_mxint8_i8},
    {"mxint8_dequantize", launch_mxint8_dequantize},
    {"fake_quant", launch_fake_quant},
    {"mxint8_codes", launch_mxint8_codes},
    {"layer_norm", launch_layer_norm},
    {"attention", launch_attention},
    {"gelu", launch_gelu},
    {"gelu_tanh", launch_gelu_tanh},
    {"tanh_op", launch_tanh_op},
    {"relu", launch_relu},
    {"leaky_relu", launch_leaky_relu},
    {"affine", launch_affine},
    {"softmax_rows", launch_softmax_rows},
    {"embedding", launch_embedding},
    {"first_tokens", launch_first_tokens},
    {"pool", launch_pool},
};

}  // namespace

namespace emu {

const KernelEntry* find_kernel(const char* name) {
    for (const KernelEntry& k : TABLE) {
        if (strcmp(k.name, name) == 0) return &k;
    }
    return nullptr;
}

}  // namespace emu
