//! One inference on the CUDA backend: the [`Backend`] ops queue kernels on the device's stream; nothing is
//! synchronized until [`Backend::output`] copies a result back. Activations live in device buffers that go
//! back to a free list when their tensor is dropped and are reused by later ops and inferences.

use std::cell::RefCell;
use std::rc::Rc;

use cudarc::driver::{CudaFunction, CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg};
use mxrt_format::{Encoding, MxElem, Rounding};

use super::{driver_error, Cuda, CudaWeight};
use crate::device_upload::QuantParams;
use crate::error::{Result, RuntimeError};
use crate::ops::{
    ActQuant, Activation, Affine, Backend, Embeddings, Linear, Norm, Pooling, TokenBatch,
};

/// Largest sequence attention.cu holds in shared memory.
const MAX_SEQ: usize = 1024;
/// Few activation rows: the bandwidth-bound GEMV (gemv_mxint8) instead of tiles.
const GEMV_ROWS: usize = 4;

// SAFETY: a #[repr(C)] struct of 4-byte integers and floats, laid out exactly as `QuantParams` in
// kernels/quantize.cu; any bit pattern is valid.
unsafe impl DeviceRepr for QuantParams {}

/// An activation tensor in device memory (`len` f32; the buffer may be longer).
pub struct CudaTensor {
    slice: Option<CudaSlice<f32>>,
    len: usize,
    free: Rc<RefCell<Vec<CudaSlice<f32>>>>,
}

impl CudaTensor {
    fn s(&self) -> &CudaSlice<f32> {
        self.slice
            .as_ref()
            .expect("a tensor holds its buffer until dropped")
    }
}

impl Drop for CudaTensor {
    fn drop(&mut self) {
        if let Some(s) = self.slice.take() {
            self.free.borrow_mut().push(s);
        }
    }
}

/// The batch's mask and its device copy (uploaded once per inference).
type CachedMask = Option<(Vec<u8>, Rc<CudaSlice<u32>>)>;

pub(crate) struct CudaExec<'a> {
    cuda: &'a Cuda,
    free: Rc<RefCell<Vec<CudaSlice<f32>>>>,
    mask: RefCell<CachedMask>,
}

impl Drop for CudaExec<'_> {
    fn drop(&mut self) {
        if let Ok(mut free) = self.cuda.free_buffers.lock() {
            free.append(&mut self.free.borrow_mut());
        }
    }
}

fn failed(reason: String) -> RuntimeError {
    RuntimeError::Backend {
        backend: "cuda",
        reason,
    }
}

/// `n` threads in blocks of `block`, on a 2-D grid when there are more than 65535 blocks (kernels compute
/// their index as `blockIdx.x + blockIdx.y * gridDim.x`).
pub(super) fn config(blocks: usize, block: (u32, u32)) -> LaunchConfig {
    let blocks = blocks.max(1) as u32;
    let x = blocks.min(65535);
    LaunchConfig {
        grid_dim: (x, blocks.div_ceil(x), 1),
        block_dim: (block.0, block.1, 1),
        shared_mem_bytes: 0,
    }
}

