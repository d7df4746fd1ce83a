//! Converting a model checkpoint: describe it, resolve the recipe per layer, prune, encode, measure what each
//! tensor lost, embed the tokenizer, and write one `.mxrt` file atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mxrt_format::{
    encode_f32, encode_raw, write_atomically, Encoding, FileBuilder, RawDtype, SparsePolicy,
};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::checkpoint::Checkpoint;
use crate::error::ConvertError;
use crate::fidelity::{measure, Fidelity};
use crate::input::{check_finite, provenance_entry};
use crate::model::{self, LayerKind, ModelDescription, Role};
use crate::prune::{prune_scope, Scope};
use crate::recipe::{LayerRecipe, Recipe};

/// Options of a model conversion.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    pub recipe: Recipe,
    /// Where the recipe came from, for the record (a file name, or "command line").
    pub recipe_source: String,
    pub embed_tokenizer: bool,
    pub allow_nonfinite: bool,
    pub no_sparse: bool,
    /// Alignment of the data planes in the file.
    pub plane_align: mxrt_format::PlaneAlign,
    /// How the recipe's fixed-point fraction widths were calibrated (data, its hash, method, per-layer
    /// choices), stored as the recipe's `calibration` record.
    pub calibration: Option<Value>,
    /// Channel scales per layer name (FORMAT.md section 9, description 2.2): the layer computes
    /// `s_out ⊙ (quant(s_in ⊙ x) · Wᵀ) + b` with the stored weight `W[r][i] / (s_out[r] · s_in[i])`, so that
    /// powers of two leave the model's function unchanged and move precision where quantization needs it.
    pub channel_scales: BTreeMap<String, LayerScales>,
}

/// One layer's channel scales: `input` over its input channels (columns), `output` over its rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LayerScales {
    pub input: Option<Vec<f32>>,
    pub output: Option<Vec<f32>>,
}

impl LayerScales {
    /// `w` (`[rows, cols]` row-major) as the layer stores it: `w[r][i] / (output[r] · input[i])`.
    pub fn stored_weight(&self, w: &[f32], cols: usize) -> Vec<f32> {
        self.map_weight(w, cols, |v, s| v / s)
    }

    /// The weight a layer computes with, from its stored weight: `stored[r][i] · output[r] · input[i]`.
    pub fn effective_weight(&self, stored: &[f32], cols: usize) -> Vec<f32> {
        self.map_weight(stored, cols, |v, s| v * s)
    }

    fn map_weight(&self, w: &[f32], cols: usize, f: impl Fn(f32, f32) -> f32) -> Vec<f32> {
        let one = |v: &Option<Vec<f32>>, i: usize| v.as_ref().map_or(1.0, |s| s[i]);
        w.chunks(cols.max(1))
            .enumerate()
            .flat_map(|(r, row)| {
                let out = one(&self.output, r);
                let f = &f;
                row.iter()
                    .enumerate()
                    .map(move |(i, &v)| f(v, out * one(&self.input, i)))
            })
            .collect()
    }

