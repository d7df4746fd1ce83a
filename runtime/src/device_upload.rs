//! How a weight goes onto a GPU, for every device backend: split into chunks of whole rows that fit the
//! device's buffer limit, and for each chunk the byte ranges of its planes in the mapped file plus the
//! descriptor the kernels decode it with (`shaders/weights.wgsl`, `kernels/common.cuh`). Nothing here copies
//! or converts weights: backends upload the planes' bytes as they are.

use mxrt_format::layout::{PLANE_ELEMENTS, PLANE_MASKS, PLANE_ROW_OFFSETS, PLANE_SCALES};
use mxrt_format::{Encoding, MxElem};

use crate::error::{Result, RuntimeError};
use crate::ops::ActQuant;
use crate::weights::TensorRef;

/// Words of the descriptor header before the 256-entry code table.
const HEADER_WORDS: usize = 12;

/// One chunk of rows `row0 .. row0 + rows`.
pub(crate) struct ChunkPlan<'a> {
    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
    // the CUDA kernels read it from the descriptor
    pub row0: u32,
    pub rows: u32,
    /// The element plane from the 32-bit word holding the chunk's first code to its last code (the kernels
    /// read whole words: backends pad it with zeros to `element_words` words, one more than it needs, since
    /// a code may straddle into the next word).
    pub elements: &'a [u8],
    pub element_words: u64,
    /// MX scale bytes of the chunk's rows (empty otherwise).
    pub scales: &'a [u8],
    /// Sparse masks of the chunk's rows (u32 little-endian words; empty when dense).
    pub masks: &'a [u8],
    /// Sparse row offsets relative to the chunk's first stored code (`rows + 1` entries; empty when dense).
    pub offsets: Vec<u32>,
    /// The descriptor: header words, then the MX code table as f32 bits.
    pub desc: Vec<u32>,
}

/// A weight's chunks.
pub(crate) struct WeightPlan<'a> {
    pub rows: usize,
    pub cols: usize,
    /// Dense MXINT8: the integer kernels read its codes as words.
    pub mxint8_dense: bool,
    pub chunks: Vec<ChunkPlan<'a>>,
}

fn refuse(backend: &'static str, t: &TensorRef, reason: String) -> RuntimeError {
    RuntimeError::Backend {
        backend,
        reason: format!("tensor {:?}: {reason}", t.name),
    }
}

/// Where each row's element codes lie in a weight's element plane, and what rows cost on a device.
struct RowSpans<'a> {
    sparse: bool,
    /// Sparse row offsets (little-endian, `offset_bytes` each; empty when dense).
    offsets: &'a [u8],
    offset_bytes: u8,
    /// Codes per dense row (MX rows padded to whole blocks).
    stride: u64,
    bits: u64,
}

impl<'a> RowSpans<'a> {
    fn new(t: &TensorRef, file: &'a [u8]) -> Self {
        RowSpans {
            sparse: t.sparse,
            offsets: t.plane(file, PLANE_ROW_OFFSETS),
            offset_bytes: t.row_offset_bytes,
            stride: t.terms.dense_row_stride(t.encoding),
            bits: u64::from(t.encoding.element_bits()),
        }
    }

    /// Index of sparse row `r`'s first stored code.
    fn row_offset(&self, r: u64) -> u64 {
        mxrt_format::read_row_offset(self.offsets, self.offset_bytes, r as usize)
    }

    /// Index of row `r`'s first code in the element plane.
    fn first_code(&self, r: u64) -> u64 {
        if self.sparse {
            self.row_offset(r)
        } else {
            r * self.stride
        }
    }

    /// Element bytes a chunk of rows `r0 .. r1` needs on the device: its codes, plus the word the kernels may
    /// read past them (a code can straddle into it) and the word alignment of its first code.
    fn chunk_bytes(&self, r0: u64, r1: u64) -> u64 {
        (self.first_code(r1) - self.first_code(r0)) * self.bits / 8 + 8
    }
}

