//! The library's one entry point from a file to answers: a [`Session`] opens a model with its options
//! (backend, threads, batch and length limits), tokenizes inside, batches long inputs by length, and gives
//! labels with probabilities, embeddings, or MLP outputs. The CLI, the server and the bindings are its users.

use std::collections::BTreeMap;
use std::path::Path;

use mxrt_format::ReadOptions;
use serde_json::{json, Value};

use super::backend_choice::BackendKind;
use super::text::TextEncoder;
use super::Model;
use crate::error::{InputError, Result, RuntimeError, TextError};
use crate::graphs::bert::Head;
use crate::graphs::Graph;
use crate::ops::Pooling;

/// How a [`Session`] opens and runs its model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOptions {
    /// Where inferences run (default: the CPU).
    pub backend: BackendKind,
    /// CPU worker threads of this session's own pool; `None` runs on the process's global rayon pool (one
    /// worker per CPU unless the program configured it otherwise).
    pub threads: Option<usize>,
    /// Texts (or MLP rows, times 1,024) per forward pass: longer inputs are split into batches of this size,
    /// sorted by length so that little padding is computed. Default 32.
    pub max_batch: usize,
    /// Tokens per text (special tokens included) before truncation; `None`: the model's own limit (a sentence
    /// encoder's `max_seq_length`, else 512), never past its positions.
    pub max_length: Option<usize>,
    /// Check every checksum at open (default true; false skips them for huge files, never the structure).
    pub verify_checksums: bool,
    /// Build the embedded tokenizer at open (default true). `false` skips it (tens of milliseconds and
    /// megabytes for a BERT vocabulary) when only token ids or feature rows go in, e.g. through
    /// [`Session::model`] to time the network alone; text calls then give [`TextError::NotLoaded`].
    pub tokenizer: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            backend: BackendKind::Cpu,
            threads: None,
            max_batch: 32,
            max_length: None,
            verify_checksums: true,
            tokenizer: true,
        }
    }
}

/// One text's (or pair's) answer from a classification or regression head.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// The most probable label (a regression head's only label).
    pub label: String,
    /// Its index among [`ModelInfo::labels`].
    pub index: usize,
    /// Softmax of the logits, one per label; empty for a regression head (see `score`).
    pub probabilities: Vec<f32>,
    /// The head's raw outputs.
    pub logits: Vec<f32>,
    /// A regression head's score (its one output, e.g. STS-B similarity); `None` for classifiers.
    pub score: Option<f32>,
}

/// What a model answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Text → one label of several ([`Session::classify`]).
    Classification,
    /// Text → one score ([`Session::classify`] with `score` set).
    Regression,
    /// Text → a vector ([`Session::embed`]).
    Embedding,
    /// Feature rows → output rows ([`Session::run`]).
    Features,
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::Classification => "classification",
            Task::Regression => "regression",
            Task::Embedding => "embedding",
            Task::Features => "features",
        }
    }
}

/// What [`Session::describe`] reports: enough to use a model without reading its file.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// `"bert"` (the BERT family) or `"mlp"`.
    pub architecture: &'static str,
    pub task: Task,
    /// Output labels (classifiers, MLPs with labels); empty otherwise.
    pub labels: Vec<String>,
    /// Values per answer: labels, embedding dimensions, or MLP outputs.
    pub output_width: usize,
    /// Features per MLP row; `None` for text models.
    pub input_features: Option<usize>,
    /// Tokens per text after truncation (special tokens included); `None` for MLPs.
    pub max_length: Option<usize>,
    /// Sentence embeddings: the pooling (`cls`, `mean`, `max`) and whether vectors are L2-normalised.
    pub pooling: Option<&'static str>,
    pub normalized: bool,
    /// Per tensor encoding (`f32`, `mxint8`, `fixed:8.4`, `raw u8`, …): tensors and stored bytes.
    pub encodings: BTreeMap<String, (usize, u64)>,
    /// The file's size (mapped, read in place on the CPU) and the bytes uploaded to a device backend.
    pub file_bytes: u64,
    pub device_bytes: u64,
    /// The backend in use, e.g. `cpu (avx512-vnni)`.
    pub backend: String,
    /// The file format version, e.g. `(2, 1)`.
    pub format_version: (u16, u16),
}