impl<'a> CudaExec<'a> {
    pub fn new(cuda: &'a Cuda) -> CudaExec<'a> {
        CudaExec {
            cuda,
            free: Rc::new(RefCell::new(Vec::new())),
            mask: RefCell::new(None),
        }
    }

    fn alloc(&self, len: usize) -> Result<CudaTensor> {
        let size = len.max(1).next_multiple_of(64);
        let take = |list: &mut Vec<CudaSlice<f32>>| {
            list.iter()
                .position(|b| b.len() == size)
                .map(|i| list.swap_remove(i))
        };
        let reused = take(&mut self.free.borrow_mut()).or_else(|| {
            self.cuda
                .free_buffers
                .lock()
                .ok()
                .and_then(|mut p| take(&mut p))
        });
        let slice = match reused {
            Some(s) => s,
            None => {
                // SAFETY: the buffer's contents are undefined until written; every op writes all `len`
                // values of its output before anything reads them.
                unsafe { self.cuda.stream.alloc::<f32>(size) }
                    .map_err(|e| driver_error("allocating activations", e))?
            }
        };
        Ok(CudaTensor {
            slice: Some(slice),
            len,
            free: self.free.clone(),
        })
    }

    fn upload_u32(&self, values: &[u32]) -> Result<CudaSlice<u32>> {
        let v = if values.is_empty() {
            &[0u32][..]
        } else {
            values
        };
        self.cuda
            .stream
            .clone_htod(v)
            .map_err(|e| driver_error("uploading inputs", e))
    }

    fn mask_buffer(&self, mask: &[u8]) -> Result<Rc<CudaSlice<u32>>> {
        let mut cached = self.mask.borrow_mut();
        if let Some((m, b)) = cached.as_ref() {
            if m.as_slice() == mask {
                return Ok(b.clone());
            }
        }
        let words: Vec<u32> = mask.iter().map(|&m| u32::from(m != 0)).collect();
        let b = Rc::new(self.upload_u32(&words)?);
        *cached = Some((mask.to_vec(), b.clone()));
        Ok(b)
    }

    fn f(&self, name: &str) -> &'a CudaFunction {
        self.cuda.function(name)
    }

