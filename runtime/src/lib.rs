//! `mxrt-runtime`: runs `.mxrt` models on the CPU. A [`Model`] maps its file, validates it once, and executes
//! the BERT or MLP graph with weights read in place (quantized blocks are decoded inside the kernels).

#![deny(unsafe_code)]

pub mod backend;
pub mod bert;
pub mod cpu;
mod cpu_backend;
mod device;
mod error;
#[cfg(feature = "wgpu")]
mod gpu;
mod graph;
mod mapped;
pub mod mlp;
mod model;
pub mod ops;
pub mod quant;
pub mod weights;

pub use backend::{Activation, Backend};
pub use bert::{BertOutput, TokenBatch};
pub use device::{BackendKind, WgpuOptions};
pub use error::{Result, RuntimeError};
pub use mapped::{MappedFile, OpenError};
pub use model::{Graph, Model};
