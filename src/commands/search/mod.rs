//! `mxrt search`: the smallest recipe within an accuracy budget. The checkpoint's weight layers are grouped
//! (`--group`); every group takes one point of the space (a weight encoding, a sparsity, an activation
//! encoding: `space.rs`). Each trial is converted in memory and evaluated on the *search split* of the data;
//! the objective is the weight bytes, subject to the task metric staying within `--budget` points of FP32
//! there (or, under `--target-bytes`, the metric with the weights within the target). The chosen recipe is
//! then evaluated once on the *held-out split*, which no choice looked at.
//!
//! Strategies (`strategies.rs`): `tpe` (default), `random`, `grid` (every point of the space), `greedy`
//! (from a sensitivity table: each group alone at each candidate value, the rest at the baseline; then moves
//! in order of bytes saved per point lost, each kept only if the whole recipe still meets the budget).
//! Trials run `--jobs` at a time; `--resume` reuses an earlier run's measurements (`resume.rs`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use mxrt_converter::fidelity::best_fixed_frac;
use mxrt_converter::model::Role;
use mxrt_converter::model_convert::{ModelOptions, Source};
use mxrt_converter::recipe::{Override, PruneSetting, Recipe, Settings};
use mxrt_format::{ReadOptions, Rounding, StagedDir};
use mxrt_runtime::Model;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};

mod groups;
mod output;
mod resume;
mod space;
mod strategies;
mod tpe;

use crate::calibrate::{self, Method};
use crate::fmt::outln;
use crate::task::{
    class_labels, compare, cpu_session, load_data, outputs, paired_accuracy_se, Data, DataArgs,
};
use groups::Group;
use resume::{Journal, Measured};
use space::{Candidate, Space, ACTIVATIONS, DIMS, SPARSITY, WEIGHTS};

