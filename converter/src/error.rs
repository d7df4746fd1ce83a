//! The converter's error type: every failure names the file or tensor involved.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid safetensors file: {reason}")]
    Safetensors { path: PathBuf, reason: String },
    #[error("{path} is not a PyTorch checkpoint mxrt can read: {reason}")]
    Torch { path: PathBuf, reason: String },
    #[error("tensor {name:?} appears in both {first} and {second}")]
    DuplicateTensor {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("tensor {tensor:?} in {path} has dtype {dtype}, which mxrt cannot store")]
    UnsupportedDtype {
        tensor: String,
        path: PathBuf,
        dtype: String,
    },
    #[error("tensor {tensor:?} holds {value} at flat index {index} (pass --allow-nonfinite to keep non-finite values)")]
    NonFinite {
        tensor: String,
        index: usize,
        value: f32,
    },
    #[error("no input files given")]
    NoInputs,
    #[error("the output {0} is also an input: choose another output path")]
    OutputIsInput(PathBuf),
    #[error("{0}")]
    Options(String),
    #[error("cannot read JSON {path}: {reason}")]
    Json { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    UnsupportedConfig { path: PathBuf, reason: String },
    #[error("checkpoint lacks tensor {name:?} (expected shape {expected:?})")]
    MissingTensor { name: String, expected: Vec<u64> },
    #[error("checkpoint has tensors the {architecture} description does not use: {}", names.join(", "))]
    ExtraTensors {
        architecture: String,
        names: Vec<String>,
    },
    #[error("tensor {name:?} has shape {found:?}, but the config implies {expected:?}")]
    ShapeMismatch {
        name: String,
        expected: Vec<u64>,
        found: Vec<u64>,
    },
    #[error("recipe: {0}")]
    Recipe(String),
    #[error("{}: converted, but the runtime would refuse the result: {reason}", checkpoint.display())]
    Unusable { checkpoint: PathBuf, reason: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error(transparent)]
    Format(#[from] mxrt_format::Error),
}
