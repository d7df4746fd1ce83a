//! Small row-op chains (MLPs such as the JSC classifiers: 4,389 weights) without the general op machinery:
//! one sample, or a block of rows.
//! A per-sample call is a few hundred multiply-adds, so dispatch, allocation and 133 horizontally summed dot
//! products dominated it (1.35 µs). Here each linear layer's weights are decoded once, when the model is
//! opened, into the transposed panel `gemm_f32_packed` multiplies by broadcasting (at most [`MAX_WEIGHTS`]
//! values: 256 KiB), and a sample runs through two stack buffers. Only for f32 activations (no activation
//! quantization) and layers at most [`MAX_WIDTH`] wide; anything else takes the general path.

use crate::cpu::buffers;
use crate::cpu::kernels::{Epilogue, Kernels};
use crate::cpu::Cpu;
use crate::ops::RowOp;

/// Largest total weight count transposed at open.
const MAX_WEIGHTS: usize = 1 << 16;
/// Widest layer (inputs or outputs) the stack buffers hold.
const MAX_WIDTH: usize = 256;

enum Step {
    /// Transposed weights `[k, stride]` (stride = n rounded up to 16, zero columns past n) and the bias; for
    /// dense MXINT8 weights also the same panel as codes and block factors, which one sample reads instead.
    /// With `relu`: the ReLU that followed the layer in the chain, applied with its bias in one pass.
    Linear {
        wt: Vec<f32>,
        k: usize,
        n: usize,
        bias: Vec<f32>,
        mx: Option<MxPanel>,
        relu: bool,
    },
    Affine {
        scale: Vec<f32>,
        shift: Vec<f32>,
    },
    Relu,
    LeakyRelu(f32),
    Softmax,
}

/// A dense MXINT8 weight matrix as `gemv_mxint8_packed` reads it: codes `[k, stride]` and each column's block
/// factors `[k.div_ceil(32), stride]` (zero past n). A sample called now and then finds its weights out of
/// cache (the caller ran other work between calls), and a quarter of the bytes arrive sooner; decoding in
/// registers costs a little when they are in cache. jsc-3layer on Sapphire Rapids, one sample after
/// sweeping 1 MB / 4 MB through the cache: 0.47 → 0.42 / 1.07 → 0.85 µs; back to back 0.22 → 0.27 µs.
struct MxPanel {
    codes: Vec<u8>,
    factors: Vec<f32>,
}

impl MxPanel {
    /// The panel of `w` (`n` rows of `k`) if it is dense MXINT8.
    fn of(
        w: &crate::weights::WeightView<'_>,
        n: usize,
        k: usize,
        stride: usize,
    ) -> Option<MxPanel> {
        let (codes, scales) = w.mxint8_rows_all()?;
        let bpr = k.div_ceil(32);
        let (mut packed, mut factors) = (vec![0u8; k * stride], vec![0.0f32; bpr * stride]);
        for r in 0..n {
            for b in 0..bpr {
                // As the file decodes: q/64 · 2^e (`mxrt_format::rows`), exact.
                factors[b * stride + r] =
                    mxrt_format::mx::scale_value(scales[r * bpr + b]) * (1.0 / 64.0);
            }
            for t in 0..k {
                packed[t * stride + r] = codes[r * bpr * 32 + t];
            }
        }
        Some(MxPanel {
            codes: packed,
            factors,
        })
    }
}

pub struct SmallChain {
    steps: Vec<Step>,
    inputs: usize,
    outputs: usize,
}

impl SmallChain {
    /// The batch-1 form of the chain `ops` on `inputs`-wide rows if it qualifies (see the module docs),
    /// weights decoded from `bytes`.
    pub(crate) fn build(ops: &[RowOp], inputs: usize, bytes: &[u8]) -> Option<SmallChain> {
        let mut total = 0usize;
        let mut steps = Vec::with_capacity(ops.len());
        if inputs > MAX_WIDTH {
            return None;
        }
        let mut outputs = inputs;
        for op in ops {
            let step = match op {
                RowOp::Linear(l) => {
                    let w = l.weight.view(bytes);
                    let (n, k) = (w.rows(), w.cols());
                    total += n * k;
                    outputs = n;
                    if !l.act.is_none()
                        || n > MAX_WIDTH
                        || k > MAX_WIDTH
                        || total > MAX_WEIGHTS
                        || l.bias.len() != n
                    {
                        return None;
                    }
                    let stride = n.div_ceil(16) * 16;
                    let (mut wt, mut row) = (vec![0.0f32; k * stride], vec![0.0f32; k]);
                    for r in 0..n {
                        w.decode_row(r, &mut row);
                        for (t, v) in row.iter().enumerate() {
                            wt[t * stride + r] = *v;
                        }
                    }
                    Step::Linear {
                        wt,
                        k,
                        n,
                        bias: l.bias.clone(),
                        mx: MxPanel::of(&w, n, k, stride),
                        relu: false,
                    }
                }
                RowOp::Relu => {
                    if let Some(Step::Linear { relu, .. }) = steps.last_mut() {
                        if !*relu {
                            *relu = true; // the ReLU of the linear layer before it
                            continue;
                        }
                    }
                    Step::Relu
                }
                RowOp::Affine(a) => Step::Affine {
                    scale: a.scale.clone(),
                    shift: a.shift.clone(),
                },
                RowOp::LeakyRelu(s) => Step::LeakyRelu(*s),
                RowOp::Softmax => Step::Softmax,
            };
            steps.push(step);
        }
        Some(SmallChain {
            steps,
            inputs,
            outputs,
        })
    }

