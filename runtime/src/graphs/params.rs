//! Tensor lookup for graph loading: `Params` finds tensors by name and checks their shapes once, at load.

use std::collections::HashMap;

use mxrt_format::Encoding;

use mxrt_format::description::DescriptionError;

use crate::error::{ModelProblem, Result, RuntimeError};
use crate::graphs::scaled::ScaledLinear;
use crate::ops::{ActQuant, Linear, Norm};
use crate::weights::TensorRef;

/// Tensor lookup for graph loading.
pub struct Params<'a> {
    pub path: &'a str,
    pub bytes: &'a [u8],
    pub tensors: &'a HashMap<String, TensorRef>,
    /// Input quantization per layer name, from the recipe.
    pub activations: &'a HashMap<String, ActQuant>,
    /// Channel-scale tensor names per layer name, `(input, output)`, from the recipe (description 2.2).
    pub channel_scales: &'a HashMap<String, (Option<String>, Option<String>)>,
}

impl Params<'_> {
    pub(crate) fn error(&self, problem: ModelProblem) -> RuntimeError {
        RuntimeError::Model {
            path: self.path.to_string(),
            problem,
        }
    }

    fn get(&self, name: &str, shape: &[u64]) -> Result<&TensorRef> {
        let t = self.tensors.get(name).ok_or_else(|| {
            self.error(ModelProblem::from(DescriptionError::MissingTensor {
                name: name.to_string(),
            }))
        })?;
        if t.shape != shape {
            return Err(
                self.error(ModelProblem::from(DescriptionError::TensorShape {
                    name: name.to_string(),
                    found: t.shape.clone(),
                    needed: shape.to_vec(),
                })),
            );
        }
        if matches!(t.encoding, Encoding::Raw(_)) {
            return Err(self.error(ModelProblem::from(DescriptionError::RawTensor {
                name: name.to_string(),
                encoding: t.encoding.to_string(),
            })));
        }
        Ok(t)
    }

    /// A `[rows, cols]` weight matrix or table, kept in place.
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<TensorRef> {
        self.get(name, &[rows as u64, cols as u64]).cloned()
    }

    /// A 1-D parameter, decoded to f32.
    pub fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        let t = self.get(name, &[len as u64])?;
        let mut out = vec![0.0f32; len];
        t.view(self.bytes).decode_row(0, &mut out);
        Ok(out)
    }

    pub fn linear(&self, layer: &str, out: usize, inp: usize) -> Result<Linear> {
        Ok(Linear {
            name: layer.to_string(),
            weight: self.matrix(&format!("{layer}.weight"), out, inp)?,
            bias: self.vector(&format!("{layer}.bias"), out)?,
            act: self
                .activations
                .get(layer)
                .copied()
                .unwrap_or(ActQuant::NONE),
        })
    }

    /// A linear layer with the channel scales its recipe entry names (FORMAT.md section 9, since 2.2).
    pub fn scaled_linear(&self, layer: &str, out: usize, inp: usize) -> Result<ScaledLinear> {
        self.with_channel_scales(self.linear(layer, out, inp)?, out, inp)
    }

    /// `linear` (`[out, inp]`) with the channel scales its recipe entry names, if any.
    pub fn with_channel_scales(
        &self,
        linear: Linear,
        out: usize,
        inp: usize,
    ) -> Result<ScaledLinear> {
        let Some((input, output)) = self.channel_scales.get(&linear.name) else {
            return Ok(ScaledLinear::plain(linear));
        };
        let layer = &linear.name;
        let input = input
            .as_deref()
            .map(|n| self.scale_vector(layer, n, inp))
            .transpose()?;
        let output = output
            .as_deref()
            .map(|n| self.scale_vector(layer, n, out))
            .transpose()?;
        Ok(ScaledLinear::new(linear, input, output))
    }

    /// A channel-scale vector of layer `layer`: `len` positive finite numbers (a zero would erase a channel,
    /// a NaN every output it reaches).
    fn scale_vector(&self, layer: &str, name: &str, len: usize) -> Result<Vec<f32>> {
        let v = self.vector(name, len)?;
        if let Some((i, x)) = v
            .iter()
            .enumerate()
            .find(|(_, x)| !(x.is_finite() && **x > 0.0))
        {
            return Err(self.error(ModelProblem::Recipe {
                layer: layer.to_string(),
                reason: format!(
                    "channel scale tensor \"{}\" holds {x} at index {i}: channel scales must be positive finite numbers",
                    name.escape_debug()
                ),
            }));
        }
        Ok(v)
    }

    pub fn norm(&self, layer: &str, width: usize) -> Result<Norm> {
        Ok(Norm {
            name: layer.to_string(),
            gamma: self.vector(&format!("{layer}.weight"), width)?,
            beta: self.vector(&format!("{layer}.bias"), width)?,
        })
    }
}