#[derive(clap::Args)]
pub struct Args {
    /// The checkpoint directory (config.json + weights).
    checkpoint: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Metric drop allowed against FP32 on the search split: in points (`1.0`: accuracy or agreement in %,
    /// a correlation or cosine × 100), or relative to FP32's metric (`2%`: 2 % of it).
    #[arg(long, default_value = "1.0", allow_negative_numbers = true)]
    budget: String,
    /// Instead of a budget: the best metric on the search split with at most this many weight bytes (a trial
    /// meets the target when its weights fit).
    #[arg(long, value_name = "N")]
    target_bytes: Option<u64>,
    /// Classification tasks: a trial meets the budget only if its drop plus this many standard errors of
    /// the paired accuracy difference (from the examples it and FP32 disagree on) stays within it, so that
    /// moves which look free on the search split by luck are not all taken. 0: the drop alone.
    #[arg(long, default_value_t = 1.0)]
    margin_se: f64,
    /// What each group chooses from; the first value of each list is the baseline every group starts from.
    /// `encoding=mxint8,mxint4,mxfp4,fixed:4..8; sparsity=0..0.5:0.1; activations=mxint8,fixed:8`: weight
    /// encodings (`fixed:W` and `fixed:A..B` take per-layer fraction widths chosen from the weights' RMSE),
    /// sparsities (l1-norm pruning of each tensor; `a..b:step` or a list), input-activation encodings
    /// (`fixed:W`: fraction widths calibrated on the search split, `--calib-method`). A bare list is the
    /// encodings.
    #[arg(long, default_value = "mxint8,mxint4,mxfp4", value_name = "SPACE")]
    space: String,
    /// Input activations of every linear layer when the space does not search them (default mxint8).
    #[arg(long)]
    activations: Option<String>,
    /// How `fixed:W` activations in the space get their fraction widths from the search split:
    /// percentile:P, mse or minmax (as `mxrt convert --calib-method`).
    #[arg(long, default_value = "percentile:99.99")]
    calib_method: String,
    /// Groups that take one choice together: `layer` (each weight layer), `kind` (embeddings, attention,
    /// ffn, pooler, classifier, linear), or a comma list of selectors, each one group: a layer kind or a
    /// layer-name glob (`encoder.layer.0.*`); a layer joins the first selector that matches, layers no
    /// selector matches stay at the baseline.
    #[arg(long, default_value = "layer")]
    group: String,
    /// Search strategy. `tpe`: a Tree-structured Parzen Estimator over the groups' choices (random for
    /// its first 10 trials); `random`; `grid`: every point of the space (refused past --trials points);
    /// `greedy`: from the sensitivity table, moves in order of bytes saved per point lost, each kept if the
    /// recipe still meets the budget. tpe and random are seeded by --seed.
    #[arg(long, default_value = "tpe", value_parser = ["tpe", "random", "grid", "greedy"])]
    strategy: String,
    /// Trials of the strategy, besides the baseline and the uniform points (default: 40 for tpe and random;
    /// for grid the whole grid, up to 1,000 points; for greedy every move of the sensitivity table once).
    #[arg(long)]
    trials: Option<usize>,
    /// Only the sensitivity table (and its heat map).
    #[arg(long)]
    sensitivity: bool,
    /// Share of the examples (the first ones) the search sees; the rest is the held-out split.
    #[arg(long, default_value_t = 0.5)]
    search_fraction: f64,
    /// Output directory (created if missing): trials.csv/json, sensitivity and Pareto charts, best.toml and
    /// best.mxrt (the chosen recipe and its model), report.md. Trials are journaled to
    /// OUT/trials.partial.jsonl as they finish.
    #[arg(long, default_value = "search")]
    out: PathBuf,
    /// Reuse the trials an earlier search into the same --out measured (its trials.json, or the journal an
    /// interrupted run left), if the checkpoint, data, split, space and groups are the same; with the same
    /// --seed and --jobs the strategy retraces its steps and goes on past them.
    #[arg(long)]
    resume: bool,
    /// Trials evaluated at the same time (default: the cores). tpe suggests this many points per round.
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
    /// `baseline`, `sensitivity`, `uniform`, or the strategy's (`tpe`, `random`, `grid`, `greedy`).
    pub phase: &'static str,
    /// What differs from the baseline, e.g. `encoder.layer.3.intermediate.dense=mxint4`.
    pub label: String,
    /// The choice of each group, in group order (e.g. `mxint4`, or `mxint4 sparsity=0.3 act=fixed:8`
    /// where sparsity and activations are searched).
    pub choice: Vec<String>,
    /// The indices into the space behind `choice`.
    #[serde(skip)]
    pub point: Vec<usize>,
    pub weight_bytes: u64,
    pub metric: Option<f64>,
    /// Points below FP32 on the search split (negative: better than FP32).
    pub drop_points: Option<f64>,
    /// Standard error of that drop in points (classification: paired over the examples), when known.
    pub se_points: Option<f64>,
    pub feasible: bool,
    pub seconds: f64,
    /// Measured by an earlier run (`--resume`), not again.
    pub resumed: bool,
}

/// One layer's concrete setting under a point of the space.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LayerChoice {
    pub weights: String,
    pub activations: String,
    pub sparsity: f64,
}

impl LayerChoice {
    fn settings(&self) -> Settings {
        Settings {
            weights: Some(self.weights.clone()),
            activations: Some(self.activations.clone()),
            prune: Some(prune(self.sparsity)),
            ..Settings::default()
        }
    }

    /// The same as TOML keys, one per line; beside a `default`, only the weights and what differs from it.
    fn toml(&self, default: Option<&LayerChoice>) -> String {
        let Some(d) = default else {
            return self.toml_all();
        };
        let mut s = format!("weights = \"{}\"\n", self.weights);
        if self.activations != d.activations {
            s += &format!("activations = \"{}\"\n", self.activations);
        }
        // A default prune reaches linear-like layers only: a pruned layer always says so itself.
        if self.sparsity != d.sparsity || self.sparsity > 0.0 {
            s += &self
                .toml_all()
                .lines()
                .filter(|l| l.starts_with("prune"))
                .collect::<String>();
            s.push('\n');
        }
        s
    }

    fn toml_all(&self) -> String {
        let prune = if self.sparsity > 0.0 {
            format!(
                "{{ method = \"l1\", sparsity = {}, scope = \"local\", seed = 0 }}",
                self.sparsity
            )
        } else {
            "false".into()
        };
        format!(
            "weights = \"{}\"\nactivations = \"{}\"\nprune = {prune}\n",
            self.weights, self.activations
        )
    }
}

