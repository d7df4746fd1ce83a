//! The CPU backend's ops. Weights are read in place (one decoded row at a time, or MXINT8 codes directly);
//! work is split across cores with rayon when it is large enough to pay for it.

use mxrt_format::{Encoding, MxElem};
use rayon::prelude::*;

use crate::cpu::kernels::ragged::Elementwise;
use crate::cpu::kernels::Kernels;
use crate::cpu::quant::{fake_quantize_rows, quantize_mxint8_panels, quantize_mxint8_rows, MxActs};
use crate::cpu::routes::{LinearShape, Route, RowKernel, ROW_TILE};
use crate::cpu::rows::{add_bias_rows, outputs_of_an_empty_product, PARALLEL_WORK};
use crate::ops::ActQuant;
use crate::weights::WeightView;

/// The CPU backend: a kernel table chosen once for this CPU.
#[derive(Clone, Copy)]
pub struct Cpu {
    pub kernels: Kernels,
}

impl Cpu {
    /// The CPU backend on the kernels the environment asks for (`MXRT_CPU`; see `cpu::kernels`), else the best here.
    pub fn from_env() -> crate::error::Result<Cpu> {
        Ok(Cpu {
            kernels: Kernels::from_env()?,
        })
    }
}

impl Default for Cpu {
    /// The best kernels this CPU runs, without consulting `MXRT_CPU` or `MXRT_FORCE_REFERENCE` (benchmarks
    /// and tests that pick tables themselves); `MXRT_NO_AMX` still leaves the matrix unit out.
    fn default() -> Self {
        Cpu {
            kernels: Kernels::detect(),
        }
    }
}

impl Cpu {
    /// `y = quant(x) · Wᵀ + b` for `x: [m, k]`, `W: [n, k]`; returns `[m, n]`, by the first route of
    /// `cpu::routes::ROUTES` that applies to the shape and encodings.
    pub fn linear(
        &self,
        x: &[f32],
        m: usize,
        w: &WeightView<'_>,
        bias: Option<&[f32]>,
        act: ActQuant,
    ) -> Vec<f32> {
        self.linear_then(x, m, w, bias, act, None)
    }

