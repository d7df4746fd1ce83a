//! The CUDA backend: every op of [`crate::Backend`] as a CUDA kernel of `kernels/*.cu`, compiled by NVRTC for
//! the device's architecture at first use and cached for the process. Weights are uploaded once per opened
//! model as stored in the file (planned by `device_upload`, the same layout the WGSL backend uses); one
//! inference queues its kernels on one stream and synchronizes once, when the result is copied back.
//!
//! cudarc is loaded dynamically: this builds without a CUDA toolkit, and on a machine without a driver,
//! device or NVRTC `--backend cuda` is a typed error (the libraries are probed before any CUDA call).

mod exec;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DriverError};
use cudarc::nvrtc::Ptx;

use crate::device_upload::{plan, word_bytes, WeightPlan};
use crate::error::{Result, RuntimeError};
use crate::ops::{Linear, Parameters};
use crate::weights::TensorRef;
use mxrt_format::Encoding;

pub(crate) use exec::CudaExec;

/// The kernel sources by file name, in the order they are concatenated into one NVRTC program (common.cuh
/// first), and their text.
macro_rules! kernel_sources {
    ($($file:literal),* $(,)?) => {
        #[cfg_attr(not(test), allow(dead_code))]
        const SOURCE_FILES: &[&str] = &[$($file),*];
        const SOURCES: &[&str] = &[$(include_str!(concat!("../../../kernels/", $file))),*];
    };
}

kernel_sources!(
    "common.cuh",
    "linear.cu",
    "quantize.cu",
    "norm.cu",
    "attention.cu",
    "elementwise.cu",
    "gather.cu",
);

/// Every kernel the backend launches: the `extern "C" __global__` functions of [`SOURCES`] (a test checks it,
/// and the driver emulator's launcher table, against them).
const KERNELS: [&str; 18] = [
    "linear_tiled",
    "gemv_mxint8",
    "linear_mxint8_i8",
    "mxint8_dequantize",
    "fake_quant",
    "mxint8_codes",
    "layer_norm",
    "attention",
    "gelu",
    "gelu_tanh",
    "tanh_op",
    "relu",
    "leaky_relu",
    "affine",
    "softmax_rows",
    "embedding",
    "first_tokens",
    "pool",
];

/// A failure to build the bandwidth benchmark's synthetic weight file.
fn bench_weight(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Backend {
        backend: "cuda",
        reason: format!("building the benchmark weight: {e}"),
    }
}

pub(crate) fn unavailable(reason: impl Into<String>) -> RuntimeError {
    RuntimeError::BackendUnavailable {
        backend: "cuda",
        reason: reason.into(),
    }
}

pub(crate) fn driver_error(what: &str, e: DriverError) -> RuntimeError {
    RuntimeError::Backend {
        backend: "cuda",
        reason: format!("{what}: {e}"),
    }
}

/// Whether the CUDA driver library and NVRTC can be loaded, without calling into either.
pub fn libraries_present() -> (bool, bool) {
    // SAFETY: these only try to dlopen the libraries by name (libloading); nothing is called in them.
    unsafe {
        (
            cudarc::driver::sys::is_culib_present(),
            cudarc::nvrtc::sys::is_culib_present(),
        )
    }
}

/// What NVRTC hands back.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Output {
    /// PTX text for a virtual architecture (`compute_90`): the driver compiles it when loading it.
    Ptx,
    /// Machine code for a real architecture (`sm_90`): loaded as it is.
    Cubin,
}

/// The kernels (`kernels/*.cu`) compiled by NVRTC for `arch` (`compute_XY` for PTX, `sm_XY` for a CUBIN),
/// once per process, architecture and output.
pub fn compile(arch: &str, output: Output) -> Result<Vec<u8>> {
    type Cache = Mutex<HashMap<(String, Output), Vec<u8>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let key = (arch.to_string(), output);
    if let Some(image) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(image);
    }
    let (_, nvrtc) = libraries_present();
    if !nvrtc {
        return Err(unavailable(
            "NVRTC (libnvrtc.so.12) was not found: install the CUDA toolkit's NVRTC, or `pip install \
             nvidia-cuda-nvrtc-cu12` and put its nvidia/cuda_nvrtc/lib on LD_LIBRARY_PATH",
        ));
    }
    let image = nvrtc_compile(arch, output).map_err(|reason| RuntimeError::Backend {
        backend: "cuda",
        reason: format!("NVRTC could not compile kernels/*.cu for {arch}: {reason}"),
    })?;
    if let Ok(mut c) = cache.lock() {
        c.insert(key, image.clone());
    }
    Ok(image)
}

