//! Decoding a tensor one row at a time: the one decoder of element codes to binary32. `TensorView::dequantize`
//! (and so `mxrt dequantize`) decodes through it row after row, and the runtime decodes weight rows, gathers
//! embedding rows and reads sparse rows through it, so every reader gets the same values.
//!
//! A [`RowDecoder`] holds a validated tensor's planes; rows are `terms.rows` rows of `terms.cols` elements
//! (the leading dimensions folded). The caller owns the MX code table (`mx::code_table`) so that a runtime
//! builds it once per tensor.

use crate::bits::{read_code, sign_extend};
use crate::encoding::{Encoding, MxElem};
use crate::layout::{PLANE_ELEMENTS, PLANE_MASKS, PLANE_ROW_OFFSETS, PLANE_SCALES};
use crate::mx;
use crate::reader::{read_mask, read_row_offset};
use crate::shape::ShapeTerms;
use crate::{fixed, float};

/// Row access to a validated tensor's planes.
#[derive(Clone, Copy)]
pub struct RowDecoder<'a> {
    pub encoding: Encoding,
    pub sparse: bool,
    pub terms: ShapeTerms,
    /// The element codes (plane 0).
    pub elements: &'a [u8],
    /// MX scale bytes, one per block of 32 (empty otherwise).
    pub scales: &'a [u8],
    /// Sparse masks (u32 little-endian, one per block; empty when dense).
    pub masks: &'a [u8],
    /// Sparse row offsets (`rows + 1`, little-endian, `row_offset_bytes` each; empty when dense).
    pub row_offsets: &'a [u8],
    pub row_offset_bytes: u8,
    /// Value of each MX element code (`mx::code_table`; empty for other encodings).
    pub table: &'a [f32],
}

