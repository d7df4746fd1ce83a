//! MLPs: the ops of FORMAT.md section 9 (`linear`, `affine`, `relu`, `leaky_relu`, `softmax`) applied in order.

use mxrt_format::description::MlpOp;

use crate::error::Result;
use crate::graphs::params::Params;
use crate::ops::{ActQuant, Affine, Backend, Linear, Parameters, RowOp};

pub struct Mlp {
    pub inputs: usize,
    pub outputs: usize,
    pub labels: Vec<String>,
    pub(crate) ops: Vec<RowOp>,
}

impl Mlp {
    /// `ops` is the description's op list; shapes are checked along the chain.
    pub fn load(inputs: usize, labels: Vec<String>, ops: &[MlpOp], p: &Params<'_>) -> Result<Mlp> {
        let mut width = inputs;
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            let next = match op {
                MlpOp::Linear { name, weight, bias } => {
                    // The weight's rows give the layer's width; `matrix` checks its columns against the
                    // width so far.
                    let n = p
                        .tensors
                        .get(weight)
                        .and_then(|w| w.shape.first())
                        .copied()
                        .unwrap_or(0) as usize;
                    let linear = Linear {
                        name: name.clone(),
                        weight: p.matrix(weight, n, width)?,
                        bias: p.vector(bias, n)?,
                        act: p.activations.get(name).copied().unwrap_or(ActQuant::NONE),
                    };
                    // Channel scales (description 2.2) become the affines around the layer.
                    let scaled = p.with_channel_scales(linear, n, width)?;
                    width = n;
                    out.extend(scaled.input.map(RowOp::Affine));
                    out.push(RowOp::Linear(scaled.linear));
                    match scaled.output {
                        Some(a) => RowOp::Affine(a),
                        None => continue,
                    }
                }
                MlpOp::Affine { scale, shift, .. } => RowOp::Affine(Affine {
                    scale: p.vector(scale, width)?,
                    shift: p.vector(shift, width)?,
                    name: scale.clone(),
                }),
                MlpOp::Relu => RowOp::Relu,
                // The description checked the slope (a finite number).
                MlpOp::LeakyRelu { negative_slope } => RowOp::LeakyRelu(*negative_slope),
                MlpOp::Softmax => RowOp::Softmax,
            };
            out.push(next);
        }
        Ok(Mlp {
            inputs,
            outputs: width,
            labels,
            ops: out,
        })
    }

    /// What the forward pass reads: the affines, then the linear layers.
    pub fn parameters(&self) -> Parameters<'_> {
        let mut p = Parameters::default();
        for op in &self.ops {
            if let RowOp::Affine(a) = op {
                p.affine(a);
            }
        }
        for op in &self.ops {
            if let RowOp::Linear(l) = op {
                p.linear(l);
            }
        }
        p
    }

    /// `x`: `[rows, inputs]` → `[rows, outputs]`, on backend `be` (which may split the rows or run a prepared
    /// form of the chain: [`Backend::row_chain`]).
    pub fn forward<B: Backend>(&self, be: &B, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        be.row_chain(&self.ops, self.inputs, x, rows)
    }
}
