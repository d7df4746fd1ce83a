// Masked multi-head self-attention, one workgroup of 64 per (sequence, head, query row): scores against every
// key in workgroup memory (padded keys get no weight), a max/sum reduction for the softmax, then the
// probability-weighted sum of the values. q, k, v, out: [batch * seq, heads * dim]; mask: [batch, seq].

const MAX_SEQ: u32 = 1024u;

struct Params {
    batch: u32,
    seq: u32,
    heads: u32,
    dim: u32,
    scale: f32,
    grid_width: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

var<workgroup> scores: array<f32, MAX_SEQ>;
var<workgroup> partial: array<f32, 64>;

fn reduce_max(val: f32, t: u32) -> f32 {
    partial[t] = val;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (t < s) {
            partial[t] = max(partial[t], partial[t + s]);
        }
        workgroupBarrier();
    }
    let r = partial[0];
    workgroupBarrier();
    return r;
}

fn reduce_sum(val: f32, t: u32) -> f32 {
    partial[t] = val;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (t < s) {
            partial[t] += partial[t + s];
        }
        workgroupBarrier();
    }
    let r = partial[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let id = wg.x + wg.y * p.grid_width;
    if (id >= p.batch * p.heads * p.seq) {
        return;
    }
    let t = lid.x;
    let i = id % p.seq;
    let h = (id / p.seq) % p.heads;
    let b = id / (p.seq * p.heads);
    let width = p.heads * p.dim;
    let q_at = (b * p.seq + i) * width + h * p.dim;
    let neg_inf = bitcast<f32>(0xff800000u);
    var local_max = neg_inf;
    for (var j = t; j < p.seq; j += 64u) {
        var s = neg_inf;
        if (mask[b * p.seq + j] != 0u) {
            let k_at = (b * p.seq + j) * width + h * p.dim;
            var d = 0.0;
            for (var c = 0u; c < p.dim; c++) {
                d += q[q_at + c] * k[k_at + c];
            }
            s = d * p.scale;
        }
        scores[j] = s;
        local_max = max(local_max, s);
    }
    let m = reduce_max(local_max, t);
    var local_sum = 0.0;
    for (var j = t; j < p.seq; j += 64u) {
        var e = 0.0;
        if (mask[b * p.seq + j] != 0u) {
            e = exp(scores[j] - m);
        }
        scores[j] = e;
        local_sum += e;
    }
    let total = reduce_sum(local_sum, t);
    // every key is padding: the output row stays zero
    let inv = select(1.0 / total, 0.0, m == neg_inf);
    for (var c = t; c < p.dim; c += 64u) {
        var acc = 0.0;
        for (var j = 0u; j < p.seq; j++) {
            acc += scores[j] * v[(b * p.seq + j) * width + h * p.dim + c];
        }
        out[q_at + c] = acc * inv;
    }
}