impl<'a> RowDecoder<'a> {
    /// A decoder over `planes` (indexed by `layout::PLANE_*`) of a tensor the reader validated.
    pub fn new(
        encoding: Encoding,
        sparse: bool,
        terms: ShapeTerms,
        planes: [&'a [u8]; 4],
        row_offset_bytes: u8,
        table: &'a [f32],
    ) -> Self {
        RowDecoder {
            encoding,
            sparse,
            terms,
            elements: planes[PLANE_ELEMENTS],
            scales: planes[PLANE_SCALES],
            masks: planes[PLANE_MASKS],
            row_offsets: planes[PLANE_ROW_OFFSETS],
            row_offset_bytes,
            table,
        }
    }

    pub fn rows(&self) -> usize {
        self.terms.rows as usize
    }

    pub fn cols(&self) -> usize {
        self.terms.cols as usize
    }

    /// Decodes row `r` into `out` (`cols` values; elements a sparse row does not store are +0.0).
    pub fn decode_row(&self, r: usize, out: &mut [f32]) {
        let cols = self.cols();
        debug_assert_eq!(out.len(), cols);
        let bits = self.encoding.element_bits();
        if self.sparse {
            out.fill(0.0);
            self.for_each_stored(r, |c, v| out[c] = v);
            return;
        }
        let stride = self.terms.dense_row_stride(self.encoding) as usize;
        let base = r * stride;
        let elements = self.elements;
        match self.encoding {
            Encoding::F32 => {
                for (o, c) in out
                    .iter_mut()
                    .zip(elements[base * 4..(base + cols) * 4].chunks_exact(4))
                {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            Encoding::F16 => {
                for (o, c) in out
                    .iter_mut()
                    .zip(elements[base * 2..(base + cols) * 2].chunks_exact(2))
                {
                    *o = float::f16_value(u16::from_le_bytes([c[0], c[1]]));
                }
            }
            Encoding::Mx(MxElem::Int8) => {
                let codes = &elements[base..base + stride];
                for (j, (block, &s)) in codes
                    .chunks_exact(32)
                    .zip(&self.scales[r * (stride / 32)..])
                    .enumerate()
                {
                    // q/64 * 2^e == q * 2^(e-6) exactly (also for the subnormal scale 2^-127).
                    let step = mx::scale_value(s) * (1.0 / 64.0);
                    let end = (cols - j * 32).min(32);
                    for (o, &q) in out[j * 32..j * 32 + end].iter_mut().zip(block) {
                        *o = f32::from(q as i8) * step;
                    }
                }
            }
            // Fixed point in whole-byte containers (the codes sign-extended to the container): read directly.
            Encoding::Fixed { frac, .. } if bits == 8 => {
                for (o, &b) in out.iter_mut().zip(&elements[base..base + cols]) {
                    *o = fixed::dequantize(i32::from(b as i8), frac);
                }
            }
            Encoding::Fixed { frac, .. } if bits == 16 => {
                for (o, c) in out
                    .iter_mut()
                    .zip(elements[base * 2..(base + cols) * 2].chunks_exact(2))
                {
                    *o = fixed::dequantize(i32::from(i16::from_le_bytes([c[0], c[1]])), frac);
                }
            }
            Encoding::Fixed { frac, .. } if bits == 32 => {
                for (o, c) in out
                    .iter_mut()
                    .zip(elements[base * 4..(base + cols) * 4].chunks_exact(4))
                {
                    *o = fixed::dequantize(i32::from_le_bytes([c[0], c[1], c[2], c[3]]), frac);
                }
            }
            // Bit-packed codes narrower than a byte (MXINT4, MXFP4/6, fixed 2..7 bits): one pass over the bytes
            // with a bit buffer instead of a bounds-checked window per code.
            _ if bits < 8 && cols > 0 => {
                let start = base * bits as usize;
                let mut pos = start / 8;
                let mut buffer = u64::from(elements[pos]) >> (start % 8);
                let mut held = 8 - (start % 8) as u32;
                pos += 1;
                let mask = (1u64 << bits) - 1;
                for (c, o) in out.iter_mut().enumerate() {
                    while held < bits {
                        buffer |= u64::from(elements[pos]) << held;
                        pos += 1;
                        held += 8;
                    }
                    let code = (buffer & mask) as u32;
                    buffer >>= bits;
                    held -= bits;
                    *o = self.value(code, r, c / 32);
                }
            }
            _ => {
                for (c, o) in out.iter_mut().enumerate() {
                    let code = read_code(elements, bits, (base + c) as u64);
                    *o = self.value(code, r, c / 32);
                }
            }
        }
    }

    /// Calls `f(column, value)` for each stored entry of row `r` of a sparse tensor, in column order.
    pub fn for_each_stored(&self, r: usize, mut f: impl FnMut(usize, f32)) {
        let bits = self.encoding.element_bits();
        let bpr = self.terms.blocks_per_row as usize;
        let mut next = read_row_offset(self.row_offsets, self.row_offset_bytes, r);
        for j in 0..bpr {
            let mut m = read_mask(self.masks, r * bpr + j);
            if let (8, Encoding::Mx(_)) = (bits, self.encoding) {
                // Byte codes of an MX block (MXINT8, MXFP8): the scale once per block, codes read directly.
                let scale = mx::scale_value(self.scales[r * bpr + j]);
                while m != 0 {
                    let i = m.trailing_zeros() as usize;
                    m &= m - 1;
                    f(
                        j * 32 + i,
                        self.table[usize::from(self.elements[next as usize])] * scale,
                    );
                    next += 1;
                }
                continue;
            }
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                m &= m - 1;
                f(
                    j * 32 + i,
                    self.value(read_code(self.elements, bits, next), r, j),
                );
                next += 1;
            }
        }
    }

    /// For a sparse tensor whose codes are whole bytes (8-bit fixed point, MXINT8/MXFP8): `f(column, code)`
    /// for each stored entry of row `r`, in column order, the code byte as stored (no decoding). Returns
    /// false, calling nothing, for other element widths.
    pub fn for_each_stored_byte(&self, r: usize, mut f: impl FnMut(usize, u8)) -> bool {
        if self.encoding.element_bits() != 8 {
            return false;
        }
        let bpr = self.terms.blocks_per_row as usize;
        let mut next = read_row_offset(self.row_offsets, self.row_offset_bytes, r) as usize;
        for j in 0..bpr {
            let mut m = read_mask(self.masks, r * bpr + j);
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                m &= m - 1;
                f(j * 32 + i, self.elements[next]);
                next += 1;
            }
        }
        true
    }

    /// Value of one code of row `r`, block `j`.
    fn value(&self, code: u32, r: usize, j: usize) -> f32 {
        match self.encoding {
            Encoding::F32 => f32::from_bits(code),
            Encoding::F16 => float::f16_value(code as u16),
            Encoding::Bf16 => float::bf16_value(code as u16),
            Encoding::Fixed { frac, .. } => {
                fixed::dequantize(sign_extend(code, self.encoding.element_bits()), frac)
            }
            Encoding::Mx(_) => {
                let bpr = self.terms.blocks_per_row as usize;
                self.table[code as usize] * mx::scale_value(self.scales[r * bpr + j])
            }
            Encoding::Raw(_) => f32::NAN, // raw tensors are not decoded (callers refuse them first)
        }
    }
}
