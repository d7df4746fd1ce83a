//! Model descriptions: which layers a checkpoint has, what kind each is, and the tensors to store (in f32,
//! after exact graph rewrites such as BatchNorm folding). Architectures: `bert` and `mlp`.

pub mod bert;
pub mod mlp;
pub mod names;

use std::collections::BTreeMap;

use serde_json::Value;

use mxrt_format::description::Hyperparameters;

use crate::error::ConvertError;
use crate::input::SourceTensor;

/// Layer kinds a recipe can select (`kind = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    Embedding,
    Attention,
    Ffn,
    Pooler,
    Classifier,
    Linear,
    BatchNorm,
    LayerNorm,
}

impl LayerKind {
    pub const ALL: [LayerKind; 8] = [
        LayerKind::Embedding,
        LayerKind::Attention,
        LayerKind::Ffn,
        LayerKind::Pooler,
        LayerKind::Classifier,
        LayerKind::Linear,
        LayerKind::BatchNorm,
        LayerKind::LayerNorm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LayerKind::Embedding => "embedding",
            LayerKind::Attention => "attention",
            LayerKind::Ffn => "ffn",
            LayerKind::Pooler => "pooler",
            LayerKind::Classifier => "classifier",
            LayerKind::Linear => "linear",
            LayerKind::BatchNorm => "batch_norm",
            LayerKind::LayerNorm => "layer_norm",
        }
    }

    pub fn parse(s: &str) -> Option<LayerKind> {
        LayerKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Layers that multiply their input by a weight matrix: activation encodings and default pruning apply.
    pub fn is_linear_like(self) -> bool {
        matches!(
            self,
            LayerKind::Attention
                | LayerKind::Ffn
                | LayerKind::Pooler
                | LayerKind::Classifier
                | LayerKind::Linear
        )
    }
}

/// What a stored tensor is to its layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A weight matrix or embedding table: gets the layer's weight encoding, may be pruned.
    Weight,
    /// Biases, norm and per-channel affine parameters: stored f32.
    Parameter,
}

/// A tensor to store, in f32.
#[derive(Debug, Clone)]
pub struct PlannedTensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub values: Vec<f32>,
    /// Index into `ModelDescription::layers`.
    pub layer: usize,
    pub role: Role,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Layer {
    pub name: String,
    pub kind: LayerKind,
}

/// A model ready for the recipe: layers, tensors, and the metadata the runtime needs.
#[derive(Debug)]
pub struct ModelDescription {
    /// The architecture and its hyperparameters, as `mxrt-format` types them (FORMAT.md section 9).
    pub hyperparameters: Hyperparameters,
    pub layers: Vec<Layer>,
    pub tensors: Vec<PlannedTensor>,
    /// Things the user should know (buffers ignored, BatchNorms folded).
    pub notes: Vec<String>,
}

/// Builds the description for the checkpoint's config.
pub fn describe(
    config_path: &std::path::Path,
    config: &Value,
    tensors: &BTreeMap<String, SourceTensor<'_>>,
    side: &dyn Fn(&str) -> Option<std::path::PathBuf>,
    fold_batch_norm: bool,
) -> Result<ModelDescription, ConvertError> {
    let unsupported = |reason: String| ConvertError::UnsupportedConfig {
        path: config_path.to_path_buf(),
        reason,
    };
    let (model_type, inferred) = match config.get("model_type").and_then(Value::as_str) {
        Some(t) => (t.to_string(), None),
        None => match infer_model_type(config, tensors) {
            Some((t, why)) => (t.to_string(), Some(why)),
            None => {
                return Err(unsupported(
                    "no \"model_type\" in config, and neither its \"architectures\" nor the tensor names \
                     say which model it is (add \"model_type\": \"bert\" or \"mlp\")"
                        .into(),
                ))
            }
        },
    };
    let mut desc = match model_type.as_str() {
        "bert" | "roberta" | "xlm-roberta" | "camembert" | "distilbert" | "electra" => {
            let family = bert::Family::of(&model_type).expect("a family of the match arm");
            bert::describe(config_path, config, tensors, side, family)
        }
        "mlp" => mlp::describe(config_path, config, tensors, fold_batch_norm),
        other => Err(unsupported(format!(
            "model_type {other:?} is not supported (supported: \"bert\", \"roberta\", \"xlm-roberta\", \
             \"camembert\", \"distilbert\", \"electra\", \"mlp\")"
        ))),
    }?;
    if let Some(why) = inferred {
        desc.notes.insert(
            0,
            format!("config.json has no \"model_type\": {model_type} inferred from {why}"),
        );
    }
    Ok(desc)
}

