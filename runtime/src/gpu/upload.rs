//! Weights onto the device, once per opened model and as they are stored: the element plane as u32 words (no
//! f32 copy), MX scale bytes, sparse masks and row offsets, plus a small descriptor (weights.wgsl) with the
//! MX code table. Tensors larger than the adapter's storage binding limit are split into chunks of rows.

use mxrt_format::layout::{PLANE_ELEMENTS, PLANE_MASKS, PLANE_ROW_OFFSETS, PLANE_SCALES};
use mxrt_format::{Encoding, MxElem};
use wgpu::util::DeviceExt;
use wgpu::{Buffer, BufferUsages, Device, Queue};

use crate::error::{Result, RuntimeError};
use crate::weights::TensorRef;

/// One chunk of rows `row0 .. row0 + rows` of a weight, with its planes and descriptor.
pub(crate) struct Chunk {
    pub row0: u32,
    pub rows: u32,
    pub desc: Buffer,
    pub elements: Buffer,
    pub scales: Buffer,
    pub masks: Buffer,
    pub offsets: Buffer,
}

/// A weight matrix on the device.
pub(crate) struct GpuWeight {
    pub rows: usize,
    pub cols: usize,
    /// Dense MXINT8: the integer path (linear_mxint8.wgsl) can read its codes as words.
    pub mxint8_dense: bool,
    pub chunks: Vec<Chunk>,
    /// Bytes uploaded (planes and descriptors).
    pub bytes: u64,
}

fn unavailable(t: &TensorRef, reason: String) -> RuntimeError {
    RuntimeError::Backend {
        backend: "wgpu",
        reason: format!("tensor {:?}: {reason}", t.name),
    }
}

