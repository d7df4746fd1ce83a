//! Tensor names as checkpoints in the wild spell them, brought to the names the model descriptions read,
//! before anything is described. Each rewrite leaves a note:
//! - PEFT wrappers: every name under `base_model.model.` (an unmerged PEFT checkpoint): the prefix is dropped,
//!   and LoRA adapters (`<layer>.lora_A.weight` `[r, in]`, `<layer>.lora_B.weight` `[out, r]`, the frozen
//!   weight as `<layer>.base_layer.weight` or `<layer>.weight`) are merged: `W + (B·A)·scale` with
//!   `scale = lora_alpha / r` (`lora_alpha / √r` with `use_rslora`) from `adapter_config.json`, in f64.
//!   Without that file, or with settings this merge does not cover (`fan_in_fan_out`, DoRA, per-layer ranks),
//!   the checkpoint is refused with how to merge it in Python.
//! - Old TensorFlow-converted BERTs: `LayerNorm.gamma` / `LayerNorm.beta` → `LayerNorm.weight` / `.bias`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::error::ConvertError;
use crate::input::SourceTensor;
use mxrt_format::Encoding;

const PEFT_PREFIX: &str = "base_model.model.";

/// Rewrites the names in `tensors` (and merges LoRA adapters), returning notes on what changed.
/// `side` finds files beside the checkpoint (`adapter_config.json`).
pub fn normalize(
    tensors: &mut BTreeMap<String, SourceTensor<'_>>,
    side: &dyn Fn(&str) -> Option<PathBuf>,
) -> Result<Vec<String>, ConvertError> {
    let mut notes = Vec::new();
    if !tensors.is_empty() && tensors.keys().all(|k| k.starts_with(PEFT_PREFIX)) {
        rename(tensors, |k| Some(k[PEFT_PREFIX.len()..].to_string()));
        notes.push(format!(
            "a PEFT checkpoint: the {PEFT_PREFIX:?} prefix of every tensor name dropped"
        ));
    }
    // PEFT's trained copies of whole modules (`modules_to_save`, e.g. a classification head) replace the
    // originals it keeps beside them.
    let saved: Vec<String> = tensors
        .keys()
        .filter(|k| k.contains(".modules_to_save."))
        .cloned()
        .collect();
    if !saved.is_empty() {
        for k in &saved {
            let (module, rest) = k.split_once(".modules_to_save.").unwrap_or((k, ""));
            // `rest` is `<adapter name>.<parameter>`.
            let parameter = rest.split_once('.').map_or(rest, |(_, p)| p);
            tensors.remove(&format!("{module}.original_module.{parameter}"));
            if let Some(mut t) = tensors.remove(k) {
                t.name = format!("{module}.{parameter}");
                tensors.insert(t.name.clone(), t);
            }
        }
        notes.push(format!(
            "{} tensors of PEFT modules_to_save used in place of the original modules",
            saved.len()
        ));
    }
    if tensors
        .keys()
        .any(|k| k.contains(".lora_A.") || k.contains(".lora_B."))
    {
        notes.push(merge_lora(tensors, side)?);
    }
    let old_norms = tensors
        .keys()
        .filter(|k| k.ends_with("LayerNorm.gamma") || k.ends_with("LayerNorm.beta"))
        .count();
    if old_norms > 0 {
        rename(tensors, |k| {
            if let Some(stem) = k.strip_suffix("LayerNorm.gamma") {
                Some(format!("{stem}LayerNorm.weight"))
            } else {
                k.strip_suffix("LayerNorm.beta")
                    .map(|stem| format!("{stem}LayerNorm.bias"))
            }
        });
        notes.push(format!(
            "{old_norms} LayerNorm tensors named gamma/beta (TensorFlow style) read as weight/bias"
        ));
    }
    Ok(notes)
}

/// Renames the keys `f` maps (others keep theirs). The rewrites used here map distinct names to distinct
/// names (a suffix or prefix swap), so nothing is overwritten.
fn rename(tensors: &mut BTreeMap<String, SourceTensor<'_>>, f: impl Fn(&str) -> Option<String>) {
    let old = std::mem::take(tensors);
    for (k, mut t) in old {
        let name = f(&k).unwrap_or(k);
        t.name = name.clone();
        tensors.insert(name, t);
    }
}

fn lora_refusal(reason: &str) -> ConvertError {
    ConvertError::Options(format!(
        "the checkpoint holds unmerged LoRA adapters (lora_A / lora_B tensors) and {reason}; merge them in \
         Python first: `model = PeftModel.from_pretrained(base, path).merge_and_unload(); \
         model.save_pretrained(out)`, then convert `out`"
    ))
}

