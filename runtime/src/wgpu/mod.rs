//! The wgpu backend: every op of [`crate::Backend`] as a WGSL compute shader (`shaders/`), for any Vulkan,
//! Metal, DX12 or GL device. Weights are uploaded once per opened model as stored in the file; an inference
//! records all its dispatches into one command encoder and submits once, when the result is read back.

mod exec;
mod pipelines;
#[cfg(test)]
mod tests;
mod upload;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wgpu::{Buffer, Device, Queue};

use crate::device_upload::{log2_round_up_table as log2_round_up_words, word_bytes};
use crate::error::{Result, RuntimeError};
use crate::ops::Parameters;
use crate::weights::TensorRef;

pub(crate) use exec::GpuExec;
use pipelines::Pipelines;
use upload::{f32_buffer, padded_init, upload_weight, GpuWeight};

/// A device with one model's weights on it.
pub(crate) struct Gpu {
    device: Device,
    queue: Queue,
    pub description: String,
    pipelines: Pipelines,
    weights: HashMap<String, GpuWeight>,
    /// Biases and norm / affine parameters by name.
    vectors: HashMap<String, Buffer>,
    log2_round_up: Buffer,
    dummy: Buffer,
    /// Activation buffers of finished inferences, for the next ones.
    free_buffers: Mutex<Vec<Buffer>>,
    /// The first error the device reported (validation, out of memory), turned into a `Result` at readback.
    error: Arc<Mutex<Option<String>>>,
    max_binding: u64,
    /// Largest chunk of a weight's element plane (see `upload`).
    max_chunk: u64,
    pub weight_bytes: u64,
}

fn unavailable(reason: impl Into<String>) -> RuntimeError {
    RuntimeError::BackendUnavailable {
        backend: "wgpu",
        reason: reason.into(),
    }
}

impl Gpu {
    /// Picks an adapter (high performance first; `WGPU_BACKEND` / `WGPU_ADAPTER_NAME` choose one), creates
    /// the device with the adapter's limits, builds the pipelines and uploads the graph's weights.
    /// `max_chunk_bytes` caps a weight chunk below the adapter's limit (tests use it to force splits).
    pub fn new(params: &Parameters, file: &[u8], max_chunk_bytes: Option<u64>) -> Result<Gpu> {
        let mut gpu = Gpu::bare(max_chunk_bytes)?;
        gpu.upload(params, file)?;
        gpu.check_error()?;
        Ok(gpu)
    }

    /// The device and pipelines, no weights yet.
    fn bare(max_chunk_bytes: Option<u64>) -> Result<Gpu> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = choose_adapter(&instance)?;
        let info = adapter.get_info();
        let description = format!(
            "{} ({:?}, {:?}, {} {})",
            info.name, info.backend, info.device_type, info.driver, info.driver_info
        );
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("mxrt"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| unavailable(format!("{description}: cannot create a device: {e}")))?;
        let error = Arc::new(Mutex::new(None::<String>));
        let slot = error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut s) = slot.lock() {
                s.get_or_insert_with(|| e.to_string());
            }
        }));
        let native_dot4 = instance
            .wgsl_language_features()
            .contains(wgpu::WgslLanguageFeatures::Packed4x8IntegerDotProduct);
        let pipelines = Pipelines::new(&device, native_dot4);
        let max_binding = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        // Chunks stay below 256 MiB so that bit positions inside a chunk fit the shaders' u32 arithmetic.
        let max_chunk = max_chunk_bytes
            .unwrap_or(max_binding)
            .min(max_binding)
            .min(1 << 28);
        let dummy = padded_init(&device, &[0; 16], "unused binding");
        let log2_round_up = log2_round_up_table(&device);
        Ok(Gpu {
            device,
            queue,
            description: format!(
                "{description}; dot4I8Packed: {}",
                if native_dot4 {
                    "WGSL built-in"
                } else {
                    "polyfill"
                }
            ),
            pipelines,
            weights: HashMap::new(),
            vectors: HashMap::new(),
            log2_round_up,
            dummy,
            free_buffers: Mutex::new(Vec::new()),
            error,
            max_binding,
            max_chunk,
            weight_bytes: 0,
        })
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

    fn weight(&mut self, t: &TensorRef, file: &[u8]) -> Result<()> {
        if !self.weights.contains_key(&t.name) {
            let w = upload_weight(
                &self.device,
                &self.queue,
                &self.dummy,
                t,
                file,
                self.max_chunk,
            )?;
            self.weight_bytes += w.bytes;
            self.weights.insert(t.name.clone(), w);
        }
        Ok(())
    }

    #[cfg(test)]
    fn norm(&mut self, norm: &crate::ops::Norm) -> Result<()> {
        let (g, b) = norm.keys();
        self.vector(&g, &norm.gamma)?;
        self.vector(&b, &norm.beta)
    }

    fn vector(&mut self, key: &str, values: &[f32]) -> Result<()> {
        self.weight_bytes += (values.len() * 4) as u64;
        let buffer = f32_buffer(&self.device, values, key);
        self.vectors.insert(key.to_string(), buffer);
        Ok(())
    }

    fn check_error(&self) -> Result<()> {
        match self.error.lock().ok().and_then(|mut e| e.take()) {
            Some(reason) => Err(RuntimeError::Backend {
                backend: "wgpu",
                reason,
            }),
            None => Ok(()),
        }
    }

    /// A recorder for one inference.
    pub fn exec(&self) -> GpuExec<'_> {
        GpuExec::new(self)
    }
}

/// The adapter named by `WGPU_ADAPTER_NAME` (a case-insensitive substring), else the high-performance one.
fn choose_adapter(instance: &wgpu::Instance) -> Result<wgpu::Adapter> {
    const HINT: &str = "on Linux without a GPU, install Mesa's lavapipe (apt-get install \
                        mesa-vulkan-drivers libvulkan1); WGPU_BACKEND=vulkan|metal|dx12|gl limits the search";
    if let Ok(wanted) = std::env::var("WGPU_ADAPTER_NAME") {
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        return adapters
            .into_iter()
            .find(|a| {
                a.get_info()
                    .name
                    .to_lowercase()
                    .contains(&wanted.to_lowercase())
            })
            .ok_or_else(|| {
                unavailable(format!(
                    "no adapter matches WGPU_ADAPTER_NAME={wanted:?} (adapters: {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ))
            });
    }
    pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..Default::default()
    }))
    .map_err(|e| unavailable(format!("no GPU adapter found ({e}); {HINT}")))
}

/// The table of `device_upload::log2_round_up_table` as a storage buffer.
fn log2_round_up_table(device: &Device) -> Buffer {
    let bytes = word_bytes(&log2_round_up_words());
    padded_init(device, &bytes, "log2 round-up table")
}
