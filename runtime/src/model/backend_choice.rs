//! Which backend executes a model, and the one place that knows which backends were compiled in: the rest of
//! the runtime and the CLI ask for a backend by name and get a typed error when it is unavailable.

use std::fmt;
use std::str::FromStr;

use crate::error::Result;
#[cfg(not(all(feature = "wgpu", feature = "cuda")))]
use crate::error::RuntimeError;
use crate::ops::Parameters;

/// A backend, as `--backend` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    #[default]
    Cpu,
    Wgpu,
    Cuda,
}

impl FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cpu" => Ok(BackendKind::Cpu),
            "wgpu" => Ok(BackendKind::Wgpu),
            "cuda" => Ok(BackendKind::Cuda),
            other => Err(format!("unknown backend {other:?} (cpu, wgpu, cuda)")),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
        })
    }
}

/// Options of the wgpu backend.
#[derive(Debug, Clone, Default)]
pub struct WgpuOptions {
    /// Split weights into chunks of at most this many bytes (default: the adapter's storage binding limit).
    /// Tests set a small value to exercise the split on any adapter.
    pub max_chunk_bytes: Option<u64>,
}

/// The backend a model runs on, with whatever it holds there (device backends: the uploaded parameters).
pub(crate) enum BackendState {
    Cpu,
    #[cfg(feature = "wgpu")]
    Wgpu(Box<crate::wgpu::Gpu>),
    #[cfg(feature = "cuda")]
    Cuda(Box<crate::cuda::Cuda>),
}

impl BackendState {
    /// The wgpu backend with `params` uploaded from `file`.
    pub fn wgpu(params: &Parameters, file: &[u8], options: &WgpuOptions) -> Result<BackendState> {
        #[cfg(feature = "wgpu")]
        {
            Ok(BackendState::Wgpu(Box::new(crate::wgpu::Gpu::new(
                params,
                file,
                options.max_chunk_bytes,
            )?)))
        }
        #[cfg(not(feature = "wgpu"))]
        {
            let _ = (params, file, options);
            Err(RuntimeError::BackendUnavailable {
                backend: "wgpu",
                reason: "this build has no wgpu support (build with the `wgpu` feature)".into(),
            })
        }
    }

    /// The CUDA backend with `params` uploaded from `file`.
    pub fn cuda(params: &Parameters, file: &[u8]) -> Result<BackendState> {
        #[cfg(feature = "cuda")]
        {
            Ok(BackendState::Cuda(Box::new(crate::cuda::Cuda::new(
                params, file, None,
            )?)))
        }
        #[cfg(not(feature = "cuda"))]
        {
            let _ = (params, file);
            Err(RuntimeError::BackendUnavailable {
                backend: "cuda",
                reason: "this build has no CUDA support (build with the `cuda` feature)".into(),
            })
        }
    }

    pub fn describe(&self, isa: &str) -> String {
        match self {
            BackendState::Cpu => format!("cpu ({isa})"),
            #[cfg(feature = "wgpu")]
            BackendState::Wgpu(g) => format!("wgpu: {}", g.description),
            #[cfg(feature = "cuda")]
            BackendState::Cuda(c) => format!("cuda: {}", c.description),
        }
    }

    /// Bytes of weights and parameters held on the device (0 for the CPU, which reads the mapped file).
    pub fn device_bytes(&self) -> u64 {
        match self {
            BackendState::Cpu => 0,
            #[cfg(feature = "wgpu")]
            BackendState::Wgpu(g) => g.weight_bytes,
            #[cfg(feature = "cuda")]
            BackendState::Cuda(c) => c.weight_bytes,
        }
    }
}

/// The CUDA backend's MXINT8 GEMV bandwidth on a `rows × cols` weight against a device-to-device copy of the
/// same bytes on device 0, measured in one run: (device description, GEMV GB/s, copy GB/s).
pub fn cuda_gemv_bandwidth(
    rows: usize,
    cols: usize,
    iterations: usize,
) -> Result<(String, f64, f64)> {
    #[cfg(feature = "cuda")]
    {
        let mut c = crate::cuda::Cuda::bare(None)?;
        let (gemv, copy) = c.gemv_bandwidth(rows, cols, iterations)?;
        Ok((c.description.clone(), gemv, copy))
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (rows, cols, iterations);
        Err(RuntimeError::BackendUnavailable {
            backend: "cuda",
            reason: "this build has no CUDA support (build with the `cuda` feature)".into(),
        })
    }
}
