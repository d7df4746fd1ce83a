//! Weights as they lie in the mapped file, and decoding of one row at a time (never the whole tensor):
//! kernels call [`WeightView::decode_row`] into a small scratch buffer, or read MXINT8 codes directly.

use mxrt_format::layout::{PLANE_ELEMENTS, PLANE_MASKS, PLANE_ROW_OFFSETS, PLANE_SCALES};
use mxrt_format::{bits, fixed, float, mx, Encoding, MxElem, ShapeTerms, TensorView};

/// A validated tensor's planes, as byte ranges of the mapped file (so the model can own the map).
#[derive(Debug, Clone)]
pub struct TensorRef {
    pub name: String,
    pub shape: Vec<u64>,
    pub encoding: Encoding,
    pub sparse: bool,
    pub terms: ShapeTerms,
    planes: [(usize, usize); 4],
    /// Value of each element code (MX encodings), built once at open.
    table: Vec<f32>,
    /// Elements actually stored (all of them for dense tensors).
    pub stored_elements: u64,
}

impl TensorRef {
    pub fn from_view(v: &TensorView<'_>) -> TensorRef {
        let mut planes = [(0, 0); 4];
        for (role, p) in planes.iter_mut().enumerate() {
            *p = (v.plane_offset(role) as usize, v.plane(role).len());
        }
        TensorRef {
            name: v.name.to_string(),
            shape: v.shape.clone(),
            encoding: v.encoding,
            sparse: v.sparse,
            terms: v.terms,
            planes,
            table: match v.encoding {
                Encoding::Mx(e) => mx::code_table(e),
                _ => Vec::new(),
            },
            stored_elements: v.stored_elements(),
        }
    }

    /// Bytes of all planes.
    pub fn stored_bytes(&self) -> u64 {
        self.planes.iter().map(|p| p.1 as u64).sum()
    }

    /// The bytes of plane `role` (`mxrt_format::layout::PLANE_*`) in `bytes`, the mapped file.
    pub fn plane<'a>(&self, bytes: &'a [u8], role: usize) -> &'a [u8] {
        let (o, l) = self.planes[role];
        &bytes[o..o + l]
    }

    /// The bytes of plane 0 (raw tensors: the data itself).
    pub fn raw<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        let (o, l) = self.planes[PLANE_ELEMENTS];
        &bytes[o..o + l]
    }

    /// The view over `bytes` (the whole mapped file this reference was made from).
    pub fn view<'a>(&'a self, bytes: &'a [u8]) -> WeightView<'a> {
        let plane = |role: usize| {
            let (o, l) = self.planes[role];
            &bytes[o..o + l]
        };
        WeightView {
            tensor: self,
            elements: plane(PLANE_ELEMENTS),
            scales: plane(PLANE_SCALES),
            masks: plane(PLANE_MASKS),
            row_offsets: plane(PLANE_ROW_OFFSETS),
            table: &self.table,
        }
    }
}

/// A weight matrix `[rows, cols]` (any rank: rows = product of the leading dims) readable row by row.
pub struct WeightView<'a> {
    pub tensor: &'a TensorRef,
    elements: &'a [u8],
    scales: &'a [u8],
    masks: &'a [u8],
    row_offsets: &'a [u8],
    table: &'a [f32],
}

