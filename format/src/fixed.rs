//! Signed fixed point `fixed:W.F` (FORMAT.md 5.3), the semantics of MASE's `integer` quantizer.

use crate::encoding::Rounding;

/// Smallest and largest code of a `width`-bit two's complement integer.
pub fn code_range(width: u8) -> (i64, i64) {
    let half = 1i64 << (width - 1);
    (-half, half - 1)
}

/// `clamp(round(x * 2^frac), -2^(W-1), 2^(W-1)-1)`. `None` for NaN, which has no fixed-point code.
/// The product is formed in binary64, where it is exact for every binary32 `x` and `frac <= 64`.
pub fn quantize(x: f32, width: u8, frac: u8, mode: Rounding) -> Option<i32> {
    if x.is_nan() {
        return None;
    }
    let scaled = f64::from(x) * 2f64.powi(i32::from(frac));
    let rounded = match mode {
        Rounding::Nearest => scaled.round(),
        Rounding::Even => scaled.round_ties_even(),
    };
    let (lo, hi) = code_range(width);
    Some(rounded.clamp(lo as f64, hi as f64) as i32)
}

/// `q * 2^-frac` in binary32 (q converted first: exact for widths up to 24 bits).
pub fn dequantize(q: i32, frac: u8) -> f32 {
    q as f32 * 2f32.powi(-i32::from(frac))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The formula of DESIGN.md, written independently with exact rational arithmetic on i128.
    fn reference(x: f32, width: u8, frac: u8, mode: Rounding) -> i64 {
        // x = m * 2^e exactly, with integer m.
        let (m, e) = if x == 0.0 {
            (0i128, 0i32)
        } else {
            let bits = x.to_bits();
            let exp = ((bits >> 23) & 0xFF) as i32;
            let mant = i128::from(bits & 0x7F_FFFF) | if exp == 0 { 0 } else { 1 << 23 };
            let e = if exp == 0 { -149 } else { exp - 150 };
            (if x < 0.0 { -mant } else { mant }, e)
        };
        // y = m * 2^(e + frac); round to integer.
        let shift = e + i32::from(frac);
        let q: i128 = if shift >= 0 {
            if shift > 80 {
                m.signum() * (1i128 << 80)
            } else {
                m << shift
            }
        } else if -shift > 100 {
            0
        } else {
            let d = 1i128 << (-shift);
            let (qt, r) = (m.abs() / d, m.abs() % d);
            let twice = 2 * r;
            let up = match twice.cmp(&d) {
                std::cmp::Ordering::Greater => true,
                std::cmp::Ordering::Less => false,
                std::cmp::Ordering::Equal => mode == Rounding::Nearest || qt % 2 == 1,
            };
            m.signum() * (qt + i128::from(up))
        };
        let (lo, hi) = code_range(width);
        q.clamp(i128::from(lo), i128::from(hi)) as i64
    }

    /// Arbitrary finite floats, plus dyadic values k / 2^j, which land exactly on codes and on ties.
    fn interesting_f32() -> impl Strategy<Value = f32> {
        prop_oneof![
            any::<f32>().prop_filter("finite", |x| x.is_finite()),
            (-(1i32 << 20)..(1 << 20), 0i32..24).prop_map(|(k, j)| k as f32 * 2f32.powi(-j)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn matches_the_formula(x in interesting_f32(),
                               width in 2u8..=32, frac in 0u8..=40, even in any::<bool>()) {
            let mode = if even { Rounding::Even } else { Rounding::Nearest };
            prop_assert_eq!(i64::from(quantize(x, width, frac, mode).unwrap()), reference(x, width, frac, mode));
        }

        #[test]
        fn small_values_round_trip_exactly(q in -128i32..128, frac in 0u8..=20) {
            let x = dequantize(q, frac);
            prop_assert_eq!(quantize(x, 8, frac, Rounding::Nearest), Some(q));
        }

        #[test]
        fn ties_follow_the_mode(k in -1000i32..1000, width in 12u8..=32, frac in 0u8..=8) {
            // x = (k + 1/2) * 2^-frac is exactly halfway between two codes.
            let x = (k as f32 + 0.5) * 2f32.powi(-i32::from(frac));
            let away = if k >= 0 { k + 1 } else { k };
            let even = if k % 2 == 0 { k } else { k + 1 };
            prop_assert_eq!(quantize(x, width, frac, Rounding::Nearest), Some(away));
            prop_assert_eq!(quantize(x, width, frac, Rounding::Even), Some(even));
        }
    }

    #[test]
    fn saturates_at_both_ends() {
        for width in 2..=32u8 {
            let (lo, hi) = code_range(width);
            assert_eq!(
                i64::from(quantize(1e30, width, 0, Rounding::Nearest).unwrap()),
                hi
            );
            assert_eq!(
                i64::from(quantize(-1e30, width, 0, Rounding::Nearest).unwrap()),
                lo
            );
            assert_eq!(
                i64::from(quantize(f32::INFINITY, width, 4, Rounding::Even).unwrap()),
                hi
            );
        }
        // fixed:8.4 holds [-8, 7.9375]
        assert_eq!(quantize(7.99, 8, 4, Rounding::Nearest), Some(127));
        assert_eq!(quantize(-8.5, 8, 4, Rounding::Nearest), Some(-128));
        assert_eq!(quantize(f32::NAN, 8, 4, Rounding::Nearest), None);
        // 2-bit: codes -2..1
        assert_eq!(quantize(0.75, 2, 1, Rounding::Nearest), Some(1)); // 1.5 -> 2 -> clamp 1
        assert_eq!(quantize(-0.75, 2, 1, Rounding::Nearest), Some(-2));
    }
}