    /// [`Cpu::linear`] followed by the elementwise `post` (an activation): the same values as applying it
    /// to the returned rows, but the routes that produce their output in blocks apply it to each block
    /// while it is in cache (an MLP's ReLU was a pass of its own over the whole batch).
    pub fn linear_then(
        &self,
        x: &[f32],
        m: usize,
        w: &WeightView<'_>,
        bias: Option<&[f32]>,
        act: ActQuant,
        post: Option<Elementwise>,
    ) -> Vec<f32> {
        let finish = |mut y: Vec<f32>| {
            if let Some(f) = post {
                f.apply(&mut y);
            }
            y
        };
        let (n, kdim) = (w.rows(), w.cols());
        debug_assert_eq!(x.len(), m * kdim);
        let bias_of = |r: usize| bias.map_or(0.0, |b| b[r]);
        // Fixed point with both widths <= 8: i8 codes, exact i32 dot products, one scale 2^-(Fw+Fa) at the end.
        let fixed_path = match (w.tensor.encoding, act.encoding) {
            (
                Encoding::Fixed {
                    width: ww,
                    frac: fw,
                },
                Encoding::Fixed {
                    width: wa,
                    frac: fa,
                },
            ) if ww <= 8 && wa <= 8 && !w.tensor.sparse => {
                Some(2f64.powi(-(i32::from(fw) + i32::from(fa))) as f32)
            }
            _ => None,
        };
        // Gathering pays only for really sparse weights; moderately sparse ones are faster decoded densely.
        let sparse_kernel = w.tensor.sparse
            && (w.tensor.stored_elements as f64) < 0.3 * w.tensor.terms.numel as f64;
        let dense_decoded = fixed_path.is_none() && !sparse_kernel;
        let shape = LinearShape {
            m,
            n,
            k: kdim,
            integer_mxint8: integer_mxint8(w, act),
            dense_decoded,
        };
        let route = shape.route();
        // 8-bit fixed point on both sides: the integer panel kernels too, where the table has one.
        if let Some(y) = crate::cpu::panels::linear_fixed8(&self.kernels, x, m, w, bias, act, post)
        {
            return y;
        }
        if route == Route::IntegerMxint8 {
            let acts = self.quantize_mxint8_input(x, kdim, act);
            return self.linear_mxint8(&acts, m, w, bias, post);
        }
        let fixed_codes: Vec<u8> = match (fixed_path, act.encoding) {
            // 8 bits: the table's quantizer (vectorised; the panel route falls back here when a code is −128
            // and its kernel cannot take it).
            (Some(_), Encoding::Fixed { width: 8, frac }) => {
                let mut codes = vec![0i8; x.len()];
                (self.kernels.fixed8_codes)(x, frac, act.rounding, &mut codes);
                codes.into_iter().map(|c| c as u8).collect()
            }
            (Some(_), Encoding::Fixed { width, frac }) => x
                .iter()
                .map(|&v| {
                    mxrt_format::fixed::quantize(v, width, frac, act.rounding).unwrap_or(0) as i8
                        as u8
                })
                .collect(),
            _ => Vec::new(),
        };
        // Activations as the kernels want them: (fake-)quantized floats unless the fixed-point path takes codes.
        let mut quantized = Vec::new();
        if !act.is_none() && fixed_path.is_none() {
            quantized = x.to_vec();
            fake_quantize_rows(&mut quantized, kdim, act);
        }
        let xs: &[f32] = if quantized.is_empty() { x } else { &quantized };
        let row_kernel = RowKernel::choose(
            fixed_path.is_some(),
            sparse_kernel,
            m,
            w.tensor.encoding == Encoding::Mx(MxElem::Int8) && !w.tensor.sparse,
        );
        // Output of weight row `r` for input rows `rows`, handed to `put(i, value)`.
        let weight_row = |sc: &mut Scratch,
                          r: usize,
                          rows: std::ops::Range<usize>,
                          put: &mut dyn FnMut(usize, f32)| {
            match (row_kernel, fixed_path, w.mxint8_row(r)) {
                (RowKernel::FixedI8, Some(scale), _) => {
                    sc.codes.resize(kdim, 0);
                    w.fixed_i8_row(r, &mut sc.codes);
                    for i in rows {
                        let d = self
                            .kernels
                            .dot_i8
                            .dot(&fixed_codes[i * kdim..(i + 1) * kdim], &sc.codes);
                        put(i, d as f32 * scale + bias_of(r));
                    }
                }
                (RowKernel::SparseGather, _, _) => {
                    // Stored entries only: work proportional to the non-zeros, not to the row length.
                    w.sparse_row(r, &mut sc.cols, &mut sc.values);
                    for i in rows {
                        put(
                            i,
                            self.kernels.sparse_dot.dot(
                                &sc.values,
                                &sc.cols,
                                &xs[i * kdim..(i + 1) * kdim],
                            ) + bias_of(r),
                        );
                    }
                }
                (RowKernel::Mxint8InRegisters, _, Some((codes, scales))) => {
                    // Few activation rows: decode MXINT8 in registers instead of into a row buffer.
                    sc.scales.clear();
                    sc.scales.extend(
                        scales
                            .iter()
                            .map(|&s| mxrt_format::mx::scale_value(s) / 64.0),
                    );
                    for i in rows {
                        let x_i = &xs[i * kdim..(i + 1) * kdim];
                        put(
                            i,
                            self.kernels.mxint8_dot_f32.dot(codes, &sc.scales, x_i) + bias_of(r),
                        );
                    }
                }
                _ => {
                    let row = match w.f32_row(r) {
                        Some(row) => row,
                        None => {
                            sc.row.resize(kdim, 0.0);
                            w.decode_row(r, &mut sc.row);
                            &sc.row
                        }
                    };
                    for i in rows {
                        put(
                            i,
                            self.kernels.dot_f32.dot(row, &xs[i * kdim..(i + 1) * kdim])
                                + bias_of(r),
                        );
                    }
                }
            }
        };
        // One row against a small matrix (MLPs called per sample): each output straight from `weight_row`,
        // without the row grouping and transposition below (which give the same values).
        if route == Route::SingleRow {
            let mut sc = Scratch::new();
            let mut out = vec![0.0f32; n];
            for (r, o) in out.iter_mut().enumerate() {
                weight_row(&mut sc, r, 0..1, &mut |_, v| *o = v);
            }
            return finish(out);
        }
        // Few inputs per row (small MLPs): dot products of length k would be mostly horizontal sums, so the
        // weights are transposed into a packed [k, n] panel once and rows are multiplied by broadcasting.
        if route == Route::PackedSmallK {
            return self.linear_packed(xs, m, w, bias, post);
        }
        // Many rows: the weight matrix decoded into packed panels and multiplied by broadcasting, every
        // panel value reused across a block of rows (no horizontal sums, 16 FMAs per 10 loads). Packing
        // touches every weight once per call, so it pays only when many rows share it.
        if route == Route::PackedPanels {
            return self.linear_panels_f32(xs, m, w, bias, post);
        }
        // Fewer rows: the activations (m × k, cheap) are transposed instead, the weights read in place.
        if route == Route::ActivationPanels {
            return self.linear_activation_panels_f32(xs, m, w, bias, post);
        }
        // Weight rows r, r+1, r+2 (dense, read in place or decoded) against activation rows `rows` through
        // the register-blocked kernel, into `sc.out` ([rows, 3], bias included).
        let three_rows = |sc: &mut Scratch, r: usize, rows: std::ops::Range<usize>| {
            let x_rows = &xs[rows.start * kdim..rows.end * kdim];
            sc.out.clear();
            sc.out.resize(3 * rows.len(), 0.0);
            if let [Some(w0), Some(w1), Some(w2)] =
                [w.f32_row(r), w.f32_row(r + 1), w.f32_row(r + 2)]
            {
                (self.kernels.dot_f32_rows3)(x_rows, kdim, [w0, w1, w2], &mut sc.out);
            } else {
                sc.rows3.resize(3 * kdim, 0.0);
                for c in 0..3 {
                    w.decode_row(r + c, &mut sc.rows3[c * kdim..(c + 1) * kdim]);
                }
                let (w0, rest) = sc.rows3.split_at(kdim);
                let (w1, w2) = rest.split_at(kdim);
                (self.kernels.dot_f32_rows3)(x_rows, kdim, [w0, w1, w2], &mut sc.out);
            }
            for o in sc.out.chunks_mut(3) {
                for (c, v) in o.iter_mut().enumerate() {
                    *v += bias_of(r + c);
                }
            }
        };
        let parallel = shape.parallel();
        if route == Route::RowTiles {
            let mut out = vec![0.0f32; m * n];
            out.par_chunks_mut(ROW_TILE * n).enumerate().for_each_init(
                Scratch::new,
                |sc, (t, chunk)| {
                    let i0 = t * ROW_TILE;
                    let rows = i0..(i0 + ROW_TILE).min(m);
                    let mut r = 0;
                    if dense_decoded {
                        while r + 3 <= n {
                            three_rows(sc, r, rows.clone());
                            for (k, o) in sc.out.chunks(3).enumerate() {
                                chunk[k * n + r..k * n + r + 3].copy_from_slice(o);
                            }
                            r += 3;
                        }
                    }
                    for r in r..n {
                        weight_row(sc, r, rows.clone(), &mut |i, v| chunk[(i - i0) * n + r] = v);
                    }
                    if let Some(f) = post {
                        f.apply(chunk);
                    }
                },
            );
            return out;
        }
        // [n, m]: one contiguous chunk per group of three weight rows (the last group may be shorter).
        let mut out_t = vec![0.0f32; n * m];
        let group = |sc: &mut Scratch, (g, o): (usize, &mut [f32])| {
            let r = 3 * g;
            // With fewer than four activation rows the blocked kernel has nothing to share: plain dots.
            if dense_decoded && r + 3 <= n && m >= 4 {
                three_rows(sc, r, 0..m);
                for (k, v) in sc.out.chunks(3).enumerate() {
                    for (c, v) in v.iter().enumerate() {
                        o[c * m + k] = *v;
                    }
                }
            } else {
                for (c, o) in o.chunks_mut(m.max(1)).enumerate() {
                    weight_row(sc, r + c, 0..m, &mut |i, v| o[i] = v);
                }
            }
        };
        if parallel {
            out_t
                .par_chunks_mut(3 * m.max(1))
                .enumerate()
                .for_each_init(Scratch::new, group);
        } else {
            let mut sc = Scratch::new();
            out_t
                .chunks_mut(3 * m.max(1))
                .enumerate()
                .for_each(|go| group(&mut sc, go));
        }
        if n <= 1 || m <= 1 {
            return finish(out_t); // the same layout either way
        }
        let mut out = vec![0.0f32; m * n];
        (self.kernels.transpose_f32)(&out_t, m, n, m, &mut out, n);
        finish(out)
    }

