//! The CPU backend: the [`Backend`] ops on host vectors, through the kernels of [`Cpu`] with weights read in
//! place from the mapped file.
//!
//! - `frame`: the linear op and the other row ops over a kernel table; `attention`: multi-head attention;
//!   `routes`: which way the linear op computes a product, a table of named strategies chosen by shape
//!   and encoding;
//! - `panels`: the MXINT8 panel paths (linear and fused feed-forward, 16 rows at a time);
//!   `panel_weights`: a weight matrix as those kernels read it; `prepared`: what they need from each
//!   matrix that is worth deriving once, at open;
//! - `rows`: the parallel threshold and bias epilogue all routes share; `quant`: activation quantizers;
//!   `buffers`: reuse of activation buffers; `workers`: keeping the thread pool's workers awake during an
//!   inference; `small_chain`: small row-op chains with weights transposed at open;
//! - `kernels`: the kernel tables, one file per instruction-set tier.

mod affine;
mod attention;
pub(crate) mod buffers;
pub(crate) mod frame;
pub(crate) mod kernels;
pub(crate) mod panel_weights;
pub(crate) mod panels;
pub(crate) mod prepared;
pub(crate) mod quant;
pub(crate) mod routes;
pub(crate) mod rows;
pub(crate) mod small_chain;
pub(crate) mod workers;

pub use frame::Cpu;

use crate::error::Result;
use crate::ops::{
    run_row_ops, Activation, Affine, Backend, Embeddings, Linear, Norm, Pooling, RowOp, TokenBatch,
};
use crate::weights::{TensorRef, WeightView};
use rows::PARALLEL_WORK;
use small_chain::SmallChain;

/// The most rows per block when a row-op chain (an MLP batch) is split (the widest JSC activation block,
/// 1024 × 64 floats, is 256 KiB: inside L2).
const CHAIN_BLOCK_ROWS: usize = 1024;

/// The most rows per block of the small-chain form: its steps are separate passes over the block (each
/// layer's product with its bias and ReLU, then any other op), so smaller blocks keep them in L1/L2.
/// jsc-3layer (FP32), batch 65,536, 2 threads, Sapphire Rapids: 128 rows 2.59 ms, 256 2.50, 512 2.64,
/// 1,024 2.60.
const SMALL_CHAIN_BLOCK_ROWS: usize = 256;

/// Multiply-adds per row of a row-op chain on `inputs` features (its linear layers).
fn chain_work_per_row(ops: &[RowOp], inputs: usize) -> usize {
    let mut width = inputs;
    let mut work = 0usize;
    for op in ops {
        if let RowOp::Linear(l) = op {
            work = work.saturating_add(width.saturating_mul(l.bias.len()));
            width = l.bias.len();
        }
    }
    work
}

/// One inference's view of the CPU backend: the kernel table, the mapped file's bytes and what was prepared
/// at open: a small row-op chain's batch-1 form, the panel kernels' per-block values.
pub struct CpuExec<'a> {
    pub cpu: &'a Cpu,
    pub bytes: &'a [u8],
    pub small_chain: Option<&'a SmallChain>,
    pub panels: Option<&'a prepared::PreparedPanels>,
}

impl CpuExec<'_> {
    /// The weight matrix `t` as the kernels read it: in the mapped file, with what was prepared for it.
    fn view<'t>(&'t self, t: &'t TensorRef) -> WeightView<'t> {
        match self.panels {
            Some(p) => p.view(t, self.bytes),
            None => t.view(self.bytes),
        }
    }
}

