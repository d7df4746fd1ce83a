//! The AVX2 tier's panel quantizer (also the AVX-VNNI tier's): up to 16 rows of activations straight into
//! a panel of the integer kernels' layout, bit for bit `reference::mxint8_quantize_panel`.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use mxrt_format::{mx, Rounding};

pub(super) fn mxint8_quantize_panel_entry(
    rows: &[f32],
    cols: usize,
    rounding: Rounding,
    flip: u8,
    codes: &mut [u8],
    factors: &mut [f32],
) {
    let real = super::reference::check_quantize_panel_sizes(rows, cols, codes, factors);
    // SAFETY: only placed in a table after AVX2 and FMA were detected; sizes checked above.
    unsafe { mxint8_quantize_panel_avx2(rows, (cols, real), rounding, flip, codes, factors) }
}

/// One block column of the panel at a time: the rows' largest magnitudes give their shared exponents eight
/// at a time ([`group_exponents`]); each row's 32 codes are made in one register (the ragged last block
/// loaded under a mask, its padding zeros) and eight rows' registers are transposed into the halves of the
/// block's eight panel lines ([`code_groups`]). The division by the power-of-two scale is a multiplication
/// by its reciprocal (the same correctly rounded value of x · 2^-e: 2^-e is exact for every exponent,
/// −127 ..= 127) and the rounding a conversion ([`codes_even`]): the block quantizer's division and
/// emulated rounding made a quarter of the integer path's time on this tier.
#[target_feature(enable = "avx2,fma")]
unsafe fn mxint8_quantize_panel_avx2(
    rows: &[f32],
    (cols, real): (usize, usize),
    rounding: Rounding,
    flip: u8,
    codes: &mut [u8],
    factors: &mut [f32],
) {
    let load = |i: usize, j: usize| -> [__m256; 4] {
        let p = rows.as_ptr().wrapping_add(i * cols + 32 * j);
        std::array::from_fn(|k| {
            let left = cols.saturating_sub(32 * j + 8 * k).min(8) as i32;
            // Lane l is loaded where l < left (its sign bit set), zero elsewhere.
            let mask = _mm256_cmpgt_epi32(
                _mm256_set1_epi32(left),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            );
            // SAFETY: only lanes below column `cols` of row i < real are read (block j starts inside the
            // row), all inside `rows`; masked-off lanes are not accessed.
            unsafe { _mm256_maskload_ps(p.wrapping_add(8 * k), mask) }
        })
    };
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let flip_bytes = _mm256_set1_epi8(flip as i8);
    for j in 0..cols.div_ceil(32) {
        let mut magnitudes = [_mm256_setzero_ps(); 16];
        let mut nan = 0u32;
        for (i, m) in magnitudes.iter_mut().enumerate().take(real) {
            let v = load(i, j);
            // Unordered where either operand's lane is NaN.
            let unordered = _mm256_or_ps(
                _mm256_cmp_ps::<_CMP_UNORD_Q>(v[0], v[1]),
                _mm256_cmp_ps::<_CMP_UNORD_Q>(v[2], v[3]),
            );
            nan |= u32::from(_mm256_movemask_ps(unordered) != 0) << i;
            let largest = v.map(|x| _mm256_and_ps(x, abs_mask));
            *m = _mm256_max_ps(
                _mm256_max_ps(largest[0], largest[1]),
                _mm256_max_ps(largest[2], largest[3]),
            );
        }
        let (mut exponents, mut valid) = ([0i32; 16], 0u32);
        for half in 0..2 {
            let rows: &[__m256; 8] = magnitudes[8 * half..8 * half + 8]
                .try_into()
                .expect("eight rows");
            let (e, v) = group_exponents(
                lane_maxima(rows),
                nan >> (8 * half),
                real.saturating_sub(8 * half).min(8),
            );
            exponents[8 * half..8 * half + 8].copy_from_slice(&e);
            valid |= v << (8 * half);
        }
        let mut row_codes = [flip_bytes; 16]; // padding rows: code 0
        for (i, &e) in exponents.iter().enumerate().take(real) {
            let (scale, bytes) = match (valid & (1 << i) != 0).then_some(e) {
                Some(e) => ((e + 127) as u8, block_codes(load(i, j), e, rounding)),
                None => (mx::SCALE_NAN, _mm256_setzero_si256()),
            };
            row_codes[i] = _mm256_xor_si256(bytes, flip_bytes);
            factors[16 * j + i] = super::reference::act_scale(scale);
        }
        factors[16 * j + real..16 * j + 16].fill(0.0);
        for (h, eight) in row_codes.chunks_exact(8).enumerate() {
            let eight: &[__m256i; 8] = eight.try_into().expect("eight rows");
            for (q, line) in code_groups(eight).iter().enumerate() {
                // SAFETY: rows 8h..8h + 8 of line q of block j: bytes 512 j + 64 q + 32 h .. + 32 <=
                // 512 bpr <= codes.len().
                unsafe {
                    _mm256_storeu_si256(
                        codes.as_mut_ptr().add(512 * j + 64 * q + 32 * h).cast(),
                        *line,
                    )
                };
            }
        }
    }
}

