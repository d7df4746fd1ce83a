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