fn merge_lora(
    tensors: &mut BTreeMap<String, SourceTensor<'_>>,
    side: &dyn Fn(&str) -> Option<PathBuf>,
) -> Result<String, ConvertError> {
    let Some(config_path) = side("adapter_config.json") else {
        return Err(lora_refusal(
            "there is no adapter_config.json beside it to read their scale from",
        ));
    };
    let config = crate::checkpoint::read_json(&config_path)?;
    let flag = |k: &str| config.get(k).and_then(Value::as_bool) == Some(true);
    if flag("fan_in_fan_out") || flag("use_dora") {
        return Err(lora_refusal(
            "adapter_config.json asks for fan_in_fan_out or DoRA, which this merge does not cover",
        ));
    }
    let non_empty_map = |k: &str| {
        config
            .get(k)
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
    };
    if non_empty_map("rank_pattern") || non_empty_map("alpha_pattern") {
        return Err(lora_refusal(
            "adapter_config.json sets per-layer ranks or alphas (rank_pattern / alpha_pattern)",
        ));
    }
    let (Some(r), Some(alpha)) = (
        config.get("r").and_then(Value::as_f64).filter(|r| *r > 0.0),
        config.get("lora_alpha").and_then(Value::as_f64),
    ) else {
        return Err(lora_refusal(
            "adapter_config.json lacks a positive \"r\" or a \"lora_alpha\"",
        ));
    };
    let scale = if flag("use_rslora") {
        alpha / r.sqrt()
    } else {
        alpha / r
    };
    // Layers with adapters: `<layer>.lora_A.weight` (PEFT may add an adapter name: `lora_A.default.weight`).
    let layers: Vec<(String, String, String)> = tensors
        .keys()
        .filter_map(|k| {
            let (layer, rest) = k.split_once(".lora_A.")?;
            Some((
                layer.to_string(),
                k.clone(),
                format!("{layer}.lora_B.{rest}"),
            ))
        })
        .collect();
    for (layer, a_name, b_name) in &layers {
        let base_name = [
            format!("{layer}.base_layer.weight"),
            format!("{layer}.weight"),
        ]
        .into_iter()
        .find(|n| tensors.contains_key(n))
        .ok_or_else(|| lora_refusal(&format!("{layer} has adapters but no base weight")))?;
        let (Some(a), Some(b), Some(w)) = (
            tensors.get(a_name),
            tensors.get(b_name),
            tensors.get(&base_name),
        ) else {
            return Err(lora_refusal(&format!(
                "{layer} has {a_name} without {b_name}"
            )));
        };
        let (rank, inputs, outputs) = match (a.shape.as_slice(), b.shape.as_slice()) {
            ([ra, i], [o, rb]) if ra == rb && w.shape == [*o, *i] => (*ra, *i, *o),
            _ => {
                return Err(lora_refusal(&format!(
                    "{layer}: shapes A {:?}, B {:?}, W {:?} do not make W + B·A",
                    a.shape, b.shape, w.shape
                )))
            }
        };
        let floats = |t: &SourceTensor<'_>, n: &str| {
            t.to_f32()
                .ok_or_else(|| lora_refusal(&format!("{n} is not a floating-point tensor")))
        };
        let (av, bv, wv) = (
            floats(a, a_name)?,
            floats(b, b_name)?,
            floats(w, &base_name)?,
        );
        let (rank, inputs, outputs) = (rank as usize, inputs as usize, outputs as usize);
        let mut merged = Vec::with_capacity(wv.len());
        for o in 0..outputs {
            for i in 0..inputs {
                let delta: f64 = (0..rank)
                    .map(|k| f64::from(bv[o * rank + k]) * f64::from(av[k * inputs + i]))
                    .sum();
                merged.push((f64::from(wv[o * inputs + i]) + delta * scale) as f32);
            }
        }
        let weight = SourceTensor {
            name: format!("{layer}.weight"),
            shape: w.shape.clone(),
            dtype: Encoding::F32,
            data: Cow::Owned(merged.iter().flat_map(|v| v.to_le_bytes()).collect()),
        };
        for n in [a_name, b_name, &base_name] {
            tensors.remove(n);
        }
        tensors.insert(weight.name.clone(), weight);
        // `<layer>.base_layer.bias` belongs to the layer itself.
        if let Some(mut bias) = tensors.remove(&format!("{layer}.base_layer.bias")) {
            bias.name = format!("{layer}.bias");
            tensors.insert(bias.name.clone(), bias);
        }
    }
    Ok(format!(
        "LoRA adapters merged into {} weight matrices: W + (B·A)·{scale} (lora_alpha {alpha}, r {r}{})",
        layers.len(),
        if flag("use_rslora") { ", rsLoRA" } else { "" }
    ))
}