impl ModelInfo {
    /// As JSON, for the CLI, the server and the bindings.
    pub fn to_json(&self) -> Value {
        let encodings: serde_json::Map<String, Value> = self
            .encodings
            .iter()
            .map(|(k, (n, b))| (k.clone(), json!({"tensors": n, "bytes": b})))
            .collect();
        json!({
            "architecture": self.architecture,
            "task": self.task.name(),
            "labels": self.labels,
            "output_width": self.output_width,
            "input_features": self.input_features,
            "max_length": self.max_length,
            "pooling": self.pooling,
            "normalized": self.normalized,
            "encodings": encodings,
            "file_bytes": self.file_bytes,
            "device_bytes": self.device_bytes,
            "backend": self.backend,
            "format_version": format!("{}.{}", self.format_version.0, self.format_version.1),
        })
    }
}

/// An opened model ready to answer. `Send + Sync`: share it (e.g. in an `Arc`) and call it from any number
/// of threads at once.
///
/// ```
/// use mxrt_runtime::{Session, SessionOptions};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-classifier.mxrt");
/// let session = Session::open(&model, SessionOptions::default())?;
/// let answers = session.classify(&["a great film", "boring plot"])?;
/// for a in &answers {
///     println!("{} ({:.2})", a.label, a.probabilities[a.index]);
/// }
/// assert_eq!(answers.len(), 2);
/// assert_eq!(session.describe().labels, ["negative", "positive"]);
/// # Ok(())
/// # }
/// ```
pub struct Session {
    model: Model,
    encoder: Option<TextEncoder>,
    /// Opened with `tokenizer: false` (the file may hold one).
    tokenizer_skipped: bool,
    pool: Option<rayon::ThreadPool>,
    max_batch: usize,
}

impl Session {
    /// Maps, validates and prepares the model at `path` (weights uploaded now for a device backend).
    pub fn open(path: &Path, options: SessionOptions) -> Result<Session> {
        let read = ReadOptions {
            verify_checksums: options.verify_checksums,
        };
        Session::from_model(Model::open(path, read)?, options)
    }