/// The names in a config's `architectures` list (empty when there is none).
pub(crate) fn architectures(config: &Value) -> Vec<&str> {
    config
        .get("architectures")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// The model type of a config without `model_type` (older bert-tiny style configs): from `architectures`
/// (`Bert…`), else from the tensor names (a BERT word embedding table), else from an MLP config's `layers`.
fn infer_model_type(
    config: &Value,
    tensors: &BTreeMap<String, SourceTensor<'_>>,
) -> Option<(&'static str, String)> {
    let archs = architectures(config);
    for (prefix, model_type) in [
        ("Bert", "bert"),
        ("XLMRoberta", "xlm-roberta"),
        ("Roberta", "roberta"),
        ("Camembert", "camembert"),
        ("DistilBert", "distilbert"),
        ("Electra", "electra"),
    ] {
        if let Some(a) = archs.iter().find(|a| a.starts_with(prefix)) {
            return Some((model_type, format!("architectures {a:?}")));
        }
    }
    if archs.is_empty() {
        for (name, model_type) in [
            ("bert.embeddings.word_embeddings.weight", "bert"),
            ("roberta.embeddings.word_embeddings.weight", "roberta"),
            ("distilbert.embeddings.word_embeddings.weight", "distilbert"),
            ("electra.embeddings.word_embeddings.weight", "electra"),
            ("embeddings.word_embeddings.weight", "bert"),
        ] {
            if tensors.contains_key(name) && config.get("hidden_size").is_some() {
                return Some((model_type, format!("the tensor names ({name})")));
            }
        }
        if config.get("layers").is_some_and(Value::is_array) && config.get("num_features").is_some()
        {
            return Some(("mlp", "its \"layers\" and \"num_features\"".into()));
        }
    }
    None
}

/// Takes the tensors named in the description out of the checkpoint, checking shapes and finiteness
/// later (the pipeline); here: present, right shape, floating point.
pub(crate) struct TensorTaker<'m, 'a> {
    tensors: &'m BTreeMap<String, SourceTensor<'a>>,
    used: std::collections::BTreeSet<String>,
}

impl<'m, 'a> TensorTaker<'m, 'a> {
    pub fn new(tensors: &'m BTreeMap<String, SourceTensor<'a>>) -> Self {
        TensorTaker {
            tensors,
            used: Default::default(),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The f32 values of `name`, which must have shape `expected`.
    pub fn take(&mut self, name: &str, expected: &[u64]) -> Result<Vec<f32>, ConvertError> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| ConvertError::MissingTensor {
                name: name.to_string(),
                expected: expected.to_vec(),
            })?;
        if t.shape != expected {
            return Err(ConvertError::ShapeMismatch {
                name: name.to_string(),
                expected: expected.to_vec(),
                found: t.shape.clone(),
            });
        }
        let values = t.to_f32().ok_or_else(|| ConvertError::UnsupportedDtype {
            tensor: name.to_string(),
            path: std::path::PathBuf::from("(checkpoint)"),
            dtype: format!("{} (a floating-point tensor is required here)", t.dtype),
        })?;
        self.used.insert(name.to_string());
        Ok(values)
    }

    /// Marks a known buffer as deliberately unused.
    pub fn ignore(&mut self, name: &str) -> bool {
        self.tensors.contains_key(name) && self.used.insert(name.to_string())
    }

    /// Fails if the checkpoint holds tensors nobody took.
    pub fn finish(self, architecture: &str) -> Result<(), ConvertError> {
        let extra: Vec<String> = self
            .tensors
            .keys()
            .filter(|n| !self.used.contains(*n))
            .cloned()
            .collect();
        if extra.is_empty() {
            Ok(())
        } else {
            Err(ConvertError::ExtraTensors {
                architecture: architecture.to_string(),
                names: extra,
            })
        }
    }
}
