//! MLPs: the ops of FORMAT.md section 9 (`linear`, `affine`, `relu`, `softmax`) applied in order.

use crate::backend::{Activation, Backend};
use crate::error::{Result, RuntimeError};
use crate::graph::{Affine, Linear, Params};

pub enum Op {
    Linear(Linear),
    Affine(Affine),
    Relu,
    Softmax,
}

pub struct Mlp {
    pub inputs: usize,
    pub outputs: usize,
    pub labels: Vec<String>,
    pub(crate) ops: Vec<Op>,
}

impl Mlp {
    /// `ops` is the metadata's op list; shapes are checked along the chain.
    pub fn load(
        inputs: usize,
        labels: Vec<String>,
        ops: &[serde_json::Value],
        p: &Params<'_>,
    ) -> Result<Mlp> {
        let bad = |reason: String| RuntimeError::Model {
            path: p.path.to_string(),
            reason,
        };
        let field = |o: &serde_json::Value, k: &str| -> Result<String> {
            o.get(k)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| bad(format!("op {o} lacks {k:?}")))
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
                        act: p
                            .activations
                            .get(&name)
                            .copied()
                            .unwrap_or(crate::quant::ActQuant::NONE),
                    };
                    width = n;
                    Op::Linear(linear)
                }
                Some("affine") => {
                    let scale = field(o, "scale")?;
                    Op::Affine(Affine {
                        scale: p.vector(&scale, width)?,
                        shift: p.vector(&field(o, "shift")?, width)?,
                        name: scale,
                    })
                }
                Some("relu") => Op::Relu,
                Some("softmax") => Op::Softmax,
                other => return Err(bad(format!("unknown MLP op {other:?}"))),
            });
        }
        Ok(Mlp {
            inputs,
            outputs: width,
            labels,
            ops: out,
        })
    }

    /// `x`: `[rows, inputs]` → `[rows, outputs]`, on backend `be`.
    pub fn forward<B: Backend>(&self, be: &B, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        if x.len() != rows * self.inputs {
            return Err(RuntimeError::Input(format!(
                "{rows} rows of {} features need {} values, got {}",
                self.inputs,
                rows * self.inputs,
                x.len()
            )));
        }
        let mut cur = be.input(x)?;
        let mut width = self.inputs;
        for op in &self.ops {
            cur = match op {
                Op::Linear(l) => {
                    width = l.bias.len();
                    let y = be.linear(&cur, rows, l)?;
                    be.recycle(cur);
                    y
                }
                Op::Affine(a) => be.affine(cur, width, a)?,
                Op::Relu => be.activation(cur, Activation::Relu)?,
                Op::Softmax => be.softmax_rows(cur, width)?,
            };
        }
        be.output(&cur)
    }
}
