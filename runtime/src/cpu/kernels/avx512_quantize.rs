//! The AVX-512 tier's activation quantizers: one block of 32 activations to MXINT8, and up to 16 rows
//! straight into a panel of the integer kernels' layout. Bit for bit the reference's codes and scales.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use mxrt_format::{mx, Rounding};

pub(super) fn mxint8_quantize_block_avx512_entry(
    block: &[f32; 32],
    rounding: Rounding,
    codes: &mut [u8; 32],
) -> u8 {
    // SAFETY: only placed in a table after AVX-512F/BW/DQ/VL were detected.
    unsafe { mxint8_quantize_block_avx512(block, rounding, codes) }
}

/// The AVX2 tier's `mxint8_quantize_block_avx2` in two 16-lane halves, with the division by the power-of-two scale done
/// as a multiplication by its reciprocal: both are the correctly rounded value of the same real number
/// x · 2^-e (2^-e is exact for every shared exponent, -127 ..= 127), so the codes are bit-identical and the
/// slow division is gone.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
unsafe fn mxint8_quantize_block_avx512(
    block: &[f32; 32],
    rounding: Rounding,
    codes: &mut [u8; 32],
) -> u8 {
    let p = block.as_ptr();
    // SAFETY: the block has exactly 32 values: two 16-wide loads.
    let v = unsafe { [_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16))] };
    let (scale, bytes) = quantize_block_registers(v, rounding);
    for (h, b) in bytes.iter().enumerate() {
        // SAFETY: 16 bytes at 16 * h of the 32-byte `codes`.
        unsafe { _mm_storeu_si128(codes.as_mut_ptr().add(16 * h).cast(), *b) };
    }
    scale
}

/// The quantizer of [`mxint8_quantize_block_avx512`] on a block in two registers: the scale byte and the
/// 32 codes (two registers of 16 bytes; all zero for a NaN scale).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
fn quantize_block_registers(v: [__m512; 2], rounding: Rounding) -> (u8, [__m128i; 2]) {
    match block_exponent(v) {
        Some(e) => ((e + 127) as u8, block_codes(v, e, rounding)),
        None => (mx::SCALE_NAN, [_mm_setzero_si128(); 2]),
    }
}

/// The block's shared exponent (`mx::shared_exponent_of_max` of its largest magnitude), `None` for a NaN
/// scale (a NaN in the block, or an exponent past the scale's range).
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn block_exponent(v: [__m512; 2]) -> Option<i32> {
    let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v[0], v[0])
        | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v[1], v[1]);
    if nan != 0 {
        return None;
    }
    let amax = _mm512_max_ps(_mm512_abs_ps(v[0]), _mm512_abs_ps(v[1]));
    mx::shared_exponent_of_max(max_lane(amax), mx::MXINT8_EMAX)
}

/// The largest of 16 lanes holding no NaN, by halving (`_mm512_reduce_max_ps` compiled to a chain of
/// scalar maxima here: it keeps NaN semantics the callers do not need).
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn max_lane(v: __m512) -> f32 {
    let m = _mm256_max_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps::<1>(v));
    let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps::<1>(m, m)))
}

