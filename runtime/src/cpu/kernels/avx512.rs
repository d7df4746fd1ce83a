//! The AVX-512 tier's kernels (F, BW, DQ, VL and VNNI), 16 lanes where the AVX2 tier has 8, with the same
//! arithmetic order wherever the reference fixes one. Reachable only through the tables
//! [`super::x86_tables`] builds after detecting the features.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use super::ragged::Elementwise;

pub(super) fn dot_f32_rows3_avx512_entry(x: &[f32], k: usize, w: [&[f32]; 3], out: &mut [f32]) {
    // SAFETY: only placed in the table after AVX-512 F (and AVX2, FMA) were detected.
    unsafe { dot_f32_rows3_avx512(x, k, w, out) }
}

dot_f32_rows3_kernel!(
    dot_f32_rows3_avx512,
    "avx512f,avx2,fma",
    16,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_fmadd_ps,
    _mm512_reduce_add_ps
);

/// `e^x` in place, any length: the ragged end through the same 16-lane code under a mask (as GELU), so a
/// value's result does not depend on where it sits (the leftovers went to the AVX2 tier and the reference's
/// `expf`: a JSC sample's five-class softmax spent a tenth of its time in that scalar call).
pub(super) const EXP: Elementwise = Elementwise::whole(exp_in_place);

/// Exact-erf GELU in place, any length: the ragged end goes through the same 16-lane code under a mask, so
/// a value's result never depends on where it sits in the slice (the linear op may apply GELU per panel or
/// to the whole output).
pub(super) const GELU: Elementwise = Elementwise::whole(gelu_in_place);

fn exp_in_place(x: &mut [f32]) {
    // SAFETY: only placed in a table after AVX-512F was detected.
    unsafe { exp_in_place_avx512(x) }
}

fn gelu_in_place(x: &mut [f32]) {
    // SAFETY: only placed in a table after AVX-512F and AVX-512DQ were detected.
    unsafe { gelu_in_place_avx512(x) }
}

/// `floor` on 16 lanes (`vrndscaleps` toward -inf: the same values as `vroundps`' floor on 8).
#[target_feature(enable = "avx512f")]
fn floor16(x: __m512) -> __m512 {
    _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(x)
}

/// p · 2^n for integral n by `vscalefps`, rounded once: the same value as the AVX2 tier's two exact
/// power-of-two products, in one instruction where those took eleven (a third of `exp16`).
#[target_feature(enable = "avx512f")]
fn times_pow2_16(p: __m512, n: __m512) -> __m512 {
    _mm512_scalef_ps(p, n)
}

exp_kernel!(
    exp16, "avx512f", __m512,
    splat: _mm512_set1_ps, min: _mm512_min_ps, max: _mm512_max_ps, floor: floor16,
    fmadd: _mm512_fmadd_ps, fnmadd: _mm512_fnmadd_ps, mul: _mm512_mul_ps, add: _mm512_add_ps,
    times_pow2: times_pow2_16
);

#[target_feature(enable = "avx512f")]
fn exp_in_place_avx512(x: &mut [f32]) {
    let mut chunks = x.chunks_exact_mut(16);
    for c in &mut chunks {
        // SAFETY: the chunk holds exactly 16 values.
        unsafe { _mm512_storeu_ps(c.as_mut_ptr(), exp16(_mm512_loadu_ps(c.as_ptr()))) };
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let mask = first_lanes16(rest.len());
        // SAFETY: the mask covers exactly the rest's values (fewer than 16); masked-off lanes are neither
        // read nor written.
        unsafe {
            let v = _mm512_maskz_loadu_ps(mask, rest.as_ptr());
            _mm512_mask_storeu_ps(rest.as_mut_ptr(), mask, exp16(v));
        }
    }
}

#[target_feature(enable = "avx512f,avx512dq")]
fn gelu_in_place_avx512(x: &mut [f32]) {
    let n = x.len();
    let p = x.as_mut_ptr();
    let mut c = 0;
    while c < n {
        let mask = first_lanes16((n - c).min(16));
        // SAFETY: masked to the values at c .. min(c + 16, n), inside x.
        unsafe {
            let v = _mm512_maskz_loadu_ps(mask, p.add(c));
            _mm512_mask_storeu_ps(p.add(c), mask, gelu16(v));
        }
        c += 16;
    }
}

/// The mask of the first `width` (0..=16) of 16 lanes.
pub(super) fn first_lanes16(width: usize) -> __mmask16 {
    if width >= 16 {
        0xFFFF
    } else {
        (1 << width) - 1
    }
}

