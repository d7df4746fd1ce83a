//! `convert --calibrate DATA --calib-channels`: fixed point chosen per channel, stored as channel scales
//! (FORMAT.md section 9, description 2.2: a layer computes `s_out ⊙ (quant(s_in ⊙ x) · Wᵀ) + b`). Every scale
//! is a power of two, so the FP32 function is unchanged and only where quantization spends its bits moves:
//!
//! - **Smoothing** (SmoothQuant, Xiao et al. 2023, with powers of two): a LayerNorm output feeding
//!   query/key/value or a feed-forward up-projection has a few channels far larger than the rest (BERT's
//!   outlier channels, up to ~28 where most values are below 2), and one grid for the whole input spends its
//!   range on them. Input channel `j` is divided by `s_j = 2^round(α log2(max|x_j| / max_r |W_rj|))` and the
//!   weights' column `j` multiplied by it, which splits the range between activations and weights.
//! - **Per-row weight fraction widths**: row `r` of a fixed-point weight is quantized at `F + d_r`, where
//!   `d_r` is the difference between the row's own RMSE-best width and the matrix's; the stored matrix holds
//!   the rows scaled by `2^d_r` at the matrix's `F`, and the output scale `2^-d_r` undoes it. A few rows with
//!   large weights no longer coarsen every other row. The matrix's `F` stays one number that `--calib-refine`
//!   moves, shifting every row with it.
//!
//! Inputs fed by GELU or by attention are not smoothed: in a numpy model of all-MiniLM-L6-v2's fixed-point
//! network, smoothing them as well lowered the embedding cosine (0.9935 → 0.9877), where smoothing only the
//! LayerNorm-fed inputs raised it (0.9888 → 0.9935, both with per-row weights).

use mxrt_converter::fidelity::best_fixed_frac;
use mxrt_format::description::Hyperparameters;
use mxrt_format::Rounding;

/// SmoothQuant's migration strength: the outlier range is split evenly (in log2) between activations and
/// weights. 0.75 was worse in the same numpy model.
pub const ALPHA: f64 = 0.5;

/// The layers that read one LayerNorm output, one group per shared input: each encoder layer's query, key
/// and value, and its feed-forward up-projection. None for other architectures.
pub fn layernorm_fed_groups(hp: &Hyperparameters) -> Vec<Vec<String>> {
    let Hyperparameters::Bert(bert) = hp else {
        return Vec::new();
    };
    (0..bert.num_hidden_layers)
        .flat_map(|i| {
            let l = bert.layer(i);
            [vec![l.query, l.key, l.value], vec![l.intermediate]]
        })
        .collect()
}

/// The smoothing factors `s_j` of an input whose channels reached `x_max[j]`, read by the weight matrices
/// `weights` (`(values, cols)`, row-major, `cols = x_max.len()`); 1 where either side is all zero.
pub fn smoothing(x_max: &[f32], weights: &[(&[f32], usize)]) -> Vec<f32> {
    let mut w_max = vec![0f32; x_max.len()];
    for (w, cols) in weights {
        for row in w.chunks(*cols) {
            for (m, v) in w_max.iter_mut().zip(row) {
                *m = m.max(v.abs());
            }
        }
    }
    x_max
        .iter()
        .zip(&w_max)
        .map(|(&x, &w)| {
            if x > 0.0 && w > 0.0 && x.is_finite() && w.is_finite() {
                let e = (ALPHA * (f64::from(x) / f64::from(w)).log2()).round();
                2f64.powi(e.clamp(-24.0, 24.0) as i32) as f32
            } else {
                1.0
            }
        })
        .collect()
}

/// The matrix's fraction width `F` (RMSE-best over all of `w`) and the output scales `2^(F - F_r)` that give
/// each row `r` its own RMSE-best width `F_r` (`None` when every row's is `F`). All-zero rows keep `F`.
pub fn row_fractions(
    w: &[f32],
    cols: usize,
    width: u8,
    rounding: Rounding,
) -> (u8, Option<Vec<f32>>) {
    let (frac, _) = best_fixed_frac(&[w], width, rounding);
    let scales: Vec<f32> = w
        .chunks(cols.max(1))
        .map(|row| {
            if row.iter().all(|&v| v == 0.0) {
                return 1.0;
            }
            let (own, _) = best_fixed_frac(&[row], width, rounding);
            2f64.powi(i32::from(frac) - i32::from(own)) as f32
        })
        .collect();
    let any = scales.iter().any(|&s| s != 1.0);
    (frac, any.then_some(scales))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxrt_format::fixed;

    #[test]
    fn smoothing_splits_an_outlier_channel_between_input_and_weights_in_powers_of_two() {
        // Channel 0 reaches 32 against weights of 0.5: log2(64) = 6, half of it 3 → 8. Channel 1: 1 vs 1 → 1.
        // Channel 2: 0.25 vs 4 → 2^-2. Channel 3 never active → 1.
        let w = [0.5f32, -1.0, 4.0, 0.3, -0.25, 0.5, -2.0, 0.1];
        let s = smoothing(&[32.0, 1.0, 0.25, 0.0], &[(&w, 4)]);
        assert_eq!(s, vec![8.0, 1.0, 0.25, 1.0]);
        // Two matrices on one input: the larger column maximum counts.
        let w2 = [2.0f32, 1.0, 4.0, 0.3];
        assert_eq!(
            smoothing(&[32.0, 1.0, 0.25, 0.0], &[(&w, 4), (&w2, 4)])[0],
            4.0
        );
    }

    #[test]
    fn every_row_gets_its_own_best_width_through_the_output_scale() {
        // Row 0 holds a large weight (needs F = 4 to fit 7.9 in 8 bits), row 1 only small ones (F = 9 fits
        // 0.2): the matrix's F is row 0's; row 1 is stored 2^5 larger and scaled back by 2^-5.
        let w = [7.9f32, 0.11, -0.05, 0.2, 0.013, -0.18];
        let (frac, scales) = row_fractions(&w, 3, 8, Rounding::Nearest);
        assert_eq!(frac, best_fixed_frac(&[&w], 8, Rounding::Nearest).0);
        let scales = scales.expect("the rows differ");
        for (r, row) in w.chunks(3).enumerate() {
            let own = best_fixed_frac(&[row], 8, Rounding::Nearest).0;
            assert_eq!(scales[r], 2f32.powi(i32::from(frac) - i32::from(own)));
            // Stored at F after the row scaling = the row quantized at its own width.
            for &v in row {
                let stored = fixed::quantize(v / scales[r], 8, frac, Rounding::Nearest).unwrap();
                let at_own = fixed::quantize(v, 8, own, Rounding::Nearest).unwrap();
                assert_eq!(stored, at_own, "row {r} value {v}");
            }
        }
        assert!(scales[1] < 1.0, "the small row gets more fraction bits");
        // One row: nothing to scale.
        assert_eq!(row_fractions(&w[..3], 3, 8, Rounding::Nearest).1, None);
    }
}
