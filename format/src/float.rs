//! IEEE binary16 and bfloat16 codes (FORMAT.md 5.5): round-to-nearest-even, overflow is an error.

use half::{bf16, f16};

/// The binary16 code of `x`, or `None` when a finite `x` overflows to infinity.
pub fn f16_code(x: f32) -> Option<u16> {
    let h = f16::from_f32(x);
    if h.is_infinite() && x.is_finite() {
        None
    } else {
        Some(h.to_bits())
    }
}

/// The bfloat16 code of `x` (bfloat16 has binary32's range; only values within half an ulp of f32::MAX overflow).
pub fn bf16_code(x: f32) -> Option<u16> {
    let b = bf16::from_f32(x);
    if b.is_infinite() && x.is_finite() {
        None
    } else {
        Some(b.to_bits())
    }
}

pub fn f16_value(code: u16) -> f32 {
    f16::from_bits(code).to_f32()
}

pub fn bf16_value(code: u16) -> f32 {
    bf16::from_bits(code).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_even_and_overflow() {
        assert_eq!(f16_code(1.0), Some(0x3C00));
        assert_eq!(f16_code(65504.0), Some(0x7BFF));
        assert_eq!(f16_code(70000.0), None);
        assert_eq!(f16_code(f32::INFINITY), Some(0x7C00));
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1.0).
        assert_eq!(f16_code(1.0 + 2f32.powi(-11)), Some(0x3C00));
        assert_eq!(bf16_code(1.0 + 2f32.powi(-8)), Some(0x3F80));
        assert_eq!(bf16_value(0x3F81), 1.0078125);
        assert_eq!(bf16_code(f32::MAX), None);
        assert!(f16_value(f16_code(f32::NAN).unwrap()).is_nan());
    }
}
