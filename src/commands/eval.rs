//! `mxrt eval`: a model and its FP32 reference on the same data: task metric for both, agreement, logit
//! differences, KL divergence, and memory (stored bytes vs FP32, measured peak RSS split file/anonymous).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use mxrt_converter::model_convert::{convert_model, ModelOptions};
use mxrt_converter::recipe::Recipe;
use mxrt_format::{Encoding, ReadOptions};
use mxrt_runtime::Model;
use serde_json::{json, Value};

use crate::fmt::{grouped, outln};
use crate::memory::Peak;
use crate::task::{load_data, outputs, DataArgs};

#[derive(clap::Args)]
pub struct Args {
    /// The .mxrt model to evaluate.
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// FP32 reference: the original checkpoint directory or an FP32 .mxrt. Not needed when the model itself
    /// is all-FP32 (weights and activations).
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Evaluate against a reference that was not converted from the model's own checkpoint (by default
    /// refused: the weights' SHA-256 recorded in each file must match).
    #[arg(long)]
    force: bool,
    /// The backend of the evaluated model (the FP32 reference always runs on the CPU).
    #[command(flatten)]
    backend: crate::commands::run::BackendArgs,
    /// Only the memory report (no data needed): bytes per encoding against FP32, the ideal saving of each
    /// encoding beside this file's measured saving, and the tensors that explain the difference.
    #[arg(long)]
    memory_only: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Internal: run this (FP32) model on the data, write its outputs to this file and its peak RSS to
    /// stdout, nothing else. `eval` runs its reference this way, in a child process, so that each peak RSS
    /// is measured alone.
    #[arg(long, hide = true)]
    reference_run: Option<PathBuf>,
}

/// True when every numeric tensor is f32 and no layer quantizes its input: the file is its own reference.
fn is_fp32(model: &Model) -> bool {
    let tensors_f32 = model
        .tensors()
        .values()
        .all(|t| matches!(t.encoding, Encoding::F32 | Encoding::Raw(_)));
    let acts_f32 = model
        .description()
        .recipe_layers
        .iter()
        .all(|l| l.activations.as_deref().is_none_or(|a| a == "f32"));
    tensors_f32 && acts_f32
}

/// The FP32 reference model, converting a checkpoint directory into `tmp` when given one.
fn reference_model(
    model_path: &Path,
    model: &Model,
    reference: Option<&Path>,
    tmp: &Path,
    force: bool,
) -> Result<Option<(Model, PathBuf)>> {
    let Some(r) = reference else {
        if is_fp32(model) {
            return Ok(None); // the model is its own reference
        }
        bail!("{} is quantized: pass --reference (the original checkpoint directory or an FP32 .mxrt)", model_path.display());
    };
    let path = if r.is_dir() {
        let out = tmp.join("reference-fp32.mxrt");
        let mut recipe = Recipe::default();
        recipe.default.weights = Some("f32".into());
        let options = ModelOptions {
            recipe,
            recipe_source: "mxrt eval reference".into(),
            embed_tokenizer: true,
            allow_nonfinite: false,
            no_sparse: true,
            plane_align: mxrt_format::PlaneAlign::Auto,
            calibration: None,
            channel_scales: Default::default(),
        };
        convert_model(
            &[r.to_path_buf()],
            &out,
            &options,
            &mut |_, _, _| {},
            &mxrt_runtime::check_image,
        )
        .with_context(|| format!("converting the reference {}", r.display()))?;
        out
    } else {
        r.to_path_buf()
    };
    let m = Model::open(&path, ReadOptions::default())?;
    check_same_model(model_path, model, r, &m, force)?;
    if !is_fp32(&m) {
        bail!("the reference {} is not an FP32 model", path.display());
    }
    Ok(Some((m, path)))
}

/// The reference's outputs and peak RSS, from a child `mxrt eval --reference-run` on the same data: its
/// memory is its own, neither the evaluated model's nor this process's (which a second model in the same
/// process would have only added to).
fn reference_in_child(
    reference: &Path,
    data: &DataArgs,
    tmp: &Path,
) -> Result<(Vec<Vec<f32>>, Peak)> {
    let out = tmp.join("reference-outputs.bin");
    let exe =
        std::env::current_exe().context("finding this mxrt executable to run the reference")?;
    let child = std::process::Command::new(&exe)
        .arg("eval")
        .arg(reference)
        .args(data.to_args())
        .arg("--reference-run")
        .arg(&out)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("starting {} for the reference", exe.display()))?;
    if !child.status.success() {
        bail!(
            "the FP32 reference {} failed in its process ({})",
            reference.display(),
            child.status
        );
    }
    let peak: Value =
        serde_json::from_slice(&child.stdout).context("reading the reference process's report")?;
    let field = |k: &str| peak[k].as_u64().unwrap_or(0);
    let peak = Peak {
        hwm: field("peak_rss_bytes"),
        file: field("peak_rss_file_bytes"),
        anon: field("peak_rss_anon_bytes"),
    };
    let bytes = std::fs::read(&out).with_context(|| format!("reading {}", out.display()))?;
    Ok((
        crate::rows_file::decode_rows(&bytes).context("the reference process's outputs")?,
        peak,
    ))
}

