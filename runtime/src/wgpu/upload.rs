//! Weights onto the wgpu device, once per opened model and as they are stored (planned by
//! `device_upload`): the element plane as u32 words (no f32 copy), MX scale bytes, sparse masks and row
//! offsets, and each chunk's descriptor with the MX code table.

use wgpu::util::DeviceExt;
use wgpu::{Buffer, BufferUsages, Device, Queue};

use crate::device_upload::{plan, word_bytes};
use crate::error::Result;
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
    pub mxint8_dense: bool,
    pub chunks: Vec<Chunk>,
    /// Bytes uploaded (planes and descriptors).
    pub bytes: u64,
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
    let p = plan("wgpu", t, file, max_chunk)?;
    let mut uploaded = 0u64;
    let mut chunks = Vec::with_capacity(p.chunks.len());
    for c in &p.chunks {
        let elements = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("weight elements"),
            size: c.element_words * 4,
            usage: BufferUsages::STORAGE | BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        // Straight from the mapped file (whole words; a ragged tail is padded), zeros after it.
        let whole = c.elements.len() / 4 * 4;
        if whole > 0 {
            queue.write_buffer(&elements, 0, &c.elements[..whole]);
        }
        if whole < c.elements.len() {
            let mut tail = [0u8; 4];
            tail[..c.elements.len() - whole].copy_from_slice(&c.elements[whole..]);
            queue.write_buffer(&elements, whole as u64, &tail);
        }
        let optional = |bytes: &[u8], label: &str| {
            if bytes.is_empty() {
                dummy.clone()
            } else {
                padded_init(device, bytes, label)
            }
        };
        let desc = word_bytes(&c.desc);
        let offsets = word_bytes(&c.offsets);
        uploaded += c.element_words * 4
            + (c.scales.len() + c.masks.len() + offsets.len() + desc.len()) as u64;
        chunks.push(Chunk {
            row0: c.row0,
            rows: c.rows,
            desc: device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("weight descriptor"),
                contents: &desc,
                usage: BufferUsages::UNIFORM,
            }),
            elements,
            scales: optional(c.scales, "weight scales"),
            masks: optional(c.masks, "weight masks"),
            offsets: optional(&offsets, "weight row offsets"),
        });
    }
    Ok(GpuWeight {
        rows: p.rows,
        cols: p.cols,
        mxint8_dense: p.mxint8_dense,
        chunks,
        bytes: uploaded,
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