    /// A session over a model opened already (e.g. with [`Model::from_bytes`]).
    pub fn from_model(mut model: Model, options: SessionOptions) -> Result<Session> {
        if options.max_batch == 0 {
            return Err(InputError::Option {
                name: "max_batch",
                reason: "must be at least 1".into(),
            }
            .into());
        }
        model.use_backend(options.backend)?;
        let encoder = match model.graph() {
            Graph::Bert(_) if !options.tokenizer => None,
            // A file converted with --no-tokenizer still opens (described, benchmarked on token ids); its
            // text calls give the NoTokenizer error.
            Graph::Bert(_) => match TextEncoder::from_model(&model, options.max_length) {
                Ok(encoder) => Some(encoder),
                Err(RuntimeError::Text(TextError::NoTokenizer)) => None,
                Err(e) => return Err(e),
            },
            Graph::Mlp(_) => None,
        };
        let pool = match options.threads {
            None => None,
            Some(0) => {
                return Err(InputError::Option {
                    name: "threads",
                    reason: "must be at least 1 (or unset for one per CPU)".into(),
                }
                .into())
            }
            Some(n) => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(|i| format!("mxrt-{i}"))
                    .build()
                    .map_err(|e| RuntimeError::Backend {
                        backend: "cpu",
                        reason: format!("starting {n} worker threads: {e}"),
                    })?,
            ),
        };
        Ok(Session {
            model,
            encoder,
            tokenizer_skipped: !options.tokenizer,
            pool,
            max_batch: options.max_batch,
        })
    }

    /// The model underneath (its description, tensors and lower-level calls).
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The tokenizer (text models with an embedded one).
    pub fn encoder(&self) -> Option<&TextEncoder> {
        self.encoder.as_ref()
    }

    /// Architecture, task, labels, widths, encodings and memory.
    pub fn describe(&self) -> ModelInfo {
        let m = &self.model;
        let mut encodings = BTreeMap::new();
        for t in m.tensors().values() {
            let e: &mut (usize, u64) = encodings.entry(t.encoding.to_string()).or_default();
            e.0 += 1;
            e.1 += t.stored_bytes();
        }
        let (architecture, task, labels, output_width, input_features, pooling, normalized) =
            match m.graph() {
                Graph::Bert(b) => match &b.config.head {
                    Head::Classification { labels, .. } => (
                        "bert",
                        if labels.len() == 1 {
                            Task::Regression
                        } else {
                            Task::Classification
                        },
                        labels.clone(),
                        labels.len(),
                        None,
                        None,
                        false,
                    ),
                    Head::Embedding {
                        pooling, normalize, ..
                    } => (
                        "bert",
                        Task::Embedding,
                        Vec::new(),
                        b.config.hidden,
                        None,
                        Some(match pooling {
                            Pooling::Cls => "cls",
                            Pooling::Mean => "mean",
                            Pooling::Max => "max",
                        }),
                        *normalize,
                    ),
                },
                Graph::Mlp(mlp) => (
                    "mlp",
                    Task::Features,
                    mlp.labels.clone(),
                    mlp.outputs,
                    Some(mlp.inputs),
                    None,
                    false,
                ),
            };
        ModelInfo {
            architecture,
            task,
            labels,
            output_width,
            input_features,
            max_length: self.encoder.as_ref().map(TextEncoder::max_length),
            pooling,
            normalized,
            encodings,
            file_bytes: m.file_len(),
            device_bytes: m.device_bytes(),
            backend: m.backend_description(),
            format_version: m.format_version(),
        }
    }

    /// Runs `f` on this session's worker pool (or the global one).
    fn on_pool<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    /// The head's raw outputs for texts and sentence pairs (`(a, Some(b))`), one row per input in input
    /// order: inputs are sorted by length and run [`SessionOptions::max_batch`] at a time.
    pub fn outputs(&self, inputs: &[(&str, Option<&str>)]) -> Result<Vec<Vec<f32>>> {
        self.outputs_observed(inputs, &mut || {})
    }

    /// [`Session::outputs`], calling `after_batch` after every batch (progress, memory sampling).
    pub fn outputs_observed(
        &self,
        inputs: &[(&str, Option<&str>)],
        after_batch: &mut (dyn FnMut() + Send),
    ) -> Result<Vec<Vec<f32>>> {
        let encoder = match (&self.encoder, self.model.graph()) {
            (Some(encoder), _) => encoder,
            (None, Graph::Bert(_)) if self.tokenizer_skipped => {
                return Err(TextError::NotLoaded.into())
            }
            (None, Graph::Bert(_)) => return Err(TextError::NoTokenizer.into()),
            (None, Graph::Mlp(_)) => return Err(InputError::NotText.into()),
        };
        self.on_pool(|| run_text_inputs(&self.model, encoder, inputs, self.max_batch, after_batch))
    }

    /// Labels and probabilities for each text (classification and regression heads).
    pub fn classify(&self, texts: &[&str]) -> Result<Vec<Classification>> {
        let inputs: Vec<(&str, Option<&str>)> = texts.iter().map(|t| (*t, None)).collect();
        self.classify_inputs(&inputs)
    }

    /// Labels and probabilities for each sentence pair (cross-encoders: MRPC, QNLI, STS-B, …).
    ///
    /// ```
    /// # let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-classifier.mxrt");
    /// let session = mxrt_runtime::Session::open(&model, Default::default())?;
    /// let answers = session.classify_pairs(&[("the movie was good", "a great film")])?;
    /// assert_eq!(answers[0].probabilities.len(), 2);
    /// # Ok::<(), mxrt_runtime::RuntimeError>(())
    /// ```
    pub fn classify_pairs(&self, pairs: &[(&str, &str)]) -> Result<Vec<Classification>> {
        let inputs: Vec<(&str, Option<&str>)> = pairs.iter().map(|(a, b)| (*a, Some(*b))).collect();
        self.classify_inputs(&inputs)
    }

    /// [`Session::classify`] for a mix of texts and pairs.
    pub fn classify_inputs(&self, inputs: &[(&str, Option<&str>)]) -> Result<Vec<Classification>> {
        let labels = match self.model.graph() {
            Graph::Bert(b) => match &b.config.head {
                Head::Classification { labels, .. } => labels,
                Head::Embedding { .. } => return Err(InputError::NotClassifier.into()),
            },
            Graph::Mlp(_) => return Err(InputError::NotText.into()),
        };
        Ok(self
            .outputs(inputs)?
            .into_iter()
            .map(|logits| Classification::from_logits(labels, logits))
            .collect())
    }

    /// One sentence embedding per text (sentence-encoder models), pooled and normalised as the model says.
    ///
    /// ```
    /// # let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-encoder.mxrt");
    /// use mxrt_runtime::{Session, SessionOptions};
    /// let session = Session::open(&model, SessionOptions { threads: Some(2), ..Default::default() })?;
    /// let vectors = session.embed(&["a great film", "a good movie"])?;
    /// let cosine: f32 = vectors[0].iter().zip(&vectors[1]).map(|(a, b)| a * b).sum();
    /// assert_eq!(vectors[0].len(), session.describe().output_width);
    /// assert!(cosine <= 1.0 + 1e-5);
    /// # Ok::<(), mxrt_runtime::RuntimeError>(())
    /// ```
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        match self.model.graph() {
            Graph::Bert(b) if matches!(b.config.head, Head::Embedding { .. }) => {}
            Graph::Bert(_) => return Err(InputError::NotEncoder.into()),
            Graph::Mlp(_) => return Err(InputError::NotText.into()),
        }
        let inputs: Vec<(&str, Option<&str>)> = texts.iter().map(|t| (*t, None)).collect();
        self.outputs(&inputs)
    }

    /// An MLP on `rows` feature rows (`x` row-major, [`ModelInfo::input_features`] per row): the output rows,
    /// row-major. NaN or infinite features are refused, naming the row and column.
    ///
    /// ```
    /// # let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-mlp.mxrt");
    /// let session = mxrt_runtime::Session::open(&model, Default::default())?;
    /// let info = session.describe();
    /// let features = info.input_features.unwrap();
    /// let rows = vec![0.5_f32; 3 * features];
    /// let out = session.run(&rows, 3)?;
    /// assert_eq!(out.len(), 3 * info.output_width);
    /// let err = session.run(&[f32::NAN; 16], 1).unwrap_err();
    /// assert!(err.to_string().contains("row 0, column 0"));
    /// # Ok::<(), mxrt_runtime::RuntimeError>(())
    /// ```
    pub fn run(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        let inputs = match self.model.graph() {
            Graph::Mlp(m) => m.inputs,
            Graph::Bert(_) => return Err(InputError::NotFeatures.into()),
        };
        if Some(x.len()) != rows.checked_mul(inputs) {
            return Err(InputError::FeatureCount {
                rows,
                inputs,
                got: x.len(),
            }
            .into());
        }
        // Rows are independent: big inputs run in batches of max_batch × 1,024 rows.
        let step = self.max_batch.saturating_mul(1024);
        self.on_pool(|| {
            if rows <= step {
                return self.model.run_mlp(x, rows);
            }
            let mut out = Vec::new();
            for (i, chunk) in x.chunks(step * inputs.max(1)).enumerate() {
                let n = chunk.len() / inputs.max(1);
                let part = self.model.run_mlp(chunk, n).map_err(|e| match e {
                    RuntimeError::Input(InputError::NonFiniteFeature { row, col, value }) => {
                        InputError::NonFiniteFeature {
                            row: row + i * step,
                            col,
                            value,
                        }
                        .into()
                    }
                    other => other,
                })?;
                out.extend_from_slice(&part);
            }
            Ok(out)
        })
    }
}

