//! Per-column affines on the CPU: `x · scale + shift` over rows (an inference BatchNorm; a layer's channel
//! scales), in place or into a new buffer, split over the cores when the tensor is large.

use rayon::prelude::*;

use crate::cpu::frame::Cpu;
use crate::cpu::rows::PARALLEL_WORK;

impl Cpu {
    /// `v · scale + shift` per column of the `scale.len()`-wide rows of `x` (inference BatchNorm).
    pub fn affine(&self, x: &mut [f32], scale: &[f32], shift: &[f32]) {
        let width = scale.len().max(1);
        let rows = |x: &mut [f32]| {
            for row in x.chunks_mut(width) {
                for ((v, s), t) in row.iter_mut().zip(scale).zip(shift) {
                    *v = *v * s + t;
                }
            }
        };
        if x.len() * 4 >= PARALLEL_WORK {
            // Whole rows per task (a row's scale starts at column 0).
            x.par_chunks_mut(width * (4096 / width).max(1))
                .for_each(rows);
        } else {
            rows(x);
        }
    }

    /// `out = x * scale + shift` per column (`out` as long as `x`): a layer's scaled input, in one pass.
    pub fn affine_into(&self, x: &[f32], out: &mut [f32], scale: &[f32], shift: &[f32]) {
        let width = scale.len().max(1);
        let rows = |(out, x): (&mut [f32], &[f32])| {
            for (o, row) in out.chunks_mut(width).zip(x.chunks(width)) {
                for (((o, v), s), t) in o.iter_mut().zip(row).zip(scale).zip(shift) {
                    *o = v * s + t;
                }
            }
        };
        let chunk = width * (4096 / width).max(1);
        if x.len() * 4 >= PARALLEL_WORK {
            out.par_chunks_mut(chunk)
                .zip(x.par_chunks(chunk))
                .for_each(rows);
        } else {
            rows((out, x));
        }
    }
}
