//! The model description of FORMAT.md section 9, typed: what the converter writes into a file's metadata and
//! the runtime and the CLI read back, all through these types. They describe model description 2.0 (the
//! header's minor version; FORMAT.md section 10 says how it evolves: new fields are optional, and section 9
//! names the minor version that added each).
//!
//! [`ModelDescription::from_metadata`] reads the parts a program runs a model from (architecture and
//! hyperparameters, the recipe's per-layer settings, the embedded tokenizer) and rejects a description that
//! does not make a model with a [`DescriptionError`] naming the section and the field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Why a file's metadata is not a model description this version reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptionError {
    #[error(
        "no architecture: this file holds bare tensors (convert the checkpoint directory to get a model)"
    )]
    NoArchitecture,
    #[error("architecture \"{0}\" is not supported (bert, mlp)")]
    UnknownArchitecture(String),
    /// A section does not have the fields and types section 9 gives it.
    #[error("{section}: {reason}")]
    Section {
        /// `hyperparameters`, `recipe.layers`, `tokenizer` or `architecture`.
        section: &'static str,
        reason: String,
    },
    /// The fields parse, but do not fit together (e.g. `id2label` lacks an index).
    #[error("{section}: {reason}")]
    Inconsistent {
        section: &'static str,
        reason: String,
    },
    /// A tensor the description needs is not in the file.
    #[error("tensor \"{}\" is missing", .name.escape_debug())]
    MissingTensor { name: String },
    /// A tensor the description needs has another shape.
    #[error("tensor \"{}\" has shape {}, the model needs {}", .name.escape_debug(), dims(.found), dims(.needed))]
    TensorShape {
        name: String,
        found: Vec<u64>,
        needed: Vec<u64>,
    },
    /// A tensor the description reads as numbers is a raw tensor.
    #[error("tensor \"{}\" is stored as {encoding}: raw bytes, not numbers the model can compute with", .name.escape_debug())]
    RawTensor { name: String, encoding: String },
}

/// A shape as `[a, b]`.
fn dims(d: &[u64]) -> String {
    let parts: Vec<String> = d.iter().map(u64::to_string).collect();
    format!("[{}]", parts.join(", "))
}

/// A tensor a description reads: its name and the shape it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeededTensor {
    pub name: String,
    pub shape: Vec<u64>,
}

fn needed(name: String, shape: &[u64]) -> NeededTensor {
    NeededTensor {
        name,
        shape: shape.to_vec(),
    }
}

/// The parts of a file's description a program needs to run its model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDescription {
    pub hyperparameters: Hyperparameters,
    /// `recipe.layers`, in model order (empty when the recipe has none).
    pub recipe_layers: Vec<RecipeLayer>,
    /// `tokenizer` (BERT files converted with their tokenizer).
    pub tokenizer: Option<TokenizerDescription>,
}

/// `architecture` with its `hyperparameters`.
#[derive(Debug, Clone, PartialEq)]
pub enum Hyperparameters {
    Bert(BertHyperparameters),
    Mlp(MlpHyperparameters),
}

impl Hyperparameters {
    /// The `architecture` value.
    pub fn architecture(&self) -> &'static str {
        match self {
            Hyperparameters::Bert(_) => "bert",
            Hyperparameters::Mlp(_) => "mlp",
        }
    }

    /// The `hyperparameters` object as written: MLP ops leave out tensor names that are their defaults.
    pub fn to_value(&self) -> Value {
        let v = match self {
            Hyperparameters::Bert(h) => serde_json::to_value(h),
            Hyperparameters::Mlp(h) => serde_json::to_value(h).map(|mut v| {
                op_tensor_names(&mut v, OpNames::LeaveOutDefaults);
                v
            }),
        };
        // Serializing these types cannot fail: every field is a string, number, bool, list or map.
        v.unwrap_or(Value::Null)
    }
}