/// `mx::shared_exponent_of_max` of up to 16 rows' largest magnitudes at once (none for the rows flagged in
/// `nan` and from `count` on): for normal maxima the exponent field plus one where the value lies at or
/// above the field's `mx::log2_round_up_table` entry (a gather), minus `MXINT8_EMAX`, at least −127 (none
/// past 127); zero is the smallest normal; subnormal and infinite maxima take the scalar function. As
/// masks and lanes: an array of `Option`s built lane by lane was a sixth of the quantizer.
#[target_feature(enable = "avx512f")]
fn group_exponents(amax: __m512, nan: u32, count: usize) -> GroupExponents {
    let table = mx::log2_round_up_table();
    let v = amax;
    let zero = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(v, _mm512_setzero_ps());
    let v = _mm512_mask_mov_ps(v, zero, _mm512_set1_ps(f32::MIN_POSITIVE));
    let bits = _mm512_castps_si512(v);
    let field = _mm512_srli_epi32::<23>(bits);
    // SAFETY: every lane's field is below 256 (the maxima are not negative): inside the 256-entry table.
    let threshold = unsafe { _mm512_i32gather_epi32::<4>(field, table.as_ptr().cast()) };
    let up = _mm512_cmpge_epu32_mask(bits, threshold);
    let floor = _mm512_mask_add_epi32(
        _mm512_sub_epi32(field, _mm512_set1_epi32(127)),
        up,
        field,
        _mm512_set1_epi32(1 - 127),
    );
    let e = _mm512_max_epi32(
        _mm512_sub_epi32(floor, _mm512_set1_epi32(mx::MXINT8_EMAX)),
        _mm512_set1_epi32(-127),
    );
    let special = u32::from(
        _mm512_cmpeq_epi32_mask(field, _mm512_setzero_si512())
            | _mm512_cmpeq_epi32_mask(field, _mm512_set1_epi32(255)),
    );
    // Past the scale's range (the largest finite values round up to 2^128): a NaN scale.
    let in_range = u32::from(_mm512_cmple_epi32_mask(e, _mm512_set1_epi32(127)));
    let rows = (1u32 << count) - 1; // count <= 16
    let mut exponents = GroupExponents {
        e: [0; 16],
        valid: rows & !nan & in_range & !special,
    };
    // SAFETY: 16 i32 into a 16-i32 array.
    unsafe { _mm512_storeu_si512(exponents.e.as_mut_ptr().cast(), e) };
    let mut rare = rows & !nan & special;
    if rare != 0 {
        let mut maxima = [0f32; 16];
        // SAFETY: 16 floats into a 16-float array.
        unsafe { _mm512_storeu_ps(maxima.as_mut_ptr(), amax) };
        while rare != 0 {
            let b = rare.trailing_zeros() as usize;
            rare &= rare - 1;
            if let Some(e) = mx::shared_exponent_of_max(maxima[b], mx::MXINT8_EMAX) {
                exponents.e[b] = e;
                exponents.valid |= 1 << b;
            }
        }
    }
    exponents
}

/// Up to 16 shared exponents: `e[b]` where bit b of `valid` is set; a NaN scale (or no row) elsewhere.
struct GroupExponents {
    e: [i32; 16],
    valid: u32,
}

impl GroupExponents {
    fn get(&self, b: usize) -> Option<i32> {
        (self.valid & (1 << b) != 0).then(|| self.e[b])
    }
}

/// The block's 32 codes for shared exponent `e` (the reference's rounding, clamped to ±127).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
fn block_codes(v: [__m512; 2], e: i32, rounding: Rounding) -> [__m128i; 2] {
    let inverse = _mm512_set1_ps(mx::pow2f(-e));
    let sixty_four = _mm512_set1_ps(64.0);
    let scaled = v.map(|x| _mm512_mul_ps(_mm512_mul_ps(x, inverse), sixty_four));
    scaled.map(|t| {
        let codes = match rounding {
            Rounding::Even => codes_even(t),
            Rounding::Nearest => codes_nearest(t),
        };
        _mm512_cvtepi32_epi8(codes)
    })
}

/// Codes of scaled values `t` (each exactly x · 2^-e · 64), ties to even, clamped to ±127, as the reference's
/// `floor(|t| + 0.5)` with its tie correction gives them: the CPU's round-to-nearest-even conversion is that
/// rounding for every `t` but one magnitude, 0.5 − 2⁻²⁵, where `|t| + 0.5` itself rounds up to 1.0 and the
/// reference returns ±1 (RNE: 0); that one is put back. Five instructions where the emulated rounding
/// took about twelve.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
fn codes_even(t: __m512) -> __m512i {
    const JUST_BELOW_HALF: i32 = 0x3EFF_FFFF; // 0.5 − 2⁻²⁵
    let sign = _mm512_and_si512(_mm512_castps_si512(t), _mm512_set1_epi32(i32::MIN));
    let magnitude = _mm512_xor_si512(_mm512_castps_si512(t), sign);
    let quirk = _mm512_cmpeq_epi32_mask(magnitude, _mm512_set1_epi32(JUST_BELOW_HALF));
    let rounded = _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(t);
    // ±1 where the quirk applies: 1 with t's sign is (1 XOR s) − s for s = 0 or −1 (sign >> 31).
    let s = _mm512_srai_epi32::<31>(sign);
    let one = _mm512_sub_epi32(_mm512_xor_si512(_mm512_set1_epi32(1), s), s);
    let rounded = _mm512_mask_mov_epi32(rounded, quirk, one);
    _mm512_max_epi32(
        _mm512_min_epi32(rounded, _mm512_set1_epi32(127)),
        _mm512_set1_epi32(-127),
    )
}

