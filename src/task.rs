//! Evaluation tasks shared by `mxrt eval` and `mxrt sweep`: loading the data a model is judged on (SST-2,
//! STS-B, sentences, jet features), running a model over it, and the metrics against the FP32 reference.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use mxrt_converter::rng::SplitMix64;
use mxrt_format::description::{Hyperparameters, MlpOp};
use mxrt_runtime::Head;
use mxrt_runtime::{Graph, Model};
use serde_json::{json, Value};

use mxrt_runtime::{argmax, softmax};
use mxrt_runtime::{Session, SessionOptions};

/// What to evaluate on, and how to feed it.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct DataArgs {
    /// Data: SST-2 TSV (`sentence<TAB>label`, or a `text,label` CSV), sentence pairs with labels (GLUE
    /// MRPC, QNLI, RTE: accuracy, F1 for two classes; STS-B with a one-label regression head: Pearson and
    /// Spearman), STS-B TSV for sentence encoders (cosine of embeddings against gold scores), a .txt file of
    /// sentences (encoders: cosine to FP32 and nearest-neighbour agreement), or for MLPs a CSV of 16
    /// features + 5 one-hot label columns (the hls4ml jet data) or a .npy feature matrix (with --labels).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Labels for a .npy/.npz/CSV feature matrix: one-hot rows or one class index per row (.npy, .npz or
    /// CSV). A .npz data file may hold them itself (array `y` or `labels`).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// MLPs without data: this many seeded N(0,1) feature rows (agreement with FP32 only, no accuracy).
    #[arg(long)]
    pub synthetic: Option<usize>,
    /// Seed for --synthetic.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// sst2, pairs (sentence-pair classification: MRPC, QNLI, RTE, ...), stsb, embed, jsc, or auto (from
    /// the model and the data: a classifier on a file whose header names two text columns is `pairs`, a
    /// one-label regression model is `stsb`).
    #[arg(long, default_value = "auto")]
    pub task: String,
    /// Use only the first N examples (pairs for STS-B).
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Truncate texts to this many tokens (default: the model's max_seq_length, else 512).
    #[arg(long)]
    pub max_length: Option<usize>,
    /// MLPs: evaluate feature rows holding NaN or infinities instead of refusing the data file.
    #[arg(long)]
    pub allow_nonfinite: bool,
}

impl DataArgs {
    /// These options as command-line arguments again, for a child `mxrt` process that must read the same data
    /// the same way (`eval` runs its FP32 reference in one).
    pub fn to_args(&self) -> Vec<std::ffi::OsString> {
        let mut out: Vec<std::ffi::OsString> = Vec::new();
        let mut push = |flag: &str, value: std::ffi::OsString| {
            out.push(flag.into());
            out.push(value);
        };
        if let Some(d) = &self.data {
            push("--data", d.into());
        }
        if let Some(l) = &self.labels {
            push("--labels", l.into());
        }
        if let Some(n) = self.synthetic {
            push("--synthetic", n.to_string().into());
        }
        push("--seed", self.seed.to_string().into());
        push("--task", self.task.clone().into());
        if let Some(n) = self.limit {
            push("--limit", n.to_string().into());
        }
        push("--batch-size", self.batch_size.to_string().into());
        if let Some(n) = self.max_length {
            push("--max-length", n.to_string().into());
        }
        if self.allow_nonfinite {
            out.push("--allow-nonfinite".into());
        }
        out
    }
}

impl Data {
    /// Examples (pairs for STS-B, rows for features).
    pub fn examples(&self) -> usize {
        match self {
            Data::Sentences { texts } | Data::Sst2 { texts, .. } => texts.len(),
            Data::Stsb { gold, .. } => gold.len(),
            Data::Pairs { pairs, .. } | Data::PairScores { pairs, .. } => pairs.len(),
            Data::Features { rows, .. } => *rows,
        }
    }