    /// [`Cpu::linear`] through `gemm_f32_packed`: the weight matrix decoded once into a transposed panel
    /// (`k × n`, at most 64 × n floats), row blocks spread over the cores.
    fn linear_packed(
        &self,
        x: &[f32],
        m: usize,
        w: &WeightView<'_>,
        bias: Option<&[f32]>,
        post: Option<Elementwise>,
    ) -> Vec<f32> {
        const ROWS: usize = 256;
        let (n, k) = (w.rows(), w.cols());
        let stride = n.div_ceil(16) * 16;
        let mut packed = crate::cpu::buffers::AlignedBuffer::zeroed(k * stride);
        let wt = packed.as_mut_slice();
        let mut row = vec![0.0f32; k];
        for r in 0..n {
            w.decode_row(r, &mut row);
            for (t, v) in row.iter().enumerate() {
                wt[t * stride + r] = *v;
            }
        }
        let wt = packed.as_slice();
        let mut out = crate::cpu::buffers::take(m * n); // every element written below (n > 0)
        let block = |(b, o): (usize, &mut [f32])| {
            let rows = o.len() / n.max(1);
            (self.kernels.gemm_f32_packed)(
                &x[b * ROWS * k..(b * ROWS + rows) * k],
                rows,
                k,
                wt,
                n,
                o,
                n,
                crate::cpu::kernels::Epilogue::NONE,
            );
            add_bias_rows(o, bias);
            if let Some(f) = post {
                f.apply(o);
            }
        };
        if m * n * k >= PARALLEL_WORK && n > 0 {
            out.par_chunks_mut(ROWS * n).enumerate().for_each(block);
        } else if n > 0 {
            out.chunks_mut(ROWS * n).enumerate().for_each(block);
        }
        out
    }