    /// A short fingerprint of the scales (the encode memo's key: the same tensor stored under other scales
    /// is another tensor).
    fn fingerprint(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for v in [&self.input, &self.output] {
            v.as_ref()
                .map(|s| s.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
                .hash(&mut h);
        }
        format!("{:016x}", h.finish())
    }
}

/// Settings given beside (or instead of) a recipe file, applied over its default as `mxrt convert`'s flags
/// are (`--weights`, `--activations`, `--rounding`, `--prune/--sparsity/--scope/--seed`).
#[derive(Debug, Clone, Default)]
pub struct Shortcuts {
    /// Every layer's weight encoding; without it and without a recipe, `mxint8`.
    pub weights: Option<String>,
    pub activations: Option<String>,
    pub rounding: Option<String>,
    /// `(method, sparsity, scope, seed)`: `l1` or `random`, in [0, 1), `local` or `global`.
    pub prune: Option<(String, f64, String, u64)>,
}

impl ModelOptions {
    /// The recipe file (if any) with the shortcuts applied to its default; the tokenizer embedded, plane
    /// alignment `auto`, sparse storage where smaller, non-finite weights refused.
    pub fn from_recipe(
        recipe_file: Option<&std::path::Path>,
        shortcuts: &Shortcuts,
    ) -> Result<ModelOptions, ConvertError> {
        let (mut recipe, source) = match recipe_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConvertError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                let recipe = Recipe::from_toml(&text)
                    .map_err(|e| ConvertError::Recipe(format!("in {}: {e}", path.display())))?;
                (recipe, path.display().to_string())
            }
            None => (Recipe::default(), "command line".to_string()),
        };
        let d = &mut recipe.default;
        if let Some(w) = &shortcuts.weights {
            d.weights = Some(w.clone());
        } else if recipe_file.is_none() {
            d.weights = Some("mxint8".into());
        }
        if let Some(x) = &shortcuts.activations {
            d.activations = Some(x.clone());
        }
        if let Some(r) = &shortcuts.rounding {
            d.rounding = Some(r.clone());
        }
        if let Some((method, sparsity, scope, seed)) = &shortcuts.prune {
            d.prune = Some(crate::recipe::PruneSetting::On {
                method: method.clone(),
                sparsity: *sparsity,
                scope: scope.clone(),
                seed: *seed,
            });
        }
        Ok(ModelOptions {
            recipe,
            recipe_source: source,
            embed_tokenizer: true,
            allow_nonfinite: false,
            no_sparse: false,
            plane_align: mxrt_format::PlaneAlign::Auto,
            calibration: None,
            channel_scales: Default::default(),
        })
    }
}

/// One stored tensor: what it became and what it lost.
#[derive(Debug, Clone, Serialize)]
pub struct TensorReport {
    pub name: String,
    pub layer: String,
    pub kind: LayerKind,
    /// `weight` (matrix or table: gets the recipe's encoding) or `parameter` (bias, norm: f32).
    pub role: Role,
    pub shape: Vec<u64>,
    pub encoding: String,
    pub sparse: bool,
    pub bytes: u64,
    pub fp32_bytes: u64,
    pub bits_per_weight: f64,
    /// Fraction of stored values that are zero (pruned, pre-pruned or rounded to zero).
    pub sparsity: f64,
    pub pruned: bool,
    #[serde(flatten)]
    pub fidelity: Fidelity,
}

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub tensor_bytes: u64,
    pub fp32_bytes: u64,
    pub saving_percent: f64,
    pub file_bytes: u64,
    /// Bytes of the checkpoint's safetensors file(s).
    pub source_bytes: u64,
    /// Worst SQNR over tensors that are not exact.
    pub worst_sqnr: Option<(String, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    pub output: PathBuf,
    pub architecture: String,
    pub layers: Vec<LayerRecipe>,
    pub tensors: Vec<TensorReport>,
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
    pub totals: Totals,
    pub seconds: f64,
}

/// A checkpoint read and described once, from which any number of recipes can be built (`mxrt sweep` builds
/// one file image per point without touching the disk).
pub struct Source {
    ckpt: Checkpoint,
    desc: ModelDescription,
    /// With [`Source::memoize_encodings`]: tensors already encoded by an earlier [`Source::build`]
    /// (unpruned ones only), by tensor and encoding settings. `mxrt search` and `convert --calib-refine` build
    /// the same checkpoint hundreds of times with most tensors unchanged, and encoding plus measuring every
    /// tensor was most of a build's time. (A single conversion does not keep them: its builder holds the
    /// encoded tensors already.)
    encoded: Option<std::sync::Mutex<EncodeMemo>>,
}

/// Stored bytes the memo of a [`Source`] holds at most; tensors encoded past it are not kept.
const ENCODE_MEMO_BYTES: u64 = 256 << 20;

/// What [`Source::build`] computes for one tensor under one encoding, kept for the next build.
#[derive(Default)]
struct EncodeMemo {
    entries: std::collections::HashMap<(usize, String), std::sync::Arc<Encoded>>,
    bytes: u64,
}

