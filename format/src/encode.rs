//! Turning f32 values into the planes of one tensor: element codes, MX scales, and the dense or sparse layout.

use crate::bits::BitWriter;
use crate::encoding::{Encoding, RawDtype, Rounding};
use crate::error::{Error, Result};
use crate::layout::{PLANE_ELEMENTS, PLANE_MASKS, PLANE_ROW_OFFSETS, PLANE_SCALES};
use crate::mx::{self, BLOCK};
use crate::shape::{row_offset_bytes_for, ShapeTerms};
use crate::{fixed, float};

/// Whether the writer may store a tensor sparse (FORMAT.md section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SparsePolicy {
    /// Dense always.
    Never,
    /// Sparse only when its planes are strictly smaller than the dense ones (the writer's rule).
    #[default]
    IfSmaller,
    /// Sparse even when larger: for tests and experiments only; the CLI never uses it.
    Always,
}

/// One tensor, encoded and ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedTensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub encoding: Encoding,
    pub sparse: bool,
    /// Rounding used when encoding (`None`: exact copy or IEEE conversion).
    pub rounding: Option<Rounding>,
    /// Plane bytes by role: elements, scales, masks, row offsets (empty when unused).
    pub planes: [Vec<u8>; 4],
}

impl EncodedTensor {
    /// Bytes of all planes as the (version 2) writer stores them, before alignment padding: sparse row
    /// offsets in the narrowest width that holds them.
    pub fn stored_bytes(&self) -> u64 {
        let all: u64 = self.planes.iter().map(|p| p.len() as u64).sum();
        if !self.sparse {
            return all;
        }
        let offsets = self.planes[PLANE_ROW_OFFSETS].len() as u64;
        all - offsets + offsets / 8 * u64::from(row_offset_bytes_for(self.last_row_offset()))
    }

    /// A sparse tensor's last row offset: its stored element count (0 for dense tensors). In memory the
    /// row offsets are u64 (version 1's width); writers narrow them.
    pub fn last_row_offset(&self) -> u64 {
        let p = &self.planes[PLANE_ROW_OFFSETS];
        p.len().checked_sub(8).map_or(0, |at| {
            u64::from_le_bytes(p[at..].try_into().unwrap_or([0; 8]))
        })
    }
}

/// Element codes of a tensor in row-major order without padding, plus the MX scales.
struct Codes {
    codes: Vec<u32>,
    scales: Vec<u8>,
}

/// Encodes f32 `values` (row-major, `shape`) as `encoding`. NaN is refused by fixed point (which cannot hold
/// it) and a finite value that overflows f16 is refused; MX turns a block holding NaN or ±inf into a NaN block.
pub fn encode_f32(
    name: &str,
    shape: &[u64],
    values: &[f32],
    encoding: Encoding,
    rounding: Rounding,
    policy: SparsePolicy,
) -> Result<EncodedTensor> {
    let terms = ShapeTerms::new(shape, name)?;
    if terms.numel != values.len() as u64 {
        return Err(Error::ShapeMismatch {
            tensor: name.to_string(),
            shape: shape.to_vec(),
            expected: terms.numel,
            actual: values.len() as u64,
        });
    }
    // The planes are built in memory: a shape whose planes no allocation can hold (a sparse [2^40, 0] needs
    // 8 TB of row offsets for no element) is an error here, not an abort inside the encoder.
    let lens = match policy {
        SparsePolicy::Never => terms.dense_plane_lens(encoding, name)?,
        _ => terms.sparse_plane_lens(encoding, terms.numel, 8, name)?,
    };
    check_allocatable(name, &lens)?;
    let codes = compute_codes(name, &terms, values, encoding, rounding)?;
    let rounding = matches!(encoding, Encoding::Mx(_) | Encoding::Fixed { .. }).then_some(rounding);
    let dense = || dense_planes(&terms, encoding, &codes);
    let (sparse, planes) = match policy {
        SparsePolicy::Never => (false, dense()),
        SparsePolicy::Always => (true, sparse_planes(&terms, encoding, &codes)),
        SparsePolicy::IfSmaller => {
            let stored = codes.codes.iter().filter(|&&c| !is_removable(c)).count() as u64;
            let sparse_len: u64 = terms
                .sparse_plane_lens(encoding, stored, row_offset_bytes_for(stored), name)?
                .iter()
                .sum();
            let dense_len: u64 = terms.dense_plane_lens(encoding, name)?.iter().sum();
            if sparse_len < dense_len {
                (true, sparse_planes(&terms, encoding, &codes))
            } else {
                (false, dense())
            }
        }
    };
    Ok(EncodedTensor {
        name: name.to_string(),
        shape: shape.to_vec(),
        encoding,
        sparse,
        rounding,
        planes,
    })
}

