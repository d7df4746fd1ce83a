//! AVX2+FMA kernels, reachable only through [`kernels`], which returns them only when the CPU has both.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use super::Kernels;

/// The AVX2+FMA table, if this CPU supports it.
pub fn kernels() -> Option<Kernels> {
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        Some(Kernels {
            isa: "avx2+fma",
            dot_f32,
            dot_i8,
            mxint8_rows,
            sparse_dot,
        })
    } else {
        None
    }
}

fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: this function is only placed in the kernel table by `kernels()`, after AVX2 and FMA were detected.
    unsafe { dot_f32_avx2(a, b) }
}

fn dot_i8(a: &[u8], b: &[u8]) -> i32 {
    // SAFETY: as above, only reachable after AVX2 was detected.
    unsafe { dot_i8_avx2(a, b) }
}

fn mxint8_rows(
    a_codes: &[u8],
    a_scales: &[f32],
    w_codes: &[u8],
    w_scales: &[f32],
    out: &mut [f32],
) {
    // SAFETY: only reachable after AVX2 and FMA were detected.
    unsafe { mxint8_rows_avx2(a_codes, a_scales, w_codes, w_scales, out) }
}

/// The 8 exact lane sums of one block: `vpmaddwd` on sign-extended halves (lane l: positions 2l, 2l+1 of the
/// low half plus 16+2l, 17+2l of the high half), as f32 (exact: |p| <= 65536).
#[target_feature(enable = "avx2")]
fn block_lanes(x: __m256i, wl: __m256i, wh: __m256i) -> __m256 {
    let (xl, xh) = (
        _mm256_cvtepi8_epi16(_mm256_castsi256_si128(x)),
        _mm256_cvtepi8_epi16(_mm256_extracti128_si256(x, 1)),
    );
    _mm256_cvtepi32_ps(_mm256_add_epi32(
        _mm256_madd_epi16(xl, wl),
        _mm256_madd_epi16(xh, wh),
    ))
}

#[target_feature(enable = "avx2,fma")]
fn hsum_reference_order(acc: __m256) -> f32 {
    // ((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7))
    let q = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    let r = _mm_add_ps(q, _mm_movehl_ps(q, q));
    _mm_cvtss_f32(_mm_add_ss(r, _mm_shuffle_ps(r, r, 1)))
}

/// Four activation rows at a time share each weight block's sign extension and keep four independent FMA
/// chains; each row's arithmetic is the reference's, in the same order, so results are bit-identical.
#[target_feature(enable = "avx2,fma")]
unsafe fn mxint8_rows_avx2(
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
        let mut acc = [_mm256_setzero_ps(); 4];
        for j in 0..blocks {
            // SAFETY: j < blocks and w_codes.len() >= 32 * blocks (asserted).
            let w = unsafe { _mm256_loadu_si256(pw.add(32 * j).cast()) };
            let (wl, wh) = (
                _mm256_cvtepi8_epi16(_mm256_castsi256_si128(w)),
                _mm256_cvtepi8_epi16(_mm256_extracti128_si256(w, 1)),
            );
            let ws = w_scales[j];
            for (g, acc) in acc.iter_mut().enumerate().take(group) {
                let row = i + g;
                // SAFETY: row < rows and j < blocks: the 32 bytes at (row * blocks + j) * 32 are inside a_codes.
                let x = unsafe { _mm256_loadu_si256(pa.add((row * blocks + j) * 32).cast()) };
                let s = _mm256_set1_ps(a_scales[row * blocks + j] * ws);
                *acc = _mm256_fmadd_ps(block_lanes(x, wl, wh), s, *acc);
            }
        }
        for g in 0..group {
            out[i + g] = hsum_reference_order(acc[g]);
        }
        i += group;
    }
}

fn sparse_dot(values: &[f32], cols: &[u32], x: &[f32]) -> f32 {
    // The gathers below read x[cols[k]]: every index must be in bounds (a cheap, vectorised check).
    assert!(
        cols.iter().all(|&c| (c as usize) < x.len()) && x.len() <= i32::MAX as usize,
        "sparse column out of range"
    );
    // SAFETY: only reachable after AVX2 and FMA were detected; indices were checked just above.
    unsafe { sparse_dot_avx2(values, cols, x) }
}

/// Eight stored entries per step: gather their activations, FMA with the values; tail in scalar code.
#[target_feature(enable = "avx2,fma")]
unsafe fn sparse_dot_avx2(values: &[f32], cols: &[u32], x: &[f32]) -> f32 {
    let n = values.len().min(cols.len());
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
    let q = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    let r = _mm_add_ps(q, _mm_movehl_ps(q, q));
    let mut sum = _mm_cvtss_f32(_mm_add_ss(r, _mm_shuffle_ps(r, r, 1)));
    for j in k..n {
        sum += values[j] * x[cols[j] as usize];
    }
    sum
}

/// Four 8-wide FMA accumulators, then a horizontal sum; the tail (len % 32) is done in scalar code.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_f32_avx2(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
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
    let hi = _mm256_extractf128_ps(s, 1);
    let q = _mm_add_ps(_mm256_castps256_ps128(s), hi);
    let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    let q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
    let mut sum = _mm_cvtss_f32(q);
    for k in i..n {
        sum += a[k] * b[k];
    }
    sum
}

/// 32 i8 products per step: sign-extend to i16, multiply-add pairs into i32 (`vpmaddwd`), accumulate.
/// Exact, like the reference (no saturation: |a*b + c*d| <= 2 * 128 * 128 fits i32 lanes).
#[target_feature(enable = "avx2")]
unsafe fn dot_i8_avx2(a: &[u8], b: &[u8]) -> i32 {
    let n = a.len().min(b.len());
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
    let mut sum = _mm_cvtsi128_si32(s);
    for k in i..n {
        sum += i32::from(a[k] as i8) * i32::from(b[k] as i8);
    }
    sum
}
