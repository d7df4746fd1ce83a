//! `mxrt search`: the smallest recipe within an accuracy budget. The checkpoint's weight layers are grouped
//! (each layer, or by kind); every group takes one weight encoding from the space. Each trial is converted in
//! memory and evaluated on the *search split* of the data; the objective is the weight bytes, subject to the
//! task metric staying within `--budget` points of FP32 there. The chosen recipe is then evaluated once on
//! the *held-out split*, which no choice looked at.
//!
//! Strategy `greedy`: a sensitivity table first (each group alone at each candidate encoding, the rest at the
//! baseline, the first encoding of the space), then moves in order of bytes saved per point lost, each kept
//! only if the whole recipe still meets the budget on the search split.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use mxrt_converter::model::{LayerKind, Role};
use mxrt_converter::model_convert::{ModelOptions, Source};
use mxrt_converter::recipe::{Override, Recipe, Settings};
use mxrt_format::{EncodingSpec, ReadOptions, StagedDir};
use mxrt_runtime::Model;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::json;

mod output;
mod tpe;

use crate::fmt::outln;
use crate::task::{
    class_labels, compare, cpu_session, load_data, outputs, paired_accuracy_se, Data, DataArgs,
};

#[derive(clap::Args)]
pub struct Args {
    /// The checkpoint directory (config.json + weights).
    checkpoint: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Metric drop allowed against FP32 on the search split, in points (accuracy or agreement in %, a
    /// correlation or cosine × 100).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    budget: f64,
    /// Instead of a budget: the best metric on the search split with at most this many weight bytes (a trial
    /// meets the target when its weights fit).
    #[arg(long, value_name = "N")]
    target_bytes: Option<u64>,
    /// Classification tasks: a trial meets the budget only if its drop plus this many standard errors of
    /// the paired accuracy difference (from the examples it and FP32 disagree on) stays within it, so that
    /// moves which look free on the search split by luck are not all taken. 0: the drop alone.
    #[arg(long, default_value_t = 1.0)]
    margin_se: f64,
    /// Candidate weight encodings of every group; the first is the baseline every group starts from.
    #[arg(long, default_value = "mxint8,mxint4,mxfp4")]
    space: String,
    /// Input activations of every linear layer (the baseline's).
    #[arg(long, default_value = "mxint8")]
    activations: String,
    /// Groups that take one encoding together: `layer` (each weight layer) or `kind` (embeddings, attention,
    /// feed-forward, pooler, classifier, linear).
    #[arg(long, default_value = "layer", value_parser = ["layer", "kind"])]
    group: String,
    /// Search strategy. `tpe`: a Tree-structured Parzen Estimator over the groups' encodings (random for
    /// its first 10 trials; tpe and random are seeded by --seed); `random`; `greedy`: from the sensitivity table, moves in order of bytes saved
    /// per point lost, each kept if the recipe still meets the budget.
    #[arg(long, default_value = "tpe", value_parser = ["tpe", "random", "greedy"])]
    strategy: String,
    /// Trials of the strategy, besides the baseline and the uniform points (default: 40 for tpe and random;
    /// for greedy every move of the sensitivity table once).
    #[arg(long)]
    trials: Option<usize>,
    /// Only the sensitivity table (and its heat map).
    #[arg(long)]
    sensitivity: bool,
    /// Share of the examples (the first ones) the search sees; the rest is the held-out split.
    #[arg(long, default_value_t = 0.5)]
    search_fraction: f64,
    /// Output directory (created if missing): trials.csv/json, sensitivity and Pareto charts, best.toml and
    /// best.mxrt (the chosen recipe and its model), report.md.
    #[arg(long, default_value = "search")]
    out: PathBuf,
    /// Trials evaluated at the same time in the sensitivity table (default: the cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// No progress bar and no table.
    #[arg(short, long)]
    quiet: bool,
}

/// One evaluated recipe.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Trial {
    pub id: usize,
    /// `sensitivity`, `baseline`, `greedy` or `uniform`.
    pub phase: &'static str,
    /// What differs from the baseline, e.g. `encoder.layer.3.intermediate.dense=mxint4`.
    pub label: String,
    /// The encoding of each group, in group order.
    pub choice: Vec<String>,
    pub weight_bytes: u64,
    pub metric: Option<f64>,
    /// Points below FP32 on the search split (negative: better than FP32).
    pub drop_points: Option<f64>,
    /// Standard error of that drop in points (classification: paired over the examples), when known.
    pub se_points: Option<f64>,
    pub feasible: bool,
    pub seconds: f64,
}