    /// [`Cpu::linear`] for dense weights and a few dozen to a few hundred rows, as `gemm_f32_packed` with the
    /// roles swapped: each block of up to 64 activation rows is transposed into a packed `[k, 64]` panel
    /// (the layout `gemm_f32_packed` broadcasts against), and groups of [`WEIGHT_ROWS`] weight rows, read
    /// in place from the file (or decoded), are multiplied against it into a small tile (weight rows ×
    /// activation rows) that is transposed into the block's outputs with the bias. Nothing of the weight
    /// size is copied or packed per call; the blocks go to the cores (each walks all weight rows).
    fn linear_activation_panels_f32(
        &self,
        x: &[f32],
        m: usize,
        w: &WeightView<'_>,
        bias: Option<&[f32]>,
        post: Option<Elementwise>,
    ) -> Vec<f32> {
        /// Weight rows per kernel call: their rows (48 × k) and the tile (48 × 64 outputs) stay in cache.
        const WEIGHT_ROWS: usize = 48;
        let (n, k) = (w.rows(), w.cols());
        if n == 0 || k == 0 {
            return outputs_of_an_empty_product(m * n, bias, post);
        }
        let mut out = crate::cpu::buffers::take(m * n); // every element written below
        let threads = rayon::current_num_threads();
        let block_rows = (m.div_ceil(threads).div_ceil(16) * 16).clamp(16, 64);
        let block = |(b, o): (usize, &mut [f32])| {
            let rows = o.len() / n;
            let first = b * block_rows;
            let stride = rows.div_ceil(16) * 16;
            // [k, stride]: column i is activation row first + i; columns past `rows` stay zero.
            let mut panel = vec![0.0f32; k * stride];
            (self.kernels.transpose_f32)(
                &x[first * k..(first + rows) * k],
                k,
                rows,
                k,
                &mut panel,
                stride,
            );
            let mut tile = vec![0.0f32; WEIGHT_ROWS * rows];
            let mut decoded = Vec::new();
            for r0 in (0..n).step_by(WEIGHT_ROWS) {
                let r1 = (r0 + WEIGHT_ROWS).min(n);
                let weights = dense_rows(w, r0..r1, &mut decoded);
                (self.kernels.gemm_f32_packed)(
                    weights,
                    r1 - r0,
                    k,
                    &panel,
                    rows,
                    &mut tile,
                    rows,
                    crate::cpu::kernels::Epilogue::NONE,
                );
                (self.kernels.transpose_f32)(&tile, rows, r1 - r0, rows, &mut o[r0..], n);
            }
            add_bias_rows(o, bias);
            if let Some(f) = post {
                f.apply(o);
            }
        };
        if m * n * k >= PARALLEL_WORK {
            out.par_chunks_mut(block_rows * n)
                .enumerate()
                .for_each(block);
        } else {
            out.chunks_mut(block_rows * n).enumerate().for_each(block);
        }
        out
    }

