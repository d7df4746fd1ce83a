//! Weights as they lie in the mapped file, and decoding of one row at a time (never the whole tensor):
//! kernels call [`WeightView::decode_row`] into a small scratch buffer, or read MXINT8 codes directly.

use mxrt_format::layout::PLANE_ELEMENTS;
use mxrt_format::rows::RowDecoder;
use mxrt_format::{bits, mx, Encoding, MxElem, ShapeTerms, TensorView};

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
    /// Sparse: bytes per row offset in plane 3 (2, 4 or 8); dense: 0.
    pub row_offset_bytes: u8,
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
            row_offset_bytes: v.row_offset_bytes,
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
            rows: RowDecoder::new(
                self.encoding,
                self.sparse,
                self.terms,
                [0, 1, 2, 3].map(plane), // indexed by layout::PLANE_*
                self.row_offset_bytes,
                &self.table,
            ),
            prepared: None,
        }
    }
}

/// What a backend derives once, at open, from a dense MXINT8 matrix for its integer kernels, so that no
/// inference derives it again.
#[derive(Debug, Clone, Default)]
pub struct PreparedBlocks {
    /// Each block's sum of codes (in −4096..=4064), for the CPU kernels that read activations as unsigned
    /// (empty for the others). One entry per block, row after row, as the blocks lie in the file.
    pub code_sums: Vec<i16>,
    /// Whether any code is −128, for a CPU table whose fastest kernel cannot take that code (`None`: not
    /// looked at, the table's kernel takes every code).
    pub minus_128: Option<bool>,
}

/// A weight matrix `[rows, cols]` (any rank: rows = product of the leading dims) readable row by row through
/// the format's row decoder, plus the in-place accesses the kernels' fast paths take.
pub struct WeightView<'a> {
    pub tensor: &'a TensorRef,
    rows: RowDecoder<'a>,
    prepared: Option<&'a PreparedBlocks>,
}

impl<'a> WeightView<'a> {
    /// This view with the values its backend prepared for it at open (`None`: derived per call).
    pub fn with_prepared(mut self, prepared: Option<&'a PreparedBlocks>) -> WeightView<'a> {
        self.prepared = prepared;
        self
    }

    /// The values prepared at open for this matrix, if any.
    pub fn prepared(&self) -> Option<&'a PreparedBlocks> {
        self.prepared
    }

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
            &self.rows.elements[r * bpr * 32..(r + 1) * bpr * 32],
            &self.rows.scales[r * bpr..(r + 1) * bpr],
        ))
    }

    /// Dense MXINT8: every row's codes (row after row, `blocks_per_row * 32` bytes each) and scale bytes.
    pub fn mxint8_rows_all(&self) -> Option<(&[u8], &[u8])> {
        if self.tensor.encoding != Encoding::Mx(MxElem::Int8) || self.tensor.sparse {
            return None;
        }
        let blocks = self.rows() * self.tensor.terms.blocks_per_row as usize;
        Some((
            &self.rows.elements[..blocks * 32],
            &self.rows.scales[..blocks],
        ))
    }

    /// 8-bit fixed point whose rows are whole blocks of 32 (as the integer panel kernels read MXINT8 rows):
    /// every row's codes, row after row, and the fraction width. Dense tensors give the codes in place;
    /// sparse ones (zeros dropped) are expanded into a dense copy of their codes (`rows × cols` bytes).
    pub fn fixed8_rows_all(&self) -> Option<(std::borrow::Cow<'_, [u8]>, u8)> {
        let Encoding::Fixed { width: 8, frac } = self.tensor.encoding else {
            return None;
        };
        let (rows, cols) = (self.rows(), self.cols());
        if !cols.is_multiple_of(32) {
            return None;
        }
        if !self.tensor.sparse {
            return Some((
                std::borrow::Cow::Borrowed(&self.rows.elements[..rows * cols]),
                frac,
            ));
        }
        let mut codes = vec![0u8; rows * cols];
        for (r, row) in codes.chunks_exact_mut(cols).enumerate() {
            self.rows.for_each_stored_byte(r, |c, code| row[c] = code);
        }
        Some((std::borrow::Cow::Owned(codes), frac))
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
            out.copy_from_slice(&self.rows.elements[r * cols..(r + 1) * cols]);
        } else {
            for (c, o) in out.iter_mut().enumerate() {
                *o = bits::sign_extend(
                    bits::read_code(self.rows.elements, bits, (r * cols + c) as u64),
                    bits,
                ) as i8 as u8;
            }
        }
        true
    }

    /// The stored (non-zero) entries of row `r` of a sparse tensor, as column indices and values.
    pub fn sparse_row(&self, r: usize, cols: &mut Vec<u32>, values: &mut Vec<f32>) {
        cols.clear();
        values.clear();
        self.rows.for_each_stored(r, |c, v| {
            cols.push(c as u32);
            values.push(v);
        });
    }

    /// Dense f32 weights: row `r` read in place from the file (no copy), when the bytes are aligned for f32
    /// (the format aligns planes to at least 8 bytes, so they are whenever the file image is) and the machine is
    /// little-endian like the format.
    pub fn f32_row(&self, r: usize) -> Option<&[f32]> {
        let t = self.tensor;
        if t.encoding != Encoding::F32 || t.sparse || cfg!(target_endian = "big") {
            return None;
        }
        let (stride, cols) = (t.terms.dense_row_stride(t.encoding) as usize, self.cols());
        let bytes = self
            .rows
            .elements
            .get(r * stride * 4..(r * stride + cols) * 4)?;
        <[f32] as zerocopy::FromBytes>::ref_from_bytes(bytes).ok()
    }

    /// Dense f32 weights stored without row padding: rows `rows` read in place as one `[rows.len(), cols]`
    /// slice (the kernels that take several weight rows as one matrix), under the same conditions as
    /// [`WeightView::f32_row`].
    pub fn f32_rows(&self, rows: std::ops::Range<usize>) -> Option<&[f32]> {
        let t = self.tensor;
        if t.encoding != Encoding::F32 || t.sparse || cfg!(target_endian = "big") {
            return None;
        }
        let cols = self.cols();
        if t.terms.dense_row_stride(t.encoding) as usize != cols || rows.end > self.rows() {
            return None;
        }
        let bytes = self
            .rows
            .elements
            .get(rows.start * cols * 4..rows.end * cols * 4)?;
        <[f32] as zerocopy::FromBytes>::ref_from_bytes(bytes).ok()
    }

    /// Decodes row `r` into `out` (`cols` values): exactly the values `mxrt dequantize` gives (the same
    /// decoder, `mxrt_format::rows`).
    pub fn decode_row(&self, r: usize, out: &mut [f32]) {
        self.rows.decode_row(r, out);
    }
}
