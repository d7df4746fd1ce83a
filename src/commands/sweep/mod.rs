//! `mxrt sweep`: the experiments of a quantization course in one command. A checkpoint is converted in memory
//! once per point (fixed-point width, pruning sparsity × method, or encoding), each point is evaluated on the
//! same data against the FP32 model, and the results become `results.csv`, `results.json`, `report.md` and
//! PNG/SVG charts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use mxrt_converter::fidelity::best_fixed_frac;
use mxrt_converter::model::Role;
use mxrt_converter::model_convert::{ModelOptions, ModelReport, Source};
use mxrt_converter::recipe::{Override, PruneSetting, Recipe, Settings};
use mxrt_format::{write_atomically, Encoding, EncodingSpec, ReadOptions, Rounding, StagedDir};
use mxrt_runtime::Model;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};

mod output;

use output::{fmt_metric, print_table, write_outputs};

use crate::fmt::outln;
use crate::task::{compare, cpu_session, load_data, outputs, Data, DataArgs};

#[derive(clap::Args)]
pub struct Args {
    /// The checkpoint directory (config.json + safetensors).
    pub(crate) checkpoint: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// What to vary; repeat for the cartesian product. `fixed-width=4..32` (also `4..32:2` or `4,8,16`),
    /// `sparsity=0.1..0.9:0.1` (with --prune and --scope), `encoding=f32,f16,mxint8,mxint4,mxfp8-e4m3,mxfp4`.
    #[arg(long, required = true)]
    pub(crate) vary: Vec<String>,
    /// Fraction width for fixed-width points: `auto` (per layer, the F that minimises the weights' RMSE) or a
    /// number used for every layer.
    #[arg(long, default_value = "auto")]
    pub(crate) frac: String,
    /// Pruning methods for sparsity points, comma-separated: l1 (smallest magnitude), random.
    #[arg(long, default_value = "l1")]
    prune: String,
    /// Pruning scopes for sparsity points, comma-separated: local (per tensor), global (one threshold).
    #[arg(long, default_value = "local")]
    scope: String,
    /// Seed for random pruning.
    #[arg(long, default_value_t = 0)]
    prune_seed: u64,
    /// Embedding tables at each point: `quantized` (the point's weight encoding, the default: the whole
    /// model is compressed) or `f32` (kept exact, as MASE's quantization pass, which quantizes linear
    /// layers only).
    #[arg(long, default_value = "quantized", value_parser = ["quantized", "f32"])]
    embeddings: String,
    /// Base recipe (TOML, or a MASE quantization pass config). The varied setting replaces its `[default]`;
    /// its per-layer overrides still apply.
    #[arg(long)]
    recipe: Option<PathBuf>,
    /// Input activations of the linear layers: f32, an encoding (mxint8, fixed:8.4), or `same` (the point's
    /// weight encoding; fixed point then uses --act-frac).
    #[arg(long, default_value = "f32")]
    pub(crate) activations: String,
    /// Fraction width of fixed-point activations with `--activations same` (default: half the width, the
    /// pattern of MASE's 8.4 default).
    #[arg(long)]
    act_frac: Option<u8>,
    /// Rounding for MX and fixed point: nearest or even (default: the recipe's, else nearest).
    #[arg(long)]
    rounding: Option<String>,
    /// Output directory (created if missing).
    #[arg(long, default_value = "sweep")]
    pub(crate) out: PathBuf,
    /// Also write each point's .mxrt file into OUT/models.
    #[arg(long)]
    keep: bool,
    /// Points evaluated at the same time (default: as many as cores and free memory allow).
    #[arg(long)]
    jobs: Option<usize>,
    /// Print results.json on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// No progress bar and no table.
    #[arg(short, long)]
    quiet: bool,
}

