//! Decoding a validated tensor back to binary32: exactly the values every runtime backend computes with.

use crate::bits::read_code;
use crate::encode::EncodedTensor;
use crate::encoding::{Encoding, RawDtype};
use crate::error::{Error, Result};
use crate::layout::{PLANE_ELEMENTS, PLANE_MASKS, PLANE_ROW_OFFSETS};
use crate::mx::{self, BLOCK};
use crate::reader::{read_mask, read_row_offset, TensorView};
use crate::rows::RowDecoder;
use crate::shape::ShapeTerms;

impl TensorView<'_> {
    /// All elements as binary32 in row-major order (elements a sparse tensor does not store are +0.0), decoded
    /// row by row with the one row decoder ([`RowDecoder`]). Raw tensors are refused: they are not numeric
    /// encodings of f32 values (read them with [`TensorView::plane`]).
    pub fn dequantize(&self) -> Result<Vec<f32>> {
        let table = match self.encoding {
            Encoding::Mx(elem) => mx::code_table(elem),
            Encoding::Raw(d) => {
                return Err(Error::Unsupported {
                    tensor: self.name.to_string(),
                    reason: format!("raw {} tensors are copied as is, not dequantized", d.name()),
                })
            }
            _ => Vec::new(),
        };
        let decoder = self.row_decoder(&table);
        let mut out = vec![0.0f32; self.terms.numel as usize];
        let cols = self.terms.cols as usize;
        if cols > 0 {
            for (r, row) in out.chunks_exact_mut(cols).enumerate() {
                decoder.decode_row(r, row);
            }
        }
        Ok(out)
    }

    /// The row decoder over this tensor's planes; `table` is `mx::code_table` of its element type for MX
    /// encodings (ignored otherwise).
    pub fn row_decoder<'t>(&'t self, table: &'t [f32]) -> RowDecoder<'t> {
        RowDecoder::new(
            self.encoding,
            self.sparse,
            self.terms,
            self.planes,
            self.row_offset_bytes,
            table,
        )
    }

    /// Number of elements whose value is zero (±0) after encoding, padding excluded.
    pub fn zero_count(&self) -> u64 {
        if let Encoding::Raw(dtype) = self.encoding {
            return raw_zero_count(self.planes[PLANE_ELEMENTS], dtype);
        }
        let mut nonzero = 0u64;
        self.for_each_code(|_, _, code| {
            nonzero += u64::from(!crate::encode::is_zero_value(code, self.encoding))
        });
        self.terms.numel - nonzero
    }

    /// Calls `f(row, col, code)` for every stored element of a non-raw tensor (sparse: only the stored ones).
    fn for_each_code(&self, mut f: impl FnMut(u64, u64, u32)) {
        let bits = self.encoding.element_bits();
        let elements = self.planes[PLANE_ELEMENTS];
        let t = &self.terms;
        if !self.sparse {
            let stride = t.dense_row_stride(self.encoding);
            for r in 0..t.rows {
                for c in 0..t.cols {
                    f(r, c, read_code(elements, bits, r * stride + c));
                }
            }
            return;
        }
        let (masks, offsets) = (self.planes[PLANE_MASKS], self.planes[PLANE_ROW_OFFSETS]);
        let bpr = t.blocks_per_row as usize;
        for r in 0..t.rows as usize {
            let mut next = read_row_offset(offsets, self.row_offset_bytes, r);
            for j in 0..bpr {
                let mut m = read_mask(masks, r * bpr + j);
                while m != 0 {
                    let i = m.trailing_zeros();
                    m &= m - 1;
                    f(
                        r as u64,
                        (j * BLOCK) as u64 + u64::from(i),
                        read_code(elements, bits, next),
                    );
                    next += 1;
                }
            }
        }
    }
}

/// Zeros of a raw tensor (for f64, ±0.0).
fn raw_zero_count(bytes: &[u8], dtype: RawDtype) -> u64 {
    let size = dtype.size_bytes() as usize;
    let zero = |c: &[u8]| match dtype {
        RawDtype::F64 => c.try_into().map(f64::from_le_bytes).is_ok_and(|v| v == 0.0),
        _ => c.iter().all(|&b| b == 0),
    };
    bytes.chunks_exact(size).filter(|c| zero(c)).count() as u64
}

impl EncodedTensor {
    /// The values this tensor decodes to, without writing a file: what the fidelity report compares against
    /// the original weights. Identical to decoding the tensor after a write and a read.
    pub fn dequantize(&self) -> Result<Vec<f32>> {
        self.view()?.dequantize()
    }

    /// Number of elements whose encoded value is zero.
    pub fn zero_count(&self) -> Result<u64> {
        Ok(self.view()?.zero_count())
    }

    /// A view over the in-memory planes (built by our own encoder, so consistent by construction).
    fn view(&self) -> Result<TensorView<'_>> {
        Ok(TensorView {
            name: &self.name,
            shape: self.shape.clone(),
            encoding: self.encoding,
            sparse: self.sparse,
            rounding: self.rounding,
            terms: ShapeTerms::new(&self.shape, &self.name)?,
            planes: [
                &self.planes[0],
                &self.planes[1],
                &self.planes[2],
                &self.planes[3],
            ],
            row_offset_bytes: if self.sparse { 8 } else { 0 },
            plane_offsets: [0; 4],
            crc32: 0,
        })
    }
}
