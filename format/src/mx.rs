//! OCP MX block quantization (FORMAT.md 5.2): encoding bit-identical to Microsoft's microxcaling reference,
//! element-code tables, and exact decoding.

use crate::encoding::{MxElem, Rounding};

/// Elements per block (fixed by OCP MX v1.0 and by every .mxrt layout version).
pub const BLOCK: usize = 32;
/// Scale byte meaning NaN (E8M0 0xFF).
pub const SCALE_NAN: u8 = 0xFF;
const FP32_MIN_NORMAL: f32 = f32::MIN_POSITIVE;

/// Parameters of an element type, named as in the reference's `_get_format_params`.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Exponent bits (0 for the integer types).
    pub ebits: u32,
    /// "mbits" of the reference: sign + implicit one + mantissa bits (for ints: all bits).
    pub mbits: u32,
    /// Largest exponent of the element type, subtracted from the block's exponent.
    pub emax: i32,
    /// Largest magnitude.
    pub max_norm: f32,
}

/// The element type's parameters (what a GPU quantizer needs to reproduce [`quantize_block`]).
pub fn params(elem: MxElem) -> Params {
    let p = |ebits, mbits, emax, max_norm| Params {
        ebits,
        mbits,
        emax,
        max_norm,
    };
    match elem {
        MxElem::Int8 => p(0, 8, 0, 127.0 / 64.0),
        MxElem::Int4 => p(0, 4, 0, 7.0 / 4.0),
        MxElem::Fp8E4M3 => p(4, 5, 8, 448.0),
        MxElem::Fp8E5M2 => p(5, 4, 15, 57344.0),
        MxElem::Fp6E3M2 => p(3, 4, 4, 28.0),
        MxElem::Fp6E2M3 => p(2, 5, 2, 7.5),
        MxElem::Fp4 => p(2, 3, 2, 6.0),
    }
}

/// `emax` of the MXINT8 element (codes q/64 with |q| <= 127: largest power of two 1 = 2^0).
pub const MXINT8_EMAX: i32 = 0;

/// Exact 2^e as binary32 for e in [-149, 127] (2^-127 is subnormal, still exact).
#[inline]
pub fn pow2f(e: i32) -> f32 {
    debug_assert!((-149..=127).contains(&e));
    if e >= -126 {
        f32::from_bits(((e + 127) as u32) << 23)
    } else {
        f32::from_bits(1u32 << (e + 149))
    }
}

/// `floor(log2f(x))` where log2f is the binary32 logarithm rounded to nearest, as PyTorch computes it.
/// (A value just below a power of two can round up to it: that is the reference behaviour we reproduce.)
pub fn floor_log2f(x: f32) -> f32 {
    ((x as f64).log2() as f32).floor()
}

/// For each binary32 exponent field: the smallest bit pattern with that exponent whose binary32 logarithm
/// ([`floor_log2f`]) rounds up to the next integer, or `u32::MAX` where none does (and for the subnormal and
/// NaN/infinity fields). Built once from [`floor_log2f`] itself (monotone, so a binary search per exponent);
/// with it `floor(log2f(x))` of a normal value is its exponent plus one comparison ([`floor_log2f_fast`];
/// GPU kernels take the same table).
#[inline]
pub fn log2_round_up_table() -> &'static [u32; 256] {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = [u32::MAX; 256];
        for (e, slot) in table.iter_mut().enumerate().take(255).skip(1) {
            let base = (e as u32) << 23;
            let next = (e as f32) - 127.0 + 1.0;
            let rounds_up = |m: u32| floor_log2f(f32::from_bits(base | m)) >= next;
            if !rounds_up((1 << 23) - 1) {
                continue;
            }
            let (mut lo, mut hi) = (0u32, (1 << 23) - 1);
            while lo < hi {
                let mid = (lo + hi) / 2;
                if rounds_up(mid) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            *slot = base | lo;
        }
        table
    })
}

/// [`floor_log2f`] for positive values, exactly, without a logarithm for normal ones: the exponent, plus
/// one at and above the exponent's [`log2_round_up_table`] entry. Other values take [`floor_log2f`].
#[inline]
pub fn floor_log2f_fast(x: f32) -> f32 {
    let bits = x.to_bits();
    let field = (bits >> 23) as usize;
    if bits >> 31 != 0 || field == 0 || field == 255 {
        return floor_log2f(x);
    }
    let up = bits >= log2_round_up_table()[field];
    (field as i32 - 127 + i32::from(up)) as f32
}

