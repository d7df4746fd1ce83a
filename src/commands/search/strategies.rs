//! The strategies of `mxrt search` after the baseline, the sensitivity table and the uniform points:
//! `tpe` and `random` (suggested points, `--jobs` per round), `grid` (every point of the space) and `greedy`
//! (moves from the sensitivity table, one at a time). Each appends its trials and returns the point it
//! chose.

use anyhow::{bail, Result};

use super::{progress, space::DIMS, Search, Trial};
use crate::task::Data;

/// The points of the search, the baseline first, then in mixed-radix order of `cardinalities`.
fn every_point(cardinalities: &[usize]) -> impl Iterator<Item = Vec<usize>> + '_ {
    let total: usize = cardinalities.iter().product();
    (0..total).map(move |mut k| {
        cardinalities
            .iter()
            .map(|&c| {
                let i = k % c;
                k /= c;
                i
            })
            .collect()
    })
}

/// The grid's point count, refused past `limit` before any work.
pub(super) fn check_grid(points_per_group: usize, groups: usize, limit: usize) -> Result<()> {
    let size = (points_per_group as f64).powi(groups as i32);
    if size > limit as f64 {
        let count = if size < 1e12 {
            crate::fmt::grouped(size as u64)
        } else {
            format!("{size:.2e}")
        };
        bail!(
            "--strategy grid: the space has {points_per_group} choices per group and {groups} groups, {count} points, \
             more than --trials {limit}: use fewer groups (--group kind or a list), a smaller --space, a larger \
             --trials, or --strategy tpe"
        );
    }
    Ok(())
}

/// The point of the best feasible trial (the baseline's when none is).
fn best_point(search: &Search, trials: &[Trial]) -> Vec<usize> {
    search
        .best(trials.iter())
        .map_or_else(|| search.baseline(), |t| t.point.clone())
}