    /// Examples `range` (pairs for STS-B, rows for features) as data of their own: the search and held-out
    /// splits of `mxrt search`.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Data {
        let r = range.clone();
        match self {
            Data::Sentences { texts } => Data::Sentences {
                texts: texts[r].to_vec(),
            },
            Data::Sst2 { texts, labels } => Data::Sst2 {
                texts: texts[r.clone()].to_vec(),
                labels: labels[r].to_vec(),
            },
            Data::Stsb { texts, gold } => Data::Stsb {
                texts: texts[2 * r.start..2 * r.end].to_vec(),
                gold: gold[r].to_vec(),
            },
            Data::Pairs {
                pairs,
                labels,
                classes,
            } => Data::Pairs {
                pairs: pairs[r.clone()].to_vec(),
                labels: labels[r].to_vec(),
                classes: *classes,
            },
            Data::PairScores { pairs, gold } => Data::PairScores {
                pairs: pairs[r.clone()].to_vec(),
                gold: gold[r].to_vec(),
            },
            Data::Features {
                x,
                rows,
                labels,
                note,
            } => {
                let width = x.len() / (*rows).max(1);
                Data::Features {
                    x: x[width * r.start..width * r.end].to_vec(),
                    rows: r.len(),
                    labels: labels.as_ref().map(|l| l[r].to_vec()),
                    note: note.clone(),
                }
            }
        }
    }

    /// Keeps the first `n` examples.
    fn truncate(&mut self, n: usize) {
        match self {
            Data::Sentences { texts } => texts.truncate(n),
            Data::Sst2 { texts, labels } => {
                texts.truncate(n);
                labels.truncate(n);
            }
            Data::Stsb { texts, gold } => {
                texts.truncate(2 * n);
                gold.truncate(n);
            }
            Data::Pairs { pairs, labels, .. } => {
                pairs.truncate(n);
                labels.truncate(n);
            }
            Data::PairScores { pairs, gold } => {
                pairs.truncate(n);
                gold.truncate(n);
            }
            Data::Features {
                x, rows, labels, ..
            } => {
                if n < *rows {
                    x.truncate(x.len() / *rows * n);
                    *rows = n;
                    if let Some(l) = labels {
                        l.truncate(n);
                    }
                }
            }
        }
    }

    /// The task's name and its headline metric: accuracy where labels exist, Spearman for STS-B, mean
    /// embedding cosine to FP32 for unlabelled sentences, top-1 agreement for unlabelled features.
    pub fn headline(&self) -> (&'static str, &'static str) {
        match self {
            Data::Sentences { .. } => ("embed", "mean_embedding_cosine_to_reference"),
            Data::Sst2 { .. } => ("sst2", "accuracy"),
            Data::Stsb { .. } | Data::PairScores { .. } => ("stsb", "spearman"),
            Data::Pairs { .. } => ("pairs", "accuracy"),
            Data::Features {
                labels: Some(_), ..
            } => ("jsc", "accuracy"),
            Data::Features { labels: None, .. } => ("jsc", "agreement"),
        }
    }
}

/// What is evaluated, loaded before any model runs.
pub enum Data {
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
    /// Sentence pairs with classes (MRPC, QNLI, RTE, ...), for a classifier.
    Pairs {
        pairs: Vec<(String, String)>,
        labels: Vec<usize>,
        classes: usize,
    },
    /// Sentence pairs with gold scores, for a one-label regression head (STS-B cross-encoders).
    PairScores {
        pairs: Vec<(String, String)>,
        gold: Vec<f64>,
    },
    Features {
        x: Vec<f32>,
        rows: usize,
        labels: Option<Vec<usize>>,
        note: Option<String>,
    },
}

pub fn load_data(a: &DataArgs, model: &Model) -> Result<Data> {
    let mut data = load_all(a, model)?;
    if let Some(n) = a.limit {
        data.truncate(n);
    }
    if data.examples() == 0 {
        bail!("no examples to evaluate (empty data file, --limit 0 or --synthetic 0)");
    }
    Ok(data)
}

