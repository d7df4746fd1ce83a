// MXINT8 activations × MXINT8 weights: per 32-element block an exact integer dot product of the codes
// (dot4_i8 on packed words: the native dot4I8Packed where the adapter has it, a polyfill otherwise), then
// the two block scales. Weight codes are read as the u32 words uploaded from the file.
//
// Tiles: 16 activation rows × 16 weight rows per workgroup, one block (8 words) per step.

struct Params {
    m: u32,
    k: u32,
    n_out: u32,
    col0: u32,
    has_bias: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(6) var<storage, read> xq: array<u32>;
@group(0) @binding(7) var<storage, read> x_scale: array<f32>;
@group(0) @binding(8) var<storage, read> bias: array<f32>;
@group(0) @binding(9) var<storage, read_write> out: array<f32>;

var<workgroup> xw: array<array<u32, 8>, 16>;
var<workgroup> ww: array<array<u32, 8>, 16>;
var<workgroup> xf: array<f32, 16>;
var<workgroup> wf: array<f32, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i0 = wg.y * 16u;
    let r0 = wg.x * 16u;
    let t = lid.y * 16u + lid.x;
    let bpr = (p.k + 31u) / 32u;
    var acc = 0.0;
    for (var j = 0u; j < bpr; j++) {
        if (t < 128u) {
            let row = t / 8u;
            let word = t % 8u;
            var v = 0u;
            if (i0 + row < p.m) {
                v = xq[((i0 + row) * bpr + j) * 8u + word];
            }
            xw[row][word] = v;
        } else {
            let row = (t - 128u) / 8u;
            let word = (t - 128u) % 8u;
            var v = 0u;
            if (r0 + row < wd.rows) {
                v = w_elements[((r0 + row) * bpr + j) * 8u + word];
            }
            ww[row][word] = v;
        }
        if (t < 16u) {
            var f = 0.0;
            if (i0 + t < p.m) {
                f = x_scale[(i0 + t) * bpr + j];
            }
            xf[t] = f;
        } else if (t < 32u) {
            let row = t - 16u;
            var f = 0.0;
            if (r0 + row < wd.rows) {
                let b = (r0 + row) * bpr + j;
                // code q stands for q/64 of the scale
                f = scale_value((w_scales[b >> 2u] >> ((b & 3u) * 8u)) & 255u) * (1.0 / 64.0);
            }
            wf[row] = f;
        }
        workgroupBarrier();
        var d = 0;
        for (var w = 0u; w < 8u; w++) {
            d += dot4_i8(xw[lid.y][w], ww[lid.x][w]);
        }
        acc += f32(d) * (xf[lid.y] * wf[lid.x]);
        workgroupBarrier();
    }
    let i = i0 + lid.y;
    let r = r0 + lid.x;
    if (i < p.m && r < wd.rows) {
        let col = p.col0 + r;
        var b = 0.0;
        if (p.has_bias != 0u) {
            b = bias[col];
        }
        out[i * p.n_out + col] = acc + b;
    }
}
