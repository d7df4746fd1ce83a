//! The AVX2 tier's row-wise ops: the masked attention softmax, LayerNorm, and bias (+ ReLU) over rows (the
//! AVX-VNNI tier uses them too). Split from `avx2.rs` (kernel files stay under 1,000 lines).
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use super::avx2::exp_vector as exp8;
use super::reference;

pub(super) fn softmax_masked(row: &mut [f32], keep: &[u8], scale: f32) {
    // SAFETY: only placed in a table after AVX2 and FMA were detected.
    unsafe { softmax_masked_avx2(row, keep, scale) }
}

/// [`reference::softmax_masked`] in 8-lane vectors, three passes as the AVX-512 version makes them (scale
/// and mask, with the maximum; `e^x` of the difference, masked entries set to 0, with the sum; the
/// product by the sum's reciprocal): the maximum is exact in any order; the sum is taken in 8 lanes (the values past the last
/// whole vector into lane 0), then across them in lane order; `e^x` is this tier's (the reference's for
/// those last values, as `EXP` does). Written out: the compiler left the masked loops scalar, and the
/// row was read five times.
#[target_feature(enable = "avx2,fma")]
fn softmax_masked_avx2(row: &mut [f32], keep: &[u8], scale: f32) {
    let n = row.len();
    let keep = &keep[..n];
    let whole = n - n % 8;
    let (pr, pk) = (row.as_mut_ptr(), keep.as_ptr());
    // All-ones in the lanes of the 8 entries from c whose keep byte is not 0 (c + 8 <= whole).
    let kept = |c: usize| -> __m256 {
        // SAFETY: keep[c .. c + 8] lies inside keep (c + 8 <= whole <= n).
        let bytes = unsafe { _mm_loadl_epi64(pk.add(c).cast()) };
        let dropped = _mm256_cmpeq_epi32(_mm256_cvtepu8_epi32(bytes), _mm256_setzero_si256());
        _mm256_castsi256_ps(_mm256_xor_si256(dropped, _mm256_set1_epi32(-1)))
    };
    let (neg_inf, vscale) = (_mm256_set1_ps(f32::NEG_INFINITY), _mm256_set1_ps(scale));
    let mut vmax = neg_inf;
    for c in (0..whole).step_by(8) {
        // SAFETY: row[c .. c + 8] lies inside the row (c + 8 <= whole <= n).
        unsafe {
            let v = _mm256_loadu_ps(pr.add(c));
            let s = _mm256_blendv_ps(neg_inf, _mm256_mul_ps(v, vscale), kept(c));
            _mm256_storeu_ps(pr.add(c), s);
            vmax = _mm256_max_ps(vmax, s);
        }
    }
    let mut lanes = [0.0f32; 8];
    // SAFETY: 8 floats into an 8-float array.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), vmax) };
    let mut max = lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for (s, &k) in row[whole..].iter_mut().zip(&keep[whole..]) {
        *s = if k != 0 {
            *s * scale
        } else {
            f32::NEG_INFINITY
        };
        max = max.max(*s);
    }
    if max == f32::NEG_INFINITY {
        row.fill(0.0); // every key is padding: the output row stays zero
        return;
    }
    let vm = _mm256_set1_ps(max);
    let mut vsum = _mm256_setzero_ps();
    for c in (0..whole).step_by(8) {
        // SAFETY: as in the first pass.
        unsafe {
            let e = _mm256_and_ps(exp8(_mm256_sub_ps(_mm256_loadu_ps(pr.add(c)), vm)), kept(c));
            _mm256_storeu_ps(pr.add(c), e);
            vsum = _mm256_add_ps(vsum, e);
        }
    }
    // SAFETY: 8 floats into an 8-float array.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), vsum) };
    let tail = &mut row[whole..];
    tail.iter_mut().for_each(|s| *s -= max);
    reference::exp_in_place(tail);
    for (s, &k) in tail.iter_mut().zip(&keep[whole..]) {
        if k == 0 {
            *s = 0.0;
        }
        lanes[0] += *s;
    }
    // Times the sum's reciprocal, as the AVX-512 version (within one ulp of the division).
    let inverse = 1.0 / lanes.iter().sum::<f32>();
    let vinverse = _mm256_set1_ps(inverse);
    for c in (0..whole).step_by(8) {
        // SAFETY: as in the first pass.
        unsafe {
            _mm256_storeu_ps(
                pr.add(c),
                _mm256_mul_ps(_mm256_loadu_ps(pr.add(c)), vinverse),
            )
        };
    }
    row[whole..].iter_mut().for_each(|p| *p *= inverse);
}