    /// [`Cpu::linear`] for dense weights and many rows, as a blocked GEMM: the weight matrix is decoded once
    /// into transposed panels of `PANEL` weight rows (`k × PANEL` each, the layout of `gemm_f32_packed`),
    /// then blocks of activation rows go to the cores, each block walking every panel (block and panel stay
    /// in L2) and writing its outputs in place.
    fn linear_panels_f32(
        &self,
        x: &[f32],
        m: usize,
        w: &WeightView<'_>,
        bias: Option<&[f32]>,
        post: Option<Elementwise>,
    ) -> Vec<f32> {
        const PANEL: usize = 64;
        let (n, k) = (w.rows(), w.cols());
        if n == 0 || k == 0 {
            return outputs_of_an_empty_product(m * n, bias, post);
        }
        let mut out = crate::cpu::buffers::take(m * n); // every element written below
        let parallel = m * n * k >= PARALLEL_WORK;
        let panels = n.div_ceil(PANEL);
        let mut packed = crate::cpu::buffers::AlignedBuffer::zeroed(panels * k * PANEL);
        let pack = |(p, panel): (usize, &mut [f32])| {
            let (r0, r1) = (p * PANEL, ((p + 1) * PANEL).min(n));
            let stride = (r1 - r0).div_ceil(16) * 16;
            let mut decoded = Vec::new();
            let rows = dense_rows(w, r0..r1, &mut decoded);
            (self.kernels.transpose_f32)(rows, k, r1 - r0, k, panel, stride);
        };
        if parallel {
            packed
                .as_mut_slice()
                .par_chunks_mut(k * PANEL)
                .enumerate()
                .for_each(pack);
        } else {
            packed
                .as_mut_slice()
                .chunks_mut(k * PANEL)
                .enumerate()
                .for_each(pack);
        }
        let packed = packed.as_slice();
        // Row blocks: at most 256 rows (a block of x stays in L2), and enough blocks for every core.
        let threads = rayon::current_num_threads();
        let rows_per_block = (m.div_ceil(2 * threads).div_ceil(8) * 8).clamp(8, 256);
        let block = |(b, o): (usize, &mut [f32])| {
            let rows = o.len() / n;
            let xb = &x[b * rows_per_block * k..(b * rows_per_block + rows) * k];
            for (p, panel) in packed.chunks(k * PANEL).enumerate() {
                let (r0, r1) = (p * PANEL, ((p + 1) * PANEL).min(n));
                (self.kernels.gemm_f32_packed)(
                    xb,
                    rows,
                    k,
                    panel,
                    r1 - r0,
                    &mut o[r0..],
                    n,
                    crate::cpu::kernels::Epilogue::NONE,
                );
            }
            add_bias_rows(o, bias);
            if let Some(f) = post {
                f.apply(o);
            }
        };
        if parallel {
            out.par_chunks_mut(rows_per_block * n)
                .enumerate()
                .for_each(block);
        } else {
            out.chunks_mut(rows_per_block * n)
                .enumerate()
                .for_each(block);
        }
        out
    }

    /// [`Cpu::linear`] followed by exact-erf GELU. On the panel path (AVX2, AVX-VNNI, AVX-512, AMX) the GELU
    /// runs on each panel's outputs as soon as they exist (in cache) instead of in a second pass over the
    /// whole output; the values are the same either way (the same kernel on the same numbers).
    pub fn linear_gelu(
        &self,
        x: &[f32],
        m: usize,
        w: &WeightView<'_>,
        bias: Option<&[f32]>,
        act: ActQuant,
    ) -> Vec<f32> {
        if integer_mxint8(w, act) && self.kernels.mxint8_panel.is_some() {
            let acts = self.quantize_mxint8_input(x, w.cols(), act);
            return self.linear_mxint8(&acts, m, w, bias, Some(self.kernels.gelu_in_place));
        }
        let mut y = self.linear(x, m, w, bias, act);
        self.gelu(&mut y);
        y
    }

