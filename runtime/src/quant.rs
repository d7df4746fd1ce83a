//! Activation quantization at a linear layer's input, as the recipe says: MX types dynamically per block of 32
//! along the row (the reduction dimension), fixed point per element. The values are exactly what encoding and
//! decoding the activations with `mxrt-format` would give, i.e. what a fake-quantized PyTorch model computes.

use mxrt_format::{fixed, mx, Encoding, Rounding};

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

/// Replaces each value of the `cols`-wide rows of `x` by its quantized value.
pub fn fake_quantize_rows(x: &mut [f32], cols: usize, q: ActQuant) {
    match q.encoding {
        Encoding::Mx(elem) => {
            let table = mx::code_table(elem);
            let mut codes = [0u32; mx::BLOCK];
            for row in x.chunks_mut(cols) {
                for block in row.chunks_mut(mx::BLOCK) {
                    let s =
                        mx::scale_value(mx::quantize_block(block, elem, q.rounding, &mut codes));
                    for (v, &c) in block.iter_mut().zip(&codes) {
                        *v = table[c as usize] * s;
                    }
                }
            }
        }
        Encoding::Fixed { width, frac } => {
            for v in x.iter_mut() {
                if let Some(code) = fixed::quantize(*v, width, frac, q.rounding) {
                    *v = fixed::dequantize(code, frac);
                }
            }
        }
        _ => {}
    }
}

/// MXINT8 activations as codes (two's complement bytes) and scale bytes, for the integer path: per row,
/// `blocks_per_row * 32` codes
/// (zero-padded) and one scale byte per block.
pub fn quantize_mxint8_rows(
    x: &[f32],
    cols: usize,
    rounding: Rounding,
    codes: &mut Vec<u8>,
    scales: &mut Vec<u8>,
) {
    let bpr = cols.div_ceil(mx::BLOCK);
    codes.clear();
    scales.clear();
    let mut block_codes = [0u32; mx::BLOCK];
    for row in x.chunks(cols) {
        for block in row.chunks(mx::BLOCK) {
            scales.push(mx::quantize_block(
                block,
                mxrt_format::MxElem::Int8,
                rounding,
                &mut block_codes,
            ));
            codes.extend(block_codes.iter().map(|&c| c as u8));
        }
    }
    debug_assert_eq!(scales.len(), bpr * (x.len() / cols.max(1)));
}
