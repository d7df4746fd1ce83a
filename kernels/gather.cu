// Gathers at both ends of an encoder: embedding rows decoded in place from the stored tables (accumulated
// over word / position / type tables and over a table's chunks), the first token of each sequence, and
// sentence pooling (CLS, masked mean, masked max; optional L2 normalisation; one block of 64 per sequence).

extern "C" __global__ void embedding(const WeightDesc* desc, const u32* elements, const u8* scales,
                                     const u32* masks, const u32* offsets, const u32* ids, float* out,
                                     u32 rows, u32 width, u32 positions, u32 seq) {
    const Weight w = {desc, elements, scales, masks, offsets};
    const size_t i = (size_t)grid_index() * blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * width) return;
    const u32 row = (u32)(i / width), c = (u32)(i % width);
    const u32 index = positions ? row % seq : ids[row];
    if (index >= desc->row0 && index < desc->row0 + desc->rows) out[i] += w_at(w, index - desc->row0, c);
}

extern "C" __global__ void first_tokens(const float* x, float* out, u32 batch, u32 seq, u32 width) {
    const size_t i = (size_t)grid_index() * blockDim.x + threadIdx.x;
    if (i < (size_t)batch * width) {
        const size_t b = i / width, c = i % width;
        out[i] = x[b * seq * width + c];
    }
}

extern "C" __global__ void pool(const float* x, const u32* mask, float* out, u32 batch, u32 seq, u32 width,
                                u32 mode, u32 normalize) {
    __shared__ float partial[2];
    const u32 b = grid_index();
    if (b >= batch) return;
    const u32 t = threadIdx.x;
    float count = 0.0f;
    for (u32 j = 0; j < seq; j++) count += mask[b * seq + j] != 0u ? 1.0f : 0.0f;
    float squares = 0.0f;
    for (u32 c = t; c < width; c += 64u) {
        float acc = 0.0f;
        if (mode == 0u) {
            acc = x[(size_t)b * seq * width + c];
        } else if (mode == 1u) {
            for (u32 j = 0; j < seq; j++)
                if (mask[b * seq + j] != 0u) acc += x[((size_t)b * seq + j) * width + c];
            acc = acc / fmaxf(count, 1e-9f);
        } else {
            acc = F32_NEG_INF;
            for (u32 j = 0; j < seq; j++)
                if (mask[b * seq + j] != 0u) acc = fmaxf(acc, x[((size_t)b * seq + j) * width + c]);
        }
        out[(size_t)b * width + c] = acc;
        squares += acc * acc;
    }
    const float total = block_sum64(squares, partial);
    if (normalize) {
        const float norm = fmaxf(sqrtf(total), 1e-12f);
        for (u32 c = t; c < width; c += 64u) out[(size_t)b * width + c] = out[(size_t)b * width + c] / norm;
    }
}
