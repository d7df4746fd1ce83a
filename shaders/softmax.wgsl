// Softmax over each row (MLP outputs: a handful of classes, so one invocation per row).

struct Params {
    rows: u32,
    width: u32,
    grid_width: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.x + gid.y * p.grid_width;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.width;
    var m = x[base];
    for (var c = 1u; c < p.width; c++) {
        m = max(m, x[base + c]);
    }
    var s = 0.0;
    for (var c = 0u; c < p.width; c++) {
        let e = exp(x[base + c] - m);
        x[base + c] = e;
        s += e;
    }
    for (var c = 0u; c < p.width; c++) {
        x[base + c] = x[base + c] / s;
    }
}