/// Uploads `t` (its planes in `file`, the mapped file) in chunks of at most `max_chunk` element bytes.
pub(crate) fn upload_weight(
    device: &Device,
    queue: &Queue,
    dummy: &Buffer,
    t: &TensorRef,
    file: &[u8],
    max_chunk: u64,
) -> Result<GpuWeight> {
    let (rows, cols) = (t.terms.rows, t.terms.cols);
    let bits = u64::from(t.encoding.element_bits());
    let bpr = t.terms.blocks_per_row;
    let stride = t.terms.dense_row_stride(t.encoding);
    let too_big = || {
        unavailable(
            t,
            "dimensions exceed the 32-bit indices of the shaders".into(),
        )
    };
    let u32_of = |v: u64| u32::try_from(v).map_err(|_| too_big());
    let (kind, frac_scale) = match t.encoding {
        Encoding::F32 => (0u32, 1.0f32),
        Encoding::F16 => (1, 1.0),
        Encoding::Bf16 => (2, 1.0),
        Encoding::Mx(_) => (3, 1.0),
        Encoding::Fixed { frac, .. } => (4, 2f64.powi(-i32::from(frac)) as f32),
        Encoding::Raw(_) => return Err(unavailable(t, "raw tensors are not weights".into())),
    };
    let offsets_of = |r: u64| -> u64 {
        let p = t.plane(file, PLANE_ROW_OFFSETS);
        let at = (r * 8) as usize;
        u64::from_le_bytes(p[at..at + 8].try_into().unwrap_or([0; 8]))
    };
    // First element code of row r in the element plane.
    let first_code = |r: u64| if t.sparse { offsets_of(r) } else { r * stride };
    let row_bytes = |r0: u64, r1: u64| (first_code(r1) - first_code(r0)) * bits / 8 + 8;
    // Chunks: as many whole rows as fit under the limit.
    let mut bounds = vec![0u64];
    let mut r0 = 0u64;
    while r0 < rows {
        if row_bytes(r0, r0 + 1) > max_chunk {
            return Err(unavailable(
                t,
                format!("one row is larger than the adapter's storage binding limit of {max_chunk} bytes"),
            ));
        }
        // Binary search for the last row end that fits.
        let (mut lo, mut hi) = (r0 + 1, rows);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if row_bytes(r0, mid) <= max_chunk {
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
    let mut chunks = Vec::new();
    let mut uploaded = 0u64;
    for w in bounds.windows(2) {
        let (r0, r1) = (w[0], w[1]);
        let (k0, k1) = (first_code(r0), first_code(r1));
        let (start_bit, end_bit) = (k0 * bits, k1 * bits);
        let word0 = start_bit / 32;
        let words = end_bit.div_ceil(32) - word0 + 1; // one spare word: a code may straddle into it
        let plane = t.plane(file, PLANE_ELEMENTS);
        let elements = storage(device, words * 4, "weight elements");
        let src = &plane[(word0 * 4) as usize..];
        let whole = (src.len().min(((words - 1) * 4) as usize) / 4) * 4;
        if whole > 0 {
            queue.write_buffer(&elements, 0, &src[..whole]);
        }
        let tail_end = src.len().min(((words - 1) * 4) as usize);
        if tail_end > whole {
            let mut tail = [0u8; 4];
            tail[..tail_end - whole].copy_from_slice(&src[whole..tail_end]);
            queue.write_buffer(&elements, whole as u64, &tail);
        }
        uploaded += words * 4;
        let scales = if matches!(t.encoding, Encoding::Mx(_)) {
            let s = &t.plane(file, PLANE_SCALES)[(r0 * bpr) as usize..(r1 * bpr) as usize];
            uploaded += s.len() as u64;
            padded_init(device, s, "weight scales")
        } else {
            dummy.clone()
        };
        let (masks, offsets) = if t.sparse {
            let m = &t.plane(file, PLANE_MASKS)[(r0 * bpr * 4) as usize..(r1 * bpr * 4) as usize];
            let rel: Vec<u32> = (r0..=r1)
                .map(|r| u32_of(offsets_of(r) - offsets_of(r0)))
                .collect::<Result<_>>()?;
            let rel: Vec<u8> = rel.iter().flat_map(|v| v.to_le_bytes()).collect();
            uploaded += (m.len() + rel.len()) as u64;
            (
                padded_init(device, m, "weight masks"),
                padded_init(device, &rel, "weight row offsets"),
            )
        } else {
            (dummy.clone(), dummy.clone())
        };
        let mut desc: Vec<u32> = vec![
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
        desc.extend((0..256).map(|c| table.get(c).copied().unwrap_or(0.0).to_bits()));
        let desc_bytes: Vec<u8> = desc.iter().flat_map(|v| v.to_le_bytes()).collect();
        uploaded += desc_bytes.len() as u64;
        chunks.push(Chunk {
            row0: u32_of(r0)?,
            rows: u32_of(r1 - r0)?,
            desc: device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("weight descriptor"),
                contents: &desc_bytes,
                usage: BufferUsages::UNIFORM,
            }),
            elements,
            scales,
            masks,
            offsets,
        });
    }
    Ok(GpuWeight {
        rows: rows as usize,
        cols: cols as usize,
        mxint8_dense: t.encoding == Encoding::Mx(MxElem::Int8) && !t.sparse,
        chunks,
        bytes: uploaded,
    })
}

fn storage(device: &Device, size: u64, label: &str) -> Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: size.max(4).next_multiple_of(4),
        usage: BufferUsages::STORAGE | BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// A read-only storage buffer with `bytes`, zero-padded to whole words (at least one).
pub(crate) fn padded_init(device: &Device, bytes: &[u8], label: &str) -> Buffer {
    let mut padded = bytes.to_vec();
    padded.resize(bytes.len().max(4).next_multiple_of(4), 0);
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: &padded,
        usage: BufferUsages::STORAGE,
    })
}

/// f32 values as a read-only storage buffer (biases, norm parameters).
pub(crate) fn f32_buffer(device: &Device, values: &[f32], label: &str) -> Buffer {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    padded_init(device, &bytes, label)
}