fn load_all(a: &DataArgs, model: &Model) -> Result<Data> {
    match model.graph() {
        Graph::Bert(bert) => {
            let Some(data) = &a.data else {
                bail!("--data is required for text models (SST-2 or STS-B TSV)")
            };
            let plain_text = data.extension().is_some_and(|e| e == "txt");
            let classes = match &bert.config.head {
                Head::Classification { labels, .. } => Some(labels),
                Head::Embedding { .. } => None,
            };
            let regression = classes.is_some_and(|l| l.len() == 1);
            let task = match (a.task.as_str(), &bert.config.head) {
                ("auto", Head::Embedding { .. }) if plain_text => "embed",
                ("embed", Head::Embedding { .. }) => "embed",
                ("embed", _) => bail!("task embed needs a sentence-embedding model"),
                ("auto" | "stsb", Head::Classification { .. }) if regression => "stsb-regression",
                ("auto", Head::Classification { .. }) if has_pair_header(data) => "pairs",
                ("pairs" | "mrpc" | "qnli" | "rte", _) => "pairs",
                ("auto", Head::Classification { .. }) | ("sst2", _) => "sst2",
                ("auto", Head::Embedding { .. }) | ("stsb", _) => "stsb",
                (t, _) => bail!(
                    "task {t:?} does not fit a text model (sst2, pairs, mrpc, qnli, rte, stsb, embed)"
                ),
            };
            match task {
                "embed" => {
                    let texts = crate::data::read_text_lines(data)?;
                    if texts.len() < 2 {
                        bail!("{}: need at least two sentences", data.display());
                    }
                    Ok(Data::Sentences { texts })
                }
                "sst2" => {
                    let Some(classes) = classes else {
                        bail!("task sst2 needs a classification model")
                    };
                    let rows = crate::data::read_sst2(data, classes.len())?;
                    Ok(Data::Sst2 {
                        labels: rows.iter().map(|r| r.1).collect(),
                        texts: rows.into_iter().map(|r| r.0).collect(),
                    })
                }
                "pairs" => {
                    let Some(classes) = classes.filter(|_| !regression) else {
                        bail!("sentence-pair classification needs a classifier with two or more labels")
                    };
                    let rows = crate::data::read_labelled_pairs(data)?;
                    let labels = rows
                        .labels
                        .iter()
                        .map(|(text, line)| class_of(data, text, *line, classes))
                        .collect::<Result<Vec<_>>>()?;
                    Ok(Data::Pairs {
                        pairs: rows.pairs,
                        labels,
                        classes: classes.len(),
                    })
                }
                "stsb-regression" => {
                    // GLUE's STS-B (a header with sentence1, sentence2, score) or the STS Benchmark's
                    // own layout (no header, seven or nine columns).
                    let (pairs, gold) = if has_pair_header(data) {
                        let rows = crate::data::read_labelled_pairs(data)?;
                        let gold = rows
                            .labels
                            .iter()
                            .map(|(text, line)| {
                                text.parse::<f64>()
                                    .ok()
                                    .filter(|v| v.is_finite())
                                    .with_context(|| {
                                        format!(
                                            "{} line {line}: score {text:?} is not a number",
                                            data.display()
                                        )
                                    })
                            })
                            .collect::<Result<Vec<_>>>()?;
                        (rows.pairs, gold)
                    } else {
                        crate::data::read_stsb(data)?
                            .into_iter()
                            .map(|(x, y, g)| ((x, y), g))
                            .unzip()
                    };
                    Ok(Data::PairScores { pairs, gold })
                }
                _ => {
                    if !matches!(bert.config.head, Head::Embedding { .. }) {
                        bail!(
                            "STS-B needs a sentence-embedding model or a one-label regression head"
                        );
                    }
                    let pairs = crate::data::read_stsb(data)?;
                    Ok(Data::Stsb {
                        gold: pairs.iter().map(|p| p.2).collect(),
                        texts: pairs.into_iter().flat_map(|(x, y, _)| [x, y]).collect(),
                    })
                }
            }
        }
        Graph::Mlp(mlp) => {
            if !matches!(a.task.as_str(), "auto" | "jsc") {
                bail!("task {:?} does not fit an MLP (jsc)", a.task);
            }
            if let Some(n) = a.synthetic {
                model.check_working_memory(&format!("--synthetic {n}"), n, 1)?;
            }
            mlp_inputs(a, mlp.inputs, mlp.outputs)
        }
    }
}

/// Whether `path` is a TSV/CSV whose header names two text columns (a sentence-pair file).
fn has_pair_header(path: &std::path::Path) -> bool {
    path.extension().is_none_or(|e| e != "txt") && crate::data::read_labelled_pairs(path).is_ok()
}

