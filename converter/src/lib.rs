#![deny(unsafe_code)]
//! `mxrt-converter`: checkpoints (safetensors, PyTorch zip files and Lightning `.ckpt`) to `.mxrt` files.
//!
//! Two paths: [`raw::convert`] packs the tensors of safetensors files without a model description;
//! [`model_convert::convert_model`] reads a checkpoint directory (config.json), describes the model
//! ([`model`]), resolves a [`recipe`] per layer, [`prune`]s, encodes, and reports the [`fidelity`] of each tensor.

pub mod checkpoint;
mod error;
pub mod fidelity;
mod input;
pub mod model;
pub mod model_convert;
pub mod prune;
pub mod raw;
pub mod recipe;
pub mod rng;
pub mod torch;

/// Name and version recorded in every file's provenance.
pub const CONVERTER: &str = concat!("mxrt-converter ", env!("CARGO_PKG_VERSION"));

pub use error::ConvertError;
pub use input::{sha256_hex, SourceFile, SourceTensor};