/// Refuses planes of `lens` bytes that this process cannot allocate (probed without touching the memory, and
/// only for planes of 256 MiB and more: below that, the probe would be an allocation per tensor for nothing).
fn check_allocatable(name: &str, lens: &[u64; 4]) -> Result<()> {
    const PROBE_FROM: u64 = 256 << 20;
    let total = lens
        .iter()
        .try_fold(0u64, |a, &l| a.checked_add(l))
        .ok_or_else(|| Error::Overflow {
            what: format!("tensor {name:?}'s plane sizes"),
        })?;
    let fits = total < PROBE_FROM
        || usize::try_from(total)
            .ok()
            .is_some_and(|n| Vec::<u8>::new().try_reserve_exact(n).is_ok());
    if fits {
        Ok(())
    } else {
        Err(Error::Unsupported {
            tensor: name.to_string(),
            reason: format!("its planes need {total} bytes, more than this machine can allocate"),
        })
    }
}

/// Wraps bytes of a non-floating-point tensor, copied as is (always dense).
pub fn encode_raw(
    name: &str,
    shape: &[u64],
    dtype: RawDtype,
    bytes: Vec<u8>,
) -> Result<EncodedTensor> {
    let terms = ShapeTerms::new(shape, name)?;
    let expected = crate::error::mul(terms.numel, u64::from(dtype.size_bytes()), name)?;
    if expected != bytes.len() as u64 {
        return Err(Error::ShapeMismatch {
            tensor: name.to_string(),
            shape: shape.to_vec(),
            expected,
            actual: bytes.len() as u64,
        });
    }
    if dtype == RawDtype::Bool {
        crate::reader::check_bools(name, &bytes)?;
    }
    Ok(EncodedTensor {
        name: name.to_string(),
        shape: shape.to_vec(),
        encoding: Encoding::Raw(dtype),
        sparse: false,
        rounding: None,
        planes: [bytes, Vec::new(), Vec::new(), Vec::new()],
    })
}

/// A code the sparse layout removes: only code 0 (+0), so sparse and dense decode to identical bits.
pub(crate) fn is_removable(code: u32) -> bool {
    code == 0
}

/// A code whose value is zero (+0, or -0 for the floating-point encodings): what "sparsity" counts.
pub(crate) fn is_zero_value(code: u32, encoding: Encoding) -> bool {
    code == 0 || (encoding.has_negative_zero_code() && code == 1 << (encoding.element_bits() - 1))
}