pub(super) fn layer_norm_row(
    row: &mut [f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    assert!(
        gamma.len() >= row.len() && beta.len() >= row.len(),
        "layer_norm_row: gamma and beta must cover the row"
    );
    assert!(
        residual.is_none_or(|r| r.len() >= row.len()),
        "layer_norm_row: the residual must cover the row"
    );
    // SAFETY: only placed in a table after AVX2 and FMA were detected; lengths checked above.
    unsafe { layer_norm_row_avx2(row, residual, gamma, beta, eps) }
}

/// [`reference::layer_norm_row`] with 4 f64 lanes, as the AVX-512 kernel does it with 8: the residual add,
/// both sums (in lane order, then across lanes: another order than the reference's, in f64) and the
/// per-element steps in the reference's precision (f64 normalize, rounded to f32, f32 multiply then add).
/// The last lanes of a row that is not a multiple of 4 long are loaded and stored under a mask.
#[target_feature(enable = "avx2,fma")]
unsafe fn layer_norm_row_avx2(
    row: &mut [f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    let n = row.len();
    let p = row.as_mut_ptr();
    // Lanes c .. c + min(4, n - c): all-ones in the lanes inside the row.
    let lanes = |c: usize| -> __m128i {
        let w = (n - c).min(4) as i32;
        _mm_cmpgt_epi32(_mm_set1_epi32(w), _mm_setr_epi32(0, 1, 2, 3))
    };
    // Masked loads and stores touch only lanes below n: inside row, residual, gamma and beta (checked by
    // the caller).
    let load = |src: *const f32, c: usize| {
        // SAFETY: see above.
        unsafe { _mm_maskload_ps(src.add(c), lanes(c)) }
    };
    let store = |c: usize, v: __m128| {
        // SAFETY: see above.
        unsafe { _mm_maskstore_ps(p.add(c), lanes(c), v) }
    };
    let mut sum = _mm256_setzero_pd();
    let mut c = 0;
    while c < n {
        let mut v = load(p, c);
        if let Some(r) = residual {
            v = _mm_add_ps(v, load(r.as_ptr(), c));
            store(c, v);
        }
        sum = _mm256_add_pd(sum, _mm256_cvtps_pd(v));
        c += 4;
    }
    let mean = horizontal_sum_pd(sum) / n as f64;
    let vmean = _mm256_set1_pd(mean);
    let mut sq = _mm256_setzero_pd();
    c = 0;
    while c < n {
        let inside = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(lanes(c)));
        let d = _mm256_and_pd(_mm256_sub_pd(_mm256_cvtps_pd(load(p, c)), vmean), inside);
        sq = _mm256_fmadd_pd(d, d, sq);
        c += 4;
    }
    let var = horizontal_sum_pd(sq) / n as f64;
    let inv = _mm256_set1_pd(1.0 / (var + f64::from(eps)).sqrt());
    c = 0;
    while c < n {
        let v = _mm256_cvtps_pd(load(p, c));
        let z = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_sub_pd(v, vmean), inv));
        let (g, b) = (load(gamma.as_ptr(), c), load(beta.as_ptr(), c));
        store(c, _mm_add_ps(_mm_mul_ps(z, g), b));
        c += 4;
    }
}

/// The four lanes' sum, (0 + 1) + (2 + 3).
#[target_feature(enable = "avx2")]
fn horizontal_sum_pd(v: __m256d) -> f64 {
    let pair = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd::<1>(v));
    _mm_cvtsd_f64(_mm_add_sd(pair, _mm_unpackhi_pd(pair, pair)))
}

pub(super) fn add_bias_rows(out: &mut [f32], bias: &[f32], relu: bool) {
    // SAFETY: only placed in a table after AVX2 was detected.
    unsafe { add_bias_rows_avx2(out, bias, relu) }
}

/// `reference::add_bias_rows` eight values at a time (each row's last few through the reference's
/// arithmetic): `max(v + b, 0)` is the reference's ReLU, as `vmaxps` returns its second operand, +0, for
/// NaN and for −0.
#[target_feature(enable = "avx2")]
fn add_bias_rows_avx2(out: &mut [f32], bias: &[f32], relu: bool) {
    let n = bias.len().max(1);
    let whole = bias.len() / 8 * 8;
    let zero = _mm256_setzero_ps();
    for row in out.chunks_mut(n) {
        if row.len() < n {
            reference::add_bias_rows(row, bias, relu);
            continue;
        }
        for c in (0..whole).step_by(8) {
            // SAFETY: values c .. c + 8 lie inside the row and the bias (c + 8 <= whole <= n).
            unsafe {
                let p = row.as_mut_ptr().add(c);
                let v = _mm256_add_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(bias.as_ptr().add(c)));
                _mm256_storeu_ps(p, if relu { _mm256_max_ps(v, zero) } else { v });
            }
        }
        reference::add_bias_rows(&mut row[whole..], &bias[whole..], relu);
    }
}