/// The weight files (`*.safetensors`) a model was converted from, by name, with their SHA-256
/// (`provenance.sources` in the metadata); empty when the file does not record them.
fn weight_sources(model: &Model) -> BTreeMap<String, String> {
    model
        .metadata()
        .get("provenance")
        .and_then(|p| p.get("sources"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let name = s.get("path")?.as_str()?;
            let sha = s.get("sha256")?.as_str()?;
            name.ends_with(".safetensors")
                .then(|| (name.to_string(), sha.to_string()))
        })
        .collect()
}

/// Refuses a reference that is not the evaluated model's own FP32 original: another architecture, other
/// hyper-parameters, or (where both files record it) other source weights. `force` accepts a different
/// checkpoint of the same architecture and shape on purpose.
fn check_same_model(
    model_path: &Path,
    model: &Model,
    reference_path: &Path,
    reference: &Model,
    force: bool,
) -> Result<()> {
    let (m, r) = (model.description(), reference.description());
    let (ma, ra) = (
        m.hyperparameters.architecture(),
        r.hyperparameters.architecture(),
    );
    if ma != ra {
        bail!(
            "the reference {} is a {ra} model, but {} is a {ma} model: give the checkpoint {} was converted from",
            reference_path.display(),
            model_path.display(),
            model_path.display()
        );
    }
    if m.hyperparameters != r.hyperparameters {
        let (mv, rv) = (m.hyperparameters.to_value(), r.hyperparameters.to_value());
        let differs: Vec<String> = mv
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| rv.get(k.as_str()) != Some(v))
            .map(|(k, v)| format!("{k} {v} vs {}", rv.get(k.as_str()).unwrap_or(&Value::Null)))
            .collect();
        bail!(
            "the reference {} has other hyper-parameters than {} ({}): it is a different model",
            reference_path.display(),
            model_path.display(),
            differs.join(", ")
        );
    }
    let (ms, rs) = (weight_sources(model), weight_sources(reference));
    if !force && !ms.is_empty() && !rs.is_empty() && ms != rs {
        let show = |s: &BTreeMap<String, String>| {
            s.iter()
                .map(|(n, h)| format!("{n} {}", &h[..h.len().min(12)]))
                .collect::<Vec<_>>()
                .join(", ")
        };
        bail!(
            "the reference {} was converted from other weights than {} (SHA-256 {} vs {}): pass the model's own \
             checkpoint, or --force to compare against this one anyway",
            reference_path.display(),
            model_path.display(),
            show(&rs),
            show(&ms)
        );
    }
    Ok(())
}

/// Stored bytes per encoding, and FP32 bytes, of the numeric tensors.
fn memory_table(model: &Model) -> (BTreeMap<String, u64>, u64, u64) {
    let mut per = BTreeMap::new();
    let (mut stored, mut fp32) = (0u64, 0u64);
    for t in model.tensors().values() {
        if matches!(t.encoding, Encoding::Raw(_)) {
            continue;
        }
        let enc = if t.sparse {
            format!("sparse({})", t.encoding)
        } else {
            t.encoding.to_string()
        };
        *per.entry(enc).or_insert(0) += t.stored_bytes();
        stored += t.stored_bytes();
        // Channel scales cost bytes here but have no FP32 counterpart.
        if !model.is_channel_scale(&t.name) {
            fp32 += t.terms.numel * 4;
        }
    }
    (per, stored, fp32)
}