/// The class a label of a pair file stands for: an index below the model's label count, or one of the
/// model's label names (any case: `entailment`), or GLUE's order for entailment tasks (`entailment` 0,
/// `not_entailment` 1) when the model's labels are unnamed.
fn class_of(path: &std::path::Path, text: &str, line: u64, labels: &[String]) -> Result<usize> {
    if let Some(i) = text.parse::<usize>().ok().filter(|&i| i < labels.len()) {
        return Ok(i);
    }
    if let Some(i) = labels.iter().position(|l| l.eq_ignore_ascii_case(text)) {
        return Ok(i);
    }
    let unnamed = labels.iter().all(|l| l.starts_with("LABEL_"));
    match text {
        "entailment" if unnamed && labels.len() == 2 => Ok(0),
        "not_entailment" if unnamed && labels.len() == 2 => Ok(1),
        _ => bail!(
            "{} line {line}: label {text:?} is neither a class index below {} nor one of the model's labels ({})",
            path.display(),
            labels.len(),
            labels.join(", ")
        ),
    }
}

/// One output row per example (logits, embeddings, or MLP outputs), through the library's session (its
/// batch size and length limit are `a`'s).
pub fn outputs(
    session: &Session,
    data: &Data,
    a: &DataArgs,
    after_batch: &mut (dyn FnMut() + Send),
) -> Result<Vec<Vec<f32>>> {
    let inputs: Vec<(&str, Option<&str>)> = match data {
        Data::Sentences { texts } | Data::Sst2 { texts, .. } | Data::Stsb { texts, .. } => {
            texts.iter().map(|t| (t.as_str(), None)).collect()
        }
        Data::Pairs { pairs, .. } | Data::PairScores { pairs, .. } => pairs
            .iter()
            .map(|(x, y)| (x.as_str(), Some(y.as_str())))
            .collect(),
        Data::Features { x, rows, .. } => {
            let y = if a.allow_nonfinite {
                session.model().run_mlp_allowing_nonfinite(x, *rows)?
            } else {
                session.run(x, *rows)?
            };
            after_batch();
            let width = y.len() / rows;
            return Ok(y.chunks(width.max(1)).map(<[f32]>::to_vec).collect());
        }
    };
    Ok(session.outputs_observed(&inputs, after_batch)?)
}

/// A CPU session over a model opened already (converted in memory, say) with `a`'s batch size and length
/// limit: what `outputs` runs `a`'s data through.
pub fn cpu_session(model: Model, a: &DataArgs) -> Result<Session> {
    Ok(Session::from_model(
        model,
        SessionOptions {
            max_batch: a.batch_size,
            max_length: a.max_length,
            ..SessionOptions::default()
        },
    )?)
}

/// Features (and labels when known) for an MLP: CSV with one-hot columns, .npy (+ --labels), or synthetic.
fn mlp_inputs(a: &DataArgs, inputs: usize, outputs: usize) -> Result<Data> {
    if let Some(n) = a.synthetic {
        let mut rng = SplitMix64(a.seed);
        let x = (0..n * inputs).map(|_| rng.normal() as f32).collect();
        return Ok(Data::Features { x, rows: n, labels: None, note: Some(format!("{n} seeded N(0,1) feature rows (seed {}): no jet data set here, so agreement with FP32 only, no accuracy", a.seed)) });
    }
    let Some(data) = &a.data else {
        bail!("give --data (CSV or .npy) or --synthetic N")
    };
    let (features, archive_labels) = crate::data::read_features(data)?;
    crate::data::check_feature_width(data, &features, inputs, outputs)?;
    crate::data::check_finite(data, &features, a.allow_nonfinite)?;
    let rows = features.rows;
    let labels = if features.cols == inputs + outputs {
        let one_hot: Vec<f32> = features
            .values
            .chunks(features.cols)
            .flat_map(|r| r[inputs..].iter().copied())
            .collect();
        Some(crate::data::class_labels(data, &one_hot, outputs, outputs)?)
    } else {
        let given = match &a.labels {
            Some(lp) => Some((crate::data::read_features(lp)?.0, lp.as_path())),
            None => archive_labels.map(|l| (l, data.as_path())),
        };
        match given {
            Some((l, from)) => {
                if l.rows != rows {
                    bail!(
                        "{}: {} label rows for {rows} feature rows",
                        from.display(),
                        l.rows
                    );
                }
                Some(crate::data::class_labels(from, &l.values, l.cols, outputs)?)
            }
            None => None,
        }
    };
    Ok(Data::Features {
        x: crate::data::feature_columns(features, inputs),
        rows,
        labels,
        note: None,
    })
}

