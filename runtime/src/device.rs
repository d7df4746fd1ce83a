//! Which backend executes a model, and the one place that knows which backends were compiled in: the rest of
//! the runtime and the CLI ask for a backend by name and get a typed error when it is unavailable.

use std::fmt;
use std::str::FromStr;

use crate::error::{Result, RuntimeError};
use crate::model::Graph;

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

/// The device a model runs on, with whatever it holds there.
pub(crate) enum Device {
    Cpu,
    #[cfg(feature = "wgpu")]
    Wgpu(Box<crate::gpu::Gpu>),
}

impl Device {
    pub fn wgpu(graph: &Graph, file: &[u8], options: &WgpuOptions) -> Result<Device> {
        #[cfg(feature = "wgpu")]
        {
            Ok(Device::Wgpu(Box::new(crate::gpu::Gpu::new(
                graph, file, options,
            )?)))
        }
        #[cfg(not(feature = "wgpu"))]
        {
            let _ = (graph, file, options);
            Err(RuntimeError::BackendUnavailable {
                backend: "wgpu",
                reason: "this build has no wgpu support (build with the `wgpu` feature)".into(),
            })
        }
    }

    pub fn cuda() -> Result<Device> {
        Err(RuntimeError::BackendUnavailable {
            backend: "cuda",
            reason: "the CUDA backend is not implemented yet".into(),
        })
    }

    pub fn describe(&self, isa: &str) -> String {
        match self {
            Device::Cpu => format!("cpu ({isa})"),
            #[cfg(feature = "wgpu")]
            Device::Wgpu(g) => format!("wgpu: {}", g.description),
        }
    }

    /// Bytes of weights and parameters held on the device (0 for the CPU, which reads the mapped file).
    pub fn device_bytes(&self) -> u64 {
        match self {
            Device::Cpu => 0,
            #[cfg(feature = "wgpu")]
            Device::Wgpu(g) => g.weight_bytes,
        }
    }
}
