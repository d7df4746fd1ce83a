//! From the file's typed model description (`mxrt_format::description`, FORMAT.md section 9) to what the
//! graphs load with: the BERT configuration and the recipe's input quantization per layer.

use std::collections::HashMap;

use mxrt_format::description::{
    BertHead, BertHyperparameters, DescriptionError, RecipeLayer, SentencePooling,
};
use mxrt_format::{EncodingSpec, Rounding};

use crate::error::ModelProblem;
use crate::graphs::bert::{BertConfig, Head};
use crate::ops::{ActQuant, Activation, Pooling};

/// A size from the description as `usize` (it is checked against the tensors' shapes at load).
fn size(field: &'static str, v: u64) -> Result<usize, ModelProblem> {
    usize::try_from(v).map_err(|_| ModelProblem::TooLarge { field, value: v })
}

/// The BERT configuration the graph loads with.
pub(super) fn bert_config(hp: &BertHyperparameters) -> Result<BertConfig, ModelProblem> {
    let head = match &hp.head {
        BertHead::SequenceClassification {
            pooler_activation, ..
        } => {
            let (pooler, classifier) = hp.head_layers();
            let pooler_activation = match pooler_activation.as_deref() {
                None | Some("tanh") => Activation::Tanh,
                Some("relu") => Activation::Relu,
                Some("gelu") => Activation::Gelu,
                Some(other) => {
                    return Err(DescriptionError::Inconsistent {
                        section: "hyperparameters",
                        reason: format!(
                            "head.pooler_activation {other:?} is not one of tanh, relu, gelu"
                        ),
                    }
                    .into())
                }
            };
            Head::Classification {
                labels: hp.head.labels()?,
                pooler,
                pooler_activation,
                classifier,
            }
        }
        BertHead::SentenceEmbedding {
            pooling,
            normalize,
            max_seq_length,
        } => Head::Embedding {
            pooling: match pooling {
                SentencePooling::Mean => Pooling::Mean,
                SentencePooling::Cls => Pooling::Cls,
                SentencePooling::Max => Pooling::Max,
            },
            normalize: *normalize,
            max_seq_length: max_seq_length
                .map(|v| size("head.max_seq_length", v))
                .transpose()?,
        },
    };
    let activation = match hp.hidden_act.as_str() {
        "gelu" => Activation::Gelu,
        "relu" => Activation::Relu,
        "gelu_tanh" => Activation::GeluTanh,
        other => {
            return Err(DescriptionError::Inconsistent {
                section: "hyperparameters",
                reason: format!("hidden_act {other:?} is not one of gelu, gelu_tanh, relu"),
            }
            .into())
        }
    };
    Ok(BertConfig {
        prefix: hp.tensor_prefix.clone(),
        activation,
        layer_names: (0..hp.num_hidden_layers).map(|i| hp.layer(i)).collect(),
        embedding_size: hp
            .embedding_size
            .map(|v| size("embedding_size", v))
            .transpose()?,
        vocab: size("vocab_size", hp.vocab_size)?,
        hidden: size("hidden_size", hp.hidden_size)?,
        layers: size("num_hidden_layers", hp.num_hidden_layers)?,
        heads: size("num_attention_heads", hp.num_attention_heads)?,
        intermediate: size("intermediate_size", hp.intermediate_size)?,
        eps: hp.layer_norm_eps as f32,
        max_positions: size("max_position_embeddings", hp.max_position_embeddings)?,
        type_vocab: size("type_vocab_size", hp.type_vocab_size)?,
        head,
    })
}

/// Channel-scale tensor names per layer, `(input, output)`, from `recipe.layers` (description 2.2; layers
/// without either are left out).
pub(super) fn channel_scale_names(
    layers: &[RecipeLayer],
) -> HashMap<String, (Option<String>, Option<String>)> {
    layers
        .iter()
        .filter(|l| l.input_scale.is_some() || l.output_scale.is_some())
        .map(|l| {
            (
                l.name.clone(),
                (l.input_scale.clone(), l.output_scale.clone()),
            )
        })
        .collect()
}

/// Input quantization per layer, from `recipe.layers` (layers without an `activations` setting are left
/// out: their input stays f32).
pub(super) fn activation_settings(
    layers: &[RecipeLayer],
) -> Result<HashMap<String, ActQuant>, ModelProblem> {
    let mut out = HashMap::new();
    for l in layers {
        let Some(act) = &l.activations else {
            continue;
        };
        let recipe = |e: &dyn std::fmt::Display| ModelProblem::Recipe {
            layer: l.name.clone(),
            reason: e.to_string(),
        };
        let spec: EncodingSpec = act.parse().map_err(|e| recipe(&e))?;
        let rounding: Rounding = l
            .rounding
            .as_deref()
            .unwrap_or("nearest")
            .parse()
            .map_err(|e| recipe(&e))?;
        out.insert(
            l.name.clone(),
            ActQuant {
                encoding: spec.encoding,
                rounding,
            },
        );
    }
    Ok(out)
}