/// One axis value of a point.
#[derive(Debug, Clone, PartialEq)]
enum Setting {
    Width(u8),
    Sparsity {
        method: String,
        scope: String,
        sparsity: f64,
    },
    Encoding(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Axis {
    Width,
    Sparsity,
    Encoding,
}

impl Setting {
    fn axis(&self) -> Axis {
        match self {
            Setting::Width(_) => Axis::Width,
            Setting::Sparsity { .. } => Axis::Sparsity,
            Setting::Encoding(_) => Axis::Encoding,
        }
    }
    fn label(&self) -> String {
        match self {
            Setting::Width(w) => format!("fixed-width {w}"),
            Setting::Sparsity {
                method,
                scope,
                sparsity,
            } => format!("{method} {scope} {:.0} %", 100.0 * sparsity),
            Setting::Encoding(e) => e.clone(),
        }
    }
}

/// Parses `a..b[:step]` or a comma list into numbers.
fn numbers(spec: &str, what: &str) -> Result<Vec<f64>> {
    let num = |s: &str| -> Result<f64> {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .with_context(|| format!("{what}: {s:?} is not a number"))
    };
    if let Some((a, rest)) = spec.split_once("..") {
        let (b, step) = match rest.split_once(':') {
            Some((b, s)) => (num(b)?, num(s)?),
            None => (num(rest)?, 1.0),
        };
        let a = num(a)?;
        if step <= 0.0 || b < a {
            bail!("{what}: range {spec:?} needs start <= end and a positive step");
        }
        let n = ((b - a) / step + 1e-9).floor() as usize + 1;
        if n > 1000 {
            bail!("{what}: {spec:?} gives {n} points (at most 1000)");
        }
        // Computed from the index, so 0.1..0.9:0.1 gives 0.1, 0.2, ... without accumulated error.
        Ok((0..n)
            .map(|i| {
                let v = a + step * i as f64;
                (v * 1e9).round() / 1e9
            })
            .collect())
    } else {
        spec.split(',').map(num).collect()
    }
}

fn list(spec: &str) -> Vec<String> {
    spec.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The values of one `--vary`.
fn parse_vary(spec: &str, a: &Args) -> Result<Vec<Setting>> {
    let Some((key, value)) = spec.split_once('=') else {
        bail!("--vary {spec:?}: expected KEY=VALUES, e.g. fixed-width=4..32, sparsity=0.1..0.9:0.1, encoding=f32,mxint8");
    };
    match key.trim() {
        "fixed-width" | "width" => numbers(value, "fixed-width")?
            .into_iter()
            .map(|w| {
                if w.fract() != 0.0 || !(2.0..=32.0).contains(&w) {
                    bail!("fixed-width: {w} is not an integer in 2..=32");
                }
                Ok(Setting::Width(w as u8))
            })
            .collect(),
        "sparsity" => {
            let values = numbers(value, "sparsity")?;
            if let Some(s) = values.iter().find(|s| !(0.0..1.0).contains(*s)) {
                bail!("sparsity: {s} is outside [0, 1)");
            }
            let mut out = Vec::new();
            for method in list(&a.prune) {
                if !matches!(method.as_str(), "l1" | "random") {
                    bail!("--prune: unknown method {method:?} (l1, random)");
                }
                for scope in list(&a.scope) {
                    if !matches!(scope.as_str(), "local" | "global") {
                        bail!("--scope: unknown scope {scope:?} (local, global)");
                    }
                    for &sparsity in &values {
                        out.push(Setting::Sparsity {
                            method: method.clone(),
                            scope: scope.clone(),
                            sparsity,
                        });
                    }
                }
            }
            Ok(out)
        }
        "encoding" => list(value)
            .into_iter()
            .map(|e| {
                e.parse::<EncodingSpec>()
                    .map_err(|err| anyhow::anyhow!("encoding: {err}"))?;
                Ok(Setting::Encoding(e))
            })
            .collect(),
        other => bail!("--vary: unknown key {other:?} (fixed-width, sparsity, encoding)"),
    }
}

/// The cartesian product of the axes, in the order given.
fn product(axes: &[Vec<Setting>]) -> Vec<Vec<Setting>> {
    axes.iter().fold(vec![Vec::new()], |acc, values| {
        acc.iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.push(v.clone());
                    q
                })
            })
            .collect()
    })
}

