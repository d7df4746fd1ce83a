//! The op set's argument types: a linear layer (weight in place, bias, input quantization), a norm, BERT's
//! embedding tables, a folded affine, a token batch, sentence pooling and a chain of row-wise ops, plus the
//! list of parameters a graph hands a backend to prepare. None of them knows which model it belongs to.

use mxrt_format::{Encoding, Rounding};

use crate::weights::TensorRef;

/// How a layer's input is quantized (`Encoding::F32`: not at all).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActQuant {
    pub encoding: Encoding,
    pub rounding: Rounding,
}

impl ActQuant {
    pub const NONE: ActQuant = ActQuant {
        encoding: Encoding::F32,
        rounding: Rounding::Nearest,
    };

    pub fn is_none(&self) -> bool {
        self.encoding == Encoding::F32
    }
}

/// A linear layer: `y = quant(x) · Wᵀ + b`.
pub struct Linear {
    /// The layer's name in the checkpoint (`…query`); its bias is `{name}.bias` on device backends.
    pub name: String,
    pub weight: TensorRef,
    /// Biases are small: copied to f32 at load (the weight matrix is never copied).
    pub bias: Vec<f32>,
    pub act: ActQuant,
}

/// LayerNorm parameters.
pub struct Norm {
    pub name: String,
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

/// BERT's embedding tables (kept in place) and their LayerNorm.
pub struct Embeddings {
    pub word: TensorRef,
    pub position: TensorRef,
    pub token_type: TensorRef,
    pub norm: Norm,
}

/// A per-column `x * scale + shift` (BatchNorm folded at conversion), named after its scale tensor.
pub struct Affine {
    pub name: String,
    pub scale: Vec<f32>,
    pub shift: Vec<f32>,
}

/// Token ids of a padded batch, `[batch, seq]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    pub batch: usize,
    pub seq: usize,
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// 1 for tokens, 0 for padding.
    pub mask: Vec<u8>,
}

/// How a sequence's hidden states become one sentence embedding.
#[derive(Debug, Clone, PartialEq)]
pub enum Pooling {
    Cls,
    Mean,
    Max,
}

/// One op of a chain applied to each row independently (an MLP is such a chain; FORMAT.md section 9).
pub enum RowOp {
    Linear(Linear),
    Affine(Affine),
    Relu,
    /// `x` for `x ≥ 0`, `slope · x` below.
    LeakyRelu(f32),
    Softmax,
}

impl Linear {
    /// The key of the bias among a device's small parameters (the keys are spelled only here).
    pub fn bias_key(&self) -> String {
        format!("{}#bias", self.name)
    }
}

impl Norm {
    /// The keys of gamma and beta among a device's small parameters.
    pub fn keys(&self) -> (String, String) {
        (
            format!("{}#gamma", self.name),
            format!("{}#beta", self.name),
        )
    }
}

impl Affine {
    /// The keys of scale and shift among a device's small parameters.
    pub fn keys(&self) -> (String, String) {
        (
            format!("{}#scale", self.name),
            format!("{}#shift", self.name),
        )
    }
}

/// What a graph reads, for a backend to prepare (upload, pack) before the first inference: the weight
/// matrices and tables (kept in the file; a tensor may be listed more than once) and the small f32
/// parameters under their keys. Graphs fill it from the same fields their forward pass reads.
#[derive(Default)]
pub struct Parameters<'a> {
    pub weights: Vec<&'a TensorRef>,
    pub vectors: Vec<(String, &'a [f32])>,
    /// The linear layers among them (their weights are in `weights` too), with how each quantizes its
    /// input: what decides the kernels a layer runs on.
    pub linears: Vec<&'a Linear>,
}

impl<'a> Parameters<'a> {
    pub fn linear(&mut self, l: &'a Linear) {
        self.linears.push(l);
        self.weights.push(&l.weight);
        self.vectors.push((l.bias_key(), &l.bias));
    }

    pub fn norm(&mut self, n: &'a Norm) {
        let (gamma, beta) = n.keys();
        self.vectors.push((gamma, &n.gamma));
        self.vectors.push((beta, &n.beta));
    }

    pub fn affine(&mut self, a: &'a Affine) {
        let (scale, shift) = a.keys();
        self.vectors.push((scale, &a.scale));
        self.vectors.push((shift, &a.shift));
    }
}
