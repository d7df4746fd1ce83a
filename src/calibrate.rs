//! `mxrt convert --calibrate DATA`: each layer's fixed-point fraction width chosen from data. The checkpoint
//! runs in FP32 on the calibration examples (one sequence at a time, so no padding row pollutes a range), every
//! linear layer's input is sampled, and each layer whose activations the recipe stores as `fixed:W.F` gets the
//! `F` that suits what it saw; fixed-point weights get the `F` that minimises their own RMSE (no data needed).
//! The choices become per-layer overrides of the recipe, and the record (data, its SHA-256, method, choices)
//! is stored in the file's recipe metadata.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use mxrt_converter::fidelity::best_fixed_frac;
use mxrt_converter::model_convert::{LayerScales, ModelOptions, Source};
use mxrt_converter::recipe::{LayerRecipe, Override, Recipe, Settings};
use mxrt_converter::rng::SplitMix64;
use mxrt_format::{Encoding, ReadOptions, Rounding};
use mxrt_runtime::{Model, TextEncoder};
use serde_json::{json, Value};

use crate::task::{load_data, Data, DataArgs};

pub mod channels;
pub mod refine;

/// Values kept per layer to choose from (a uniform sample of everything the layer saw): enough for a
/// 99.99th percentile to rest on ~26 values.
const SAMPLE: usize = 1 << 18;

/// How a layer's fraction width follows from the values it saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// The largest `F` at which the largest magnitude seen still fits (nothing clips).
    MinMax,
    /// The largest `F` at which this percentile of the magnitudes fits (the rest clip).
    Percentile(f64),
    /// The `F` that minimises the mean squared error over the sampled values (clipping traded for step).
    Mse,
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Method, String> {
        match s {
            "minmax" => Ok(Method::MinMax),
            "mse" => Ok(Method::Mse),
            _ => match s.strip_prefix("percentile:").map(str::parse::<f64>) {
                Some(Ok(p)) if p > 0.0 && p <= 100.0 => Ok(Method::Percentile(p)),
                Some(_) => Err(format!(
                    "{s:?}: the percentile must be a number in (0, 100], e.g. percentile:99.99"
                )),
                None => Err(format!(
                    "{s:?}: use minmax, percentile:P (e.g. percentile:99.99) or mse"
                )),
            },
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Method::MinMax => write!(f, "minmax"),
            Method::Percentile(p) => write!(f, "percentile:{p}"),
            Method::Mse => write!(f, "mse"),
        }
    }
}

/// What `--calibrate` needs besides the conversion's own options.
pub struct Request<'a> {
    pub data: &'a Path,
    pub samples: usize,
    pub method: Method,
    pub max_length: Option<usize>,
    /// Refine the statistics' choices against the model's output on the data (`--calib-refine`).
    pub refine: bool,
    /// Per-channel scales: smoothing of LayerNorm-fed inputs, per-row weight widths (`--calib-channels`).
    pub channels: bool,
}

/// A uniform sample of a layer's input values (reservoir sampling, seeded: the same data gives the same
/// choice) and its exact largest magnitude.
pub(crate) struct Sampled {
    max_abs: f32,
    seen: u64,
    values: Vec<f32>,
    rng: SplitMix64,
    /// The largest magnitude per input channel, when the layer's width is known (`--calib-channels`).
    channel_max: Vec<f32>,
}

impl Sampled {
    fn new(seed: u64, width: usize) -> Sampled {
        Sampled {
            max_abs: 0.0,
            seen: 0,
            values: Vec::new(),
            rng: SplitMix64(seed),
            channel_max: vec![0.0; width],
        }
    }

    fn add(&mut self, x: &[f32]) {
        let width = self.channel_max.len();
        if width > 0 {
            for row in x.chunks_exact(width) {
                for (m, v) in self.channel_max.iter_mut().zip(row) {
                    *m = m.max(v.abs());
                }
            }
        }
        for &v in x {
            self.max_abs = self.max_abs.max(v.abs());
            if self.values.len() < SAMPLE {
                self.values.push(v);
            } else {
                let j = self.rng.below(self.seen + 1);
                if let Ok(j) = usize::try_from(j) {
                    if j < SAMPLE {
                        self.values[j] = v;
                    }
                }
            }
            self.seen += 1;
        }
    }
}