fn nvrtc_compile(arch: &str, output: Output) -> std::result::Result<Vec<u8>, String> {
    use cudarc::nvrtc::{result, sys};
    let source = std::ffi::CString::new(SOURCES.concat()).map_err(|e| e.to_string())?;
    let name = c"mxrt_kernels.cu";
    let options = [
        format!("--gpu-architecture={arch}"),
        // IEEE division, square root and denormals: the quantizers must match the CPU bit for bit. No
        // implicit contraction: a multiply-add is fused where the source says fmaf (the hot loops, and the
        // MXINT8 block rescale, as the CPU kernels fuse it), so the CPU emulator (tools/cuda-emu, built with
        // -ffp-contract=off) rounds every operation as the GPU does.
        "--ftz=false".into(),
        "--prec-div=true".into(),
        "--prec-sqrt=true".into(),
        "--fmad=false".into(),
    ];
    let program = result::create_program(&source, Some(name)).map_err(|e| e.to_string())?;
    // SAFETY: `program` was created just above and is destroyed once, at the end of this function; the
    // option strings outlive the call; the size queries come before the buffers they size are written.
    unsafe {
        let compiled = result::compile_program(program, &options).map_err(|e| {
            let log = result::get_program_log(program)
                .map(|l| {
                    let bytes: Vec<u8> =
                        l.iter().map(|&c| c as u8).take_while(|&b| b != 0).collect();
                    String::from_utf8_lossy(&bytes).into_owned()
                })
                .unwrap_or_default();
            format!("{e}: {log}")
        });
        let image = compiled.and_then(|()| match output {
            Output::Ptx => result::get_ptx(program)
                .map(|p| p.iter().map(|&c| c as u8).collect())
                .map_err(|e| e.to_string()),
            Output::Cubin => {
                let mut size = 0usize;
                sys::nvrtcGetCUBINSize(program, &mut size)
                    .result()
                    .map_err(|e| e.to_string())?;
                let mut cubin = vec![0u8; size];
                sys::nvrtcGetCUBIN(program, cubin.as_mut_ptr().cast())
                    .result()
                    .map_err(|e| e.to_string())?;
                Ok(cubin)
            }
        });
        let _ = result::destroy_program(program);
        image
    }
}

/// The kernels for a device of compute capability `major.minor`: a CUBIN for `sm_XY`, which the driver loads
/// without its PTX JIT (that JIT refuses PTX from an NVRTC newer than the driver, as a Python wheel's often
/// is); PTX for `compute_XY` where this NVRTC cannot build machine code for the device (one newer than it).
fn device_image(major: i32, minor: i32) -> Result<(Ptx, String)> {
    let sm = format!("sm_{major}{minor}");
    match compile(&sm, Output::Cubin) {
        Ok(cubin) => Ok((Ptx::from_binary(cubin), sm)),
        Err(cubin_error) => {
            let arch = format!("compute_{major}{minor}");
            let mut ptx = compile(&arch, Output::Ptx).map_err(|_| cubin_error)?;
            // The driver reads PTX up to its terminating NUL.
            ptx.push(0);
            Ok((Ptx::from_binary(ptx), format!("{arch} (PTX)")))
        }
    }
}

/// One chunk of a weight on the device.
pub(crate) struct Chunk {
    pub rows: u32,
    pub desc: CudaSlice<u8>,
    pub elements: CudaSlice<u8>,
    pub scales: CudaSlice<u8>,
    pub masks: CudaSlice<u8>,
    pub offsets: CudaSlice<u8>,
}

