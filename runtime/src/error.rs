//! The runtime's errors: one enum whose variants carry the facts (names, sizes, values), not prose. The
//! messages are for people: names are quoted, absent values are said in words, and no variant prints Rust
//! `Debug` text (`Some("x")`, `None`).

use std::fmt;

use mxrt_format::description::DescriptionError;

use crate::mapped::OpenError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The file is valid, but its description or tensors do not make a model this runtime runs.
    #[error("{path}: cannot run this model: {problem}")]
    Model { path: String, problem: ModelProblem },
    /// The input does not fit the model.
    #[error("input: {0}")]
    Input(#[from] InputError),
    /// Text cannot be encoded with the model's embedded tokenizer.
    #[error(transparent)]
    Text(#[from] TextError),
    /// The backend was compiled out, or the machine has no device for it.
    #[error("the {backend} backend is unavailable: {reason}")]
    BackendUnavailable {
        backend: &'static str,
        reason: String,
    },
    /// `MXRT_CPU` names a kernel tier that does not exist, or that this CPU does not run.
    #[error("MXRT_CPU={value}: {reason}")]
    CpuTier { value: String, reason: String },
    /// The backend failed while running (device lost, a limit exceeded, a rejected command).
    #[error("{backend} backend: {reason}")]
    Backend {
        backend: &'static str,
        reason: String,
    },
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// Why a valid file is not a model this runtime runs (FORMAT.md section 9 against the tensors).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelProblem {
    /// The description itself (architecture, hyperparameters, recipe layers, tokenizer) is malformed.
    #[error(transparent)]
    Description(#[from] DescriptionError),
    /// A size in the description does not fit this machine's address space.
    #[error("{field} {value} is too large")]
    TooLarge { field: &'static str, value: u64 },
    /// A recipe layer's activation setting does not parse.
    #[error("recipe layer {layer}: {reason}")]
    Recipe { layer: String, reason: String },
}

/// Why an input does not fit the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("{rows} rows of {inputs} features need {} values, got {got}", rows.saturating_mul(*inputs))]
    FeatureCount {
        rows: usize,
        inputs: usize,
        got: usize,
    },
    #[error("a batch of {batch}x{seq} needs {} ids, type ids and mask values", batch.saturating_mul(*seq))]
    BatchShape { batch: usize, seq: usize },
    #[error("sequence length {seq} exceeds the model's {positions} positions")]
    SequenceTooLong { seq: usize, positions: usize },
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    TokenOutOfVocabulary { id: u32, vocab: usize },
    #[error("token type {id} is outside the model's {types} types")]
    TokenTypeOutOfRange { id: u32, types: usize },
    #[error("every sequence needs at least one unmasked token")]
    EmptySequence,
    #[error("this model is an MLP: it takes features, not text")]
    NotText,
    /// A NaN or infinite feature: the model would still produce confident-looking probabilities.
    #[error("feature row {row}, column {col} (counting from 0) is {value}: features must be finite numbers")]
    NonFiniteFeature {
        row: usize,
        col: usize,
        value: String,
    },
    /// The working memory an inference of this size needs exceeds what the machine has available (`needed`
    /// is `None` when the estimate itself overflows 64 bits).
    #[error(
        "{what} needs {} of working memory; this machine has {} available",
        needed.map_or("more than 16 EiB".to_string(), |n| format!("about {}", crate::error::human_bytes(n))),
        crate::error::human_bytes(*available)
    )]
    TooLarge {
        what: String,
        needed: Option<u64>,
        available: u64,
    },
    #[error("this model is a BERT encoder: it takes text, not features")]
    NotFeatures,
    #[error(
        "this model is a sentence encoder: it gives embeddings (embed), not labels (classify)"
    )]
    NotClassifier,
    #[error(
        "this model is a classifier: it gives labels (classify), not sentence embeddings (embed)"
    )]
    NotEncoder,
    /// A session option out of range.
    #[error("option {name}: {reason}")]
    Option { name: &'static str, reason: String },
    /// MXINT8 codes and scales of the wrong length for `rows × cols`.
    #[error(
        "{rows}x{cols} MXINT8 needs {} codes and {} scales",
        rows.saturating_mul(cols.div_ceil(32)).saturating_mul(32),
        rows.saturating_mul(cols.div_ceil(32))
    )]
    Mxint8Shape { rows: usize, cols: usize },
}

/// Why text cannot be turned into token ids with the model's embedded tokenizer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("this model file has no embedded tokenizer (it was converted with --no-tokenizer)")]
    NoTokenizer,
    #[error("this session was opened without its tokenizer (SessionOptions::tokenizer = false): token ids only")]
    NotLoaded,
    /// The description lists no file of this name.
    #[error("embedded tokenizer lacks {0}")]
    MissingFile(String),
    /// The description names a raw tensor the file does not hold.
    #[error("tensor {0} is missing")]
    MissingTensor(String),
    #[error("unknown embedded tokenizer format {}", Quoted(.0))]
    UnknownFormat(String),
    /// A tokenizer file, or the tokenizer built from it, is unusable.
    #[error("{what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("tokenizing: {0}")]
    Encoding(String),
}

/// A name in double quotes (as `{:?}` would print a plain string, without exposing Rust types).
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_debug())
    }
}

