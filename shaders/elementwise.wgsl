// Element-wise ops in place: exact GELU, GELU's tanh approximation, tanh, leaky ReLU, ReLU, and the
// per-column affine of folded BatchNorm.
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

// tanh by (1 - e^-2|v|) / (1 + e^-2|v|), odd-symmetric: no overflow for large |v|.
fn tanh_stable(v: f32) -> f32 {
    let e = exp(-2.0 * abs(v));
    let r = (1.0 - e) / (1.0 + e);
    return select(r, -r, v < 0.0);
}

@compute @workgroup_size(256)
fn gelu_tanh(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if (i < p.len) {
        let v = x[i];
        x[i] = 0.5 * v * (1.0 + tanh_stable(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    }
}

@compute @workgroup_size(256)
fn tanh_op(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if (i < p.len) {
        x[i] = tanh_stable(x[i]);
    }
}

@compute @workgroup_size(256)
fn relu(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if (i < p.len) {
        x[i] = max(x[i], 0.0);
    }
}

// Leaky ReLU: the slope's f32 bits travel in the `width` parameter.
@compute @workgroup_size(256)
fn leaky_relu(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if (i < p.len) {
        let v = x[i];
        x[i] = select(v, bitcast<f32>(p.width) * v, v < 0.0);
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
