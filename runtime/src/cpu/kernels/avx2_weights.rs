//! The AVX2 tier's per-call work on a panel kernel's weights (the AVX-VNNI tier's too): each block's factor
//! from its scale byte, and the unsigned bias `−128 · Σ codes`. Split from `avx2.rs` (kernel files stay
//! under 1,000 lines).
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use super::reference;

pub(super) fn scale_factors_entry(scales: &[u8], out: &mut [f32]) {
    reference::check_scale_factor_sizes(scales, out);
    // SAFETY: only placed in a table after AVX2 was detected; the sizes are equal.
    unsafe { scale_factors_avx2(scales, out) }
}

/// `reference::scale_factors` eight bytes at a time: 2^(s − 127) is the bit pattern s << 23, except for
/// s = 0 (2^-127, subnormal) and s = 0xFF (NaN), blended in; the last few bytes through the reference.
#[target_feature(enable = "avx2")]
unsafe fn scale_factors_avx2(scales: &[u8], out: &mut [f32]) {
    let (zero, nan) = (_mm256_setzero_si256(), _mm256_set1_epi32(255));
    let (smallest, nan_bits) = (
        _mm256_set1_epi32(0x0040_0000),
        _mm256_set1_epi32(f32::NAN.to_bits() as i32),
    );
    let whole = scales.len() / 8 * 8;
    for i in (0..whole).step_by(8) {
        // SAFETY: bytes and floats i .. i + 8 lie inside both slices (i + 8 <= whole).
        unsafe {
            let s = _mm256_cvtepu8_epi32(_mm_loadl_epi64(scales.as_ptr().add(i).cast()));
            let bits = _mm256_slli_epi32::<23>(s);
            let bits = _mm256_blendv_epi8(bits, smallest, _mm256_cmpeq_epi32(s, zero));
            let bits = _mm256_blendv_epi8(bits, nan_bits, _mm256_cmpeq_epi32(s, nan));
            _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_castsi256_ps(bits));
        }
    }
    reference::scale_factors(&scales[whole..], &mut out[whole..]);
}

pub(super) fn unsigned_bias_entry(codes: &[u8], out: &mut [i32]) {
    reference::check_unsigned_bias_sizes(codes, out);
    // SAFETY: only placed in a table after AVX2 was detected.
    unsafe { unsigned_bias_avx2(codes, out) }
}

/// `reference::panel_unsigned_bias` on AVX2: `vpsadbw` against zero sums a block's codes read as unsigned
/// (`code + 128`, after an XOR of the sign bit) into four partial sums, and
/// `Σ codes = Σ (code + 128) − 32 · 128`.
#[target_feature(enable = "avx2")]
fn unsigned_bias_avx2(codes: &[u8], out: &mut [i32]) {
    let flip = _mm256_set1_epi8(i8::MIN);
    for (block, slot) in codes.chunks_exact(32).zip(out) {
        // SAFETY: `block` is 32 bytes.
        let v = unsafe { _mm256_loadu_si256(block.as_ptr().cast()) };
        let sums = _mm256_sad_epu8(_mm256_xor_si256(v, flip), _mm256_setzero_si256());
        let pair = _mm_add_epi64(
            _mm256_castsi256_si128(sums),
            _mm256_extracti128_si256::<1>(sums),
        );
        let unsigned = (_mm_cvtsi128_si64(pair) + _mm_extract_epi64::<1>(pair)) as i32;
        *slot = -128 * (unsigned - 32 * 128);
    }
}
