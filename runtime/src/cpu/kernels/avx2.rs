//! The AVX2 tier's kernels: AVX2+FMA, and the AVX-VNNI variants of the MXINT8 integer kernels (the
//! `avx2vnni` tier). Reachable only through the tables [`super::x86_tables`] builds after detecting the
//! features; the `*_entry` wrappers and the table fields are the only safe doors in.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use mxrt_format::{mx, Rounding};

use super::ragged::Elementwise;
use super::reference;

/// Whole 8-wide steps of the f32 dot product (the table's `Dot` adds the rest).
pub(super) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    assert!(a.len() == b.len() && a.len().is_multiple_of(8));
    // SAFETY: only placed in a table after AVX2 and FMA were detected.
    unsafe { dot_f32_avx2(a, b) }
}

pub(super) fn dot_f32_rows3(x: &[f32], k: usize, w: [&[f32]; 3], out: &mut [f32]) {
    // SAFETY: only reachable after AVX2 and FMA were detected.
    unsafe { dot_f32_rows3_avx2(x, k, w, out) }
}

dot_f32_rows3_kernel!(
    dot_f32_rows3_avx2,
    "avx2,fma",
    8,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_fmadd_ps,
    hsum_reference_order
);

#[allow(clippy::too_many_arguments)]
pub(super) fn gemm_f32_packed(
    x: &[f32],
    rows: usize,
    k: usize,
    wt: &[f32],
    n: usize,
    out: &mut [f32],
    ldo: usize,
    epilogue: super::Epilogue<'_>,
) {
    // SAFETY: only reachable after AVX2 and FMA were detected.
    unsafe { gemm_f32_packed_avx2(x, rows, k, wt, n, out, ldo, epilogue) }
}

pub(super) fn gemv_f32_packed(x: &[f32], k: usize, wt: &[f32], n: usize, out: &mut [f32]) {
    // SAFETY: only placed in a table after AVX2 and FMA were detected; the kernel checks the sizes.
    unsafe { gemv_f32_packed_avx2(x, k, wt, n, out) }
}

pub(super) fn gemv_mxint8_packed(
    x: &[f32],
    k: usize,
    codes: &[u8],
    factors: &[f32],
    n: usize,
    out: &mut [f32],
) {
    // SAFETY: only placed in a table after AVX2 and FMA were detected; the kernel checks the sizes.
    unsafe { gemv_mxint8_packed_avx2(x, k, codes, factors, n, out) }
}

/// 8 i8 codes at `p` as f32 lanes.
///
/// # Safety
/// `p .. p + 8` must be readable.
#[target_feature(enable = "avx2")]
unsafe fn codes8(p: *const u8) -> __m256 {
    // SAFETY: the caller's 8 bytes.
    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(unsafe { _mm_loadl_epi64(p.cast()) }))
}

gemv_packed_kernels!(
    f32: gemv_f32_packed_avx2, mx: gemv_mxint8_packed_avx2, "avx2,fma", __m256, lanes: 8,
    zero: _mm256_setzero_ps, load: _mm256_loadu_ps, splat: _mm256_set1_ps, fmadd: _mm256_fmadd_ps,
    add: _mm256_add_ps, mul: _mm256_mul_ps, store: store_first_lanes8, load_codes: codes8
);

gemm_f32_packed_kernel!(
    gemm_f32_packed_avx2, "avx2,fma", rows: 6, partial: [1, 2, 3, 4, 5], vectors: 2, lanes: 8,
    zero: _mm256_setzero_ps, load: _mm256_loadu_ps, splat: _mm256_set1_ps, fmadd: _mm256_fmadd_ps,
    store: store_first_lanes8, load_first: load_first_lanes8, add: _mm256_add_ps, max: _mm256_max_ps
);

/// The first `width` (1..=8) values at `p` in the low lanes, zeros above.
///
/// # Safety
/// `p .. p + width` must be readable.
#[target_feature(enable = "avx2")]
unsafe fn load_first_lanes8(p: *const f32, width: usize) -> __m256 {
    let mut buf = [0f32; 8];
    // SAFETY: the caller's range holds `width` values; buf holds 8.
    unsafe { std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), width.min(8)) };
    // SAFETY: buf holds 8 values.
    unsafe { _mm256_loadu_ps(buf.as_ptr()) }
}

pub(super) fn transpose_f32(
    src: &[f32],
    src_ld: usize,
    rows: usize,
    cols: usize,
    dst: &mut [f32],
    dst_ld: usize,
) {
    // SAFETY: only reachable after AVX2 and FMA were detected.
    unsafe { transpose_f32_avx2(src, src_ld, rows, cols, dst, dst_ld) }
}

transpose_f32_kernel!(
    transpose_f32_avx2, "avx2", 8, __m256, load: _mm256_loadu_ps, store: _mm256_storeu_ps,
    transpose: transpose8
);

/// 8 × 8 f32 transpose in registers: `out[i]` lane `r` = `m[r]` lane `i` (pairs interleaved, then pairs of
/// pairs, then the 128-bit halves exchanged).
#[target_feature(enable = "avx2")]
fn transpose8(m: &[__m256; 8]) -> [__m256; 8] {
    let t: [__m256; 8] = std::array::from_fn(|i| {
        let (a, b) = (m[i & !1], m[i | 1]);
        if i % 2 == 0 {
            _mm256_unpacklo_ps(a, b)
        } else {
            _mm256_unpackhi_ps(a, b)
        }
    });
    // u[4q + j]: from t[4q + (j / 2)] and t[4q + 2 + (j / 2)], low (j even) or high pairs.
    let u: [__m256; 8] = std::array::from_fn(|i| {
        let (q, j) = (i / 4, i % 4);
        let (a, b) = (t[4 * q + j / 2], t[4 * q + 2 + j / 2]);
        if j % 2 == 0 {
            _mm256_shuffle_ps::<0x44>(a, b)
        } else {
            _mm256_shuffle_ps::<0xEE>(a, b)
        }
    });
    std::array::from_fn(|i| {
        let (a, b) = (u[i % 4], u[4 + i % 4]);
        if i < 4 {
            _mm256_permute2f128_ps::<0x20>(a, b)
        } else {
            _mm256_permute2f128_ps::<0x31>(a, b)
        }
    })
}

