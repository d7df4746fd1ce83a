//! Reading the model description (FORMAT.md section 9) from the file's metadata: the BERT configuration and
//! the recipe's input quantization per layer.

use std::collections::HashMap;

use mxrt_format::{EncodingSpec, Rounding};
use serde_json::{Map, Value};

use crate::error::ModelProblem;
use crate::graphs::bert::{BertConfig, Head};
use crate::ops::{ActQuant, Pooling};

fn missing(field: impl Into<String>) -> ModelProblem {
    ModelProblem::MissingField {
        architecture: "bert",
        field: field.into(),
    }
}

fn unsupported(field: &'static str, value: Option<&str>) -> ModelProblem {
    ModelProblem::Unsupported {
        architecture: "bert",
        field,
        value: value.map(str::to_string),
    }
}

/// The BERT configuration from the description's hyperparameters.
pub(super) fn bert_config(hp: &Value) -> Result<BertConfig, ModelProblem> {
    let n = |k: &str| {
        hp.get(k)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .ok_or_else(|| missing(k))
    };
    let head = hp.get("head").ok_or_else(|| missing("head"))?;
    let head = match head.get("type").and_then(Value::as_str) {
        Some("sequence_classification") => {
            let map = head
                .get("id2label")
                .and_then(Value::as_object)
                .ok_or_else(|| missing("id2label"))?;
            let labels = (0..map.len())
                .map(|i| {
                    map.get(&i.to_string())
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .ok_or_else(|| missing(format!("id2label entry {i}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Head::Classification { labels }
        }
        Some("sentence_embedding") => Head::Embedding {
            pooling: match head.get("pooling").and_then(Value::as_str) {
                Some("mean") => Pooling::Mean,
                Some("cls") => Pooling::Cls,
                Some("max") => Pooling::Max,
                other => return Err(unsupported("pooling", other)),
            },
            normalize: head
                .get("normalize")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            max_seq_length: head
                .get("max_seq_length")
                .and_then(Value::as_u64)
                .map(|v| v as usize),
        },
        other => return Err(unsupported("head type", other)),
    };
    Ok(BertConfig {
        prefix: hp
            .get("tensor_prefix")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        vocab: n("vocab_size")?,
        hidden: n("hidden_size")?,
        layers: n("num_hidden_layers")?,
        heads: n("num_attention_heads")?,
        intermediate: n("intermediate_size")?,
        eps: hp
            .get("layer_norm_eps")
            .and_then(Value::as_f64)
            .unwrap_or(1e-12) as f32,
        max_positions: n("max_position_embeddings")?,
        type_vocab: n("type_vocab_size")?,
        head,
    })
}

/// Input quantization per layer, from `recipe.layers`.
pub(super) fn activation_settings(
    meta: &Map<String, Value>,
) -> Result<HashMap<String, ActQuant>, ModelProblem> {
    let mut out = HashMap::new();
    let layers = meta
        .get("recipe")
        .and_then(|r| r.get("layers"))
        .and_then(Value::as_array);
    for l in layers.into_iter().flatten() {
        let (Some(name), Some(act)) = (
            l.get("name").and_then(Value::as_str),
            l.get("activations").and_then(Value::as_str),
        ) else {
            continue;
        };
        let recipe = |e: &dyn std::fmt::Display| ModelProblem::Recipe {
            layer: name.to_string(),
            reason: e.to_string(),
        };
        let spec: EncodingSpec = act.parse().map_err(|e| recipe(&e))?;
        let rounding: Rounding = l
            .get("rounding")
            .and_then(Value::as_str)
            .unwrap_or("nearest")
            .parse()
            .map_err(|e| recipe(&e))?;
        out.insert(
            name.to_string(),
            ActQuant {
                encoding: spec.encoding,
                rounding,
            },
        );
    }
    Ok(out)
}