/// `hyperparameters` of `architecture: "bert"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertHyperparameters {
    /// `"bert."` or `""`: prepended to the tensor names.
    #[serde(default)]
    pub tensor_prefix: String,
    pub vocab_size: u64,
    pub hidden_size: u64,
    pub num_hidden_layers: u64,
    pub num_attention_heads: u64,
    pub intermediate_size: u64,
    /// `"gelu"`: exact erf GELU; since 2.1 also `"relu"` and `"gelu_tanh"` (GELU's tanh approximation,
    /// Hugging Face's `gelu_new` / `gelu_pytorch_tanh` / `gelu_fast`). A file using either lists
    /// `hidden_act_relu` / `hidden_act_gelu_tanh` in `requires`: a 2.0 reader would compute GELU.
    #[serde(default = "gelu")]
    pub hidden_act: String,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    pub max_position_embeddings: u64,
    pub type_vocab_size: u64,
    /// As the checkpoint's config gives it (informational).
    #[serde(default)]
    pub pad_token_id: Value,
    pub head: BertHead,
    /// Since 2.1: the width of the embedding tables when it is not `hidden_size` (ELECTRA-small: 128 for a
    /// hidden size of 256); the embeddings are then projected by `<prefix>embeddings_project`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_size: Option<u64>,
    /// Since 2.1: how the encoder layers' tensors are named (`bert` when absent).
    #[serde(default, skip_serializing_if = "LayerNames::is_bert")]
    pub layer_names: LayerNames,
}

/// The naming schemes of encoder layers (the same computation under other names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerNames {
    /// `encoder.layer.i.attention.self.query`, …
    #[default]
    Bert,
    /// DistilBERT's `transformer.layer.i.attention.q_lin`, `sa_layer_norm`, `ffn.lin1`, …
    DistilBert,
}

impl LayerNames {
    fn is_bert(&self) -> bool {
        *self == LayerNames::Bert
    }
}

/// The tensor-name stems of encoder layer `i` (each `<stem>.weight` and `<stem>.bias`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderLayerNames {
    pub query: String,
    pub key: String,
    pub value: String,
    pub attention_output: String,
    pub attention_norm: String,
    pub intermediate: String,
    pub output: String,
    pub output_norm: String,
}

impl EncoderLayerNames {
    /// Layer `i`'s stems under `prefix` in naming scheme `names`.
    pub fn of(names: LayerNames, p: &str, i: u64) -> EncoderLayerNames {
        match names {
            LayerNames::Bert => {
                let l = format!("{p}encoder.layer.{i}");
                EncoderLayerNames {
                    query: format!("{l}.attention.self.query"),
                    key: format!("{l}.attention.self.key"),
                    value: format!("{l}.attention.self.value"),
                    attention_output: format!("{l}.attention.output.dense"),
                    attention_norm: format!("{l}.attention.output.LayerNorm"),
                    intermediate: format!("{l}.intermediate.dense"),
                    output: format!("{l}.output.dense"),
                    output_norm: format!("{l}.output.LayerNorm"),
                }
            }
            LayerNames::DistilBert => {
                let l = format!("{p}transformer.layer.{i}");
                EncoderLayerNames {
                    query: format!("{l}.attention.q_lin"),
                    key: format!("{l}.attention.k_lin"),
                    value: format!("{l}.attention.v_lin"),
                    attention_output: format!("{l}.attention.out_lin"),
                    attention_norm: format!("{l}.sa_layer_norm"),
                    intermediate: format!("{l}.ffn.lin1"),
                    output: format!("{l}.ffn.lin2"),
                    output_norm: format!("{l}.output_layer_norm"),
                }
            }
        }
    }
}

fn gelu() -> String {
    "gelu".into()
}

fn default_layer_norm_eps() -> f64 {
    1e-12
}

impl BertHyperparameters {
    /// The stems of encoder layer `i`'s tensors.
    pub fn layer(&self, i: u64) -> EncoderLayerNames {
        EncoderLayerNames::of(self.layer_names, &self.tensor_prefix, i)
    }

