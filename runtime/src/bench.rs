//! The door for benchmarks and kernel tests (`runtime/benches`, `runtime/tests/kernels.rs`, `mxrt bench
//! --kernels`): the CPU kernel tables, the linear op that routes a weight to them, the activation quantizers
//! and a tensor reference into a mapped file. Not a stable API: it follows the kernels as they change.

pub use crate::cpu::frame::Cpu;
pub use crate::cpu::kernels::{reference, Kernels, TIERS};
pub use crate::cpu::quant::{
    fake_quantize_rows, pack_mxint8_panels, quantize_mxint8_panels, quantize_mxint8_rows,
};
pub use crate::ops::ActQuant;
pub use crate::weights::{TensorRef, WeightView};
