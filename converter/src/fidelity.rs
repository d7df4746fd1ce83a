//! What a tensor lost: RMSE, largest absolute error and SQNR of the stored values against the FP32 weights.

use mxrt_format::{fixed, Rounding};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Fidelity {
    pub rmse: f64,
    pub max_abs_error: f64,
    /// 10·log10(Σx² / Σ(x−q)²) in dB; `None` when the stored values are exact (infinite SQNR).
    pub sqnr_db: Option<f64>,
    /// Σx² and Σ(x−q)², so that SQNR can be aggregated over many tensors.
    #[serde(skip)]
    pub signal_energy: f64,
    #[serde(skip)]
    pub noise_energy: f64,
}

/// Compares `stored` (what the file decodes to) with `reference` (the FP32 weights before pruning and
/// quantization), accumulating in f64.
pub fn measure(reference: &[f32], stored: &[f32]) -> Fidelity {
    debug_assert_eq!(reference.len(), stored.len());
    let (mut signal, mut noise, mut max_abs) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &q) in reference.iter().zip(stored) {
        let (x, q) = (f64::from(x), f64::from(q));
        let e = x - q;
        signal += x * x;
        noise += e * e;
        max_abs = max_abs.max(e.abs());
    }
    let n = reference.len().max(1) as f64;
    let sqnr_db = if noise == 0.0 {
        None
    } else if signal == 0.0 {
        Some(f64::NEG_INFINITY)
    } else {
        Some(10.0 * (signal / noise).log10())
    };
    Fidelity {
        rmse: (noise / n).sqrt(),
        max_abs_error: max_abs,
        sqnr_db,
        signal_energy: signal,
        noise_energy: noise,
    }
}

/// The fraction width `F` that minimises the RMSE of `fixed:width.F` over all of `tensors` together (one `F`
/// for a whole layer), and that RMSE. Below `F_fit` (the largest `F` at which the largest magnitude still
/// fits) nothing clips and the step only grows, so the search covers `F_fit ..= F_fit + 12` (clipping a few
/// outliers to refine the step for all other values can pay), capped at the format's 64.
pub fn best_fixed_frac(tensors: &[&[f32]], width: u8, rounding: Rounding) -> (u8, f64) {
    let max = tensors
        .iter()
        .flat_map(|t| t.iter())
        .fold(0f64, |m, &x| m.max(f64::from(x).abs()));
    let largest_code = ((1u64 << (width - 1)) - 1) as f64;
    let fit = if max == 0.0 {
        0
    } else {
        (largest_code / max).log2().floor().clamp(0.0, 64.0) as u8
    };
    let count: usize = tensors.iter().map(|t| t.len()).sum();
    let mut best = (fit, f64::INFINITY);
    for frac in fit..=fit.saturating_add(12).min(64) {
        let mut noise = 0f64;
        for &x in tensors.iter().flat_map(|t| t.iter()) {
            let q = fixed::quantize(x, width, frac, rounding).unwrap_or(0);
            let e = f64::from(x) - f64::from(q) * 2f64.powi(-i32::from(frac));
            noise += e * e;
        }
        let rmse = (noise / count.max(1) as f64).sqrt();
        if rmse < best.1 {
            best = (frac, rmse);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let f = measure(&[1.0, -1.0, 2.0, 0.0], &[1.0, -1.0, 2.0, 0.0]);
        assert_eq!((f.rmse, f.max_abs_error, f.sqnr_db), (0.0, 0.0, None));
        assert_eq!((f.signal_energy, f.noise_energy), (6.0, 0.0));
        // signal 1+1+4 = 6, noise 0.25+0.25 = 0.5 -> 10 log10(12) dB, rmse sqrt(0.5/4)
        let f = measure(&[1.0, -1.0, 2.0, 0.0], &[1.5, -1.0, 2.0, -0.5]);
        assert!((f.sqnr_db.unwrap() - 10.0 * 12f64.log10()).abs() < 1e-12);
        assert!((f.rmse - (0.125f64).sqrt()).abs() < 1e-15);
        assert_eq!(f.max_abs_error, 0.5);
    }

    #[test]
    fn best_frac_is_the_exhaustive_minimum() {
        // 4000 values in ±0.05 and one outlier 0.6, 8 bits: F_fit = floor(log2(127 / 0.6)) = 7. At F = 8 the
        // outlier clips to 127/256 (error² 0.0108) but the other 4000 errors shrink by ~3.8e-6 each (0.015 in
        // all), so the best F is larger than F_fit.
        let mut rng = 1u64;
        let mut values: Vec<f32> = (0..4000)
            .map(|_| {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((rng >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
            })
            .collect();
        values.push(0.6);
        let (frac, rmse) = best_fixed_frac(&[&values], 8, Rounding::Even);
        let exhaustive = (0..=64u8)
            .map(|f| {
                let n: f64 = values
                    .iter()
                    .map(|&x| {
                        let q = fixed::quantize(x, 8, f, Rounding::Even).unwrap();
                        (f64::from(x) - f64::from(fixed::dequantize(q, f))).powi(2)
                    })
                    .sum();
                (f, (n / values.len() as f64).sqrt())
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        assert_eq!(frac, exhaustive.0);
        assert!((rmse - exhaustive.1).abs() < 1e-12);
        assert_eq!(frac, 8, "the outlier must not dictate F");
        // All zeros: any F is exact; the search reports F_fit = 0 with RMSE 0.
        assert_eq!(
            best_fixed_frac(&[&[0.0; 8]], 6, Rounding::Nearest),
            (0, 0.0)
        );
    }
}