/// An encoded tensor and what its report needs.
struct Encoded {
    tensor: mxrt_format::EncodedTensor,
    zero_count: u64,
    fidelity: Fidelity,
}

/// A converted model held in memory: the complete file image and what each tensor lost.
pub struct Built {
    pub bytes: Vec<u8>,
    pub report: ModelReport,
}

impl Source {
    /// Reads the checkpoint and describes the model; non-finite weights are refused unless `allow_nonfinite`.
    pub fn open(inputs: &[PathBuf], allow_nonfinite: bool) -> Result<Source, ConvertError> {
        Source::open_with(inputs, allow_nonfinite, true)
    }

    /// As [`Source::open`]; `fold_batch_norm = false` keeps a BatchNorm that follows a Linear as its own
    /// affine op (the recipe's `fold_batch_norm`).
    pub fn open_with(
        inputs: &[PathBuf],
        allow_nonfinite: bool,
        fold_batch_norm: bool,
    ) -> Result<Source, ConvertError> {
        let ckpt = Checkpoint::open(inputs)?;
        let (mut source_tensors, mut read_notes) = ckpt.tensors()?;
        let side = |rel: &str| ckpt.side_file(rel);
        read_notes.extend(model::names::normalize(&mut source_tensors, &side)?);
        let mut desc = model::describe(
            &ckpt.config_path,
            &ckpt.config,
            &source_tensors,
            &side,
            fold_batch_norm,
        )?;
        desc.notes.splice(0..0, read_notes);
        if !allow_nonfinite {
            for t in &desc.tensors {
                check_finite(&t.name, &t.values)?;
            }
        }
        Ok(Source {
            ckpt,
            desc,
            encoded: None,
        })
    }

    /// Keeps each tensor's encoding (up to [`ENCODE_MEMO_BYTES`]) for later builds of this source: for callers
    /// that build it many times with mostly the same encodings.
    pub fn memoize_encodings(mut self) -> Source {
        self.encoded = Some(Default::default());
        self
    }

    pub fn architecture(&self) -> &str {
        self.desc.hyperparameters.architecture()
    }

    pub fn layers(&self) -> &[model::Layer] {
        &self.desc.layers
    }

    /// The FP32 values of the weight matrices/tables of layer `layer` (biases and norms excluded).
    pub fn layer_weights(&self, layer: usize) -> impl Iterator<Item = &[f32]> {
        self.desc
            .tensors
            .iter()
            .filter(move |t| t.layer == layer && t.role == Role::Weight)
            .map(|t| t.values.as_slice())
    }

    /// The layer's weight matrix `(values, rows, cols)`, when it has exactly one and it is 2-D.
    pub fn weight_matrix(&self, layer: usize) -> Option<(&[f32], usize, usize)> {
        let t = &self.desc.tensors[self.weight_matrix_index(layer)?];
        Some((
            t.values.as_slice(),
            t.shape[0] as usize,
            t.shape[1] as usize,
        ))
    }

    /// The index of the layer's one 2-D weight matrix among the tensors.
    fn weight_matrix_index(&self, layer: usize) -> Option<usize> {
        let mut m = (self.desc.tensors.iter().enumerate())
            .filter(|(_, t)| t.layer == layer && t.role == Role::Weight);
        match (m.next(), m.next()) {
            (Some((i, t)), None) if t.shape.len() == 2 => Some(i),
            _ => None,
        }
    }

    /// The model's architecture and hyperparameters (FORMAT.md section 9).
    pub fn hyperparameters(&self) -> &mxrt_format::description::Hyperparameters {
        &self.desc.hyperparameters
    }

    /// Bytes of the checkpoint's safetensors file(s).
    pub fn source_bytes(&self) -> u64 {
        self.ckpt.files().iter().map(|f| f.len()).sum()
    }