    fn weight(&self, name: &str) -> Result<&'a CudaWeight> {
        self.cuda
            .weights
            .get(name)
            .ok_or_else(|| failed(format!("weight {name:?} was not uploaded")))
    }

    fn vector(&self, key: &str) -> Result<&'a CudaSlice<f32>> {
        self.cuda
            .vectors
            .get(key)
            .ok_or_else(|| failed(format!("parameter {key:?} was not uploaded")))
    }

    pub(crate) fn fake_quant(
        &self,
        x: &CudaTensor,
        rows: usize,
        cols: usize,
        act: ActQuant,
    ) -> Result<CudaTensor> {
        let p = QuantParams::new("cuda", rows, cols, act)?;
        let mut out = self.alloc(rows * cols)?;
        let blocks = rows * cols.div_ceil(32);
        let o = out.slice.as_mut().expect("fresh tensor");
        let mut b = self.cuda.stream.launch_builder(self.f("fake_quant"));
        b.arg(&p).arg(x.s()).arg(&self.cuda.round_up).arg(o);
        // SAFETY: arguments match `fake_quant(QuantParams, const float*, const u32*, float*)`; x and out hold
        // rows*cols floats, round_up 256 words; one thread per block of 32, bounds-checked in the kernel.
        unsafe { b.launch(config(blocks.div_ceil(64), (64, 1))) }
            .map_err(|e| driver_error("fake_quant", e))?;
        Ok(out)
    }

    pub(crate) fn mxint8_codes(
        &self,
        x: &CudaTensor,
        rows: usize,
        cols: usize,
        rounding: Rounding,
    ) -> Result<(CudaTensor, CudaTensor)> {
        let act = ActQuant {
            encoding: Encoding::Mx(MxElem::Int8),
            rounding,
        };
        let p = QuantParams::new("cuda", rows, cols, act)?;
        let blocks = rows * cols.div_ceil(32);
        let mut codes = self.alloc(blocks * 8)?;
        let mut scales = self.alloc(blocks)?;
        // The codes buffer holds packed u32 words: the kernel writes them through a u32 pointer.
        let (s, c) = (
            scales.slice.as_mut().expect("fresh tensor"),
            codes.slice.as_mut().expect("fresh tensor"),
        );
        let mut b = self.cuda.stream.launch_builder(self.f("mxint8_codes"));
        b.arg(&p).arg(x.s()).arg(&self.cuda.round_up).arg(s).arg(c);
        // SAFETY: arguments match `mxint8_codes(QuantParams, const float*, const u32*, float*, u32*)`;
        // scales holds one float and codes 8 words (4-byte f32 slots) per block.
        unsafe { b.launch(config(blocks.div_ceil(64), (64, 1))) }
            .map_err(|e| driver_error("mxint8_codes", e))?;
        Ok((codes, scales))
    }

    fn matmul(
        &self,
        x: &CudaTensor,
        m: usize,
        w: &CudaWeight,
        bias: &CudaSlice<f32>,
        out: &mut CudaTensor,
    ) -> Result<()> {
        let (k, n) = (w.cols as u32, w.rows as u32);
        let m32 = m as u32;
        for c in &w.chunks {
            let o = out.slice.as_mut().expect("fresh tensor");
            if w.mxint8_dense && m <= GEMV_ROWS {
                let mut b = self.cuda.stream.launch_builder(self.f("gemv_mxint8"));
                b.arg(&c.desc)
                    .arg(&c.elements)
                    .arg(&c.scales)
                    .arg(x.s())
                    .arg(bias)
                    .arg(o);
                b.arg(&m32).arg(&k).arg(&n);
                // SAFETY: arguments match gemv_mxint8 in kernels/linear.cu; the chunk's planes were uploaded
                // as its descriptor says, x holds m*k floats, out m*n, bias n; 8 warps per block, one per row.
                unsafe { b.launch(config((c.rows as usize).div_ceil(8), (256, 1))) }
                    .map_err(|e| driver_error("gemv_mxint8", e))?;
            } else {
                let mut b = self.cuda.stream.launch_builder(self.f("linear_tiled"));
                b.arg(&c.desc)
                    .arg(&c.elements)
                    .arg(&c.scales)
                    .arg(&c.masks)
                    .arg(&c.offsets);
                b.arg(x.s()).arg(bias).arg(o).arg(&m32).arg(&k).arg(&n);
                let cfg = LaunchConfig {
                    grid_dim: (c.rows.div_ceil(16), m.div_ceil(16) as u32, 1),
                    block_dim: (16, 16, 1),
                    shared_mem_bytes: 0,
                };
                // SAFETY: arguments match linear_tiled in kernels/linear.cu; planes as the descriptor says,
                // x m*k floats, out m*n, bias n; 16x16 threads per 16x16 output tile.
                unsafe { b.launch(cfg) }.map_err(|e| driver_error("linear_tiled", e))?;
            }
        }
        Ok(())
    }

    fn matmul_mxint8(
        &self,
        codes: &CudaTensor,
        scales: &CudaTensor,
        m: usize,
        w: &CudaWeight,
        bias: &CudaSlice<f32>,
        out: &mut CudaTensor,
    ) -> Result<()> {
        let (k, n, m32) = (w.cols as u32, w.rows as u32, m as u32);
        for c in &w.chunks {
            let o = out.slice.as_mut().expect("fresh tensor");
            let mut b = self.cuda.stream.launch_builder(self.f("linear_mxint8_i8"));
            b.arg(&c.desc)
                .arg(&c.elements)
                .arg(&c.scales)
                .arg(codes.s())
                .arg(scales.s());
            b.arg(bias).arg(o).arg(&m32).arg(&k).arg(&n);
            let cfg = LaunchConfig {
                grid_dim: (c.rows.div_ceil(16), m.div_ceil(16) as u32, 1),
                block_dim: (16, 16, 1),
                shared_mem_bytes: 0,
            };
            // SAFETY: arguments match linear_mxint8_i8 in kernels/linear.cu: codes hold m*bpr*8 words and
            // scales m*bpr floats (mxint8_codes), the chunk is dense MXINT8; out m*n, bias n.
            unsafe { b.launch(cfg) }.map_err(|e| driver_error("linear_mxint8_i8", e))?;
        }
        Ok(())
    }

    fn check_rows(&self, rows: usize) -> Result<()> {
        if rows.div_ceil(16) > 65535 {
            return Err(failed(format!(
                "{rows} rows exceed one launch ({} at most)",
                65535 * 16
            )));
        }
        Ok(())
    }

    /// In-place element-wise kernel `name(float* x, ..., u32 len[, u32 width])`.
    fn elementwise(
        &self,
        name: &str,
        x: &mut CudaTensor,
        extra: &[&CudaSlice<f32>],
        width: Option<u32>,
    ) -> Result<()> {
        let len = x.len as u32;
        let s = x.slice.as_mut().expect("live tensor");
        let mut b = self.cuda.stream.launch_builder(self.f(name));
        b.arg(s);
        for e in extra {
            b.arg(*e);
        }
        b.arg(&len);
        if let Some(w) = width.as_ref() {
            b.arg(w);
        }
        // SAFETY: arguments match the element-wise kernels of kernels/elementwise.cu (x of len floats, then
        // scale/shift of `width` floats for affine); the index is bounds-checked against len.
        unsafe { b.launch(config((x.len).div_ceil(256), (256, 1))) }
            .map_err(|e| driver_error(name, e))?;
        Ok(())
    }
}