impl Backend for CpuExec<'_> {
    type Tensor = Vec<f32>;

    fn input(&self, x: &[f32]) -> Result<Vec<f32>> {
        Ok(x.to_vec())
    }

    fn output(&self, x: &Vec<f32>) -> Result<Vec<f32>> {
        Ok(x.clone())
    }

    fn embeddings(&self, e: &Embeddings, batch: &TokenBatch, eps: f32) -> Result<Vec<f32>> {
        // The first op of a BERT inference, which has dozens of parallel ops (except the tiniest inputs).
        if batch.batch * batch.seq >= 32 {
            workers::keep_workers_warm();
        }
        let (s, h) = (batch.seq, e.norm.gamma.len());
        let mut x = buffers::take(batch.batch * s * h); // every row written below
        let (word, pos, typ) = (
            e.word.view(self.bytes),
            e.position.view(self.bytes),
            e.token_type.view(self.bytes),
        );
        // Gathered from the tables where they lie (decoded row by row).
        let mut tmp = vec![0.0f32; h];
        for (r, out) in x.chunks_mut(h).enumerate() {
            word.decode_row(batch.ids[r] as usize, out);
            pos.decode_row(r % s, &mut tmp);
            out.iter_mut().zip(&tmp).for_each(|(o, t)| *o += t);
            typ.decode_row(batch.type_ids[r] as usize, &mut tmp);
            out.iter_mut().zip(&tmp).for_each(|(o, t)| *o += t);
        }
        self.add_layer_norm(x, None, &e.norm, eps)
    }

    fn linear(&self, x: &Vec<f32>, rows: usize, l: &Linear) -> Result<Vec<f32>> {
        Ok(self
            .cpu
            .linear(x, rows, &self.view(&l.weight), Some(&l.bias), l.act))
    }

    fn linear3(&self, x: &Vec<f32>, rows: usize, layers: [&Linear; 3]) -> Result<[Vec<f32>; 3]> {
        if layers.iter().any(|l| l.act != layers[0].act) {
            let [a, b, c] = layers;
            return Ok([
                self.linear(x, rows, a)?,
                self.linear(x, rows, b)?,
                self.linear(x, rows, c)?,
            ]);
        }
        let views = layers.map(|l| self.view(&l.weight));
        Ok(self.cpu.linear3(
            x,
            rows,
            [
                (&views[0], Some(layers[0].bias.as_slice())),
                (&views[1], Some(layers[1].bias.as_slice())),
                (&views[2], Some(layers[2].bias.as_slice())),
            ],
            layers[0].act,
        ))
    }

    fn add_layer_norm(
        &self,
        mut x: Vec<f32>,
        residual: Option<&Vec<f32>>,
        norm: &Norm,
        eps: f32,
    ) -> Result<Vec<f32>> {
        self.cpu.layer_norm(
            &mut x,
            residual.map(|r| r.as_slice()),
            norm.gamma.len(),
            &norm.gamma,
            &norm.beta,
            eps,
        );
        Ok(x)
    }

    fn attention(
        &self,
        q: &Vec<f32>,
        k: &Vec<f32>,
        v: &Vec<f32>,
        mask: &[u8],
        batch: usize,
        seq: usize,
        heads: usize,
        dim: usize,
    ) -> Result<Vec<f32>> {
        Ok(self.cpu.attention(q, k, v, mask, batch, seq, heads, dim))
    }

    fn activation(&self, mut x: Vec<f32>, f: Activation) -> Result<Vec<f32>> {
        match f {
            Activation::Gelu => self.cpu.gelu(&mut x),
            Activation::GeluTanh => self.cpu.gelu_tanh(&mut x),
            Activation::Tanh => x.iter_mut().for_each(|v| *v = v.tanh()),
            Activation::Relu => self.cpu.relu(&mut x),
        }
        Ok(x)
    }

    fn recycle(&self, x: Vec<f32>) {
        buffers::recycle(x);
    }

    fn leaky_relu(&self, mut x: Vec<f32>, slope: f32) -> Result<Vec<f32>> {
        crate::ops::leaky_relu_in_place(&mut x, slope);
        Ok(x)
    }

    fn feed_forward(
        &self,
        x: &Vec<f32>,
        rows: usize,
        up: &Linear,
        f: Activation,
        down: &Linear,
    ) -> Result<Vec<f32>> {
        if f != Activation::Gelu {
            let hidden = self.linear_activation(x, rows, up, f)?;
            return self.linear(&hidden, rows, down);
        }
        let (wu, wd) = (self.view(&up.weight), self.view(&down.weight));
        Ok(self.cpu.feed_forward_gelu(
            x,
            rows,
            (&wu, Some(&up.bias), up.act),
            (&wd, Some(&down.bias), down.act),
        ))
    }

    fn linear_activation(
        &self,
        x: &Vec<f32>,
        rows: usize,
        l: &Linear,
        f: Activation,
    ) -> Result<Vec<f32>> {
        if f == Activation::Relu {
            return Ok(self.cpu.linear_then(
                x,
                rows,
                &self.view(&l.weight),
                Some(&l.bias),
                l.act,
                Some(frame::RELU),
            ));
        }
        if f != Activation::Gelu {
            let y = self.linear(x, rows, l)?;
            return self.activation(y, f);
        }
        Ok(self
            .cpu
            .linear_gelu(x, rows, &self.view(&l.weight), Some(&l.bias), l.act))
    }

    fn first_tokens(&self, x: &Vec<f32>, batch: usize, seq: usize, h: usize) -> Result<Vec<f32>> {
        Ok((0..batch)
            .flat_map(|i| x[i * seq * h..i * seq * h + h].iter().copied())
            .collect())
    }

    fn pool_sentences(
        &self,
        x: &Vec<f32>,
        mask: &[u8],
        batch: usize,
        seq: usize,
        h: usize,
        pooling: &Pooling,
        normalize: bool,
    ) -> Result<Vec<f32>> {
        Ok(pool_sentences(x, mask, batch, seq, h, pooling, normalize))
    }

    fn affine(&self, mut x: Vec<f32>, width: usize, a: &Affine) -> Result<Vec<f32>> {
        debug_assert_eq!(a.scale.len(), width);
        self.cpu.affine(&mut x, &a.scale, &a.shift);
        Ok(x)
    }

    fn affine_copy(
        &self,
        x: &Vec<f32>,
        _rows: usize,
        width: usize,
        a: &Affine,
    ) -> Result<Vec<f32>> {
        debug_assert_eq!(a.scale.len(), width);
        let mut out = buffers::take(x.len());
        self.cpu.affine_into(x, &mut out, &a.scale, &a.shift);
        Ok(out)
    }

    fn softmax_rows(&self, mut x: Vec<f32>, width: usize) -> Result<Vec<f32>> {
        self.cpu.softmax_rows(&mut x, width);
        Ok(x)
    }

    fn row_chain(&self, ops: &[RowOp], inputs: usize, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        if let (1, Some(small)) = (rows, self.small_chain) {
            if x.len() == inputs {
                return Ok(small.forward(self.cpu, x));
            }
        }
        // A block of rows through the small-chain form (weights transposed at open) where it gives what
        // the general op path gives bit for bit: from 16 rows on every linear layer there sums in the
        // packed GEMM's order too (below, its dot-product routes sum in another order).
        let chain = |xb: &[f32], rows: usize| -> Result<Vec<f32>> {
            match self.small_chain {
                Some(small)
                    if rows >= routes::ACTIVATION_PANEL_ROWS && xb.len() == rows * inputs =>
                {
                    Ok(small.forward_rows(self.cpu, xb, rows))
                }
                _ => run_row_ops(self, ops, inputs, xb, rows), // its error names the sizes
            }
        };
        // Chains with less work than one parallel op run on the calling thread (each of their ops is then
        // below `PARALLEL_WORK` too, so none of them wakes the pool).
        let threads = rayon::current_num_threads();
        let work = rows.saturating_mul(chain_work_per_row(ops, inputs));
        if threads < 2 || work < PARALLEL_WORK || x.len() != rows * inputs {
            return chain(x, rows);
        }
        // Otherwise rows are independent, so blocks of rows run the whole chain each, with every
        // intermediate activation in cache (the same values as one pass over all rows: every op works row
        // by row). One split per call, on workers kept awake: letting each op of the chain split its own
        // rows instead woke a parked worker per op (jsc-3layer, batch 1024, 2 threads: slower than 1
        // thread, a third of the time in futex calls). The small-chain form takes four blocks per core, so
        // that a core another process holds for a while leaves its blocks to the others (each block of the
        // general path prepares its weights again: one block per core there).
        workers::keep_workers_warm();
        use rayon::prelude::*;
        let width = inputs.max(1);
        let (per_core, most) = match self.small_chain {
            Some(_) => (4, SMALL_CHAIN_BLOCK_ROWS),
            None => (1, CHAIN_BLOCK_ROWS),
        };
        let block = rows
            .div_ceil(per_core * threads)
            .next_multiple_of(16)
            .min(most);
        let blocks: Vec<Vec<f32>> = x
            .par_chunks(block * width)
            .map(|xb| chain(xb, xb.len() / width))
            .collect::<Result<_>>()?;
        Ok(blocks.concat())
    }
}

