//! What a tensor lost: RMSE, largest absolute error and SQNR of the stored values against the FP32 weights.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Fidelity {
    pub rmse: f64,
    pub max_abs_error: f64,
    /// 10·log10(Σx² / Σ(x−q)²) in dB; `None` when the stored values are exact (infinite SQNR).
    pub sqnr_db: Option<f64>,
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let f = measure(&[1.0, -1.0, 2.0, 0.0], &[1.0, -1.0, 2.0, 0.0]);
        assert_eq!(
            f,
            Fidelity {
                rmse: 0.0,
                max_abs_error: 0.0,
                sqnr_db: None
            }
        );
        // signal 1+1+4 = 6, noise 0.25+0.25 = 0.5 -> 10 log10(12) dB, rmse sqrt(0.5/4)
        let f = measure(&[1.0, -1.0, 2.0, 0.0], &[1.5, -1.0, 2.0, -0.5]);
        assert!((f.sqnr_db.unwrap() - 10.0 * 12f64.log10()).abs() < 1e-12);
        assert!((f.rmse - (0.125f64).sqrt()).abs() < 1e-15);
        assert_eq!(f.max_abs_error, 0.5);
    }
}