/// What a converter checks in a finished file image before writing it: the image opened as a session would
/// open it (description against tensors, recipe, labels, the tokenizer built). Gives the image back; the error
/// is the reason in words.
pub fn check_image(bytes: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    let model = Model::from_bytes(
        "the converted file",
        bytes,
        ReadOptions {
            verify_checksums: false,
        },
    )
    .map_err(|e| e.to_string())?;
    super::verify::describe_checked(&model).map_err(|e| e.to_string())?;
    Ok(model
        .into_image()
        .expect("a model made from bytes gives them back"))
}

/// A text model's outputs for texts and sentence pairs (`(a, Some(b))`), one row per input in input order:
/// inputs are sorted by length (less padding) and run `max_batch` at a time; `after_batch` runs after every
/// batch (the CLI samples memory there).
pub fn run_text_inputs(
    model: &Model,
    encoder: &TextEncoder,
    inputs: &[(&str, Option<&str>)],
    max_batch: usize,
    after_batch: &mut dyn FnMut(),
) -> Result<Vec<Vec<f32>>> {
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by_key(|&i| inputs[i].0.len() + inputs[i].1.map_or(0, str::len));
    let mut out = vec![Vec::new(); inputs.len()];
    for chunk in order.chunks(max_batch.max(1)) {
        let batch_inputs: Vec<(&str, Option<&str>)> = chunk.iter().map(|&i| inputs[i]).collect();
        let batch = encoder.batch_inputs(&batch_inputs)?;
        let result = model.run_bert(&batch, false)?;
        let width = result.width;
        for (k, &i) in chunk.iter().enumerate() {
            out[i] = result.values[k * width..(k + 1) * width].to_vec();
        }
        after_batch();
    }
    Ok(out)
}

