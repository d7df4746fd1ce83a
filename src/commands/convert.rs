//! `mxrt convert`: a checkpoint directory (model-aware, with a recipe) or bare safetensors files (tensors only)
//! to one .mxrt file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use mxrt_converter::checkpoint::is_model_input;
use mxrt_converter::model_convert::{self, ModelOptions, ModelReport, Shortcuts};
use mxrt_converter::raw::{self, Options};
use mxrt_format::{write_atomically, EncodingSpec, PlaneAlign, Rounding};

use crate::calibrate;
use crate::fmt::outln;
use crate::fmt::{grouped, saving_percent, shape, Table};

#[derive(clap::Args)]
pub struct Args {
    /// A checkpoint directory (config.json + model.safetensors, pytorch_model.bin, or a sharded index of
    /// either), its files (e.g. config.json best.ckpt: a Lightning checkpoint's weights are its state_dict),
    /// or bare weight files (packed tensor by tensor, without a model description).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output .mxrt file (replaced atomically if it exists).
    #[arg(short, long)]
    output: PathBuf,
    /// Recipe file (TOML): per-layer weight and activation encodings, rounding, pruning. See recipes/.
    #[arg(long)]
    recipe: Option<PathBuf>,
    /// Weight encoding for every layer (overrides the recipe's default), e.g. mxint8, mxfp4, fixed:8.4, f16,
    /// sparse(mxint8). Default: mxint8.
    #[arg(long)]
    weights: Option<String>,
    /// Encoding of every linear layer's input activations (models only): f32, an MX type, or fixed:W.F.
    #[arg(long)]
    activations: Option<String>,
    /// Rounding for MX and fixed point: nearest (half away from zero, the default) or even (MASE's).
    #[arg(long)]
    rounding: Option<String>,
    /// Prune the linear layers' weights (models only): l1 (smallest magnitude) or random.
    #[arg(long, requires = "sparsity")]
    prune: Option<String>,
    /// Fraction of weights to remove with --prune, in [0, 1): exactly round(s*n) per scope.
    #[arg(long, requires = "prune", allow_negative_numbers = true)]
    sparsity: Option<f64>,
    /// Pruning scope: local (each tensor) or global (one threshold across the pruned layers).
    #[arg(long, default_value = "local", requires = "prune")]
    scope: String,
    /// Seed for random pruning.
    #[arg(long, default_value_t = 0, requires = "prune")]
    seed: u64,
    /// Calibrate fixed-point fraction widths on this data (models only; the formats `eval --data` reads:
    /// SST-2 TSV, sentence pairs, STS-B, a .txt of sentences, a JSC CSV or .npy). The checkpoint runs in
    /// FP32 on the examples; each layer whose activations are fixed:W.F gets the F that suits the values its
    /// input took (see --calib-method), fixed-point weights the F that minimises their RMSE. The choices are
    /// printed and stored in the file's recipe with the data's SHA-256. Use data the model is not then
    /// evaluated on.
    #[arg(long, value_name = "DATA")]
    calibrate: Option<PathBuf>,
    /// Examples of the calibration data used (the first N).
    #[arg(long, default_value_t = 256, requires = "calibrate", value_name = "N")]
    calib_samples: usize,
    /// How a layer's F follows from its values: `percentile:P` (the largest F at which the P-th percentile
    /// of magnitudes fits; the rarer outliers clip), `mse` (least squared error over a uniform sample of
    /// the values) or `minmax` (nothing clips). The default, percentile:99.99, gave the calibration split
    /// the lowest KL divergence to FP32 (minilm-sst2, BENCHMARKS.md).
    #[arg(
        long,
        default_value = "percentile:99.99",
        requires = "calibrate",
        value_name = "METHOD"
    )]
    calib_method: String,
    /// Then refine the choices against the model's output: each layer's F (activations, then fixed-point
    /// weights) is tried one step lower and one higher, the model rebuilt in memory and run on the
    /// calibration examples, and a step kept when the outputs come closer to FP32's (classifiers: mean KL
    /// divergence of the class probabilities; embeddings: mean relative squared error). Up to 3 sweeps;
    /// each try is a build and a pass over the data (all-MiniLM-L6-v2 on 64 sentences: ~80 s in all).
    /// Recorded in the file with the error before and after.
    #[arg(long, requires = "calibrate")]
    calib_refine: bool,
    /// Also calibrate per channel (fixed point): each row of a fixed-point weight matrix gets its own
    /// fraction width, and inputs that come from a LayerNorm (query/key/value, feed-forward up) are divided
    /// per channel by powers of two that the weights take on (SmoothQuant, alpha 0.5), so a few outlier
    /// channels no longer set one grid for all. Exact in FP32; stored as channel scales (format 2.2, which
    /// older readers refuse by name). Costs an extra pass over the data; runs 1.0-1.3x MXINT8's time
    /// (BENCHMARKS.md, "Fixed point, calibrated").
    #[arg(long, requires = "calibrate")]
    calib_channels: bool,
    /// Write the fidelity report (per tensor: encoding, bytes, sparsity, RMSE, max error, SQNR) as JSON.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Do not embed the tokenizer (models only).
    #[arg(long)]
    no_tokenizer: bool,
    /// Tensors only: also encode 1-D tensors and tensors the encoding would not make smaller.
    #[arg(long)]
    all_tensors: bool,
    /// Never store a tensor sparse.
    #[arg(long)]
    no_sparse: bool,
    /// Alignment of the tensor data planes in the file: `auto` (256 bytes for real models, where it
    /// costs under 1 % and lets GPU backends bind planes in place; down to 8 for tiny ones, which would
    /// otherwise be mostly padding) or a power of two from 8 to 65536.
    #[arg(long, default_value = "auto", value_name = "auto|BYTES")]
    plane_align: String,
    /// Keep NaN and infinite values instead of refusing the checkpoint.
    #[arg(long)]
    allow_nonfinite: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// No progress bar and no table.
    #[arg(short, long)]
    quiet: bool,
}

