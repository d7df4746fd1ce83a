// Gathers and pooling at the end of an encoder: the first token of each sequence (classification heads), and
// sentence embeddings by masked mean, CLS or masked max, optionally L2-normalised (one workgroup per sequence).

struct Params {
    batch: u32,
    seq: u32,
    width: u32,
    // 0: CLS, 1: mean, 2: max
    mode: u32,
    normalize: u32,
    grid_width: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn first_tokens(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * p.grid_width;
    if (i < p.batch * p.width) {
        let b = i / p.width;
        let c = i % p.width;
        out[i] = x[b * p.seq * p.width + c];
    }
}

@compute @workgroup_size(64)
fn pool(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wg.x + wg.y * p.grid_width;
    if (b >= p.batch) {
        return;
    }
    let t = lid.x;
    var count = 0.0;
    for (var j = 0u; j < p.seq; j++) {
        if (mask[b * p.seq + j] != 0u) {
            count += 1.0;
        }
    }
    var squares = 0.0;
    for (var c = t; c < p.width; c += 64u) {
        var acc = 0.0;
        if (p.mode == 0u) {
            acc = x[b * p.seq * p.width + c];
        } else if (p.mode == 1u) {
            for (var j = 0u; j < p.seq; j++) {
                if (mask[b * p.seq + j] != 0u) {
                    acc += x[(b * p.seq + j) * p.width + c];
                }
            }
            acc = acc / max(count, 1e-9);
        } else {
            acc = bitcast<f32>(0xff800000u);
            for (var j = 0u; j < p.seq; j++) {
                if (mask[b * p.seq + j] != 0u) {
                    acc = max(acc, x[(b * p.seq + j) * p.width + c]);
                }
            }
        }
        out[b * p.width + c] = acc;
        squares += acc * acc;
    }
    partial[t] = squares;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (t < s) {
            partial[t] += partial[t + s];
        }
        workgroupBarrier();
    }
    if (p.normalize != 0u) {
        // torch.nn.functional.normalize: x / max(||x||, 1e-12)
        let norm = max(sqrt(partial[0]), 1e-12);
        for (var c = t; c < p.width; c += 64u) {
            out[b * p.width + c] = out[b * p.width + c] / norm;
        }
    }
}