/// t = 1 / d for GELU by `vrcp14ps` and one Newton step (relative error ~2^-28, far inside the erf bound),
/// because a 512-bit division would be the kernel's slowest instruction.
#[target_feature(enable = "avx512f")]
fn reciprocal16(d: __m512) -> __m512 {
    let r = _mm512_rcp14_ps(d);
    _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(1.0)), r)
}

gelu_kernel!(
    gelu16, "avx512f,avx512dq", __m512,
    splat: _mm512_set1_ps, zero: _mm512_setzero_ps, mul: _mm512_mul_ps, add: _mm512_add_ps,
    sub: _mm512_sub_ps, fmadd: _mm512_fmadd_ps, fnmadd: _mm512_fnmadd_ps, and: _mm512_and_ps,
    and_not: _mm512_andnot_ps, or: _mm512_or_ps, exp: exp16, reciprocal: reciprocal16
);

#[allow(clippy::too_many_arguments)]
pub(super) fn gemm_f32_packed_avx512_entry(
    x: &[f32],
    rows: usize,
    k: usize,
    wt: &[f32],
    n: usize,
    out: &mut [f32],
    ldo: usize,
    epilogue: super::Epilogue<'_>,
) {
    // SAFETY: only placed in a table after AVX-512F was detected.
    unsafe { gemm_f32_packed_avx512(x, rows, k, wt, n, out, ldo, epilogue) }
}

gemm_f32_packed_kernel!(
    gemm_f32_packed_avx512, "avx512f", rows: 6, partial: [1, 2, 3, 4, 5], vectors: 4, lanes: 16,
    zero: _mm512_setzero_ps, load: _mm512_loadu_ps, splat: _mm512_set1_ps, fmadd: _mm512_fmadd_ps,
    store: store_first_lanes16, load_first: load_first_lanes16, add: _mm512_add_ps, max: _mm512_max_ps
);

pub(super) fn gemv_f32_packed_avx512_entry(
    x: &[f32],
    k: usize,
    wt: &[f32],
    n: usize,
    out: &mut [f32],
) {
    // SAFETY: only placed in a table after AVX-512F was detected; the kernel checks the sizes.
    unsafe { gemv_f32_packed_avx512(x, k, wt, n, out) }
}

pub(super) fn gemv_mxint8_packed_avx512_entry(
    x: &[f32],
    k: usize,
    codes: &[u8],
    factors: &[f32],
    n: usize,
    out: &mut [f32],
) {
    // SAFETY: only placed in a table after AVX-512F was detected; the kernel checks the sizes.
    unsafe { gemv_mxint8_packed_avx512(x, k, codes, factors, n, out) }
}

/// 16 i8 codes at `p` as f32 lanes.
///
/// # Safety
/// `p .. p + 16` must be readable.
#[target_feature(enable = "avx512f")]
unsafe fn codes16(p: *const u8) -> __m512 {
    // SAFETY: the caller's 16 bytes.
    _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(unsafe { _mm_loadu_si128(p.cast()) }))
}

gemv_packed_kernels!(
    f32: gemv_f32_packed_avx512, mx: gemv_mxint8_packed_avx512, "avx512f", __m512, lanes: 16,
    zero: _mm512_setzero_ps, load: _mm512_loadu_ps, splat: _mm512_set1_ps, fmadd: _mm512_fmadd_ps,
    add: _mm512_add_ps, mul: _mm512_mul_ps, store: store_first_lanes16, load_codes: codes16
);

/// The first `width` (1..=16) values at `p` in the low lanes, zeros above (a masked load).
///
/// # Safety
/// `p .. p + width` must be readable.
#[target_feature(enable = "avx512f")]
unsafe fn load_first_lanes16(p: *const f32, width: usize) -> __m512 {
    // SAFETY: the mask covers exactly the caller's `width` values.
    unsafe { _mm512_maskz_loadu_ps(first_lanes16(width), p) }
}

pub(super) fn transpose_f32_avx512_entry(
    src: &[f32],
    src_ld: usize,
    rows: usize,
    cols: usize,
    dst: &mut [f32],
    dst_ld: usize,
) {
    // SAFETY: only placed in a table after AVX-512F was detected.
    unsafe { transpose_f32_avx512(src, src_ld, rows, cols, dst, dst_ld) }
}

