//! Linear layers with channel scales (FORMAT.md section 9, description 2.2, feature `channel_scales`):
//! `y = s_out ⊙ (quant(s_in ⊙ x) · Wᵀ) + b`, `s_in` per input channel, `s_out` per output row. The converter
//! writes them for fixed point: `s_in` moves an outlier channel's range into the weights (SmoothQuant with
//! powers of two), `s_out` gives each weight row its own fraction width.
//!
//! They are composed here from ops every backend has, so no backend needs to know them: the scaled input is
//! an affine copy of the input with a zero shift; the output scale is an affine whose shift is the bias, the
//! linear op itself running with a zero bias.

use crate::error::Result;
use crate::ops::{Activation, Affine, Backend, Linear, Parameters};

/// A linear layer and its optional channel scales.
pub struct ScaledLinear {
    /// The layer as the backend runs it (its bias is zero when `output` carries it).
    pub linear: Linear,
    /// `s_in` (shift zero).
    pub input: Option<Affine>,
    /// `s_out`, with the layer's bias as the shift.
    pub output: Option<Affine>,
}

impl ScaledLinear {
    /// A layer without channel scales.
    pub fn plain(linear: Linear) -> ScaledLinear {
        ScaledLinear {
            linear,
            input: None,
            output: None,
        }
    }

    /// `linear` with the scales given: `s_in` over its columns, `s_out` over its rows (the bias moves into
    /// the output affine).
    pub fn new(
        mut linear: Linear,
        input: Option<Vec<f32>>,
        output: Option<Vec<f32>>,
    ) -> ScaledLinear {
        let input = input.map(|scale| Affine {
            name: format!("{}#input_scale", linear.name),
            shift: vec![0.0; scale.len()],
            scale,
        });
        let output = output.map(|scale| Affine {
            name: format!("{}#output_scale", linear.name),
            shift: std::mem::replace(&mut linear.bias, vec![0.0; scale.len()]),
            scale,
        });
        ScaledLinear {
            linear,
            input,
            output,
        }
    }

    fn inputs(&self) -> usize {
        self.linear.weight.shape.get(1).copied().unwrap_or(0) as usize
    }

    fn outputs(&self) -> usize {
        self.linear.bias.len()
    }

    /// `s_in ⊙ x` as a new tensor, when the layer scales its input.
    fn scaled_input<B: Backend>(
        &self,
        be: &B,
        x: &B::Tensor,
        rows: usize,
    ) -> Result<Option<B::Tensor>> {
        match &self.input {
            None => Ok(None),
            Some(a) => Ok(Some(be.affine_copy(x, rows, self.inputs(), a)?)),
        }
    }

    fn scale_output<B: Backend>(&self, be: &B, y: B::Tensor) -> Result<B::Tensor> {
        match &self.output {
            None => Ok(y),
            Some(a) => be.affine(y, self.outputs(), a),
        }
    }

    /// The layer on `x: [rows, in]`.
    pub fn run<B: Backend>(&self, be: &B, x: &B::Tensor, rows: usize) -> Result<B::Tensor> {
        let scaled = self.scaled_input(be, x, rows)?;
        let y = be.linear(scaled.as_ref().unwrap_or(x), rows, &self.linear)?;
        if let Some(s) = scaled {
            be.recycle(s);
        }
        self.scale_output(be, y)
    }

    /// `f(layer(x))` (the backend's fused form when nothing scales the output).
    pub fn run_activation<B: Backend>(
        &self,
        be: &B,
        x: &B::Tensor,
        rows: usize,
        f: Activation,
    ) -> Result<B::Tensor> {
        if self.output.is_some() {
            return be.activation(self.run(be, x, rows)?, f);
        }
        let scaled = self.scaled_input(be, x, rows)?;
        let y = be.linear_activation(scaled.as_ref().unwrap_or(x), rows, &self.linear, f)?;
        if let Some(s) = scaled {
            be.recycle(s);
        }
        Ok(y)
    }

    /// What the layer reads, for a backend to prepare.
    pub fn parameters<'a>(&'a self, p: &mut Parameters<'a>) {
        p.linear(&self.linear);
        for a in self.input.iter().chain(&self.output) {
            p.affine(a);
        }
    }
}

/// Three layers on one input (query, key, value): one scaled copy and the backend's `linear3` when their
/// input scales agree (the converter writes one for the three), else each on its own.
pub fn run3<B: Backend>(
    be: &B,
    x: &B::Tensor,
    rows: usize,
    layers: [&ScaledLinear; 3],
) -> Result<[B::Tensor; 3]> {
    let same_input = |a: &ScaledLinear, b: &ScaledLinear| match (&a.input, &b.input) {
        (None, None) => true,
        (Some(p), Some(q)) => p.scale == q.scale,
        _ => false,
    };
    if !(same_input(layers[0], layers[1]) && same_input(layers[0], layers[2])) {
        let [a, b, c] = layers;
        return Ok([
            a.run(be, x, rows)?,
            b.run(be, x, rows)?,
            c.run(be, x, rows)?,
        ]);
    }
    let scaled = layers[0].scaled_input(be, x, rows)?;
    let [q, k, v] = be.linear3(
        scaled.as_ref().unwrap_or(x),
        rows,
        layers.map(|l| &l.linear),
    )?;
    if let Some(s) = scaled {
        be.recycle(s);
    }
    Ok([
        layers[0].scale_output(be, q)?,
        layers[1].scale_output(be, k)?,
        layers[2].scale_output(be, v)?,
    ])
}

/// `down(f(up(x)))`: the backend's fused block when only `up` scales its input, else layer by layer.
pub fn feed_forward<B: Backend>(
    be: &B,
    x: &B::Tensor,
    rows: usize,
    up: &ScaledLinear,
    f: Activation,
    down: &ScaledLinear,
) -> Result<B::Tensor> {
    if up.output.is_none() && down.input.is_none() && down.output.is_none() {
        let scaled = up.scaled_input(be, x, rows)?;
        let y = be.feed_forward(
            scaled.as_ref().unwrap_or(x),
            rows,
            &up.linear,
            f,
            &down.linear,
        )?;
        if let Some(s) = scaled {
            be.recycle(s);
        }
        return Ok(y);
    }
    let hidden = up.run_activation(be, x, rows, f)?;
    let y = down.run(be, &hidden, rows)?;
    be.recycle(hidden);
    Ok(y)
}