    /// Every tensor a BERT model of this description reads, with its shape (FORMAT.md section 9; the pooler
    /// of a sentence-embedding head is not read).
    pub fn tensors(&self) -> Vec<NeededTensor> {
        let (p, h, i) = (
            &self.tensor_prefix,
            self.hidden_size,
            self.intermediate_size,
        );
        let e = format!("{p}embeddings");
        let width = self.embedding_size.unwrap_or(h);
        let mut out = vec![
            needed(
                format!("{e}.word_embeddings.weight"),
                &[self.vocab_size, width],
            ),
            needed(
                format!("{e}.position_embeddings.weight"),
                &[self.max_position_embeddings, width],
            ),
            needed(
                format!("{e}.token_type_embeddings.weight"),
                &[self.type_vocab_size, width],
            ),
        ];
        let linear = |out: &mut Vec<NeededTensor>, name: String, rows: u64, cols: u64| {
            out.push(needed(format!("{name}.weight"), &[rows, cols]));
            out.push(needed(format!("{name}.bias"), &[rows]));
        };
        let norm = |out: &mut Vec<NeededTensor>, name: String| {
            out.push(needed(format!("{name}.weight"), &[h]));
            out.push(needed(format!("{name}.bias"), &[h]));
        };
        out.push(needed(format!("{e}.LayerNorm.weight"), &[width]));
        out.push(needed(format!("{e}.LayerNorm.bias"), &[width]));
        if self.embedding_size.is_some() {
            linear(&mut out, format!("{p}embeddings_project"), h, width);
        }
        for layer in 0..self.num_hidden_layers {
            let l = self.layer(layer);
            for name in [l.query, l.key, l.value, l.attention_output] {
                linear(&mut out, name, h, h);
            }
            norm(&mut out, l.attention_norm);
            linear(&mut out, l.intermediate, i, h);
            linear(&mut out, l.output, h, i);
            norm(&mut out, l.output_norm);
        }
        if let BertHead::SequenceClassification { id2label, .. } = &self.head {
            let (pooler, classifier) = self.head_layers();
            linear(&mut out, pooler, h, h);
            linear(&mut out, classifier, id2label.len() as u64, h);
        }
        out
    }

    /// The classification head's two layers: the pooler (dense + tanh on the first token) and the output
    /// layer, by name (`<prefix>pooler.dense` and `classifier` unless the head names others).
    pub fn head_layers(&self) -> (String, String) {
        match &self.head {
            BertHead::SequenceClassification {
                pooler, classifier, ..
            } => (
                pooler
                    .clone()
                    .unwrap_or_else(|| format!("{}pooler.dense", self.tensor_prefix)),
                classifier.clone().unwrap_or_else(|| "classifier".into()),
            ),
            BertHead::SentenceEmbedding { .. } => (
                format!("{}pooler.dense", self.tensor_prefix),
                "classifier".into(),
            ),
        }
    }
}

/// `hyperparameters.head`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BertHead {
    /// CLS token → pooler (`pooler.dense`, tanh) → `classifier`.
    SequenceClassification {
        num_labels: u64,
        /// Label names by index (`"0"`, `"1"`, …).
        id2label: BTreeMap<String, String>,
        /// Since 2.1: the name of the dense + tanh layer on the first token when it is not
        /// `<prefix>pooler.dense` (RoBERTa's head: `classifier.dense`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pooler: Option<String>,
        /// Since 2.1: the name of the output layer when it is not `classifier` (RoBERTa:
        /// `classifier.out_proj`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        classifier: Option<String>,
        /// Since 2.1: the pooler's activation when it is not `tanh`: `relu` (DistilBERT's
        /// pre_classifier) or `gelu` (ELECTRA's head).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pooler_activation: Option<String>,
    },
    SentenceEmbedding {
        pooling: SentencePooling,
        #[serde(default)]
        normalize: bool,
        #[serde(default)]
        max_seq_length: Option<u64>,
    },
}

impl BertHead {
    /// Label names in index order (classifiers), checking that `id2label` holds exactly `0 .. n`.
    pub fn labels(&self) -> Result<Vec<String>, DescriptionError> {
        let BertHead::SequenceClassification {
            id2label,
            num_labels,
            ..
        } = self
        else {
            return Ok(Vec::new());
        };
        if *num_labels != id2label.len() as u64 {
            return Err(DescriptionError::Inconsistent {
                section: "hyperparameters",
                reason: format!(
                    "head.num_labels is {num_labels} but head.id2label has {} labels",
                    id2label.len()
                ),
            });
        }
        (0..id2label.len())
            .map(|i| {
                id2label.get(&i.to_string()).cloned().ok_or_else(|| {
                    DescriptionError::Inconsistent {
                        section: "hyperparameters",
                        reason: format!(
                            "head.id2label has {} labels but no label {i}",
                            id2label.len()
                        ),
                    }
                })
            })
            .collect()
    }
}