transpose_f32_kernel!(
    transpose_f32_avx512, "avx512f", 16, __m512, load: _mm512_loadu_ps, store: _mm512_storeu_ps,
    transpose: transpose16
);

/// Writes the first `width` (1..=16) lanes of `v` at `p` (a masked store).
///
/// # Safety
/// `p .. p + width` must be writable.
#[target_feature(enable = "avx512f")]
unsafe fn store_first_lanes16(p: *mut f32, width: usize, v: __m512) {
    // SAFETY: the mask covers exactly the caller's `width` values.
    unsafe { _mm512_mask_storeu_ps(p, first_lanes16(width), v) };
}

pub(super) fn softmax_masked_avx512_entry(row: &mut [f32], keep: &[u8], scale: f32) {
    // SAFETY: only placed in a table after AVX-512F/BW/VL, AVX2 and FMA were detected.
    unsafe { softmax_masked_avx512(row, keep, scale) }
}

/// [`super::reference::softmax_masked`] 16 lanes at a time: the maximum is exact in any order; the sum is
/// accumulated in 16 lanes (a different order) and the probabilities multiplied by its reciprocal instead
/// of divided (one more rounding): within the bound the test derives; e^x is [`exp16`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn softmax_masked_avx512(row: &mut [f32], keep: &[u8], scale: f32) {
    let n = row.len();
    assert!(keep.len() >= n);
    let (pr, pk) = (row.as_mut_ptr(), keep.as_ptr());
    let lanes = |c: usize| -> __mmask16 {
        let w = (n - c).min(16);
        if w == 16 {
            0xFFFF
        } else {
            (1 << w) - 1
        }
    };
    // Kept lanes of the 16 starting at c (within the row): keep[j] != 0.
    let kept = |c: usize, m: __mmask16| -> __mmask16 {
        // SAFETY: the masked load reads only keep[c .. c + width], inside keep.
        let k = unsafe { _mm_maskz_loadu_epi8(m, pk.add(c).cast()) };
        _mm_mask_cmpneq_epi8_mask(m, k, _mm_setzero_si128())
    };
    let (neg_inf, vscale) = (_mm512_set1_ps(f32::NEG_INFINITY), _mm512_set1_ps(scale));
    let mut vmax = neg_inf;
    let mut c = 0;
    while c < n {
        let m = lanes(c);
        let k = kept(c, m);
        // SAFETY: masked to the lanes inside the row.
        let v = unsafe { _mm512_maskz_loadu_ps(m, pr.add(c)) };
        let s = _mm512_mask_mul_ps(neg_inf, k, v, vscale);
        // SAFETY: as above.
        unsafe { _mm512_mask_storeu_ps(pr.add(c), m, s) };
        vmax = _mm512_max_ps(vmax, s);
        c += 16;
    }
    let max = _mm512_reduce_max_ps(vmax);
    if max == f32::NEG_INFINITY {
        row.fill(0.0); // every key is padding: the output row stays zero
        return;
    }
    let vm = _mm512_set1_ps(max);
    let mut vsum = _mm512_setzero_ps();
    c = 0;
    while c < n {
        let m = lanes(c);
        let k = kept(c, m);
        // SAFETY: masked to the lanes inside the row.
        let v = unsafe { _mm512_maskz_loadu_ps(m, pr.add(c)) };
        let e = _mm512_maskz_mov_ps(k, exp16(_mm512_sub_ps(v, vm)));
        // SAFETY: as above.
        unsafe { _mm512_mask_storeu_ps(pr.add(c), m, e) };
        vsum = _mm512_add_ps(vsum, e);
        c += 16;
    }
    // Times the sum's reciprocal (within one ulp of the division, inside the test's bound): a 512-bit
    // division per 16 probabilities was a third of the kernel's time.
    let inverse = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(vsum));
    c = 0;
    while c < n {
        let m = lanes(c);
        // SAFETY: masked to the lanes inside the row.
        unsafe {
            let v = _mm512_maskz_loadu_ps(m, pr.add(c));
            _mm512_mask_storeu_ps(pr.add(c), m, _mm512_mul_ps(v, inverse));
        }
        c += 16;
    }
}