/// Writes the first `width` (1..=8) lanes of `v` at `p`.
///
/// # Safety
/// `p .. p + width` must be writable.
#[target_feature(enable = "avx2")]
unsafe fn store_first_lanes8(p: *mut f32, width: usize, v: __m256) {
    if width == 8 {
        // SAFETY: the caller's range holds 8 values.
        unsafe { _mm256_storeu_ps(p, v) };
    } else {
        let mut buf = [0f32; 8];
        // SAFETY: buf holds 8 values.
        unsafe { _mm256_storeu_ps(buf.as_mut_ptr(), v) };
        // SAFETY: the caller's range holds `width` values; buf and out do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), p, width.min(8)) };
    }
}

/// Whole blocks of a dense MXINT8 row · f32 activations (the table's `MxDot` sends a ragged last block to
/// the reference).
pub(super) fn mxint8_dot_f32(codes: &[u8], steps: &[f32], x: &[f32]) -> f32 {
    assert!(codes.len() == 32 * steps.len() && x.len() == codes.len());
    // SAFETY: only placed in a table after AVX2 and FMA were detected.
    unsafe { mxint8_dot_f32_avx2(codes, steps, x) }
}

/// Per whole block: the 32 codes widened to f32 in four registers and multiplied into four accumulators by
/// x, the block's sum scaled by its step into a running 8-lane total (the weight bytes are read once, as
/// codes: a GEMV streams a quarter of the FP32 bytes). `codes` and `x` hold 32 values per step.
#[target_feature(enable = "avx2,fma")]
unsafe fn mxint8_dot_f32_avx2(codes: &[u8], steps: &[f32], x: &[f32]) -> f32 {
    let (pc, px) = (codes.as_ptr(), x.as_ptr());
    let mut total = _mm256_setzero_ps();
    for (j, &step) in steps.iter().enumerate() {
        let mut block = _mm256_setzero_ps();
        for q in 0..4 {
            let at = 32 * j + 8 * q;
            // SAFETY: at + 8 <= 32 * steps.len() = x.len() = codes.len() (the entry checked).
            let (c, v) = unsafe {
                (
                    _mm_loadl_epi64(pc.add(at).cast()),
                    _mm256_loadu_ps(px.add(at)),
                )
            };
            block = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(c)), v, block);
        }
        total = _mm256_fmadd_ps(block, _mm256_set1_ps(step), total);
    }
    hsum_reference_order(total)
}

/// Whole 32-byte steps of the i8 dot product (the table's `Dot` adds the rest).
pub(super) fn dot_i8(a: &[u8], b: &[u8]) -> i32 {
    assert!(a.len() == b.len() && a.len().is_multiple_of(32));
    // SAFETY: only placed in a table after AVX2 was detected.
    unsafe { dot_i8_avx2(a, b) }
}

pub(super) fn mxint8_rows(
    a_codes: &[u8],
    a_scales: &[f32],
    w_codes: &[u8],
    w_scales: &[f32],
    out: &mut [f32],
) {
    // SAFETY: only reachable after AVX2 and FMA were detected.
    unsafe { mxint8_rows_avx2(a_codes, a_scales, w_codes, w_scales, out) }
}

pub(super) fn mxint8_quantize_block(
    block: &[f32; 32],
    rounding: Rounding,
    codes: &mut [u8; 32],
) -> u8 {
    // SAFETY: only reachable after AVX2 and FMA were detected.
    unsafe { mxint8_quantize_block_avx2(block, rounding, codes) }
}