/// `mx::shared_exponent_of_max` of up to 8 rows' largest magnitudes at once, as the AVX-512 tier's 16-lane
/// version computes it: the exponents, and the mask of lanes that have one (not the rows flagged in `nan`,
/// none from `count` ≤ 8 on, none past 127: a NaN scale). For normal maxima the exponent field plus one
/// where the value lies at or above the field's `mx::log2_round_up_table` entry (a gather), minus
/// `MXINT8_EMAX`, at least −127; zero is the smallest normal; subnormal and infinite maxima take the scalar
/// function.
#[target_feature(enable = "avx2")]
fn group_exponents(amax: __m256, nan: u32, count: usize) -> ([i32; 8], u32) {
    let table = mx::log2_round_up_table();
    let v = amax;
    let zero = _mm256_cmp_ps::<_CMP_EQ_OQ>(v, _mm256_setzero_ps());
    let v = _mm256_blendv_ps(v, _mm256_set1_ps(f32::MIN_POSITIVE), zero);
    let bits = _mm256_castps_si256(v);
    let field = _mm256_srli_epi32::<23>(bits);
    // SAFETY: every lane's field is below 256 (the maxima are not negative): inside the 256-entry table.
    let threshold = unsafe { _mm256_i32gather_epi32::<4>(table.as_ptr().cast(), field) };
    // bits >= threshold, unsigned (a threshold of u32::MAX means never): max(bits, threshold) == bits.
    let up = _mm256_and_si256(
        _mm256_cmpeq_epi32(_mm256_max_epu32(bits, threshold), bits),
        _mm256_set1_epi32(1),
    );
    let floor = _mm256_add_epi32(_mm256_sub_epi32(field, _mm256_set1_epi32(127)), up);
    let e = _mm256_max_epi32(
        _mm256_sub_epi32(floor, _mm256_set1_epi32(mx::MXINT8_EMAX)),
        _mm256_set1_epi32(-127),
    );
    let special = _mm256_or_si256(
        _mm256_cmpeq_epi32(field, _mm256_setzero_si256()),
        _mm256_cmpeq_epi32(field, _mm256_set1_epi32(255)),
    );
    let special = _mm256_movemask_ps(_mm256_castsi256_ps(special)) as u32;
    // Past the scale's range (the largest finite values round up to 2^128): a NaN scale.
    let past = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(
        e,
        _mm256_set1_epi32(127),
    ))) as u32;
    let rows = (1u32 << count) - 1;
    let mut lanes = [0i32; 8];
    // SAFETY: 8 i32 into an 8-i32 array.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), e) };
    let mut valid = rows & !nan & !past & !special;
    let mut rare = rows & !nan & special;
    let mut maxima = [0f32; 8];
    if rare != 0 {
        // SAFETY: 8 floats into an 8-float array.
        unsafe { _mm256_storeu_ps(maxima.as_mut_ptr(), amax) };
    }
    while rare != 0 {
        let b = rare.trailing_zeros() as usize;
        rare &= rare - 1;
        if let Some(e) = mx::shared_exponent_of_max(maxima[b], mx::MXINT8_EMAX) {
            lanes[b] = e;
            valid |= 1 << b;
        }
    }
    (lanes, valid)
}

/// Lane i: the largest lane of `m[i]` (no NaN among them), by a reduction tree over the eight registers at
/// once (each row's maximum reduced alone then went through memory to be loaded as a vector).
#[inline]
#[target_feature(enable = "avx2")]
fn lane_maxima(m: &[__m256; 8]) -> __m256 {
    // t[k]: in each 128-bit lane, rows 2k and 2k + 1 reduced over pairs of that lane's elements.
    let t: [__m256; 4] = std::array::from_fn(|k| {
        let (a, b) = (m[2 * k], m[2 * k + 1]);
        _mm256_max_ps(_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b))
    });
    // u[k]: in each 128-bit lane, rows 4k .. 4k + 4 reduced over that lane's four elements.
    let u: [__m256; 2] = std::array::from_fn(|k| {
        let (a, b) = (_mm256_castps_pd(t[2 * k]), _mm256_castps_pd(t[2 * k + 1]));
        _mm256_max_ps(
            _mm256_castpd_ps(_mm256_unpacklo_pd(a, b)),
            _mm256_castpd_ps(_mm256_unpackhi_pd(a, b)),
        )
    });
    _mm256_max_ps(
        _mm256_permute2f128_ps::<0x20>(u[0], u[1]),
        _mm256_permute2f128_ps::<0x31>(u[0], u[1]),
    )
}