pub fn run(a: Args) -> Result<ExitCode> {
    let tmp = tempfile::tempdir()?;
    let session = a
        .backend
        .session(&a.model, a.data.batch_size, a.data.max_length)?;
    let model = session.model();
    if a.memory_only {
        let mut r = crate::memory_report::report(model);
        r["model"] = json!(a.model.display().to_string());
        if a.json {
            outln!("{}", serde_json::to_string_pretty(&r)?)?;
        } else {
            outln!("{}", a.model.display())?;
            crate::memory_report::print(&r)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let data = load_data(&a.data, model)?;
    // The model runs first, so the peak RSS measured is the model's own; the reference runs in a child.
    let mut peak = Peak::default();
    peak.sample();
    let out = outputs(&session, &data, &a.data, &mut || peak.sample())?;
    if let Some(path) = &a.reference_run {
        std::fs::write(path, crate::rows_file::encode_rows(&out))
            .with_context(|| format!("writing {}", path.display()))?;
        outln!(
            "{}",
            json!({"peak_rss_bytes": peak.hwm, "peak_rss_file_bytes": peak.file, "peak_rss_anon_bytes": peak.anon})
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let reference = reference_model(&a.model, model, a.reference.as_deref(), tmp.path(), a.force)?;
    let (refs, reference_peak) = match reference {
        Some((r, path)) => {
            drop(r); // opened to check it is this model's reference; it runs in its own process
            reference_in_child(&path, &a.data, tmp.path())?
        }
        None => (out.clone(), peak),
    };
    let mut result = crate::task::compare(model, &data, &out, &refs);
    result["model"] = json!(a.model.display().to_string());
    let (per_encoding, weight_bytes, fp32) = memory_table(model);
    result["memory"] = json!({
        "file_bytes": model.file_len(), "weight_bytes": weight_bytes, "weight_bytes_per_encoding": per_encoding,
        "fp32_weight_bytes": fp32, "saving_percent": 100.0 * (1.0 - weight_bytes as f64 / fp32.max(1) as f64),
        "peak_rss_bytes": (peak.hwm > 0).then_some(peak.hwm), "peak_rss_file_bytes": (peak.hwm > 0).then_some(peak.file),
        "peak_rss_anon_bytes": (peak.hwm > 0).then_some(peak.anon),
        "reference_peak_rss_bytes": (reference_peak.hwm > 0).then_some(reference_peak.hwm),
        "reference_peak_rss_file_bytes": (reference_peak.hwm > 0).then_some(reference_peak.file),
        "reference_peak_rss_anon_bytes": (reference_peak.hwm > 0).then_some(reference_peak.anon),
    });
    result["reference"] = json!(a
        .reference
        .as_ref()
        .map_or(SELF_REFERENCE.to_string(), |r| r.display().to_string()));
    result["isa"] = json!(model.isa());
    result["backend"] = json!(model.backend_description());
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&result)?)?;
    } else {
        print_text(&result)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(r: &Value) -> std::io::Result<()> {
    let pct = |v: &Value| v.as_f64().map(|x| format!("{:.2} %", 100.0 * x));
    let num = |v: &Value| v.as_f64().map(|x| format!("{x:.4}"));
    outln!(
        "{} ({} examples, task {}, reference: {}, backend {})",
        r["model"].as_str().unwrap_or(""),
        r["examples"],
        r["task"].as_str().unwrap_or(""),
        r["reference"].as_str().unwrap_or(""),
        r["backend"].as_str().unwrap_or("")
    )?;
    if let Some(n) = r["note"].as_str() {
        outln!("note: {n}")?;
    }
    // Only the metrics that apply to this task.
    let lines: [(&str, Option<String>, Option<String>); 8] = [
        (
            "accuracy",
            pct(&r["accuracy"]),
            pct(&r["reference_accuracy"]),
        ),
        ("F1", pct(&r["f1"]), pct(&r["reference_f1"])),
        (
            "spearman",
            num(&r["spearman"]),
            num(&r["reference_spearman"]),
        ),
        ("pearson", num(&r["pearson"]), num(&r["reference_pearson"])),
        ("agreement with FP32 (top-1)", pct(&r["agreement"]), None),
        (
            "mean / max |output difference|",
            num(&r["mean_abs_logit_diff"]),
            num(&r["max_abs_logit_diff"]),
        ),
        ("KL(FP32 || model)", num(&r["kl"]), None),
        (
            "embedding cosine to FP32: mean / min",
            num(&r["mean_embedding_cosine_to_reference"]),
            num(&r["min_embedding_cosine_to_reference"]),
        ),
    ];
    for (label, v, second) in lines {
        if let Some(v) = v {
            match (label, second) {
                ("accuracy" | "F1" | "spearman" | "pearson", Some(s)) => {
                    outln!("{label}: {v} (FP32 reference: {s})")?
                }
                (_, Some(s)) => outln!("{label}: {v} / {s}")?,
                (_, None) => outln!("{label}: {v}")?,
            }
        }
    }
    if let Some(v) = pct(&r["nearest_neighbour_agreement"]) {
        outln!("nearest-neighbour agreement with FP32: {v}")?;
    }
    let m = &r["memory"];
    let b = |k: &str| m[k].as_u64().map_or("-".into(), grouped);
    outln!(
        "memory: file {} bytes; weights {} bytes vs {} in FP32 (saving {:.1} %)",
        b("file_bytes"),
        b("weight_bytes"),
        b("fp32_weight_bytes"),
        m["saving_percent"].as_f64().unwrap_or(0.0)
    )?;
    if let Some(per) = m["weight_bytes_per_encoding"].as_object() {
        for (enc, bytes) in per {
            outln!("  {enc}: {} bytes", grouped(bytes.as_u64().unwrap_or(0)))?;
        }
    }
    outln!(
        "peak RSS {} bytes (file-backed {}, anonymous {})",
        b("peak_rss_bytes"),
        b("peak_rss_file_bytes"),
        b("peak_rss_anon_bytes"),
    )?;
    if r["reference"].as_str() != Some(SELF_REFERENCE) {
        outln!(
            "FP32 reference's peak RSS, measured in its own process: {} bytes (file-backed {}, anonymous {})",
            b("reference_peak_rss_bytes"),
            b("reference_peak_rss_file_bytes"),
            b("reference_peak_rss_anon_bytes")
        )?;
    }
    Ok(())
}

/// What `reference` says when the model (all FP32) is its own reference.
const SELF_REFERENCE: &str = "the model itself (FP32)";