/// The reference's arithmetic, 8 lanes at a time: the block maximum finds the shared exponent (scalar, the
/// same function), then every element is divided by the scale (the same IEEE division), multiplied by 64,
/// rounded as the reference rounds (`floor(|t| + 0.5)`, minus 1 on exact ties for half-to-even), clamped to
/// ±127, and packed to bytes.
#[target_feature(enable = "avx2,fma")]
unsafe fn mxint8_quantize_block_avx2(
    block: &[f32; 32],
    rounding: Rounding,
    codes: &mut [u8; 32],
) -> u8 {
    let p = block.as_ptr();
    // SAFETY: the block has exactly 32 values: four 8-wide loads.
    let v = unsafe {
        [
            _mm256_loadu_ps(p),
            _mm256_loadu_ps(p.add(8)),
            _mm256_loadu_ps(p.add(16)),
            _mm256_loadu_ps(p.add(24)),
        ]
    };
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let mut nan = _mm256_setzero_ps();
    let mut amax = _mm256_setzero_ps();
    for x in v {
        nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x));
        amax = _mm256_max_ps(amax, _mm256_and_ps(x, abs_mask));
    }
    let scale_exp = if _mm256_movemask_ps(nan) != 0 {
        None
    } else {
        let m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
        mx::shared_exponent_of_max(_mm_cvtss_f32(m), mx::MXINT8_EMAX)
    };
    let Some(e) = scale_exp else {
        codes.fill(0);
        return mx::SCALE_NAN;
    };
    let scale = _mm256_set1_ps(mx::pow2f(e));
    let (half, sixty_four, limit) = (
        _mm256_set1_ps(0.5),
        _mm256_set1_ps(64.0),
        _mm256_set1_ps(127.0),
    );
    let even = rounding == Rounding::Even;
    let mut q = [_mm256_setzero_si256(); 4];
    for (x, q) in v.iter().zip(q.iter_mut()) {
        let t = _mm256_mul_ps(_mm256_div_ps(*x, scale), sixty_four);
        let a = _mm256_and_ps(t, abs_mask);
        let mut up = _mm256_floor_ps(_mm256_add_ps(a, half));
        if even {
            // (a - 0.5) % 2 == 0: a - 0.5 is an even integer (exact: |t| < 2^23 here).
            let d = _mm256_mul_ps(_mm256_sub_ps(a, half), half);
            let tie = _mm256_cmp_ps::<_CMP_EQ_OQ>(d, _mm256_floor_ps(d));
            up = _mm256_sub_ps(up, _mm256_and_ps(tie, _mm256_set1_ps(1.0)));
        }
        let up = _mm256_min_ps(up, limit);
        // sign(t) * up: the sign bit of t onto the magnitude (a zero magnitude gives code 0 either way).
        let signed = _mm256_or_ps(up, _mm256_andnot_ps(abs_mask, t));
        *q = _mm256_cvttps_epi32(signed);
    }
    let words = _mm256_packs_epi16(
        _mm256_packs_epi32(q[0], q[1]),
        _mm256_packs_epi32(q[2], q[3]),
    );
    // packs work per 128-bit lane: dwords come out as q0[0..4] q1[0..4] q2[0..4] q3[0..4] q0[4..8] ...
    let ordered = _mm256_permutevar8x32_epi32(words, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    // SAFETY: `codes` is 32 bytes: one unaligned 32-byte store.
    unsafe { _mm256_storeu_si256(codes.as_mut_ptr().cast(), ordered) };
    (e + 127) as u8
}

pub(super) fn mxint8_rows2(
    a_codes: &[u8],
    a_scales: &[f32],
    rows: usize,
    w: [(&[u8], &[f32]); 2],
    out: &mut [f32],
    ldo: usize,
) {
    // SAFETY: only reachable after AVX2 and FMA were detected.
    unsafe { mxint8_rows2_avx2(a_codes, a_scales, rows, w, out, ldo) }
}

/// The 8 exact lane sums of one block as f32 (lane l: positions 4l..4l+3). `vpmaddubsw` multiplies unsigned
/// by signed bytes, so it gets |w| and x with w's sign moved onto it (`vpsignb`: also zero where w is 0);
/// pairs cannot saturate i16 (|w| <= 128 and |x| <= 127, activation codes are never -128: 2*128*127 < 2^15).
/// `vpmaddwd` with ones adds the pairs into i32 lanes; exact in f32 (|p| <= 4*128*127 < 2^24).
#[target_feature(enable = "avx2")]
fn block_lanes(x: __m256i, w: __m256i, w_abs: __m256i) -> __m256 {
    let pairs = _mm256_maddubs_epi16(w_abs, _mm256_sign_epi8(x, w));
    _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
}

/// The sum of 8 lanes in a fixed order, `((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7))` (the order the MXINT8
/// reference defines; every 8-lane reduction here uses it).
#[target_feature(enable = "avx2,fma")]
pub(super) fn hsum_reference_order(acc: __m256) -> f32 {
    let q = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    let r = _mm_add_ps(q, _mm_movehl_ps(q, q));
    _mm_cvtss_f32(_mm_add_ss(r, _mm_shuffle_ps(r, r, 1)))
}

