//! One inference on the wgpu backend: the [`Backend`] ops record compute passes into a single command
//! encoder; nothing is submitted or read back until [`Backend::output`]. Activations live in device buffers
//! that go back to a free list when their tensor is dropped and are reused by later ops and inferences.

use std::cell::RefCell;
use std::rc::Rc;

use mxrt_format::{Encoding, MxElem, Rounding};
use wgpu::util::DeviceExt;
use wgpu::{Buffer, BufferUsages};

use super::pipelines::Pipeline;
use super::upload::GpuWeight;
use super::Gpu;
use crate::device_upload::QuantParams;
use crate::error::{Result, RuntimeError};
use crate::ops::{
    ActQuant, Activation, Affine, Backend, Embeddings, Linear, Norm, Pooling, TokenBatch,
};

/// Largest sequence attention.wgsl holds in workgroup memory.
const MAX_SEQ: usize = 1024;
/// At most this many activation rows go through linear.wgsl's `gemv` instead of its tiles.
const GEMV_ROWS: usize = 4;
/// Largest workgroup count in one grid dimension.
const MAX_GROUPS: u32 = 65535;

/// An activation tensor in a device buffer (`len` f32 values).
pub struct GpuTensor {
    buffer: Option<Buffer>,
    len: usize,
    free: Rc<RefCell<Vec<Buffer>>>,
}

impl GpuTensor {
    fn buf(&self) -> &Buffer {
        self.buffer
            .as_ref()
            .expect("a tensor holds its buffer until dropped")
    }
}

impl Drop for GpuTensor {
    fn drop(&mut self) {
        if let Some(b) = self.buffer.take() {
            self.free.borrow_mut().push(b);
        }
    }
}

pub(crate) struct GpuExec<'a> {
    gpu: &'a Gpu,
    encoder: RefCell<wgpu::CommandEncoder>,
    /// Buffers of tensors dropped during this inference (reused within it; handed to the device's free buffers at
    /// the end, when no recorded command can still use them).
    free: Rc<RefCell<Vec<Buffer>>>,
    /// The batch's mask as u32, uploaded once.
    mask: RefCell<Option<(Vec<u8>, Buffer)>>,
}

impl Drop for GpuExec<'_> {
    fn drop(&mut self) {
        if let Ok(mut free) = self.gpu.free_buffers.lock() {
            free.append(&mut self.free.borrow_mut());
        }
    }
}

fn failed(reason: String) -> RuntimeError {
    RuntimeError::Backend {
        backend: "wgpu",
        reason,
    }
}

/// Words of a uniform block, padded to 16 bytes.
fn uniform_bytes(words: &[u32]) -> Vec<u8> {
    let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    bytes.resize(bytes.len().next_multiple_of(16).max(16), 0);
    bytes
}

/// A 2-D grid of at least `groups` workgroups: (x, y) with x ≤ 65535.
fn grid(groups: usize) -> (u32, u32) {
    let groups = groups.max(1) as u32;
    let x = groups.min(MAX_GROUPS);
    (x, groups.div_ceil(x))
}

