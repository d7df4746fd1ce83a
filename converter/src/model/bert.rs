//! BERT encoders (`BertForSequenceClassification`, `BertModel` as a sentence encoder) from a Hugging Face
//! config.json: the layers, their kinds, shape checks, and the hyper-parameters the runtime needs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use mxrt_format::description::{
    BertHead, BertHyperparameters, EncoderLayerNames, Hyperparameters, LayerNames, SentencePooling,
};

use super::{Layer, LayerKind, ModelDescription, PlannedTensor, Role, TensorTaker};
use crate::error::ConvertError;
use crate::input::SourceTensor;

/// The encoder families read as BERT: the same layers under other names and conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Bert,
    /// RoBERTa, XLM-RoBERTa, CamemBERT: tensors under `roberta.`, position ids from `padding_idx + 1`, one
    /// token type, and a head whose `classifier.dense` (tanh) and `classifier.out_proj` are BERT's pooler
    /// and classifier.
    Roberta,
    /// DistilBERT: its own layer names (`transformer.layer.i.attention.q_lin`, …), no token types (a zero
    /// table of one row is stored so the embeddings are computed as BERT's), and `pre_classifier` + ReLU as
    /// the pooler.
    DistilBert,
    /// ELECTRA (the discriminator): BERT's layers under `electra.`, embeddings possibly narrower than the
    /// hidden size (then `embeddings_project`), and a head of `classifier.dense` + GELU, `out_proj`.
    Electra,
}

impl Family {
    /// The family of a `model_type`, if it is one of these.
    pub fn of(model_type: &str) -> Option<Family> {
        match model_type {
            "bert" => Some(Family::Bert),
            "roberta" | "xlm-roberta" | "camembert" => Some(Family::Roberta),
            "distilbert" => Some(Family::DistilBert),
            "electra" => Some(Family::Electra),
            _ => None,
        }
    }

    /// Prefixes of the `architectures` names of the family's models.
    fn architecture_prefixes(self) -> &'static [&'static str] {
        match self {
            Family::Bert => &["Bert"],
            Family::Roberta => &["Roberta", "XLMRoberta", "Camembert"],
            Family::DistilBert => &["DistilBert"],
            Family::Electra => &["Electra"],
        }
    }

    /// The module the encoder's tensors are under in the family's task models.
    fn module(self) -> &'static str {
        match self {
            Family::Bert => "bert.",
            Family::Roberta => "roberta.",
            Family::DistilBert => "distilbert.",
            Family::Electra => "electra.",
        }
    }

    /// The output layer of the sequence-classification head.
    fn classifier(self) -> &'static str {
        match self {
            Family::Bert => "classifier",
            Family::Roberta | Family::Electra => "classifier.out_proj",
            Family::DistilBert => "classifier",
        }
    }

    /// The config.json key of each size (DistilBERT has its own names).
    fn key(self, bert_key: &'static str) -> &'static str {
        match (self, bert_key) {
            (Family::DistilBert, "hidden_size") => "dim",
            (Family::DistilBert, "num_hidden_layers") => "n_layers",
            (Family::DistilBert, "num_attention_heads") => "n_heads",
            (Family::DistilBert, "intermediate_size") => "hidden_dim",
            (Family::DistilBert, "hidden_act") => "activation",
            _ => bert_key,
        }
    }

    fn layer_names(self) -> LayerNames {
        match self {
            Family::DistilBert => LayerNames::DistilBert,
            _ => LayerNames::Bert,
        }
    }
}

struct Config {
    /// The feed-forward activation: `gelu` or `relu`.
    act: String,
    vocab: u64,
    hidden: u64,
    layers: u64,
    heads: u64,
    intermediate: u64,
    max_positions: u64,
    type_vocab: u64,
    eps: f64,
}

fn config_u64(
    config: &Value,
    key: &str,
    default: Option<u64>,
    path: &Path,
) -> Result<u64, ConvertError> {
    match config.get(key) {
        Some(v) => v
            .as_u64()
            .filter(|&n| n > 0)
            .ok_or_else(|| ConvertError::UnsupportedConfig {
                path: path.to_path_buf(),
                reason: format!("{key:?} must be a positive integer, found {v}"),
            }),
        None => default.ok_or_else(|| ConvertError::UnsupportedConfig {
            path: path.to_path_buf(),
            reason: format!("{key:?} is missing"),
        }),
    }
}