/// How a sentence embedding pools the last hidden states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SentencePooling {
    Mean,
    Cls,
    Max,
}

/// `hyperparameters` of `architecture: "mlp"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpHyperparameters {
    pub num_features: u64,
    pub num_outputs: u64,
    /// Output names, when the checkpoint's config has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// As the checkpoint's config gives it (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Value>,
    pub ops: Vec<MlpOp>,
}

impl MlpHyperparameters {
    /// Every tensor the op chain reads, with its shape. A linear layer's output width is its weight's row
    /// count, so the shapes follow the chain from `num_features` through `rows_of` (a weight's first
    /// dimension in the file; `None` when the file lacks it, reported as missing).
    pub fn tensors(
        &self,
        rows_of: impl Fn(&str) -> Option<u64>,
    ) -> Result<Vec<NeededTensor>, DescriptionError> {
        // A layer of width 0 computes nothing and leaves callers rows of zero values to split and rank.
        let empty = |what: String| DescriptionError::Inconsistent {
            section: "hyperparameters",
            reason: format!("{what} is 0 wide: every layer of an MLP needs at least one value"),
        };
        if self.num_features == 0 {
            return Err(empty("num_features".into()));
        }
        let mut width = self.num_features;
        let mut out = Vec::new();
        for op in &self.ops {
            match op {
                MlpOp::Linear { weight, bias, .. } => {
                    let rows = rows_of(weight).ok_or_else(|| DescriptionError::MissingTensor {
                        name: weight.clone(),
                    })?;
                    if rows == 0 {
                        return Err(empty(format!("the output of {weight:?}")));
                    }
                    out.push(needed(weight.clone(), &[rows, width]));
                    out.push(needed(bias.clone(), &[rows]));
                    width = rows;
                }
                MlpOp::Affine { scale, shift, .. } => {
                    out.push(needed(scale.clone(), &[width]));
                    out.push(needed(shift.clone(), &[width]));
                }
                MlpOp::LeakyRelu { negative_slope } if !negative_slope.is_finite() => {
                    return Err(DescriptionError::Inconsistent {
                        section: "hyperparameters",
                        reason: format!(
                            "leaky_relu negative_slope {negative_slope} is not a finite number"
                        ),
                    })
                }
                MlpOp::Relu | MlpOp::LeakyRelu { .. } | MlpOp::Softmax => {}
            }
        }
        if width != self.num_outputs {
            return Err(DescriptionError::Inconsistent {
                section: "hyperparameters",
                reason: format!(
                    "num_outputs is {}, but the ops end {width} wide",
                    self.num_outputs
                ),
            });
        }
        Ok(out)
    }
}

/// What [`op_tensor_names`] does to the tensor names of MLP ops.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OpNames {
    LeaveOutDefaults,
    FillInDefaults,
}

/// The tensor fields of each op kind and the suffix of their default names: a linear op named `fc1` reads
/// `fc1.weight` and `fc1.bias` unless it names others, an affine op `bn.scale` and `bn.shift`. Writers leave
/// out names equal to the defaults (a description stays small for tiny models); readers fill them in, so
/// descriptions with every name written (all files before format 2.0) read the same.
fn op_tensor_names(hyperparameters: &mut Value, what: OpNames) {
    let Some(Value::Array(ops)) = hyperparameters.get_mut("ops") else {
        return;
    };
    for op in ops.iter_mut().filter_map(Value::as_object_mut) {
        let fields: &[&str] = match op.get("op").and_then(Value::as_str) {
            Some("linear") => &["weight", "bias"],
            Some("affine") => &["scale", "shift"],
            _ => continue,
        };
        let Some(name) = op.get("name").and_then(Value::as_str).map(str::to_string) else {
            continue;
        };
        for field in fields {
            let default = format!("{name}.{field}");
            match what {
                OpNames::LeaveOutDefaults => {
                    if op.get(*field).and_then(Value::as_str) == Some(default.as_str()) {
                        op.remove(*field);
                    }
                }
                OpNames::FillInDefaults => {
                    op.entry(field.to_string())
                        .or_insert(Value::String(default));
                }
            }
        }
    }
}