/// The MXINT8 × MXINT8 kernels, written once and instantiated per instruction set (`$lanes` computes one
/// block's 8 exact lane sums; everything else is shared, so every instantiation is the reference's order).
macro_rules! mxint8_kernels {
    ($features:literal, $lanes:ident, $rows:ident, $rows2:ident) => {
        /// Four activation rows at a time share each weight block's |w|; each row keeps an even-block and an
        /// odd-block accumulator (8 independent FMA chains). Each row's arithmetic is the reference's, in the
        /// same order, so results are bit-identical.
        #[target_feature(enable = $features)]
        unsafe fn $rows(
            a_codes: &[u8],
            a_scales: &[f32],
            w_codes: &[u8],
            w_scales: &[f32],
            out: &mut [f32],
        ) {
            let blocks = w_scales.len();
            let rows = out.len();
            assert!(
                w_codes.len() >= blocks * 32
                    && a_codes.len() >= rows * blocks * 32
                    && a_scales.len() >= rows * blocks
            );
            let (pa, pw) = (a_codes.as_ptr(), w_codes.as_ptr());
            let mut i = 0;
            while i < rows {
                let group = (rows - i).min(4);
                // acc[g][parity of the block]
                let mut acc = [[_mm256_setzero_ps(); 2]; 4];
                for j in 0..blocks {
                    let parity = j & 1;
                    // SAFETY: j < blocks and w_codes.len() >= 32 * blocks (asserted).
                    let w = unsafe { _mm256_loadu_si256(pw.add(32 * j).cast()) };
                    let w_abs = _mm256_abs_epi8(w);
                    let ws = w_scales[j];
                    for (g, acc) in acc.iter_mut().enumerate().take(group) {
                        let row = i + g;
                        let at = (row * blocks + j) * 32;
                        // SAFETY: row < rows and j < blocks: the 32 bytes at `at` are inside a_codes.
                        let x = unsafe { _mm256_loadu_si256(pa.add(at).cast()) };
                        let s = _mm256_set1_ps(a_scales[row * blocks + j] * ws);
                        acc[parity] = _mm256_fmadd_ps($lanes(x, w, w_abs), s, acc[parity]);
                    }
                }
                for g in 0..group {
                    out[i + g] = hsum_reference_order(_mm256_add_ps(acc[g][0], acc[g][1]));
                }
                i += group;
            }
        }

        /// Two weight rows × two activation rows per step, each pair with an even-block and an odd-block
        /// accumulator (8 chains): every activation block is loaded once for both weight rows, every weight
        /// block once for both activation rows. Bit-identical to the reference.
        #[target_feature(enable = $features)]
        unsafe fn $rows2(
            a_codes: &[u8],
            a_scales: &[f32],
            rows: usize,
            w: [(&[u8], &[f32]); 2],
            out: &mut [f32],
            ldo: usize,
        ) {
            let blocks = w[0].1.len();
            assert!(
                w.iter()
                    .all(|(c, s)| c.len() >= blocks * 32 && s.len() == blocks)
                    && a_codes.len() >= rows * blocks * 32
                    && a_scales.len() >= rows * blocks
                    && (rows == 0 || out.len() >= (rows - 1) * ldo + 2)
            );
            let (pa, pw0, pw1) = (a_codes.as_ptr(), w[0].0.as_ptr(), w[1].0.as_ptr());
            let (ws0, ws1) = (w[0].1, w[1].1);
            let mut i = 0;
            while i < rows {
                let group = (rows - i).min(2);
                // acc[g][weight row][parity of the block]
                let mut acc = [[[_mm256_setzero_ps(); 2]; 2]; 2];
                for j in 0..blocks {
                    let parity = j & 1;
                    // SAFETY: j < blocks and both weight rows hold >= 32 * blocks codes (asserted).
                    let (w0, w1) = unsafe {
                        (
                            _mm256_loadu_si256(pw0.add(32 * j).cast()),
                            _mm256_loadu_si256(pw1.add(32 * j).cast()),
                        )
                    };
                    let (a0, a1) = (_mm256_abs_epi8(w0), _mm256_abs_epi8(w1));
                    let (s0, s1) = (ws0[j], ws1[j]);
                    for (g, acc) in acc.iter_mut().enumerate().take(group) {
                        let row = i + g;
                        let at = (row * blocks + j) * 32;
                        // SAFETY: row < rows and j < blocks: the 32 bytes at `at` are inside a_codes.
                        let x = unsafe { _mm256_loadu_si256(pa.add(at).cast()) };
                        let sa = a_scales[row * blocks + j];
                        acc[0][parity] = _mm256_fmadd_ps(
                            $lanes(x, w0, a0),
                            _mm256_set1_ps(sa * s0),
                            acc[0][parity],
                        );
                        acc[1][parity] = _mm256_fmadd_ps(
                            $lanes(x, w1, a1),
                            _mm256_set1_ps(sa * s1),
                            acc[1][parity],
                        );
                    }
                }
                for (g, acc) in acc.iter().enumerate().take(group) {
                    for c in 0..2 {
                        out[(i + g) * ldo + c] =
                            hsum_reference_order(_mm256_add_ps(acc[c][0], acc[c][1]));
                    }
                }
                i += group;
            }
        }
    };
}

mxint8_kernels!("avx2,fma", block_lanes, mxint8_rows_avx2, mxint8_rows2_avx2);
mxint8_kernels!(
    "avx2,fma,avxvnni",
    block_lanes_vnni,
    mxint8_rows_vnni,
    mxint8_rows2_vnni
);

/// [`block_lanes`] with one AVX-VNNI instruction: `vpdpbusd` sums the four u8 × i8 products of each lane
/// into i32 without intermediate saturation: the same lanes, exactly.
#[target_feature(enable = "avx2,avxvnni")]
fn block_lanes_vnni(x: __m256i, w: __m256i, w_abs: __m256i) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_dpbusd_avx_epi32(
        _mm256_setzero_si256(),
        w_abs,
        _mm256_sign_epi8(x, w),
    ))
}

pub(super) fn mxint8_rows_vnni_entry(
    a_codes: &[u8],
    a_scales: &[f32],
    w_codes: &[u8],
    w_scales: &[f32],
    out: &mut [f32],
) {
    // SAFETY: only placed in the table after AVX2, FMA and AVX-VNNI were detected.
    unsafe { mxint8_rows_vnni(a_codes, a_scales, w_codes, w_scales, out) }
}

pub(super) fn mxint8_rows2_vnni_entry(
    a_codes: &[u8],
    a_scales: &[f32],
    rows: usize,
    w: [(&[u8], &[f32]); 2],
    out: &mut [f32],
    ldo: usize,
) {
    // SAFETY: only placed in the table after AVX2, FMA and AVX-VNNI were detected.
    unsafe { mxint8_rows2_vnni(a_codes, a_scales, rows, w, out, ldo) }
}

/// `e^x` in place: whole 8-wide vectors here, the rest by the reference (also the AVX-512 tier's rest).
pub(super) const EXP: Elementwise = Elementwise::vectors(8, exp_vectors, reference::exp_in_place);

/// Exact-erf GELU in place: whole 8-wide vectors here, the rest by the reference.
pub(super) const GELU: Elementwise =
    Elementwise::vectors(8, gelu_vectors, reference::gelu_in_place);

