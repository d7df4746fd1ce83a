//! The facade. Opening a model: map the file, validate it once, read the architecture and recipe from the
//! metadata, check every tensor the graph needs. After that, inference trusts the tensors and reads weights in
//! place. Choosing a backend ([`backend_choice`]) and running the graph on it.

pub mod backend_choice;
mod description;
mod observe;
pub mod session;
pub mod text;
pub mod verify;

use std::collections::HashMap;
use std::path::Path;

use mxrt_format::description::{Hyperparameters, ModelDescription};
use mxrt_format::{Encoding, ReadOptions};
use serde_json::{Map, Value};

use crate::cpu::prepared::PreparedPanels;
use crate::cpu::small_chain::SmallChain;
use crate::cpu::{Cpu, CpuExec};
use crate::error::{InputError, ModelProblem, Result, RuntimeError};
use crate::graphs::bert::{Bert, BertOutput};
use crate::graphs::params::Params;
use crate::graphs::{Graph, Mlp};
use crate::mapped::MappedFile;
use crate::ops::TokenBatch;
use crate::weights::TensorRef;
use backend_choice::{BackendKind, BackendState, WgpuOptions};
use description::{activation_settings, bert_config, channel_scale_names};

/// An opened model. `Send + Sync`: any number of threads may run inferences on one `Model` at once.
pub struct Model {
    file: MappedFile,
    metadata: Map<String, Value>,
    description: ModelDescription,
    tensors: HashMap<String, TensorRef>,
    graph: Graph,
    cpu: Cpu,
    backend: BackendState,
    /// Small MLPs: the CPU's batch-1 form of the chain, weights transposed at open (`cpu::small_chain`).
    small_chain: Option<SmallChain>,
    /// The CPU panel kernels' per-block values of the integer-path layers (`cpu::prepared`); emptied when
    /// a device backend takes over.
    panels: PreparedPanels,
    /// The file's format version (layout, description).
    version: (u16, u16),
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
        let p = path.display().to_string();
        let bad = |problem: ModelProblem| RuntimeError::Model {
            path: p.clone(),
            problem,
        };
        // The description, and the file checked against it: every tensor the model reads is there, numeric
        // and of the shape the description needs (mxrt-format's checks, before any graph looks).
        let (metadata, description, tensors, version) = {
            let parsed = file.validate(options)?;
            let description = ModelDescription::from_metadata(parsed.metadata())
                .and_then(|d| d.check_tensors(&parsed).map(|()| d))
                .map_err(|e| bad(ModelProblem::Description(e)))?;
            let tensors: HashMap<String, TensorRef> = parsed
                .tensors()
                .iter()
                .map(|t| (t.name.to_string(), TensorRef::from_view(t)))
                .collect();
            (
                parsed.metadata().clone(),
                description,
                tensors,
                parsed.version(),
            )
        };
        let activations = activation_settings(&description.recipe_layers).map_err(bad)?;
        let channel_scales = channel_scale_names(&description.recipe_layers);
        let params = Params {
            path: &p,
            bytes: file.bytes(),
            tensors: &tensors,
            activations: &activations,
            channel_scales: &channel_scales,
        };
        let graph = match &description.hyperparameters {
            Hyperparameters::Bert(hp) => Graph::Bert(Box::new(Bert::load(
                bert_config(hp).map_err(bad)?,
                &params,
            )?)),
            Hyperparameters::Mlp(hp) => {
                let inputs = usize::try_from(hp.num_features).map_err(|_| {
                    bad(ModelProblem::TooLarge {
                        field: "num_features",
                        value: hp.num_features,
                    })
                })?;
                let labels = hp.labels.clone().unwrap_or_default();
                Graph::Mlp(Mlp::load(inputs, labels, &hp.ops, &params)?)
            }
        };
        let small_chain = match &graph {
            Graph::Mlp(m) => SmallChain::build(&m.ops, m.inputs, file.bytes()),
            Graph::Bert(_) => None,
        };
        let cpu = Cpu::from_env()?;
        let panels = PreparedPanels::build(&cpu, &graph.parameters(), file.bytes());
        Ok(Model {
            file,
            metadata,
            description,
            tensors,
            graph,
            cpu,
            backend: BackendState::Cpu,
            small_chain,
            panels,
            version,
        })
    }

    pub fn metadata(&self) -> &Map<String, Value> {
        &self.metadata
    }

    /// The file's model description (FORMAT.md section 9), as read and checked at open.
    pub fn description(&self) -> &ModelDescription {
        &self.description
    }

    /// Whether tensor `name` holds channel scales (description 2.2): a tensor of the format, not of the
    /// checkpoint, which an FP32 original does not have.
    pub fn is_channel_scale(&self, name: &str) -> bool {
        self.description
            .recipe_layers
            .iter()
            .any(|l| l.channel_scale_tensors().any(|t| t == name))
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    pub fn tensors(&self) -> &HashMap<String, TensorRef> {
        &self.tensors
    }

    /// The file image of a model made by [`Model::from_bytes`], given back; `None` for a mapped file.
    pub fn into_image(self) -> Option<Vec<u8>> {
        self.file.into_bytes()
    }

    /// The file's format version: layout (major) and model description (minor), e.g. `(2, 1)`.
    pub fn format_version(&self) -> (u16, u16) {
        self.version
    }

    pub fn file_len(&self) -> u64 {
        self.file.bytes().len() as u64
    }

    /// The instruction set the CPU kernels use.
    pub fn isa(&self) -> &'static str {
        self.cpu.kernels.isa
    }

    /// Uses these kernels instead of the detected ones (tests compare the reference with the fast paths).
    pub fn set_kernels(&mut self, kernels: crate::bench::Kernels) {
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
            // Already on the CPU (a model opens there): its prepared values stand.
            BackendKind::Cpu if matches!(self.backend, BackendState::Cpu) => {}
            BackendKind::Cpu => {
                self.backend = BackendState::Cpu;
                self.panels =
                    PreparedPanels::build(&self.cpu, &self.graph.parameters(), self.file.bytes());
            }
            BackendKind::Wgpu => return self.use_wgpu(&WgpuOptions::default()),
            BackendKind::Cuda => {
                self.backend = BackendState::cuda(&self.graph.parameters(), self.file.bytes())?;
                self.panels = PreparedPanels::default();
            }
        }
        Ok(())
    }

    /// Runs later inferences on a wgpu adapter, with these options.
    pub fn use_wgpu(&mut self, options: &WgpuOptions) -> Result<()> {
        self.backend = BackendState::wgpu(&self.graph.parameters(), self.file.bytes(), options)?;
        self.panels = PreparedPanels::default();
        Ok(())
    }

    /// The backend in use, e.g. `cpu (avx512-vnni)` or `wgpu: <adapter> (Vulkan, …)`.
    pub fn backend_description(&self) -> String {
        self.backend.describe(self.isa())
    }

    /// Bytes of weights and parameters uploaded to the device (0 on the CPU, which reads the file in place).
    pub fn device_bytes(&self) -> u64 {
        self.backend.device_bytes()
    }

    fn cpu_exec(&self) -> CpuExec<'_> {
        CpuExec {
            cpu: &self.cpu,
            bytes: self.file.bytes(),
            small_chain: self.small_chain.as_ref(),
            panels: Some(&self.panels),
        }
    }

    /// One BERT forward pass. Afterwards the mapped file is checked for in-place writes (one `fstat`, small
    /// next to any BERT inference): results computed from a file that changed underneath are refused.
    pub fn run_bert(&self, batch: &TokenBatch, keep_hidden: bool) -> Result<BertOutput> {
        let out = self.forward_bert(batch, keep_hidden)?;
        self.file.check_unchanged()?;
        Ok(out)
    }

    fn forward_bert(&self, batch: &TokenBatch, keep_hidden: bool) -> Result<BertOutput> {
        match &self.graph {
            Graph::Bert(b) => match &self.backend {
                BackendState::Cpu => b.forward(&self.cpu_exec(), batch, keep_hidden),
                #[cfg(feature = "wgpu")]
                BackendState::Wgpu(g) => b.forward(&g.exec(), batch, keep_hidden),
                #[cfg(feature = "cuda")]
                BackendState::Cuda(c) => b.forward(&c.exec(), batch, keep_hidden),
            },
            Graph::Mlp(_) => Err(InputError::NotText.into()),
        }
    }

    /// A generous estimate of the memory one inference of `batch` rows (BERT: sequences of `seq` tokens)
    /// needs besides the mapped weights: inputs, activations, attention scores, quantized copies. `None` when
    /// the estimate overflows 64 bits.
    pub fn working_memory(&self, batch: usize, seq: usize) -> Option<u64> {
        let (batch, seq) = (u64::try_from(batch).ok()?, u64::try_from(seq).ok()?);
        let per_row = match &self.graph {
            Graph::Bert(b) => {
                let c = &b.config;
                let (hidden, inter, heads) =
                    (c.hidden as u64, c.intermediate as u64, c.heads as u64);
                // Per token: ~4 hidden-wide buffers and one intermediate-wide one live at once, plus a row of
                // attention scores per head; f32, doubled for quantized copies and the allocator. (Measured:
                // FP32 minilm at batch 32 x 128 holds ~15 KB per token; this gives 37 KB.)
                let width = hidden
                    .checked_mul(4)?
                    .checked_add(inter)?
                    .checked_add(heads.checked_mul(seq)?)?;
                seq.checked_mul(width)?.checked_mul(8)?
            }
            Graph::Mlp(m) => {
                let widest = m
                    .ops
                    .iter()
                    .filter_map(|op| match op {
                        crate::ops::RowOp::Linear(l) => {
                            Some(l.weight.terms.rows.max(l.weight.terms.cols))
                        }
                        _ => None,
                    })
                    .max()
                    .unwrap_or(0)
                    .max(m.inputs as u64);
                widest.checked_mul(4 * 8)?
            }
        };
        batch.checked_mul(per_row)
    }

    /// Refuses an inference whose [`Model::working_memory`] exceeds the memory this machine has available,
    /// naming `what` (for example `"--batch 100000 --seq 128"`). Available memory is read only when the
    /// estimate passes 256 MiB, so ordinary calls cost nothing.
    pub fn check_working_memory(&self, what: &str, batch: usize, seq: usize) -> Result<()> {
        let needed = self.working_memory(batch, seq);
        if needed.is_some_and(|n| n <= 256 << 20) {
            return Ok(());
        }
        let available = available_memory();
        if needed.is_some_and(|n| n <= available) {
            return Ok(());
        }
        Err(InputError::TooLarge {
            what: what.to_string(),
            needed,
            available,
        }
        .into())
    }

    /// The MLP on `rows` feature rows. Batches of at least [`CHANGE_CHECK_VALUES`] input values are followed by
    /// the in-place-write check of [`Model::run_bert`]; smaller calls (a JSC row takes about a microsecond,
    /// the check half of one) skip it: check a long series of them with [`Model::check_file_unchanged`].
    /// Feature values that are NaN or infinite are refused ([`InputError::NonFiniteFeature`], naming the row
    /// and column): no output computed from them means anything.
    pub fn run_mlp(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        if let (Graph::Mlp(m), Some(at)) = (&self.graph, first_nonfinite(x)) {
            let width = m.inputs.max(1);
            return Err(InputError::NonFiniteFeature {
                row: at / width,
                col: at % width,
                value: x[at].to_string(),
            }
            .into());
        }
        self.run_mlp_allowing_nonfinite(x, rows)
    }

    /// [`Model::run_mlp`] without the refusal of NaN and infinite features, for callers that asked for it
    /// explicitly (`--allow-nonfinite`): their rows give whatever the arithmetic gives.
    pub fn run_mlp_allowing_nonfinite(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        let out = self.forward_mlp(x, rows)?;
        if x.len() >= CHANGE_CHECK_VALUES {
            self.file.check_unchanged()?;
        }
        Ok(out)
    }

    /// An error if the model file was written in place since it was opened.
    pub fn check_file_unchanged(&self) -> Result<()> {
        Ok(self.file.check_unchanged()?)
    }

    fn forward_mlp(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        match &self.graph {
            Graph::Mlp(m) => match &self.backend {
                BackendState::Cpu => m.forward(&self.cpu_exec(), x, rows),
                #[cfg(feature = "wgpu")]
                BackendState::Wgpu(g) => m.forward(&g.exec(), x, rows),
                #[cfg(feature = "cuda")]
                BackendState::Cuda(c) => m.forward(&c.exec(), x, rows),
            },
            Graph::Bert(_) => Err(InputError::NotFeatures.into()),
        }
    }
}