impl<'a> GpuExec<'a> {
    pub fn new(gpu: &'a Gpu) -> GpuExec<'a> {
        GpuExec {
            gpu,
            encoder: RefCell::new(gpu.device.create_command_encoder(&Default::default())),
            free: Rc::new(RefCell::new(Vec::new())),
            mask: RefCell::new(None),
        }
    }

    /// A tensor of `len` f32 (contents undefined), from the free lists when a buffer of that size exists.
    fn alloc(&self, len: usize) -> Result<GpuTensor> {
        let size = ((len.max(1) * 4) as u64).next_multiple_of(256);
        if size > self.gpu.max_binding {
            return Err(failed(format!(
                "an activation tensor of {size} bytes exceeds the adapter's storage binding limit of {} \
                 bytes: use a smaller batch or shorter sequences",
                self.gpu.max_binding
            )));
        }
        let take = |list: &mut Vec<Buffer>| {
            list.iter()
                .position(|b| b.size() == size)
                .map(|i| list.swap_remove(i))
        };
        let reused = take(&mut self.free.borrow_mut()).or_else(|| {
            self.gpu
                .free_buffers
                .lock()
                .ok()
                .and_then(|mut p| take(&mut p))
        });
        let buffer = reused.unwrap_or_else(|| {
            self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("activations"),
                size,
                usage: BufferUsages::STORAGE | BufferUsages::COPY_SRC | BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        Ok(GpuTensor {
            buffer: Some(buffer),
            len,
            free: self.free.clone(),
        })
    }

    /// A small read-only buffer made for this inference (token ids, masks).
    fn upload_u32(&self, values: impl Iterator<Item = u32>) -> Buffer {
        let mut bytes: Vec<u8> = values.flat_map(|v| v.to_le_bytes()).collect();
        bytes.resize(bytes.len().max(4), 0);
        self.gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("inputs"),
                contents: &bytes,
                usage: BufferUsages::STORAGE,
            })
    }

    fn mask_buffer(&self, mask: &[u8]) -> Buffer {
        let mut cached = self.mask.borrow_mut();
        if let Some((m, b)) = cached.as_ref() {
            if m.as_slice() == mask {
                return b.clone();
            }
        }
        let b = self.upload_u32(mask.iter().map(|&m| u32::from(m != 0)));
        *cached = Some((mask.to_vec(), b.clone()));
        b
    }

    /// Records one dispatch: `params` as the uniform at binding 0, `buffers` at the pipeline's other bindings.
    fn dispatch(&self, p: &Pipeline, params: &[u32], buffers: &[&Buffer], groups: (u32, u32)) {
        let uniform = self
            .gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: &uniform_bytes(params),
                usage: BufferUsages::UNIFORM,
            });
        let all = std::iter::once(&uniform).chain(buffers.iter().copied());
        let entries: Vec<wgpu::BindGroupEntry> = p
            .bindings
            .iter()
            .zip(all)
            .map(|(&binding, b)| wgpu::BindGroupEntry {
                binding,
                resource: b.as_entire_binding(),
            })
            .collect();
        debug_assert_eq!(entries.len(), p.bindings.len());
        let group = self
            .gpu
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &p.layout,
                entries: &entries,
            });
        let mut encoder = self.encoder.borrow_mut();
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&p.pipeline);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(groups.0, groups.1, 1);
    }

    fn weight(&self, name: &str) -> Result<&'a GpuWeight> {
        self.gpu
            .weights
            .get(name)
            .ok_or_else(|| failed(format!("weight {name:?} was not uploaded")))
    }

    fn vector(&self, key: &str) -> Result<&'a Buffer> {
        self.gpu
            .vectors
            .get(key)
            .ok_or_else(|| failed(format!("parameter {key:?} was not uploaded")))
    }

    /// `x` quantized as `act` says (a new tensor), for the generic matmul.
    pub(super) fn fake_quant(
        &self,
        x: &GpuTensor,
        rows: usize,
        cols: usize,
        act: ActQuant,
    ) -> Result<GpuTensor> {
        let q = QuantParams::new("wgpu", rows, cols, act)?;
        let out = self.alloc(rows * cols)?;
        let mut params = q.words().to_vec();
        let (gx, gy) = grid((rows * q.blocks_per_row as usize).div_ceil(64));
        params.extend([gx * 64, 0, 0]);
        self.dispatch(
            &self.gpu.pipelines.fake_quant,
            &params,
            &[x.buf(), &self.gpu.log2_round_up, out.buf()],
            (gx, gy),
        );
        Ok(out)
    }

    /// MXINT8 codes (4 per word, rows padded to whole blocks) and per-block factors of `x`.
    pub(super) fn mxint8_codes(
        &self,
        x: &GpuTensor,
        rows: usize,
        cols: usize,
        rounding: Rounding,
    ) -> Result<(GpuTensor, GpuTensor)> {
        let bpr = cols.div_ceil(32);
        let codes = self.alloc(rows * bpr * 8)?;
        let scales = self.alloc(rows * bpr)?;
        let act = ActQuant {
            encoding: Encoding::Mx(MxElem::Int8),
            rounding,
        };
        let (gx, gy) = grid((rows * bpr).div_ceil(64));
        let mut params = QuantParams::new("wgpu", rows, cols, act)?.words().to_vec();
        params.extend([gx * 64, 0, 0]);
        self.dispatch(
            &self.gpu.pipelines.mxint8_codes,
            &params,
            &[x.buf(), &self.gpu.log2_round_up, scales.buf(), codes.buf()],
            (gx, gy),
        );
        Ok((codes, scales))
    }

    /// The matmul of an already quantized (or f32) input against every chunk of `w`.
    fn matmul(&self, x: &GpuTensor, rows: usize, w: &GpuWeight, bias: &Buffer, out: &GpuTensor) {
        for c in &w.chunks {
            // Few activation rows: a workgroup per weight row (tiles would leave most invocations idle).
            let gemv = rows <= GEMV_ROWS;
            let groups = if gemv {
                grid(c.rows as usize)
            } else {
                (c.rows.div_ceil(16), rows.div_ceil(16) as u32)
            };
            let params = [
                rows as u32,
                w.cols as u32,
                w.rows as u32,
                c.row0,
                1,
                groups.0,
            ];
            self.dispatch(
                if gemv {
                    &self.gpu.pipelines.gemv
                } else {
                    &self.gpu.pipelines.linear
                },
                &params,
                &[
                    &c.desc,
                    &c.elements,
                    &c.scales,
                    &c.masks,
                    &c.offsets,
                    x.buf(),
                    bias,
                    out.buf(),
                ],
                groups,
            );
        }
    }

    fn matmul_mxint8(
        &self,
        codes: &GpuTensor,
        scales: &GpuTensor,
        rows: usize,
        w: &GpuWeight,
        bias: &Buffer,
        out: &GpuTensor,
    ) {
        for c in &w.chunks {
            let params = [rows as u32, w.cols as u32, w.rows as u32, c.row0, 1];
            let groups = (c.rows.div_ceil(16), rows.div_ceil(16) as u32);
            self.dispatch(
                &self.gpu.pipelines.linear_mxint8,
                &params,
                &[
                    &c.desc,
                    &c.elements,
                    &c.scales,
                    &c.masks,
                    &c.offsets,
                    codes.buf(),
                    scales.buf(),
                    bias,
                    out.buf(),
                ],
                groups,
            );
        }
    }

    fn check_rows(&self, rows: usize) -> Result<()> {
        if rows.div_ceil(16) > MAX_GROUPS as usize {
            return Err(failed(format!(
                "{rows} rows exceed one dispatch ({} rows at most)",
                MAX_GROUPS as usize * 16
            )));
        }
        Ok(())
    }

    fn elementwise(&self, p: &Pipeline, x: &GpuTensor, width: usize, extra: &[&Buffer]) {
        let (gx, gy) = grid(x.len.div_ceil(256));
        let mut buffers = vec![x.buf()];
        buffers.extend_from_slice(extra);
        self.dispatch(
            p,
            &[x.len as u32, width.max(1) as u32, gx * 256],
            &buffers,
            (gx, gy),
        );
    }
}

