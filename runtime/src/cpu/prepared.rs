//! What the panel kernels need from each MXINT8 weight matrix besides its codes, derived once when a model
//! is opened instead of in every inference: each block's scale as an f32 factor, and (for tables whose
//! kernel reads activations as unsigned: AVX2, AVX-VNNI, AVX-512 VNNI) each block's `−128 · Σ codes`.
//! At batch 1 deriving them per call was a pass over every weight matrix in each inference (with its
//! allocations and page faults): 3–4 % of a MiniLM inference on the AVX-512 VNNI tier.
//!
//! The price is memory held for the model's life: 4 bytes per block of 32 weights for the factors, 4 more
//! for the bias where the kernel needs it (a quarter of the codes' bytes at most; MiniLM-SST2: 2.7 MB beside
//! a 24 MB file). Only layers that take the integer path get them (MXINT8 weights with MXINT8 activations),
//! not embedding tables or weights-only layers.

use std::collections::HashMap;

use crate::cpu::frame::{integer_mxint8, Cpu};
use crate::cpu::panels::{mx_factors, unsigned_bias_of};
use crate::ops::Parameters;
use crate::weights::{PreparedBlocks, TensorRef, WeightView};

/// The prepared blocks of a model's integer-path layers, by tensor name.
#[derive(Default)]
pub struct PreparedPanels {
    blocks: HashMap<String, PreparedBlocks>,
}

impl PreparedPanels {
    /// Prepares every linear layer of `params` that runs on `cpu`'s panel kernel (none without one).
    pub fn build(cpu: &Cpu, params: &Parameters<'_>, bytes: &[u8]) -> PreparedPanels {
        let mut blocks = HashMap::new();
        let Some(kernel) = cpu.kernels.mxint8_panel else {
            return PreparedPanels { blocks };
        };
        for l in &params.linears {
            let view = l.weight.view(bytes);
            if !integer_mxint8(&view, l.act) || blocks.contains_key(&l.weight.name) {
                continue;
            }
            if let Some(prepared) = prepare(&view, kernel.unsigned_bias) {
                blocks.insert(l.weight.name.clone(), prepared);
            }
        }
        PreparedPanels { blocks }
    }

    /// The view of `t` over `bytes`, with its prepared blocks when it has them.
    pub fn view<'a>(&'a self, t: &'a TensorRef, bytes: &'a [u8]) -> WeightView<'a> {
        t.view(bytes).with_prepared(self.blocks.get(&t.name))
    }
}

/// The factors of a dense MXINT8 matrix's blocks and, with `unsigned_bias`, their biases (`None` for other
/// encodings).
pub fn prepare(
    w: &WeightView<'_>,
    unsigned_bias: Option<crate::cpu::kernels::UnsignedBias>,
) -> Option<PreparedBlocks> {
    let (codes, scales) = w.mxint8_rows_all()?;
    Some(PreparedBlocks {
        factors: mx_factors(scales),
        unsigned_bias: unsigned_bias.map_or_else(Vec::new, |f| unsigned_bias_of(codes, f)),
    })
}
