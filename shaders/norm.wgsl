// LayerNorm over each row of (x + residual): (v - mean) / sqrt(var + eps) * gamma + beta, biased variance,
// both moments by a two-pass workgroup reduction. One workgroup of 64 per row. The moments are taken about
// the row's first value (the shifted-data algorithm) because f32 sums of a constant row need not divide back
// to that constant: the residue, ~1e-7 of the value, divided by sqrt(0 + eps) = 1e-6 for BERT's eps, moved
// outputs by a tenth of gamma where the answer is exactly beta. Shifted, a constant row's differences are
// exactly 0; other rows lose no accuracy (the shift only removes a common offset, which reduces cancellation).

struct Params {
    rows: u32,
    cols: u32,
    has_residual: u32,
    eps: f32,
    grid_width: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> residual: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, 64>;

fn value(i: u32) -> f32 {
    if (p.has_residual != 0u) {
        return x[i] + residual[i];
    }
    return x[i];
}

fn workgroup_sum(v: f32, t: u32) -> f32 {
    partial[t] = v;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (t < s) {
            partial[t] += partial[t + s];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wg.x + wg.y * p.grid_width;
    if (row >= p.rows || p.cols == 0u) {
        return;
    }
    let t = lid.x;
    let base = row * p.cols;
    let shift = value(base);
    var s = 0.0;
    for (var c = t; c < p.cols; c += 64u) {
        s += value(base + c) - shift;
    }
    // The mean minus the shift.
    let mean = workgroup_sum(s, t) / f32(p.cols);
    var q = 0.0;
    for (var c = t; c < p.cols; c += 64u) {
        let d = (value(base + c) - shift) - mean;
        q += d * d;
    }
    let variance = workgroup_sum(q, t) / f32(p.cols);
    let inv = 1.0 / sqrt(variance + p.eps);
    for (var c = t; c < p.cols; c += 64u) {
        out[base + c] = ((value(base + c) - shift) - mean) * inv * gamma[c] + beta[c];
    }
}
