//! Folding each weight block's factor into the int → float conversion of its sums, for a panel kernel with
//! an [`super::MxPanel::folded`] variant. The reference adds `fma(p as f32, w_factor · a_factor, acc)` per
//! (block, output): a convert, a multiply and an FMA. With `base = 1.5 · 2²³ · w_factor` (an f32 whose ulp
//! is `w_factor`, as both are powers of two) the integer `bits(base) + p` *is* the f32 `base + p · w_factor`
//! while `|p| < 2²²` (block sums stay below 2²⁰), so the kernel starts each sum at `bits(base)` (plus its
//! unsigned bias), and after the block `bits − base` is `p · w_factor` exactly: a subtraction and the FMA
//! with `a_factor` alone, one vector instruction fewer per block on the ports the integer dot products use.
//!
//! The result is the reference's bit for bit when `w_factor · a_factor` is exact in f32 — the FMA then
//! rounds the same real number once — which [`folds_exactly`] checks per panel from the two factor
//! ranges (far from the limits in any real model: MXINT8 factors near 2^-10 against limits 2^±126); a panel
//! outside them takes the unfolded kernel.

/// `1.5 · 2²³`: the f32 whose ulp is 1, with 2²² of room on either side inside its binade.
const UNIT_BASE: f32 = 12_582_912.0;

/// The largest weight factor that has a base: `base + p · w_factor` must stay below 2¹²⁸.
const MAX_WEIGHT_FACTOR: f32 = f32::from_bits((127 + 103) << 23); // 2^103

/// A weight matrix's factors, when every one can be folded: each a power of two (an MX scale's value or
/// 8-bit fixed point's 2^-F) no larger than 2^103, or 0 (the zero padding of a ragged group).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FoldRange {
    /// The smallest and largest nonzero factor (both 1 when there is none).
    pub min: f32,
    pub max: f32,
}

/// The [`FoldRange`] of `factors`, or `None` when one of them cannot be folded (NaN from the scale byte
/// 0xFF, not a power of two, negative, or above 2^103).
pub fn fold_range(factors: &[f32]) -> Option<FoldRange> {
    let (mut min, mut max) = (f32::INFINITY, 0.0f32);
    for &f in factors {
        if f == 0.0 {
            continue;
        }
        if !(f > 0.0 && f <= MAX_WEIGHT_FACTOR && is_power_of_two(f)) {
            return None;
        }
        min = min.min(f);
        max = max.max(f);
    }
    if max == 0.0 {
        return Some(FoldRange { min: 1.0, max: 1.0 });
    }
    Some(FoldRange { min, max })
}

/// Whether a positive finite f32 is a power of two (normal: no mantissa bits; subnormal: one bit).
fn is_power_of_two(f: f32) -> bool {
    let bits = f.to_bits();
    if bits >> 23 == 0 {
        bits.count_ones() == 1
    } else {
        bits & 0x7F_FFFF == 0
    }
}

/// Whether folding weights of `range` gives the reference's results against these activation factors
/// (one panel's): every nonzero `a_factor` positive and finite, and every product `w_factor · a_factor`
/// a normal f32 (`2^-126 ≤ min · min`, `max · max ≤ f32::MAX`, in f64, where the products are exact), so
/// the reference's product is exact. A zero factor (padding rows) is exact whatever the weights.
pub fn folds_exactly(range: FoldRange, act_factors: &[f32]) -> bool {
    // On the bits, which order non-negative floats as the floats and vectorize (a panel's call checks up
    // to 16 · blocks factors): a negative, infinite or NaN factor has bits at or above those of +∞.
    let (mut low, mut high) = (u32::MAX, 0u32);
    for &a in act_factors {
        let bits = a.to_bits();
        high = high.max(bits);
        low = low.min(if bits == 0 { u32::MAX } else { bits });
    }
    if high >= f32::INFINITY.to_bits() {
        return false;
    }
    high == 0
        || (f64::from(range.min) * f64::from(f32::from_bits(low)) >= f64::from(f32::MIN_POSITIVE)
            && f64::from(range.max) * f64::from(f32::from_bits(high)) <= f64::from(f32::MAX))
}

/// Folds one matrix's blocks: `bases[b] = 1.5 · 2²³ · factors[b]` and `starts[b] = bits(bases[b]) +
/// unsigned_bias[b]` (wrapping; `unsigned_bias` empty: 0), what a folded kernel reads in place of
/// `PanelWeights::factors` and `PanelWeights::unsigned_bias`. The factors must have a [`fold_range`].
pub fn fold_blocks(
    factors: &[f32],
    unsigned_bias: &[i32],
    bases: &mut Vec<f32>,
    starts: &mut Vec<i32>,
) {
    assert!(
        unsigned_bias.is_empty() || unsigned_bias.len() == factors.len(),
        "fold_blocks: one unsigned bias per block"
    );
    bases.clear();
    bases.extend(factors.iter().map(|&f| f * UNIT_BASE));
    starts.clear();
    starts.extend(bases.iter().enumerate().map(|(b, &base)| {
        (base.to_bits() as i32).wrapping_add(unsigned_bias.get(b).copied().unwrap_or(0))
    }));
}