impl WeightView<'_> {
    pub fn rows(&self) -> usize {
        self.tensor.terms.rows as usize
    }

    pub fn cols(&self) -> usize {
        self.tensor.terms.cols as usize
    }

    /// Dense MXINT8: the 32-code blocks and scales of row `r` (the integer fast path).
    pub fn mxint8_row(&self, r: usize) -> Option<(&[u8], &[u8])> {
        if self.tensor.encoding != Encoding::Mx(MxElem::Int8) || self.tensor.sparse {
            return None;
        }
        let bpr = self.tensor.terms.blocks_per_row as usize;
        Some((
            &self.elements[r * bpr * 32..(r + 1) * bpr * 32],
            &self.scales[r * bpr..(r + 1) * bpr],
        ))
    }

    /// Dense MXINT8: every row's codes (row after row, `blocks_per_row * 32` bytes each) and scale bytes.
    pub fn mxint8_rows_all(&self) -> Option<(&[u8], &[u8])> {
        if self.tensor.encoding != Encoding::Mx(MxElem::Int8) || self.tensor.sparse {
            return None;
        }
        let blocks = self.rows() * self.tensor.terms.blocks_per_row as usize;
        Some((&self.elements[..blocks * 32], &self.scales[..blocks]))
    }

    /// Dense fixed point of width <= 8: the two's complement codes of row `r` as bytes (unpacked for W < 8).
    pub fn fixed_i8_row(&self, r: usize, out: &mut [u8]) -> bool {
        let Encoding::Fixed { width, .. } = self.tensor.encoding else {
            return false;
        };
        if width > 8 || self.tensor.sparse {
            return false;
        }
        let (cols, bits) = (self.cols(), self.tensor.encoding.element_bits());
        if bits == 8 {
            out.copy_from_slice(&self.elements[r * cols..(r + 1) * cols]);
        } else {
            for (c, o) in out.iter_mut().enumerate() {
                *o = bits::sign_extend(
                    bits::read_code(self.elements, bits, (r * cols + c) as u64),
                    bits,
                ) as i8 as u8;
            }
        }
        true
    }

    /// Calls `f(column, value)` for each stored entry of row `r` of a sparse tensor, in column order.
    fn for_each_stored(&self, r: usize, mut f: impl FnMut(usize, f32)) {
        let t = self.tensor;
        let bits = t.encoding.element_bits();
        let bpr = t.terms.blocks_per_row as usize;
        let mut next = u64::from_le_bytes(
            self.row_offsets[r * 8..r * 8 + 8]
                .try_into()
                .unwrap_or([0; 8]),
        );
        for j in 0..bpr {
            let mut m = u32::from_le_bytes(
                self.masks[(r * bpr + j) * 4..][..4]
                    .try_into()
                    .unwrap_or([0; 4]),
            );
            if let (8, Encoding::Mx(_)) = (bits, t.encoding) {
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
                    self.value(bits::read_code(self.elements, bits, next), r, j),
                );
                next += 1;
            }
        }
    }

    /// The stored (non-zero) entries of row `r` of a sparse tensor, as column indices and values.
    pub fn sparse_row(&self, r: usize, cols: &mut Vec<u32>, values: &mut Vec<f32>) {
        cols.clear();
        values.clear();
        self.for_each_stored(r, |c, v| {
            cols.push(c as u32);
            values.push(v);
        });
    }

    /// Dense f32 weights: row `r` read in place from the file (no copy), when the bytes are aligned for f32
    /// (planes are 64-byte aligned in the file, so they are whenever the file image is) and the machine is
    /// little-endian like the format.
    pub fn f32_row(&self, r: usize) -> Option<&[f32]> {
        let t = self.tensor;
        if t.encoding != Encoding::F32 || t.sparse || cfg!(target_endian = "big") {
            return None;
        }
        let (stride, cols) = (t.terms.dense_row_stride(t.encoding) as usize, self.cols());
        let bytes = self.elements.get(r * stride * 4..(r * stride + cols) * 4)?;
        <[f32] as zerocopy::FromBytes>::ref_from_bytes(bytes).ok()
    }

    /// Decodes row `r` into `out` (`cols` values): exactly the values `mxrt dequantize` gives.
    pub fn decode_row(&self, r: usize, out: &mut [f32]) {
        let t = self.tensor;
        let cols = self.cols();
        debug_assert_eq!(out.len(), cols);
        let bits = t.encoding.element_bits();
        if t.sparse {
            out.fill(0.0);
            self.for_each_stored(r, |c, v| out[c] = v);
            return;
        }
        let stride = t.terms.dense_row_stride(t.encoding) as usize;
        let base = r * stride;
        match t.encoding {
            Encoding::F32 => {
                for (o, c) in out
                    .iter_mut()
                    .zip(self.elements[base * 4..(base + cols) * 4].chunks_exact(4))
                {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            Encoding::F16 => {
                for (o, c) in out
                    .iter_mut()
                    .zip(self.elements[base * 2..(base + cols) * 2].chunks_exact(2))
                {
                    *o = float::f16_value(u16::from_le_bytes([c[0], c[1]]));
                }
            }
            Encoding::Mx(MxElem::Int8) => {
                let codes = &self.elements[base..base + stride];
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
                for (o, &b) in out.iter_mut().zip(&self.elements[base..base + cols]) {
                    *o = fixed::dequantize(i32::from(b as i8), frac);
                }
            }
            Encoding::Fixed { frac, .. } if bits == 16 => {
                for (o, c) in out
                    .iter_mut()
                    .zip(self.elements[base * 2..(base + cols) * 2].chunks_exact(2))
                {
                    *o = fixed::dequantize(i32::from(i16::from_le_bytes([c[0], c[1]])), frac);
                }
            }
            Encoding::Fixed { frac, .. } if bits == 32 => {
                for (o, c) in out
                    .iter_mut()
                    .zip(self.elements[base * 4..(base + cols) * 4].chunks_exact(4))
                {
                    *o = fixed::dequantize(i32::from_le_bytes([c[0], c[1], c[2], c[3]]), frac);
                }
            }
            // Bit-packed codes narrower than a byte (MXINT4, MXFP4/6, fixed 2..7 bits): one pass over the bytes
            // with a bit buffer instead of a bounds-checked window per code.
            _ if bits < 8 && cols > 0 => {
                let start = base * bits as usize;
                let mut pos = start / 8;
                let mut buffer = u64::from(self.elements[pos]) >> (start % 8);
                let mut held = 8 - (start % 8) as u32;
                pos += 1;
                let mask = (1u64 << bits) - 1;
                for (c, o) in out.iter_mut().enumerate() {
                    while held < bits {
                        buffer |= u64::from(self.elements[pos]) << held;
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
                    let code = bits::read_code(self.elements, bits, (base + c) as u64);
                    *o = self.value(code, r, c / 32);
                }
            }
        }
    }

    /// Value of one code of row `r`, block `j`.
    fn value(&self, code: u32, r: usize, j: usize) -> f32 {
        match self.tensor.encoding {
            Encoding::F32 => f32::from_bits(code),
            Encoding::F16 => float::f16_value(code as u16),
            Encoding::Bf16 => float::bf16_value(code as u16),
            Encoding::Fixed { frac, .. } => fixed::dequantize(
                bits::sign_extend(code, self.tensor.encoding.element_bits()),
                frac,
            ),
            Encoding::Mx(_) => {
                let bpr = self.tensor.terms.blocks_per_row as usize;
                self.table[code as usize] * mx::scale_value(self.scales[r * bpr + j])
            }
            Encoding::Raw(_) => f32::NAN, // refused at open: the model never reads raw tensors as weights
        }
    }
}