    /// A feed-forward block `linear(gelu(linear(x, up)), down)`. Where both layers are MXINT8 × MXINT8 on
    /// a panel kernel and the input has at least two panels per core, it runs fused one panel at a time
    /// (`panels::feed_forward_panels`, bit for bit the unfused result); otherwise as the two ops.
    #[allow(clippy::too_many_arguments)]
    pub fn feed_forward_gelu(
        &self,
        x: &[f32],
        m: usize,
        up: (&WeightView<'_>, Option<&[f32]>, ActQuant),
        down: (&WeightView<'_>, Option<&[f32]>, ActQuant),
    ) -> Vec<f32> {
        let panels = m.div_ceil(crate::cpu::kernels::reference::PANEL_ROWS);
        let fused = integer_mxint8(up.0, up.2)
            && integer_mxint8(down.0, down.2)
            && down.0.cols() == up.0.rows()
            && up.0.cols() > 0
            && panels >= 2 * rayon::current_num_threads();
        if let (Some(kernel), true) = (self.kernels.mxint8_panel, fused) {
            let acts = self.quantize_mxint8_input(x, up.0.cols(), up.2);
            let ff = crate::cpu::panels::FeedForward {
                up: up.0,
                up_bias: up.1,
                down: down.0,
                down_bias: down.1,
                gelu: self.kernels.gelu_in_place,
                quantize_panel: self.kernels.mxint8_quantize_panel,
                down_rounding: down.2.rounding,
            };
            return crate::cpu::panels::feed_forward_panels(kernel, &acts, m, &ff);
        }
        let hidden = self.linear_gelu(x, m, up.0, up.1, up.2);
        let out = self.linear(&hidden, m, down.0, down.1, down.2);
        crate::cpu::buffers::recycle(hidden);
        out
    }

    /// Three linear layers on the same input (attention's query, key and value): with MXINT8 activations
    /// and MXINT8 weights the input is quantized once for all three; otherwise three [`Cpu::linear`] calls.
    pub fn linear3(
        &self,
        x: &[f32],
        m: usize,
        layers: [(&WeightView<'_>, Option<&[f32]>); 3],
        act: ActQuant,
    ) -> [Vec<f32>; 3] {
        let kdim = layers[0].0.cols();
        let shared = layers
            .iter()
            .all(|(w, _)| w.cols() == kdim && integer_mxint8(w, act));
        if !shared {
            return layers.map(|(w, b)| self.linear(x, m, w, b, act));
        }
        let acts = self.quantize_mxint8_input(x, kdim, act);
        layers.map(|(w, b)| self.linear_mxint8(&acts, m, w, b, None))
    }

    /// MXINT8 activation codes (rows padded to whole blocks) and each block's f32 factor, in the layout the
    /// kernel table's integer path reads: rows, or panels of 16 rows where it has `mxint8_panel`.
    fn quantize_mxint8_input(&self, x: &[f32], kdim: usize, act: ActQuant) -> MxActs {
        let (mut codes, mut factors) = (Vec::new(), Vec::new());
        if let Some(kernel) = self.kernels.mxint8_panel {
            let start = quantize_mxint8_panels(
                x,
                kdim,
                act.rounding,
                (self.kernels.mxint8_quantize_panel, kernel.code_flip()),
                &mut codes,
                &mut factors,
            );
            return MxActs {
                codes,
                factors,
                panels: true,
                start,
            };
        }
        let mut scales = Vec::new();
        quantize_mxint8_rows(
            x,
            kdim,
            act.rounding,
            self.kernels.mxint8_quantize_block,
            &mut codes,
            &mut scales,
        );
        factors.extend(
            scales
                .iter()
                .map(|&s| crate::cpu::kernels::reference::act_scale(s)),
        );
        MxActs {
            codes,
            factors,
            panels: false,
            start: 0,
        }
    }

    /// The MXINT8 × MXINT8 integer path of [`Cpu::linear`]: activations already quantized (`a_codes`,
    /// `a_scales` per block). Weight rows go two at a time through `mxint8_rows2`; tiles of `ROW_TILE`
    /// activation rows are spread over the cores when there are many rows, weight-row pairs otherwise.
    fn linear_mxint8(
        &self,
        acts: &MxActs,
        m: usize,
        w: &WeightView<'_>,
        bias: Option<&[f32]>,
        post: Option<Elementwise>,
    ) -> Vec<f32> {
        if let (Some(kernel), true) = (self.kernels.mxint8_panel, acts.panels) {
            return crate::cpu::panels::linear_mxint8_panels(kernel, acts, m, w, bias, post);
        }
        if let Some(f) = post {
            let mut out = self.linear_mxint8(acts, m, w, bias, None);
            f.apply(&mut out);
            return out;
        }
        let (a_codes, a_scales) = (&acts.codes[..], &acts.factors[..]);
        let (n, kdim) = (w.rows(), w.cols());
        let bpr = kdim.div_ceil(32);
        // Every element is stored below (the row kernels store, they do not accumulate). Taking the buffer
        // from the pool matters for memory as much as for speed: the dead f32 tensors this path recycles
        // (the FFN's GELU output among them) are reused here instead of piling up in the pool.
        let mut out = crate::cpu::buffers::take(m * n);
        if n == 0 || m == 0 {
            return out;
        }
        // Weight rows r and r+1 against activation rows `rows`, written into `o[(i - rows.start) * ldo + c]`
        // (`o` starts at column r). An odd last weight row goes through the one-row kernel and a buffer.
        let pair = |sc: &mut Scratch,
                    r: usize,
                    rows: std::ops::Range<usize>,
                    o: &mut [f32],
                    ldo: usize| {
            let (i0, i1) = (rows.start, rows.end);
            let (a, s) = (
                &a_codes[i0 * bpr * 32..i1 * bpr * 32],
                &a_scales[i0 * bpr..i1 * bpr],
            );
            let (c0, s0) = w.mxint8_row(r).unwrap_or((&[], &[]));
            sc.scales.clear();
            sc.scales
                .extend(s0.iter().map(|&s| mxrt_format::mx::scale_value(s)));
            if r + 1 < n {
                let (c1, s1) = w.mxint8_row(r + 1).unwrap_or((&[], &[]));
                sc.scales
                    .extend(s1.iter().map(|&s| mxrt_format::mx::scale_value(s)));
                let (f0, f1) = sc.scales.split_at(s0.len());
                (self.kernels.mxint8_rows2)(a, s, rows.len(), [(c0, f0), (c1, f1)], o, ldo);
            } else {
                sc.out.clear();
                sc.out.resize(rows.len(), 0.0);
                (self.kernels.mxint8_rows)(a, s, c0, &sc.scales, &mut sc.out);
                for (k, v) in sc.out.iter().enumerate() {
                    o[k * ldo] = *v;
                }
            }
        };
        let parallel = n * m * kdim >= PARALLEL_WORK;
        if parallel && m >= 2 * ROW_TILE {
            // Tiles of activation rows across the cores; each walks all weight-row pairs.
            out.par_chunks_mut(ROW_TILE * n).enumerate().for_each_init(
                Scratch::new,
                |sc, (t, chunk)| {
                    let i0 = t * ROW_TILE;
                    let rows = i0..(i0 + ROW_TILE).min(m);
                    for r in (0..n).step_by(2) {
                        pair(sc, r, rows.clone(), &mut chunk[r..], n);
                    }
                    add_bias_rows(chunk, bias);
                },
            );
            return out;
        }
        // Few activation rows: pairs of weight rows across the cores, each into its own [m, 2] block, then
        // copied into place.
        let pairs = n.div_ceil(2);
        let mut blocks = vec![0.0f32; pairs * 2 * m];
        let per_pair = |sc: &mut Scratch, (p, o): (usize, &mut [f32])| pair(sc, 2 * p, 0..m, o, 2);
        if parallel {
            blocks
                .par_chunks_mut(2 * m)
                .enumerate()
                .for_each_init(Scratch::new, per_pair);
        } else {
            let mut sc = Scratch::new();
            blocks
                .chunks_mut(2 * m)
                .enumerate()
                .for_each(|po| per_pair(&mut sc, po));
        }
        for (p, block) in blocks.chunks(2 * m).enumerate() {
            let width = (n - 2 * p).min(2);
            for i in 0..m {
                out[i * n + 2 * p..i * n + 2 * p + width]
                    .copy_from_slice(&block[2 * i..2 * i + width]);
            }
        }
        add_bias_rows(&mut out, bias);
        out
    }

    /// Row-wise LayerNorm over `cols` after adding `residual` (if any): `(x - mean) / sqrt(var + eps) * gamma + beta` (biased variance).
    pub fn layer_norm(
        &self,
        x: &mut [f32],
        residual: Option<&[f32]>,
        cols: usize,
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
    ) {
        let f = self.kernels.layer_norm_row;
        let cols = cols.max(1);
        match residual {
            Some(r) if x.len() * 8 >= PARALLEL_WORK => x
                .par_chunks_mut(cols)
                .zip(r.par_chunks(cols))
                .for_each(|(row, r)| f(row, Some(r), gamma, beta, eps)),
            Some(r) => x
                .chunks_mut(cols)
                .zip(r.chunks(cols))
                .for_each(|(row, r)| f(row, Some(r), gamma, beta, eps)),
            None if x.len() * 8 >= PARALLEL_WORK => x
                .par_chunks_mut(cols)
                .for_each(|row| f(row, None, gamma, beta, eps)),
            None => x
                .chunks_mut(cols)
                .for_each(|row| f(row, None, gamma, beta, eps)),
        }
    }

    /// `max(v, 0)` for every value, written as a select the compiler vectorizes (NaN gives 0, as `f32::max`).
    pub fn relu(&self, x: &mut [f32]) {
        relu_in_place(x);
    }

    /// Exact GELU: `0.5 x (1 + erf(x / √2))`.
    pub fn gelu(&self, x: &mut [f32]) {
        let f = self.kernels.gelu_in_place;
        if x.len() * 16 >= PARALLEL_WORK {
            x.par_chunks_mut(4096).for_each(|chunk| f.apply(chunk));
        } else {
            f.apply(x);
        }
    }

    /// GELU's tanh approximation ([`crate::ops::gelu_tanh`]): scalar `tanh` (the models that use it are
    /// few; the exact GELU has the vector kernels), spread over the cores like [`Self::gelu`].
    pub fn gelu_tanh(&self, x: &mut [f32]) {
        let f = |chunk: &mut [f32]| {
            chunk
                .iter_mut()
                .for_each(|v| *v = crate::ops::gelu_tanh(*v))
        };
        if x.len() * 16 >= PARALLEL_WORK {
            x.par_chunks_mut(4096).for_each(f);
        } else {
            f(x);
        }
    }

    /// Softmax over each `cols`-wide row.
    pub fn softmax_rows(&self, x: &mut [f32], cols: usize) {
        let cols = cols.max(1);
        for row in x.chunks_mut(cols) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            row.iter_mut().for_each(|v| *v -= max);
        }
        // One call over every row: narrow rows (an MLP's 5 classes) would otherwise each fall to the
        // kernel's scalar remainder.
        self.kernels.exp_in_place.apply(x);
        for row in x.chunks_mut(cols) {
            let sum: f32 = row.iter().sum();
            row.iter_mut().for_each(|v| *v /= sum);
        }
    }
}

/// Per-worker buffers of the linear op, made once per worker (not per weight row).
struct Scratch {
    /// A decoded weight row.
    row: Vec<f32>,
    /// Fixed-point weight codes of a row.
    codes: Vec<u8>,
    /// A sparse row's columns and values.
    cols: Vec<u32>,
    values: Vec<f32>,
    /// MXINT8 weight scales of a row and the outputs for a tile of input rows.
    scales: Vec<f32>,
    /// Three decoded weight rows.
    rows3: Vec<f32>,
    out: Vec<f32>,
}

impl Scratch {
    /// Empty: buffers grow on first use (small ops then allocate only what they touch).
    fn new() -> Scratch {
        Scratch {
            row: Vec::new(),
            codes: Vec::new(),
            cols: Vec::new(),
            values: Vec::new(),
            scales: Vec::new(),
            rows3: Vec::new(),
            out: Vec::new(),
        }
    }
}

/// The integer MXINT8 × MXINT8 path applies: MXINT8 activations and dense MXINT8 weights with rows.
pub(crate) fn integer_mxint8(w: &WeightView<'_>, act: ActQuant) -> bool {
    act.encoding == Encoding::Mx(MxElem::Int8) && w.rows() > 0 && w.mxint8_row(0).is_some()
}

/// Weight rows `rows` as one `[rows.len(), cols]` matrix: read in place where the file stores them so,
/// else decoded into `decoded`.
fn dense_rows<'a>(
    w: &'a WeightView<'_>,
    rows: std::ops::Range<usize>,
    decoded: &'a mut Vec<f32>,
) -> &'a [f32] {
    if let Some(in_place) = w.f32_rows(rows.clone()) {
        return in_place;
    }
    let k = w.cols();
    decoded.resize(rows.len() * k, 0.0);
    for (r, d) in rows.zip(decoded.chunks_exact_mut(k.max(1))) {
        w.decode_row(r, d);
    }
    decoded
}

/// ReLU in place: `max(v, 0)`, NaN and −0 to +0.
pub(crate) fn relu_in_place(x: &mut [f32]) {
    x.iter_mut()
        .for_each(|v| *v = if *v > 0.0 { *v } else { 0.0 });
}

/// [`relu_in_place`] as a post-op for [`Cpu::linear_then`].
pub(crate) const RELU: Elementwise = Elementwise::whole(relu_in_place);