    /// Tensor `i` encoded (from `pruned` values when given, else its own) and measured against its FP32
    /// values; unpruned results come from (and go to) the memo.
    fn encode(
        &self,
        i: usize,
        pruned: Option<&Vec<f32>>,
        scales: Option<&LayerScales>,
        encoding: Encoding,
        rounding: mxrt_format::Rounding,
        policy: SparsePolicy,
    ) -> Result<std::sync::Arc<Encoded>, ConvertError> {
        let t = &self.desc.tensors[i];
        let scaled = scales.map(|s| s.fingerprint()).unwrap_or_default();
        let key = (i, format!("{encoding}|{rounding:?}|{policy:?}|{scaled}"));
        // No memo, or a pruned copy (its values are not the tensor's own): encode, keep nothing. The lock is
        // not held while encoding: other threads' trials build at the same time.
        let memo = || {
            self.encoded
                .as_ref()
                .filter(|_| pruned.is_none())
                .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
        };
        if let Some(e) = memo().and_then(|m| m.entries.get(&key).cloned()) {
            return Ok(e);
        }
        let values = pruned.unwrap_or(&t.values);
        let cols = t.shape.get(1).copied().unwrap_or(1) as usize;
        let (tensor, fidelity) = match scales {
            None => {
                let tensor = encode_f32(&t.name, &t.shape, values, encoding, rounding, policy)?;
                let fidelity = measure(&t.values, &tensor.dequantize()?);
                (tensor, fidelity)
            }
            // Stored scaled; measured as the layer computes with it.
            Some(s) => {
                let stored = s.stored_weight(values, cols);
                let tensor = encode_f32(&t.name, &t.shape, &stored, encoding, rounding, policy)?;
                let effective = s.effective_weight(&tensor.dequantize()?, cols);
                (tensor, measure(&t.values, &effective))
            }
        };
        let e = std::sync::Arc::new(Encoded {
            zero_count: tensor.zero_count()?,
            tensor,
            fidelity,
        });
        if let Some(mut memo) = memo() {
            let bytes = e.tensor.stored_bytes();
            if memo.bytes + bytes <= ENCODE_MEMO_BYTES {
                memo.bytes += bytes;
                memo.entries.insert(key, e.clone());
            }
        }
        Ok(e)
    }

