//! Shape terms of FORMAT.md section 4 (numel, rows, cols, blocks) and the plane lengths they imply.

use crate::bits::packed_len;
use crate::encoding::Encoding;
use crate::error::{mul, Result};
use crate::mx::BLOCK;

/// Derived sizes of a tensor shape; every product is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapeTerms {
    pub numel: u64,
    /// Product of all dims but the last (1 for rank <= 1).
    pub rows: u64,
    /// The last dim (1 for rank 0).
    pub cols: u64,
    pub blocks_per_row: u64,
    pub blocks: u64,
}

impl ShapeTerms {
    pub fn new(shape: &[u64], what: &str) -> Result<ShapeTerms> {
        let numel = shape.iter().try_fold(1u64, |acc, &d| mul(acc, d, what))?;
        let (rows, cols) = match shape.split_last() {
            None => (1, 1),
            Some((&last, rest)) => (
                rest.iter().try_fold(1u64, |acc, &d| mul(acc, d, what))?,
                last,
            ),
        };
        let blocks_per_row = cols.div_ceil(BLOCK as u64);
        let blocks = mul(rows, blocks_per_row, what)?;
        // Padded MX element count must fit too.
        mul(blocks, BLOCK as u64, what)?;
        Ok(ShapeTerms {
            numel,
            rows,
            cols,
            blocks_per_row,
            blocks,
        })
    }

    /// Elements stored per row in the dense layout: MX rows are padded to whole blocks.
    pub fn dense_row_stride(&self, encoding: Encoding) -> u64 {
        if encoding.is_mx() {
            self.blocks_per_row * BLOCK as u64
        } else {
            self.cols
        }
    }

    /// Exact plane lengths of the dense layout.
    pub fn dense_plane_lens(&self, encoding: Encoding, what: &str) -> Result<[u64; 4]> {
        let count = mul(self.rows, self.dense_row_stride(encoding), what)?;
        let elements = packed(count, encoding.element_bits(), what)?;
        let scales = if encoding.is_mx() { self.blocks } else { 0 };
        Ok([elements, scales, 0, 0])
    }

    /// Exact plane lengths of the sparse layout holding `stored` elements, with row offsets of
    /// `row_offset_bytes` each.
    pub fn sparse_plane_lens(
        &self,
        encoding: Encoding,
        stored: u64,
        row_offset_bytes: u8,
        what: &str,
    ) -> Result<[u64; 4]> {
        let elements = packed(stored, encoding.element_bits(), what)?;
        let scales = if encoding.is_mx() { self.blocks } else { 0 };
        let masks = mul(self.blocks, 4, what)?;
        let row_offsets = mul(
            crate::error::add(self.rows, 1, what)?,
            u64::from(row_offset_bytes),
            what,
        )?;
        Ok([elements, scales, masks, row_offsets])
    }
}

fn packed(count: u64, bits: u32, what: &str) -> Result<u64> {
    packed_len(count, bits).ok_or_else(|| crate::Error::Overflow {
        what: what.to_string(),
    })
}

/// The narrowest row-offset width (2, 4 or 8 bytes) that holds `stored`, the largest row offset of a sparse
/// tensor: what the version 2 writer stores.
pub fn row_offset_bytes_for(stored: u64) -> u8 {
    if stored <= u64::from(u16::MAX) {
        2
    } else if stored <= u64::from(u32::MAX) {
        4
    } else {
        8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_of_odd_shapes() {
        let t = ShapeTerms::new(&[3, 40], "t").unwrap();
        assert_eq!(
            (t.numel, t.rows, t.cols, t.blocks_per_row, t.blocks),
            (120, 3, 40, 2, 6)
        );
        let scalar = ShapeTerms::new(&[], "t").unwrap();
        assert_eq!(
            (scalar.numel, scalar.rows, scalar.cols, scalar.blocks),
            (1, 1, 1, 1)
        );
        let empty = ShapeTerms::new(&[4, 0], "t").unwrap();
        assert_eq!((empty.numel, empty.blocks), (0, 0));
        let vector = ShapeTerms::new(&[5], "t").unwrap();
        assert_eq!((vector.rows, vector.cols), (1, 5));
        assert!(ShapeTerms::new(&[u64::MAX, 2], "t").is_err());
        assert!(ShapeTerms::new(&[1 << 62, 1], "t").is_err()); // padded MX count overflows
    }

    #[test]
    fn dense_mx_plane_lengths() {
        let t = ShapeTerms::new(&[3, 40], "t").unwrap();
        let int8 = Encoding::Mx(crate::MxElem::Int8);
        assert_eq!(t.dense_plane_lens(int8, "t").unwrap(), [3 * 64, 6, 0, 0]);
        let fp6 = Encoding::Mx(crate::MxElem::Fp6E2M3);
        assert_eq!(
            t.dense_plane_lens(fp6, "t").unwrap(),
            [3 * 64 * 6 / 8, 6, 0, 0]
        );
        let fixed3 = Encoding::Fixed { width: 3, frac: 1 };
        assert_eq!(t.dense_plane_lens(fixed3, "t").unwrap(), [45, 0, 0, 0]);
    }
}
