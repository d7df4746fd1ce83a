//! The op set: the [`Backend`] trait the graphs are written against, a small set of ops on activation tensors
//! that live wherever the backend keeps them (host memory for the CPU, device buffers for wgpu and CUDA), and
//! the ops' argument types (module `args`, re-exported here). A backend implements these ops, never a model
//! (`../shared/DESIGN.md`).

mod args;
pub mod observe;

pub use args::{
    ActQuant, Affine, Embeddings, Linear, Norm, Parameters, Pooling, RowOp, TokenBatch,
};

use crate::error::{InputError, Result};

/// An element-wise activation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU `0.5 x (1 + erf(x / √2))`.
    Gelu,
    /// GELU's tanh approximation `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))` (Hugging Face's `gelu_new`,
    /// `gelu_pytorch_tanh`), computed by [`gelu_tanh`] on the host.
    GeluTanh,
    Tanh,
    Relu,
}

/// GELU's tanh approximation of one value: the definition every backend's kernel computes.
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
}

/// The ops of the BERT and MLP graphs. Tensors are row-major `[rows, cols]` f32 activations; the graph
/// knows their shapes and passes them along.
pub trait Backend {
    type Tensor;

    /// A host array as a tensor (MLP features).
    fn input(&self, x: &[f32]) -> Result<Self::Tensor>;
    /// The tensor's values on the host (GPU backends submit their recorded work here and wait).
    fn output(&self, x: &Self::Tensor) -> Result<Vec<f32>>;

    /// BERT embeddings: word + position + token type rows gathered from the tables, then LayerNorm.
    fn embeddings(&self, e: &Embeddings, batch: &TokenBatch, eps: f32) -> Result<Self::Tensor>;
    /// `quant(x) · Wᵀ + b` for `x: [rows, in]`.
    fn linear(&self, x: &Self::Tensor, rows: usize, layer: &Linear) -> Result<Self::Tensor>;
    /// Three linear layers on one input (query, key, value): backends may quantize the input once.
    fn linear3(
        &self,
        x: &Self::Tensor,
        rows: usize,
        layers: [&Linear; 3],
    ) -> Result<[Self::Tensor; 3]>;
    /// `LayerNorm(x + residual)` (or of `x` alone), row-wise over the norm's width.
    fn add_layer_norm(
        &self,
        x: Self::Tensor,
        residual: Option<&Self::Tensor>,
        norm: &Norm,
        eps: f32,
    ) -> Result<Self::Tensor>;
    /// Masked multi-head self-attention: `q`, `k`, `v` are `[batch * seq, heads * dim]`, `mask` `[batch, seq]`
    /// (1 = token, 0 = padding: padded keys get no weight).
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        v: &Self::Tensor,
        mask: &[u8],
        batch: usize,
        seq: usize,
        heads: usize,
        dim: usize,
    ) -> Result<Self::Tensor>;
    fn activation(&self, x: Self::Tensor, f: Activation) -> Result<Self::Tensor>;
    /// A feed-forward block, `linear(f(linear(x, up)), down)`; a backend may fuse it (the CPU runs it one
    /// panel of rows at a time so the wide intermediate never leaves the cache).
    fn feed_forward(
        &self,
        x: &Self::Tensor,
        rows: usize,
        up: &Linear,
        f: Activation,
        down: &Linear,
    ) -> Result<Self::Tensor> {
        let hidden = self.linear_activation(x, rows, up, f)?;
        let out = self.linear(&hidden, rows, down)?;
        self.recycle(hidden);
        Ok(out)
    }
    /// `x` where `x ≥ 0`, `slope · x` elsewhere (PyTorch's `LeakyReLU`), element-wise. By default on the host,
    /// through [`Backend::output`] and [`Backend::input`]: the GPU backends take that round trip for the few
    /// MLPs with this op; the CPU computes it in place.
    fn leaky_relu(&self, x: Self::Tensor, slope: f32) -> Result<Self::Tensor> {
        let mut v = self.output(&x)?;
        self.recycle(x);
        leaky_relu_in_place(&mut v, slope);
        self.input(&v)
    }
    /// A tensor the graph no longer needs; a backend may keep its memory for the next op.
    fn recycle(&self, x: Self::Tensor) {
        drop(x);
    }
    /// `activation(linear(x))`; a backend may fuse the two (the CPU applies GELU while outputs are in cache).
    fn linear_activation(
        &self,
        x: &Self::Tensor,
        rows: usize,
        layer: &Linear,
        f: Activation,
    ) -> Result<Self::Tensor> {
        let y = self.linear(x, rows, layer)?;
        self.activation(y, f)
    }
    /// Row 0 of each sequence: `[batch * seq, width]` → `[batch, width]`.
    fn first_tokens(
        &self,
        x: &Self::Tensor,
        batch: usize,
        seq: usize,
        width: usize,
    ) -> Result<Self::Tensor>;
    /// Sentence embeddings: masked mean, CLS or masked max over each sequence, optionally L2-normalised.
    #[allow(clippy::too_many_arguments)]
    fn pool_sentences(
        &self,
        x: &Self::Tensor,
        mask: &[u8],
        batch: usize,
        seq: usize,
        width: usize,
        pooling: &Pooling,
        normalize: bool,
    ) -> Result<Self::Tensor>;
    /// `x * scale + shift` per column (folded BatchNorm).
    fn affine(&self, x: Self::Tensor, width: usize, a: &Affine) -> Result<Self::Tensor>;
    /// `x * scale + shift` per column as a new tensor, `x` left as it is (a layer's input channel scales,
    /// when the unscaled input is still needed). By default a copy (`first_tokens` over sequences of one
    /// row: every row) and [`Backend::affine`]; the CPU does it in one pass.
    fn affine_copy(
        &self,
        x: &Self::Tensor,
        rows: usize,
        width: usize,
        a: &Affine,
    ) -> Result<Self::Tensor> {
        let copy = self.first_tokens(x, rows, 1, width)?;
        self.affine(copy, width, a)
    }
    /// Softmax over each `width`-wide row.
    fn softmax_rows(&self, x: Self::Tensor, width: usize) -> Result<Self::Tensor>;
    /// A chain of row-wise ops on `x: [rows, inputs]` (checked to hold `rows * inputs` values). Rows are
    /// independent, so a backend may split the batch or run a prepared form of the chain (the CPU does both);
    /// every way gives the values of `run_row_ops` (the one MLP forward pass).
    fn row_chain(&self, ops: &[RowOp], inputs: usize, x: &[f32], rows: usize) -> Result<Vec<f32>>
    where
        Self: Sized,
    {
        run_row_ops(self, ops, inputs, x, rows)
    }
}

