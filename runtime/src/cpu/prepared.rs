//! What the panel kernels need from each MXINT8 weight matrix that is worth deriving once, when a model is
//! opened, instead of in every inference: for tables whose kernel reads activations as unsigned (AVX-VNNI,
//! AVX-512 VNNI; not plain AVX2 or AMX), each block's sum of codes, from which the kernel's `−128 · Σ codes`
//! comes; for the plain AVX2 table, whether the matrix holds the code −128, which its fastest kernel cannot
//! take (`MxPanel::minus_128_weights`: one pass over the codes at open instead of one per call). Per call, that took a pass over every code of the matrix: at batch 1 about 8 % of a MiniLM
//! inference on the AVX-512 VNNI tier (Sapphire Rapids, MXINT8 w+a, 2 threads: ~6.0 ms without the
//! prepared sums, ~5.5 ms with them). (The blocks' f32 factors stay per call: they come from one byte per
//! block, cheaply, and would cost four bytes per block held.)
//!
//! The price is memory held for the model's life: two bytes per block of 32 weights (1/16 of the codes;
//! MiniLM-SST2: 0.66 MB beside a 24 MB file), only for layers that take the integer path (MXINT8 weights
//! with MXINT8 activations), not embedding tables or weights-only layers.

use std::collections::HashMap;

use crate::cpu::frame::{integer_mxint8, Cpu};
use crate::cpu::kernels::MxPanel;
use crate::ops::Parameters;
use crate::weights::{PreparedBlocks, TensorRef, WeightView};

/// The prepared blocks of a model's integer-path layers, by tensor name.
#[derive(Default)]
pub struct PreparedPanels {
    blocks: HashMap<String, PreparedBlocks>,
}

impl PreparedPanels {
    /// Prepares every linear layer of `params` that runs on `cpu`'s panel kernel, where that kernel needs
    /// something prepared (none otherwise).
    pub fn build(cpu: &Cpu, params: &Parameters<'_>, bytes: &[u8]) -> PreparedPanels {
        let mut blocks = HashMap::new();
        let Some(kernel) = cpu.kernels.mxint8_panel else {
            return PreparedPanels { blocks };
        };
        if kernel.unsigned_bias.is_none() && kernel.minus_128_weights.is_none() {
            return PreparedPanels { blocks };
        }
        for l in &params.linears {
            let view = l.weight.view(bytes);
            if !integer_mxint8(&view, l.act) || blocks.contains_key(&l.weight.name) {
                continue;
            }
            if let Some(prepared) = prepare(&view, kernel) {
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

/// What `kernel` needs prepared from a dense MXINT8 matrix: each block's sum of codes by its unsigned-bias
/// routine (where it has one), whether a code is −128 (where it has `minus_128_weights`); `None` for other
/// encodings.
pub fn prepare(w: &WeightView<'_>, kernel: MxPanel) -> Option<PreparedBlocks> {
    let (codes, _) = w.mxint8_rows_all()?;
    let code_sums = match kernel.unsigned_bias {
        Some(routine) => {
            let mut biases = vec![0i32; codes.len() / 32];
            routine(codes, &mut biases);
            // −128 · Σ codes, with |Σ codes| <= 32 · 128: the division is exact and the sum fits an i16.
            biases.iter().map(|&b| (b / -128) as i16).collect()
        }
        None => Vec::new(),
    };
    let minus_128 = kernel
        .minus_128_weights
        .map(|_| crate::cpu::panel_weights::holds_minus_128(codes));
    Some(PreparedBlocks {
        code_sums,
        minus_128,
    })
}