/// A group of weight layers that take one encoding together.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Group {
    pub name: String,
    pub layers: Vec<String>,
}

struct Search<'a> {
    a: &'a Args,
    source: Source,
    groups: Vec<Group>,
    space: Vec<String>,
    reference_metric: f64,
    metric_name: &'static str,
}

/// Points of a metric: accuracy, agreement and correlations × 100.
fn points(v: f64) -> f64 {
    100.0 * v
}

impl Search<'_> {
    /// How good a feasible trial is, lower first: its weight bytes under a budget; under `--target-bytes`,
    /// its metric (higher first), then its bytes.
    fn rank(&self, t: &Trial) -> (f64, u64) {
        match self.a.target_bytes {
            Some(_) => (-t.metric.unwrap_or(f64::NEG_INFINITY), t.weight_bytes),
            None => (t.weight_bytes as f64, t.weight_bytes),
        }
    }

    /// The best feasible trial of `trials` by [`Search::rank`].
    fn best<'t>(&self, trials: impl Iterator<Item = &'t Trial>) -> Option<&'t Trial> {
        trials.filter(|t| t.feasible).min_by(|x, y| {
            let (a, b) = (self.rank(x), self.rank(y));
            a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
        })
    }

    /// The recipe of `choice` (one encoding index per group): the baseline default, one override per layer
    /// whose group is elsewhere.
    fn recipe(&self, choice: &[usize]) -> Recipe {
        let mut recipe = Recipe::default();
        recipe.default.weights = Some(self.space[0].clone());
        recipe.default.activations = Some(self.a.activations.clone());
        for (g, &c) in self.groups.iter().zip(choice) {
            if c == 0 {
                continue;
            }
            for layer in &g.layers {
                recipe.overrides.push(Override {
                    name: Some(layer.clone()),
                    kind: None,
                    settings: Settings {
                        weights: Some(self.space[c].clone()),
                        ..Settings::default()
                    },
                    may_match_nothing: false,
                });
            }
        }
        recipe
    }

    fn options(&self, recipe: Recipe) -> ModelOptions {
        ModelOptions {
            recipe,
            recipe_source: "mxrt search".into(),
            embed_tokenizer: true,
            allow_nonfinite: false,
            no_sparse: false,
            plane_align: mxrt_format::PlaneAlign::Auto,
            calibration: None,
        }
    }

    /// Builds `choice` in memory and evaluates it on `data` against the FP32 outputs `refs`: weight bytes
    /// and the headline metric.
    fn measure(
        &self,
        choice: &[usize],
        data: &Data,
        refs: &[Vec<f32>],
    ) -> Result<(u64, Option<f64>, Option<f64>)> {
        let built = self.source.build(
            Path::new("trial.mxrt"),
            &self.options(self.recipe(choice)),
            &mut |_, _, _| {},
        )?;
        let bytes: u64 = built
            .report
            .tensors
            .iter()
            .filter(|t| t.role == Role::Weight)
            .map(|t| t.bytes)
            .sum();
        let session = cpu_session(
            Model::from_bytes("trial.mxrt", built.bytes, ReadOptions::default())?,
            &self.a.data,
        )?;
        let out = outputs(&session, data, &self.a.data, &mut || {})?;
        let m = compare(session.model(), data, &out, refs);
        let se = class_labels(data).map(|l| paired_accuracy_se(&out, refs, l));
        Ok((bytes, m[self.metric_name].as_f64(), se))
    }

    fn trial(
        &self,
        (id, phase, label): (usize, &'static str, String),
        choice: &[usize],
        data: &Data,
        refs: &[Vec<f32>],
    ) -> Result<Trial> {
        let start = Instant::now();
        let (weight_bytes, metric, se_points) = self
            .measure(choice, data, refs)
            .with_context(|| format!("trial {id} ({label})"))?;
        let drop_points = metric.map(|m| points(self.reference_metric) - points(m));
        let margin = self.a.margin_se * se_points.unwrap_or(0.0);
        Ok(Trial {
            id,
            phase,
            label,
            choice: choice.iter().map(|&c| self.space[c].clone()).collect(),
            weight_bytes,
            metric,
            drop_points,
            se_points,
            feasible: match self.a.target_bytes {
                Some(n) => weight_bytes <= n && metric.is_some(),
                None => drop_points.is_some_and(|d| d + margin <= self.a.budget),
            },
            seconds: start.elapsed().as_secs_f64(),
        })
    }
}

