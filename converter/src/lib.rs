#![deny(unsafe_code)]
//! `mxrt-converter`: checkpoints (safetensors) to `.mxrt` files.
//!
//! This first version packs the tensors of one or more safetensors files without a model description
//! ([`raw::convert`]); model-aware conversion (BERT, MLP, recipes, pruning) builds on the same pieces.

mod error;
mod input;
pub mod raw;

pub use error::ConvertError;
pub use input::{SourceFile, SourceTensor};
