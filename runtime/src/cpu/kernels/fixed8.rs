//! The `fixed:8.F` activation quantizer on the x86 tiers (`Kernels::fixed8_codes`): AVX2 (8 lanes) and
//! AVX-512 (16 lanes), each bit for bit `reference::fixed8_codes`, which also takes their ragged tails.
//! Reachable only through the tables `super::x86_tables` builds after detecting the features; the `*_entry`
//! wrappers are the only safe doors in.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use mxrt_format::Rounding;

pub(super) fn fixed8_codes_avx2_entry(row: &[f32], frac: u8, rounding: Rounding, out: &mut [i8]) {
    // SAFETY: only reachable after AVX2 and FMA were detected.
    unsafe { fixed8_codes_avx2(row, frac, rounding, out) }
}

/// `reference::fixed8_codes` 8 lanes at a time, the same steps: `v · 2^frac` (NaN lanes to 0), clamped to
/// ±129, truncated, the exact remainder deciding the rounding (away from zero past a half; on a half, away
/// unless half-to-even and the truncation is even), clamped to the code range, packed to bytes. The
/// `len % 8` tail goes through the reference.
#[target_feature(enable = "avx2,fma")]
unsafe fn fixed8_codes_avx2(row: &[f32], frac: u8, rounding: Rounding, out: &mut [i8]) {
    let n = row.len().min(out.len());
    let whole = n - n % 8;
    let scale = _mm256_set1_ps(2f32.powi(i32::from(frac)));
    let (lo, hi) = (_mm256_set1_ps(-129.0), _mm256_set1_ps(129.0));
    let half = _mm256_set1_ps(0.5);
    let magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
    let (one, minus_one) = (_mm256_set1_epi32(1), _mm256_set1_epi32(-1));
    let even = rounding == Rounding::Even;
    let mut c = 0;
    while c < whole {
        // SAFETY: c + 8 <= whole <= row.len().
        let v = unsafe { _mm256_loadu_ps(row.as_ptr().add(c)) };
        let ordered = _mm256_cmp_ps::<_CMP_ORD_Q>(v, v);
        let s = _mm256_and_ps(_mm256_mul_ps(v, scale), ordered);
        let s = _mm256_min_ps(_mm256_max_ps(s, lo), hi);
        let t = _mm256_cvttps_epi32(s);
        let rest = _mm256_sub_ps(s, _mm256_cvtepi32_ps(t));
        let mag = _mm256_and_ps(rest, magnitude);
        let past = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GT_OQ>(mag, half));
        let tie = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_EQ_OQ>(mag, half));
        let tie_away = if even {
            // t even: a tie stays at t.
            let t_even = _mm256_cmpeq_epi32(_mm256_and_si256(t, one), _mm256_setzero_si256());
            _mm256_andnot_si256(t_even, tie)
        } else {
            tie
        };
        let away = _mm256_or_si256(past, tie_away);
        let negative = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LT_OQ>(rest, _mm256_setzero_ps()));
        let step = _mm256_blendv_epi8(one, minus_one, negative);
        let q = _mm256_add_epi32(t, _mm256_and_si256(away, step));
        let q = _mm256_min_epi32(
            _mm256_max_epi32(q, _mm256_set1_epi32(-128)),
            _mm256_set1_epi32(127),
        );
        // Packing narrows within each 128-bit half: codes 0..3 in bytes 0..3, codes 4..7 in bytes 16..19.
        let words = _mm256_packs_epi32(q, q);
        let bytes = _mm256_packs_epi16(words, words);
        let (low, high) = (
            _mm256_extract_epi32::<0>(bytes).to_le_bytes(),
            _mm256_extract_epi32::<4>(bytes).to_le_bytes(),
        );
        for (o, b) in out[c..c + 8].iter_mut().zip(low.iter().chain(&high)) {
            *o = *b as i8;
        }
        c += 8;
    }
    super::reference::fixed8_codes(&row[whole..n], frac, rounding, &mut out[whole..n]);
}

pub(super) fn fixed8_codes_avx512_entry(row: &[f32], frac: u8, rounding: Rounding, out: &mut [i8]) {
    // SAFETY: only placed in a table after AVX-512F/BW/DQ/VL were detected.
    unsafe { fixed8_codes_avx512(row, frac, rounding, out) }
}

/// `reference::fixed8_codes` 16 lanes at a time, the same steps: `v · 2^frac` (NaN lanes to 0), clamped to
/// ±129, truncated, the exact remainder deciding the rounding (away from zero past a half; on a half, away
/// unless half-to-even and the truncation is even), clamped to the code range, packed to bytes. The
/// `len % 16` tail goes through the reference.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
unsafe fn fixed8_codes_avx512(row: &[f32], frac: u8, rounding: Rounding, out: &mut [i8]) {
    let n = row.len().min(out.len());
    let whole = n - n % 16;
    let scale = _mm512_set1_ps(2f32.powi(i32::from(frac)));
    let (lo, hi) = (_mm512_set1_ps(-129.0), _mm512_set1_ps(129.0));
    let half = _mm512_set1_ps(0.5);
    let even = rounding == Rounding::Even;
    let mut c = 0;
    while c < whole {
        // SAFETY: c + 16 <= whole <= row.len().
        let v = unsafe { _mm512_loadu_ps(row.as_ptr().add(c)) };
        let ordered = _mm512_cmp_ps_mask::<_CMP_ORD_Q>(v, v);
        let s = _mm512_maskz_mov_ps(ordered, _mm512_mul_ps(v, scale));
        let s = _mm512_min_ps(_mm512_max_ps(s, lo), hi);
        let t = _mm512_cvttps_epi32(s);
        let rest = _mm512_sub_ps(s, _mm512_cvtepi32_ps(t));
        let mag = _mm512_abs_ps(rest);
        let past = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(mag, half);
        let tie = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(mag, half);
        let keep_tie = if even {
            // t even: a tie stays at t.
            _mm512_cmpeq_epi32_mask(
                _mm512_and_si512(t, _mm512_set1_epi32(1)),
                _mm512_setzero_si512(),
            )
        } else {
            0
        };
        let away = past | (tie & !keep_tie);
        let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(rest, _mm512_setzero_ps());
        let step = _mm512_mask_mov_epi32(_mm512_set1_epi32(1), negative, _mm512_set1_epi32(-1));
        let q = _mm512_mask_add_epi32(t, away, t, step);
        let q = _mm512_min_epi32(
            _mm512_max_epi32(q, _mm512_set1_epi32(-128)),
            _mm512_set1_epi32(127),
        );
        let bytes = _mm512_cvtepi32_epi8(q);
        // SAFETY: c + 16 <= whole <= out.len(): 16 bytes.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().add(c).cast(), bytes) };
        c += 16;
    }
    super::reference::fixed8_codes(&row[whole..n], frac, rounding, &mut out[whole..n]);
}