/// Codes of scaled values `t`, ties away from zero, clamped to ±127: the reference's `floor(|t| + 0.5)` with
/// t's sign (there is no such rounding mode to convert with).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
fn codes_nearest(t: __m512) -> __m512i {
    let a = _mm512_abs_ps(t);
    let up = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(_mm512_add_ps(
        a,
        _mm512_set1_ps(0.5),
    ));
    let up = _mm512_min_ps(up, _mm512_set1_ps(127.0));
    // sign(t) * up: the sign bit of t onto the magnitude.
    let signed = _mm512_or_ps(
        up,
        _mm512_andnot_ps(_mm512_set1_ps(f32::from_bits(0x7fff_ffff)), t),
    );
    _mm512_cvttps_epi32(signed)
}

pub(super) fn mxint8_quantize_panel_entry(
    rows: &[f32],
    cols: usize,
    rounding: Rounding,
    flip: u8,
    codes: &mut [u8],
    factors: &mut [f32],
) {
    let real = super::reference::check_quantize_panel_sizes(rows, cols, codes, factors);
    // SAFETY: only placed in a table after AVX-512F/BW/DQ/VL were detected; sizes checked above.
    unsafe { mxint8_quantize_panel_avx512(rows, (cols, real), rounding, flip, codes, factors) }
}

/// `reference::mxint8_quantize_panel` on AVX-512, one block column of the panel at a time: the 16 rows'
/// largest magnitudes give 16 shared exponents at once ([`group_exponents`]); each row's 32 codes are made
/// in registers (the ragged last block loaded under a mask, so its padding is zeros) and placed in the
/// half of a register that [`code_groups`] transposes into the block's eight panel lines, stored whole.
/// Storing each row's eight groups of four codes to their places (eight 4-byte stores and extracts per
/// row and block) cost a third of the quantizer.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
unsafe fn mxint8_quantize_panel_avx512(
    rows: &[f32],
    (cols, real): (usize, usize),
    rounding: Rounding,
    flip: u8,
    codes: &mut [u8],
    factors: &mut [f32],
) {
    let load = |i: usize, j: usize| -> [__m512; 2] {
        let p = rows.as_ptr().wrapping_add(i * cols + 32 * j);
        let mask = |from: usize| -> __mmask16 {
            let left = cols.saturating_sub(32 * j + from).min(16);
            ((1u32 << left) - 1) as __mmask16
        };
        // SAFETY: each masked load reads only the lanes below column `cols` of row i < real (block j
        // starts inside the row), all inside `rows`.
        unsafe {
            [
                _mm512_maskz_loadu_ps(mask(0), p),
                _mm512_maskz_loadu_ps(mask(16), p.wrapping_add(16)),
            ]
        }
    };
    let flip_bytes = _mm256_set1_epi8(flip as i8);
    for j in 0..cols.div_ceil(32) {
        let mut magnitudes = [_mm512_setzero_ps(); 16];
        let mut nan = 0u32;
        for (i, m) in magnitudes.iter_mut().enumerate().take(real) {
            let v = load(i, j);
            // Unordered where either half's lane is NaN.
            let unordered = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v[0], v[1]);
            nan |= u32::from(unordered != 0) << i;
            *m = _mm512_max_ps(_mm512_abs_ps(v[0]), _mm512_abs_ps(v[1]));
        }
        let exponents = group_exponents(lane_maxima(&magnitudes), nan, real);
        // Row k of the block in the low half of rows[k], row k + 8 in its high half; padding rows code 0.
        let mut halves = [_mm512_set1_epi8(flip as i8); 8];
        let mut block_factors = [0.0f32; 16];
        for i in 0..real {
            let (scale, bytes) = match exponents.get(i) {
                Some(e) => ((e + 127) as u8, block_codes(load(i, j), e, rounding)),
                None => (mx::SCALE_NAN, [_mm_setzero_si128(); 2]),
            };
            let row = _mm256_xor_si256(_mm256_set_m128i(bytes[1], bytes[0]), flip_bytes);
            let slot = &mut halves[i % 8];
            *slot = if i < 8 {
                _mm512_inserti64x4::<0>(*slot, row)
            } else {
                _mm512_inserti64x4::<1>(*slot, row)
            };
            block_factors[i] = super::reference::act_scale(scale);
        }
        for (q, line) in code_groups(&halves).iter().enumerate() {
            // SAFETY: line q of block j: bytes 512 j + 64 q .. + 64 <= 512 bpr <= codes.len().
            unsafe { _mm512_storeu_si512(codes.as_mut_ptr().add(512 * j + 64 * q).cast(), *line) };
        }
        factors[16 * j..16 * j + 16].copy_from_slice(&block_factors);
    }
}