/// torch.sign: 1, -1, or 0 for ±0; NaN stays NaN through the product below.
fn sign(v: f32) -> f32 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// The reference's `_round_mantissa` (without clamping), in binary32.
pub(crate) fn round_like_reference(v: f32, mode: Rounding) -> f32 {
    let a = v.abs();
    let up = (a + 0.5).floor();
    match mode {
        Rounding::Nearest => sign(v) * up,
        Rounding::Even => {
            let tie = if (a - 0.5) % 2.0 == 0.0 { 1.0 } else { 0.0 };
            sign(v) * (up - tie)
        }
    }
}

/// The block's shared exponent as in the reference, or `None` for a NaN scale.
fn shared_exponent(block: &[f32], emax: i32) -> Option<i32> {
    let mut amax = 0.0f32;
    for &x in block {
        if x.is_nan() {
            return None;
        }
        amax = amax.max(x.abs());
    }
    shared_exponent_of_max(amax, emax)
}

/// The shared exponent of a block whose largest magnitude is `amax` (no NaN in the block), for an element
/// type with `emax` (MXINT8: [`MXINT8_EMAX`]); `None` for a NaN scale. For SIMD quantizers that find `amax`
/// themselves.
#[inline]
pub fn shared_exponent_of_max(amax: f32, emax: i32) -> Option<i32> {
    let amax = if amax == 0.0 { FP32_MIN_NORMAL } else { amax };
    let e = floor_log2f_fast(amax) - emax as f32;
    if e.is_nan() || e > 127.0 {
        None
    } else {
        Some((e as i32).max(-127))
    }
}

/// Quantizes one block (up to 32 values; missing ones are the zero padding) into its scale byte and element
/// codes (low `elem.bits()` bits of each `u32`).
pub fn quantize_block(block: &[f32], elem: MxElem, mode: Rounding, codes: &mut [u32; BLOCK]) -> u8 {
    debug_assert!(block.len() <= BLOCK);
    let p = params(elem);
    let Some(shared_exp) = shared_exponent(block, p.emax) else {
        codes.fill(0);
        return SCALE_NAN;
    };
    let scale = pow2f(shared_exp);
    codes.fill(0);
    for (code, &x) in codes.iter_mut().zip(block) {
        let y = x / scale;
        *code = if p.ebits == 0 {
            quantize_int(y, p, mode)
        } else {
            quantize_fp(y, p, mode)
        };
    }
    (shared_exp + 127) as u8
}

fn quantize_int(y: f32, p: Params, mode: Rounding) -> u32 {
    let q_max = ((1i32 << (p.mbits - 1)) - 1) as f32;
    let q = round_like_reference(y * (1u32 << (p.mbits - 2)) as f32, mode).clamp(-q_max, q_max);
    (q as i32 as u32) & ((1u32 << p.mbits) - 1)
}

fn quantize_fp(y: f32, p: Params, mode: Rounding) -> u32 {
    let min_exp = 2 - (1i32 << (p.ebits - 1));
    let private_exp =
        (floor_log2f_fast(y.abs() + if y == 0.0 { 1.0 } else { 0.0 }) as i32).max(min_exp);
    let step = pow2f(private_exp);
    let m_scale = (1u32 << (p.mbits - 2)) as f32;
    let n = round_like_reference(y / step * m_scale, mode);
    let value = (n / m_scale * step).clamp(-p.max_norm, p.max_norm);
    encode_fp_value(value, p)
}

/// The code of a value that is exactly representable in the element type.
fn encode_fp_value(value: f32, p: Params) -> u32 {
    let m = p.mbits - 2; // stored mantissa bits
    let bits = 1 + p.ebits + m;
    let sign = u32::from(value.is_sign_negative()) << (bits - 1);
    let a = value.abs();
    if a == 0.0 {
        return sign;
    }
    let bias = (1i32 << (p.ebits - 1)) - 1;
    let min_exp = 1 - bias;
    let e = ((a.to_bits() >> 23) as i32) - 127; // `a` is a normal binary32 (>= 2^-16)
    if e < min_exp {
        let mant = a / pow2f(min_exp - m as i32);
        sign | mant as u32
    } else {
        let mant = (a / pow2f(e) - 1.0) * (1u32 << m) as f32;
        sign | (((e + bias) as u32) << m) | mant as u32
    }
}

