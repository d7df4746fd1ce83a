//! MLPs: the ops of FORMAT.md section 9 (`linear`, `affine`, `relu`, `softmax`) applied in order.

use crate::error::{ModelProblem, Result};
use crate::graphs::params::Params;
use crate::ops::{ActQuant, Affine, Backend, Linear, Parameters, RowOp};

pub struct Mlp {
    pub inputs: usize,
    pub outputs: usize,
    pub labels: Vec<String>,
    pub(crate) ops: Vec<RowOp>,
}

impl Mlp {
    /// `ops` is the metadata's op list; shapes are checked along the chain.
    pub fn load(
        inputs: usize,
        labels: Vec<String>,
        ops: &[serde_json::Value],
        p: &Params<'_>,
    ) -> Result<Mlp> {
        let field = |o: &serde_json::Value, k: &'static str| -> Result<String> {
            o.get(k)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| {
                    p.error(ModelProblem::OpField {
                        op: o.to_string(),
                        field: k,
                    })
                })
        };
        let mut width = inputs;
        let mut out = Vec::with_capacity(ops.len());
        for o in ops {
            out.push(match o.get("op").and_then(|v| v.as_str()) {
                Some("linear") => {
                    let (name, weight) = (field(o, "name")?, field(o, "weight")?);
                    let n = p
                        .tensors
                        .get(&weight)
                        .and_then(|w| w.shape.first())
                        .copied()
                        .unwrap_or(0) as usize;
                    let linear = Linear {
                        name: name.clone(),
                        weight: p.matrix(&weight, n, width)?,
                        bias: p.vector(&field(o, "bias")?, n)?,
                        act: p.activations.get(&name).copied().unwrap_or(ActQuant::NONE),
                    };
                    width = n;
                    RowOp::Linear(linear)
                }
                Some("affine") => {
                    let scale = field(o, "scale")?;
                    RowOp::Affine(Affine {
                        scale: p.vector(&scale, width)?,
                        shift: p.vector(&field(o, "shift")?, width)?,
                        name: scale,
                    })
                }
                Some("relu") => RowOp::Relu,
                Some("softmax") => RowOp::Softmax,
                other => return Err(p.error(ModelProblem::UnknownOp(other.map(str::to_string)))),
            });
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
