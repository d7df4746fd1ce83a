//! Opening a model: map the file, validate it once, read the architecture and recipe from the metadata, check
//! every tensor the graph needs. After that, inference trusts the tensors and reads weights in place.

use std::collections::HashMap;
use std::path::Path;

use mxrt_format::{Encoding, EncodingSpec, ReadOptions, Rounding};
use serde_json::{Map, Value};

use crate::bert::{Bert, BertConfig, BertOutput, Head, Pooling, TokenBatch};
use crate::cpu_backend::CpuExec;
use crate::device::{BackendKind, Device, WgpuOptions};
use crate::error::{Result, RuntimeError};
use crate::graph::Params;
use crate::mapped::MappedFile;
use crate::mlp::Mlp;
use crate::ops::Cpu;
use crate::quant::ActQuant;
use crate::weights::TensorRef;

pub enum Graph {
    Bert(Box<Bert>),
    Mlp(Mlp),
}

/// An opened model. `Send + Sync`: any number of threads may run inferences on one `Model` at once.
pub struct Model {
    file: MappedFile,
    metadata: Map<String, Value>,
    tensors: HashMap<String, TensorRef>,
    graph: Graph,
    cpu: Cpu,
    device: Device,
    /// Small MLPs: the batch-1 form with weights transposed at open (`mlp_small`).
    small_mlp: Option<crate::mlp_small::SmallMlp>,
}

impl Model {
    /// Maps and validates `path` (checksums included unless `verify_checksums` is false).
    pub fn open(path: &Path, options: ReadOptions) -> Result<Model> {
        Model::load(MappedFile::open(path)?, options)
    }

    /// A model from a file image in memory (validated exactly like a file); `name` is used in messages.
    pub fn from_bytes(name: &str, bytes: Vec<u8>, options: ReadOptions) -> Result<Model> {
        Model::load(MappedFile::from_bytes(name, bytes), options)
    }

    fn load(file: MappedFile, options: ReadOptions) -> Result<Model> {
        let path = file.path().to_path_buf();
        let path = path.as_path();
        let (metadata, tensors) = {
            let parsed = file.validate(options)?;
            let tensors: HashMap<String, TensorRef> = parsed
                .tensors()
                .iter()
                .map(|t| (t.name.to_string(), TensorRef::from_view(t)))
                .collect();
            (parsed.metadata().clone(), tensors)
        };
        let p = path.display().to_string();
        let bad = |reason: String| RuntimeError::Model {
            path: p.clone(),
            reason,
        };
        let activations = activation_settings(&metadata).map_err(bad)?;
        let params = Params {
            path: &p,
            bytes: file.bytes(),
            tensors: &tensors,
            activations: &activations,
        };
        let hp = metadata
            .get("hyperparameters")
            .cloned()
            .unwrap_or(Value::Null);
        let graph = match metadata.get("architecture").and_then(Value::as_str) {
            Some("bert") => Graph::Bert(Box::new(Bert::load(bert_config(&hp).map_err(bad)?, &params)?)),
            Some("mlp") => {
                let inputs = hp.get("num_features").and_then(Value::as_u64).ok_or_else(|| bad("mlp: num_features missing".into()))?;
                let labels = hp.get("labels").and_then(Value::as_array).map(|a| a.iter().filter_map(|l| l.as_str().map(str::to_string)).collect()).unwrap_or_default();
                let ops = hp.get("ops").and_then(Value::as_array).ok_or_else(|| bad("mlp: ops missing".into()))?;
                Graph::Mlp(Mlp::load(inputs as usize, labels, ops, &params)?)
            }
            Some(other) => return Err(bad(format!("architecture {other:?} is not supported (bert, mlp)"))),
            None => return Err(bad("no architecture: this file holds bare tensors (convert the checkpoint directory to get a model)".into())),
        };
        let small_mlp = match &graph {
            Graph::Mlp(m) => crate::mlp_small::SmallMlp::build(m, file.bytes()),
            Graph::Bert(_) => None,
        };
        Ok(Model {
            file,
            metadata,
            tensors,
            graph,
            cpu: Cpu::from_env()?,
            device: Device::Cpu,
            small_mlp,
        })
    }

    pub fn metadata(&self) -> &Map<String, Value> {
        &self.metadata
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    pub fn tensors(&self) -> &HashMap<String, TensorRef> {
        &self.tensors
    }

    pub fn file_len(&self) -> u64 {
        self.file.bytes().len() as u64
    }

    /// The instruction set the CPU kernels use.
    pub fn isa(&self) -> &'static str {
        self.cpu.kernels.isa
    }

    /// Uses these kernels instead of the detected ones (tests compare the reference with the fast paths).
    pub fn set_kernels(&mut self, kernels: crate::cpu::Kernels) {
        self.cpu.kernels = kernels;
    }

    /// The raw bytes of a raw tensor (the embedded tokenizer files).
    pub fn raw_bytes(&self, name: &str) -> Option<&[u8]> {
        let t = self.tensors.get(name)?;
        matches!(t.encoding, Encoding::Raw(_)).then(|| t.raw(self.file.bytes()))
    }

    /// Runs later inferences on `kind` (weights are uploaded now for device backends).
    pub fn use_backend(&mut self, kind: BackendKind) -> Result<()> {
        match kind {
            BackendKind::Cpu => self.device = Device::Cpu,
            BackendKind::Wgpu => return self.use_wgpu(&WgpuOptions::default()),
            BackendKind::Cuda => self.device = Device::cuda(&self.graph, self.file.bytes())?,
        }
        Ok(())
    }