/// One row of results.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    pub(crate) point: usize,
    pub(crate) label: String,
    pub(crate) width: Option<u8>,
    /// `auto` points record the range of per-layer fraction widths chosen.
    pub(crate) frac: Option<String>,
    pub(crate) sparsity: Option<f64>,
    pub(crate) prune: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) encoding: Option<String>,
    pub(crate) activations: String,
    pub(crate) task: String,
    pub(crate) metric_name: String,
    pub(crate) metric: Option<f64>,
    pub(crate) reference_metric: Option<f64>,
    pub(crate) agreement: Option<f64>,
    pub(crate) mean_embedding_cosine_to_reference: Option<f64>,
    pub(crate) kl: Option<f64>,
    pub(crate) max_abs_logit_diff: Option<f64>,
    pub(crate) weight_bytes: u64,
    pub(crate) fp32_weight_bytes: u64,
    pub(crate) file_bytes: u64,
    pub(crate) saving_percent: f64,
    /// SQNR of all weight matrices together: 10·log10(Σx² / Σ(x−q)²); null when exact.
    pub(crate) weight_sqnr_db: Option<f64>,
    /// The recipe's `[default]` and the per-layer overrides the sweep added, as stored in the file.
    pub(crate) recipe: Value,
    pub(crate) seconds: f64,
}

fn weight_totals(report: &ModelReport) -> (u64, u64, Option<f64>) {
    let weights = report.tensors.iter().filter(|t| t.role == Role::Weight);
    let (mut bytes, mut fp32, mut signal, mut noise) = (0, 0, 0.0, 0.0);
    for t in weights {
        bytes += t.bytes;
        fp32 += t.fp32_bytes;
        signal += t.fidelity.signal_energy;
        noise += t.fidelity.noise_energy;
    }
    let sqnr = (noise > 0.0).then(|| 10.0 * (signal / noise).log10());
    (bytes, fp32, sqnr)
}

/// Free memory (MemAvailable) in bytes, when /proc tells.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

struct Sweep<'a> {
    a: &'a Args,
    /// Where the outputs go until the sweep is complete: a staging directory beside `--out`.
    out: PathBuf,
    source: Source,
    base: Recipe,
    rounding: Rounding,
    /// Best fraction width per (layer, width), shared by the points that need it.
    fracs: Mutex<HashMap<(usize, u8), u8>>,
}