fn read_config(path: &Path, c: &Value, family: Family) -> Result<Config, ConvertError> {
    let unsupported = |reason: String| ConvertError::UnsupportedConfig {
        path: path.to_path_buf(),
        reason,
    };
    let k = |key| family.key(key);
    let act = c
        .get(k("hidden_act"))
        .and_then(Value::as_str)
        .unwrap_or("gelu");
    // Hugging Face's names for GELU's tanh approximation `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`
    // (NewGELUActivation, PytorchGELUTanh, FastGELUActivation compute the same function) are stored as one.
    let act = match act {
        "gelu" | "relu" => act,
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => "gelu_tanh",
        other => {
            return Err(unsupported(format!(
                "hidden_act {other:?} is not supported (\"gelu\", the exact erf GELU; its tanh \
                 approximation \"gelu_new\", \"gelu_pytorch_tanh\" or \"gelu_fast\"; or \"relu\")"
            )))
        }
    };
    let pos = c
        .get("position_embedding_type")
        .and_then(Value::as_str)
        .unwrap_or("absolute");
    if pos != "absolute" {
        return Err(unsupported(format!(
            "position_embedding_type {pos:?} is not supported (only \"absolute\")"
        )));
    }
    if c.get("is_decoder").and_then(Value::as_bool) == Some(true)
        || c.get("add_cross_attention").and_then(Value::as_bool) == Some(true)
    {
        return Err(unsupported(
            "decoder BERT (is_decoder / add_cross_attention) is not supported".into(),
        ));
    }
    let cfg = Config {
        act: act.to_string(),
        vocab: config_u64(c, "vocab_size", None, path)?,
        hidden: config_u64(c, k("hidden_size"), None, path)?,
        layers: config_u64(c, k("num_hidden_layers"), None, path)?,
        heads: config_u64(c, k("num_attention_heads"), None, path)?,
        intermediate: config_u64(c, k("intermediate_size"), None, path)?,
        max_positions: config_u64(c, "max_position_embeddings", Some(512), path)?,
        // DistilBERT has no token types: one (zero) row, stored by describe.
        type_vocab: match family {
            Family::DistilBert => 1,
            _ => config_u64(c, "type_vocab_size", Some(2), path)?,
        },
        eps: match c.get("layer_norm_eps") {
            None => 1e-12,
            Some(v) => v
                .as_f64()
                .filter(|e| e.is_finite() && *e > 0.0 && *e < 1.0)
                .ok_or_else(|| {
                    unsupported(format!(
                        "\"layer_norm_eps\" must be a number in (0, 1) such as 1e-12, found {v}"
                    ))
                })?,
        },
    };
    if !cfg.hidden.is_multiple_of(cfg.heads) {
        return Err(unsupported(format!(
            "hidden_size {} is not a multiple of num_attention_heads {}",
            cfg.hidden, cfg.heads
        )));
    }
    Ok(cfg)
}

/// The head on top of the encoder.
enum Head {
    Classification {
        id2label: BTreeMap<String, String>,
    },
    Embedding {
        pooling: SentencePooling,
        normalize: bool,
        max_seq_length: Option<u64>,
    },
}

