//! MLPs described by a config.json with `model_type: "mlp"` (see `docs/mlp-config.md`): ops in order
//! on `[batch, num_features]`. BatchNorm right after a Linear is folded into it (exact in real arithmetic:
//! `W' = W * s`, `b' = (b - mean) * s + beta` with `s = gamma / sqrt(var + eps)`, computed in f64); any other
//! BatchNorm becomes a per-channel affine op `x * scale + shift` with the same `s`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use mxrt_format::description::{Hyperparameters, MlpHyperparameters, MlpOp};

use super::{Layer, LayerKind, ModelDescription, PlannedTensor, Role, TensorTaker};
use crate::error::ConvertError;
use crate::input::SourceTensor;

enum Op {
    Linear {
        name: String,
    },
    BatchNorm {
        name: String,
        eps: f64,
    },
    Relu,
    LeakyRelu(f32),
    Softmax,
    /// `dropout` (identity at inference) or `identity` (a layer a search removed): nothing to run; the
    /// string says which, for the note.
    Nothing(&'static str),
}

fn parse_ops(path: &Path, config: &Value) -> Result<Vec<Op>, ConvertError> {
    let bad = |reason: String| ConvertError::UnsupportedConfig {
        path: path.to_path_buf(),
        reason,
    };
    let layers = config
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("\"layers\" must be an array of ops".into()))?;
    let name = |i: usize, l: &Value| -> Result<String, ConvertError> {
        l.get("name")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| bad(format!("layers[{i}] needs a \"name\"")))
    };
    layers
        .iter()
        .enumerate()
        .map(|(i, l)| match l.get("op").and_then(Value::as_str) {
            Some("linear") => Ok(Op::Linear { name: name(i, l)? }),
            Some("batch_norm") => Ok(Op::BatchNorm {
                name: name(i, l)?,
                eps: l.get("eps").and_then(Value::as_f64).unwrap_or(1e-5),
            }),
            Some("relu") => Ok(Op::Relu),
            Some("softmax") => Ok(Op::Softmax),
            Some("leaky_relu") => {
                // PyTorch's LeakyReLU(negative_slope=0.01) unless the config says otherwise.
                let slope = match l.get("negative_slope") {
                    None => 0.01,
                    Some(v) => v.as_f64().filter(|s| s.is_finite()).ok_or_else(|| {
                        bad(format!(
                            "layers[{i}]: negative_slope must be a finite number, found {v}"
                        ))
                    })?,
                };
                Ok(Op::LeakyRelu(slope as f32))
            }
            Some("dropout") => Ok(Op::Nothing("dropout")),
            Some("identity") => Ok(Op::Nothing("identity")),
            Some(other) => Err(bad(format!(
                "layers[{i}]: op {other:?} is not supported (linear, batch_norm, relu, leaky_relu, \
                 softmax, dropout, identity)"
            ))),
            None => Err(bad(format!("layers[{i}] has no \"op\""))),
        })
        .collect()
}

/// Per-channel `s = gamma / sqrt(var + eps)` and the BatchNorm's `mean`, `beta`, in f64.
struct BatchNormStats {
    scale: Vec<f64>,
    mean: Vec<f64>,
    beta: Vec<f64>,
}

fn batch_norm_stats(
    taker: &mut TensorTaker<'_, '_>,
    name: &str,
    channels: u64,
    eps: f64,
) -> Result<BatchNormStats, ConvertError> {
    let shape = [channels];
    let f64s = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<f64>>();
    let gamma = f64s(taker.take(&format!("{name}.weight"), &shape)?);
    let beta = f64s(taker.take(&format!("{name}.bias"), &shape)?);
    let mean = f64s(taker.take(&format!("{name}.running_mean"), &shape)?);
    let var = f64s(taker.take(&format!("{name}.running_var"), &shape)?);
    taker.ignore(&format!("{name}.num_batches_tracked"));
    if let Some(i) = var
        .iter()
        .position(|&v| (v + eps).is_nan() || v + eps <= 0.0)
    {
        return Err(ConvertError::UnsupportedConfig {
            path: format!("{name}.running_var").into(),
            reason: format!(
                "channel {i}: running_var + eps = {} is not positive",
                var[i] + eps
            ),
        });
    }
    let scale = gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| g / (v + eps).sqrt())
        .collect();
    Ok(BatchNormStats { scale, mean, beta })
}

