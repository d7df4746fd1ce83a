//! The door for benchmarks and kernel tests (`runtime/benches`, `runtime/tests/kernels.rs`, `mxrt bench
//! --kernels`): the CPU kernel tables, the linear op that routes a weight to them, the activation quantizers
//! and a tensor reference into a mapped file. Not a stable API: it follows the kernels as they change.

pub use crate::cpu::frame::Cpu;
pub use crate::cpu::kernels::PeakLoops;
pub use crate::cpu::kernels::{fold, reference, Epilogue, Kernels, MxPanel, PanelWeights, TIERS};
pub use crate::cpu::prepared::prepare as prepare_blocks;
pub use crate::cpu::quant::{
    fake_quantize_rows, pack_mxint8_panels, quantize_mxint8_panels, quantize_mxint8_rows,
};
pub use crate::ops::ActQuant;
pub use crate::weights::{PreparedBlocks, TensorRef, WeightView};

use std::time::{Duration, Instant};

/// This machine's compute ceiling for a kernel table, measured: its peak loops run on every thread of
/// `pool` at once, in giga-operations per second (a multiply-add counts two).
#[derive(Debug, Clone, Copy)]
pub struct Peaks {
    pub f32_gflops: f64,
    pub int8_gops: f64,
}

/// Runs `kernels.peaks` on all of `pool`'s threads (each round long enough to time, best of three).
pub fn measure_peaks(kernels: &Kernels, pool: &rayon::ThreadPool) -> Peaks {
    let loops = kernels.peaks;
    let f32_rate = best_rate(pool, loops.f32_ops, |n| {
        std::hint::black_box((loops.f32)(n));
    });
    let i8_rate = best_rate(pool, loops.i8_ops, |n| {
        std::hint::black_box((loops.i8)(n));
    });
    Peaks {
        f32_gflops: f32_rate / 1e9,
        int8_gops: i8_rate / 1e9,
    }
}

/// Operations per second of `run(iterations)` on every thread of `pool` at once.
fn best_rate(pool: &rayon::ThreadPool, ops_per_iteration: f64, run: impl Fn(u64) + Sync) -> f64 {
    // Enough iterations for about 20 ms on one thread.
    let mut iterations = 1u64 << 12;
    loop {
        let t = Instant::now();
        run(iterations);
        if t.elapsed() >= Duration::from_millis(20) || iterations >= 1 << 40 {
            break;
        }
        iterations *= 2;
    }
    let threads = pool.current_num_threads() as f64;
    (0..3)
        .map(|_| {
            let t = Instant::now();
            pool.broadcast(|_| run(iterations));
            threads * iterations as f64 * ops_per_iteration / t.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}