/// Pearson correlation.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().max(1) as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// F1 of class 1 (the positive class of MRPC and QQP: paraphrase).
pub fn f1(outputs: &[Vec<f32>], labels: &[usize]) -> f64 {
    let (mut tp, mut fp, mut fneg) = (0.0, 0.0, 0.0);
    for (o, &l) in outputs.iter().zip(labels) {
        match (argmax(o) == 1, l == 1) {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fneg += 1.0,
            _ => {}
        }
    }
    if tp == 0.0 {
        0.0
    } else {
        2.0 * tp / (2.0 * tp + fp + fneg)
    }
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

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
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
pub fn compare_logits(
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

pub fn accuracy(outputs: &[Vec<f32>], labels: &[usize]) -> f64 {
    outputs
        .iter()
        .zip(labels)
        .filter(|(o, &l)| argmax(o) == l)
        .count() as f64
        / labels.len().max(1) as f64
}

/// The class labels of a classification task's examples (None for regression and embedding data).
pub fn class_labels(data: &Data) -> Option<&[usize]> {
    match data {
        Data::Sst2 { labels, .. } | Data::Pairs { labels, .. } => Some(labels),
        Data::Features {
            labels: Some(l), ..
        } => Some(l),
        _ => None,
    }
}

/// The standard error, in points, of the accuracy difference between `out` and `refs` on the same examples
/// (paired: only the examples one gets right and the other wrong count): √(b + c − (b − c)²/n) / n · 100.
pub fn paired_accuracy_se(out: &[Vec<f32>], refs: &[Vec<f32>], labels: &[usize]) -> f64 {
    let (mut b, mut c) = (0f64, 0f64);
    for ((o, r), &l) in out.iter().zip(refs).zip(labels) {
        match (argmax(o) == l, argmax(r) == l) {
            (true, false) => b += 1.0,
            (false, true) => c += 1.0,
            _ => {}
        }
    }
    let n = labels.len().max(1) as f64;
    100.0 * (b + c - (b - c).powi(2) / n).max(0.0).sqrt() / n
}

/// The task's metrics for `out` against the FP32 `refs` on the same data (JSON keys as `mxrt eval` prints
/// them; metrics that do not apply are null).
pub fn compare(model: &Model, data: &Data, out: &[Vec<f32>], refs: &[Vec<f32>]) -> Value {
    let mut result = json!({"accuracy": null, "reference_accuracy": null, "f1": null, "reference_f1": null,
        "spearman": null, "reference_spearman": null, "pearson": null, "reference_pearson": null,
        "agreement": null, "mean_abs_logit_diff": null,
        "max_abs_logit_diff": null, "kl": null, "note": null});
    let classification = |result: &mut Value, probabilities: bool, labels: Option<&Vec<usize>>| {
        let (agree, mean, max, kl) = compare_logits(out, refs, probabilities);
        if let Some(labels) = labels {
            result["accuracy"] = json!(accuracy(out, labels));
            result["reference_accuracy"] = json!(accuracy(refs, labels));
        }
        result["agreement"] = json!(agree);
        result["mean_abs_logit_diff"] = json!(mean);
        result["max_abs_logit_diff"] = json!(max);
        result["kl"] = json!(kl);
    };
    match &data {
        Data::Sentences { texts } => {
            result["task"] = json!("embed");
            let cos: Vec<f64> = out.iter().zip(refs).map(|(x, y)| cosine(x, y)).collect();
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
                .filter(|&i| nearest(out, i) == nearest(refs, i))
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
            result["spearman"] = json!(spearman(&sims(out), gold));
            result["reference_spearman"] = json!(spearman(&sims(refs), gold));
            let cos: Vec<f64> = out.iter().zip(refs).map(|(x, y)| cosine(x, y)).collect();
            result["mean_embedding_cosine_to_reference"] =
                json!(cos.iter().sum::<f64>() / cos.len().max(1) as f64);
            result["min_embedding_cosine_to_reference"] =
                json!(cos.iter().copied().fold(f64::INFINITY, f64::min));
            result["examples"] = json!(gold.len());
        }
        Data::Pairs {
            labels, classes, ..
        } => {
            result["task"] = json!("pairs");
            classification(&mut result, false, Some(labels));
            if *classes == 2 {
                result["f1"] = json!(f1(out, labels));
                result["reference_f1"] = json!(f1(refs, labels));
            }
            result["examples"] = json!(labels.len());
        }
        Data::PairScores { gold, .. } => {
            result["task"] = json!("stsb");
            let scores =
                |o: &[Vec<f32>]| -> Vec<f64> { o.iter().map(|v| f64::from(v[0])).collect() };
            let (mine, theirs) = (scores(out), scores(refs));
            result["spearman"] = json!(spearman(&mine, gold));
            result["reference_spearman"] = json!(spearman(&theirs, gold));
            result["pearson"] = json!(pearson(&mine, gold));
            result["reference_pearson"] = json!(pearson(&theirs, gold));
            let diffs: Vec<f64> = mine
                .iter()
                .zip(&theirs)
                .map(|(x, y)| (x - y).abs())
                .collect();
            result["mean_abs_logit_diff"] =
                json!(diffs.iter().sum::<f64>() / diffs.len().max(1) as f64);
            result["max_abs_logit_diff"] = json!(diffs.iter().copied().fold(0.0, f64::max));
            result["examples"] = json!(gold.len());
        }
        Data::Features {
            rows, labels, note, ..
        } => {
            result["task"] = json!("jsc");
            let softmax_out = matches!(
                &model.description().hyperparameters,
                Hyperparameters::Mlp(hp) if hp.ops.last() == Some(&MlpOp::Softmax)
            );
            classification(&mut result, softmax_out, labels.as_ref());
            result["examples"] = json!(rows);
            result["note"] = json!(note);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    /// b = examples only the model gets right, c = only the reference: √(b + c − (b − c)²/n) / n.
    #[test]
    fn paired_accuracy_se_counts_only_the_discordant_examples() {
        let one_hot = |k: usize| {
            if k == 0 {
                vec![1.0, 0.0]
            } else {
                vec![0.0, 1.0]
            }
        };
        let labels = [0, 0, 1, 1, 0, 1, 0, 1];
        let refs: Vec<Vec<f32>> = labels.iter().map(|&l| one_hot(l)).collect();
        // Identical predictions: no discordant pair, no error.
        assert_eq!(super::paired_accuracy_se(&refs, &refs, &labels), 0.0);
        // Two examples flipped to wrong (c = 2, b = 0): √(2 − 4/8) / 8 · 100.
        let mut out = refs.clone();
        out[0] = one_hot(1);
        out[3] = one_hot(0);
        let se = super::paired_accuracy_se(&out, &refs, &labels);
        assert!((se - 100.0 * 1.5f64.sqrt() / 8.0).abs() < 1e-12, "{se}");
        // One each way (b = c = 1): √2 / 8 · 100.
        let mut both = refs.clone();
        both[0] = one_hot(1);
        let wrong_refs: Vec<Vec<f32>> = refs
            .iter()
            .enumerate()
            .map(|(i, r)| if i == 5 { one_hot(0) } else { r.clone() })
            .collect();
        let se = super::paired_accuracy_se(&both, &wrong_refs, &labels);
        assert!((se - 100.0 * 2f64.sqrt() / 8.0).abs() < 1e-12, "{se}");
    }

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        data: super::DataArgs,
    }

    /// A child process given `to_args` reads the data exactly as the parent was told to.
    #[test]
    fn data_args_survive_the_trip_to_a_child_process() {
        let every = [
            "--data",
            "d.tsv",
            "--labels",
            "l.npy",
            "--synthetic",
            "7",
            "--seed",
            "3",
            "--task",
            "jsc",
            "--limit",
            "9",
            "--batch-size",
            "5",
            "--max-length",
            "64",
            "--allow-nonfinite",
        ];
        let parsed = Wrap::parse_from(std::iter::once("mxrt").chain(every)).data;
        let args: Vec<String> = parsed
            .to_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, every);
        let defaults = Wrap::parse_from(["mxrt"]).data;
        let again = Wrap::parse_from(std::iter::once("mxrt".into()).chain(defaults.to_args())).data;
        assert_eq!(again, defaults);
    }
}
