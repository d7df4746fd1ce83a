//! The AVX-512 routines that prepare a weight matrix for the panel kernels (`cpu::panel_weights`): each
//! block's factor from its scale byte, and each block's unsigned bias from its codes.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use super::avx512::first_lanes16;

pub(super) fn scale_factors_avx512_entry(scales: &[u8], out: &mut [f32]) {
    super::reference::check_scale_factor_sizes(scales, out);
    // SAFETY: only placed in a table after AVX-512F/BW/VL were detected; the sizes are equal.
    unsafe { scale_factors_avx512(scales, out) }
}

/// `reference::scale_factors` sixteen bytes at a time: 2^(s − 127) is the bit pattern s << 23, except for
/// s = 0 (2^-127, subnormal) and s = 0xFF (NaN), put in by mask; the ragged end under a mask.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn scale_factors_avx512(scales: &[u8], out: &mut [f32]) {
    let n = scales.len();
    let (zero, nan) = (_mm512_setzero_si512(), _mm512_set1_epi32(255));
    let (smallest, nan_bits) = (
        _mm512_set1_epi32(0x0040_0000),
        _mm512_set1_epi32(f32::NAN.to_bits() as i32),
    );
    let mut i = 0;
    while i < n {
        let mask = first_lanes16(n - i);
        // SAFETY: masked to the bytes and floats at i .. min(i + 16, n), inside both slices.
        unsafe {
            let s = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, scales.as_ptr().add(i).cast()));
            let bits = _mm512_slli_epi32::<23>(s);
            let bits = _mm512_mask_mov_epi32(bits, _mm512_cmpeq_epi32_mask(s, zero), smallest);
            let bits = _mm512_mask_mov_epi32(bits, _mm512_cmpeq_epi32_mask(s, nan), nan_bits);
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(i), mask, _mm512_castsi512_ps(bits));
        }
        i += 16;
    }
}

pub(super) fn unsigned_bias_avx512_entry(codes: &[u8], out: &mut [i32]) {
    super::reference::check_unsigned_bias_sizes(codes, out);
    // SAFETY: only placed in a table after AVX-512 F/BW were detected.
    unsafe { unsigned_bias_avx512(codes, out) }
}

/// `reference::panel_unsigned_bias` on AVX-512, sixteen blocks (512 codes) at a time: `vpmaddubsw` and
/// `vpmaddwd` against ones sum each four codes (eight partial sums per block, two blocks per register), then
/// three levels of shuffles and adds fold the eight registers into one holding the sixteen blocks' sums.
/// One horizontal reduction per block cost ~10 instructions per block, where this takes about two: at
/// batch 1 the per-call pass over the weights was 3 % of an inference on this tier. A last group of
/// fewer than sixteen blocks goes through the reference.
#[target_feature(enable = "avx512f,avx512bw")]
fn unsigned_bias_avx512(codes: &[u8], out: &mut [i32]) {
    let (ones8, ones16) = (_mm512_set1_epi8(1), _mm512_set1_epi16(1));
    let groups = out.len() / 16;
    for (g, sixteen) in out.chunks_exact_mut(16).take(groups).enumerate() {
        // Register k: the sums of each four codes of blocks 2k (lanes 0-7) and 2k + 1 (lanes 8-15).
        let quads: [__m512i; 8] = std::array::from_fn(|k| {
            // SAFETY: bytes 512 g + 64 k .. + 64 lie inside `codes` (g < out.len() / 16 = codes.len() / 512).
            let v = unsafe { _mm512_loadu_si512(codes.as_ptr().add(512 * g + 64 * k).cast()) };
            _mm512_madd_epi16(_mm512_maddubs_epi16(ones8, v), ones16)
        });
        // Each 128-bit chunk c of register i: block 4i + c, four partial sums.
        let fours: [__m512i; 4] = std::array::from_fn(|i| {
            let (a, b) = (quads[2 * i], quads[2 * i + 1]);
            _mm512_add_epi32(
                _mm512_shuffle_i32x4::<0b10_00_10_00>(a, b),
                _mm512_shuffle_i32x4::<0b11_01_11_01>(a, b),
            )
        });
        // Chunk c of register j: blocks 8j + c and 8j + 4 + c, two partial sums each.
        let twos: [__m512i; 2] = std::array::from_fn(|j| {
            let (x, y) = (fours[2 * j], fours[2 * j + 1]);
            _mm512_add_epi32(_mm512_unpacklo_epi64(x, y), _mm512_unpackhi_epi64(x, y))
        });
        // Lane 4c + t: block c + 4t; then into block order.
        let (x, y) = (_mm512_castsi512_ps(twos[0]), _mm512_castsi512_ps(twos[1]));
        let sums = _mm512_add_epi32(
            _mm512_castps_si512(_mm512_shuffle_ps::<0b10_00_10_00>(x, y)),
            _mm512_castps_si512(_mm512_shuffle_ps::<0b11_01_11_01>(x, y)),
        );
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        let sums = _mm512_permutexvar_epi32(order, sums);
        let bias = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32::<7>(sums));
        // SAFETY: 16 i32 into a 16-entry chunk.
        unsafe { _mm512_storeu_si512(sixteen.as_mut_ptr().cast(), bias) };
    }
    let done = 16 * groups;
    if out.len() > done {
        out[done..].copy_from_slice(&super::reference::panel_unsigned_bias(&codes[32 * done..]));
    }
}