pub(super) fn layer_norm_row_avx512_entry(
    row: &mut [f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    // SAFETY: only placed in a table after AVX-512F/DQ/VL were detected.
    unsafe { layer_norm_row_avx512(row, residual, gamma, beta, eps) }
}

/// [`super::reference::layer_norm_row`] with 8 f64 lanes: the residual add, both sums (in lane order, then
/// across lanes: a different order than the reference's, in f64) and the per-element steps in the reference's
/// precision (f64 normalize, rounded to f32, f32 multiply then add).
#[target_feature(enable = "avx512f,avx512dq,avx512vl")]
unsafe fn layer_norm_row_avx512(
    row: &mut [f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    let n = row.len();
    assert!(gamma.len() >= n && beta.len() >= n && residual.is_none_or(|r| r.len() >= n));
    let p = row.as_mut_ptr();
    let mask = |c: usize| -> __mmask8 {
        let w = (n - c).min(8);
        if w == 8 {
            0xFF
        } else {
            (1 << w) - 1
        }
    };
    // Masked loads and stores of lanes c .. c + min(8, n - c): inside row, residual, gamma and beta (lengths
    // checked above); masked-off lanes are not touched.
    let load = |src: *const f32, c: usize| {
        // SAFETY: see above.
        unsafe { _mm256_maskz_loadu_ps(mask(c), src.add(c)) }
    };
    let store = |c: usize, v: __m256| {
        // SAFETY: see above.
        unsafe { _mm256_mask_storeu_ps(p.add(c), mask(c), v) }
    };
    let mut sum = _mm512_setzero_pd();
    let mut c = 0;
    while c < n {
        let mut v = load(p, c);
        if let Some(r) = residual {
            v = _mm256_add_ps(v, load(r.as_ptr(), c));
            store(c, v);
        }
        sum = _mm512_add_pd(sum, _mm512_cvtps_pd(v));
        c += 8;
    }
    let mean = _mm512_reduce_add_pd(sum) / n as f64;
    let vmean = _mm512_set1_pd(mean);
    let mut sq = _mm512_setzero_pd();
    c = 0;
    while c < n {
        let v = _mm512_cvtps_pd(load(p, c));
        let d = _mm512_maskz_sub_pd(mask(c), v, vmean);
        sq = _mm512_fmadd_pd(d, d, sq);
        c += 8;
    }
    let var = _mm512_reduce_add_pd(sq) / n as f64;
    let inv = _mm512_set1_pd(1.0 / (var + f64::from(eps)).sqrt());
    c = 0;
    while c < n {
        let v = _mm512_cvtps_pd(load(p, c));
        let z = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_sub_pd(v, vmean), inv));
        let (g, b) = (load(gamma.as_ptr(), c), load(beta.as_ptr(), c));
        store(c, _mm256_add_ps(_mm256_mul_ps(z, g), b));
        c += 8;
    }
}

/// Whole blocks of a dense MXINT8 row · f32 activations (the table's `MxDot` sends a ragged last block to
/// the reference).
pub(super) fn mxint8_dot_f32_avx512_entry(codes: &[u8], steps: &[f32], x: &[f32]) -> f32 {
    assert!(codes.len() == 32 * steps.len() && x.len() == codes.len());
    // SAFETY: only placed in a table after AVX-512F (and AVX2, FMA) were detected.
    unsafe { mxint8_dot_f32_avx512(codes, steps, x) }
}

/// [`mxint8_dot_f32_avx2`] on 16 lanes with four independent running totals (blocks j mod 4), so the FMA
/// latency chains overlap and the weight bytes stream at memory speed. `codes` and `x` hold 32 values per
/// step.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn mxint8_dot_f32_avx512(codes: &[u8], steps: &[f32], x: &[f32]) -> f32 {
    let (pc, px) = (codes.as_ptr(), x.as_ptr());
    let mut totals = [_mm512_setzero_ps(); 4];
    for (j, &step) in steps.iter().enumerate() {
        let at = 32 * j;
        // SAFETY: at + 32 <= 32 * steps.len() = x.len() = codes.len() (the entry checked): two 16-code,
        // 16-float loads.
        let (c0, c1, x0, x1) = unsafe {
            (
                _mm_loadu_si128(pc.add(at).cast()),
                _mm_loadu_si128(pc.add(at + 16).cast()),
                _mm512_loadu_ps(px.add(at)),
                _mm512_loadu_ps(px.add(at + 16)),
            )
        };
        let block = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(c0)), x0);
        let block = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(c1)), x1, block);
        totals[j % 4] = _mm512_fmadd_ps(block, _mm512_set1_ps(step), totals[j % 4]);
    }
    let total = _mm512_add_ps(
        _mm512_add_ps(totals[0], totals[1]),
        _mm512_add_ps(totals[2], totals[3]),
    );
    _mm512_reduce_add_ps(total)
}