/// Lane i: the largest lane of `m[i]` (no NaN among them). A reduction tree over all 16 registers at once,
/// about three instructions per row, where reducing each row alone took seven and its maximum then went
/// through memory to be loaded as a vector (a store-forwarding stall per block column).
#[inline]
#[target_feature(enable = "avx512f")]
fn lane_maxima(m: &[__m512; 16]) -> __m512 {
    // t[k]: in each 128-bit lane, rows 2k and 2k + 1 reduced over pairs of that lane's elements.
    let t: [__m512; 8] = std::array::from_fn(|k| {
        let (a, b) = (m[2 * k], m[2 * k + 1]);
        _mm512_max_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b))
    });
    // u[k]: in each 128-bit lane, rows 4k .. 4k + 4 reduced over that lane's four elements.
    let u: [__m512; 4] = std::array::from_fn(|k| {
        let (a, b) = (_mm512_castps_pd(t[2 * k]), _mm512_castps_pd(t[2 * k + 1]));
        _mm512_max_ps(
            _mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
            _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)),
        )
    });
    // Then across 128-bit lanes: p[k] holds u[2k] and u[2k + 1], each reduced over lane pairs (0, 2) and
    // (1, 3); the last step over the remaining pair, the four row groups in order.
    let p: [__m512; 2] = std::array::from_fn(|k| {
        let (a, b) = (u[2 * k], u[2 * k + 1]);
        _mm512_max_ps(
            _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
        )
    });
    _mm512_max_ps(
        _mm512_shuffle_f32x4::<0b10_00_10_00>(p[0], p[1]),
        _mm512_shuffle_f32x4::<0b11_01_11_01>(p[0], p[1]),
    )
}

/// The eight panel lines of a block from its 16 rows' codes: `rows[k]` holds row k's 32 codes (eight
/// groups of four, one per 32-bit lane) in its low half and row k + 8's in its high half; line q is group
/// q of rows 0..16 in order. An 8 × 8 transpose of 32-bit lanes within each half (unpacks), whose last
/// step, across 128-bit lanes, also joins the halves (`vpermt2q`).
#[inline]
#[target_feature(enable = "avx512f")]
fn code_groups(rows: &[__m512i; 8]) -> [__m512i; 8] {
    let mut t = [_mm512_setzero_si512(); 8];
    for k in 0..4 {
        t[2 * k] = _mm512_unpacklo_epi32(rows[2 * k], rows[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_epi32(rows[2 * k], rows[2 * k + 1]);
    }
    // u[g] (g < 4): group g of rows 0..4 in each half's first 128 bits, group g + 4 in its second;
    // u[4 + g] the same for rows 4..8.
    let mut u = [_mm512_setzero_si512(); 8];
    for h in 0..2 {
        let b = 4 * h;
        u[b] = _mm512_unpacklo_epi64(t[b], t[b + 2]);
        u[b + 1] = _mm512_unpackhi_epi64(t[b], t[b + 2]);
        u[b + 2] = _mm512_unpacklo_epi64(t[b + 1], t[b + 3]);
        u[b + 3] = _mm512_unpackhi_epi64(t[b + 1], t[b + 3]);
    }
    let low = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    let high = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    let mut lines = [_mm512_setzero_si512(); 8];
    for g in 0..4 {
        lines[g] = _mm512_permutex2var_epi64(u[g], low, u[g + 4]);
        lines[g + 4] = _mm512_permutex2var_epi64(u[g], high, u[g + 4]);
    }
    lines
}