/// [`Backend::leaky_relu`] on host values: the one definition every backend computes.
pub fn leaky_relu_in_place(x: &mut [f32], slope: f32) {
    for v in x {
        if *v < 0.0 {
            *v *= slope;
        }
    }
}

/// The row-wise chain op by op: the one MLP forward pass. `x` must hold `rows * inputs` values.
pub fn run_row_ops<B: Backend>(
    be: &B,
    ops: &[RowOp],
    inputs: usize,
    x: &[f32],
    rows: usize,
) -> Result<Vec<f32>> {
    if x.len() != rows * inputs {
        return Err(InputError::FeatureCount {
            rows,
            inputs,
            got: x.len(),
        }
        .into());
    }
    let mut cur = be.input(x)?;
    let mut width = inputs;
    let mut ops = ops.iter().peekable();
    while let Some(op) = ops.next() {
        cur = match op {
            RowOp::Linear(l) => {
                width = l.bias.len();
                // A linear layer followed by ReLU goes to the backend as one op (it may fuse them).
                let y = if matches!(ops.peek(), Some(RowOp::Relu)) {
                    ops.next();
                    be.linear_activation(&cur, rows, l, Activation::Relu)?
                } else {
                    be.linear(&cur, rows, l)?
                };
                be.recycle(cur);
                y
            }
            RowOp::Affine(a) => be.affine(cur, width, a)?,
            RowOp::Relu => be.activation(cur, Activation::Relu)?,
            RowOp::LeakyRelu(slope) => be.leaky_relu(cur, *slope)?,
            RowOp::Softmax => be.softmax_rows(cur, width)?,
        };
    }
    be.output(&cur)
}

#[cfg(test)]
mod tests {
    /// torch.nn.functional.gelu(x, approximate="tanh") at these points (torch 2.15, f32); the exact GELU
    /// differs from it by up to 4e-4 here, so a backend computing the wrong one fails.
    #[test]
    fn gelu_tanh_matches_torch_approximate_tanh() {
        let points = [
            (-3.0, -0.003_637_433),
            (-1.0, -0.158_808),
            (0.0, 0.0),
            (0.5, 0.345_714),
            (1.0, 0.841_192),
            (3.0, 2.996_362_7),
            (10.0, 10.0),
        ];
        for (x, want) in points {
            let got = super::gelu_tanh(x);
            assert!(
                (got - want).abs() <= 1e-6,
                "gelu_tanh({x}) = {got}, torch {want}"
            );
        }
    }
}
