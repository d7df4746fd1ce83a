//! `mxrt eval`: a model and its FP32 reference on the same data: task metric for both, agreement, logit
//! differences, KL divergence, and memory (stored bytes vs FP32, measured peak RSS split file/anonymous).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use mxrt_converter::model_convert::{convert_model, ModelOptions};
use mxrt_converter::prune::SplitMix64;
use mxrt_converter::recipe::Recipe;
use mxrt_format::{Encoding, ReadOptions};
use mxrt_runtime::bert::Head;
use mxrt_runtime::{Graph, Model};
use serde_json::{json, Value};

use crate::fmt::{grouped, outln};
use crate::infer::{argmax, run_texts, softmax};
use crate::memory::Peak;
use crate::tokenize::TextEncoder;

#[derive(clap::Args)]
pub struct Args {
    /// The .mxrt model to evaluate.
    model: PathBuf,
    /// Data: SST-2 TSV (`sentence<TAB>label`), STS-B TSV (pairs with gold scores), a .txt file of sentences
    /// (encoders: cosine to FP32 and nearest-neighbour agreement), or for MLPs a CSV of
    /// 16 features + 5 one-hot label columns (the hls4ml jet data) or a .npy feature matrix (with --labels).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Labels for a .npy feature matrix: one-hot rows or class indices (.npy).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// MLPs without data: this many seeded N(0,1) feature rows (agreement with FP32 only, no accuracy).
    #[arg(long)]
    synthetic: Option<usize>,
    /// Seed for --synthetic.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// sst2, stsb, embed, jsc, or auto (from the model and the data).
    #[arg(long, default_value = "auto")]
    task: String,
    /// FP32 reference: the original checkpoint directory or an FP32 .mxrt. Not needed when the model itself
    /// is all-FP32 (weights and activations).
    #[arg(long)]
    reference: Option<PathBuf>,
    #[arg(long, default_value = "cpu")]
    backend: String,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Truncate texts to this many tokens (default: the model's max_seq_length, else 512).
    #[arg(long)]
    max_length: Option<usize>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// True when every numeric tensor is f32 and no layer quantizes its input: the file is its own reference.
fn is_fp32(model: &Model) -> bool {
    let tensors_f32 = model
        .tensors()
        .values()
        .all(|t| matches!(t.encoding, Encoding::F32 | Encoding::Raw(_)));
    let layers = model
        .metadata()
        .get("recipe")
        .and_then(|r| r.get("layers"))
        .and_then(Value::as_array);
    let acts_f32 = layers
        .into_iter()
        .flatten()
        .all(|l| l["activations"].is_null() || l["activations"] == "f32");
    tensors_f32 && acts_f32
}

/// The FP32 reference model, converting a checkpoint directory into `tmp` when given one.
fn reference_model(
    model_path: &Path,
    model: &Model,
    reference: Option<&Path>,
    tmp: &Path,
) -> Result<Option<Model>> {
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
        };
        convert_model(&[r.to_path_buf()], &out, &options, &mut |_, _, _| {})
            .with_context(|| format!("converting the reference {}", r.display()))?;
        out
    } else {
        r.to_path_buf()
    };
    let m = Model::open(&path, ReadOptions::default())?;
    if !is_fp32(&m) {
        bail!("the reference {} is not an FP32 model", path.display());
    }
    Ok(Some(m))
}

/// Spearman rank correlation (average ranks for ties).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    fn ranks(v: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            for &k in &idx[i..=j] {
                r[k] = (i + j) as f64 / 2.0 + 1.0;
            }
            i = j + 1;
        }
        r
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-30)
}

/// Classification outputs compared: (agreement, mean |diff|, max |diff|, mean KL(ref || model)).
fn compare_logits(
    model: &[Vec<f32>],
    reference: &[Vec<f32>],
    probabilities: bool,
) -> (f64, f64, f64, f64) {
    let n = model.len().max(1) as f64;
    let agree = model
        .iter()
        .zip(reference)
        .filter(|(a, b)| argmax(a) == argmax(b))
        .count() as f64
        / n;
    let diffs: Vec<f64> = model
        .iter()
        .zip(reference)
        .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| f64::from((x - y).abs())))
        .collect();
    let mean = diffs.iter().sum::<f64>() / diffs.len().max(1) as f64;
    let max = diffs.iter().copied().fold(0.0, f64::max);
    let kl = model
        .iter()
        .zip(reference)
        .map(|(a, b)| {
            let (p, q) = if probabilities {
                (b.clone(), a.clone())
            } else {
                (softmax(b), softmax(a))
            };
            p.iter()
                .zip(&q)
                .filter(|(pi, _)| **pi > 0.0)
                .map(|(pi, qi)| f64::from(*pi) * (f64::from(*pi) / f64::from(qi.max(1e-30))).ln())
                .sum::<f64>()
        })
        .sum::<f64>()
        / n;
    (agree, mean, max, kl)
}