    /// Names the channel-scale tensors in the recipe entries of the layers `scales` lists, after checking
    /// each layer has one weight matrix the scales fit; gives the index of each such weight tensor and its
    /// layer's name.
    fn attach_channel_scales(
        &self,
        layers: &mut [LayerRecipe],
        scales: &BTreeMap<String, LayerScales>,
    ) -> Result<BTreeMap<usize, String>, ConvertError> {
        let mut weights = BTreeMap::new();
        for (name, s) in scales {
            let bad = |reason: String| {
                ConvertError::Recipe(format!("channel scales of {name}: {reason}"))
            };
            let li = layers
                .iter()
                .position(|l| &l.name == name && l.activations.is_some())
                .ok_or_else(|| bad("no linear layer has this name".into()))?;
            let ti = self
                .weight_matrix_index(li)
                .ok_or_else(|| bad("the layer has no single weight matrix".into()))?;
            let (_, rows, cols) = self.weight_matrix(li).expect("the index was found");
            for (what, v, len) in [("input", &s.input, cols), ("output", &s.output, rows)] {
                if let Some(v) = v {
                    if v.len() != len {
                        return Err(bad(format!("{} {what} scales for {len} channels", v.len())));
                    }
                    if let Some(x) = v.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
                        return Err(bad(format!(
                            "{what} scale {x}: scales must be positive and finite"
                        )));
                    }
                }
            }
            let l = &mut layers[li];
            l.input_scale = s.input.as_ref().map(|_| format!("{name}.input_scale"));
            l.output_scale = s.output.as_ref().map(|_| format!("{name}.output_scale"));
            weights.insert(ti, name.clone());
        }
        Ok(weights)
    }

    /// Resolves the recipe, prunes copies of the affected weights, encodes every tensor, measures what each
    /// lost, embeds the tokenizer and lays out the file image. `report.output` is `output` (where the caller
    /// will put the bytes, if anywhere).
    pub fn build(
        &self,
        output: &Path,
        options: &ModelOptions,
        progress: &mut dyn FnMut(usize, usize, &str),
    ) -> Result<Built, ConvertError> {
        let start = Instant::now();
        let desc = &self.desc;
        let tensors = &desc.tensors;
        let has_weight = |li: usize| {
            tensors
                .iter()
                .any(|t| t.layer == li && t.role == Role::Weight)
        };
        let (mut layers, warnings) = options.recipe.resolve(&desc.layers, &has_weight)?;
        let scaled_weights = self.attach_channel_scales(&mut layers, &options.channel_scales)?;

        // Prune copies of the affected weights (the source stays untouched for the next build).
        let targets: Vec<usize> = (0..tensors.len())
            .filter(|&i| {
                tensors[i].role == Role::Weight && layers[tensors[i].layer].prune.is_some()
            })
            .collect();
        let mut pruned: BTreeMap<usize, Vec<f32>> = targets
            .iter()
            .map(|&i| (i, tensors[i].values.clone()))
            .collect();
        let mut groups: BTreeMap<(u8, u64, u64), Vec<usize>> = BTreeMap::new();
        for &i in &targets {
            let Some(p) = layers[tensors[i].layer].prune else {
                continue;
            };
            match p.scope {
                Scope::Local => {
                    let values = pruned.get_mut(&i).expect("every target has a copy");
                    prune_scope(&mut [values.as_mut_slice()], p.method, p.sparsity, p.seed)
                }
                Scope::Global => groups
                    .entry((p.method as u8, p.sparsity.to_bits(), p.seed))
                    .or_default()
                    .push(i),
            }
        }
        for members in groups.values() {
            let p = layers[tensors[members[0]].layer]
                .prune
                .expect("grouped tensors are pruned");
            let mut slices: Vec<&mut [f32]> = pruned
                .iter_mut()
                .filter(|(i, _)| members.contains(i))
                .map(|(_, v)| v.as_mut_slice())
                .collect();
            prune_scope(&mut slices, p.method, p.sparsity, p.seed);
        }

        // Encode and measure.
        let tokenizer_files =
            if desc.hyperparameters.architecture() == "bert" && options.embed_tokenizer {
                Some(choose_tokenizer(&self.ckpt)?)
            } else {
                None
            };
        let minor = description_minor(&desc.hyperparameters, &layers, &options.recipe).max(
            u16::from(matches!(tokenizer_files, Some((BYTE_LEVEL_BPE, _)))),
        );
        let mut builder = FileBuilder::new(Map::new())?
            .plane_align(options.plane_align)
            .description_minor(minor);
        let mut reports = Vec::with_capacity(tensors.len());
        let total = tensors.len();
        for (i, t) in tensors.iter().enumerate() {
            progress(i, total, &t.name);
            let lr = &layers[t.layer];
            let (encoding, sparse_allowed) = match (t.role, lr.weights, lr.biases) {
                (Role::Weight, Some(spec), _) => (spec.encoding, !options.no_sparse),
                // The recipe's bias encoding (MASE quantizes biases too); other parameters stay f32.
                (Role::Parameter, _, Some(b)) if t.name.ends_with(".bias") => (b, false),
                _ => (Encoding::F32, false),
            };
            let policy = if sparse_allowed {
                SparsePolicy::IfSmaller
            } else {
                SparsePolicy::Never
            };
            let scales = scaled_weights
                .get(&i)
                .and_then(|name| options.channel_scales.get(name));
            let e = self.encode(i, pruned.get(&i), scales, encoding, lr.rounding, policy)?;
            let encoded = &e.tensor;
            let numel = t.values.len().max(1) as f64;
            reports.push(TensorReport {
                name: t.name.clone(),
                layer: lr.name.clone(),
                kind: lr.kind,
                role: t.role,
                shape: t.shape.clone(),
                encoding: encoded.encoding.to_string(),
                sparse: encoded.sparse,
                bytes: encoded.stored_bytes(),
                fp32_bytes: 4 * t.values.len() as u64,
                bits_per_weight: encoded.stored_bytes() as f64 * 8.0 / numel,
                sparsity: e.zero_count as f64 / numel,
                pruned: pruned.contains_key(&i),
                fidelity: e.fidelity,
            });
            builder.push(encoded.clone())?;
        }
        progress(total, total, "");
        // The channel-scale vectors, f32, after the checkpoint's tensors.
        for lr in &layers {
            let Some(scales) = options.channel_scales.get(&lr.name) else {
                continue;
            };
            let named = [
                (&lr.input_scale, &scales.input),
                (&lr.output_scale, &scales.output),
            ];
            for (name, values) in named {
                let (Some(name), Some(values)) = (name, values) else {
                    continue;
                };
                let shape = [values.len() as u64];
                let tensor = encode_f32(
                    name,
                    &shape,
                    values,
                    Encoding::F32,
                    mxrt_format::Rounding::Nearest,
                    SparsePolicy::Never,
                )?;
                reports.push(TensorReport {
                    name: name.clone(),
                    layer: lr.name.clone(),
                    kind: lr.kind,
                    role: Role::Parameter,
                    shape: shape.to_vec(),
                    encoding: tensor.encoding.to_string(),
                    sparse: false,
                    bytes: tensor.stored_bytes(),
                    fp32_bytes: 0, // the FP32 checkpoint has no such tensor
                    bits_per_weight: 32.0,
                    sparsity: 0.0,
                    pruned: false,
                    fidelity: measure(values, values),
                });
                builder.push(tensor)?;
            }
        }

        let ckpt = &self.ckpt;
        let mut sources: Vec<Value> = ckpt.files().iter().map(|f| f.provenance()).collect();
        sources.push(side_file_provenance(&ckpt.config_path)?);
        let tokenizer = match tokenizer_files {
            Some(files) => Some(embed_tokenizer(ckpt, files, &mut builder, &mut sources)?),
            None => None,
        };
        let mut recipe_json = options.recipe.to_json();
        recipe_json["source"] = json!(options.recipe_source);
        recipe_json["layers"] =
            serde_json::to_value(&layers).map_err(|e| ConvertError::Recipe(e.to_string()))?;
        if let Some(c) = &options.calibration {
            recipe_json["calibration"] = c.clone();
        }
        recipe_json["sparse"] = json!(if options.no_sparse {
            "never"
        } else {
            "if-smaller"
        });
        let mut meta = Map::new();
        meta.insert(
            "architecture".into(),
            json!(desc.hyperparameters.architecture()),
        );
        meta.insert("hyperparameters".into(), desc.hyperparameters.to_value());
        meta.insert("recipe".into(), recipe_json);
        let requires = required_features(&desc.hyperparameters, &layers);
        if !requires.is_empty() {
            meta.insert("requires".into(), json!(requires));
        }
        meta.insert(
            "provenance".into(),
            json!({"converter": crate::CONVERTER, "sources": sources, "notes": desc.notes}),
        );
        if let Some(t) = tokenizer {
            meta.insert("tokenizer".into(), t);
        }
        builder.set_metadata(meta)?;
        let bytes = builder.to_bytes()?;

        let tensor_bytes: u64 = reports.iter().map(|r| r.bytes).sum();
        let fp32_bytes: u64 = reports.iter().map(|r| r.fp32_bytes).sum();
        let worst_sqnr = reports
            .iter()
            .filter_map(|r| r.fidelity.sqnr_db.map(|s| (r.name.clone(), s)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let report = ModelReport {
            output: output.to_path_buf(),
            architecture: desc.hyperparameters.architecture().to_string(),
            layers,
            tensors: reports,
            notes: desc.notes.clone(),
            warnings,
            totals: Totals {
                tensor_bytes,
                fp32_bytes,
                saving_percent: 100.0 * (1.0 - tensor_bytes as f64 / fp32_bytes.max(1) as f64),
                file_bytes: bytes.len() as u64,
                source_bytes: self.source_bytes(),
                worst_sqnr,
            },
            seconds: start.elapsed().as_secs_f64(),
        };
        Ok(Built { bytes, report })
    }
}

/// Whether an MLP uses `leaky_relu`: a field that changes results, so the file lists it in `requires` and
/// 2.0 readers refuse it by name instead of misreading it.
fn uses_leaky_relu(hp: &mxrt_format::description::Hyperparameters) -> bool {
    use mxrt_format::description::{Hyperparameters, MlpOp};
    matches!(hp, Hyperparameters::Mlp(mlp)
        if mlp.ops.iter().any(|o| matches!(o, MlpOp::LeakyRelu { .. })))
}

/// The features a 2.0 reader lacks and would silently compute otherwise (FORMAT.md section 10).
fn required_features(
    hp: &mxrt_format::description::Hyperparameters,
    layers: &[LayerRecipe],
) -> Vec<&'static str> {
    use mxrt_format::description::Hyperparameters;
    let mut out = Vec::new();
    if uses_channel_scales(layers) {
        out.push("channel_scales");
    }
    if uses_leaky_relu(hp) {
        out.push("leaky_relu");
    }
    if let Hyperparameters::Bert(bert) = hp {
        match bert.hidden_act.as_str() {
            "relu" => out.push("hidden_act_relu"),
            "gelu_tanh" => out.push("hidden_act_gelu_tanh"),
            _ => {}
        }
    }
    out
}