fn exp_vectors(x: &mut [f32]) {
    assert_eq!(x.len() % 8, 0);
    // SAFETY: only placed in a table after AVX2 and FMA were detected.
    unsafe { exp_vectors_avx2(x) }
}

fn gelu_vectors(x: &mut [f32]) {
    assert_eq!(x.len() % 8, 0);
    // SAFETY: only placed in a table after AVX2 and FMA were detected.
    unsafe { gelu_vectors_avx2(x) }
}

#[target_feature(enable = "avx2,fma")]
fn exp_vectors_avx2(x: &mut [f32]) {
    for c in x.chunks_exact_mut(8) {
        // SAFETY: the chunk holds exactly 8 values.
        unsafe { _mm256_storeu_ps(c.as_mut_ptr(), exp8(_mm256_loadu_ps(c.as_ptr()))) };
    }
}

#[target_feature(enable = "avx2,fma")]
fn gelu_vectors_avx2(x: &mut [f32]) {
    for c in x.chunks_exact_mut(8) {
        // SAFETY: the chunk holds exactly 8 values.
        unsafe { _mm256_storeu_ps(c.as_mut_ptr(), gelu8(_mm256_loadu_ps(c.as_ptr()))) };
    }
}

/// [`exp8`] for the tier's other kernel files (`avx2_norms.rs`).
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) fn exp_vector(x: __m256) -> __m256 {
    exp8(x)
}

/// p · 2^n for integral n in [-126, 128], as 2^h · 2^(n-h) with h = floor(n/2), both factors normal powers
/// of two built in the exponent bits (2^n alone would overflow at n = 128): exact but for the last product's
/// one rounding.
#[target_feature(enable = "avx2,fma")]
fn times_pow2_8(p: __m256, n: __m256) -> __m256 {
    let half = _mm256_floor_ps(_mm256_mul_ps(n, _mm256_set1_ps(0.5)));
    let pow = |e: __m256| {
        _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(e),
            _mm256_set1_epi32(127),
        )))
    };
    _mm256_mul_ps(_mm256_mul_ps(p, pow(half)), pow(_mm256_sub_ps(n, half)))
}

exp_kernel!(
    exp8, "avx2,fma", __m256,
    splat: _mm256_set1_ps, min: _mm256_min_ps, max: _mm256_max_ps, floor: _mm256_floor_ps,
    fmadd: _mm256_fmadd_ps, fnmadd: _mm256_fnmadd_ps, mul: _mm256_mul_ps, add: _mm256_add_ps,
    times_pow2: times_pow2_8
);

/// `1 / d` for GELU's t, by a division (one per 8 values: not this tier's bottleneck).
#[target_feature(enable = "avx2")]
fn reciprocal8(d: __m256) -> __m256 {
    _mm256_div_ps(_mm256_set1_ps(1.0), d)
}

gelu_kernel!(
    gelu8, "avx2,fma", __m256,
    splat: _mm256_set1_ps, zero: _mm256_setzero_ps, mul: _mm256_mul_ps, add: _mm256_add_ps,
    sub: _mm256_sub_ps, fmadd: _mm256_fmadd_ps, fnmadd: _mm256_fnmadd_ps, and: _mm256_and_ps,
    and_not: _mm256_andnot_ps, or: _mm256_or_ps, exp: exp8, reciprocal: reciprocal8
);

pub(super) fn sparse_dot(values: &[f32], cols: &[u32], x: &[f32]) -> f32 {
    assert!(values.len() == cols.len() && values.len().is_multiple_of(8));
    // The gathers below read x[cols[k]]: every index must be in bounds (a cheap, vectorised check).
    assert!(
        cols.iter().all(|&c| (c as usize) < x.len()) && x.len() <= i32::MAX as usize,
        "sparse column out of range"
    );
    // SAFETY: only reachable after AVX2 and FMA were detected; indices were checked just above.
    unsafe { sparse_dot_avx2(values, cols, x) }
}

/// Eight stored entries per step: gather their activations, FMA with the values. `values` and `cols` hold
/// the same number of entries, a multiple of 8.
#[target_feature(enable = "avx2,fma")]
unsafe fn sparse_dot_avx2(values: &[f32], cols: &[u32], x: &[f32]) -> f32 {
    let n = values.len();
    let mut acc = _mm256_setzero_ps();
    let mut k = 0;
    while k + 8 <= n {
        // SAFETY: k + 8 <= n for both loads; the caller checked every column is < x.len() <= i32::MAX.
        unsafe {
            let idx = _mm256_loadu_si256(cols.as_ptr().add(k).cast());
            let xv = _mm256_i32gather_ps::<4>(x.as_ptr(), idx);
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(values.as_ptr().add(k)), xv, acc);
        }
        k += 8;
    }
    hsum_reference_order(acc)
}

/// Four 8-wide FMA accumulators over 32 values per step, one over the last 8-wide steps, then a horizontal
/// sum. `a` and `b` hold the same number of values, a multiple of 8.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_f32_avx2(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (j, acc) in acc.iter_mut().enumerate() {
            // SAFETY: i + 8j + 8 <= n, so both unaligned loads stay inside the slices.
            let (x, y) = unsafe {
                (
                    _mm256_loadu_ps(pa.add(i + 8 * j)),
                    _mm256_loadu_ps(pb.add(i + 8 * j)),
                )
            };
            *acc = _mm256_fmadd_ps(x, y, *acc);
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n.
        let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i))) };
        acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
        i += 8;
    }
    let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    hsum_reference_order(s)
}

