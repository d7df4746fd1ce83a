// Activation quantization at a linear layer's input, as the recipe says (DESIGN.md "Numerics"): MX blocks of
// 32 along each row with the reference's shared exponent and rounding, or fixed point per element.
// `fake_quant` writes the dequantized values; `mxint8_codes` writes MXINT8 codes packed four to a word and
// each block's factor 2^(s-127)/64 for the integer matmul. One invocation per block of 32.

struct Params {
    rows: u32,
    cols: u32,
    blocks_per_row: u32,
    // 0: MX, 1: fixed point
    mode: u32,
    // MX element: exponent bits (0 for integers), mantissa bits as the reference counts them, emax
    ebits: u32,
    mbits: u32,
    emax: i32,
    // 0: nearest (half away from zero), 1: half to even
    even: u32,
    max_norm: f32,
    // fixed point: 2^F, 2^-F, the code range
    frac_up: f32,
    frac_down: f32,
    lo: f32,
    hi: f32,
    // invocations per row of the dispatch grid
    grid_width: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// For each binary32 exponent field e: the smallest bit pattern with that exponent whose binary32 log2
// rounds up to the next integer (0xffffffff: none). floor(log2f(x)) is then exact (FORMAT.md 5.2).
@group(0) @binding(2) var<storage, read> log2_round_up: array<u32, 256>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> out_scale: array<f32>;
@group(0) @binding(5) var<storage, read_write> out_codes: array<u32>;

fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// floor(log2f(v)) for v > 0 as the reference computes it; subnormals count as -127 (the scale clamps there).
fn floor_log2f(v: f32) -> i32 {
    let b = bitcast<u32>(v);
    let e = b >> 23u;
    if (e == 0u) {
        return -127;
    }
    if (e == 255u) {
        return 128;
    }
    return i32(e) - 127 + select(0, 1, b >= log2_round_up[e]);
}

// Exact 2^e for e in [-149, 127].
fn pow2(e: i32) -> f32 {
    if (e >= -126) {
        return bitcast<f32>(u32(e + 127) << 23u);
    }
    return bitcast<f32>(1u << u32(e + 149));
}

// The reference's rounding on binary32: sign(v) * floor(|v| + 0.5), or half to even.
fn round_ref(v: f32) -> f32 {
    let a = abs(v);
    var r = floor(a + 0.5);
    if (p.even != 0u) {
        let fl = floor(a);
        if (a - fl == 0.5 && fl - 2.0 * floor(fl * 0.5) == 0.0) {
            r = r - 1.0;
        }
    }
    return sign(v) * r;
}

// Round to an integer exactly (any magnitude), half away from zero or half to even.
fn round_exact(v: f32) -> f32 {
    if (abs(v) >= 8388608.0) {
        return v;
    }
    let t = trunc(v);
    let f = abs(v - t);
    var up = f > 0.5;
    if (f == 0.5) {
        up = p.even == 0u || (t - 2.0 * trunc(t * 0.5)) != 0.0;
    }
    return select(t, t + sign(v), up);
}

// The block's shared exponent, or 1000 for a NaN scale.
fn shared_exponent(base: u32, n: u32) -> i32 {
    var amax = 0.0;
    for (var c = 0u; c < n; c++) {
        let v = x[base + c];
        if (is_nan(v)) {
            return 1000;
        }
        amax = max(amax, abs(v));
    }
    if (amax == 0.0) {
        amax = bitcast<f32>(0x00800000u);
    }
    let e = floor_log2f(amax) - p.emax;
    if (e > 127) {
        return 1000;
    }
    return max(e, -127);
}

// y (already divided by the block scale) quantized to the element type, as a value.
fn quantize_element(y: f32) -> f32 {
    if (p.ebits == 0u) {
        let m = pow2(i32(p.mbits) - 2);
        let q_max = pow2(i32(p.mbits) - 1) - 1.0;
        return clamp(round_ref(y * m), -q_max, q_max) / m;
    }
    let min_exp = 2 - (1 << (p.ebits - 1u));
    var a = abs(y);
    if (a == 0.0) {
        a = 1.0;
    }
    let private_exp = max(floor_log2f(a), min_exp);
    let m_scale = pow2(i32(p.mbits) - 2);
    let n = round_ref(y * pow2(-private_exp) * m_scale);
    return clamp(n / m_scale * pow2(private_exp), -p.max_norm, p.max_norm);
}

fn block_of(gid: vec3<u32>) -> u32 {
    return gid.x + gid.y * p.grid_width;
}

@compute @workgroup_size(64)
fn fake_quant(@builtin(global_invocation_id) gid: vec3<u32>) {
    let id = block_of(gid);
    if (id >= p.rows * p.blocks_per_row) {
        return;
    }
    let row = id / p.blocks_per_row;
    let c0 = (id % p.blocks_per_row) * 32u;
    let n = min(32u, p.cols - c0);
    let base = row * p.cols + c0;
    if (p.mode == 1u) {
        for (var c = 0u; c < n; c++) {
            let v = x[base + c];
            if (is_nan(v)) {
                out[base + c] = v;
            } else {
                out[base + c] = clamp(round_exact(v * p.frac_up), p.lo, p.hi) * p.frac_down;
            }
        }
        return;
    }
    let e = shared_exponent(base, n);
    if (e == 1000) {
        for (var c = 0u; c < n; c++) {
            out[base + c] = bitcast<f32>(0x7fc00000u);
        }
        return;
    }
    for (var c = 0u; c < n; c++) {
        out[base + c] = quantize_element(x[base + c] * pow2(-e)) * pow2(e);
    }
}

@compute @workgroup_size(64)
fn mxint8_codes(@builtin(global_invocation_id) gid: vec3<u32>) {
    let id = block_of(gid);
    if (id >= p.rows * p.blocks_per_row) {
        return;
    }
    let row = id / p.blocks_per_row;
    let c0 = (id % p.blocks_per_row) * 32u;
    let n = min(32u, p.cols - c0);
    let base = row * p.cols + c0;
    let e = shared_exponent(base, n);
    // codes: 8 words per block, the ragged end zero-padded
    var packed: array<u32, 8>;
    for (var w = 0u; w < 8u; w++) {
        packed[w] = 0u;
    }
    if (e == 1000) {
        out_scale[id] = bitcast<f32>(0x7fc00000u);
    } else {
        let down = pow2(-e);
        for (var c = 0u; c < n; c++) {
            let q = clamp(round_ref(x[base + c] * down * 64.0), -127.0, 127.0);
            packed[c / 4u] |= (bitcast<u32>(i32(q)) & 255u) << ((c % 4u) * 8u);
        }
        out_scale[id] = pow2(e) * (1.0 / 64.0);
    }
    for (var w = 0u; w < 8u; w++) {
        out_codes[id * 8u + w] = packed[w];
    }
}