/// Independent FMA chains in the peak loops (4-cycle latency × 2 ports, plus margin).
const PEAK_CHAINS: usize = 10;

/// `iterations` rounds of 16-lane FMAs on [`PEAK_CHAINS`] registers: the AVX-512 tier's f32 ceiling.
#[target_feature(enable = "avx512f")]
fn peak_f32_avx512(iterations: u64) -> f32 {
    let a = _mm512_set1_ps(std::hint::black_box(0.999_999_9));
    let b = _mm512_set1_ps(std::hint::black_box(1e-7));
    let mut acc = [_mm512_set1_ps(1.0); PEAK_CHAINS];
    for _ in 0..iterations {
        for v in &mut acc {
            *v = _mm512_fmadd_ps(*v, a, b);
        }
    }
    acc.iter().map(|v| _mm512_reduce_add_ps(*v)).sum()
}

/// i8 × i8 with AVX-512 VNNI: one `vpdpbusd` per 64 multiply-adds.
#[target_feature(enable = "avx512f,avx512vnni")]
fn peak_i8_avx512(iterations: u64) -> i32 {
    let a = _mm512_set1_epi8(std::hint::black_box(3));
    let b = _mm512_set1_epi8(std::hint::black_box(-2));
    let mut acc = [_mm512_setzero_si512(); PEAK_CHAINS];
    for _ in 0..iterations {
        for v in &mut acc {
            *v = _mm512_dpbusd_epi32(*v, a, b);
        }
    }
    acc.iter()
        .fold(0, |s, v| s.wrapping_add(_mm512_reduce_add_epi32(*v)))
}

/// Operations per iteration of the AVX-512 tier's peak loops (a multiply-add counts two).
pub(super) const PEAK_OPS_F32: f64 = (2 * 16 * PEAK_CHAINS) as f64;
pub(super) const PEAK_OPS_I8: f64 = (2 * 64 * PEAK_CHAINS) as f64;

pub(super) fn peak_f32(iterations: u64) -> f32 {
    // SAFETY: only placed in a table after AVX-512F was detected.
    unsafe { peak_f32_avx512(iterations) }
}

pub(super) fn peak_i8(iterations: u64) -> i32 {
    // SAFETY: only placed in a table after AVX-512F and AVX-512 VNNI were detected.
    unsafe { peak_i8_avx512(iterations) }
}

pub(super) fn mxint8_panel_avx512_entry(
    panel: &[u8],
    factors: &[f32],
    bpr: usize,
    w: super::PanelWeights<'_>,
    out: &mut [f32],
    ldo: usize,
) {
    let groups = super::reference::panel_groups(panel, factors, bpr, &w, out, ldo, true);
    // SAFETY: only placed in the table after AVX-512 F/BW/VNNI were detected; `panel_groups` checked every
    // size `mxint8_panel_avx512` reads or writes by.
    unsafe { mxint8_panel_avx512::<false>(panel, factors, bpr, w, groups, out, ldo) }
}

/// [`mxint8_panel_avx512_entry`] for weights folded for the conversion (`MxPanel::folded`: each block's
/// `factors` entry is its conversion base, its `unsigned_bias` entry the sum's start).
pub(super) fn mxint8_panel_folded_avx512_entry(
    panel: &[u8],
    factors: &[f32],
    bpr: usize,
    w: super::PanelWeights<'_>,
    out: &mut [f32],
    ldo: usize,
) {
    let groups = super::reference::panel_groups(panel, factors, bpr, &w, out, ldo, true);
    // SAFETY: as `mxint8_panel_avx512_entry`.
    unsafe { mxint8_panel_avx512::<true>(panel, factors, bpr, w, groups, out, ldo) }
}