impl Backend for CudaExec<'_> {
    type Tensor = CudaTensor;

    fn input(&self, x: &[f32]) -> Result<CudaTensor> {
        let mut t = self.alloc(x.len())?;
        if !x.is_empty() {
            let s = t.slice.as_mut().expect("fresh tensor");
            self.cuda
                .stream
                .memcpy_htod(x, &mut s.slice_mut(0..x.len()))
                .map_err(|e| driver_error("uploading the input", e))?;
        }
        Ok(t)
    }

    fn output(&self, x: &CudaTensor) -> Result<Vec<f32>> {
        let v = self
            .cuda
            .stream
            .clone_dtoh(&x.s().slice(0..x.len))
            .map_err(|e| driver_error("reading results back", e))?;
        Ok(v)
    }

    fn embeddings(&self, e: &Embeddings, batch: &TokenBatch, eps: f32) -> Result<CudaTensor> {
        let (rows, h) = (batch.batch * batch.seq, e.norm.gamma.len());
        let mut x = self.alloc(rows * h)?;
        self.cuda
            .stream
            .memset_zeros(
                &mut x
                    .slice
                    .as_mut()
                    .expect("fresh tensor")
                    .slice_mut(0..rows * h),
            )
            .map_err(|e| driver_error("clearing the embeddings", e))?;
        let ids = self.upload_u32(&batch.ids)?;
        let types = self.upload_u32(&batch.type_ids)?;
        let (rows32, h32, seq32) = (rows as u32, h as u32, batch.seq as u32);
        for (table, index, positions) in [
            (&e.word, &ids, 0u32),
            (&e.position, &ids, 1),
            (&e.token_type, &types, 0),
        ] {
            let w = self.weight(&table.name)?;
            for c in &w.chunks {
                let o = x.slice.as_mut().expect("live tensor");
                let mut b = self.cuda.stream.launch_builder(self.f("embedding"));
                b.arg(&c.desc)
                    .arg(&c.elements)
                    .arg(&c.scales)
                    .arg(&c.masks)
                    .arg(&c.offsets);
                b.arg(index)
                    .arg(o)
                    .arg(&rows32)
                    .arg(&h32)
                    .arg(&positions)
                    .arg(&seq32);
                // SAFETY: arguments match embedding in kernels/gather.cu; ids hold `rows` indices checked
                // against the vocabulary before the forward pass; out holds rows*h floats.
                unsafe { b.launch(config((rows * h).div_ceil(256), (256, 1))) }
                    .map_err(|e| driver_error("embedding", e))?;
            }
        }
        self.add_layer_norm(x, None, &e.norm, eps)
    }

    fn linear(&self, x: &CudaTensor, rows: usize, l: &Linear) -> Result<CudaTensor> {
        let w = self.weight(&l.weight.name)?;
        self.check_rows(rows)?;
        let bias = self.vector(&l.bias_key())?;
        let mut out = self.alloc(rows * w.rows)?;
        if l.act.encoding == Encoding::Mx(MxElem::Int8) && w.mxint8_dense {
            let (codes, scales) = self.mxint8_codes(x, rows, w.cols, l.act.rounding)?;
            self.matmul_mxint8(&codes, &scales, rows, w, bias, &mut out)?;
        } else if l.act.is_none() {
            self.matmul(x, rows, w, bias, &mut out)?;
        } else {
            let q = self.fake_quant(x, rows, w.cols, l.act)?;
            self.matmul(&q, rows, w, bias, &mut out)?;
        }
        Ok(out)
    }

    fn linear3(
        &self,
        x: &CudaTensor,
        rows: usize,
        layers: [&Linear; 3],
    ) -> Result<[CudaTensor; 3]> {
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
        let cols = weights[0].cols;
        let integer =
            act.encoding == Encoding::Mx(MxElem::Int8) && weights.iter().all(|w| w.mxint8_dense);
        let codes = if integer {
            Some(self.mxint8_codes(x, rows, cols, act.rounding)?)
        } else {
            None
        };
        let quantized = if integer {
            None
        } else {
            Some(self.fake_quant(x, rows, cols, act)?)
        };
        let one = |l: &Linear, w: &CudaWeight| -> Result<CudaTensor> {
            let bias = self.vector(&l.bias_key())?;
            let mut out = self.alloc(rows * w.rows)?;
            match (&codes, &quantized) {
                (Some((c, s)), _) => self.matmul_mxint8(c, s, rows, w, bias, &mut out)?,
                (None, Some(q)) => self.matmul(q, rows, w, bias, &mut out)?,
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
        x: CudaTensor,
        residual: Option<&CudaTensor>,
        norm: &Norm,
        eps: f32,
    ) -> Result<CudaTensor> {
        let cols = norm.gamma.len();
        let (gamma, beta) = norm.keys();
        let rows = x.len / cols.max(1);
        let mut out = self.alloc(x.len)?;
        let (rows32, cols32, has) = (rows as u32, cols as u32, u32::from(residual.is_some()));
        let (gamma, beta) = (self.vector(&gamma)?, self.vector(&beta)?);
        let o = out.slice.as_mut().expect("fresh tensor");
        let mut b = self.cuda.stream.launch_builder(self.f("layer_norm"));
        b.arg(x.s())
            .arg(residual.unwrap_or(&x).s())
            .arg(gamma)
            .arg(beta)
            .arg(o);
        b.arg(&rows32).arg(&cols32).arg(&has).arg(&eps);
        // SAFETY: arguments match layer_norm in kernels/norm.cu: x, residual and out hold rows*cols floats,
        // gamma and beta cols; one block of 64 threads per row (its reductions assume exactly 64).
        unsafe { b.launch(config(rows, (64, 1))) }.map_err(|e| driver_error("layer_norm", e))?;
        Ok(out)
    }

    fn attention(
        &self,
        q: &CudaTensor,
        k: &CudaTensor,
        v: &CudaTensor,
        mask: &[u8],
        batch: usize,
        seq: usize,
        heads: usize,
        dim: usize,
    ) -> Result<CudaTensor> {
        if seq > MAX_SEQ {
            return Err(failed(format!(
                "sequence length {seq} exceeds the {MAX_SEQ} tokens attention.cu holds"
            )));
        }
        let mut out = self.alloc(batch * seq * heads * dim)?;
        let mask = self.mask_buffer(mask)?;
        let (b32, s32, h32, d32) = (batch as u32, seq as u32, heads as u32, dim as u32);
        let scale = 1.0 / (dim as f32).sqrt();
        let o = out.slice.as_mut().expect("fresh tensor");
        let mut b = self.cuda.stream.launch_builder(self.f("attention"));
        b.arg(q.s()).arg(k.s()).arg(v.s()).arg(&*mask).arg(o);
        b.arg(&b32).arg(&s32).arg(&h32).arg(&d32).arg(&scale);
        // SAFETY: arguments match attention in kernels/attention.cu: q, k, v, out hold batch*seq*heads*dim
        // floats, mask batch*seq words; seq <= MAX_SEQ (its shared score row); 64 threads per query row.
        unsafe { b.launch(config(batch * heads * seq, (64, 1))) }
            .map_err(|e| driver_error("attention", e))?;
        Ok(out)
    }

    fn activation(&self, mut x: CudaTensor, f: Activation) -> Result<CudaTensor> {
        let name = match f {
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_tanh",
            Activation::Tanh => "tanh_op",
            Activation::Relu => "relu",
        };
        self.elementwise(name, &mut x, &[], None)?;
        Ok(x)
    }

    fn leaky_relu(&self, mut x: CudaTensor, slope: f32) -> Result<CudaTensor> {
        let len = x.len as u32;
        let s = x.slice.as_mut().expect("live tensor");
        let mut b = self.cuda.stream.launch_builder(self.f("leaky_relu"));
        b.arg(s).arg(&len).arg(&slope);
        // SAFETY: arguments match leaky_relu in kernels/elementwise.cu (x of len floats, the slope); the
        // index is bounds-checked against len.
        unsafe { b.launch(config(x.len.div_ceil(256), (256, 1))) }
            .map_err(|e| driver_error("leaky_relu", e))?;
        Ok(x)
    }

    fn first_tokens(
        &self,
        x: &CudaTensor,
        batch: usize,
        seq: usize,
        h: usize,
    ) -> Result<CudaTensor> {
        let mut out = self.alloc(batch * h)?;
        let (b32, s32, h32) = (batch as u32, seq as u32, h as u32);
        let o = out.slice.as_mut().expect("fresh tensor");
        let mut b = self.cuda.stream.launch_builder(self.f("first_tokens"));
        b.arg(x.s()).arg(o).arg(&b32).arg(&s32).arg(&h32);
        // SAFETY: arguments match first_tokens in kernels/gather.cu: x holds batch*seq*h floats, out batch*h.
        unsafe { b.launch(config((batch * h).div_ceil(256), (256, 1))) }
            .map_err(|e| driver_error("first_tokens", e))?;
        Ok(out)
    }

    fn pool_sentences(
        &self,
        x: &CudaTensor,
        mask: &[u8],
        batch: usize,
        seq: usize,
        h: usize,
        pooling: &Pooling,
        normalize: bool,
    ) -> Result<CudaTensor> {
        let mut out = self.alloc(batch * h)?;
        let mask = self.mask_buffer(mask)?;
        let mode: u32 = match pooling {
            Pooling::Cls => 0,
            Pooling::Mean => 1,
            Pooling::Max => 2,
        };
        let (b32, s32, h32, n32) = (batch as u32, seq as u32, h as u32, u32::from(normalize));
        let o = out.slice.as_mut().expect("fresh tensor");
        let mut b = self.cuda.stream.launch_builder(self.f("pool"));
        b.arg(x.s())
            .arg(&*mask)
            .arg(o)
            .arg(&b32)
            .arg(&s32)
            .arg(&h32)
            .arg(&mode)
            .arg(&n32);
        // SAFETY: arguments match pool in kernels/gather.cu: x holds batch*seq*h floats, mask batch*seq
        // words, out batch*h; one block of 64 threads per sequence (its reduction assumes 64).
        unsafe { b.launch(config(batch, (64, 1))) }.map_err(|e| driver_error("pool", e))?;
        Ok(out)
    }

    fn affine(&self, mut x: CudaTensor, width: usize, a: &Affine) -> Result<CudaTensor> {
        let (scale, shift) = a.keys();
        let (scale, shift) = (self.vector(&scale)?, self.vector(&shift)?);
        self.elementwise("affine", &mut x, &[scale, shift], Some(width.max(1) as u32))?;
        Ok(x)
    }

    fn softmax_rows(&self, mut x: CudaTensor, width: usize) -> Result<CudaTensor> {
        let rows = x.len / width.max(1);
        let (r32, w32) = (rows as u32, width as u32);
        let s = x.slice.as_mut().expect("live tensor");
        let mut b = self.cuda.stream.launch_builder(self.f("softmax_rows"));
        b.arg(s).arg(&r32).arg(&w32);
        // SAFETY: arguments match softmax_rows in kernels/elementwise.cu: x holds rows*width floats; one
        // thread per row, bounds-checked.
        unsafe { b.launch(config(rows.div_ceil(256), (256, 1))) }
            .map_err(|e| driver_error("softmax_rows", e))?;
        Ok(x)
    }
}
