//! Scalar reference kernels: obviously right, and the oracle every fast path is tested against.

/// Sequential f32 dot product.
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0.0, |acc, (x, y)| acc + x * y)
}

/// Dot product of bytes read as two's complement i8, accumulated in i32 (exact for n < 2^17).
pub fn dot_i8(a: &[u8], b: &[u8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(x as i8) * i32::from(y as i8))
        .sum()
}

/// `2^(sa-127) * 2^(sw-127) / 4096`: the real value of one unit of an MXINT8 × MXINT8 block dot product
/// (each code is q/64 times its scale). Exact where the result is a normal f32, +inf above, rounded once
/// below; NaN if either scale is NaN.
pub fn pair_scale(sa: u8, sw: u8) -> f32 {
    if sa == 0xFF || sw == 0xFF {
        return f32::NAN;
    }
    let e = i32::from(sa) + i32::from(sw) - 254 - 12;
    if e > 127 {
        f32::INFINITY // beyond binary32, as the product of the two scales would be
    } else if e >= -126 {
        f32::from_bits(((e + 127) as u32) << 23)
    } else {
        2f64.powi(e) as f32 // subnormal or zero, rounded once
    }
}

/// Σ over blocks j of `dot(a_j, w_j) as f32 * pair_scale(sa_j, sw_j)`, in block order.
pub fn mxint8_dot(a_codes: &[u8], a_scales: &[u8], w_codes: &[u8], w_scales: &[u8]) -> f32 {
    let mut acc = 0.0f32;
    for (j, (&sa, &sw)) in a_scales.iter().zip(w_scales).enumerate() {
        let d = dot_i8(&a_codes[j * 32..j * 32 + 32], &w_codes[j * 32..j * 32 + 32]);
        acc += d as f32 * pair_scale(sa, sw);
    }
    acc
}