/// The tpe and random strategies: `--trials` suggestions, each evaluated on the search split, the history
/// seeded with the trials so far (baseline, uniform points). Minimises weight bytes relative to the
/// baseline, any trial over the budget ranked after every trial within it. Returns the best feasible
/// choice (the baseline's when none is).
fn model_based(
    search: &Search,
    trials: &mut Vec<Trial>,
    (data, refs): (&Data, &[Vec<f32>]),
    show: bool,
) -> Result<Vec<usize>> {
    let a = search.a;
    let base_bytes = trials[0].weight_bytes.max(1) as f64;
    let index = |t: &Trial| -> Vec<usize> {
        t.choice
            .iter()
            .map(|e| search.space.iter().position(|s| s == e).unwrap_or(0))
            .collect()
    };
    let cost = |t: &Trial| -> f64 {
        let relative = t.weight_bytes as f64 / base_bytes;
        match (a.target_bytes, t.feasible, t.drop_points) {
            // Under a byte target: the metric lost (bytes break ties); over it, by how much.
            (Some(_), true, d) => d.unwrap_or(1e6) + 1e-3 * relative,
            (Some(n), false, _) => 1000.0 + t.weight_bytes as f64 / n.max(1) as f64,
            (None, true, _) => relative,
            (None, false, Some(d)) => 1000.0 + relative + (d - a.budget).max(0.0),
            (None, false, None) => 1e9,
        }
    };
    let mut history: Vec<(Vec<usize>, f64)> = trials.iter().map(|t| (index(t), cost(t))).collect();
    let cardinalities = vec![search.space.len(); search.groups.len()];
    let mut rng = mxrt_converter::rng::SplitMix64(a.data.seed);
    let count = a.trials.unwrap_or(40);
    let bar = progress(show, count, &format!("{} trials", a.strategy));
    let phase: &'static str = if a.strategy == "tpe" { "tpe" } else { "random" };
    for _ in 0..count {
        let choice = match phase {
            "tpe" => tpe::suggest(&history, &cardinalities, &mut rng),
            _ => tpe::random(&cardinalities, &mut rng),
        };
        let id = trials.len();
        let changed: Vec<String> = choice
            .iter()
            .zip(&search.groups)
            .filter(|(&c, _)| c != 0)
            .map(|(&c, g)| format!("{}={}", g.name, search.space[c]))
            .collect();
        let label = if changed.len() > 3 {
            format!("{} groups changed", changed.len())
        } else {
            changed.join(" ")
        };
        let t = search.trial((id, phase, label), &choice, data, refs)?;
        bar.inc(1);
        history.push((choice, cost(&t)));
        trials.push(t);
        if let Some(best) = search.best(trials.iter()) {
            bar.set_message(format!(
                "best {} bytes, drop {:.2} pt",
                best.weight_bytes,
                best.drop_points.unwrap_or(0.0)
            ));
        }
    }
    bar.finish_and_clear();
    Ok(search
        .best(trials.iter())
        .map_or_else(|| vec![0; search.groups.len()], index))
}

/// The weight layers of the checkpoint, grouped as `--group` says.
fn groups(source: &Source, how: &str) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    for (li, layer) in source.layers().iter().enumerate() {
        if source.layer_weights(li).next().is_none() {
            continue;
        }
        let name = match how {
            "kind" => match layer.kind {
                LayerKind::Embedding => "embeddings".to_string(),
                k => k.name().to_string(),
            },
            _ => layer.name.clone(),
        };
        match out.iter_mut().find(|g| g.name == name) {
            Some(g) => g.layers.push(layer.name.clone()),
            None => out.push(Group {
                name,
                layers: vec![layer.name.clone()],
            }),
        }
    }
    out
}