fn progress_bar(hidden: bool) -> ProgressBar {
    let bar = if hidden {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} tensors  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

pub fn run(a: Args) -> Result<ExitCode> {
    let inputs: Vec<&std::path::Path> = a.inputs.iter().map(|p| p.as_path()).collect();
    let outputs: Vec<&std::path::Path> = std::iter::once(a.output.as_path())
        .chain(a.report.as_deref())
        .collect();
    crate::outputs::check_outputs(&outputs, &inputs)?;
    let bar = progress_bar(a.quiet || a.json);
    let mut progress = |done: usize, total: usize, name: &str| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(name.to_string());
    };
    if is_model_input(&a.inputs) {
        let mut options = model_options(&a)?;
        if let Some(data) = &a.calibrate {
            let request = calibrate::Request {
                data,
                samples: a.calib_samples,
                method: a
                    .calib_method
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--calib-method {e}"))?,
                max_length: None,
                refine: a.calib_refine,
                channels: a.calib_channels,
            };
            if a.calib_samples == 0 {
                bail!("--calib-samples must be at least 1");
            }
            let (calibrated, choices, refined) =
                calibrate::calibrate(&a.inputs, &options, &request, !(a.quiet || a.json))?;
            options = calibrated;
            if !(a.quiet || a.json) {
                print_calibration(&choices, &request, refined.as_ref())?;
                if let Some(c) = options.calibration.as_ref().and_then(|c| c.get("channels")) {
                    outln!(
                        "per channel: {} layers' inputs smoothed (alpha {}), {} weight matrices with a fraction \
                         width per row (stored as channel scales)\n",
                        c["smoothed"],
                        c["smoothing_alpha"],
                        c["per_row_weights"]
                    )?;
                }
            }
        }
        let report = model_convert::convert_model(
            &a.inputs,
            &a.output,
            &options,
            &mut progress,
            &mxrt_runtime::check_image,
        );
        bar.finish_and_clear();
        let report = report?;
        if let Some(path) = &a.report {
            let json = serde_json::to_vec_pretty(&report)?;
            write_atomically(path, |w| w.write_all(&json))?;
        }
        if a.json {
            outln!("{}", serde_json::to_string_pretty(&report)?)?;
        } else if !a.quiet {
            print_model_report(&report)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    for (given, flag) in [
        (a.recipe.is_some(), "--recipe"),
        (a.activations.is_some(), "--activations"),
        (a.prune.is_some(), "--prune"),
        (a.report.is_some(), "--report"),
        (a.no_tokenizer, "--no-tokenizer"),
        (a.calibrate.is_some(), "--calibrate"),
    ] {
        if given {
            bail!("{flag} needs a model: pass the checkpoint directory (with config.json), not bare safetensors files");
        }
    }
    let options = Options {
        weights: a
            .weights
            .as_deref()
            .unwrap_or("mxint8")
            .parse::<EncodingSpec>()?,
        rounding: a
            .rounding
            .as_deref()
            .unwrap_or("nearest")
            .parse::<Rounding>()?,
        all_tensors: a.all_tensors,
        no_sparse: a.no_sparse,
        allow_nonfinite: a.allow_nonfinite,
        plane_align: PlaneAlign::parse(&a.plane_align)?,
    };
    let report = raw::convert(&a.inputs, &a.output, &options, &mut progress);
    bar.finish_and_clear();
    let report = report?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else if !a.quiet {
        print_raw_report(&report)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The recipe file (if any) with the command-line shortcuts applied to its default.
fn model_options(a: &Args) -> Result<ModelOptions> {
    if a.all_tensors {
        bail!("--all-tensors is for bare safetensors files; for a model, the recipe says what is encoded");
    }
    let shortcuts = Shortcuts {
        weights: a.weights.clone(),
        activations: a.activations.clone(),
        rounding: a.rounding.clone(),
        prune: match (&a.prune, a.sparsity) {
            (Some(method), Some(sparsity)) => {
                Some((method.clone(), sparsity, a.scope.clone(), a.seed))
            }
            _ => None,
        },
    };
    Ok(ModelOptions {
        embed_tokenizer: !a.no_tokenizer,
        allow_nonfinite: a.allow_nonfinite,
        no_sparse: a.no_sparse,
        plane_align: PlaneAlign::parse(&a.plane_align)?,
        ..ModelOptions::from_recipe(a.recipe.as_deref(), &shortcuts)?
    })
}

/// The calibrated fraction widths, one row per layer.
fn print_calibration(
    choices: &[calibrate::Choice],
    r: &calibrate::Request,
    refined: Option<&(calibrate::refine::Descent, &'static str)>,
) -> std::io::Result<()> {
    let mut t = Table::new(&["layer", "activations", "max |x| seen", "weights"], &[2]);
    for c in choices {
        t.row(vec![
            c.layer.clone(),
            c.activations.as_ref().map_or("-".into(), |a| a.0.clone()),
            c.activations
                .as_ref()
                .map_or("-".into(), |a| format!("{:.3}", a.1)),
            c.weights.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    outln!(
        "calibrated on {} (first {} examples, method {}):",
        r.data.display(),
        r.samples,
        r.method
    )?;
    outln!("{}", t.render())?;
    if let Some((d, error)) = refined {
        outln!(
            "refined on the same examples: output error against FP32 {:.5} -> {:.5} ({error}; {} steps \
             kept in {} tries, {} sweeps)",
            d.before,
            d.after,
            d.kept,
            d.tries,
            d.sweeps
        )?;
    }
    outln!()
}

fn sqnr(v: Option<f64>) -> String {
    v.map_or("exact".into(), |s| format!("{s:.1}"))
}

fn print_model_report(r: &ModelReport) -> std::io::Result<()> {
    let mut t = Table::new(
        &[
            "tensor",
            "shape",
            "encoding",
            "bytes",
            "bits/w",
            "sparsity",
            "RMSE",
            "max |err|",
            "SQNR dB",
        ],
        &[3, 4, 5, 6, 7, 8],
    );
    for x in &r.tensors {
        let enc = if x.sparse {
            format!("sparse({})", x.encoding)
        } else {
            x.encoding.clone()
        };
        let enc = if x.pruned {
            format!("{enc} pruned")
        } else {
            enc
        };
        t.row(vec![
            x.name.clone(),
            shape(&x.shape),
            enc,
            grouped(x.bytes),
            format!("{:.2}", x.bits_per_weight),
            format!("{:.1} %", 100.0 * x.sparsity),
            format!("{:.2e}", x.fidelity.rmse),
            format!("{:.2e}", x.fidelity.max_abs_error),
            sqnr(x.fidelity.sqnr_db),
        ]);
    }
    crate::fmt::emit(&t.render())?;
    let tt = &r.totals;
    outln!(
        "\n{} model: {} tensor bytes vs {} bytes in FP32 (saving {:.1} %); file {} bytes vs {} bytes of safetensors",
        r.architecture,
        grouped(tt.tensor_bytes),
        grouped(tt.fp32_bytes),
        tt.saving_percent,
        grouped(tt.file_bytes),
        grouped(tt.source_bytes)
    )?;
    if let Some((name, db)) = &tt.worst_sqnr {
        outln!("worst SQNR: {db:.1} dB ({name})")?;
    }
    for n in &r.notes {
        outln!("note: {n}")?;
    }
    for w in &r.warnings {
        outln!("warning: {w}")?;
    }
    outln!("wrote {} in {:.2} s", r.output.display(), r.seconds)
}

fn print_raw_report(r: &raw::Report) -> std::io::Result<()> {
    let mut t = Table::new(
        &["tensor", "shape", "source", "encoding", "bytes", "note"],
        &[4],
    );
    for o in &r.tensors {
        let enc = if o.sparse {
            format!("sparse({})", o.encoding)
        } else {
            o.encoding.clone()
        };
        t.row(vec![
            o.name.clone(),
            shape(&o.shape),
            o.source_dtype.clone(),
            enc,
            grouped(o.bytes),
            o.kept_because.clone().unwrap_or_default(),
        ]);
    }
    crate::fmt::emit(&t.render())?;
    outln!(
        "wrote {}: {} bytes from {} bytes of input ({:.1} % smaller)",
        r.output.display(),
        grouped(r.output_bytes),
        grouped(r.source_bytes),
        saving_percent(r.output_bytes, r.source_bytes)
    )
}