/// Every point not measured yet.
pub(super) fn grid(
    search: &Search,
    trials: &mut Vec<Trial>,
    split: (&Data, &[Vec<f32>]),
    show: bool,
) -> Result<Vec<usize>> {
    let cardinalities = search.cardinalities();
    let todo: Vec<(&'static str, String, Vec<usize>)> = every_point(&cardinalities)
        .filter(|p| !trials.iter().any(|t| &t.point == p))
        .map(|p| ("grid", search.label(&p), p))
        .collect();
    let bar = progress(show, todo.len(), "grid trials");
    search.run_all(trials, todo, split, &bar)?;
    bar.finish_and_clear();
    Ok(best_point(search, trials))
}

/// The tpe and random strategies: `--trials` suggestions in rounds of `--jobs`, each evaluated on the
/// search split, the history seeded with the trials so far (baseline, uniform points). Minimises weight
/// bytes relative to the baseline, any trial over the budget ranked after every trial within it.
pub(super) fn model_based(
    search: &Search,
    trials: &mut Vec<Trial>,
    split: (&Data, &[Vec<f32>]),
    show: bool,
) -> Result<Vec<usize>> {
    let a = search.a;
    let base_bytes = trials[0].weight_bytes.max(1) as f64;
    let cost = |t: &Trial| -> f64 {
        let relative = t.weight_bytes as f64 / base_bytes;
        match (a.target_bytes, t.feasible, t.drop_points) {
            // Under a byte target: the metric lost (bytes break ties); over it, by how much.
            (Some(_), true, d) => d.unwrap_or(1e6) + 1e-3 * relative,
            (Some(n), false, _) => 1000.0 + t.weight_bytes as f64 / n.max(1) as f64,
            (None, true, _) => relative,
            (None, false, Some(d)) => 1000.0 + relative + (d - search.budget).max(0.0),
            (None, false, None) => 1e9,
        }
    };
    let mut history: Vec<(Vec<usize>, f64)> =
        trials.iter().map(|t| (t.point.clone(), cost(t))).collect();
    let cardinalities = search.cardinalities();
    let mut rng = mxrt_converter::rng::SplitMix64(a.data.seed);
    let count = a.trials.unwrap_or(40);
    let phase: &'static str = if a.strategy == "tpe" { "tpe" } else { "random" };
    let bar = progress(show, count, &format!("{phase} trials"));
    let round = search.jobs();
    let mut done = 0;
    while done < count {
        let mut pending: Vec<Vec<usize>> = Vec::new();
        for _ in 0..round.min(count - done) {
            pending.push(match phase {
                "tpe" => super::tpe::suggest(&history, &pending, &cardinalities, &mut rng),
                _ => super::tpe::random(&cardinalities, &mut rng),
            });
        }
        done += pending.len();
        let todo = pending
            .into_iter()
            .map(|p| (phase, search.label(&p), p))
            .collect();
        let first = trials.len();
        search.run_all(trials, todo, split, &bar)?;
        history.extend(trials[first..].iter().map(|t| (t.point.clone(), cost(t))));
    }
    bar.finish_and_clear();
    Ok(best_point(search, trials))
}

/// Greedy: moves of the sensitivity table (a group's dimension to one value) in order of bytes saved per
/// point lost (moves that lose nothing first, most bytes first), each kept if the recipe still meets the
/// budget; under a byte target, taken until the weights fit. One move per group and dimension; moves that
/// save no bytes (activation encodings) are not tried.
pub(super) fn greedy(
    search: &Search,
    trials: &mut Vec<Trial>,
    sensitivity: &[Trial],
    split: (&Data, &[Vec<f32>]),
    show: bool,
) -> Result<Vec<usize>> {
    let a = search.a;
    let base = trials[0].clone();
    let base_bytes = base.weight_bytes as f64;
    let mut moves: Vec<(usize, usize, f64)> = sensitivity
        .iter()
        .filter(|t| (t.weight_bytes as f64) < base_bytes)
        .filter_map(|t| {
            // The one coordinate this trial changed, and to what.
            let k = t.point.iter().position(|&i| i != 0)?;
            let saved = base_bytes - t.weight_bytes as f64;
            let lost = t.drop_points.unwrap_or(f64::INFINITY) - base.drop_points.unwrap_or(0.0);
            Some((k, t.point[k], saved / lost.max(0.01)))
        })
        .collect();
    moves.sort_by(|x, y| y.2.total_cmp(&x.2));
    let mut point = search.baseline();
    let limit = a.trials.unwrap_or(moves.len());
    let bar = progress(show, limit.min(moves.len()), "greedy trials");
    let mut current = base;
    for &(k, value, _) in moves.iter().take(limit) {
        bar.inc(1);
        if point[k] != 0 {
            continue; // this group's dimension already moved
        }
        let mut next = point.clone();
        next[k] = value;
        let (group, dim) = (k / DIMS, k % DIMS);
        let label = format!(
            "+ {}={}",
            search.groups[group].name,
            search.space.value(dim, value)
        );
        let t = search.trial((trials.len(), "greedy", label), &next, split)?;
        let take = match a.target_bytes {
            Some(_) => !current.feasible && t.weight_bytes < current.weight_bytes,
            None => t.feasible && t.weight_bytes < current.weight_bytes,
        };
        if take {
            point = next;
            current = t.clone();
            bar.set_message(format!(
                "best {} bytes, drop {:.2} pt",
                current.weight_bytes,
                current.drop_points.unwrap_or(0.0)
            ));
        }
        trials.push(t);
    }
    bar.finish_and_clear();
    Ok(point)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_point_is_the_whole_grid_once() {
        let points: Vec<Vec<usize>> = every_point(&[2, 1, 3]).collect();
        assert_eq!(points.len(), 6);
        assert_eq!(points[0], vec![0, 0, 0]);
        let mut sorted = points.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 6);
        assert!(points.iter().all(|p| p[0] < 2 && p[1] == 0 && p[2] < 3));
    }

    #[test]
    fn a_grid_past_the_limit_is_refused() {
        assert!(check_grid(3, 5, 243).is_ok());
        let err = check_grid(3, 38, 1000).unwrap_err().to_string();
        assert!(err.contains("38 groups") && err.contains("tpe"), "{err}");
        let err = check_grid(16, 3, 1000).unwrap_err().to_string();
        assert!(err.contains("4,096 points"), "{err}");
    }
}
