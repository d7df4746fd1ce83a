// y = x · Wᵀ + b for any weight encoding, dense or sparse (weights.wgsl decodes in place).
// `main` (many activation rows): 16 activation rows × 16 weight rows per workgroup, the reduction in steps of
// one 32-wide block, both operand tiles staged in workgroup memory; each weight element is decoded once per
// workgroup. `gemv` (at most 4 activation rows): one workgroup of 64 per weight row, the row read once.

struct Params {
    // activation rows, reduction length, output row stride, first output column (= the chunk's first row)
    m: u32,
    k: u32,
    n_out: u32,
    col0: u32,
    has_bias: u32,
    // gemv: workgroups per row of the dispatch grid
    grid_width: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(6) var<storage, read> x: array<f32>;
@group(0) @binding(7) var<storage, read> bias: array<f32>;
@group(0) @binding(8) var<storage, read_write> out: array<f32>;

var<workgroup> xs: array<array<f32, 33>, 16>;
var<workgroup> ws: array<array<f32, 33>, 16>;
// Sparse chunks: index of the first stored code of the current block, per weight row of the tile.
var<workgroup> next_code: array<u32, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i0 = wg.y * 16u;
    let r0 = wg.x * 16u;
    let i = i0 + lid.y;
    let r = r0 + lid.x;
    let sparse = wd.sparse != 0u;
    if (sparse && lid.y == 0u && r0 + lid.x < wd.rows) {
        next_code[lid.x] = w_offsets[r0 + lid.x];
    }
    workgroupBarrier();
    var acc = 0.0;
    let blocks = (p.k + 31u) / 32u;
    for (var j = 0u; j < blocks; j++) {
        let k0 = j * 32u;
        // Each invocation stages two activations and two weight elements.
        for (var h = 0u; h < 2u; h++) {
            let c = lid.x + h * 16u;
            let xi = i0 + lid.y;
            var xv = 0.0;
            if (xi < p.m && k0 + c < p.k) {
                xv = x[xi * p.k + k0 + c];
            }
            xs[lid.y][c] = xv;
            let wr = r0 + lid.y;
            var wv = 0.0;
            if (wr < wd.rows && k0 + c < p.k) {
                if (sparse) {
                    let m = w_masks[wr * wd.blocks_per_row + j];
                    if (((m >> c) & 1u) != 0u) {
                        let idx = next_code[lid.y] + countOneBits(m & ((1u << c) - 1u));
                        wv = w_value(w_code(idx), wr * wd.blocks_per_row + j);
                    }
                } else {
                    wv = w_dense(wr, k0 + c);
                }
            }
            ws[lid.y][c] = wv;
        }
        workgroupBarrier();
        if (sparse && lid.y == 0u && r0 + lid.x < wd.rows) {
            next_code[lid.x] += countOneBits(w_masks[(r0 + lid.x) * wd.blocks_per_row + j]);
        }
        for (var c = 0u; c < 32u; c++) {
            acc += xs[lid.y][c] * ws[lid.x][c];
        }
        workgroupBarrier();
    }
    if (i < p.m && r < wd.rows) {
        let col = p.col0 + r;
        var b = 0.0;
        if (p.has_bias != 0u) {
            b = bias[col];
        }
        out[i * p.n_out + col] = acc + b;
    }
}

var<workgroup> partial: array<vec4<f32>, 64>;

@compute @workgroup_size(64)
fn gemv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = wg.x + wg.y * p.grid_width;
    if (r >= wd.rows) {
        return;
    }
    let t = lid.x;
    var acc = vec4<f32>(0.0);
    for (var c = t; c < p.k; c += 64u) {
        let w = w_at(r, c);
        for (var i = 0u; i < p.m; i++) {
            acc[i] += w * x[i * p.k + c];
        }
    }
    partial[t] = acc;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (t < s) {
            partial[t] += partial[t + s];
        }
        workgroupBarrier();
    }
    if (t < p.m) {
        let col = p.col0 + r;
        var b = 0.0;
        if (p.has_bias != 0u) {
            b = bias[col];
        }
        out[t * p.n_out + col] = partial[0][t] + b;
    }
}