/// The largest `F` (0..=64) at which magnitude `m` fits in a `width`-bit code.
pub(crate) fn fitting_frac(m: f64, width: u8) -> u8 {
    let largest = ((1u64 << (width - 1)) - 1) as f64;
    if m <= 0.0 {
        return width - 1;
    }
    (largest / m).log2().floor().clamp(0.0, 64.0) as u8
}

/// The fraction width `method` picks for these values.
pub(crate) fn choose(s: &mut Sampled, width: u8, method: Method, rounding: Rounding) -> u8 {
    match method {
        Method::MinMax => fitting_frac(f64::from(s.max_abs), width),
        Method::Percentile(p) => {
            let mut mags: Vec<f32> = s.values.iter().map(|v| v.abs()).collect();
            mags.sort_by(f32::total_cmp);
            let at = ((mags.len() as f64 - 1.0) * p / 100.0).round() as usize;
            let m = mags
                .get(at.min(mags.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0.0);
            fitting_frac(f64::from(m), width)
        }
        Method::Mse => best_fixed_frac(&[&s.values], width, rounding).0,
    }
}

/// One layer's choice, for the record and the printed table.
pub struct Choice {
    pub layer: String,
    pub activations: Option<(String, f32)>,
    pub weights: Option<String>,
}

/// One layer's fixed-point settings while they are chosen: `(width, F)` of its activations (and the
/// largest magnitude its input took), of its weights (and whether the recipe asked them sparse).
struct Setting {
    layer: String,
    activations: Option<(u8, u8, f32)>,
    weights: Option<(u8, u8, bool)>,
}

impl Setting {
    fn choice(&self) -> Choice {
        Choice {
            layer: self.layer.clone(),
            activations: self
                .activations
                .map(|(w, f, max)| (format!("fixed:{w}.{f}"), max)),
            weights: self.weights.map(|(w, f, _)| format!("fixed:{w}.{f}")),
        }
    }

    /// The recipe override that stores these settings.
    fn apply(&self) -> Override {
        let mut settings = Settings::default();
        if let Some((w, f, _)) = self.activations {
            settings.activations = Some(format!("fixed:{w}.{f}"));
        }
        if let Some((w, f, sparse)) = self.weights {
            let enc = format!("fixed:{w}.{f}");
            settings.weights = Some(if sparse {
                format!("sparse({enc})")
            } else {
                enc
            });
        }
        Override {
            name: Some(self.layer.clone()),
            kind: None,
            settings,
            may_match_nothing: false,
        }
    }
}

/// `recipe` with every setting as a per-layer override.
fn with_settings(recipe: &Recipe, settings: &[Setting]) -> Recipe {
    let mut recipe = recipe.clone();
    recipe.overrides.extend(settings.iter().map(Setting::apply));
    recipe
}

/// What [`calibrate`] gives: the options (the recipe with one override per calibrated layer, the record
/// set), the choices, and with `--calib-refine` what the descent did and the error it minimised.
pub type Calibrated = (
    ModelOptions,
    Vec<Choice>,
    Option<(refine::Descent, &'static str)>,
);

/// The calibrated options (the recipe with one override per calibrated layer, the record set) and the
/// choices. Refuses a recipe with nothing in fixed point, and data that do not fit the model.
pub fn calibrate(
    inputs: &[PathBuf],
    options: &ModelOptions,
    request: &Request,
    show: bool,
) -> Result<Calibrated> {
    let mut source = Source::open_with(
        inputs,
        options.allow_nonfinite,
        options.recipe.folds_batch_norm(),
    )?;
    if request.refine {
        source = source.memoize_encodings(); // hundreds of builds, each changing one layer at most
    }
    let has_weight = |li: usize| source.layer_weights(li).next().is_some();
    let (layers, _) = options.recipe.resolve(source.layers(), &has_weight)?;
    let fixed = |e: Option<Encoding>| match e {
        Some(Encoding::Fixed { width, .. }) => Some(width),
        _ => None,
    };
    let todo: Vec<(usize, &LayerRecipe)> = layers
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            fixed(l.activations).is_some() || fixed(l.weights.map(|w| w.encoding)).is_some()
        })
        .collect();
    if todo.is_empty() {
        bail!("--calibrate picks fixed-point fraction widths, and no layer is in fixed point: give --activations fixed:W.F (and/or --weights fixed:W.F), or a recipe that uses it");
    }

    // Activation ranges from the FP32 model on the data.
    let mut sampled: BTreeMap<String, Sampled> = BTreeMap::new();
    let needs_data = request.refine || todo.iter().any(|(_, l)| fixed(l.activations).is_some());
    let mut data_record = Value::Null;
    // --calib-channels: each layer's input width (for per-channel maxima) and the scales chosen.
    let widths: BTreeMap<String, usize> = if request.channels {
        (0..layers.len())
            .filter_map(|li| Some((layers[li].name.clone(), source.weight_matrix(li)?.2)))
            .collect()
    } else {
        BTreeMap::new()
    };
    let mut channel_scales: BTreeMap<String, LayerScales> = BTreeMap::new();
    // With --calib-refine: the data, how to run it, and the FP32 outputs on it.
    let mut refine_on: Option<(Data, DataArgs, Vec<Vec<f32>>)> = None;
    if needs_data {
        if show {
            eprintln!("calibrating on {} ...", request.data.display());
        }
        let model = fp32_model(&source, options, BTreeMap::new())?;
        let mut data_args = DataArgs {
            data: Some(request.data.to_path_buf()),
            labels: None,
            synthetic: None,
            seed: 0,
            task: "auto".into(),
            limit: Some(request.samples),
            batch_size: 1,
            max_length: request.max_length,
            allow_nonfinite: false,
        };
        let data = load_data(&data_args, &model)
            .with_context(|| format!("reading the calibration data {}", request.data.display()))?;
        let (samples, examples) = sample_activations(&model, &data, request.max_length, &widths)?;
        sampled = samples;
        if request.channels {
            channel_scales = smoothing_scales(&source, &layers, &sampled);
            if !channel_scales.is_empty() {
                // The smoothed layers' ranges are those of their scaled inputs: measured again, on the FP32
                // model with the input scales (the same function, other intermediate values).
                let smoothed = fp32_model(&source, options, channel_scales.clone())?;
                sampled = sample_activations(&smoothed, &data, request.max_length, &widths)?.0;
            }
        }
        let bytes = std::fs::read(request.data)
            .with_context(|| format!("reading {}", request.data.display()))?;
        data_record = json!({
            "data": request.data.display().to_string(),
            "sha256": mxrt_converter::sha256_hex(&bytes),
            "examples": examples,
        });
        if request.refine {
            // Batches for speed: fixed-point quantization is per element, so no padding row moves a result.
            data_args.batch_size = 16;
            let session = crate::task::cpu_session(model, &data_args)?;
            let refs = crate::task::outputs(&session, &data, &data_args, &mut || {})?;
            refine_on = Some((data, data_args, refs));
        }
    }

    let mut settings = Vec::new();
    for (li, l) in todo {
        let mut setting = Setting {
            layer: l.name.clone(),
            activations: None,
            weights: None,
        };
        // A layer the graph never runs (a checkpoint's pooler under a sentence-embedding head) keeps the
        // recipe's setting: there is nothing to calibrate it on, and nothing it would change.
        if let (Some(width), Some(s)) = (fixed(l.activations), sampled.get_mut(&l.name)) {
            let f = choose(s, width, request.method, l.rounding);
            setting.activations = Some((width, f, s.max_abs));
        }
        if let Some(spec) = l.weights.filter(|w| fixed(Some(w.encoding)).is_some()) {
            let width = fixed(Some(spec.encoding)).unwrap_or(8);
            let f = match source.weight_matrix(li) {
                // --calib-channels: a linear layer's rows each at their own width (of the smoothed matrix).
                Some((w, _, cols)) if request.channels && l.activations.is_some() => {
                    let scales = channel_scales.entry(l.name.clone()).or_default();
                    let stored = scales.stored_weight(w, cols);
                    let (frac, rows) = channels::row_fractions(&stored, cols, width, l.rounding);
                    scales.output = rows;
                    frac
                }
                _ => {
                    let tensors: Vec<&[f32]> = source.layer_weights(li).collect();
                    best_fixed_frac(&tensors, width, l.rounding).0
                }
            };
            setting.weights = Some((width, f, spec.sparse_requested));
        }
        settings.push(setting);
    }
    channel_scales.retain(|_, s| s.input.is_some() || s.output.is_some());
    let options = &ModelOptions {
        channel_scales,
        ..options.clone()
    };
    let refined = match refine_on {
        Some((data, data_args, refs)) => Some((
            refine_settings(
                &source,
                options,
                &mut settings,
                (&data, &data_args, &refs),
                show,
            )?,
            error_kind(&data),
        )),
        None => None,
    };
    let choices: Vec<Choice> = settings.iter().map(Setting::choice).collect();
    let recipe = with_settings(&options.recipe, &settings);
    let per_layer: serde_json::Map<String, Value> = choices
        .iter()
        .map(|c| {
            (
                c.layer.clone(),
                json!({
                    "activations": c.activations.as_ref().map(|a| &a.0),
                    "max_abs_activation": c.activations.as_ref().map(|a| a.1),
                    "weights": c.weights,
                }),
            )
        })
        .collect();
    let mut record = json!({
        "method": request.method.to_string(),
        "weights_method": "rmse",
        "layers": per_layer,
    });
    if request.channels {
        record["channels"] = channels_record(&options.channel_scales);
    }
    if let (Some(r), Value::Object(d)) = (record.as_object_mut(), data_record) {
        r.extend(d);
    }
    if let (Some(r), Some((d, kind))) = (record.as_object_mut(), &refined) {
        r.insert(
            "refined".into(),
            json!({
                "error": kind.describe(),
                "error_before": d.before,
                "error_after": d.after,
                "tries": d.tries,
                "steps_kept": d.kept,
                "sweeps": d.sweeps,
            }),
        );
    }
    Ok((
        ModelOptions {
            recipe,
            calibration: Some(record),
            ..options.clone()
        },
        choices,
        refined.map(|(d, kind)| (d, kind.describe())),
    ))
}