/// The element bytes of the weight's widest row as [`plan`] counts them: the smallest chunk limit that
/// plans (tests size forced chunks from it).
#[cfg(test)]
pub(crate) fn widest_row_bytes(t: &TensorRef, file: &[u8]) -> u64 {
    let spans = RowSpans::new(t, file);
    (0..t.terms.rows)
        .map(|r| spans.chunk_bytes(r, r + 1))
        .max()
        .unwrap_or(0)
}

/// Chunks of at most `max_chunk` element bytes (whole rows; an error when one row is larger).
pub(crate) fn plan<'a>(
    backend: &'static str,
    t: &TensorRef,
    file: &'a [u8],
    max_chunk: u64,
) -> Result<WeightPlan<'a>> {
    let (rows, cols) = (t.terms.rows, t.terms.cols);
    let bits = u64::from(t.encoding.element_bits());
    let bpr = t.terms.blocks_per_row;
    let stride = t.terms.dense_row_stride(t.encoding);
    let u32_of = |v: u64| {
        u32::try_from(v).map_err(|_| {
            refuse(
                backend,
                t,
                "dimensions exceed the kernels' 32-bit indices".into(),
            )
        })
    };
    let (kind, frac_scale) = match t.encoding {
        Encoding::F32 => (0u32, 1.0f32),
        Encoding::F16 => (1, 1.0),
        Encoding::Bf16 => (2, 1.0),
        Encoding::Mx(_) => (3, 1.0),
        Encoding::Fixed { frac, .. } => (4, 2f64.powi(-i32::from(frac)) as f32),
        Encoding::Raw(_) => return Err(refuse(backend, t, "raw tensors are not weights".into())),
    };
    let spans = RowSpans::new(t, file);
    let row_offset = |r: u64| spans.row_offset(r);
    let first_code = |r: u64| spans.first_code(r);
    let chunk_bytes = |r0: u64, r1: u64| spans.chunk_bytes(r0, r1);
    let mut bounds = vec![0u64];
    let mut r0 = 0u64;
    while r0 < rows {
        if chunk_bytes(r0, r0 + 1) > max_chunk {
            return Err(refuse(
                backend,
                t,
                format!("one row is larger than the device's buffer limit of {max_chunk} bytes"),
            ));
        }
        // The last row end that still fits (chunk_bytes grows with r1).
        let (mut lo, mut hi) = (r0 + 1, rows);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if chunk_bytes(r0, mid) <= max_chunk {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        bounds.push(lo);
        r0 = lo;
    }
    let table: Vec<f32> = match t.encoding {
        Encoding::Mx(e) => mxrt_format::mx::code_table(e),
        _ => Vec::new(),
    };
    let (elements, scales, masks) = (
        t.plane(file, PLANE_ELEMENTS),
        t.plane(file, PLANE_SCALES),
        t.plane(file, PLANE_MASKS),
    );
    let mut chunks = Vec::with_capacity(bounds.len() - 1);
    for w in bounds.windows(2) {
        let (r0, r1) = (w[0], w[1]);
        let (start_bit, end_bit) = (first_code(r0) * bits, first_code(r1) * bits);
        let word0 = start_bit / 32;
        let element_words = end_bit.div_ceil(32) - word0 + 1;
        let from = ((word0 * 4) as usize).min(elements.len());
        let to = (((word0 + element_words) * 4) as usize).min(elements.len());
        let mut desc = vec![
            kind,
            bits as u32,
            u32_of(cols)?,
            u32_of(stride)?,
            u32_of(bpr)?,
            u32_of(r1 - r0)?,
            u32_of(r0)?,
            (start_bit % 32) as u32,
            frac_scale.to_bits(),
            u32::from(t.sparse),
            0,
            0,
        ];
        debug_assert_eq!(desc.len(), HEADER_WORDS);
        desc.extend((0..256).map(|c| table.get(c).copied().unwrap_or(0.0).to_bits()));
        let block_range =
            |per_block: u64| (r0 * bpr * per_block) as usize..(r1 * bpr * per_block) as usize;
        chunks.push(ChunkPlan {
            row0: u32_of(r0)?,
            rows: u32_of(r1 - r0)?,
            elements: &elements[from..to],
            element_words,
            scales: if matches!(t.encoding, Encoding::Mx(_)) {
                &scales[block_range(1)]
            } else {
                &[]
            },
            masks: if t.sparse {
                &masks[block_range(4)]
            } else {
                &[]
            },
            offsets: if t.sparse {
                (r0..=r1)
                    .map(|r| u32_of(row_offset(r) - row_offset(r0)))
                    .collect::<Result<_>>()?
            } else {
                Vec::new()
            },
            desc,
        });
    }
    Ok(WeightPlan {
        rows: rows as usize,
        cols: cols as usize,
        mxint8_dense: t.encoding == Encoding::Mx(MxElem::Int8) && !t.sparse,
        chunks,
    })
}