fn read_head(
    path: &Path,
    c: &Value,
    side: &dyn Fn(&str) -> Option<PathBuf>,
    classifier_rows: Option<u64>,
    family: Family,
    notes: &mut Vec<String>,
) -> Result<Head, ConvertError> {
    let unsupported = |reason: String| ConvertError::UnsupportedConfig {
        path: path.to_path_buf(),
        reason,
    };
    let archs = super::architectures(c);
    // The family's names for the same models read as BERT's (RobertaForSequenceClassification →
    // BertForSequenceClassification, XLMRobertaModel → BertModel).
    let archs: Vec<&str> = archs
        .into_iter()
        .map(|a| {
            let stem = family
                .architecture_prefixes()
                .iter()
                .find_map(|p| a.strip_prefix(p))
                .unwrap_or("");
            match stem {
                "ForSequenceClassification" => "BertForSequenceClassification",
                "Model" => "BertModel",
                "ForMaskedLM" => "BertForMaskedLM",
                "ForPreTraining" => "BertForPreTraining",
                _ => a,
            }
        })
        .collect();
    // No architectures, but a classifier among the tensors: a sequence classifier all the same.
    let archs = match (archs.as_slice(), classifier_rows) {
        ([], Some(rows)) => {
            notes.push(format!(
                "config.json names no architecture; the tensors hold a classifier ({rows} labels): read as \
                 BertForSequenceClassification"
            ));
            vec!["BertForSequenceClassification"]
        }
        _ => archs,
    };
    match archs.as_slice() {
        ["BertForSequenceClassification"] => {
            let id2label: BTreeMap<String, String> = match c.get("id2label") {
                Some(Value::Object(m)) => m
                    .iter()
                    .map(|(k, v)| match v {
                        Value::String(label) => Ok((k.clone(), label.clone())),
                        other => Err(unsupported(format!(
                            "id2label[{k:?}] must be a label name, found {other}"
                        ))),
                    })
                    .collect::<Result<_, _>>()?,
                None => {
                    let n = config_u64(c, "num_labels", classifier_rows.or(Some(2)), path)?;
                    (0..n)
                        .map(|i| (i.to_string(), format!("LABEL_{i}")))
                        .collect()
                }
                Some(v) => {
                    return Err(unsupported(format!(
                        "id2label must be an object, found {v}"
                    )))
                }
            };
            // Hugging Face: one label is a regression head (STS-B: the score itself), more are classes.
            match c.get("problem_type").and_then(Value::as_str) {
                None | Some("single_label_classification") => {}
                Some("regression") if id2label.len() == 1 => {}
                Some("regression") => {
                    return Err(unsupported(format!(
                        "problem_type \"regression\" with {} labels: mxrt runs single-score regression \
                         heads (num_labels 1)",
                        id2label.len()
                    )))
                }
                Some(p) => {
                    return Err(unsupported(format!(
                        "problem_type {p:?} is not supported (single_label_classification, or \
                         regression with one label)"
                    )))
                }
            }
            if id2label.len() == 1 {
                notes.push(
                    "one label: a regression head (outputs are scores, e.g. STS-B similarity)".into(),
                );
            }
            // The runtime reads labels 0 .. n: say so now rather than when the file is run.
            BertHead::SequenceClassification {
                num_labels: id2label.len() as u64,
                id2label: id2label.clone(),
                pooler: None,
                classifier: None,
                pooler_activation: None,
            }
            .labels()
            .map_err(|e| unsupported(e.to_string()))?;
            Ok(Head::Classification { id2label })
        }
        [] | ["BertModel"] | ["BertForPreTraining"] | ["BertForMaskedLM"] => {
            let (pooling, normalize, max_seq_length) = sentence_transformers_head(side)?;
            let pooling = match pooling {
                "mean" => SentencePooling::Mean,
                "max" => SentencePooling::Max,
                _ => SentencePooling::Cls,
            };
            Ok(Head::Embedding {
                pooling,
                normalize,
                max_seq_length,
            })
        }
        other => Err(unsupported(format!(
            "architectures {other:?} are not supported (BertForSequenceClassification, or BertModel / \
             BertForPreTraining / BertForMaskedLM read as a sentence encoder)"
        ))),
    }
}

/// Pooling from `1_Pooling/config.json` (else CLS), normalisation from `modules.json`, max length from
/// `sentence_bert_config.json`.
fn sentence_transformers_head(
    side: &dyn Fn(&str) -> Option<PathBuf>,
) -> Result<(&'static str, bool, Option<u64>), ConvertError> {
    let mut pooling = "cls";
    if let Some(p) = side("1_Pooling/config.json") {
        let v = crate::checkpoint::read_json(&p)?;
        let on = |k: &str| v.get(k).and_then(Value::as_bool) == Some(true);
        let modes: Vec<&'static str> = [
            ("pooling_mode_cls_token", "cls"),
            ("pooling_mode_mean_tokens", "mean"),
            ("pooling_mode_max_tokens", "max"),
        ]
        .into_iter()
        .filter(|(k, _)| on(k))
        .map(|(_, m)| m)
        .collect();
        if on("pooling_mode_mean_sqrt_len_tokens") || modes.len() != 1 {
            return Err(ConvertError::UnsupportedConfig {
                path: p,
                reason: "exactly one of pooling_mode_cls_token, pooling_mode_mean_tokens, pooling_mode_max_tokens is supported".into(),
            });
        }
        pooling = modes[0];
    }
    let mut normalize = false;
    if let Some(p) = side("modules.json") {
        let v = crate::checkpoint::read_json(&p)?;
        normalize = v.as_array().into_iter().flatten().any(|m| {
            m.get("type").and_then(Value::as_str) == Some("sentence_transformers.models.Normalize")
        });
    }
    let max_seq_length = match side("sentence_bert_config.json") {
        Some(p) => crate::checkpoint::read_json(&p)?
            .get("max_seq_length")
            .and_then(Value::as_u64),
        None => None,
    };
    Ok((pooling, normalize, max_seq_length))
}