/// 32 i8 products per step: sign-extend to i16, multiply-add pairs into i32 (`vpmaddwd`), accumulate.
/// Exact, like the reference (no saturation: |a*b + c*d| <= 2 * 128 * 128 fits i32 lanes). `a` and `b` hold
/// the same number of bytes, a multiple of 32.
#[target_feature(enable = "avx2")]
unsafe fn dot_i8_avx2(a: &[u8], b: &[u8]) -> i32 {
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = _mm256_setzero_si256();
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: i + 32 <= n: both 32-byte loads are inside the slices.
        let (x, y) = unsafe {
            (
                _mm256_loadu_si256(pa.add(i).cast()),
                _mm256_loadu_si256(pb.add(i).cast()),
            )
        };
        let (xl, xh) = (
            _mm256_cvtepi8_epi16(_mm256_castsi256_si128(x)),
            _mm256_cvtepi8_epi16(_mm256_extracti128_si256(x, 1)),
        );
        let (yl, yh) = (
            _mm256_cvtepi8_epi16(_mm256_castsi256_si128(y)),
            _mm256_cvtepi8_epi16(_mm256_extracti128_si256(y, 1)),
        );
        acc = _mm256_add_epi32(
            acc,
            _mm256_add_epi32(_mm256_madd_epi16(xl, yl), _mm256_madd_epi16(xh, yh)),
        );
        i += 32;
    }
    let lo = _mm256_castsi256_si128(acc);
    let hi = _mm256_extracti128_si256(acc, 1);
    let s = _mm_add_epi32(lo, hi);
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// Independent FMA chains in the peak loops: enough to cover the FMA latency on both ports (4 cycles × 2).
const PEAK_CHAINS: usize = 10;

/// `iterations` rounds of 8-lane FMAs on [`PEAK_CHAINS`] independent registers: the AVX2 tier's f32 ceiling.
#[target_feature(enable = "avx2,fma")]
fn peak_f32_avx2(iterations: u64) -> f32 {
    let a = _mm256_set1_ps(std::hint::black_box(0.999_999_9));
    let b = _mm256_set1_ps(std::hint::black_box(1e-7));
    let mut acc = [_mm256_set1_ps(1.0); PEAK_CHAINS];
    for _ in 0..iterations {
        for v in &mut acc {
            *v = _mm256_fmadd_ps(*v, a, b);
        }
    }
    let mut lanes = [0.0f32; 8];
    let mut total = 0.0;
    for v in acc {
        // SAFETY: `lanes` holds 8 floats, one 256-bit store.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
        total += lanes.iter().sum::<f32>();
    }
    total
}

/// i8 × i8 on AVX2 without VNNI, as the integer kernels multiply: `vpmaddubsw` (pairs into i16), `vpmaddwd`
/// with ones (into i32), `vpaddd`: 32 multiply-adds per three instructions.
#[target_feature(enable = "avx2")]
fn peak_i8_avx2(iterations: u64) -> i32 {
    let b = _mm256_set1_epi8(std::hint::black_box(-2));
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_set1_epi8(std::hint::black_box(3)); PEAK_CHAINS];
    for _ in 0..iterations {
        for v in &mut acc {
            // The accumulator's bytes are the next unsigned operand: each chain depends on itself, so the
            // compiler cannot hoist the multiplies out of the loop (the values themselves do not matter).
            let pairs = _mm256_maddubs_epi16(*v, b);
            *v = _mm256_add_epi32(*v, _mm256_madd_epi16(pairs, ones));
        }
    }
    acc.iter()
        .fold(0, |s, v| s.wrapping_add(_mm256_extract_epi32::<0>(*v)))
}

/// i8 × i8 with AVX-VNNI: one `vpdpbusd` per 32 multiply-adds.
#[target_feature(enable = "avx2,avxvnni")]
fn peak_i8_vnni(iterations: u64) -> i32 {
    let a = _mm256_set1_epi8(std::hint::black_box(3));
    let b = _mm256_set1_epi8(std::hint::black_box(-2));
    let mut acc = [_mm256_setzero_si256(); PEAK_CHAINS];
    for _ in 0..iterations {
        for v in &mut acc {
            *v = _mm256_dpbusd_avx_epi32(*v, a, b);
        }
    }
    acc.iter()
        .fold(0, |s, v| s.wrapping_add(_mm256_extract_epi32::<0>(*v)))
}

/// Operations per iteration of the AVX2 tier's peak loops (a multiply-add counts two).
pub(super) const PEAK_OPS_F32: f64 = (2 * 8 * PEAK_CHAINS) as f64;
pub(super) const PEAK_OPS_I8: f64 = (2 * 32 * PEAK_CHAINS) as f64;

pub(super) fn peak_f32(iterations: u64) -> f32 {
    // SAFETY: only placed in a table after AVX2 and FMA were detected.
    unsafe { peak_f32_avx2(iterations) }
}

pub(super) fn peak_i8(iterations: u64) -> i32 {
    // SAFETY: only placed in a table after AVX2 was detected.
    unsafe { peak_i8_avx2(iterations) }
}

pub(super) fn peak_i8_vnni_entry(iterations: u64) -> i32 {
    // SAFETY: only placed in a table after AVX2 and AVX-VNNI were detected.
    unsafe { peak_i8_vnni(iterations) }
}

/// Weight rows per pass of the panel kernels below (16 registers: 8 integer accumulators for 4 rows × the
/// two halves of a panel line, the line, and temporaries).
const AVX2_PANEL_ROWS: usize = 4;