/// The FP32 model of `source` (with `channel_scales`), in memory, to measure activations on.
fn fp32_model(
    source: &Source,
    options: &ModelOptions,
    channel_scales: BTreeMap<String, LayerScales>,
) -> Result<Model> {
    let mut fp32 = Recipe::default();
    fp32.default.weights = Some("f32".into());
    let reference = source.build(
        Path::new("calibration-fp32.mxrt"),
        &ModelOptions {
            recipe: fp32,
            recipe_source: "mxrt convert --calibrate (FP32 reference)".into(),
            embed_tokenizer: true,
            no_sparse: true,
            calibration: None,
            channel_scales,
            ..options.clone()
        },
        &mut |_, _, _| {},
    )?;
    Ok(Model::from_bytes(
        "the FP32 calibration model",
        reference.bytes,
        ReadOptions {
            verify_checksums: false,
        },
    )?)
}

/// `--calib-channels`' input scales (`1 / s`, [`channels::smoothing`]) of every LayerNorm-fed group whose
/// layers all quantize their input to fixed point, from the channel maxima `sampled` holds.
fn smoothing_scales(
    source: &Source,
    layers: &[LayerRecipe],
    sampled: &BTreeMap<String, Sampled>,
) -> BTreeMap<String, LayerScales> {
    let mut out = BTreeMap::new();
    for group in channels::layernorm_fed_groups(source.hyperparameters()) {
        let members: Option<Vec<usize>> = group
            .iter()
            .map(|name| {
                layers.iter().position(|l| {
                    &l.name == name && matches!(l.activations, Some(Encoding::Fixed { .. }))
                })
            })
            .collect();
        let Some(members) = members else {
            continue;
        };
        let Some(x_max) = sampled.get(&group[0]).map(|s| &s.channel_max) else {
            continue;
        };
        let matrices: Option<Vec<(&[f32], usize)>> = members
            .iter()
            .map(|&li| source.weight_matrix(li).map(|(w, _, cols)| (w, cols)))
            .collect();
        let Some(matrices) = matrices.filter(|m| m.iter().all(|(_, c)| *c == x_max.len())) else {
            continue;
        };
        let input: Vec<f32> = channels::smoothing(x_max, &matrices)
            .iter()
            .map(|s| 1.0 / s)
            .collect();
        if input.iter().all(|&s| s == 1.0) {
            continue;
        }
        for name in group {
            out.insert(
                name,
                LayerScales {
                    input: Some(input.clone()),
                    output: None,
                },
            );
        }
    }
    out
}