/// `1536` → `1.5 KiB`, for messages about sizes.
pub(crate) fn human_bytes(n: u64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} bytes")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(problem: ModelProblem) -> String {
        RuntimeError::Model {
            path: "m.mxrt".into(),
            problem,
        }
        .to_string()
    }

    #[test]
    fn model_problems_read_as_sentences_without_debug_text() {
        let cases = [
            (
                ModelProblem::Description(DescriptionError::NoArchitecture),
                "m.mxrt: cannot run this model: no architecture: this file holds bare tensors (convert the \
                 checkpoint directory to get a model)",
            ),
            (
                ModelProblem::Description(DescriptionError::UnknownArchitecture("gpt".into())),
                "m.mxrt: cannot run this model: architecture \"gpt\" is not supported (bert, mlp)",
            ),
            (
                ModelProblem::Description(DescriptionError::Section {
                    section: "hyperparameters",
                    reason: "missing field `hidden_size`".into(),
                }),
                "m.mxrt: cannot run this model: hyperparameters: missing field `hidden_size`",
            ),
            (
                ModelProblem::TooLarge {
                    field: "vocab_size",
                    value: u64::MAX,
                },
                "m.mxrt: cannot run this model: vocab_size 18446744073709551615 is too large",
            ),
            (
                ModelProblem::Recipe {
                    layer: "fc1".into(),
                    reason: "unknown encoding".into(),
                },
                "m.mxrt: cannot run this model: recipe layer fc1: unknown encoding",
            ),
            (
                ModelProblem::Description(DescriptionError::MissingTensor {
                    name: "fc1.weight".into(),
                }),
                "m.mxrt: cannot run this model: tensor \"fc1.weight\" is missing",
            ),
            (
                ModelProblem::Description(DescriptionError::TensorShape {
                    name: "fc1.weight".into(),
                    found: vec![64, 16],
                    needed: vec![32, 16],
                }),
                "m.mxrt: cannot run this model: tensor \"fc1.weight\" has shape [64, 16], the model needs [32, 16]",
            ),
            (
                ModelProblem::Description(DescriptionError::RawTensor {
                    name: "vocab".into(),
                    encoding: "raw-u8".into(),
                }),
                "m.mxrt: cannot run this model: tensor \"vocab\" is stored as raw-u8: raw bytes, not numbers the model can compute with",
            ),
        ];
        for (problem, want) in cases {
            let got = model(problem);
            assert_eq!(got, want);
            assert!(!got.contains("Some(") && !got.contains("None"), "{got}");
        }
    }

    #[test]
    fn input_errors_name_the_sizes() {
        let cases = [
            (
                InputError::FeatureCount {
                    rows: 2,
                    inputs: 16,
                    got: 31,
                },
                "input: 2 rows of 16 features need 32 values, got 31",
            ),
            (
                InputError::BatchShape { batch: 2, seq: 8 },
                "input: a batch of 2x8 needs 16 ids, type ids and mask values",
            ),
            (
                InputError::SequenceTooLong {
                    seq: 600,
                    positions: 512,
                },
                "input: sequence length 600 exceeds the model's 512 positions",
            ),
            (
                InputError::TokenOutOfVocabulary {
                    id: 31000,
                    vocab: 30522,
                },
                "input: token id 31000 is outside the vocabulary of 30522",
            ),
            (
                InputError::TokenTypeOutOfRange { id: 2, types: 2 },
                "input: token type 2 is outside the model's 2 types",
            ),
            (
                InputError::EmptySequence,
                "input: every sequence needs at least one unmasked token",
            ),
            (
                InputError::NotText,
                "input: this model is an MLP: it takes features, not text",
            ),
            (
                InputError::NotFeatures,
                "input: this model is a BERT encoder: it takes text, not features",
            ),
            (
                InputError::Mxint8Shape { rows: 3, cols: 40 },
                "input: 3x40 MXINT8 needs 192 codes and 6 scales",
            ),
            (
                InputError::NonFiniteFeature {
                    row: 2,
                    col: 5,
                    value: f32::NAN.to_string(),
                },
                "input: feature row 2, column 5 (counting from 0) is NaN: features must be finite numbers",
            ),
            (
                InputError::TooLarge {
                    what: "--batch 100000 --seq 128".into(),
                    needed: Some(3 << 40),
                    available: 24 << 30,
                },
                "input: --batch 100000 --seq 128 needs about 3.0 TiB of working memory; this machine has \
                 24.0 GiB available",
            ),
            (
                InputError::TooLarge {
                    what: "--batch 9223372036854775808".into(),
                    needed: None,
                    available: 1536,
                },
                "input: --batch 9223372036854775808 needs more than 16 EiB of working memory; this machine \
                 has 1.5 KiB available",
            ),
            // Sizes whose products overflow are still printed, not a panic.
            (
                InputError::BatchShape {
                    batch: usize::MAX,
                    seq: 2,
                },
                "input: a batch of 18446744073709551615x2 needs 18446744073709551615 ids, type ids and mask values",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(RuntimeError::from(e).to_string(), want);
        }
    }

    #[test]
    fn text_errors_say_what_is_missing_without_debug_text() {
        let cases = [
            (
                TextError::NoTokenizer,
                "this model file has no embedded tokenizer (it was converted with --no-tokenizer)",
            ),
            (
                TextError::NotLoaded,
                "this session was opened without its tokenizer (SessionOptions::tokenizer = false): token ids only",
            ),
            (
                TextError::MissingFile("vocab.txt".into()),
                "embedded tokenizer lacks vocab.txt",
            ),
            (
                TextError::MissingTensor("tokenizer/vocab.txt".into()),
                "tensor tokenizer/vocab.txt is missing",
            ),
            (
                TextError::UnknownFormat("sentencepiece".into()),
                "unknown embedded tokenizer format \"sentencepiece\"",
            ),
            (
                TextError::Invalid {
                    what: "vocab.txt",
                    reason: "lacks [CLS]".into(),
                },
                "vocab.txt: lacks [CLS]",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(RuntimeError::from(e).to_string(), want);
        }
    }

    #[test]
    fn quoted_names_escape_what_would_break_the_line() {
        assert_eq!(Quoted("a\"b\nc").to_string(), "\"a\\\"b\\nc\"");
    }
}