fn accuracy(outputs: &[Vec<f32>], labels: &[usize]) -> f64 {
    outputs
        .iter()
        .zip(labels)
        .filter(|(o, &l)| argmax(o) == l)
        .count() as f64
        / labels.len().max(1) as f64
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
        fp32 += t.terms.numel * 4;
    }
    (per, stored, fp32)
}

/// What is evaluated, loaded before any model runs.
enum Data {
    /// Unlabelled sentences (a text file, one per line): fidelity of embeddings to FP32 only.
    Sentences {
        texts: Vec<String>,
    },
    Sst2 {
        texts: Vec<String>,
        labels: Vec<usize>,
    },
    Stsb {
        texts: Vec<String>,
        gold: Vec<f64>,
    },
    Features {
        x: Vec<f32>,
        rows: usize,
        labels: Option<Vec<usize>>,
        note: Option<String>,
    },
}

fn load_data(a: &Args, model: &Model) -> Result<Data> {
    match model.graph() {
        Graph::Bert(bert) => {
            let Some(data) = &a.data else {
                bail!("--data is required for text models (SST-2 or STS-B TSV)")
            };
            let plain_text = data.extension().is_some_and(|e| e == "txt");
            let task = match (a.task.as_str(), &bert.config.head) {
                ("auto", Head::Embedding { .. }) if plain_text => "embed",
                ("embed", Head::Embedding { .. }) => "embed",
                ("embed", _) => bail!("task embed needs a sentence-embedding model"),
                ("auto", Head::Classification { .. }) | ("sst2", _) => "sst2",
                ("auto", Head::Embedding { .. }) | ("stsb", _) => "stsb",
                (t, _) => bail!("task {t:?} does not fit a text model (sst2, stsb, embed)"),
            };
            if task == "embed" {
                let text = std::fs::read_to_string(data)
                    .with_context(|| format!("cannot read {}", data.display()))?;
                let texts: Vec<String> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect();
                if texts.len() < 2 {
                    bail!("{}: need at least two sentences", data.display());
                }
                Ok(Data::Sentences { texts })
            } else if task == "sst2" {
                let rows = crate::data::read_sst2(data)?;
                Ok(Data::Sst2 {
                    labels: rows.iter().map(|r| r.1).collect(),
                    texts: rows.into_iter().map(|r| r.0).collect(),
                })
            } else {
                if !matches!(bert.config.head, Head::Embedding { .. }) {
                    bail!("STS-B needs a sentence-embedding model");
                }
                let pairs = crate::data::read_stsb(data)?;
                Ok(Data::Stsb {
                    gold: pairs.iter().map(|p| p.2).collect(),
                    texts: pairs.into_iter().flat_map(|(x, y, _)| [x, y]).collect(),
                })
            }
        }
        Graph::Mlp(mlp) => {
            if !matches!(a.task.as_str(), "auto" | "jsc") {
                bail!("task {:?} does not fit an MLP (jsc)", a.task);
            }
            mlp_inputs(a, mlp.inputs, mlp.outputs)
        }
    }
}