/// The index of the first NaN or infinite value of `x`. Chunks are checked with a fold the compiler
/// vectorizes (an early-exit search compares one value at a time: 4 % of a 65,536-row JSC batch).
fn first_nonfinite(x: &[f32]) -> Option<usize> {
    const CHUNK: usize = 1024;
    x.chunks(CHUNK)
        .position(|c| c.iter().fold(false, |bad, v| bad | !v.is_finite()))
        .and_then(|chunk| {
            let at = chunk * CHUNK;
            x[at..].iter().position(|v| !v.is_finite()).map(|i| at + i)
        })
}

/// Input values from which an MLP call checks its file for in-place writes (see [`Model::run_mlp`]).
pub const CHANGE_CHECK_VALUES: usize = 1 << 16;

/// Memory available to this process: `MemAvailable` of `/proc/meminfo` on Linux; elsewhere unknown, taken as
/// unbounded (only an estimate that overflows is refused there).
fn available_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(u64::MAX, |kib| kib.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::first_nonfinite;

    #[test]
    fn first_nonfinite_finds_the_first_bad_value_across_chunks() {
        let mut x = vec![1.5f32; 5000];
        assert_eq!(first_nonfinite(&x), None);
        assert_eq!(first_nonfinite(&[]), None);
        for (at, bad) in [
            (0, f32::NAN),
            (1023, f32::INFINITY),
            (1024, f32::NEG_INFINITY),
            (4999, f32::NAN),
        ] {
            let mut y = x.clone();
            y[at] = bad;
            assert_eq!(first_nonfinite(&y), Some(at));
        }
        // Two bad values in different chunks: the first is named.
        x[3000] = f32::NAN;
        x[2047] = f32::INFINITY;
        assert_eq!(first_nonfinite(&x), Some(2047));
        x[100] = f32::MAX; // finite
        assert_eq!(first_nonfinite(&x), Some(2047));
    }
}