/// Sentence embeddings from the last hidden states: masked mean, CLS, or masked max; optionally L2-normalised.
fn pool_sentences(
    x: &[f32],
    mask: &[u8],
    b: usize,
    s: usize,
    h: usize,
    pooling: &Pooling,
    normalize: bool,
) -> Vec<f32> {
    let mut out = vec![0.0f32; b * h];
    for (i, o) in out.chunks_mut(h).enumerate() {
        let tokens = (0..s).filter(|&t| mask[i * s + t] != 0);
        match pooling {
            Pooling::Cls => o.copy_from_slice(&x[i * s * h..i * s * h + h]),
            Pooling::Mean => {
                let mut count = 0.0f32;
                for t in tokens {
                    o.iter_mut()
                        .zip(&x[(i * s + t) * h..][..h])
                        .for_each(|(a, v)| *a += v);
                    count += 1.0;
                }
                o.iter_mut().for_each(|a| *a /= count.max(1e-9));
            }
            Pooling::Max => {
                o.fill(f32::NEG_INFINITY);
                for t in tokens {
                    o.iter_mut()
                        .zip(&x[(i * s + t) * h..][..h])
                        .for_each(|(a, v)| *a = a.max(*v));
                }
            }
        }
        if normalize {
            // torch.nn.functional.normalize: x / max(||x||, 1e-12)
            let norm = o.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            o.iter_mut().for_each(|v| *v /= norm);
        }
    }
    out
}