/// One `vpdpbusd` of panel line `$q` (codes stored unsigned) against code group `$q` of each of 16 weight rows
/// (`{p0}`, `{p4}`, `{p8}`, `{p12}`: rows 0, 4, 8, 12; `{st}` and `{st3}`: one and three row strides).
/// Not formatted: one instruction per line reads as the assembly it is.
#[rustfmt::skip]
macro_rules! block_line {
    ($q:literal) => {
        concat!(
            "vmovdqu64 {t}, zmmword ptr [{line} + 64*", $q, "]\n",
            "vpdpbusd {s0}, {t}, dword ptr [{p0} + 4*", $q, "]{{1to16}}\n",
            "vpdpbusd {s1}, {t}, dword ptr [{p0} + {st} + 4*", $q, "]{{1to16}}\n",
            "vpdpbusd {s2}, {t}, dword ptr [{p0} + 2*{st} + 4*", $q, "]{{1to16}}\n",
            "vpdpbusd {s3}, {t}, dword ptr [{p0} + {st3} + 4*", $q, "]{{1to16}}\n",
            "vpdpbusd {s4}, {t}, dword ptr [{p4} + 4*", $q, "]{{1to16}}\n",
            "vpdpbusd {s5}, {t}, dword ptr [{p4} + {st} + 4*", $q, "]{{1to16}}\n",
            "vpdpbusd {s6}, {t}, dword ptr [{p4} + 2*{st} + 4*", $q, "]{{1to16}}\n",
            "vpdpbusd {s7}, {t}, dword ptr [{p4} + {st3} + 4*", $q, "]{{1to16}}\n",
            "vpdpbusd {s8}, {t}, dword ptr [{p8} + 4*", $q, "]{{1to16}}\n",
            "vpdpbusd {s9}, {t}, dword ptr [{p8} + {st} + 4*", $q, "]{{1to16}}\n",
            "vpdpbusd {s10}, {t}, dword ptr [{p8} + 2*{st} + 4*", $q, "]{{1to16}}\n",
            "vpdpbusd {s11}, {t}, dword ptr [{p8} + {st3} + 4*", $q, "]{{1to16}}\n",
            "vpdpbusd {s12}, {t}, dword ptr [{p12} + 4*", $q, "]{{1to16}}\n",
            "vpdpbusd {s13}, {t}, dword ptr [{p12} + {st} + 4*", $q, "]{{1to16}}\n",
            "vpdpbusd {s14}, {t}, dword ptr [{p12} + 2*{st} + 4*", $q, "]{{1to16}}\n",
            "vpdpbusd {s15}, {t}, dword ptr [{p12} + {st3} + 4*", $q, "]{{1to16}}",
        )
    };
}

/// One block of the panel kernel's integer work: `sums[r] += ` the 16 panel rows' (unsigned) codes · weight
/// row `r`'s 32 codes, for the 16 rows at `row0 + r · row_bytes`. In assembly because the order matters and
/// the compiler would not keep it: line by line, 16 independent `vpdpbusd` chains interleaved. Compiled
/// from intrinsics, it ran each row's eight `vpdpbusd` back to back (to spare registers), one dependent
/// chain at a time, which left the unit waiting on their latency: this is ~17 % faster (one thread,
/// [16 × 384] · [1536 × 384]ᵀ panels, 455 → 535 GOP/s on Sapphire Rapids).
///
/// # Safety
/// AVX-512 F/BW/VNNI are available; `line` points at 512 readable bytes; for r < 16, `row0 + r · row_bytes`
/// at 32 readable bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn block_sums(line: *const u8, row0: *const u8, row_bytes: usize, sums: &mut [__m512i; 16]) {
    let [mut s0, mut s1, mut s2, mut s3, mut s4, mut s5, mut s6, mut s7, mut s8, mut s9, mut s10, mut s11, mut s12, mut s13, mut s14, mut s15] =
        *sums;
    // SAFETY: the caller's contract: every address below is `line + 64 q + 0..64` or
    // `row0 + r · row_bytes + 4 q + 0..4` (q < 8, r < 16). Reads only, no stack, flags untouched.
    unsafe {
        std::arch::asm!(
            block_line!(0), block_line!(1), block_line!(2), block_line!(3),
            block_line!(4), block_line!(5), block_line!(6), block_line!(7),
            line = in(reg) line,
            p0 = in(reg) row0,
            p4 = in(reg) row0.wrapping_add(4 * row_bytes),
            p8 = in(reg) row0.wrapping_add(8 * row_bytes),
            p12 = in(reg) row0.wrapping_add(12 * row_bytes),
            st = in(reg) row_bytes,
            st3 = in(reg) 3 * row_bytes,
            t = out(zmm_reg) _,
            s0 = inout(zmm_reg) s0, s1 = inout(zmm_reg) s1, s2 = inout(zmm_reg) s2,
            s3 = inout(zmm_reg) s3, s4 = inout(zmm_reg) s4, s5 = inout(zmm_reg) s5,
            s6 = inout(zmm_reg) s6, s7 = inout(zmm_reg) s7, s8 = inout(zmm_reg) s8,
            s9 = inout(zmm_reg) s9, s10 = inout(zmm_reg) s10, s11 = inout(zmm_reg) s11,
            s12 = inout(zmm_reg) s12, s13 = inout(zmm_reg) s13, s14 = inout(zmm_reg) s14,
            s15 = inout(zmm_reg) s15,
            options(nostack, readonly, preserves_flags),
        );
    }
    *sums = [
        s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15,
    ];
}