/// One output row per example (logits, embeddings, or MLP outputs).
fn outputs(
    model: &Model,
    data: &Data,
    a: &Args,
    after_batch: &mut dyn FnMut(),
) -> Result<Vec<Vec<f32>>> {
    match data {
        Data::Sentences { texts } | Data::Sst2 { texts, .. } | Data::Stsb { texts, .. } => {
            let encoder = TextEncoder::from_model(model, a.max_length)?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            Ok(run_texts(model, &encoder, &refs, a.batch_size, after_batch)?.0)
        }
        Data::Features { x, rows, .. } => {
            let y = model.run_mlp(x, *rows)?;
            after_batch();
            let width = y.len() / rows;
            Ok(y.chunks(width.max(1)).map(<[f32]>::to_vec).collect())
        }
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    crate::commands::run::check_backend(&a.backend)?;
    let tmp = tempfile::tempdir()?;
    let model = Model::open(&a.model, ReadOptions::default())?;
    let data = load_data(&a, &model)?;
    let examples = match &data {
        Data::Sentences { texts } | Data::Sst2 { texts, .. } | Data::Stsb { texts, .. } => {
            texts.len()
        }
        Data::Features { rows, .. } => *rows,
    };
    if examples == 0 {
        bail!("no examples to evaluate (empty data file, or --synthetic 0)");
    }
    // The model runs first, so the peak RSS measured is the model's own, not the reference's.
    let mut peak = Peak::default();
    peak.sample();
    let out = outputs(&model, &data, &a, &mut || peak.sample())?;
    let reference = reference_model(&a.model, &model, a.reference.as_deref(), tmp.path())?;
    let refs = match &reference {
        Some(r) => outputs(r, &data, &a, &mut || {})?,
        None => out.clone(),
    };
    let mut result = json!({"model": a.model.display().to_string(), "accuracy": null, "reference_accuracy": null,
        "spearman": null, "reference_spearman": null, "agreement": null, "mean_abs_logit_diff": null,
        "max_abs_logit_diff": null, "kl": null, "note": null});
    let classification = |result: &mut Value, probabilities: bool, labels: Option<&Vec<usize>>| {
        let (agree, mean, max, kl) = compare_logits(&out, &refs, probabilities);
        if let Some(labels) = labels {
            result["accuracy"] = json!(accuracy(&out, labels));
            result["reference_accuracy"] = json!(accuracy(&refs, labels));
        }
        result["agreement"] = json!(agree);
        result["mean_abs_logit_diff"] = json!(mean);
        result["max_abs_logit_diff"] = json!(max);
        result["kl"] = json!(kl);
    };
    match &data {
        Data::Sentences { texts } => {
            result["task"] = json!("embed");
            let cos: Vec<f64> = out.iter().zip(&refs).map(|(x, y)| cosine(x, y)).collect();
            result["mean_embedding_cosine_to_reference"] =
                json!(cos.iter().sum::<f64>() / cos.len() as f64);
            result["min_embedding_cosine_to_reference"] =
                json!(cos.iter().copied().fold(f64::INFINITY, f64::min));
            let nearest = |e: &[Vec<f32>], i: usize| -> usize {
                (0..e.len())
                    .filter(|&j| j != i)
                    .max_by(|&p, &q| cosine(&e[i], &e[p]).total_cmp(&cosine(&e[i], &e[q])))
                    .unwrap_or(i)
            };
            let same = (0..out.len())
                .filter(|&i| nearest(&out, i) == nearest(&refs, i))
                .count();
            result["nearest_neighbour_agreement"] = json!(same as f64 / out.len() as f64);
            result["examples"] = json!(texts.len());
        }
        Data::Sst2 { labels, .. } => {
            result["task"] = json!("sst2");
            classification(&mut result, false, Some(labels));
            result["examples"] = json!(labels.len());
        }
        Data::Stsb { gold, .. } => {
            result["task"] = json!("stsb");
            let sims = |e: &[Vec<f32>]| -> Vec<f64> {
                e.chunks(2).map(|p| cosine(&p[0], &p[1])).collect()
            };
            result["spearman"] = json!(spearman(&sims(&out), gold));
            result["reference_spearman"] = json!(spearman(&sims(&refs), gold));
            let cos: Vec<f64> = out.iter().zip(&refs).map(|(x, y)| cosine(x, y)).collect();
            result["mean_embedding_cosine_to_reference"] =
                json!(cos.iter().sum::<f64>() / cos.len().max(1) as f64);
            result["min_embedding_cosine_to_reference"] =
                json!(cos.iter().copied().fold(f64::INFINITY, f64::min));
            result["examples"] = json!(gold.len());
        }
        Data::Features {
            rows, labels, note, ..
        } => {
            result["task"] = json!("jsc");
            let softmax_out = matches!(model.metadata()["hyperparameters"]["ops"].as_array().and_then(|o| o.last()), Some(op) if op["op"] == "softmax");
            classification(&mut result, softmax_out, labels.as_ref());
            result["examples"] = json!(rows);
            result["note"] = json!(note);
        }
    }
    let (per_encoding, weight_bytes, fp32) = memory_table(&model);
    result["memory"] = json!({
        "file_bytes": model.file_len(), "weight_bytes": weight_bytes, "weight_bytes_per_encoding": per_encoding,
        "fp32_weight_bytes": fp32, "saving_percent": 100.0 * (1.0 - weight_bytes as f64 / fp32.max(1) as f64),
        "peak_rss_bytes": (peak.hwm > 0).then_some(peak.hwm), "peak_rss_file_bytes": (peak.hwm > 0).then_some(peak.file),
        "peak_rss_anon_bytes": (peak.hwm > 0).then_some(peak.anon),
    });
    result["reference"] = json!(a
        .reference
        .as_ref()
        .map_or("the model itself (FP32)".to_string(), |r| r
            .display()
            .to_string()));
    result["isa"] = json!(model.isa());
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&result)?)?;
    } else {
        print_text(&result)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Features (and labels when known) for an MLP: CSV with one-hot columns, .npy (+ --labels), or synthetic.
fn mlp_inputs(a: &Args, inputs: usize, outputs: usize) -> Result<Data> {
    if let Some(n) = a.synthetic {
        let mut rng = SplitMix64(a.seed);
        let x = (0..n * inputs).map(|_| rng.normal() as f32).collect();
        return Ok(Data::Features { x, rows: n, labels: None, note: Some(format!("{n} seeded N(0,1) feature rows (seed {}): no jet data set here, so agreement with FP32 only, no accuracy", a.seed)) });
    }
    let Some(data) = &a.data else {
        bail!("give --data (CSV or .npy) or --synthetic N")
    };
    let (values, rows, cols) = if data.extension().is_some_and(|e| e == "npy") {
        crate::data::read_npy(data)?
    } else {
        crate::data::read_csv_matrix(data)?
    };
    if cols < inputs {
        bail!(
            "{}: {cols} columns, the model takes {inputs} features",
            data.display()
        );
    }
    let x: Vec<f32> = values
        .chunks(cols)
        .flat_map(|r| r[..inputs].iter().copied())
        .collect();
    let labels = if cols >= inputs + outputs {
        Some(
            values
                .chunks(cols)
                .map(|r| argmax(&r[inputs..inputs + outputs]))
                .collect(),
        )
    } else if let Some(lp) = &a.labels {
        let (l, lrows, lcols) = crate::data::read_npy(lp)?;
        if lrows != rows {
            bail!(
                "{}: {lrows} label rows for {rows} feature rows",
                lp.display()
            );
        }
        Some(if lcols == 1 {
            l.iter().map(|&v| v as usize).collect()
        } else {
            l.chunks(lcols).map(argmax).collect()
        })
    } else {
        None
    };
    Ok(Data::Features {
        x,
        rows,
        labels,
        note: None,
    })
}

fn print_text(r: &Value) -> std::io::Result<()> {
    let pct = |v: &Value| v.as_f64().map(|x| format!("{:.2} %", 100.0 * x));
    let num = |v: &Value| v.as_f64().map(|x| format!("{x:.4}"));
    outln!(
        "{} ({} examples, task {}, reference: {}, kernels {})",
        r["model"].as_str().unwrap_or(""),
        r["examples"],
        r["task"].as_str().unwrap_or(""),
        r["reference"].as_str().unwrap_or(""),
        r["isa"].as_str().unwrap_or("")
    )?;
    if let Some(n) = r["note"].as_str() {
        outln!("note: {n}")?;
    }
    // Only the metrics that apply to this task.
    let lines: [(&str, Option<String>, Option<String>); 6] = [
        (
            "accuracy",
            pct(&r["accuracy"]),
            pct(&r["reference_accuracy"]),
        ),
        (
            "spearman",
            num(&r["spearman"]),
            num(&r["reference_spearman"]),
        ),
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
                ("accuracy" | "spearman", Some(s)) => outln!("{label}: {v} (FP32 reference: {s})")?,
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
        "peak RSS {} bytes (file-backed {}, anonymous {}), measured before the reference ran",
        b("peak_rss_bytes"),
        b("peak_rss_file_bytes"),
        b("peak_rss_anon_bytes")
    )
}