impl Backend for GpuExec<'_> {
    type Tensor = GpuTensor;

    fn input(&self, x: &[f32]) -> Result<GpuTensor> {
        let t = self.alloc(x.len())?;
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        if !bytes.is_empty() {
            // Staged into the queue: it lands before the next submission, i.e. before this inference runs.
            self.gpu.queue.write_buffer(t.buf(), 0, &bytes);
        }
        Ok(t)
    }

    fn output(&self, x: &GpuTensor) -> Result<Vec<f32>> {
        let size = (x.len.max(1) * 4) as u64;
        let staging = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: BufferUsages::MAP_READ | BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let encoder = {
            let mut e = self.encoder.borrow_mut();
            e.copy_buffer_to_buffer(x.buf(), 0, &staging, 0, size);
            std::mem::replace(
                &mut *e,
                self.gpu.device.create_command_encoder(&Default::default()),
            )
        };
        self.gpu.queue.submit([encoder.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.gpu
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            })
            .map_err(|e| failed(format!("waiting for the device: {e}")))?;
        self.gpu.check_error()?;
        rx.recv()
            .map_err(|_| failed("the readback never completed".into()))?
            .map_err(|e| failed(format!("reading results back: {e}")))?;
        let values = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| failed(format!("reading results back: {e}")))?;
            view.chunks_exact(4)
                .take(x.len)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        staging.unmap();
        Ok(values)
    }

    fn embeddings(&self, e: &Embeddings, batch: &TokenBatch, eps: f32) -> Result<GpuTensor> {
        let (rows, h) = (batch.batch * batch.seq, e.norm.gamma.len());
        let x = self.alloc(rows * h)?;
        self.encoder
            .borrow_mut()
            .clear_buffer(x.buf(), 0, Some(((rows * h).max(1) * 4) as u64));
        let ids = self.upload_u32(batch.ids.iter().copied());
        let types = self.upload_u32(batch.type_ids.iter().copied());
        let (gx, gy) = grid((rows * h).div_ceil(64));
        for (table, index, positions) in [
            (&e.word, &ids, 0u32),
            (&e.position, &ids, 1),
            (&e.token_type, &types, 0),
        ] {
            let w = self.weight(&table.name)?;
            for c in &w.chunks {
                self.dispatch(
                    &self.gpu.pipelines.embedding,
                    &[rows as u32, h as u32, positions, batch.seq as u32, gx * 64],
                    &[
                        &c.desc,
                        &c.elements,
                        &c.scales,
                        &c.masks,
                        &c.offsets,
                        index,
                        x.buf(),
                    ],
                    (gx, gy),
                );
            }
        }
        self.add_layer_norm(x, None, &e.norm, eps)
    }

    fn linear(&self, x: &GpuTensor, rows: usize, l: &Linear) -> Result<GpuTensor> {
        let w = self.weight(&l.weight.name)?;
        self.check_rows(rows)?;
        let bias = self.vector(&l.bias_key())?;
        let out = self.alloc(rows * w.rows)?;
        if l.act.encoding == Encoding::Mx(MxElem::Int8) && w.mxint8_dense {
            let (codes, scales) = self.mxint8_codes(x, rows, w.cols, l.act.rounding)?;
            self.matmul_mxint8(&codes, &scales, rows, w, bias, &out);
        } else if l.act.is_none() {
            self.matmul(x, rows, w, bias, &out);
        } else {
            let q = self.fake_quant(x, rows, w.cols, l.act)?;
            self.matmul(&q, rows, w, bias, &out);
        }
        Ok(out)
    }

    fn linear3(&self, x: &GpuTensor, rows: usize, layers: [&Linear; 3]) -> Result<[GpuTensor; 3]> {
        let act = layers[0].act;
        let weights = [
            self.weight(&layers[0].weight.name)?,
            self.weight(&layers[1].weight.name)?,
            self.weight(&layers[2].weight.name)?,
        ];
        let same_input = layers.iter().all(|l| l.act == act)
            && weights.iter().all(|w| w.cols == weights[0].cols);
        if !same_input || act.is_none() {
            let [a, b, c] = layers;
            return Ok([
                self.linear(x, rows, a)?,
                self.linear(x, rows, b)?,
                self.linear(x, rows, c)?,
            ]);
        }
        self.check_rows(rows)?;
        // The input quantized once for all three.
        let cols = weights[0].cols;
        let integer = act.encoding == Encoding::Mx(MxElem::Int8);
        let codes = if integer && weights.iter().all(|w| w.mxint8_dense) {
            Some(self.mxint8_codes(x, rows, cols, act.rounding)?)
        } else {
            None
        };
        let quantized = match codes {
            Some(_) => None,
            None => Some(self.fake_quant(x, rows, cols, act)?),
        };
        let one = |l: &Linear, w: &GpuWeight| -> Result<GpuTensor> {
            let bias = self.vector(&l.bias_key())?;
            let out = self.alloc(rows * w.rows)?;
            match (&codes, &quantized) {
                (Some((c, s)), _) => self.matmul_mxint8(c, s, rows, w, bias, &out),
                (None, Some(q)) => self.matmul(q, rows, w, bias, &out),
                (None, None) => unreachable!("one of the two is made above"),
            }
            Ok(out)
        };
        Ok([
            one(layers[0], weights[0])?,
            one(layers[1], weights[1])?,
            one(layers[2], weights[2])?,
        ])
    }

    fn add_layer_norm(
        &self,
        x: GpuTensor,
        residual: Option<&GpuTensor>,
        norm: &Norm,
        eps: f32,
    ) -> Result<GpuTensor> {
        let cols = norm.gamma.len();
        let (gamma, beta) = norm.keys();
        let rows = x.len / cols.max(1);
        let out = self.alloc(x.len)?;
        let (gx, gy) = grid(rows);
        self.dispatch(
            &self.gpu.pipelines.norm,
            &[
                rows as u32,
                cols as u32,
                u32::from(residual.is_some()),
                eps.to_bits(),
                gx,
            ],
            &[
                x.buf(),
                residual.unwrap_or(&x).buf(),
                self.vector(&gamma)?,
                self.vector(&beta)?,
                out.buf(),
            ],
            (gx, gy),
        );
        Ok(out)
    }

    fn attention(
        &self,
        q: &GpuTensor,
        k: &GpuTensor,
        v: &GpuTensor,
        mask: &[u8],
        batch: usize,
        seq: usize,
        heads: usize,
        dim: usize,
    ) -> Result<GpuTensor> {
        if seq > MAX_SEQ {
            return Err(failed(format!(
                "sequence length {seq} exceeds the {MAX_SEQ} tokens attention.wgsl holds"
            )));
        }
        let out = self.alloc(batch * seq * heads * dim)?;
        let mask = self.mask_buffer(mask);
        let (gx, gy) = grid(batch * heads * seq);
        let scale = 1.0 / (dim as f32).sqrt();
        self.dispatch(
            &self.gpu.pipelines.attention,
            &[
                batch as u32,
                seq as u32,
                heads as u32,
                dim as u32,
                scale.to_bits(),
                gx,
            ],
            &[q.buf(), k.buf(), v.buf(), &mask, out.buf()],
            (gx, gy),
        );
        Ok(out)
    }

    fn activation(&self, x: GpuTensor, f: Activation) -> Result<GpuTensor> {
        let p = match f {
            Activation::Gelu => &self.gpu.pipelines.gelu,
            Activation::GeluTanh => &self.gpu.pipelines.gelu_tanh,
            Activation::Tanh => &self.gpu.pipelines.tanh,
            Activation::Relu => &self.gpu.pipelines.relu,
        };
        self.elementwise(p, &x, 1, &[]);
        Ok(x)
    }

    fn leaky_relu(&self, x: GpuTensor, slope: f32) -> Result<GpuTensor> {
        // The slope's bits travel where the element-wise shader reads a width (it has no float parameter).
        let (gx, gy) = grid(x.len.div_ceil(256));
        self.dispatch(
            &self.gpu.pipelines.leaky_relu,
            &[x.len as u32, slope.to_bits(), gx * 256],
            &[x.buf()],
            (gx, gy),
        );
        Ok(x)
    }

    fn first_tokens(&self, x: &GpuTensor, batch: usize, seq: usize, h: usize) -> Result<GpuTensor> {
        let out = self.alloc(batch * h)?;
        let (gx, gy) = grid((batch * h).div_ceil(64));
        self.dispatch(
            &self.gpu.pipelines.first_tokens,
            &[batch as u32, seq as u32, h as u32, 0, 0, gx * 64],
            &[x.buf(), out.buf()],
            (gx, gy),
        );
        Ok(out)
    }

    fn pool_sentences(
        &self,
        x: &GpuTensor,
        mask: &[u8],
        batch: usize,
        seq: usize,
        h: usize,
        pooling: &Pooling,
        normalize: bool,
    ) -> Result<GpuTensor> {
        let out = self.alloc(batch * h)?;
        let mask = self.mask_buffer(mask);
        let mode = match pooling {
            Pooling::Cls => 0,
            Pooling::Mean => 1,
            Pooling::Max => 2,
        };
        let (gx, gy) = grid(batch);
        self.dispatch(
            &self.gpu.pipelines.pool_sentences,
            &[
                batch as u32,
                seq as u32,
                h as u32,
                mode,
                u32::from(normalize),
                gx,
            ],
            &[x.buf(), &mask, out.buf()],
            (gx, gy),
        );
        Ok(out)
    }

    fn affine(&self, x: GpuTensor, width: usize, a: &Affine) -> Result<GpuTensor> {
        let (scale, shift) = a.keys();
        let (scale, shift) = (self.vector(&scale)?, self.vector(&shift)?);
        self.elementwise(&self.gpu.pipelines.affine, &x, width, &[scale, shift]);
        Ok(x)
    }

    fn softmax_rows(&self, x: GpuTensor, width: usize) -> Result<GpuTensor> {
        let rows = x.len / width.max(1);
        let (gx, gy) = grid(rows.div_ceil(64));
        self.dispatch(
            &self.gpu.pipelines.softmax,
            &[rows as u32, width as u32, gx * 64],
            &[x.buf()],
            (gx, gy),
        );
        Ok(x)
    }
}