/// The model-description version a file needs (FORMAT.md section 10): 2 when a layer has channel scales
/// (2.2); 1 when it uses a field of 2.1 — quantized biases (the recipe layers' `biases`), an unfolded
/// BatchNorm (`fold_batch_norm`), the MLP op `leaky_relu`, a classification head's layer names or
/// activation (RoBERTa, DistilBERT), or DistilBERT's layer names — else 0.
fn description_minor(
    hp: &mxrt_format::description::Hyperparameters,
    layers: &[LayerRecipe],
    recipe: &Recipe,
) -> u16 {
    use mxrt_format::description::{BertHead, Hyperparameters};
    let named_head = matches!(hp, Hyperparameters::Bert(bert)
        if matches!(&bert.head, BertHead::SequenceClassification { pooler: Some(_), .. })
            || bert.layer_names != mxrt_format::description::LayerNames::Bert
            || bert.embedding_size.is_some());
    if uses_channel_scales(layers) {
        return 2;
    }
    u16::from(
        layers.iter().any(|l| l.biases.is_some())
            || !recipe.folds_batch_norm()
            || !required_features(hp, layers).is_empty()
            || named_head,
    )
}

/// Whether a layer names channel scales (description 2.2, feature `channel_scales`).
fn uses_channel_scales(layers: &[LayerRecipe]) -> bool {
    layers
        .iter()
        .any(|l| l.input_scale.is_some() || l.output_scale.is_some())
}

