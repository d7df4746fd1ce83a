//! Unstructured pruning with an exact count: in each scope (one tensor for `local`, all selected tensors
//! together for `global`) exactly `round(s * n)` weights are chosen and set to zero.
//!
//! - `l1`: the `round(s * n)` weights of smallest magnitude; ties broken by position (tensor order, then
//!   row-major index), so the result is deterministic. Already-zero weights are the smallest, so they are
//!   chosen first: the scope's sparsity becomes max(s, what it had).
//! - `random`: `round(s * n)` distinct positions drawn uniformly with a seeded SplitMix64 generator (our own,
//!   so a seed gives the same mask on every machine and every version of every dependency).
//!
//! How this differs from MASE (`chop.passes.graph.transforms.pruning.pruning_methods`): MASE's `random`
//! prunes each weight independently with probability s (`torch.rand(...) < s`), so its sparsity is s only in
//! expectation and its "global" random is the same as local; MASE's `l1` keeps weights strictly above
//! `torch.quantile(|w|, s)`, an interpolated threshold, so ties and interpolation make the count differ from
//! round(s * n) (and s = 0 still prunes the smallest weight); its global `l1` falls back to a 2048-bin
//! histogram threshold when the full quantile does not fit in memory.

use serde::Serialize;

use crate::rng::SplitMix64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    L1,
    Random,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Local,
    Global,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prune {
    pub method: Method,
    /// Fraction of the scope's weights to remove, in [0, 1).
    pub sparsity: f64,
    pub scope: Scope,
    pub seed: u64,
}

/// Number of weights a scope of `n` loses at sparsity `s`.
pub fn count_to_remove(s: f64, n: usize) -> usize {
    ((s * n as f64).round() as usize).min(n)
}

/// Zeroes exactly `count_to_remove(sparsity, total)` weights across `scope` (the slices of one scope, in
/// order). Values must be finite (the converter refuses NaN before pruning).
pub fn prune_scope(scope: &mut [&mut [f32]], method: Method, sparsity: f64, seed: u64) {
    let total: usize = scope.iter().map(|s| s.len()).sum();
    let k = count_to_remove(sparsity, total);
    if k == 0 {
        return;
    }
    match method {
        Method::L1 => prune_smallest(scope, k),
        Method::Random => prune_random(scope, k, total, seed),
    }
}

fn prune_smallest(scope: &mut [&mut [f32]], k: usize) {
    // |x| of a finite f32 orders like its bit pattern with the sign cleared.
    let mut keys: Vec<u32> = scope
        .iter()
        .flat_map(|s| s.iter().map(|v| v.to_bits() & 0x7FFF_FFFF))
        .collect();
    let (_, &mut threshold, _) = keys.select_nth_unstable(k - 1);
    let below = keys.iter().filter(|&&m| m < threshold).count();
    drop(keys);
    let mut ties_left = k - below; // how many weights equal to the threshold go, in position order
    for slice in scope.iter_mut() {
        for v in slice.iter_mut() {
            let m = v.to_bits() & 0x7FFF_FFFF;
            if m < threshold {
                *v = 0.0;
            } else if m == threshold && ties_left > 0 {
                *v = 0.0;
                ties_left -= 1;
            }
        }
    }
}

fn prune_random(scope: &mut [&mut [f32]], k: usize, total: usize, seed: u64) {
    // Partial Fisher-Yates over positions: the first k entries are a uniform k-subset.
    let mut positions: Vec<usize> = (0..total).collect();
    let mut rng = SplitMix64(seed);
    for i in 0..k {
        let j = i + rng.below((total - i) as u64) as usize;
        positions.swap(i, j);
    }
    let mut chosen = positions[..k].to_vec();
    chosen.sort_unstable();
    let mut start = 0;
    let mut next = chosen.into_iter().peekable();
    for slice in scope.iter_mut() {
        let end = start + slice.len();
        while let Some(&p) = next.peek() {
            if p >= end {
                break;
            }
            slice[p - start] = 0.0;
            next.next();
        }
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zeros(v: &[f32]) -> usize {
        v.iter().filter(|x| **x == 0.0).count()
    }

    #[test]
    fn splitmix64_reference_values() {
        // First outputs for seed 1234567 from the reference C implementation (Vigna's splitmix64.c).
        let mut r = SplitMix64(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
        assert_eq!(r.next_u64(), 9817491932198370423);
    }

    #[test]
    fn l1_removes_exactly_the_smallest_with_ties_in_position_order() {
        let mut v = vec![0.5, -0.1, 0.3, 0.1, -0.2, 0.1, 0.9, -0.7];
        prune_scope(&mut [&mut v], Method::L1, 0.25, 0);
        assert_eq!(v, vec![0.5, 0.0, 0.3, 0.0, -0.2, 0.1, 0.9, -0.7]); // the two 0.1s tie with -0.1: first two go
        let mut v = vec![3.0, -1.0, 2.0, -4.0];
        prune_scope(&mut [&mut v], Method::L1, 0.5, 0);
        assert_eq!(v, vec![3.0, 0.0, 0.0, -4.0]);
    }

    #[test]
    fn counts_are_exact_for_every_sparsity_and_scope() {
        let n = 1000;
        for s in [0.0, 0.1, 0.333, 0.5, 0.9, 0.999] {
            for method in [Method::L1, Method::Random] {
                let mut a: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1009) as f32 - 500.5).collect();
                let mut b: Vec<f32> = (0..n / 2)
                    .map(|i| ((i * 104729) % 997) as f32 * 0.01 + 0.005)
                    .collect();
                prune_scope(&mut [&mut a, &mut b], method, s, 42);
                assert_eq!(
                    zeros(&a) + zeros(&b),
                    count_to_remove(s, n + n / 2),
                    "{method:?} {s}"
                );
            }
        }
    }

    #[test]
    fn global_l1_uses_one_threshold_across_tensors() {
        let mut small = vec![0.01f32; 10];
        let mut large = vec![1.0f32; 10];
        prune_scope(&mut [&mut small, &mut large], Method::L1, 0.5, 0);
        assert_eq!(zeros(&small), 10);
        assert_eq!(zeros(&large), 0);
    }

    #[test]
    fn random_is_seeded_and_uniformish() {
        let base: Vec<f32> = (1..=10_000).map(|i| i as f32).collect();
        let run = |seed| {
            let mut v = base.clone();
            prune_scope(&mut [&mut v], Method::Random, 0.3, seed);
            v
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let v = run(7);
        assert_eq!(zeros(&v), 3000);
        // Both halves lose about 30 % (a biased draw, e.g. always the first k, would fail this).
        let first = zeros(&v[..5000]);
        assert!((1350..1650).contains(&first), "{first}");
    }

    #[test]
    fn already_zero_weights_count_among_the_smallest() {
        let mut v = vec![0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        prune_scope(&mut [&mut v], Method::L1, 0.5, 0);
        assert_eq!(v, vec![0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    }
}