/// One op of an MLP, applied in order; the values name tensors. In the file, `weight`/`bias` (linear) and
/// `scale`/`shift` (affine) may be left out when they are `<name>.weight` and so on (description 2.0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum MlpOp {
    /// `y = x Wᵀ + b`.
    Linear {
        name: String,
        weight: String,
        bias: String,
    },
    /// `y = x * scale + shift` per channel.
    Affine {
        name: String,
        scale: String,
        shift: String,
    },
    Relu,
    /// `y = x` for `x ≥ 0`, `negative_slope · x` below (since 2.1; files using it list the feature
    /// `leaky_relu` in `requires`, so that 2.0 readers refuse them by name).
    #[serde(rename = "leaky_relu")]
    LeakyRelu {
        negative_slope: f32,
    },
    Softmax,
}

/// One entry of `recipe.layers`, as far as running the model needs it (other fields are kept in the file
/// and ignored here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipeLayer {
    pub name: String,
    /// How the layer's input is quantized (`"f32"`, an MX encoding, `"fixed:W.F"`; `None`: not applicable).
    #[serde(default)]
    pub activations: Option<String>,
    /// `"nearest"` (default) or `"even"`.
    #[serde(default)]
    pub rounding: Option<String>,
    /// Since 2.2 (feature `channel_scales`): the name of an f32 tensor `[in]` multiplying the layer's input,
    /// channel by channel, before it is quantized.
    #[serde(default)]
    pub input_scale: Option<String>,
    /// Since 2.2 (feature `channel_scales`): the name of an f32 tensor `[out]` multiplying the layer's
    /// product with its weights, row by row, before the bias is added.
    #[serde(default)]
    pub output_scale: Option<String>,
}

impl RecipeLayer {
    /// The names of the channel-scale tensors the layer reads (description 2.2).
    pub fn channel_scale_tensors(&self) -> impl Iterator<Item = &str> {
        self.input_scale
            .iter()
            .chain(&self.output_scale)
            .map(String::as_str)
    }
}

/// `tokenizer`: the embedded tokenizer's format and its files, each a raw `u8` tensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizerDescription {
    /// `"tokenizer.json"` or `"wordpiece-vocab"` (kept as written: readers say which they do not know).
    pub format: String,
    /// File name → tensor name.
    pub files: BTreeMap<String, String>,
}

fn section<T: for<'de> Deserialize<'de>>(
    name: &'static str,
    value: Value,
) -> Result<T, DescriptionError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let reason = plain_words(&e.inner().to_string());
        DescriptionError::Section {
            section: name,
            reason: if path == "." {
                reason
            } else {
                format!("{path}: {reason}")
            },
        }
    })
}

/// serde's message with Rust type names put in the words of FORMAT.md section 9.
fn plain_words(message: &str) -> String {
    const WORDS: [(&str, &str); 11] = [
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected u8", "expected a non-negative integer below 256"),
        ("expected f64", "expected a number"),
        ("expected usize", "expected a non-negative integer"),
        (
            "expected internally tagged enum MlpOp",
            "expected an op object such as {\"op\": \"linear\", \"name\": \"fc1\"}",
        ),
        (
            "expected internally tagged enum BertHead",
            "expected a head object with a \"type\"",
        ),
        (
            "expected variant identifier",
            "expected one of the names FORMAT.md section 9 lists",
        ),
        ("expected a map", "expected an object"),
        ("expected a sequence", "expected an array"),
        ("expected a borrowed string", "expected a string"),
    ];
    let mut m = WORDS.iter().fold(message.to_string(), |m, (rust, plain)| {
        m.replace(rust, plain)
    });
    // `expected struct RecipeLayer`: the Rust type's name means nothing to a reader of the file.
    if let Some(at) = m.find("expected struct ") {
        let rest = &m[at + "expected struct ".len()..];
        let name_end = rest
            .find(|c: char| !c.is_alphanumeric())
            .unwrap_or(rest.len());
        m = format!("{}expected an object{}", &m[..at], &rest[name_end..]);
    }
    m
}