/// What a caller checks in a finished file image before it is written: a runtime opening it as a model
/// (the converter does not know the runtime), so a checkpoint whose tokenizer or labels the runtime would
/// refuse fails at convert, not at first use. It takes the image and gives it back (so the check needs no
/// copy of a file that may be hundreds of megabytes); the error is the reason, in words.
pub type ImageCheck<'a> = &'a dyn Fn(Vec<u8>) -> Result<Vec<u8>, String>;

/// Converts a checkpoint into one `.mxrt` file, written atomically (a failure leaves no partial output),
/// after `check` accepts the image.
pub fn convert_model(
    inputs: &[PathBuf],
    output: &Path,
    options: &ModelOptions,
    progress: &mut dyn FnMut(usize, usize, &str),
    check: ImageCheck<'_>,
) -> Result<ModelReport, ConvertError> {
    let start = Instant::now();
    crate::raw::reject_output_among_inputs(inputs, output)?;
    let source = Source::open_with(
        inputs,
        options.allow_nonfinite,
        options.recipe.folds_batch_norm(),
    )?;
    let Built { bytes, mut report } = source.build(output, options, progress)?;
    let bytes = check(bytes).map_err(|reason| ConvertError::Unusable {
        checkpoint: source.ckpt.dir.clone(),
        reason,
    })?;
    write_atomically(output, |w| w.write_all(&bytes))?;
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

fn side_file_provenance(path: &Path) -> Result<Value, ConvertError> {
    let bytes = std::fs::read(path).map_err(|source| ConvertError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(provenance_entry(path, &bytes))
}

/// The names Hugging Face checkpoints give their sentencepiece models (XLM-R/CamemBERT, ALBERT/T5, XLNet).
const SENTENCEPIECE_FILES: [&str; 3] =
    ["sentencepiece.bpe.model", "spiece.model", "tokenizer.model"];

/// Which tokenizer files a checkpoint ships, in the order of preference: `tokenizer.json` (any model the
/// `tokenizers` crate reads), a WordPiece `vocab.txt` (BERT), or byte-level BPE `vocab.json` + `merges.txt`
/// (RoBERTa/CamemBERT-style, since description 2.1); a sentencepiece model alone is refused with how to make
/// a tokenizer.json. Returns the description's format name and the files to embed.
fn choose_tokenizer(
    ckpt: &Checkpoint,
) -> Result<(&'static str, &'static [&'static str]), ConvertError> {
    let has = |name: &str| ckpt.side_file(name).is_some();
    if has("tokenizer.json") {
        Ok((
            "tokenizer.json",
            &[
                "tokenizer.json",
                "tokenizer_config.json",
                "special_tokens_map.json",
            ],
        ))
    } else if has("vocab.txt") {
        Ok((
            "wordpiece-vocab",
            &[
                "vocab.txt",
                "tokenizer_config.json",
                "special_tokens_map.json",
            ],
        ))
    } else if has("vocab.json") && has("merges.txt") {
        Ok((
            BYTE_LEVEL_BPE,
            &[
                "vocab.json",
                "merges.txt",
                "tokenizer_config.json",
                "special_tokens_map.json",
            ],
        ))
    } else if let Some(model) = SENTENCEPIECE_FILES.iter().find(|name| has(name)) {
        Err(ConvertError::Tokenizer(format!(
            "{} has a sentencepiece model ({model}) but no tokenizer.json; mxrt reads tokenizers through \
             tokenizer.json: write one with `AutoTokenizer.from_pretrained(dir).save_pretrained(dir)` \
             (transformers converts sentencepiece models to tokenizer.json), or pass --no-tokenizer",
            ckpt.dir.display()
        )))
    } else if has("vocab.json") {
        Err(ConvertError::Tokenizer(format!(
            "{} has vocab.json but no merges.txt: a byte-level BPE tokenizer needs both (or a \
             tokenizer.json); pass --no-tokenizer to convert without one",
            ckpt.dir.display()
        )))
    } else {
        Err(ConvertError::Tokenizer(format!(
            "{} has none of tokenizer.json, vocab.txt, or vocab.json + merges.txt (pass --no-tokenizer \
             to convert without one)",
            ckpt.dir.display()
        )))
    }
}

/// The description's name for a byte-level BPE tokenizer given as `vocab.json` + `merges.txt` (since 2.1).
const BYTE_LEVEL_BPE: &str = "byte-level-bpe";

/// Stores the tokenizer files as raw u8 tensors named `tokenizer/<file>`; returns the metadata entry.
fn embed_tokenizer(
    ckpt: &Checkpoint,
    (format, wanted): (&str, &[&str]),
    builder: &mut FileBuilder,
    sources: &mut Vec<Value>,
) -> Result<Value, ConvertError> {
    let mut files = Map::new();
    for name in wanted {
        let Some(path) = ckpt.side_file(name) else {
            continue;
        };
        let bytes = std::fs::read(&path).map_err(|source| ConvertError::Io {
            path: path.clone(),
            source,
        })?;
        if name.ends_with(".json") {
            serde_json::from_slice::<Value>(&bytes).map_err(|e| ConvertError::Json {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        }
        sources.push(provenance_entry(&path, &bytes));
        let tensor = format!("tokenizer/{name}");
        builder.push(encode_raw(
            &tensor,
            &[bytes.len() as u64],
            RawDtype::U8,
            bytes,
        )?)?;
        files.insert((*name).to_string(), json!(tensor));
    }
    Ok(json!({"format": format, "files": files}))
}