/// [`super::reference::mxint8_panel`] on AVX-512 VNNI, bit for bit. A panel line (64 bytes: four codes of
/// each of the 16 rows) is one register, so `vpdpbusd` with a weight row's four codes broadcast adds four
/// products into each row's lane: one instruction per 64 multiply-adds, where the row kernels spend about
/// five. `vpdpbusd` reads its first operand as unsigned: the panel holds each code + 128 (`MxPanel::code_flip`:
/// the quantizer XORs the sign bit once, where the kernel did it once per weight group, ~3 % of its time) and
/// each (weight row, block) sum starts at `−128 · Σ codes` (`unsigned_bias`), which leaves the exact i32
/// block sum the reference computes (|partial sums| < 2²⁰: no overflow). Then, as the reference: convert,
/// scale by `w_factor · a_factor`, one FMA per block in block order.
///
/// The 16 weight rows of a group at once: 16 integer accumulators (16 independent `vpdpbusd` chains per
/// line, [`block_sums`]), the 16 float ones left to the compiler; the group's 16 × 16 results are
/// transposed in registers into the output rows. (Eight rows at a time, with every accumulator in a
/// register, measured ~12 % slower on Zen 5.)
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn mxint8_panel_avx512<const FOLDED: bool>(
    panel: &[u8],
    factors: &[f32],
    bpr: usize,
    w: super::PanelWeights<'_>,
    groups: usize,
    out: &mut [f32],
    ldo: usize,
) {
    let row_bytes = bpr * 32;
    let (wc, wf, wb) = (
        w.codes.as_ptr(),
        w.factors.as_ptr(),
        w.unsigned_bias.as_ptr(),
    );
    for g in 0..groups {
        let r0 = g * 16;
        let mut acc = [_mm512_setzero_ps(); 16];
        // Each weight row's current block, advanced 32 bytes per block.
        let mut rows: [*const u8; 16] =
            std::array::from_fn(|r| wc.wrapping_add((r0 + r) * row_bytes));
        let (mut bias, mut w_factor) = (wb.wrapping_add(r0 * bpr), wf.wrapping_add(r0 * bpr));
        let (mut line, mut a_factor) = (panel.as_ptr(), factors.as_ptr());
        for _ in 0..bpr {
            let mut sums = [_mm512_setzero_si512(); 16];
            for (r, sum) in sums.iter_mut().enumerate() {
                // SAFETY: entry (r0 + r) * bpr + j of unsigned_bias (j: this block), in bounds.
                *sum = _mm512_set1_epi32(unsafe { *bias.add(r * bpr) });
            }
            // SAFETY: `line` is this block's 512 bytes of the panel (512 * bpr <= panel.len()); rows[r]
            // = rows[0] + r * row_bytes is this block's 32 codes of weight row r0 + r < groups * 16, inside
            // w.codes; the asm reads only those, writes only the sums.
            unsafe { block_sums(line, rows[0], row_bytes, &mut sums) };
            // SAFETY: this block's 16 activation factors (16 * bpr <= factors.len()).
            let a_factors = unsafe { _mm512_loadu_ps(a_factor) };
            for (r, (f, sum)) in acc.iter_mut().zip(&sums).enumerate() {
                // SAFETY: entry (r0 + r) * bpr + j of w.factors, in bounds.
                let w_factor = _mm512_set1_ps(unsafe { *w_factor.add(r * bpr) });
                *f = if FOLDED {
                    // The sum's bits over its start are `base + sum · 2^k` as an f32 (`fold`): minus the
                    // base, `sum · w_factor` exactly.
                    let scaled = _mm512_sub_ps(_mm512_castsi512_ps(*sum), w_factor);
                    _mm512_fmadd_ps(scaled, a_factors, *f)
                } else {
                    let scale = _mm512_mul_ps(w_factor, a_factors);
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(*sum), scale, *f)
                };
            }
            for row in &mut rows {
                *row = row.wrapping_add(32);
            }
            bias = bias.wrapping_add(1);
            w_factor = w_factor.wrapping_add(1);
            line = line.wrapping_add(512);
            a_factor = a_factor.wrapping_add(16);
        }
        store_panel_outputs(&acc, w.bias, g, out, ldo);
    }
}