    /// Runs later inferences on a wgpu adapter, with these options.
    pub fn use_wgpu(&mut self, options: &WgpuOptions) -> Result<()> {
        self.device = Device::wgpu(&self.graph, self.file.bytes(), options)?;
        Ok(())
    }

    /// The backend in use, e.g. `cpu (avx512-vnni)` or `wgpu: <adapter> (Vulkan, …)`.
    pub fn backend_description(&self) -> String {
        self.device.describe(self.isa())
    }

    /// Bytes of weights and parameters uploaded to the device (0 on the CPU, which reads the file in place).
    pub fn device_bytes(&self) -> u64 {
        self.device.device_bytes()
    }

    fn cpu_exec(&self) -> CpuExec<'_> {
        CpuExec {
            cpu: &self.cpu,
            bytes: self.file.bytes(),
        }
    }

    pub fn run_bert(&self, batch: &TokenBatch, keep_hidden: bool) -> Result<BertOutput> {
        match &self.graph {
            Graph::Bert(b) => match &self.device {
                Device::Cpu => {
                    // Every BERT inference has dozens of parallel ops (except the tiniest inputs).
                    if batch.batch * batch.seq >= 32 {
                        crate::warm::keep_workers_warm();
                    }
                    b.forward(&self.cpu_exec(), batch, keep_hidden)
                }
                #[cfg(feature = "wgpu")]
                Device::Wgpu(g) => b.forward(&g.exec(), batch, keep_hidden),
                #[cfg(feature = "cuda")]
                Device::Cuda(c) => b.forward(&c.exec(), batch, keep_hidden),
            },
            Graph::Mlp(_) => Err(RuntimeError::Input(
                "this model is an MLP: it takes features, not text".into(),
            )),
        }
    }

    pub fn run_mlp(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        match &self.graph {
            Graph::Mlp(m) => match &self.device {
                Device::Cpu => {
                    if let (1, Some(small)) = (rows, &self.small_mlp) {
                        if x.len() != m.inputs {
                            return m.forward(&self.cpu_exec(), x, rows); // its error names the sizes
                        }
                        return Ok(small.forward(&self.cpu, x));
                    }
                    // Small batches run on the calling thread; waking the pool would cost more.
                    if rows < 2 * MLP_BLOCK_ROWS {
                        return m.forward(&self.cpu_exec(), x, rows);
                    }
                    // Large batches: rows are independent, so blocks of rows run the whole network each,
                    // spread over the cores, with every intermediate activation in cache (the same values
                    // as one pass over all rows: every op works row by row).
                    crate::warm::keep_workers_warm();
                    use rayon::prelude::*;
                    let exec = self.cpu_exec();
                    let width = m.inputs.max(1);
                    let blocks: Vec<Vec<f32>> = x
                        .par_chunks(MLP_BLOCK_ROWS * width)
                        .map(|xb| m.forward(&exec, xb, xb.len() / width))
                        .collect::<Result<_>>()?;
                    Ok(blocks.concat())
                }
                #[cfg(feature = "wgpu")]
                Device::Wgpu(g) => m.forward(&g.exec(), x, rows),
                #[cfg(feature = "cuda")]
                Device::Cuda(c) => m.forward(&c.exec(), x, rows),
            },
            Graph::Bert(_) => Err(RuntimeError::Input(
                "this model is a BERT encoder: it takes text, not features".into(),
            )),
        }
    }
}

/// Rows per block when a large MLP batch is split (the widest JSC activation block, 1024 × 64 floats, is
/// 256 KiB: inside L2).
const MLP_BLOCK_ROWS: usize = 1024;

fn bert_config(hp: &Value) -> std::result::Result<BertConfig, String> {
    let n = |k: &str| {
        hp.get(k)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .ok_or_else(|| format!("bert: {k} missing"))
    };
    let head = hp.get("head").ok_or("bert: head missing")?;
    let head = match head.get("type").and_then(Value::as_str) {
        Some("sequence_classification") => {
            let map = head
                .get("id2label")
                .and_then(Value::as_object)
                .ok_or("bert: id2label missing")?;
            let labels = (0..map.len())
                .map(|i| {
                    map.get(&i.to_string())
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .ok_or(format!("bert: id2label lacks {i}"))
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Head::Classification { labels }
        }
        Some("sentence_embedding") => Head::Embedding {
            pooling: match head.get("pooling").and_then(Value::as_str) {
                Some("mean") => Pooling::Mean,
                Some("cls") => Pooling::Cls,
                Some("max") => Pooling::Max,
                other => return Err(format!("bert: pooling {other:?} unsupported")),
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
        other => return Err(format!("bert: head type {other:?} unsupported")),
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
fn activation_settings(
    meta: &Map<String, Value>,
) -> std::result::Result<HashMap<String, ActQuant>, String> {
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
        let spec: EncodingSpec = act
            .parse()
            .map_err(|e| format!("recipe layer {name}: {e}"))?;
        let rounding: Rounding = l
            .get("rounding")
            .and_then(Value::as_str)
            .unwrap_or("nearest")
            .parse()
            .map_err(|e| format!("{e}"))?;
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