pub(crate) struct CudaWeight {
    pub rows: usize,
    pub cols: usize,
    pub mxint8_dense: bool,
    pub chunks: Vec<Chunk>,
}

/// A CUDA device with one model's weights on it.
pub(crate) struct Cuda {
    pub stream: Arc<CudaStream>,
    pub description: String,
    functions: HashMap<&'static str, CudaFunction>,
    _module: Arc<CudaModule>,
    weights: HashMap<String, CudaWeight>,
    vectors: HashMap<String, CudaSlice<f32>>,
    round_up: CudaSlice<u32>,
    /// Activation buffers of finished inferences, for the next ones.
    free_buffers: Mutex<Vec<CudaSlice<f32>>>,
    max_chunk: u64,
    pub weight_bytes: u64,
}

impl Cuda {
    pub fn new(params: &Parameters, file: &[u8], max_chunk_bytes: Option<u64>) -> Result<Cuda> {
        let mut cuda = Cuda::bare(max_chunk_bytes)?;
        cuda.upload(params, file)?;
        Ok(cuda)
    }

    /// Device 0 (or `MXRT_CUDA_DEVICE`), the kernels compiled and loaded, no weights yet.
    pub(crate) fn bare(max_chunk_bytes: Option<u64>) -> Result<Cuda> {
        let (driver, _) = libraries_present();
        if !driver {
            return Err(unavailable(
                "no CUDA driver library (libcuda.so) on this machine: no NVIDIA GPU or driver",
            ));
        }
        let count =
            CudaContext::device_count().map_err(|e| unavailable(format!("no CUDA device: {e}")))?;
        let ordinal = std::env::var("MXRT_CUDA_DEVICE")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        if count <= 0 || ordinal >= count as usize {
            return Err(unavailable(format!(
                "no CUDA device {ordinal} ({count} found)"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| driver_error("creating a context", e))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| driver_error("reading the compute capability", e))?;
        let name = ctx.name().unwrap_or_else(|_| "CUDA device".into());
        let memory = ctx.total_mem().unwrap_or(0);
        let (image, arch) = device_image(major, minor)?;
        let module = ctx
            .load_module(image)
            .map_err(|e| driver_error(&format!("loading the kernels built for {arch}"), e))?;
        let mut functions = HashMap::new();
        for k in KERNELS {
            let f = module
                .load_function(k)
                .map_err(|e| driver_error(&format!("kernel {k}"), e))?;
            functions.insert(k, f);
        }
        let stream = ctx.default_stream();
        let round_up = stream
            .clone_htod(&crate::device_upload::log2_round_up_table())
            .map_err(|e| driver_error("uploading the log2 table", e))?;
        Ok(Cuda {
            stream,
            description: format!(
                "{name} (compute capability {major}.{minor}, {:.1} GiB; kernels built by NVRTC for {arch})",
                memory as f64 / (1u64 << 30) as f64
            ),
            functions,
            _module: module,
            weights: HashMap::new(),
            vectors: HashMap::new(),
            round_up,
            free_buffers: Mutex::new(Vec::new()),
            max_chunk: max_chunk_bytes.unwrap_or(1 << 30).min(1 << 30),
            weight_bytes: 0,
        })
    }

    pub(crate) fn function(&self, name: &str) -> &CudaFunction {
        &self.functions[name]
    }

    fn upload(&mut self, params: &Parameters, file: &[u8]) -> Result<()> {
        for (name, values) in &params.vectors {
            self.vector(name, values)?;
        }
        for t in &params.weights {
            self.weight(t, file)?;
        }
        Ok(())
    }

    pub(crate) fn weight(&mut self, t: &TensorRef, file: &[u8]) -> Result<()> {
        if self.weights.contains_key(&t.name) {
            return Ok(());
        }
        let p: WeightPlan<'_> = plan("cuda", t, file, self.max_chunk)?;
        let up = |bytes: &[u8], what: &str| -> Result<CudaSlice<u8>> {
            // At least one word, zero-padded to whole words plus one (a code may straddle into it).
            let mut padded = bytes.to_vec();
            padded.resize((bytes.len().div_ceil(4) + 1) * 4, 0);
            self.stream
                .clone_htod(&padded)
                .map_err(|e| driver_error(&format!("uploading {what} of {:?}", t.name), e))
        };
        let mut chunks = Vec::with_capacity(p.chunks.len());
        for c in &p.chunks {
            let mut elements = c.elements.to_vec();
            elements.resize((c.element_words * 4) as usize, 0);
            self.weight_bytes += (elements.len() + c.scales.len() + c.masks.len()) as u64
                + 4 * (c.offsets.len() + c.desc.len()) as u64;
            chunks.push(Chunk {
                rows: c.rows,
                desc: up(&word_bytes(&c.desc), "the descriptor")?,
                elements: up(&elements, "the elements")?,
                scales: up(c.scales, "the scales")?,
                masks: up(c.masks, "the masks")?,
                offsets: up(&word_bytes(&c.offsets), "the row offsets")?,
            });
        }
        self.weights.insert(
            t.name.clone(),
            CudaWeight {
                rows: p.rows,
                cols: p.cols,
                mxint8_dense: p.mxint8_dense,
                chunks,
            },
        );
        Ok(())
    }

    pub(crate) fn vector(&mut self, key: &str, values: &[f32]) -> Result<()> {
        let mut v = values.to_vec();
        if v.is_empty() {
            v.push(0.0);
        }
        let slice = self
            .stream
            .clone_htod(&v)
            .map_err(|e| driver_error(&format!("uploading {key}"), e))?;
        self.weight_bytes += (values.len() * 4) as u64;
        self.vectors.insert(key.to_string(), slice);
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn norm(&mut self, norm: &crate::ops::Norm) -> Result<()> {
        let (g, b) = norm.keys();
        self.vector(&g, &norm.gamma)?;
        self.vector(&b, &norm.beta)
    }

    /// A recorder for one inference.
    pub fn exec(&self) -> CudaExec<'_> {
        CudaExec::new(self)
    }
}

impl Cuda {
    /// MXINT8 codes (rows padded to whole blocks of 32) and scales dequantized by `mxint8_dequantize`.
    #[cfg(test)]
    pub(crate) fn dequantize_mxint8(
        &self,
        codes: &[u8],
        scales: &[u8],
        rows: usize,
        cols: usize,
    ) -> Result<Vec<f32>> {
        let bpr = cols.div_ceil(32);
        if codes.len() != rows * bpr * 32 || scales.len() != rows * bpr {
            return Err(crate::error::InputError::Mxint8Shape { rows, cols }.into());
        }
        // SAFETY: the planes hold exactly what a rows x cols dequantization reads (checked above).
        unsafe { self.dequantize_mxint8_unchecked(codes, scales, rows, cols) }
    }

    /// [`Cuda::dequantize_mxint8`] without its size check.
    ///
    /// # Safety
    /// `codes` must hold `rows * ceil(cols / 32) * 32` bytes and `scales` `rows * ceil(cols / 32)`: the kernel
    /// reads that many (only the emulator's test of its own bounds check breaks this on purpose).
    #[cfg(test)]
    pub(crate) unsafe fn dequantize_mxint8_unchecked(
        &self,
        codes: &[u8],
        scales: &[u8],
        rows: usize,
        cols: usize,
    ) -> Result<Vec<f32>> {
        use cudarc::driver::PushKernelArg;
        let bpr = cols.div_ceil(32);
        let up = |b: &[u8]| {
            self.stream
                .clone_htod(b)
                .map_err(|e| driver_error("uploading", e))
        };
        let (c, s) = (up(codes)?, up(scales)?);
        let mut out = self
            .stream
            .alloc_zeros::<f32>((rows * cols).max(1))
            .map_err(|e| driver_error("allocating", e))?;
        let (r32, c32, b32) = (rows as u32, cols as u32, bpr as u32);
        let mut b = self
            .stream
            .launch_builder(self.function("mxint8_dequantize"));
        b.arg(&c)
            .arg(&s)
            .arg(&mut out)
            .arg(&r32)
            .arg(&c32)
            .arg(&b32);
        // SAFETY: arguments match mxint8_dequantize in kernels/linear.cu: codes hold rows*bpr*32 bytes and
        // scales rows*bpr (the caller's promise), out rows*cols floats; the index is bounds-checked.
        unsafe { b.launch(exec::config((rows * cols).div_ceil(256), (256, 1))) }
            .map_err(|e| driver_error("mxint8_dequantize", e))?;
        self.stream
            .clone_dtoh(&out.slice(0..rows * cols))
            .map_err(|e| driver_error("reading back", e))
    }

    /// Bandwidth of the MXINT8 GEMV (batch 1) on a `rows × cols` weight against a device-to-device copy of the
    /// same number of bytes, both timed over `iterations` after a warm-up: (GEMV GB/s, copy GB/s).
    pub(crate) fn gemv_bandwidth(
        &mut self,
        rows: usize,
        cols: usize,
        iterations: usize,
    ) -> Result<(f64, f64)> {
        use crate::ops::Backend;
        use mxrt_format::{encode_f32, FileBuilder, MxrtFile, ReadOptions, Rounding, SparsePolicy};
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| ((i.wrapping_mul(2654435761) % 2001) as f32 - 1000.0) * 1e-3)
            .collect();
        let enc = Encoding::Mx(mxrt_format::MxElem::Int8);
        let t = encode_f32(
            "w",
            &[rows as u64, cols as u64],
            &values,
            enc,
            Rounding::Nearest,
            SparsePolicy::Never,
        )
        .map_err(bench_weight)?;
        drop(values);
        let mut fb = FileBuilder::new(serde_json::Map::new()).map_err(bench_weight)?;
        fb.push(t).map_err(bench_weight)?;
        let bytes = fb.to_bytes().map_err(bench_weight)?;
        let tref = {
            let f = MxrtFile::parse(&bytes, ReadOptions::default()).map_err(bench_weight)?;
            TensorRef::from_view(
                f.tensor("w")
                    .ok_or_else(|| bench_weight("the weight is missing from its file"))?,
            )
        };
        self.weight(&tref, &bytes)?;
        let layer = Linear {
            name: "bench".into(),
            weight: tref,
            bias: vec![0.0; rows],
            act: crate::ops::ActQuant::NONE,
        };
        self.vector(&layer.bias_key(), &layer.bias)?;
        let x: Vec<f32> = (0..cols).map(|i| (i % 7) as f32 * 0.1).collect();
        let stored = (rows * cols.div_ceil(32) * 33) as f64;
        let sync = |s: &Self| {
            s.stream
                .synchronize()
                .map_err(|e| driver_error("synchronizing", e))
        };
        let exec = self.exec();
        let xt = exec.input(&x)?;
        drop(exec.linear(&xt, 1, &layer)?);
        sync(self)?;
        let t0 = std::time::Instant::now();
        for _ in 0..iterations {
            drop(exec.linear(&xt, 1, &layer)?);
        }
        sync(self)?;
        let gemv = stored * iterations as f64 / t0.elapsed().as_secs_f64() / 1e9;
        drop((xt, exec));
        let src = self
            .stream
            .alloc_zeros::<u8>(stored as usize)
            .map_err(|e| driver_error("allocating", e))?;
        let mut dst = self
            .stream
            .alloc_zeros::<u8>(stored as usize)
            .map_err(|e| driver_error("allocating", e))?;
        self.stream
            .memcpy_dtod(&src, &mut dst)
            .map_err(|e| driver_error("copying", e))?;
        sync(self)?;
        let t0 = std::time::Instant::now();
        for _ in 0..iterations {
            self.stream
                .memcpy_dtod(&src, &mut dst)
                .map_err(|e| driver_error("copying", e))?;
        }
        sync(self)?;
        // A copy reads and writes every byte.
        let copy = 2.0 * stored * iterations as f64 / t0.elapsed().as_secs_f64() / 1e9;
        Ok((gemv, copy))
    }
}
