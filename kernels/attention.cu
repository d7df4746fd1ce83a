// Masked multi-head self-attention, one block of 64 threads per (sequence, head, query row): scores against
// every key in shared memory (padded keys get no weight), max/sum reductions for the softmax, then the
// probability-weighted sum of the values. q, k, v, out: [batch * seq, heads * dim]; mask: [batch, seq].

#define MAX_SEQ 1024

extern "C" __global__ void attention(const float* q, const float* k, const float* v, const u32* mask,
                                     float* out, u32 batch, u32 seq, u32 heads, u32 dim, float scale) {
    __shared__ float scores[MAX_SEQ];
    __shared__ float partial[2];
    const u32 id = grid_index();
    if (id >= batch * heads * seq) return;
    const u32 t = threadIdx.x;
    const u32 i = id % seq, h = (id / seq) % heads, b = id / (seq * heads);
    const u32 width = heads * dim;
    const size_t q_at = ((size_t)b * seq + i) * width + h * dim;
    float local_max = F32_NEG_INF;
    for (u32 j = t; j < seq; j += 64u) {
        float s = F32_NEG_INF;
        if (mask[b * seq + j] != 0u) {
            const size_t k_at = ((size_t)b * seq + j) * width + h * dim;
            float d = 0.0f;
            for (u32 c = 0; c < dim; c++) d = fmaf(q[q_at + c], k[k_at + c], d);
            s = d * scale;
        }
        scores[j] = s;
        local_max = fmaxf(local_max, s);
    }
    const float m = block_max64(local_max, partial);
    float local_sum = 0.0f;
    for (u32 j = t; j < seq; j += 64u) {
        const float e = mask[b * seq + j] != 0u ? expf(scores[j] - m) : 0.0f;
        scores[j] = e;
        local_sum += e;
    }
    const float total = block_sum64(local_sum, partial);
    const float inv = m == F32_NEG_INF ? 0.0f : 1.0f / total;  // every key padding: the row stays zero
    for (u32 c = t; c < dim; c += 64u) {
        float acc = 0.0f;
        for (u32 j = 0; j < seq; j++) acc = fmaf(scores[j], v[((size_t)b * seq + j) * width + h * dim + c], acc);
        out[q_at + c] = acc * inv;
    }
}
