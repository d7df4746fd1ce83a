//! `mxrt-runtime`: runs `.mxrt` models on the CPU. A [`Model`] maps its file, validates it once, and executes
//! the BERT or MLP graph with weights read in place (quantized blocks are decoded inside the kernels).

#![deny(unsafe_code)]

pub mod backend;
pub mod bert;
pub mod cpu;
mod cpu_backend;
mod device;
#[cfg(all(test, any(feature = "wgpu", feature = "cuda")))]
mod device_tests;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod device_weights;
mod error;
#[cfg(feature = "wgpu")]
mod gpu;
// Kernel launches and device allocations are the unsafe operations here; each block says why it holds.
#[cfg(feature = "cuda")]
#[allow(unsafe_code)]
mod cuda;
mod graph;
mod mapped;
pub mod mlp;
mod mlp_small;
mod model;
pub mod ops;
mod panels;
mod pool;
pub mod quant;
#[cfg(all(test, any(feature = "wgpu", feature = "cuda")))]
mod test_seed;
mod warm;
pub mod weights;

pub use backend::{Activation, Backend};
pub use bert::{BertOutput, TokenBatch};
pub use device::{cuda_gemv_bandwidth, BackendKind, WgpuOptions};
pub use error::{Result, RuntimeError};
pub use mapped::{MappedFile, OpenError};
pub use model::{Graph, Model};