/// The calibration record's `channels`: what `--calib-channels` did, per layer.
fn channels_record(scales: &BTreeMap<String, LayerScales>) -> Value {
    let log2_range = |v: &Option<Vec<f32>>| {
        v.as_ref().map(|s| {
            let logs = s.iter().map(|x| x.log2());
            let (lo, hi) = logs.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), x| {
                (lo.min(x), hi.max(x))
            });
            json!([lo, hi])
        })
    };
    let layers: serde_json::Map<String, Value> = scales
        .iter()
        .map(|(name, s)| {
            (
                name.clone(),
                json!({
                    "input_scale_log2_range": log2_range(&s.input),
                    "output_scale_log2_range": log2_range(&s.output),
                }),
            )
        })
        .collect();
    json!({
        "smoothing_alpha": channels::ALPHA,
        "smoothed": scales.values().filter(|s| s.input.is_some()).count(),
        "per_row_weights": scales.values().filter(|s| s.output.is_some()).count(),
        "layers": layers,
    })
}

/// What `--calib-refine` minimises.
#[derive(Clone, Copy, PartialEq, Debug)]
enum ErrorKind {
    /// Classifiers: the mean KL divergence of the model's class probabilities from FP32's (what decides
    /// their answers; a squared error of logits weighs the confident examples most and moved SST-2 the
    /// wrong way).
    Kl,
    /// Embeddings and scores: [`refine::output_error`].
    Relative,
}