/// The block's 32 codes for shared exponent `e` (the reference's rounding, clamped to ±127), in order in
/// one register.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn block_codes(v: [__m256; 4], e: i32, rounding: Rounding) -> __m256i {
    let inverse = _mm256_set1_ps(mx::pow2f(-e));
    let sixty_four = _mm256_set1_ps(64.0);
    let q = v.map(|x| {
        let t = _mm256_mul_ps(_mm256_mul_ps(x, inverse), sixty_four);
        match rounding {
            Rounding::Even => codes_even(t),
            Rounding::Nearest => codes_nearest(t),
        }
    });
    let words = _mm256_packs_epi16(
        _mm256_packs_epi32(q[0], q[1]),
        _mm256_packs_epi32(q[2], q[3]),
    );
    // packs work per 128-bit lane: dwords come out as q0[0..4] q1[0..4] q2[0..4] q3[0..4] q0[4..8] ...
    _mm256_permutevar8x32_epi32(words, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// Codes of scaled values `t` (each exactly x · 2^-e · 64), ties to even, clamped to ±127, as the
/// reference's `floor(|t| + 0.5)` with its tie correction gives them: rounding to nearest even (explicit,
/// not the MXCSR mode) is that rounding for every `t` but one magnitude, 0.5 − 2⁻²⁵, where `|t| + 0.5`
/// itself rounds up to 1.0 and the reference returns ±1; that one is put back (as on AVX-512).
#[inline]
#[target_feature(enable = "avx2")]
fn codes_even(t: __m256) -> __m256i {
    const JUST_BELOW_HALF: f32 = 0.5 - 1.0 / 33_554_432.0; // 0.5 − 2⁻²⁵
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let sign = _mm256_andnot_ps(abs_mask, t);
    let quirk =
        _mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_and_ps(t, abs_mask), _mm256_set1_ps(JUST_BELOW_HALF));
    let rounded = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(t);
    let rounded = _mm256_blendv_ps(rounded, _mm256_or_ps(_mm256_set1_ps(1.0), sign), quirk);
    let clamped = _mm256_max_ps(
        _mm256_min_ps(rounded, _mm256_set1_ps(127.0)),
        _mm256_set1_ps(-127.0),
    );
    _mm256_cvttps_epi32(clamped)
}

/// Codes of scaled values `t`, ties away from zero, clamped to ±127: the reference's `floor(|t| + 0.5)`
/// with t's sign.
#[inline]
#[target_feature(enable = "avx2")]
fn codes_nearest(t: __m256) -> __m256i {
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let up = _mm256_floor_ps(_mm256_add_ps(
        _mm256_and_ps(t, abs_mask),
        _mm256_set1_ps(0.5),
    ));
    let up = _mm256_min_ps(up, _mm256_set1_ps(127.0));
    // sign(t) * up: the sign bit of t onto the magnitude (a zero magnitude gives code 0 either way).
    _mm256_cvttps_epi32(_mm256_or_ps(up, _mm256_andnot_ps(abs_mask, t)))
}

/// Eight rows' codes (`rows[k]`: row k's 32 codes, eight groups of four, one per 32-bit lane) to the
/// eight 32-byte halves of a block's panel lines: line q is group q of the eight rows in order. The
/// classic 8 × 8 transpose of 32-bit lanes (unpacks, then across 128-bit lanes).
#[inline]
#[target_feature(enable = "avx2")]
fn code_groups(rows: &[__m256i; 8]) -> [__m256i; 8] {
    let mut t = [_mm256_setzero_si256(); 8];
    for k in 0..4 {
        t[2 * k] = _mm256_unpacklo_epi32(rows[2 * k], rows[2 * k + 1]);
        t[2 * k + 1] = _mm256_unpackhi_epi32(rows[2 * k], rows[2 * k + 1]);
    }
    // u[g] (g < 4): group g of rows 0..4 in the first 128 bits, group g + 4 in the second; u[4 + g] the
    // same for rows 4..8.
    let mut u = [_mm256_setzero_si256(); 8];
    for h in 0..2 {
        let b = 4 * h;
        u[b] = _mm256_unpacklo_epi64(t[b], t[b + 2]);
        u[b + 1] = _mm256_unpackhi_epi64(t[b], t[b + 2]);
        u[b + 2] = _mm256_unpacklo_epi64(t[b + 1], t[b + 3]);
        u[b + 3] = _mm256_unpackhi_epi64(t[b + 1], t[b + 3]);
    }
    let mut lines = [_mm256_setzero_si256(); 8];
    for g in 0..4 {
        lines[g] = _mm256_permute2x128_si256::<0x20>(u[g], u[g + 4]);
        lines[g + 4] = _mm256_permute2x128_si256::<0x31>(u[g], u[g + 4]);
    }
    lines
}