/// Softmax of one row of logits.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|v| v / sum).collect()
}

/// Index of the largest value (the first on ties).
pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}

impl Classification {
    /// The answer a head with these labels gives for these logits: one label is a regression head (its
    /// score), more are classes (softmax, the first largest wins).
    pub fn from_logits(labels: &[String], logits: Vec<f32>) -> Classification {
        classification(labels, logits)
    }
}

fn classification(labels: &[String], logits: Vec<f32>) -> Classification {
    if labels.len() == 1 {
        return Classification {
            label: labels[0].clone(),
            index: 0,
            probabilities: Vec::new(),
            score: logits.first().copied(),
            logits,
        };
    }
    let index = argmax(&logits);
    Classification {
        label: labels.get(index).cloned().unwrap_or_default(),
        index,
        probabilities: softmax(&logits),
        logits,
        score: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_answers_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Session>();
        send_sync::<ModelInfo>();
        send_sync::<Classification>();
    }

    #[test]
    fn a_regression_head_gives_its_score_and_no_probabilities() {
        let c = classification(&["LABEL_0".into()], vec![3.5]);
        assert_eq!((c.score, c.probabilities.len(), c.index), (Some(3.5), 0, 0));
        let labels = ["a".to_string(), "b".to_string(), "c".to_string()];
        let c = classification(&labels, vec![0.0, 2.0, 1.0]);
        assert_eq!((c.label.as_str(), c.index, c.score), ("b", 1, None));
        let sum: f32 = c.probabilities.iter().sum();
        assert!((sum - 1.0).abs() < 1e-6 && c.probabilities[1] > c.probabilities[2]);
    }
}