fn error_kind(data: &Data) -> ErrorKind {
    match data {
        Data::Sst2 { .. } | Data::Pairs { .. } | Data::Features { .. } => ErrorKind::Kl,
        Data::Sentences { .. } | Data::Stsb { .. } | Data::PairScores { .. } => ErrorKind::Relative,
    }
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ErrorKind::Kl => "mean KL(FP32 || model) of the class probabilities over the examples",
            ErrorKind::Relative => {
                "mean over the examples of |y - y_fp32|^2 / |y_fp32|^2 (model outputs)"
            }
        }
    }
}

/// `--calib-refine`: coordinate descent over every layer's `F` (activations first, then weights), each try
/// a model built in memory and run on the data against the FP32 outputs.
fn refine_settings(
    source: &Source,
    options: &ModelOptions,
    settings: &mut [Setting],
    (data, data_args, refs): (&Data, &DataArgs, &[Vec<f32>]),
    show: bool,
) -> Result<refine::Descent> {
    // The values descended over: (setting index, is it the weights), in that order.
    let mut slots = Vec::new();
    for weights in [false, true] {
        for (i, s) in settings.iter().enumerate() {
            let present = if weights {
                s.weights.is_some()
            } else {
                s.activations.is_some()
            };
            if present {
                slots.push((i, weights));
            }
        }
    }
    let frac_of = |s: &Setting, weights: bool| {
        if weights {
            s.weights.map_or(0, |w| w.1)
        } else {
            s.activations.map_or(0, |a| a.1)
        }
    };
    let mut values: Vec<u8> = slots
        .iter()
        .map(|&(i, w)| frac_of(&settings[i], w))
        .collect();
    let bounds = vec![(0u8, 64u8); values.len()];
    let bar = if show {
        indicatif::ProgressBar::new((2 * values.len() * refine::SWEEPS) as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "refining fraction widths {bar:30} {pos}/{len} tries (at most) {msg} [{elapsed}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let set = |settings: &mut [Setting], values: &[u8]| {
        for (&(i, weights), &f) in slots.iter().zip(values) {
            if weights {
                if let Some(w) = settings[i].weights.as_mut() {
                    w.1 = f;
                }
            } else if let Some(a) = settings[i].activations.as_mut() {
                a.1 = f;
            }
        }
    };
    let descent = {
        let mut error = |values: &[u8]| -> Result<f64> {
            set(settings, values);
            let built = source.build(
                Path::new("refine.mxrt"),
                &ModelOptions {
                    recipe: with_settings(&options.recipe, settings),
                    recipe_source: "mxrt convert --calib-refine (trial)".into(),
                    embed_tokenizer: true,
                    calibration: None,
                    ..options.clone()
                },
                &mut |_, _, _| {},
            )?;
            let session = crate::task::cpu_session(
                Model::from_bytes(
                    "a --calib-refine trial",
                    built.bytes,
                    ReadOptions {
                        verify_checksums: false,
                    },
                )?,
                data_args,
            )?;
            let out = crate::task::outputs(&session, data, data_args, &mut || {})?;
            Ok(match error_kind(data) {
                ErrorKind::Kl => {
                    let kl = crate::task::compare(session.model(), data, &out, refs)["kl"]
                        .as_f64()
                        .unwrap_or(f64::INFINITY);
                    if kl.is_nan() {
                        f64::INFINITY
                    } else {
                        kl
                    }
                }
                ErrorKind::Relative => refine::output_error(&out, refs),
            })
        };
        refine::descend(
            &mut values,
            &bounds,
            refine::SWEEPS,
            &mut error,
            &mut |done, now| {
                bar.set_position(done as u64);
                bar.set_message(format!("output error {now:.4}"));
            },
        )?
    };
    bar.finish_and_clear();
    set(settings, &values);
    Ok(descent)
}

/// Every linear layer's input values over `data` (run through the FP32 `model` one example at a time), by
/// layer name, and the number of examples; per-channel maxima for the layers `widths` gives a width.
pub(crate) fn sample_activations(
    model: &Model,
    data: &Data,
    max_length: Option<usize>,
    widths: &BTreeMap<String, usize>,
) -> Result<(BTreeMap<String, Sampled>, usize)> {
    let mut sampled: BTreeMap<String, Sampled> = BTreeMap::new();
    let mut seed = 0u64;
    let mut record = |names: &[&str], x: &[f32]| {
        for n in names {
            sampled
                .entry(n.to_string())
                .or_insert_with(|| {
                    seed += 1;
                    Sampled::new(seed, widths.get(*n).copied().unwrap_or(0))
                })
                .add(x);
        }
    };
    let examples = observe(model, data, max_length, &mut record)?;
    Ok((sampled, examples))
}

/// Runs every example through the FP32 model one at a time, showing `record` each linear layer's input;
/// the number of examples.
fn observe(
    model: &Model,
    data: &Data,
    max_length: Option<usize>,
    record: &mut dyn FnMut(&[&str], &[f32]),
) -> Result<usize> {
    let text = |inputs: Vec<(&str, Option<&str>)>, record: &mut dyn FnMut(&[&str], &[f32])| {
        let encoder = TextEncoder::from_model(model, max_length)?;
        for input in &inputs {
            let batch = encoder.batch_inputs(&[*input])?;
            model.observe_bert(&batch, record)?;
        }
        Ok::<usize, anyhow::Error>(inputs.len())
    };
    match data {
        Data::Sentences { texts } | Data::Sst2 { texts, .. } | Data::Stsb { texts, .. } => {
            text(texts.iter().map(|t| (t.as_str(), None)).collect(), record)
        }
        Data::Pairs { pairs, .. } | Data::PairScores { pairs, .. } => text(
            pairs
                .iter()
                .map(|(a, b)| (a.as_str(), Some(b.as_str())))
                .collect(),
            record,
        ),
        Data::Features { x, rows, .. } => {
            model.observe_mlp(x, *rows, record)?;
            Ok(*rows)
        }
    }
}
