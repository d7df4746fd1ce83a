//! `mxrt run`: outputs of a model for texts (BERT) or feature rows (MLP).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use mxrt_runtime::{BackendKind, Graph, Session, SessionOptions, TextError};
use serde_json::json;

use crate::fmt::outln;
use mxrt_runtime::argmax;

#[derive(clap::Args)]
pub struct Args {
    /// The .mxrt model (converted from a checkpoint directory).
    model: PathBuf,
    /// Text(s) to run (BERT models).
    #[arg(long, num_args = 1..)]
    text: Vec<String>,
    /// Second text of a sentence pair, one per --text (cross-encoders and pair classifiers such as MRPC,
    /// QNLI, RTE or STS-B models): each --text A --text-pair B runs as `[CLS] A [SEP] B [SEP]`.
    #[arg(long, num_args = 1.., requires = "text")]
    text_pair: Vec<String>,
    /// Input file: for BERT models a .txt file (one text per line) or TSV/CSV with a text column
    /// (`sentence`/`text` header, else the first column) or two (sentence pairs: `sentence1`/`sentence2`,
    /// `question`/`sentence`, `question1`/`question2`, `#1 String`/`#2 String`, `premise`/`hypothesis`);
    /// for MLPs rows of features as CSV, .npy or .npz (array `x`), each row the model's features,
    /// optionally followed by one-hot label columns.
    #[arg(long, conflicts_with = "text")]
    input: Option<PathBuf>,
    #[command(flatten)]
    backend: BackendArgs,
    /// Truncate texts to this many tokens (default: the model's max_seq_length, else 512).
    #[arg(long)]
    max_length: Option<usize>,
    /// Texts per batch.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// One JSON object per input line, in input order.
    #[arg(long)]
    json: bool,
    /// With --json: include each text's token ids (`input_ids`).
    #[arg(long, requires = "json")]
    tokens: bool,
    /// MLPs: run on feature values that are NaN or infinite instead of refusing them (the outputs of
    /// such rows mean nothing; the flag exists for probing models).
    #[arg(long)]
    allow_nonfinite: bool,
}

/// `--backend` and `--verbose`, shared by `run`, `eval` and `bench`.
#[derive(clap::Args, Clone)]
pub struct BackendArgs {
    /// Where the model runs: `cpu` (kernels chosen for this CPU: AVX2, AVX-512, AMX tiles for MXINT8 x
    /// MXINT8; MXRT_CPU=reference|avx2|avx2vnni|avx512|amx picks a lower tier), `wgpu` (WGSL compute shaders on any Vulkan, Metal, DX12 or GL adapter;
    /// `WGPU_ADAPTER_NAME=<substring>` or `WGPU_BACKEND=vulkan|gl|...` choose one), `cuda` (our CUDA kernels,
    /// compiled by NVRTC at first use; needs an NVIDIA driver).
    #[arg(long, default_value = "cpu", value_parser = clap::value_parser!(BackendKind))]
    pub backend: BackendKind,
    /// Print the backend in use (CPU instruction set or GPU adapter) on stderr.
    #[arg(long, short)]
    pub verbose: bool,
}

impl BackendArgs {
    /// A library session on this backend (the model opened, moved onto the backend, its tokenizer ready).
    pub fn session(
        &self,
        path: &std::path::Path,
        max_batch: usize,
        max_length: Option<usize>,
    ) -> Result<Session> {
        self.session_with(
            path,
            SessionOptions {
                max_batch,
                max_length,
                ..SessionOptions::default()
            },
        )
    }