/// One panel kernel per way of multiplying a panel line's half (8 rows × 4 codes) by a weight row's four
/// codes broadcast: `$unsigned` says whether the panel holds the codes unsigned (`MxPanel::code_flip`; then
/// each block's sum starts at the weight's `unsigned_bias`), `$magnitudes` whether the kernel reads the
/// codes' magnitudes too (made once per call, beside the panel), `$multiply_add(sum, half, magnitudes, w)`
/// adds the four products of each
/// lane into its i32. Both variants leave the exact i32 block sum the reference computes; then, as the
/// reference: convert, scale by `w_factor · a_factor`, one FMA per block in block order (float
/// accumulators in memory, four weight rows at a time).
macro_rules! mxint8_panel_kernel {
    (
        $(#[$doc:meta])* $entry:ident, $name:ident, $features:literal, $unsigned:expr, $magnitudes:expr,
        $multiply_add:ident $(, folded: $folded_entry:ident)?
    ) => {
        pub(super) fn $entry(
            panel: &[u8],
            factors: &[f32],
            bpr: usize,
            w: super::PanelWeights<'_>,
            out: &mut [f32],
            ldo: usize,
        ) {
            let groups = reference::panel_groups(panel, factors, bpr, &w, out, ldo, $unsigned);
            // SAFETY: only placed in a table after the CPU features `$features` were detected;
            // `panel_groups` checked every size the kernel reads or writes by (the unsigned bias too where
            // the kernel reads one).
            unsafe { $name::<false>(panel, factors, bpr, w, groups, out, ldo) }
        }

        $(
        /// The same kernel for weights folded for the conversion (`MxPanel::folded`): each block's
        /// `factors` entry is its base, its `unsigned_bias` entry the sum's start.
        pub(super) fn $folded_entry(
            panel: &[u8],
            factors: &[f32],
            bpr: usize,
            w: super::PanelWeights<'_>,
            out: &mut [f32],
            ldo: usize,
        ) {
            // Folded weights always carry starts.
            let groups = reference::panel_groups(panel, factors, bpr, &w, out, ldo, true);
            // SAFETY: as the unfolded entry.
            unsafe { $name::<true>(panel, factors, bpr, w, groups, out, ldo) }
        }
        )?

        $(#[$doc])*
        #[target_feature(enable = $features)]
        unsafe fn $name<const FOLDED: bool>(
            panel: &[u8],
            factors: &[f32],
            bpr: usize,
            w: super::PanelWeights<'_>,
            groups: usize,
            out: &mut [f32],
            ldo: usize,
        ) {
            const R: usize = AVX2_PANEL_ROWS;
            let row_bytes = bpr * 32;
            let (wc, wf, wb) = (
                w.codes.as_ptr(),
                w.factors.as_ptr(),
                w.unsigned_bias.as_ptr(),
            );
            // acc[r][i]: weight row r of the group, panel row i.
            let mut acc = [[0.0f32; 16]; 16];
            // |code| of every panel code, as unsigned bytes (|−128| is 128), laid out as the panel.
            let magnitudes: Vec<u8> = if $magnitudes {
                panel[..512 * bpr]
                    .iter()
                    .map(|&c| (c as i8).unsigned_abs())
                    .collect()
            } else {
                Vec::new()
            };
            // Without magnitudes the kernel reads none: any pointer to 512 * bpr bytes keeps the loads
            // below (unused, removed by the compiler) in bounds.
            let magnitudes_of = if $magnitudes { magnitudes.as_slice() } else { panel };
            for g in 0..groups {
                for quad in 0..16 / R {
                    let r0 = g * 16 + quad * R;
                    let mut facc = [[_mm256_setzero_ps(); 2]; R];
                    let mut rows: [*const u8; R] =
                        std::array::from_fn(|r| wc.wrapping_add((r0 + r) * row_bytes));
                    let mut magnitude_line = magnitudes_of.as_ptr();
                    let (mut line, mut a_factor, mut w_factor, mut bias) = (
                        panel.as_ptr(),
                        factors.as_ptr(),
                        wf.wrapping_add(r0 * bpr),
                        wb.wrapping_add(r0 * bpr),
                    );
                    for _ in 0..bpr {
                        let sums: [[__m256i; 2]; R] = std::array::from_fn(|r| {
                            if $unsigned || FOLDED {
                                // SAFETY: entry (r0 + r) * bpr + j of unsigned_bias (j: this block),
                                // in bounds (`panel_groups` checked its length for unsigned kernels).
                                [_mm256_set1_epi32(unsafe { *bias.add(r * bpr) }); 2]
                            } else {
                                [_mm256_setzero_si256(); 2]
                            }
                        });
                        let mut sums = sums;
                        for q in 0..8 {
                            // SAFETY: line q of this block: 64 bytes inside the panel
                            // (512 * bpr <= panel.len()).
                            let halves = unsafe {
                                [
                                    _mm256_loadu_si256(line.add(64 * q).cast()),
                                    _mm256_loadu_si256(line.add(64 * q + 32).cast()),
                                ]
                            };
                            // SAFETY: as the line: 64 bytes inside `magnitudes_of` (512 * bpr bytes).
                            let magnitude_halves = unsafe {
                                [
                                    _mm256_loadu_si256(magnitude_line.add(64 * q).cast()),
                                    _mm256_loadu_si256(magnitude_line.add(64 * q + 32).cast()),
                                ]
                            };
                            for (sum, row) in sums.iter_mut().zip(&rows) {
                                // SAFETY: codes 4q..4q+4 of this block of weight row r0 + r < groups *
                                // 16, inside w.codes: a 4-byte unaligned read.
                                let four = unsafe { row.add(4 * q).cast::<i32>().read_unaligned() };
                                let wv = _mm256_set1_epi32(four);
                                for ((s, half), magnitude) in
                                    sum.iter_mut().zip(&halves).zip(&magnitude_halves)
                                {
                                    *s = $multiply_add(*s, *half, *magnitude, wv);
                                }
                            }
                        }
                        let a_factors =
                            // SAFETY: this block's 16 activation factors (16 * bpr <= factors.len()).
                            unsafe { [_mm256_loadu_ps(a_factor), _mm256_loadu_ps(a_factor.add(8))] };
                        for (r, (f, sum)) in facc.iter_mut().zip(&sums).enumerate() {
                            // SAFETY: entry (r0 + r) * bpr + j of w.factors, in bounds.
                            let scale = _mm256_set1_ps(unsafe { *w_factor.add(r * bpr) });
                            for h in 0..2 {
                                f[h] = if FOLDED {
                                    // bits − base: the sum times the weight factor, exactly (`fold`).
                                    let scaled = _mm256_sub_ps(_mm256_castsi256_ps(sum[h]), scale);
                                    _mm256_fmadd_ps(scaled, a_factors[h], f[h])
                                } else {
                                    let s = _mm256_mul_ps(scale, a_factors[h]);
                                    _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[h]), s, f[h])
                                };
                            }
                        }
                        for row in &mut rows {
                            *row = row.wrapping_add(32);
                        }
                        line = line.wrapping_add(512);
                        magnitude_line = magnitude_line.wrapping_add(512);
                        a_factor = a_factor.wrapping_add(16);
                        w_factor = w_factor.wrapping_add(1);
                        bias = bias.wrapping_add(1);
                    }
                    for (r, f) in facc.iter().enumerate() {
                        let dst = &mut acc[quad * R + r];
                        // SAFETY: two 8-lane stores into the 16 floats of this row of `acc`.
                        unsafe {
                            _mm256_storeu_ps(dst.as_mut_ptr(), f[0]);
                            _mm256_storeu_ps(dst.as_mut_ptr().add(8), f[1]);
                        }
                    }
                }
                for i in 0..16 {
                    for (r, column) in acc.iter().enumerate() {
                        out[i * ldo + g * 16 + r] = match w.bias.get(g * 16 + r) {
                            Some(b) => column[i] + b,
                            None => column[i],
                        };
                    }
                }
            }
        }
    };
}