impl Sweep<'_> {
    /// The recipe of one point: the base recipe with the varied settings in its `[default]`, plus per-layer
    /// fraction widths when `--frac auto`.
    fn recipe(&self, point: &[Setting]) -> Result<(Recipe, Option<String>, String)> {
        let mut recipe = self.base.clone();
        let d = &mut recipe.default;
        let mut width = None;
        for s in point {
            match s {
                Setting::Width(w) => {
                    let f = match self.a.frac.as_str() {
                        "auto" => 0,
                        n => n
                            .parse::<u8>()
                            .with_context(|| format!("--frac {n:?}: auto or a number 0..=64"))?,
                    };
                    d.weights = Some(format!("fixed:{w}.{f}"));
                    width = Some(*w);
                }
                Setting::Encoding(e) => d.weights = Some(e.clone()),
                Setting::Sparsity {
                    method,
                    scope,
                    sparsity,
                } => {
                    d.prune = Some(PruneSetting::On {
                        method: method.clone(),
                        sparsity: *sparsity,
                        scope: scope.clone(),
                        seed: self.a.prune_seed,
                    })
                }
            }
        }
        d.rounding = Some(self.rounding.name().to_string());
        let weights = d.weights.clone().unwrap_or_else(|| "f32".into());
        let activations = match self.a.activations.as_str() {
            "same" => {
                let spec = weights
                    .parse::<EncodingSpec>()
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                match spec.encoding {
                    Encoding::Fixed { width, .. } => {
                        format!("fixed:{width}.{}", self.a.act_frac.unwrap_or(width / 2))
                    }
                    Encoding::Mx(_) => spec.encoding.to_string(),
                    _ => "f32".into(),
                }
            }
            other => other.to_string(),
        };
        d.activations = Some(activations.clone());
        if self.a.embeddings == "f32" {
            recipe.overrides.push(Override {
                name: None,
                kind: Some("embedding".into()),
                settings: Settings {
                    weights: Some("f32".into()),
                    prune: Some(PruneSetting::Off(false)),
                    ..Settings::default()
                },
                // MLPs have no embeddings.
                may_match_nothing: true,
            });
        }
        let mut frac_label = None;
        if let Some(w) = width {
            if self.a.frac == "auto" {
                let (fr, label) = self.auto_fracs(&recipe, w)?;
                recipe.overrides.extend(fr);
                frac_label = Some(label);
            } else {
                frac_label = Some(self.a.frac.clone());
            }
        }
        Ok((recipe, frac_label, activations))
    }

    /// Per-layer overrides giving each layer stored at `fixed:width.*` its RMSE-minimising fraction width.
    fn auto_fracs(&self, recipe: &Recipe, width: u8) -> Result<(Vec<Override>, String)> {
        let layers = self.source.layers();
        let has_weight = |li: usize| self.source.layer_weights(li).next().is_some();
        let (resolved, _) = recipe.resolve(layers, &has_weight)?;
        let todo: Vec<usize> = resolved
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                matches!(r.weights.map(|s| s.encoding), Some(Encoding::Fixed { width: w, .. }) if w == width)
            })
            .map(|(i, _)| i)
            .collect();
        let chosen: Vec<(usize, u8)> = todo
            .par_iter()
            .map(|&li| {
                if let Some(&f) = self
                    .fracs
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .get(&(li, width))
                {
                    return Ok((li, f));
                }
                let tensors: Vec<&[f32]> = self.source.layer_weights(li).collect();
                let (f, _) = best_fixed_frac(&tensors, width, self.rounding);
                self.fracs
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .insert((li, width), f);
                Ok((li, f))
            })
            .collect::<Result<_>>()?;
        let overrides = chosen
            .iter()
            .map(|&(li, f)| Override {
                name: Some(layers[li].name.clone()),
                kind: None,
                settings: Settings {
                    weights: Some(format!("fixed:{width}.{f}")),
                    ..Settings::default()
                },
                may_match_nothing: false,
            })
            .collect();
        let lo = chosen.iter().map(|c| c.1).min().unwrap_or(0);
        let hi = chosen.iter().map(|c| c.1).max().unwrap_or(0);
        let label = if lo == hi {
            format!("auto ({lo})")
        } else {
            format!("auto ({lo}..{hi})")
        };
        Ok((overrides, label))
    }

    fn options(&self, recipe: Recipe, source: &str) -> ModelOptions {
        ModelOptions {
            recipe,
            recipe_source: source.into(),
            embed_tokenizer: true,
            allow_nonfinite: false,
            no_sparse: false,
            plane_align: mxrt_format::PlaneAlign::Auto,
            calibration: None,
            channel_scales: Default::default(),
        }
    }

    /// Builds, opens and evaluates one point.
    fn run_point(
        &self,
        index: usize,
        point: &[Setting],
        data: &Data,
        refs: &[Vec<f32>],
    ) -> Result<Row> {
        let start = Instant::now();
        let label = point
            .iter()
            .map(Setting::label)
            .collect::<Vec<_>>()
            .join(", ");
        let (recipe, frac, activations) = self.recipe(point)?;
        let name = format!("point-{index:03}.mxrt");
        let out_path = self.out.join("models").join(&name);
        let built = self
            .source
            .build(
                &out_path,
                &self.options(recipe, &format!("mxrt sweep: {label}")),
                &mut |_, _, _| {},
            )
            .with_context(|| format!("converting point {index} ({label})"))?;
        if self.a.keep {
            write_atomically(&out_path, |w| w.write_all(&built.bytes))?;
        }
        let (weight_bytes, fp32_weight_bytes, weight_sqnr_db) = weight_totals(&built.report);
        let file_bytes = built.bytes.len() as u64;
        let stored_recipe = serde_json::to_value(&built.report.layers)?;
        let session = cpu_session(
            Model::from_bytes(&name, built.bytes, ReadOptions::default())?,
            &self.a.data,
        )?;
        let model = session.model();
        let out = outputs(&session, data, &self.a.data, &mut || {})?;
        let m = compare(model, data, &out, refs);
        let (task, metric_name) = data.headline();
        let get = |k: &str| m[k].as_f64();
        let mut row = Row {
            point: index,
            label,
            width: None,
            frac,
            sparsity: None,
            prune: None,
            scope: None,
            encoding: None,
            activations,
            task: task.into(),
            metric_name: metric_name.into(),
            metric: get(metric_name),
            reference_metric: get(&format!("reference_{metric_name}")),
            agreement: get("agreement"),
            mean_embedding_cosine_to_reference: get("mean_embedding_cosine_to_reference"),
            kl: get("kl"),
            max_abs_logit_diff: get("max_abs_logit_diff"),
            weight_bytes,
            fp32_weight_bytes,
            file_bytes,
            saving_percent: 100.0 * (1.0 - weight_bytes as f64 / fp32_weight_bytes.max(1) as f64),
            weight_sqnr_db,
            recipe: json!({"layers": stored_recipe}),
            seconds: 0.0,
        };
        for s in point {
            match s {
                Setting::Width(w) => row.width = Some(*w),
                Setting::Sparsity {
                    method,
                    scope,
                    sparsity,
                } => {
                    row.sparsity = Some(*sparsity);
                    row.prune = Some(method.clone());
                    row.scope = Some(scope.clone());
                }
                Setting::Encoding(e) => row.encoding = Some(e.clone()),
            }
        }
        row.seconds = start.elapsed().as_secs_f64();
        Ok(row)
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    let started = Instant::now();
    let axes: Vec<Vec<Setting>> = a
        .vary
        .iter()
        .map(|v| parse_vary(v, &a))
        .collect::<Result<_>>()?;
    let mut kinds: Vec<Axis> = axes
        .iter()
        .filter_map(|v| v.first().map(Setting::axis))
        .collect();
    kinds.sort();
    if kinds.windows(2).any(|w| w[0] == w[1]) {
        bail!("--vary: each key at most once (give several values in one --vary instead)");
    }
    let points = product(&axes);
    if points.is_empty() {
        bail!("--vary gave no points");
    }
    let base = match &a.recipe {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            Recipe::from_toml(&text).with_context(|| format!("recipe {}", p.display()))?
        }
        None => Recipe::default(),
    };
    let rounding: Rounding = match a.rounding.as_deref().or(base.default.rounding.as_deref()) {
        Some(r) => r.parse().map_err(|e| anyhow::anyhow!("--rounding: {e}"))?,
        None => Rounding::Nearest,
    };
    if a.activations != "same" && a.activations != "f32" {
        a.activations
            .parse::<EncodingSpec>()
            .map_err(|e| anyhow::anyhow!("--activations: {e}"))?;
    }

    let show = !(a.quiet || a.json);
    if show {
        eprintln!("reading {} ...", a.checkpoint.display());
    }
    let source = Source::open_with(
        std::slice::from_ref(&a.checkpoint),
        false,
        base.folds_batch_norm(),
    )
    .with_context(|| format!("reading the checkpoint {}", a.checkpoint.display()))?;
    // Everything is written into a staging directory and moved into --out at the end: a failed or
    // interrupted sweep leaves no half set of results.
    let staged = StagedDir::new(&a.out)
        .with_context(|| format!("cannot prepare the output directory {}", a.out.display()))?;
    let sweep = Sweep {
        a: &a,
        out: staged.path().to_path_buf(),
        source,
        base,
        rounding,
        fracs: Mutex::new(HashMap::new()),
    };

    // The FP32 reference: plain f32 weights and activations, no pruning.
    let mut fp32_recipe = Recipe::default();
    fp32_recipe.default.weights = Some("f32".into());
    let reference_built = sweep.source.build(
        Path::new("reference-fp32.mxrt"),
        &sweep.options(fp32_recipe, "mxrt sweep reference"),
        &mut |_, _, _| {},
    )?;
    let (_, fp32_weight_bytes, _) = weight_totals(&reference_built.report);
    let reference = cpu_session(
        Model::from_bytes(
            "reference-fp32.mxrt",
            reference_built.bytes,
            ReadOptions::default(),
        )?,
        &a.data,
    )?;
    let data = load_data(&a.data, reference.model())?;
    if show {
        eprintln!("FP32 reference on {} examples ...", data.examples());
    }
    let refs = outputs(&reference, &data, &a.data, &mut || {})?;
    let reference_metrics = compare(reference.model(), &data, &refs, &refs);
    let (task, metric_name) = data.headline();
    let reference_metric = reference_metrics[metric_name].as_f64();
    drop(reference);

    if a.keep {
        std::fs::create_dir_all(sweep.out.join("models"))?;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // A point holds its pruned weight copies, the encoded image and the model's activations: budget three
    // FP32 copies of the weights, and leave half of the free memory alone.
    let per_point = 3 * fp32_weight_bytes.max(1);
    let by_memory = available_memory().map_or(1, |m| (m / 2 / per_point).max(1) as usize);
    let jobs = a
        .jobs
        .unwrap_or(cores.min(by_memory))
        .clamp(1, points.len());
    let bar = if show {
        ProgressBar::new(points.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{bar:30}] {pos}/{len} points  {elapsed} elapsed, ETA {eta}  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(250));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(jobs).build()?;
    let rows: Vec<Row> = pool.install(|| {
        points
            .par_iter()
            .enumerate()
            .map(|(i, p)| {
                let row = sweep.run_point(i, p, &data, &refs)?;
                let line = format!(
                    "{}: {metric_name} {}",
                    row.label,
                    fmt_metric(row.metric, metric_name)
                );
                bar.inc(1);
                if show && bar.is_hidden() {
                    // No terminal (a log file): one line per finished point instead of the bar.
                    let done = bar.position();
                    let eta = started.elapsed().as_secs_f64() / done as f64
                        * (points.len() as u64 - done) as f64;
                    eprintln!(
                        "[{done}/{}] {line} ({:.1} s; about {eta:.0} s left)",
                        points.len(),
                        row.seconds
                    );
                }
                bar.set_message(line);
                Ok(row)
            })
            .collect::<Result<Vec<Row>>>()
    })?;
    bar.finish_and_clear();

    let summary = json!({
        "checkpoint": a.checkpoint.display().to_string(),
        "data": a.data.data.as_ref().map(|p| p.display().to_string()),
        "task": task, "metric": metric_name, "examples": data.examples(),
        "reference": {"metric": reference_metric, "fp32_weight_bytes": fp32_weight_bytes},
        "vary": a.vary, "frac": a.frac, "activations": a.activations, "rounding": rounding.name(),
        "jobs": jobs, "seconds": started.elapsed().as_secs_f64(),
        "points": rows,
    });
    write_outputs(
        &a,
        &sweep.out,
        &summary,
        &rows,
        &kinds,
        (task, metric_name),
        reference_metric,
        fp32_weight_bytes,
    )?;
    drop(sweep);
    staged
        .commit()
        .with_context(|| format!("moving the results into {}", a.out.display()))?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&summary)?)?;
    } else if !a.quiet {
        print_table(&rows, metric_name, reference_metric)?;
        outln!(
            "{} points in {:.1} s ({jobs} at a time); results in {}",
            rows.len(),
            started.elapsed().as_secs_f64(),
            a.out.display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