/// Value of every code of an element type, indexed by code (16, 64 or 256 entries).
pub fn code_table(elem: MxElem) -> Vec<f32> {
    let p = params(elem);
    let bits = elem.bits();
    (0..1u32 << bits).map(|c| decode_code(c, bits, p)).collect()
}

fn decode_code(code: u32, bits: u32, p: Params) -> f32 {
    if p.ebits == 0 {
        return crate::bits::sign_extend(code, bits) as f32 / (1u32 << (bits - 2)) as f32;
    }
    let m = p.mbits - 2;
    let neg = code >> (bits - 1) & 1 == 1;
    let exp_field = (code >> m) & ((1 << p.ebits) - 1);
    let mant = code & ((1 << m) - 1);
    let bias = (1i32 << (p.ebits - 1)) - 1;
    let all_ones = exp_field == (1 << p.ebits) - 1;
    let magnitude = match (p.ebits, m) {
        (5, 2) if all_ones => {
            if mant == 0 {
                f32::INFINITY
            } else {
                f32::NAN
            }
        }
        (4, 3) if all_ones && mant == 7 => f32::NAN,
        _ if exp_field == 0 => mant as f32 * pow2f(1 - bias - m as i32),
        _ => (1.0 + mant as f32 / (1u32 << m) as f32) * pow2f(exp_field as i32 - bias),
    };
    if neg {
        -magnitude
    } else {
        magnitude
    }
}