mxint8_panel_kernel!(
    /// [`reference::mxint8_panel`] on AVX2, bit for bit, for weights without the code −128. A panel line is
    /// two registers (rows 0-7, 8-15), each 32-bit lane four codes of one row. Against a weight row's four
    /// codes broadcast: `vpmaddubsw` multiplies the activation codes' magnitudes (unsigned, ≤ 128: made
    /// once per call) by the weight codes carrying the activations' signs (`vpsignb`; weight codes are not
    /// −128 here, so they stay in i8) and adds pairs into i16 (|pair| ≤ 2 · 128 · 127 < 2¹⁵: no
    /// saturation), then `vpmaddwd` by ones adds those into the lane's i32: the exact sum of its four
    /// products. Three `p01` instructions per 32 multiply-adds where [`mxint8_panel_any_weights`], which
    /// takes |w| per weight row instead, spends three and a half: ~12 % faster.
    mxint8_panel,
    mxint8_panel_avx2,
    "avx2,fma",
    false,
    true,
    multiply_add_magnitudes,
    folded: mxint8_panel_folded
);

mxint8_panel_kernel!(
    /// [`reference::mxint8_panel`] on AVX2, bit for bit, for every weight code (the table's kernel for
    /// matrices holding −128, `MxPanel::minus_128_weights`): `vpmaddubsw` multiplies |w| (unsigned, ≤ 128)
    /// by the activation codes carrying w's sign (`vpsignb`; activation codes are not −128 here, so they
    /// stay in i8), then `vpmaddwd` by ones, as [`mxint8_panel`].
    mxint8_panel_any_weights,
    mxint8_panel_avx2_any_weights,
    "avx2,fma",
    false,
    false,
    multiply_add_signed
);

mxint8_panel_kernel!(
    /// [`reference::mxint8_panel`] on AVX-VNNI, bit for bit: one `vpdpbusd` per half line and weight row
    /// (the AVX2 kernel spends four instructions there). `vpdpbusd` reads the line as unsigned: the panel
    /// holds each code + 128 (`MxPanel::code_flip`; flipping each half line here, once per four weight rows,
    /// was ~6 % of the kernel) and each (weight row, block) sum starts at `−128 · Σ codes`
    /// (`unsigned_bias`), which leaves the exact i32 block sum (|partial sums| < 2²⁰: no overflow), as the
    /// AVX-512 kernel does with 16 rows per register.
    mxint8_panel_vnni_entry,
    mxint8_panel_vnni,
    "avx2,fma,avxvnni",
    true,
    false,
    multiply_add_vnni,
    folded: mxint8_panel_vnni_folded_entry
);

#[target_feature(enable = "avx2")]
fn multiply_add_magnitudes(sum: __m256i, half: __m256i, magnitude: __m256i, w: __m256i) -> __m256i {
    let pairs = _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(w, half));
    _mm256_add_epi32(sum, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
}

#[target_feature(enable = "avx2")]
fn multiply_add_signed(sum: __m256i, half: __m256i, _magnitude: __m256i, w: __m256i) -> __m256i {
    let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(half, w));
    _mm256_add_epi32(sum, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
}

#[target_feature(enable = "avx2,avxvnni")]
fn multiply_add_vnni(sum: __m256i, half: __m256i, _magnitude: __m256i, w: __m256i) -> __m256i {
    _mm256_dpbusd_avx_epi32(sum, half, w)
}