pub fn describe(
    path: &Path,
    c: &Value,
    tensors: &BTreeMap<String, SourceTensor<'_>>,
    fold_batch_norm: bool,
) -> Result<ModelDescription, ConvertError> {
    let bad = |reason: String| ConvertError::UnsupportedConfig {
        path: path.to_path_buf(),
        reason,
    };
    let mut dim = c
        .get("num_features")
        .and_then(Value::as_u64)
        .filter(|&n| n > 0)
        .ok_or_else(|| bad("\"num_features\" must be a positive integer".into()))?;
    let num_features = dim;
    let ops = parse_ops(path, c)?;
    let mut taker = TensorTaker::new(tensors);
    let mut layers = Vec::new();
    let mut planned = Vec::new();
    let mut ops_out = Vec::new();
    let mut notes = Vec::new();
    let mut i = 0;
    while i < ops.len() {
        match &ops[i] {
            Op::Linear { name } => {
                let wname = format!("{name}.weight");
                let out = tensors
                    .get(&wname)
                    .and_then(|t| t.shape.first().copied())
                    .ok_or_else(|| ConvertError::MissingTensor {
                        name: wname.clone(),
                        expected: vec![0, dim],
                    })?;
                let mut w = taker.take(&wname, &[out, dim])?;
                let bname = format!("{name}.bias");
                let mut b = if taker.has(&bname) {
                    taker.take(&bname, &[out])?
                } else {
                    vec![0.0; out as usize]
                };
                // Dropout and identity between the two change nothing at inference: fold across them.
                let mut next = i + 1;
                while let Some(Op::Nothing(_)) = ops.get(next) {
                    next += 1;
                }
                if let (true, Some(Op::BatchNorm { name: bn, eps })) =
                    (fold_batch_norm, ops.get(next))
                {
                    let s = batch_norm_stats(&mut taker, bn, out, *eps)?;
                    for (o, row) in w.chunks_mut(dim as usize).enumerate() {
                        row.iter_mut()
                            .for_each(|x| *x = (f64::from(*x) * s.scale[o]) as f32);
                        b[o] = ((f64::from(b[o]) - s.mean[o]) * s.scale[o] + s.beta[o]) as f32;
                    }
                    notes.push(format!(
                        "{bn}: BatchNorm folded into the preceding linear {name}"
                    ));
                    for skipped in &ops[i + 1..next] {
                        if let Op::Nothing(what) = skipped {
                            notes.push(format!("{what}: nothing to run at inference, left out"));
                        }
                    }
                    i = next;
                }
                let layer = layers.len();
                layers.push(Layer {
                    name: name.clone(),
                    kind: LayerKind::Linear,
                });
                planned.push(PlannedTensor {
                    name: wname.clone(),
                    shape: vec![out, dim],
                    values: w,
                    layer,
                    role: Role::Weight,
                });
                planned.push(PlannedTensor {
                    name: bname.clone(),
                    shape: vec![out],
                    values: b,
                    layer,
                    role: Role::Parameter,
                });
                ops_out.push(MlpOp::Linear {
                    name: name.clone(),
                    weight: wname.clone(),
                    bias: bname.clone(),
                });
                dim = out;
            }
            Op::BatchNorm { name, eps } => {
                let s = batch_norm_stats(&mut taker, name, dim, *eps)?;
                let shift: Vec<f32> = (0..dim as usize)
                    .map(|k| (s.beta[k] - s.mean[k] * s.scale[k]) as f32)
                    .collect();
                let scale: Vec<f32> = s.scale.iter().map(|&v| v as f32).collect();
                let layer = layers.len();
                layers.push(Layer {
                    name: name.clone(),
                    kind: LayerKind::BatchNorm,
                });
                let (sn, hn) = (format!("{name}.scale"), format!("{name}.shift"));
                planned.push(PlannedTensor {
                    name: sn.clone(),
                    shape: vec![dim],
                    values: scale,
                    layer,
                    role: Role::Parameter,
                });
                planned.push(PlannedTensor {
                    name: hn.clone(),
                    shape: vec![dim],
                    values: shift,
                    layer,
                    role: Role::Parameter,
                });
                ops_out.push(MlpOp::Affine {
                    name: name.clone(),
                    scale: sn.clone(),
                    shift: hn.clone(),
                });
                notes.push(if fold_batch_norm {
                    format!("{name}: BatchNorm kept as a per-channel affine op (no linear right before it)")
                } else {
                    format!("{name}: BatchNorm kept as a per-channel affine op (fold_batch_norm = false)")
                });
            }
            Op::Relu => ops_out.push(MlpOp::Relu),
            Op::LeakyRelu(s) => ops_out.push(MlpOp::LeakyRelu { negative_slope: *s }),
            Op::Softmax => ops_out.push(MlpOp::Softmax),
            Op::Nothing(what) => {
                notes.push(format!("{what}: nothing to run at inference, left out"))
            }
        }
        i += 1;
    }
    taker.finish("mlp")?;
    let labels = match c.get("labels") {
        None => None,
        Some(v) => Some(
            serde_json::from_value::<Vec<String>>(v.clone())
                .map_err(|_| bad(format!("\"labels\" must be a list of names, found {v}")))?,
        ),
    };
    let hp = MlpHyperparameters {
        num_features,
        num_outputs: dim,
        labels,
        task: c.get("task").cloned(),
        ops: ops_out,
    };
    Ok(ModelDescription {
        hyperparameters: Hyperparameters::Mlp(hp),
        layers,
        tensors: planned,
        notes,
    })
}
