//! Decoding a validated tensor back to binary32: exactly the values every runtime backend computes with.

use crate::bits::{read_code, sign_extend};
use crate::encode::EncodedTensor;
use crate::encoding::{Encoding, RawDtype};
use crate::error::{Error, Result};
use crate::layout::{PLANE_ELEMENTS, PLANE_MASKS, PLANE_ROW_OFFSETS, PLANE_SCALES};
use crate::mx::{self, BLOCK};
use crate::reader::{read_mask, read_row_offset, TensorView};
use crate::shape::ShapeTerms;
use crate::{fixed, float};

/// Decodes one code given its row and block index (the MX scale depends on both).
type CodeDecoder<'a> = Box<dyn Fn(u32, u64, u64) -> f32 + 'a>;

impl TensorView<'_> {
    /// All elements as binary32 in row-major order (elements a sparse tensor does not store are +0.0). Raw tensors are refused: they are
    /// not numeric encodings of f32 values (read them with [`TensorView::plane`]).
    pub fn dequantize(&self) -> Result<Vec<f32>> {
        let value = self.value_fn()?;
        let mut out = vec![0.0f32; self.terms.numel as usize];
        self.for_each_code(|r, c, code| {
            out[(r * self.terms.cols + c) as usize] = value(code, r, c / BLOCK as u64)
        });
        Ok(out)
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
            let mut next = read_row_offset(offsets, r);
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

    /// The decoder of one code, given its row and block (used by MX scales).
    fn value_fn(&self) -> Result<CodeDecoder<'_>> {
        Ok(match self.encoding {
            Encoding::F32 => Box::new(|c, _, _| f32::from_bits(c)),
            Encoding::F16 => Box::new(|c, _, _| float::f16_value(c as u16)),
            Encoding::Bf16 => Box::new(|c, _, _| float::bf16_value(c as u16)),
            Encoding::Fixed { frac, .. } => {
                let bits = self.encoding.element_bits();
                Box::new(move |c, _, _| fixed::dequantize(sign_extend(c, bits), frac))
            }
            Encoding::Mx(elem) => {
                let table = mx::code_table(elem);
                let scales = self.planes[PLANE_SCALES];
                let bpr = self.terms.blocks_per_row;
                Box::new(move |c, r, b| {
                    let s = scales
                        .get((r * bpr + b) as usize)
                        .copied()
                        .unwrap_or(mx::SCALE_NAN);
                    table[c as usize] * mx::scale_value(s)
                })
            }
            Encoding::Raw(d) => {
                return Err(Error::Unsupported {
                    tensor: self.name.to_string(),
                    reason: format!("raw {} tensors are copied as is, not dequantized", d.name()),
                })
            }
        })
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
            plane_offsets: [0; 4],
            crc32: 0,
        })
    }
}
