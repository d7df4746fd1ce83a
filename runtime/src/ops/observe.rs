//! A backend that shows each linear layer's input to a callback before the backend underneath runs the layer:
//! what calibration measures (the range of every layer's activations on real data). It fuses nothing the
//! layers' inputs would hide in (a feed-forward block runs as its two linear layers), so every linear layer
//! of a graph is seen, by the name its recipe uses.

use std::cell::RefCell;

use super::{Activation, Affine, Backend, Embeddings, Linear, Norm, Pooling, TokenBatch};
use crate::error::Result;

/// The callback: layer names (the layers that share this input: query, key and value share one) and the
/// input, `[rows, in]` row-major.
pub type Seen<'a> = dyn FnMut(&[&str], &[f32]) + 'a;

/// `inner`, with every linear layer's input shown to `seen` first.
pub struct Observed<'a, 'f, B: Backend> {
    inner: &'a B,
    seen: RefCell<&'a mut Seen<'f>>,
}

impl<'a, 'f, B: Backend> Observed<'a, 'f, B> {
    pub fn new(inner: &'a B, seen: &'a mut Seen<'f>) -> Self {
        Observed {
            inner,
            seen: RefCell::new(seen),
        }
    }

    fn show(&self, x: &B::Tensor, names: &[&str]) -> Result<()> {
        let values = self.inner.output(x)?;
        (self.seen.borrow_mut())(names, &values);
        Ok(())
    }
}

impl<B: Backend> Backend for Observed<'_, '_, B> {
    type Tensor = B::Tensor;

    fn input(&self, x: &[f32]) -> Result<Self::Tensor> {
        self.inner.input(x)
    }
    fn output(&self, x: &Self::Tensor) -> Result<Vec<f32>> {
        self.inner.output(x)
    }
    fn embeddings(&self, e: &Embeddings, batch: &TokenBatch, eps: f32) -> Result<Self::Tensor> {
        self.inner.embeddings(e, batch, eps)
    }
    fn linear(&self, x: &Self::Tensor, rows: usize, layer: &Linear) -> Result<Self::Tensor> {
        self.show(x, &[&layer.name])?;
        self.inner.linear(x, rows, layer)
    }
    fn linear3(
        &self,
        x: &Self::Tensor,
        rows: usize,
        layers: [&Linear; 3],
    ) -> Result<[Self::Tensor; 3]> {
        self.show(x, &layers.map(|l| l.name.as_str()))?;
        self.inner.linear3(x, rows, layers)
    }
    fn add_layer_norm(
        &self,
        x: Self::Tensor,
        residual: Option<&Self::Tensor>,
        norm: &Norm,
        eps: f32,
    ) -> Result<Self::Tensor> {
        self.inner.add_layer_norm(x, residual, norm, eps)
    }
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
    ) -> Result<Self::Tensor> {
        self.inner.attention(q, k, v, mask, batch, seq, heads, dim)
    }
    fn activation(&self, x: Self::Tensor, f: Activation) -> Result<Self::Tensor> {
        self.inner.activation(x, f)
    }
    // feed_forward: the trait's default, the two linear layers one after the other, both seen.
    fn leaky_relu(&self, x: Self::Tensor, slope: f32) -> Result<Self::Tensor> {
        self.inner.leaky_relu(x, slope)
    }
    fn recycle(&self, x: Self::Tensor) {
        self.inner.recycle(x)
    }
    fn linear_activation(
        &self,
        x: &Self::Tensor,
        rows: usize,
        layer: &Linear,
        f: Activation,
    ) -> Result<Self::Tensor> {
        self.show(x, &[&layer.name])?;
        self.inner.linear_activation(x, rows, layer, f)
    }
    fn first_tokens(
        &self,
        x: &Self::Tensor,
        batch: usize,
        seq: usize,
        width: usize,
    ) -> Result<Self::Tensor> {
        self.inner.first_tokens(x, batch, seq, width)
    }
    fn pool_sentences(
        &self,
        x: &Self::Tensor,
        mask: &[u8],
        batch: usize,
        seq: usize,
        width: usize,
        pooling: &Pooling,
        normalize: bool,
    ) -> Result<Self::Tensor> {
        self.inner
            .pool_sentences(x, mask, batch, seq, width, pooling, normalize)
    }
    fn affine(&self, x: Self::Tensor, width: usize, a: &Affine) -> Result<Self::Tensor> {
        self.inner.affine(x, width, a)
    }
    fn softmax_rows(&self, x: Self::Tensor, width: usize) -> Result<Self::Tensor> {
        self.inner.softmax_rows(x, width)
    }
    // row_chain: the trait's default, the MLP's ops one by one through this backend, linear layers seen.
}