/// The binary32 value of a scale byte: 2^(s-127), NaN for 0xFF.
#[inline]
pub fn scale_value(scale: u8) -> f32 {
    if scale == SCALE_NAN {
        f32::NAN
    } else {
        pow2f(i32::from(scale) - 127)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_quant(block: &[f32], elem: MxElem, mode: Rounding) -> Vec<f32> {
        let mut codes = [0u32; BLOCK];
        let s = quantize_block(block, elem, mode, &mut codes);
        let table = code_table(elem);
        codes[..block.len()]
            .iter()
            .map(|&c| table[c as usize] * scale_value(s))
            .collect()
    }

    #[test]
    fn fp_codes_are_the_ocp_ones() {
        let t = code_table(MxElem::Fp8E4M3);
        assert_eq!(t[0x7E], 448.0);
        assert!(t[0x7F].is_nan() && t[0xFF].is_nan());
        assert_eq!(t[0x01], 2f32.powi(-9)); // smallest subnormal
        assert_eq!(t[0x08], 2f32.powi(-6)); // smallest normal
        let t = code_table(MxElem::Fp8E5M2);
        assert_eq!(t[0x7B], 57344.0);
        assert_eq!(t[0x7C], f32::INFINITY);
        assert!(t[0x7D].is_nan());
        assert_eq!(code_table(MxElem::Fp6E3M2)[0x1F], 28.0);
        assert_eq!(code_table(MxElem::Fp6E2M3)[0x1F], 7.5);
        let fp4 = code_table(MxElem::Fp4);
        assert_eq!(fp4[..8], [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]);
        assert_eq!(fp4[0xF], -6.0);
        assert_eq!(code_table(MxElem::Int8)[0x80], -2.0);
        assert_eq!(code_table(MxElem::Int4)[0x7], 1.75);
    }

    #[test]
    fn every_finite_code_encodes_back_to_itself() {
        for elem in MxElem::ALL
            .into_iter()
            .filter(|e| !matches!(e, MxElem::Int8 | MxElem::Int4))
        {
            let p = params(elem);
            for (code, v) in code_table(elem).into_iter().enumerate() {
                if v.is_finite() {
                    assert_eq!(
                        encode_fp_value(v, p),
                        code as u32,
                        "{elem:?} code {code:#x} value {v}"
                    );
                }
            }
        }
    }

    #[test]
    fn mxint8_matches_the_formula_of_design_md() {
        // shared_exp = floor(log2(4.0)) = 2; q = round(x / 4 * 64).
        let mut block = vec![4.0f32, -1.0, 0.03125, 0.0];
        block.resize(32, 0.5);
        let mut codes = [0u32; 32];
        let s = quantize_block(&block, MxElem::Int8, Rounding::Nearest, &mut codes);
        assert_eq!(s, 127 + 2);
        assert_eq!(codes[0] as u8 as i8, 64);
        assert_eq!(codes[1] as u8 as i8, -16);
        assert_eq!(codes[2] as u8 as i8, 1); // 0.5 rounds away from zero
        assert_eq!(codes[4] as u8 as i8, 8);
        let even = fake_quant(&block, MxElem::Int8, Rounding::Even);
        assert_eq!(even[2], 0.0); // 0.5 rounds to even
    }

    #[test]
    fn saturation_never_produces_minus_128() {
        let block = [-1.999f32; 32];
        let mut codes = [0u32; 32];
        quantize_block(&block, MxElem::Int8, Rounding::Nearest, &mut codes);
        assert!(codes.iter().all(|&c| c as u8 as i8 == -127), "{codes:?}");
    }

    #[test]
    fn float32_log2_rounding_is_reproduced() {
        // 8 - 2^-21 has log2 = 3 - 1.7e-7, which rounds to 3.0 in binary32: the block exponent is 3, not 2.
        let x = 8.0f32 - 2f32.powi(-21);
        let mut codes = [0u32; 32];
        assert_eq!(
            quantize_block(&[x], MxElem::Int8, Rounding::Nearest, &mut codes),
            127 + 3
        );
        assert_eq!(codes[0], 64);
    }

    #[test]
    fn nan_and_infinity_make_a_nan_block() {
        let mut codes = [0u32; 32];
        assert_eq!(
            quantize_block(
                &[1.0, f32::NAN],
                MxElem::Int8,
                Rounding::Nearest,
                &mut codes
            ),
            SCALE_NAN
        );
        assert_eq!(
            quantize_block(&[f32::INFINITY], MxElem::Fp4, Rounding::Nearest, &mut codes),
            SCALE_NAN
        );
        assert!(scale_value(SCALE_NAN).is_nan());
    }

    #[test]
    fn zero_and_tiny_blocks_clamp_the_scale() {
        let mut codes = [0u32; 32];
        // all-zero block: log2(FP32_MIN_NORMAL) = -126, minus emax 8 -> clamped to -127.
        assert_eq!(
            quantize_block(&[0.0; 32], MxElem::Fp8E4M3, Rounding::Nearest, &mut codes),
            0
        );
        assert_eq!(
            quantize_block(&[0.0; 32], MxElem::Int8, Rounding::Nearest, &mut codes),
            1
        );
        assert_eq!(scale_value(0), f32::from_bits(1 << 22));
    }

    #[test]
    fn mxint8_emax_constant_is_the_element_parameter() {
        assert_eq!(params(MxElem::Int8).emax, MXINT8_EMAX);
    }
}

#[cfg(test)]
mod floor_log2_tests {
    use super::*;

    /// The table path equals the logarithm: every mantissa of five exponents (around 1, the MXINT8 range, and
    /// both ends), 4096 patterns each side of every exponent's round-up boundary, and every exponent's ends.
    #[test]
    fn floor_log2f_fast_is_floor_log2f() {
        let check = |bits: u32| {
            let x = f32::from_bits(bits);
            assert_eq!(
                floor_log2f_fast(x).to_bits(),
                floor_log2f(x).to_bits(),
                "{x:e} ({bits:#010x})"
            );
        };
        for field in [1u32, 124, 127, 130, 254] {
            for m in 0..1 << 23 {
                check(field << 23 | m);
            }
        }
        let table = log2_round_up_table();
        for field in 1u32..255 {
            check(field << 23);
            check(field << 23 | ((1 << 23) - 1));
            if table[field as usize] != u32::MAX {
                let edge = table[field as usize];
                for b in
                    edge.saturating_sub(4096)..=(edge + 4096).min(field << 23 | ((1 << 23) - 1))
                {
                    check(b);
                }
            }
        }
        // Values just below 8 round up (the 8 - 2^-21 quirk), as do the largest exponents; just below 2 none
        // does. The subnormal / zero / infinity fallbacks hold.
        assert!(table[254] != u32::MAX && table[130] != u32::MAX && table[127] == u32::MAX);
        for x in [0.0f32, 1e-45, 1e-40, f32::INFINITY, f32::MIN_POSITIVE] {
            check(x.to_bits());
        }
    }
}