pub fn describe(
    path: &Path,
    c: &Value,
    tensors: &BTreeMap<String, SourceTensor<'_>>,
    side: &dyn Fn(&str) -> Option<PathBuf>,
    family: Family,
) -> Result<ModelDescription, ConvertError> {
    let mut cfg = read_config(path, c, family)?;
    let mut notes = Vec::new();
    let classifier_rows = tensors
        .get(&format!("{}.weight", family.classifier()))
        .and_then(|t| t.shape.first().copied());
    let head = read_head(path, c, side, classifier_rows, family, &mut notes)?;
    let prefix = if tensors.keys().any(|k| k.starts_with(family.module())) {
        family.module()
    } else {
        ""
    };
    // RoBERTa numbers positions from padding_idx + 1 (HF's create_position_ids_from_input_ids): the runtime
    // numbers them from 0, so the table is stored from that row on, which gives the same rows exactly.
    let position_offset = match family {
        Family::Bert | Family::DistilBert | Family::Electra => 0,
        Family::Roberta => {
            let pad = c.get("pad_token_id").and_then(Value::as_u64).unwrap_or(1);
            pad + 1
        }
    };
    let checkpoint_positions = cfg.max_positions;
    // ELECTRA's embeddings may be narrower than the hidden layers: projected by `embeddings_project`.
    let embedding_size = match c.get("embedding_size") {
        Some(v) if family == Family::Electra => {
            let e =
                v.as_u64()
                    .filter(|&e| e > 0)
                    .ok_or_else(|| ConvertError::UnsupportedConfig {
                        path: path.to_path_buf(),
                        reason: format!("\"embedding_size\" must be a positive integer, found {v}"),
                    })?;
            (e != cfg.hidden).then_some(e)
        }
        _ => None,
    };
    let width = embedding_size.unwrap_or(cfg.hidden);
    if position_offset > 0 {
        if position_offset >= cfg.max_positions {
            return Err(ConvertError::UnsupportedConfig {
                path: path.to_path_buf(),
                reason: format!(
                    "pad_token_id + 1 = {position_offset} leaves no rows of the {} positions",
                    cfg.max_positions
                ),
            });
        }
        cfg.max_positions -= position_offset;
        notes.push(format!(
            "RoBERTa-style positions start at padding_idx + 1 = {position_offset}: the position table is \
             stored from that row ({} of its {checkpoint_positions} rows)",
            cfg.max_positions
        ));
    }
    let mut taker = TensorTaker::new(tensors);
    let mut layers: Vec<Layer> = Vec::new();
    let mut planned: Vec<PlannedTensor> = Vec::new();
    let h = cfg.hidden;

    // One layer with its weight matrix (or table) and parameters.
    let mut add = |taker: &mut TensorTaker<'_, '_>,
                   name: String,
                   kind: LayerKind,
                   weight: Option<(&str, Vec<u64>)>,
                   params: &[(&str, Vec<u64>)]|
     -> Result<(), ConvertError> {
        let layer = layers.len();
        layers.push(Layer {
            name: name.clone(),
            kind,
        });
        if let Some((suffix, shape)) = weight {
            let tname = format!("{name}.{suffix}");
            let values = taker.take(&tname, &shape)?;
            planned.push(PlannedTensor {
                name: tname,
                shape,
                values,
                layer,
                role: Role::Weight,
            });
        }
        for (suffix, shape) in params {
            let tname = format!("{name}.{suffix}");
            let values = taker.take(&tname, shape)?;
            planned.push(PlannedTensor {
                name: tname,
                shape: shape.clone(),
                values,
                layer,
                role: Role::Parameter,
            });
        }
        Ok(())
    };

    let e = format!("{prefix}embeddings");
    add(
        &mut taker,
        format!("{e}.word_embeddings"),
        LayerKind::Embedding,
        Some(("weight", vec![cfg.vocab, width])),
        &[],
    )?;
    add(
        &mut taker,
        format!("{e}.position_embeddings"),
        LayerKind::Embedding,
        Some(("weight", vec![checkpoint_positions, width])),
        &[],
    )?;

    let token_types = format!("{e}.token_type_embeddings");
    // DistilBERT's zero token-type table is added once the closure below is done with the lists.
    if family != Family::DistilBert {
        add(
            &mut taker,
            token_types.clone(),
            LayerKind::Embedding,
            Some(("weight", vec![cfg.type_vocab, width])),
            &[],
        )?;
    }
    // Buffers the runtime recomputes: positions 0, 1, 2, ... and token types 0. A checkpoint whose buffers say
    // otherwise would compute something else, so they are checked rather than trusted.
    for (buffer, expect_arange) in [
        (format!("{e}.position_ids"), true),
        (format!("{e}.token_type_ids"), false),
    ] {
        if let Some(t) = tensors.get(&buffer) {
            let values: Vec<i64> = match t.dtype {
                mxrt_format::Encoding::Raw(mxrt_format::RawDtype::I64) => t
                    .data
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect(),
                _ => Vec::new(),
            };
            let standard = !values.is_empty()
                && values
                    .iter()
                    .enumerate()
                    .all(|(i, &v)| v == if expect_arange { i as i64 } else { 0 });
            if !standard {
                return Err(ConvertError::UnsupportedConfig {
                    path: path.to_path_buf(),
                    reason: format!("buffer {buffer:?} is not the standard {} (the runtime would compute something else)", if expect_arange { "0, 1, 2, ..." } else { "all zeros" }),
                });
            }
            taker.ignore(&buffer);
            notes.push(format!(
                "{buffer}: standard buffer, not stored (the runtime computes it)"
            ));
        }
    }
    let linear = |w: Vec<u64>| (Some(("weight", w.clone())), vec![("bias", vec![w[0]])]);
    let norm_params = [("weight", vec![h]), ("bias", vec![h])];
    add(
        &mut taker,
        format!("{e}.LayerNorm"),
        LayerKind::LayerNorm,
        None,
        &[("weight", vec![width]), ("bias", vec![width])],
    )?;
    if embedding_size.is_some() {
        let (w, p) = linear(vec![h, width]);
        add(
            &mut taker,
            format!("{prefix}embeddings_project"),
            LayerKind::Linear,
            w,
            &p,
        )?;
    }
    for i in 0..cfg.layers {
        let l = EncoderLayerNames::of(family.layer_names(), prefix, i);
        for name in [&l.query, &l.key, &l.value, &l.attention_output] {
            let (w, p) = linear(vec![h, h]);
            add(&mut taker, name.clone(), LayerKind::Attention, w, &p)?;
        }
        add(
            &mut taker,
            l.attention_norm.clone(),
            LayerKind::LayerNorm,
            None,
            &norm_params,
        )?;
        let (w, p) = linear(vec![cfg.intermediate, h]);
        add(&mut taker, l.intermediate.clone(), LayerKind::Ffn, w, &p)?;
        let (w, p) = linear(vec![h, cfg.intermediate]);
        add(&mut taker, l.output.clone(), LayerKind::Ffn, w, &p)?;
        add(
            &mut taker,
            l.output_norm.clone(),
            LayerKind::LayerNorm,
            None,
            &norm_params,
        )?;
    }
    let pooler = format!("{prefix}pooler.dense");
    let has_pooler = taker.has(&format!("{pooler}.weight"));
    let head = match head {
        Head::Classification { id2label } => {
            // RoBERTa's head: dense + tanh on <s> (BERT's pooler), then out_proj (BERT's classifier).
            let (head_pooler, head_classifier) = match family {
                Family::Bert => (pooler, "classifier".to_string()),
                Family::Roberta => (
                    "classifier.dense".to_string(),
                    "classifier.out_proj".to_string(),
                ),
                Family::DistilBert => ("pre_classifier".to_string(), "classifier".to_string()),
                Family::Electra => (
                    "classifier.dense".to_string(),
                    "classifier.out_proj".to_string(),
                ),
            };
            let (w, p) = linear(vec![h, h]);
            add(&mut taker, head_pooler.clone(), LayerKind::Pooler, w, &p)?;
            let (w, p) = linear(vec![id2label.len() as u64, h]);
            add(
                &mut taker,
                head_classifier.clone(),
                LayerKind::Classifier,
                w,
                &p,
            )?;
            // Named only when they are not BERT's (description 2.1).
            let named = family != Family::Bert;
            BertHead::SequenceClassification {
                num_labels: id2label.len() as u64,
                id2label,
                pooler: named.then_some(head_pooler),
                classifier: named.then_some(head_classifier),
                pooler_activation: match family {
                    Family::DistilBert => Some("relu".to_string()),
                    Family::Electra => Some("gelu".to_string()),
                    Family::Bert | Family::Roberta => None,
                },
            }
        }
        Head::Embedding {
            pooling,
            normalize,
            max_seq_length,
        } => {
            if has_pooler {
                // Kept so the file is the whole checkpoint; sentence embeddings do not use it.
                let (w, p) = linear(vec![h, h]);
                add(&mut taker, pooler, LayerKind::Pooler, w, &p)?;
            }
            BertHead::SentenceEmbedding {
                pooling,
                normalize,
                max_seq_length,
            }
        }
    };
    // Pre-training heads (masked-LM and next-sentence) of a BertForPreTraining / BertForMaskedLM checkpoint:
    // nothing an encoder or a classifier computes.
    let pretraining: Vec<String> = tensors
        .keys()
        .filter(|k| k.starts_with("cls.predictions.") || k.starts_with("cls.seq_relationship."))
        .cloned()
        .collect();
    if !pretraining.is_empty() {
        for k in &pretraining {
            taker.ignore(k);
        }
        notes.push(format!(
            "{} tensors of pre-training heads (cls.predictions, cls.seq_relationship: masked LM, next \
             sentence) skipped: not used by the encoder or its classifier",
            pretraining.len()
        ));
    }
    taker.finish("bert")?;
    if family == Family::DistilBert {
        // No segments in DistilBERT: a zero row added to every token leaves its embeddings as they are.
        // Third layer, as in BERT (after the word and position tables).
        for t in &mut planned {
            if t.layer >= 2 {
                t.layer += 1;
            }
        }
        layers.insert(
            2,
            Layer {
                name: token_types.clone(),
                kind: LayerKind::Embedding,
            },
        );
        let at = planned
            .iter()
            .position(|t| t.layer > 2)
            .unwrap_or(planned.len());
        planned.insert(
            at,
            PlannedTensor {
                name: format!("{token_types}.weight"),
                shape: vec![1, h],
                values: vec![0.0; h as usize],
                layer: 2,
                role: Role::Weight,
            },
        );
        notes.push(format!(
            "DistilBERT has no token types: {token_types}.weight is stored as one row of zeros (the \
             embeddings are word + position, as DistilBERT computes them)"
        ));
    }
    if position_offset > 0 {
        let table = format!("{e}.position_embeddings.weight");
        let t = planned
            .iter_mut()
            .find(|t| t.name == table)
            .expect("the position table is planned");
        t.values.drain(..(position_offset * width) as usize);
        t.shape = vec![cfg.max_positions, width];
    }

    let hp = BertHyperparameters {
        tensor_prefix: prefix.to_string(),
        vocab_size: cfg.vocab,
        hidden_size: cfg.hidden,
        num_hidden_layers: cfg.layers,
        num_attention_heads: cfg.heads,
        intermediate_size: cfg.intermediate,
        hidden_act: cfg.act.clone(),
        layer_norm_eps: cfg.eps,
        max_position_embeddings: cfg.max_positions,
        type_vocab_size: cfg.type_vocab,
        pad_token_id: c.get("pad_token_id").cloned().unwrap_or(json!(0)),
        head,
        layer_names: family.layer_names(),
        embedding_size,
    };
    Ok(ModelDescription {
        hyperparameters: Hyperparameters::Bert(hp),
        layers,
        tensors: planned,
        notes,
    })
}