fn compute_codes(
    name: &str,
    t: &ShapeTerms,
    values: &[f32],
    enc: Encoding,
    mode: Rounding,
) -> Result<Codes> {
    let unencodable = |index: usize, reason: &'static str| Error::Unencodable {
        tensor: name.to_string(),
        index: index as u64,
        value: values[index],
        encoding: enc.to_string(),
        reason,
    };
    let mut scales = Vec::new();
    let codes: Vec<u32> = match enc {
        Encoding::F32 => values.iter().map(|v| v.to_bits()).collect(),
        Encoding::F16 => values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                float::f16_code(v)
                    .map(u32::from)
                    .ok_or_else(|| unencodable(i, "overflows f16"))
            })
            .collect::<Result<_>>()?,
        Encoding::Bf16 => values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                float::bf16_code(v)
                    .map(u32::from)
                    .ok_or_else(|| unencodable(i, "overflows bf16"))
            })
            .collect::<Result<_>>()?,
        Encoding::Fixed { width, frac } => {
            let mask = container_mask(enc.element_bits());
            values
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    fixed::quantize(v, width, frac, mode)
                        .map(|q| q as u32 & mask)
                        .ok_or_else(|| unencodable(i, "NaN has no fixed-point code"))
                })
                .collect::<Result<_>>()?
        }
        Encoding::Mx(elem) => {
            let mut codes = Vec::with_capacity(values.len());
            scales.reserve(t.blocks as usize);
            let mut block_codes = [0u32; BLOCK];
            let cols = t.cols as usize;
            if cols > 0 {
                for row in values.chunks_exact(cols) {
                    for block in row.chunks(BLOCK) {
                        scales.push(mx::quantize_block(block, elem, mode, &mut block_codes));
                        codes.extend_from_slice(&block_codes[..block.len()]);
                    }
                }
            }
            codes
        }
        Encoding::Raw(_) => {
            return Err(Error::Unsupported {
                tensor: name.to_string(),
                reason: "raw tensors are copied with encode_raw, not encoded from f32".into(),
            })
        }
    };
    Ok(Codes { codes, scales })
}

fn container_mask(bits: u32) -> u32 {
    if bits == 32 {
        u32::MAX
    } else {
        (1 << bits) - 1
    }
}

fn dense_planes(t: &ShapeTerms, enc: Encoding, codes: &Codes) -> [Vec<u8>; 4] {
    let stride = t.dense_row_stride(enc) as usize;
    let cols = t.cols as usize;
    let mut w = BitWriter::new(enc.element_bits(), t.rows as usize * stride);
    if stride == cols {
        codes.codes.iter().for_each(|&c| w.push(c));
    } else if cols > 0 {
        for row in codes.codes.chunks_exact(cols) {
            row.iter().for_each(|&c| w.push(c));
            (cols..stride).for_each(|_| w.push(0));
        }
    } else {
        (0..t.rows as usize * stride).for_each(|_| w.push(0));
    }
    let mut planes: [Vec<u8>; 4] = Default::default();
    planes[PLANE_ELEMENTS] = w.finish();
    planes[PLANE_SCALES] = codes.scales.clone();
    planes
}

fn sparse_planes(t: &ShapeTerms, enc: Encoding, codes: &Codes) -> [Vec<u8>; 4] {
    let cols = t.cols as usize;
    let mut w = BitWriter::new(enc.element_bits(), 0);
    let mut masks = Vec::with_capacity(t.blocks as usize * 4);
    let mut row_offsets = Vec::with_capacity((t.rows as usize + 1) * 8);
    let mut stored = 0u64;
    row_offsets.extend_from_slice(&0u64.to_le_bytes());
    for r in 0..t.rows as usize {
        let row = codes.codes.get(r * cols..(r + 1) * cols).unwrap_or(&[]);
        for block in row.chunks(BLOCK) {
            let mut mask = 0u32;
            for (i, &c) in block.iter().enumerate() {
                if !is_removable(c) {
                    mask |= 1 << i;
                    w.push(c);
                    stored += 1;
                }
            }
            masks.extend_from_slice(&mask.to_le_bytes());
        }
        row_offsets.extend_from_slice(&stored.to_le_bytes());
    }
    let mut planes: [Vec<u8>; 4] = Default::default();
    planes[PLANE_ELEMENTS] = w.finish();
    planes[PLANE_SCALES] = codes.scales.clone();
    planes[PLANE_MASKS] = masks;
    planes[PLANE_ROW_OFFSETS] = row_offsets;
    planes
}