fn progress(show: bool, len: usize, what: &str) -> ProgressBar {
    let bar = if show {
        ProgressBar::new(len as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} [{{bar:30}}] {{pos}}/{{len}} {what}  {{elapsed}}, ETA {{eta}}  {{msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

pub fn run(a: Args) -> Result<ExitCode> {
    let started = Instant::now();
    let space: Vec<String> = a
        .space
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    for s in &space {
        s.parse::<EncodingSpec>()
            .map_err(|e| anyhow::anyhow!("--space {s:?}: {e}"))?;
    }
    if space.len() < 2 {
        bail!("--space needs at least two encodings (the baseline first, then the candidates), e.g. mxint8,mxint4");
    }
    a.activations
        .parse::<EncodingSpec>()
        .map_err(|e| anyhow::anyhow!("--activations: {e}"))?;
    if a.search_fraction.is_nan() || a.search_fraction <= 0.0 || a.search_fraction >= 1.0 {
        bail!("--search-fraction must be in (0, 1): the held-out split needs examples too");
    }
    let negative_or_nan = |v: f64| v.is_nan() || v < 0.0;
    if negative_or_nan(a.budget) || negative_or_nan(a.margin_se) {
        bail!("--budget and --margin-se must be numbers, 0 or more");
    }
    let show = !(a.quiet || a.json);
    if show {
        eprintln!("reading {} ...", a.checkpoint.display());
    }
    let source = Source::open(std::slice::from_ref(&a.checkpoint), false)
        .with_context(|| format!("reading the checkpoint {}", a.checkpoint.display()))?;
    let groups = groups(&source, &a.group);
    if groups.is_empty() {
        bail!(
            "{} has no weight layers to search over",
            a.checkpoint.display()
        );
    }
    let staged = StagedDir::new(&a.out)
        .with_context(|| format!("cannot prepare the output directory {}", a.out.display()))?;

    // FP32 outputs on both splits.
    let mut fp32 = Recipe::default();
    fp32.default.weights = Some("f32".into());
    let mut search = Search {
        a: &a,
        source,
        groups,
        space,
        reference_metric: 0.0,
        metric_name: "accuracy",
    };
    let built = search.source.build(
        Path::new("fp32.mxrt"),
        &search.options(fp32),
        &mut |_, _, _| {},
    )?;
    let reference = cpu_session(
        Model::from_bytes("fp32.mxrt", built.bytes, ReadOptions::default())?,
        &a.data,
    )?;
    let data = load_data(&a.data, reference.model())?;
    let n = data.examples();
    let cut = ((n as f64) * a.search_fraction).round() as usize;
    if cut == 0 || cut == n {
        bail!(
            "{n} examples cannot be split {:.0} % / {:.0} %: give more data",
            100.0 * a.search_fraction,
            100.0 * (1.0 - a.search_fraction)
        );
    }
    let (search_data, held_data) = (data.slice(0..cut), data.slice(cut..n));
    let (task, metric_name) = data.headline();
    let refs_search = outputs(&reference, &search_data, &a.data, &mut || {})?;
    let refs_held = outputs(&reference, &held_data, &a.data, &mut || {})?;
    let fp32_search = compare(reference.model(), &search_data, &refs_search, &refs_search);
    let fp32_held = compare(reference.model(), &held_data, &refs_held, &refs_held);
    drop(reference);
    search.metric_name = metric_name;
    search.reference_metric = fp32_search[metric_name]
        .as_f64()
        .with_context(|| format!("the FP32 model has no {metric_name} on this data"))?;
    let search = search;
    if show {
        eprintln!(
            "{} groups x {} encodings; search split {cut} examples, held-out {}; FP32 {metric_name} {:.2} on the search split",
            search.groups.len(),
            search.space.len(),
            n - cut,
            points(search.reference_metric)
        );
    }

    let g = search.groups.len();
    let baseline = vec![0usize; g];
    let mut trials: Vec<Trial> = Vec::new();
    trials.push(search.trial(
        (0, "baseline", format!("all {}", search.space[0])),
        &baseline,
        &search_data,
        &refs_search,
    )?);

    // Sensitivity: each group alone at each candidate encoding (greedy's starting point, or asked for).
    let with_sensitivity = a.sensitivity || a.strategy == "greedy";
    let cells: Vec<(usize, usize)> = if with_sensitivity {
        (0..g)
            .flat_map(|gi| (1..search.space.len()).map(move |e| (gi, e)))
            .collect()
    } else {
        Vec::new()
    };
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, cells.len().max(1));
    let bar = progress(show, cells.len(), "sensitivity trials");
    bar.enable_steady_tick(std::time::Duration::from_millis(250));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(jobs).build()?;
    let first_id = trials.len();
    let sensitivity: Vec<Trial> = pool.install(|| {
        cells
            .par_iter()
            .enumerate()
            .map(|(k, &(gi, e))| {
                let mut choice = baseline.clone();
                choice[gi] = e;
                let label = format!("{}={}", search.groups[gi].name, search.space[e]);
                let t = search.trial(
                    (first_id + k, "sensitivity", label),
                    &choice,
                    &search_data,
                    &refs_search,
                );
                bar.inc(1);
                t
            })
            .collect::<Result<Vec<Trial>>>()
    })?;
    bar.finish_and_clear();
    trials.extend(sensitivity.iter().cloned());

    // Uniform points for the chart: every group at each candidate.
    for e in 1..search.space.len() {
        let id = trials.len();
        trials.push(search.trial(
            (id, "uniform", format!("all {}", search.space[e])),
            &vec![e; g],
            &search_data,
            &refs_search,
        )?);
    }

    let mut best_choice = baseline.clone();
    if !a.sensitivity && a.strategy != "greedy" {
        best_choice = model_based(&search, &mut trials, (&search_data, &refs_search), show)?;
    }
    if !a.sensitivity && a.strategy == "greedy" {
        // Greedy: moves in order of bytes saved per point lost (moves that lose nothing first, most bytes
        // first), each kept if the recipe still meets the budget.
        let base_bytes = trials[0].weight_bytes as f64;
        let mut moves: Vec<(usize, usize, f64)> = sensitivity
            .iter()
            .zip(&cells)
            .filter(|(t, _)| (t.weight_bytes as f64) < base_bytes)
            .map(|(t, &(gi, e))| {
                let saved = base_bytes - t.weight_bytes as f64;
                let lost =
                    t.drop_points.unwrap_or(f64::INFINITY) - trials[0].drop_points.unwrap_or(0.0);
                (gi, e, saved / lost.max(0.01))
            })
            .collect();
        moves.sort_by(|x, y| y.2.total_cmp(&x.2));
        let limit = a.trials.unwrap_or(moves.len());
        let bar = progress(show, limit.min(moves.len()), "greedy trials");
        let mut current = trials[0].clone();
        for &(gi, e, _) in moves.iter().take(limit) {
            if best_choice[gi] != 0 {
                bar.inc(1);
                continue; // this group already took a smaller encoding
            }
            let mut choice = best_choice.clone();
            choice[gi] = e;
            let id = trials.len();
            let label = format!("+ {}={}", search.groups[gi].name, search.space[e]);
            let t = search.trial((id, "greedy", label), &choice, &search_data, &refs_search)?;
            bar.inc(1);
            // Under a byte target every move is taken (least loss per byte first) until the weights fit.
            let take = match a.target_bytes {
                Some(_) => !current.feasible && t.weight_bytes < current.weight_bytes,
                None => t.feasible && t.weight_bytes < current.weight_bytes,
            };
            if take {
                best_choice = choice;
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
    }

    // The chosen recipe (the best feasible trial the strategy kept) on the held-out split.
    let chosen: Vec<String> = best_choice
        .iter()
        .map(|&c| search.space[c].clone())
        .collect();
    let best = search
        .best(trials.iter().filter(|t| t.choice == chosen))
        .cloned();
    let (best_bytes, held_best, held_se) = match &best {
        Some(_) => search.measure(&best_choice, &held_data, &refs_held)?,
        None => (0, None, None),
    };
    let (_, held_baseline, _) = search.measure(&baseline, &held_data, &refs_held)?;
    let held_fp32 = fp32_held[metric_name].as_f64();
    let recipe_toml = output::recipe_toml(&search, &best_choice);

    let summary = json!({
        "checkpoint": a.checkpoint.display().to_string(),
        "data": a.data.data.as_ref().map(|p| p.display().to_string()),
        "task": task, "metric": metric_name, "budget_points": a.budget, "margin_se": a.margin_se,
        "target_bytes": a.target_bytes,
        "space": search.space, "activations": a.activations, "group": a.group, "strategy": a.strategy,
        "groups": search.groups,
        "search_split": {"examples": cut, "fp32": search.reference_metric},
        "held_out_split": {"examples": n - cut, "fp32": held_fp32, "baseline": held_baseline, "best": held_best,
            "best_se_points": held_se},
        "baseline": {"weight_bytes": trials[0].weight_bytes, "search_metric": trials[0].metric},
        "best": best.as_ref().map(|b| json!({"trial": b.id, "weight_bytes": best_bytes, "search_metric": b.metric,
            "drop_points": b.drop_points, "se_points": b.se_points, "choice": b.choice, "held_out_metric": held_best})),
        "trials": trials.len(),
        "seconds": started.elapsed().as_secs_f64(),
    });
    output::write_all(
        &search,
        staged.path(),
        &summary,
        &trials,
        &recipe_toml,
        (task, metric_name),
    )?;
    if best.is_some() {
        // The evaluated model itself, beside the recipe that rebuilds it.
        let built = search.source.build(
            Path::new("best.mxrt"),
            &search.options(search.recipe(&best_choice)),
            &mut |_, _, _| {},
        )?;
        let path = staged.path().join("best.mxrt");
        mxrt_format::write_atomically(&path, |w| w.write_all(&built.bytes))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    staged
        .commit()
        .with_context(|| format!("moving the results into {}", a.out.display()))?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&summary)?)?;
    } else if !a.quiet {
        output::print_summary(&summary)?;
        outln!(
            "{} trials in {:.1} s; results in {}",
            trials.len(),
            started.elapsed().as_secs_f64(),
            a.out.display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
