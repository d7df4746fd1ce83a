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
            mxint8_dot,
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

fn mxint8_dot(a_codes: &[u8], a_scales: &[u8], w_codes: &[u8], w_scales: &[u8]) -> f32 {
    // SAFETY: only reachable after AVX2 was detected.
    unsafe { mxint8_dot_avx2(a_codes, a_scales, w_codes, w_scales) }
}

/// The reference's block loop with each block's i32 dot product done in AVX2 (exact), then the same scalar
/// `acc += d as f32 * pair_scale` in the same order: bit-identical to `reference::mxint8_dot`.
#[target_feature(enable = "avx2")]
unsafe fn mxint8_dot_avx2(a_codes: &[u8], a_scales: &[u8], w_codes: &[u8], w_scales: &[u8]) -> f32 {
    let blocks = a_scales
        .len()
        .min(w_scales.len())
        .min(a_codes.len() / 32)
        .min(w_codes.len() / 32);
    let (pa, pw) = (a_codes.as_ptr(), w_codes.as_ptr());
    let mut acc = 0.0f32;
    for j in 0..blocks {
        // SAFETY: j < blocks <= len / 32, so bytes [32j, 32j + 32) are inside both slices.
        let (x, y) = unsafe {
            (
                _mm256_loadu_si256(pa.add(32 * j).cast()),
                _mm256_loadu_si256(pw.add(32 * j).cast()),
            )
        };
        let d = block_dot(x, y);
        acc += d as f32 * super::reference::pair_scale(a_scales[j], w_scales[j]);
    }
    acc
}

/// Exact i32 dot product of 32 signed bytes in each register.
#[target_feature(enable = "avx2")]
fn block_dot(x: __m256i, y: __m256i) -> i32 {
    let (xl, xh) = (
        _mm256_cvtepi8_epi16(_mm256_castsi256_si128(x)),
        _mm256_cvtepi8_epi16(_mm256_extracti128_si256(x, 1)),
    );
    let (yl, yh) = (
        _mm256_cvtepi8_epi16(_mm256_castsi256_si128(y)),
        _mm256_cvtepi8_epi16(_mm256_extracti128_si256(y, 1)),
    );
    let s = _mm256_add_epi32(_mm256_madd_epi16(xl, yl), _mm256_madd_epi16(xh, yh));
    let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
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
