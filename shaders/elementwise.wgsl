// Element-wise ops in place: exact GELU, tanh, ReLU, and the per-column affine of folded BatchNorm.
// One invocation per element on a 2-D grid (large tensors exceed 65535 workgroups in one dimension).

struct Params {
    len: u32,
    width: u32,
    grid_width: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> shift: array<f32>;

fn index(gid: vec3<u32>) -> u32 {
    return gid.x + gid.y * p.grid_width;
}

// erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7), odd-symmetric.
fn erf_approx(v: f32) -> f32 {
    let a = abs(v);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let r = 1.0 - poly * exp(-a * a);
    return select(r, -r, v < 0.0);
}

@compute @workgroup_size(256)
fn gelu(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if (i < p.len) {
        let v = x[i];
        x[i] = 0.5 * v * (1.0 + erf_approx(v * 0.70710678118654752));
    }
}

@compute @workgroup_size(256)
fn tanh_op(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if (i < p.len) {
        // (1 - e^-2|v|) / (1 + e^-2|v|): no overflow for large |v|
        let v = x[i];
        let e = exp(-2.0 * abs(v));
        let r = (1.0 - e) / (1.0 + e);
        x[i] = select(r, -r, v < 0.0);
    }
}

@compute @workgroup_size(256)
fn relu(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if (i < p.len) {
        x[i] = max(x[i], 0.0);
    }
}

@compute @workgroup_size(256)
fn affine(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if (i < p.len) {
        let c = i % p.width;
        x[i] = x[i] * scale[c] + shift[c];
    }
}