fn prune(sparsity: f64) -> PruneSetting {
    if sparsity > 0.0 {
        PruneSetting::On {
            method: "l1".into(),
            sparsity,
            scope: "local".into(),
            seed: 0,
        }
    } else {
        PruneSetting::Off(false)
    }
}

pub(crate) struct Search<'a> {
    a: &'a Args,
    source: Source,
    groups: Vec<Group>,
    /// Weight layers in no group: they keep the baseline.
    fixed_layers: Vec<String>,
    space: Space,
    reference_metric: f64,
    metric_name: &'static str,
    /// The budget in points of the metric (a relative `--budget` resolved against FP32's).
    budget: f64,
    /// Fraction widths of `fixed:W` candidates by (layer, width): weights (RMSE) and activations (data).
    weight_fracs: HashMap<(String, u8), u8>,
    activation_fracs: HashMap<(String, u8), u8>,
    /// Measurements of earlier runs (`--resume`), by choice.
    resumed: HashMap<Vec<String>, Measured>,
    journal: Option<Journal>,
}

/// Points of a metric: accuracy, agreement and correlations × 100.
fn points(v: f64) -> f64 {
    100.0 * v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_are_points_or_relative() {
        assert_eq!(parse_budget("1.5").unwrap(), Budget::Points(1.5));
        assert_eq!(parse_budget("2%").unwrap(), Budget::Relative(2.0));
        assert_eq!(parse_budget(" 0 % ").unwrap(), Budget::Relative(0.0));
        for bad in ["-1", "x", "NaN", "%", "-2%"] {
            let e = parse_budget(bad).unwrap_err().to_string();
            assert!(e.contains("--budget"), "{e}");
        }
    }
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

    /// The baseline point: every group at the first value of every dimension.
    fn baseline(&self) -> Vec<usize> {
        vec![0; self.groups.len() * DIMS]
    }

    /// Index count of each coordinate of a point.
    fn cardinalities(&self) -> Vec<usize> {
        let card = self.space.cardinalities();
        (0..self.groups.len()).flat_map(|_| card).collect()
    }

    /// The choice of each group under `point`, as labels.
    fn choice(&self, point: &[usize]) -> Vec<String> {
        point
            .chunks(DIMS)
            .map(|idx| self.space.choice_label(idx))
            .collect()
    }

    /// What differs from the baseline under `point`, e.g. `fc1=mxint4 out=mxfp4`.
    fn label(&self, point: &[usize]) -> String {
        let changed: Vec<String> = point
            .chunks(DIMS)
            .zip(&self.groups)
            .filter(|(idx, _)| idx.iter().any(|&i| i != 0))
            .map(|(idx, g)| format!("{}={}", g.name, self.space.choice_label(idx)))
            .collect();
        match changed.len() {
            0 => "baseline".into(),
            n if n > 3 => format!("{n} groups changed"),
            _ => changed.join(" "),
        }
    }

    /// One layer's concrete setting for the group choice `idx` (fraction widths filled in).
    fn layer_choice(&self, layer: &str, idx: &[usize]) -> LayerChoice {
        let concrete = |c: &Candidate, fracs: &HashMap<(String, u8), u8>| match c {
            Candidate::Spec(s) => s.clone(),
            Candidate::FixedWidth(w) => {
                // A layer the data never ran keeps a grid where values up to 1 fit.
                let f = fracs
                    .get(&(layer.to_string(), *w))
                    .copied()
                    .unwrap_or_else(|| calibrate::fitting_frac(1.0, *w));
                format!("fixed:{w}.{f}")
            }
        };
        LayerChoice {
            weights: concrete(&self.space.weights[idx[WEIGHTS]], &self.weight_fracs),
            activations: concrete(
                &self.space.activations[idx[ACTIVATIONS]],
                &self.activation_fracs,
            ),
            sparsity: self.space.sparsity[idx[SPARSITY]],
        }
    }

    /// Every weight layer's setting under `point`, and the recipe's default (the baseline's, where it
    /// needs no per-layer fraction width): only layers that differ from the default get an override.
    fn layer_choices(&self, point: &[usize]) -> (Option<LayerChoice>, Vec<(String, LayerChoice)>) {
        let base = [0; DIMS];
        let plain = |c: &Candidate| matches!(c, Candidate::Spec(_));
        let default = (plain(&self.space.weights[0]) && plain(&self.space.activations[0]))
            .then(|| self.layer_choice("", &base));
        let mut layers = Vec::new();
        for (g, idx) in self.groups.iter().zip(point.chunks(DIMS)) {
            for l in &g.layers {
                layers.push((l.clone(), self.layer_choice(l, idx)));
            }
        }
        for l in &self.fixed_layers {
            layers.push((l.clone(), self.layer_choice(l, &base)));
        }
        // A default prune reaches linear-like layers only: with a pruned baseline every layer says its own.
        if default.as_ref().is_some_and(|d| d.sparsity == 0.0) {
            layers.retain(|(_, c)| default.as_ref() != Some(c));
        }
        (default, layers)
    }

    /// The recipe of `point`.
    fn recipe(&self, point: &[usize]) -> Recipe {
        let (default, layers) = self.layer_choices(point);
        let mut recipe = Recipe::default();
        if let Some(d) = default {
            recipe.default = d.settings();
            recipe.default.prune = (d.sparsity > 0.0).then(|| prune(d.sparsity));
        }
        for (name, c) in layers {
            recipe.overrides.push(Override {
                name: Some(name),
                kind: None,
                settings: c.settings(),
                may_match_nothing: false,
            });
        }
        recipe
    }

    /// The recipe of `point` as TOML: `mxrt convert CHECKPOINT --recipe best.toml` builds the same model.
    fn recipe_toml(&self, point: &[usize]) -> String {
        let (default, layers) = self.layer_choices(point);
        let mut s = format!(
            "# Written by mxrt search ({}): `mxrt convert CHECKPOINT --recipe best.toml` gives the evaluated model.\n",
            self.a.checkpoint.display()
        );
        if let Some(d) = &default {
            let mut keys = d.toml_all();
            if d.sparsity == 0.0 {
                keys = keys.replace("prune = false\n", "");
            }
            s += &format!("\n[default]\n{keys}");
        }
        for (name, c) in layers {
            s += &format!(
                "\n[[layer]]\nname = \"{name}\"\n{}",
                c.toml(default.as_ref())
            );
        }
        s
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
            channel_scales: Default::default(),
        }
    }

    /// Builds `point` in memory and evaluates it on `data` against the FP32 outputs `refs`: weight bytes,
    /// the headline metric and its paired standard error in points (classification).
    fn measure(&self, point: &[usize], data: &Data, refs: &[Vec<f32>]) -> Result<Measured> {
        let start = Instant::now();
        let built = self.source.build(
            Path::new("trial.mxrt"),
            &self.options(self.recipe(point)),
            &mut |_, _, _| {},
        )?;
        let weight_bytes: u64 = built
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
        Ok(Measured {
            weight_bytes,
            metric: m[self.metric_name].as_f64(),
            se_points: se,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// A trial of `point` on the search split: measured, or taken from an earlier run; journaled.
    fn trial(
        &self,
        (id, phase, label): (usize, &'static str, String),
        point: &[usize],
        (data, refs): (&Data, &[Vec<f32>]),
    ) -> Result<Trial> {
        let choice = self.choice(point);
        let (m, resumed) = match self.resumed.get(&choice) {
            Some(m) => (*m, true),
            None => (
                self.measure(point, data, refs)
                    .with_context(|| format!("trial {id} ({label})"))?,
                false,
            ),
        };
        let drop_points = m.metric.map(|v| points(self.reference_metric) - points(v));
        let margin = self.a.margin_se * m.se_points.unwrap_or(0.0);
        let t = Trial {
            id,
            phase,
            label,
            choice,
            point: point.to_vec(),
            weight_bytes: m.weight_bytes,
            metric: m.metric,
            drop_points,
            se_points: m.se_points,
            feasible: match self.a.target_bytes {
                Some(n) => m.weight_bytes <= n && m.metric.is_some(),
                None => drop_points.is_some_and(|d| d + margin <= self.budget),
            },
            seconds: m.seconds,
            resumed,
        };
        if let Some(j) = &self.journal {
            j.append(&t)?;
        }
        Ok(t)
    }

    /// Trials of `points` (phase, label, point), `--jobs` at a time, numbered after `trials` and appended.
    fn run_all(
        &self,
        trials: &mut Vec<Trial>,
        todo: Vec<(&'static str, String, Vec<usize>)>,
        split: (&Data, &[Vec<f32>]),
        bar: &ProgressBar,
    ) -> Result<()> {
        let first = trials.len();
        let jobs = self.jobs().min(todo.len().max(1));
        let pool = rayon::ThreadPoolBuilder::new().num_threads(jobs).build()?;
        let done: Vec<Trial> = pool.install(|| {
            todo.into_par_iter()
                .enumerate()
                .map(|(k, (phase, label, point))| {
                    let t = self.trial((first + k, phase, label), &point, split);
                    bar.inc(1);
                    t
                })
                .collect::<Result<Vec<Trial>>>()
        })?;
        trials.extend(done);
        if let Some(best) = self.best(trials.iter()) {
            bar.set_message(format!(
                "best {} bytes, drop {:.2} pt",
                best.weight_bytes,
                best.drop_points.unwrap_or(0.0)
            ));
        }
        Ok(())
    }

    fn jobs(&self) -> usize {
        self.a
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
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
    bar.enable_steady_tick(std::time::Duration::from_millis(250));
    bar
}

/// `--budget`: points of the metric, or a share of FP32's.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Budget {
    Points(f64),
    Relative(f64),
}

fn parse_budget(s: &str) -> Result<Budget> {
    let (number, relative) = match s.trim().strip_suffix('%') {
        Some(n) => (n, true),
        None => (s.trim(), false),
    };
    match number.trim().parse::<f64>() {
        Ok(v) if v >= 0.0 && relative => Ok(Budget::Relative(v)),
        Ok(v) if v >= 0.0 => Ok(Budget::Points(v)),
        _ => bail!("--budget {s:?}: give points (1.0) or a share of FP32's metric (2%), 0 or more"),
    }
}

/// What makes earlier trials reusable by `--resume`: the same model, data, split, space and groups.
fn fingerprint(search: &Search, examples: usize) -> Result<Value> {
    let a = search.a;
    let data_sha256 = match &a.data.data {
        Some(p) => Some(mxrt_converter::sha256_hex(
            &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        )),
        None => None,
    };
    let checkpoint = std::fs::canonicalize(&a.checkpoint).unwrap_or_else(|_| a.checkpoint.clone());
    Ok(json!({
        "checkpoint": checkpoint.display().to_string(),
        "data_sha256": data_sha256,
        "synthetic": a.data.synthetic.map(|n| json!({"examples": n, "seed": a.data.seed})),
        "task": a.data.task, "limit": a.data.limit, "max_length": a.data.max_length,
        "examples": examples, "search_fraction": a.search_fraction,
        "space": search.space.describe(), "calib_method": a.calib_method,
        "groups": search.groups,
    }))
}

/// Fraction widths of the space's `fixed:W` candidates: each layer's weights by their own RMSE, its input
/// activations from the FP32 model on the search split.
fn calibrate_fractions(
    search: &mut Search,
    reference: &Model,
    search_data: &Data,
    show: bool,
) -> Result<()> {
    let (weight_widths, activation_widths) = search.space.calibrated_widths();
    let layers = search.source.layers();
    let mut todo: Vec<(usize, u8)> = Vec::new();
    for li in 0..layers.len() {
        if search.source.layer_weights(li).next().is_some() {
            todo.extend(weight_widths.iter().map(|&w| (li, w)));
        }
    }
    let source = &search.source;
    let fracs: Vec<((String, u8), u8)> = todo
        .par_iter()
        .map(|&(li, w)| {
            let tensors: Vec<&[f32]> = source.layer_weights(li).collect();
            let (f, _) = best_fixed_frac(&tensors, w, Rounding::default());
            ((layers[li].name.clone(), w), f)
        })
        .collect();
    search.weight_fracs = fracs.into_iter().collect();
    if activation_widths.is_empty() {
        return Ok(());
    }
    let method: Method = search
        .a
        .calib_method
        .parse()
        .map_err(|e| anyhow::anyhow!("--calib-method {e}"))?;
    if show {
        eprintln!("calibrating fixed-point activations on the search split ({method}) ...");
    }
    let (mut sampled, _) = calibrate::sample_activations(
        reference,
        search_data,
        search.a.data.max_length,
        &Default::default(),
    )?;
    for (layer, s) in sampled.iter_mut() {
        for &w in &activation_widths {
            let f = calibrate::choose(s, w, method, Rounding::default());
            search.activation_fracs.insert((layer.clone(), w), f);
        }
    }
    Ok(())
}

pub fn run(a: Args) -> Result<ExitCode> {
    let started = Instant::now();
    let space = Space::parse(&a.space, a.activations.as_deref()).map_err(|e| {
        let m = e.to_string();
        if m.starts_with("--") {
            e
        } else {
            anyhow::anyhow!("--space: {m}")
        }
    })?;
    if a.search_fraction.is_nan() || a.search_fraction <= 0.0 || a.search_fraction >= 1.0 {
        bail!("--search-fraction must be in (0, 1): the held-out split needs examples too");
    }
    let negative_or_nan = |v: f64| v.is_nan() || v < 0.0;
    let budget = parse_budget(&a.budget)?;
    if negative_or_nan(a.margin_se) {
        bail!("--margin-se must be a number, 0 or more");
    }
    a.calib_method
        .parse::<Method>()
        .map_err(|e| anyhow::anyhow!("--calib-method {e}"))?;
    let show = !(a.quiet || a.json);
    if show {
        eprintln!("reading {} ...", a.checkpoint.display());
    }
    // Trials differ in a few layers' encodings: each tensor is encoded once per encoding.
    let source = Source::open(std::slice::from_ref(&a.checkpoint), false)
        .with_context(|| format!("reading the checkpoint {}", a.checkpoint.display()))?
        .memoize_encodings();
    let (groups, fixed_layers) = groups::groups(&source, &a.group)?;
    if groups.is_empty() {
        bail!(
            "{} has no weight layers to search over",
            a.checkpoint.display()
        );
    }
    if a.strategy == "grid" && !a.sensitivity {
        strategies::check_grid(
            space.points_per_group(),
            groups.len(),
            a.trials.unwrap_or(1000),
        )?;
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
        fixed_layers,
        space,
        reference_metric: 0.0,
        metric_name: "accuracy",
        budget: 0.0,
        weight_fracs: HashMap::new(),
        activation_fracs: HashMap::new(),
        resumed: HashMap::new(),
        journal: None,
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
    calibrate_fractions(&mut search, reference.model(), &search_data, show)?;
    drop(reference);
    search.metric_name = metric_name;
    search.reference_metric = fp32_search[metric_name]
        .as_f64()
        .with_context(|| format!("the FP32 model has no {metric_name} on this data"))?;
    search.budget = match budget {
        Budget::Points(p) => p,
        Budget::Relative(r) => points(search.reference_metric).abs() * r / 100.0,
    };
    let fingerprint = fingerprint(&search, n)?;
    if a.resume {
        search.resumed = resume::load(&a.out, &fingerprint)?;
        if show {
            eprintln!(
                "resuming: {} trials measured before are reused",
                search.resumed.len()
            );
        }
    }
    search.journal = Some(Journal::create(&a.out, &fingerprint)?);
    let search = search;
    if show {
        eprintln!(
            "{} groups x {} choices each ({}); search split {cut} examples, held-out {}; FP32 {metric_name} {:.2} on the search split",
            search.groups.len(),
            search.space.points_per_group(),
            search.space.describe(),
            n - cut,
            points(search.reference_metric)
        );
    }
    let split = (&search_data, refs_search.as_slice());

    let baseline = search.baseline();
    let mut trials: Vec<Trial> = Vec::new();
    trials.push(search.trial((0, "baseline", "baseline".into()), &baseline, split)?);

    // Sensitivity: each group alone at each candidate value (greedy's starting point, or asked for).
    let card = search.space.cardinalities();
    let with_sensitivity = a.sensitivity || a.strategy == "greedy";
    let mut cells = Vec::new();
    if with_sensitivity {
        for (gi, g) in search.groups.iter().enumerate() {
            for (d, &c) in card.iter().enumerate() {
                for v in 1..c {
                    let mut p = baseline.clone();
                    p[gi * DIMS + d] = v;
                    cells.push((
                        "sensitivity",
                        format!("{}={}", g.name, search.space.value(d, v)),
                        p,
                    ));
                }
            }
        }
    }
    let bar = progress(show, cells.len(), "sensitivity trials");
    let first = trials.len();
    search.run_all(&mut trials, cells, split, &bar)?;
    bar.finish_and_clear();
    let sensitivity: Vec<Trial> = trials[first..].to_vec();

    // Uniform points for the chart: every group at each candidate value of a dimension.
    let mut uniform = Vec::new();
    for (d, &c) in card.iter().enumerate() {
        for v in 1..c {
            let p: Vec<usize> = baseline
                .iter()
                .enumerate()
                .map(|(k, _)| if k % DIMS == d { v } else { 0 })
                .collect();
            uniform.push(("uniform", format!("all {}", search.space.value(d, v)), p));
        }
    }
    search.run_all(&mut trials, uniform, split, &ProgressBar::hidden())?;

    let best_point = match (a.sensitivity, a.strategy.as_str()) {
        (true, _) => baseline.clone(),
        (false, "greedy") => strategies::greedy(&search, &mut trials, &sensitivity, split, show)?,
        (false, "grid") => strategies::grid(&search, &mut trials, split, show)?,
        (false, _) => strategies::model_based(&search, &mut trials, split, show)?,
    };

    // The chosen recipe (the best feasible trial the strategy kept) on the held-out split.
    let best = search
        .best(trials.iter().filter(|t| t.point == best_point))
        .cloned();
    let held_best = match &best {
        Some(_) => Some(search.measure(&best_point, &held_data, &refs_held)?),
        None => None,
    };
    let held_baseline = search.measure(&baseline, &held_data, &refs_held)?;
    let held_fp32 = fp32_held[metric_name].as_f64();
    let recipe_toml = search.recipe_toml(&best_point);
    let resumed = trials.iter().filter(|t| t.resumed).count();

    let summary = json!({
        "checkpoint": a.checkpoint.display().to_string(),
        "data": a.data.data.as_ref().map(|p| p.display().to_string()),
        "task": task, "metric": metric_name, "budget": a.budget, "budget_points": search.budget, "margin_se": a.margin_se,
        "target_bytes": a.target_bytes,
        "space": search.space.describe(), "group": a.group, "strategy": a.strategy,
        "groups": search.groups, "baseline_layers": search.fixed_layers,
        "search_split": {"examples": cut, "fp32": search.reference_metric},
        "held_out_split": {"examples": n - cut, "fp32": held_fp32, "baseline": held_baseline.metric,
            "best": held_best.and_then(|m| m.metric), "best_se_points": held_best.and_then(|m| m.se_points)},
        "baseline": {"weight_bytes": trials[0].weight_bytes, "search_metric": trials[0].metric},
        "best": best.as_ref().map(|b| json!({"trial": b.id, "weight_bytes": b.weight_bytes, "search_metric": b.metric,
            "drop_points": b.drop_points, "se_points": b.se_points, "choice": b.choice,
            "held_out_metric": held_best.and_then(|m| m.metric)})),
        "trials": trials.len(), "resumed_trials": resumed, "jobs": search.jobs(),
        "seconds": started.elapsed().as_secs_f64(),
        "fingerprint": fingerprint,
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
            &search.options(search.recipe(&best_point)),
            &mut |_, _, _| {},
        )?;
        let path = staged.path().join("best.mxrt");
        mxrt_format::write_atomically(&path, |w| w.write_all(&built.bytes))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    staged
        .commit()
        .with_context(|| format!("moving the results into {}", a.out.display()))?;
    if let Some(j) = search.journal {
        j.finish()?;
    }
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&summary)?)?;
    } else if !a.quiet {
        output::print_summary(&summary)?;
        let reused = if a.resume {
            format!(" ({resumed} reused from the earlier run)")
        } else {
            String::new()
        };
        outln!(
            "{} trials{reused} in {:.1} s; results in {}",
            trials.len(),
            started.elapsed().as_secs_f64(),
            a.out.display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