    /// One sample `x` (`inputs` values) → `outputs` values: the same ops as `ops::run_row_ops`, each linear layer
    /// through `gemv_f32_packed` (four partial sums per output: the general path's one-row routes sum in
    /// another order too).
    pub(crate) fn forward(&self, cpu: &Cpu, x: &[f32]) -> Vec<f32> {
        let kernels: &Kernels = &cpu.kernels;
        let (mut first, mut second) = ([0.0f32; MAX_WIDTH], [0.0f32; MAX_WIDTH]);
        // The buffers trade roles by swapping these references (swapping the arrays copied 2 KB per layer:
        // a fifth of a sample's time).
        let (mut a, mut b) = (&mut first, &mut second);
        a[..self.inputs].copy_from_slice(&x[..self.inputs]);
        let mut width = self.inputs;
        for step in &self.steps {
            match step {
                Step::Linear {
                    wt,
                    k,
                    n,
                    bias,
                    mx,
                    relu,
                } => {
                    match mx {
                        Some(p) => (kernels.gemv_mxint8_packed)(
                            &a[..*k],
                            *k,
                            &p.codes,
                            &p.factors,
                            *n,
                            &mut b[..*n],
                        ),
                        None => (kernels.gemv_f32_packed)(&a[..*k], *k, wt, *n, &mut b[..*n]),
                    }
                    (kernels.add_bias_rows)(&mut b[..*n], bias, *relu);
                    std::mem::swap(&mut a, &mut b);
                    width = *n;
                }
                Step::Affine { scale, shift } => cpu.affine(&mut a[..width], scale, shift),
                Step::Relu => cpu.relu(&mut a[..width]),
                Step::LeakyRelu(s) => crate::ops::leaky_relu_in_place(&mut a[..width], *s),
                Step::Softmax => cpu.softmax_rows(&mut a[..width], width),
            }
        }
        a[..self.outputs].to_vec()
    }

    /// `rows` samples (`x`: `[rows, inputs]`) → `[rows, outputs]`: the same ops on a block of rows, each
    /// linear layer one `gemm_f32_packed` over all of them with the weights transposed at open (the
    /// general path decodes and packs them on every call). The same values as [`SmallChain::forward`] row
    /// by row, and as the general path: every op works row by row, each sum in the same order.
    pub(crate) fn forward_rows(&self, cpu: &Cpu, x: &[f32], rows: usize) -> Vec<f32> {
        let kernels: &Kernels = &cpu.kernels;
        // Buffers from the pool (a block's activations pass the allocator's mmap threshold: fresh ones
        // would be mapped and faulted in for every step).
        let mut a = buffers::take(rows * self.inputs);
        a.copy_from_slice(&x[..rows * self.inputs]);
        let mut width = self.inputs;
        for step in &self.steps {
            match step {
                Step::Linear {
                    wt,
                    k,
                    n,
                    bias,
                    relu,
                    ..
                } => {
                    let mut b = buffers::take(rows * n); // every value written by the product
                                                         // The bias and the ReLU as the product stores its outputs.
                    let epilogue = Epilogue {
                        bias: Some(bias),
                        relu: *relu,
                    };
                    (kernels.gemm_f32_packed)(&a, rows, *k, wt, *n, &mut b, *n, epilogue);
                    buffers::recycle(std::mem::replace(&mut a, b));
                    width = *n;
                }
                Step::Affine { scale, shift } => cpu.affine(&mut a, scale, shift),
                Step::Relu => cpu.relu(&mut a),
                Step::LeakyRelu(s) => crate::ops::leaky_relu_in_place(&mut a, *s),
                Step::Softmax => cpu.softmax_rows(&mut a, width),
            }
        }
        // The outputs in a vector of their own (small: the classes), the pooled buffer back to the pool (a
        // caller keeping it would drain the pool, and every block would allocate afresh).
        let out = a[..rows * width].to_vec();
        buffers::recycle(a);
        out
    }
}