/// A group's 16 × 16 results (`acc[r]` lane `i`: weight row `g · 16 + r`, panel row `i`) transposed into
/// output rows `i`, columns `g · 16 ..`, plus the group's bias where there is one (`bias`: every group's, or
/// empty). Shared by the VNNI and AMX panel kernels.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) fn store_panel_outputs(
    acc: &[__m512; 16],
    bias: &[f32],
    g: usize,
    out: &mut [f32],
    ldo: usize,
) {
    let mut rows = transpose16(acc);
    if !bias.is_empty() {
        // SAFETY: the group's 16 bias values (bias.len() == groups * 16, checked by `panel_groups`).
        let b = unsafe { _mm512_loadu_ps(bias.as_ptr().add(g * 16)) };
        rows.iter_mut()
            .for_each(|row| *row = _mm512_add_ps(*row, b));
    }
    for (i, row) in rows.iter().enumerate() {
        // SAFETY: i < 16 and g * 16 + 16 <= ldo, out.len() >= 15 * ldo + groups * 16 (`panel_groups`).
        unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(i * ldo + g * 16), *row) };
    }
}

/// 16 × 16 f32 transpose in registers: `out[i]` lane `r` = `m[r]` lane `i`.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) fn transpose16(m: &[__m512; 16]) -> [__m512; 16] {
    let mut t = [_mm512_setzero_ps(); 16];
    for k in 0..8 {
        t[2 * k] = _mm512_unpacklo_ps(m[2 * k], m[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_ps(m[2 * k], m[2 * k + 1]);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for q in 0..4 {
        let b = 4 * q;
        u[b] = _mm512_shuffle_ps::<0x44>(t[b], t[b + 2]);
        u[b + 1] = _mm512_shuffle_ps::<0xEE>(t[b], t[b + 2]);
        u[b + 2] = _mm512_shuffle_ps::<0x44>(t[b + 1], t[b + 3]);
        u[b + 3] = _mm512_shuffle_ps::<0xEE>(t[b + 1], t[b + 3]);
    }
    for h in 0..2 {
        let b = 8 * h;
        for c in 0..4 {
            t[b + c] = _mm512_shuffle_f32x4::<0x88>(u[b + c], u[b + 4 + c]);
            t[b + 4 + c] = _mm512_shuffle_f32x4::<0xDD>(u[b + c], u[b + 4 + c]);
        }
    }
    let mut out = [_mm512_setzero_ps(); 16];
    for c in 0..8 {
        out[c] = _mm512_shuffle_f32x4::<0x88>(t[c], t[8 + c]);
        out[c + 8] = _mm512_shuffle_f32x4::<0xDD>(t[c], t[8 + c]);
    }
    out
}

pub(super) fn add_bias_rows_avx512_entry(out: &mut [f32], bias: &[f32], relu: bool) {
    // SAFETY: only placed in a table after AVX-512F was detected.
    unsafe { add_bias_rows_avx512(out, bias, relu) }
}

/// `reference::add_bias_rows` sixteen values at a time, each row's last few under a mask (an MLP's
/// five-class output row is one masked vector): `max(v + b, 0)` is the reference's ReLU, as `vmaxps`
/// returns its second operand, +0, for NaN and for −0.
#[target_feature(enable = "avx512f")]
fn add_bias_rows_avx512(out: &mut [f32], bias: &[f32], relu: bool) {
    let n = bias.len().max(1);
    let zero = _mm512_setzero_ps();
    for row in out.chunks_mut(n) {
        let width = row.len().min(bias.len());
        for c in (0..width).step_by(16) {
            let mask = ((1u32 << (width - c).min(16)) - 1) as __mmask16;
            // SAFETY: the masked lanes are values c .. min(c + 16, width) of the row and the bias, inside
            // both; the others are neither read nor written.
            unsafe {
                let p = row.as_mut_ptr().add(c);
                let v = _mm512_add_ps(
                    _mm512_maskz_loadu_ps(mask, p),
                    _mm512_maskz_loadu_ps(mask, bias.as_ptr().add(c)),
                );
                _mm512_mask_storeu_ps(p, mask, if relu { _mm512_max_ps(v, zero) } else { v });
            }
        }
    }
}
