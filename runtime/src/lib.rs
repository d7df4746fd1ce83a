//! `mxrt-runtime`: runs `.mxrt` models. A [`Model`] maps its file, validates it once, and executes the BERT or
//! MLP graph on the CPU (weights read in place: quantized blocks are decoded inside the kernels), on a wgpu
//! adapter or on a CUDA device. A [`Session`] is the entry point from a file to answers: text in (tokenized
//! here), labels, scores or embeddings out; feature rows in, output rows out.
//!
//! Layers, top to bottom (`../shared/DESIGN.md`, "Inside the runtime"; `tools/archcheck` checks them):
//! - facade (`model`: [`Model`]): open, validate, choose a backend, run;
//! - graphs (`graphs`: [`Graph`]): BERT and MLP, the only code that knows a model;
//! - op set (`ops`): the [`Backend`] trait and its argument types, knowing no model;
//! - backends: `cpu` (its kernels in `cpu/kernels`), `wgpu`, `cuda`, and the device upload plan the two GPU
//!   backends share;
//! - the file: `mapped` ([`MappedFile`]), `weights` (a tensor in the mapped file), and `mxrt-format` below all of them.
//!
//! Those modules are private: the public API is what the crate root re-exports. [`mod@bench`] is the door for
//! benchmarks and kernel tests, not part of the stable API.

#![deny(unsafe_code)]

pub mod bench;
mod cpu;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod device_upload;
mod error;
mod graphs;
mod mapped;
mod model;
mod ops;
mod weights;
#[cfg(feature = "wgpu")]
mod wgpu;
// Kernel launches and device allocations are the unsafe operations here; each block says why it holds.
#[cfg(feature = "cuda")]
#[allow(unsafe_code)]
mod cuda;
#[cfg(all(test, any(feature = "wgpu", feature = "cuda")))]
mod device_tests;
#[cfg(all(test, any(feature = "wgpu", feature = "cuda")))]
mod test_seed;

/// The README's Rust example, run as a doctest (its other code blocks are shell, Python and C).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;

pub use error::{InputError, ModelProblem, Result, RuntimeError, TextError};
pub use graphs::bert::{BertOutput, Head};
pub use graphs::Graph;
pub use mapped::{MappedFile, OpenError};
pub use model::backend_choice::{cuda_gemv_bandwidth, BackendKind, WgpuOptions};
pub use model::session::{
    argmax, check_image, run_text_inputs, softmax, Classification, ModelInfo, Session,
    SessionOptions, Task,
};
pub use model::text::TextEncoder;
pub use model::verify::{verify, Verification};
pub use model::Model;
pub use ops::{ActQuant, Activation, Pooling, TokenBatch};
pub use weights::TensorRef;