    /// A library session on this backend with `options` (their backend replaced by this one).
    pub fn session_with(&self, path: &std::path::Path, options: SessionOptions) -> Result<Session> {
        let session = Session::open(
            path,
            SessionOptions {
                backend: self.backend,
                ..options
            },
        )?;
        if self.verbose {
            eprintln!("backend: {}", session.model().backend_description());
        }
        Ok(session)
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    let session = a.backend.session(&a.model, a.batch_size, a.max_length)?;
    let model = session.model();
    match model.graph() {
        Graph::Bert(bert) => {
            let inputs: Vec<(String, Option<String>)> = match &a.input {
                Some(p) => crate::data::read_text_inputs(p)?,
                None if !a.text.is_empty() => {
                    if !a.text_pair.is_empty() && a.text_pair.len() != a.text.len() {
                        bail!(
                            "{} --text-pair for {} --text: give one second text per text",
                            a.text_pair.len(),
                            a.text.len()
                        );
                    }
                    a.text
                        .iter()
                        .enumerate()
                        .map(|(i, t)| (t.clone(), a.text_pair.get(i).cloned()))
                        .collect()
                }
                None => bail!("give --text or --input"),
            };
            let encoder = session.encoder().ok_or(TextError::NoTokenizer)?;
            let refs: Vec<(&str, Option<&str>)> = inputs
                .iter()
                .map(|(t, p)| (t.as_str(), p.as_deref()))
                .collect();
            let ids = |text: &str, pair: Option<&str>| -> Result<Option<Vec<u32>>> {
                Ok(match a.tokens {
                    true => Some(encoder.batch_inputs(&[(text, pair)])?.ids),
                    false => None,
                })
            };
            let shown = |text: &str, pair: Option<&str>| match pair {
                Some(p) => format!("{text}\t{p}"),
                None => text.to_string(),
            };
            match &bert.config.head {
                mxrt_runtime::Head::Classification { .. } => {
                    let answers = session.classify_inputs(&refs)?;
                    for ((text, pair), c) in refs.iter().zip(&answers) {
                        let ids = ids(text, *pair)?;
                        match (c.score, a.json) {
                            // One output: a regression head (STS-B style): the score itself.
                            (Some(score), true) => outln!(
                                "{}",
                                with_pair(
                                    json!({"text": text, "score": score, "logits": c.logits, "input_ids": ids}),
                                    *pair
                                )
                            )?,
                            (Some(score), false) => outln!("{score:.4}\t{}", shown(text, *pair))?,
                            (None, true) => outln!(
                                "{}",
                                with_pair(
                                    json!({"text": text, "label": c.label, "probabilities": c.probabilities, "logits": c.logits, "input_ids": ids}),
                                    *pair
                                )
                            )?,
                            (None, false) => outln!(
                                "{}\t{:.4}\t{}",
                                c.label,
                                c.probabilities[c.index],
                                shown(text, *pair)
                            )?,
                        }
                    }
                }
                mxrt_runtime::Head::Embedding { .. } => {
                    let outputs = session.outputs(&refs)?;
                    for ((text, pair), out) in refs.iter().zip(&outputs) {
                        if a.json {
                            let ids = ids(text, *pair)?;
                            outln!(
                                "{}",
                                with_pair(
                                    json!({"text": text, "embedding": out, "input_ids": ids}),
                                    *pair
                                )
                            )?;
                        } else {
                            let head: Vec<String> =
                                out.iter().take(4).map(|v| format!("{v:.4}")).collect();
                            outln!(
                                "[{}, ...] ({} dims)\t{}",
                                head.join(", "),
                                out.len(),
                                shown(text, *pair)
                            )?;
                        }
                    }
                }
            }
        }
        Graph::Mlp(mlp) => {
            if !a.text.is_empty() {
                bail!("this model is an MLP: give --input with CSV or .npy features");
            }
            let Some(path) = &a.input else {
                bail!("give --input with CSV or .npy features")
            };
            let (features, _) = crate::data::read_features(path)?;
            crate::data::check_feature_width(path, &features, mlp.inputs, mlp.outputs)?;
            crate::data::check_finite(path, &features, a.allow_nonfinite)?;
            let rows = features.rows;
            let x = crate::data::feature_columns(features, mlp.inputs);
            let y = if a.allow_nonfinite {
                model.run_mlp_allowing_nonfinite(&x, rows)?
            } else {
                session.run(&x, rows)?
            };
            for out in y.chunks(mlp.outputs) {
                let label = mlp.labels.get(argmax(out)).cloned();
                if a.json {
                    outln!("{}", json!({"outputs": out, "label": label}))?;
                } else {
                    let vals: Vec<String> = out.iter().map(|v| format!("{v:.5}")).collect();
                    outln!("{}\t{}", label.unwrap_or_default(), vals.join(" "))?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `line` with `"text_pair"` added for a sentence pair (single texts keep the keys they always had).
fn with_pair(mut line: serde_json::Value, pair: Option<&str>) -> serde_json::Value {
    if let Some(p) = pair {
        line["text_pair"] = json!(p);
    }
    line
}