/// Little-endian bytes of u32 words.
pub(crate) fn word_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// `mxrt_format::mx::log2_round_up_table` as the kernels' storage buffer: with it they compute
/// `floor(log2f(x))` exactly as the reference (and the CPU) do, without a device `log2`.
pub(crate) fn log2_round_up_table() -> Vec<u32> {
    mxrt_format::mx::log2_round_up_table().to_vec()
}

/// The activation quantizer's parameters, laid out as `QuantParams` in kernels/quantize.cu and the first 13
/// words of `Params` in shaders/quantize.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct QuantParams {
    pub rows: u32,
    pub cols: u32,
    pub blocks_per_row: u32,
    /// 0: MX, 1: fixed point
    pub mode: u32,
    pub ebits: u32,
    pub mbits: u32,
    pub emax: i32,
    /// 1: round half to even
    pub even: u32,
    pub max_norm: f32,
    pub frac_up: f32,
    pub frac_down: f32,
    pub lo: f32,
    pub hi: f32,
}

impl QuantParams {
    /// Parameters for quantizing `rows × cols` activations as `act` says; an error for encodings that are
    /// not activation quantizers (`backend` names the caller).
    pub fn new(
        backend: &'static str,
        rows: usize,
        cols: usize,
        act: ActQuant,
    ) -> Result<QuantParams> {
        let mut p = QuantParams {
            rows: rows as u32,
            cols: cols as u32,
            blocks_per_row: cols.div_ceil(32) as u32,
            even: u32::from(act.rounding == mxrt_format::Rounding::Even),
            ..Default::default()
        };
        match act.encoding {
            Encoding::Mx(elem) => {
                let e = mxrt_format::mx::params(elem);
                (p.ebits, p.mbits, p.emax, p.max_norm) = (e.ebits, e.mbits, e.emax, e.max_norm);
            }
            Encoding::Fixed { width, frac } => {
                let half = 2f64.powi(i32::from(width) - 1);
                p.mode = 1;
                p.frac_up = 2f64.powi(i32::from(frac)) as f32;
                p.frac_down = 2f64.powi(-i32::from(frac)) as f32;
                p.lo = (-half) as f32;
                p.hi = (half - 1.0) as f32;
            }
            other => {
                return Err(RuntimeError::Backend {
                    backend,
                    reason: format!("activations cannot be quantized to {other}"),
                })
            }
        }
        Ok(p)
    }

    /// The 13 words of the struct (floats as their bits).
    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))] // CUDA takes the struct itself
    pub fn words(&self) -> [u32; 13] {
        [
            self.rows,
            self.cols,
            self.blocks_per_row,
            self.mode,
            self.ebits,
            self.mbits,
            self.emax as u32,
            self.even,
            self.max_norm.to_bits(),
            self.frac_up.to_bits(),
            self.frac_down.to_bits(),
            self.lo.to_bits(),
            self.hi.to_bits(),
        ]
    }
}