impl ModelDescription {
    /// Checks `file` against the description: every tensor the model reads is present, numeric (not raw)
    /// and of the shape the description needs, and the MLP chain's widths meet `num_outputs`. After this a
    /// runtime can load the model without meeting a tensor it cannot use.
    pub fn check_tensors(&self, file: &crate::MxrtFile<'_>) -> Result<(), DescriptionError> {
        let list = match &self.hyperparameters {
            // Every layer has 16 tensors: a layer count beyond what the file holds is refused before the
            // list is built (a lying count would otherwise allocate without bound).
            Hyperparameters::Bert(h) if h.num_hidden_layers > file.tensors().len() as u64 => {
                return Err(DescriptionError::Inconsistent {
                    section: "hyperparameters",
                    reason: format!(
                        "num_hidden_layers is {}, but the file holds only {} tensors",
                        h.num_hidden_layers,
                        file.tensors().len()
                    ),
                })
            }
            Hyperparameters::Bert(h) => h.tensors(),
            Hyperparameters::Mlp(h) => {
                h.tensors(|name| file.tensor(name).and_then(|t| t.shape.first().copied()))?
            }
        };
        // Channel scales (2.2): present, numeric, one value per channel. Their length is checked against the
        // layer's width where the layer is built, which knows it.
        for layer in &self.recipe_layers {
            for name in layer.channel_scale_tensors() {
                let found = file
                    .tensor(name)
                    .ok_or_else(|| DescriptionError::MissingTensor {
                        name: name.to_string(),
                    })?;
                if found.shape.len() != 1 {
                    return Err(DescriptionError::TensorShape {
                        name: name.to_string(),
                        found: found.shape.clone(),
                        needed: vec![found.shape.iter().product()],
                    });
                }
                if let crate::Encoding::Raw(_) = found.encoding {
                    return Err(DescriptionError::RawTensor {
                        name: name.to_string(),
                        encoding: found.encoding.to_string(),
                    });
                }
            }
        }
        for t in list {
            let found = file
                .tensor(&t.name)
                .ok_or_else(|| DescriptionError::MissingTensor {
                    name: t.name.clone(),
                })?;
            if found.shape != t.shape {
                return Err(DescriptionError::TensorShape {
                    name: t.name,
                    found: found.shape.clone(),
                    needed: t.shape,
                });
            }
            if let crate::Encoding::Raw(_) = found.encoding {
                return Err(DescriptionError::RawTensor {
                    name: t.name,
                    encoding: found.encoding.to_string(),
                });
            }
        }
        Ok(())
    }

    /// The description in `metadata` (a file's metadata object).
    pub fn from_metadata(metadata: &Map<String, Value>) -> Result<Self, DescriptionError> {
        let hp = metadata
            .get("hyperparameters")
            .cloned()
            .unwrap_or(Value::Null);
        let hyperparameters = match metadata.get("architecture") {
            None | Some(Value::Null) => return Err(DescriptionError::NoArchitecture),
            Some(Value::String(a)) if a == "bert" => {
                let h: BertHyperparameters = section("hyperparameters", hp)?;
                h.head.labels()?;
                if h.num_attention_heads == 0
                    || !h.hidden_size.is_multiple_of(h.num_attention_heads)
                {
                    return Err(DescriptionError::Inconsistent {
                        section: "hyperparameters",
                        reason: format!(
                            "hidden_size {} is not a positive multiple of num_attention_heads {}",
                            h.hidden_size, h.num_attention_heads
                        ),
                    });
                }
                Hyperparameters::Bert(h)
            }
            Some(Value::String(a)) if a == "mlp" => {
                let mut hp = hp;
                op_tensor_names(&mut hp, OpNames::FillInDefaults);
                Hyperparameters::Mlp(section("hyperparameters", hp)?)
            }
            Some(Value::String(a)) => return Err(DescriptionError::UnknownArchitecture(a.clone())),
            Some(other) => {
                return Err(DescriptionError::Section {
                    section: "architecture",
                    reason: format!("expected a name, found {other}"),
                })
            }
        };
        let recipe_layers = match metadata.get("recipe").and_then(|r| r.get("layers")) {
            None | Some(Value::Null) => Vec::new(),
            Some(layers) => section("recipe.layers", layers.clone())?,
        };
        let tokenizer = match metadata.get("tokenizer") {
            None | Some(Value::Null) => None,
            Some(t) => Some(section("tokenizer", t.clone())?),
        };
        Ok(ModelDescription {
            hyperparameters,
            recipe_layers,
            tokenizer,
        })
    }
}

#[cfg(test)]
mod tests;
