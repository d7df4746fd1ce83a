//! The compute pipelines of the wgpu backend, built once per device from `shaders/*.wgsl`, each with an
//! explicit bind-group layout (so a binding a shader does not touch can still be bound, e.g. the sparse planes
//! of a dense weight).

use wgpu::{BindGroupLayout, ComputePipeline, Device};

const WEIGHTS: &str = include_str!("../../../shaders/weights.wgsl");
const LINEAR: &str = include_str!("../../../shaders/linear.wgsl");
const LINEAR_MXINT8: &str = include_str!("../../../shaders/linear_mxint8.wgsl");
const QUANTIZE: &str = include_str!("../../../shaders/quantize.wgsl");
const NORM: &str = include_str!("../../../shaders/norm.wgsl");
const ELEMENTWISE: &str = include_str!("../../../shaders/elementwise.wgsl");
const SOFTMAX: &str = include_str!("../../../shaders/softmax.wgsl");
const ATTENTION: &str = include_str!("../../../shaders/attention.wgsl");
const POOLING: &str = include_str!("../../../shaders/pooling.wgsl");
const EMBEDDING: &str = include_str!("../../../shaders/embedding.wgsl");

/// `dot4_i8` of linear_mxint8.wgsl: the WGSL built-in where the implementation has it.
const DOT4_NATIVE: &str =
    "fn dot4_i8(a: u32, b: u32) -> i32 {\n    return dot4I8Packed(a, b);\n}\n";
/// ... and the same sum of four signed byte products without it.
const DOT4_POLYFILL: &str = "fn dot4_i8(a: u32, b: u32) -> i32 {
    var s = 0;
    for (var t = 0u; t < 32u; t += 8u) {
        s += extractBits(bitcast<i32>(a), t, 8u) * extractBits(bitcast<i32>(b), t, 8u);
    }
    return s;
}
";

/// How a binding is used.
#[derive(Clone, Copy)]
enum Slot {
    Uniform,
    Read,
    Write,
}
use Slot::{Read, Uniform, Write};

/// The weight planes of weights.wgsl: descriptor, elements, scales, masks, row offsets.
const WEIGHT_SLOTS: [(u32, Slot); 5] = [(1, Uniform), (2, Read), (3, Read), (4, Read), (5, Read)];

pub(crate) struct Pipeline {
    pub pipeline: ComputePipeline,
    pub layout: BindGroupLayout,
    /// Binding numbers, in the order a dispatch passes its buffers.
    pub bindings: Vec<u32>,
}

pub(crate) struct Pipelines {
    pub linear: Pipeline,
    pub gemv: Pipeline,
    pub linear_mxint8: Pipeline,
    pub fake_quant: Pipeline,
    pub mxint8_codes: Pipeline,
    pub norm: Pipeline,
    pub gelu: Pipeline,
    pub gelu_tanh: Pipeline,
    pub tanh: Pipeline,
    pub relu: Pipeline,
    pub leaky_relu: Pipeline,
    pub affine: Pipeline,
    pub softmax: Pipeline,
    pub attention: Pipeline,
    pub first_tokens: Pipeline,
    pub pool_sentences: Pipeline,
    pub embedding: Pipeline,
}

impl Pipelines {
    pub fn new(device: &Device, native_dot4: bool) -> Pipelines {
        let module = |label: &str, parts: &[&str]| {
            device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(parts.concat().into()),
            })
        };
        let linear = module("linear.wgsl", &[WEIGHTS, LINEAR]);
        let dot4 = if native_dot4 {
            DOT4_NATIVE
        } else {
            DOT4_POLYFILL
        };
        let linear_mxint8 = module("linear_mxint8.wgsl", &[WEIGHTS, dot4, LINEAR_MXINT8]);
        let quantize = module("quantize.wgsl", &[QUANTIZE]);
        let norm = module("norm.wgsl", &[NORM]);
        let elementwise = module("elementwise.wgsl", &[ELEMENTWISE]);
        let softmax = module("softmax.wgsl", &[SOFTMAX]);
        let attention = module("attention.wgsl", &[ATTENTION]);
        let pooling = module("pooling.wgsl", &[POOLING]);
        let embedding = module("embedding.wgsl", &[WEIGHTS, EMBEDDING]);
        let make = |m: &wgpu::ShaderModule, entry: &str, slots: &[(u32, Slot)]| {
            pipeline(device, m, entry, slots)
        };
        let with_weights = |own: &[(u32, Slot)]| -> Vec<(u32, Slot)> {
            let mut all = vec![(0, Uniform)];
            all.extend(WEIGHT_SLOTS);
            all.extend_from_slice(own);
            all
        };
        Pipelines {
            gemv: make(
                &linear,
                "gemv",
                &with_weights(&[(6, Read), (7, Read), (8, Write)]),
            ),
            linear: make(
                &linear,
                "main",
                &with_weights(&[(6, Read), (7, Read), (8, Write)]),
            ),
            linear_mxint8: make(
                &linear_mxint8,
                "main",
                &with_weights(&[(6, Read), (7, Read), (8, Read), (9, Write)]),
            ),
            fake_quant: make(
                &quantize,
                "fake_quant",
                &[(0, Uniform), (1, Read), (2, Read), (3, Write)],
            ),
            mxint8_codes: make(
                &quantize,
                "mxint8_codes",
                &[(0, Uniform), (1, Read), (2, Read), (4, Write), (5, Write)],
            ),
            norm: make(
                &norm,
                "main",
                &[
                    (0, Uniform),
                    (1, Read),
                    (2, Read),
                    (3, Read),
                    (4, Read),
                    (5, Write),
                ],
            ),
            gelu: make(&elementwise, "gelu", &[(0, Uniform), (1, Write)]),
            gelu_tanh: make(&elementwise, "gelu_tanh", &[(0, Uniform), (1, Write)]),
            tanh: make(&elementwise, "tanh_op", &[(0, Uniform), (1, Write)]),
            relu: make(&elementwise, "relu", &[(0, Uniform), (1, Write)]),
            leaky_relu: make(&elementwise, "leaky_relu", &[(0, Uniform), (1, Write)]),
            affine: make(
                &elementwise,
                "affine",
                &[(0, Uniform), (1, Write), (2, Read), (3, Read)],
            ),
            softmax: make(&softmax, "main", &[(0, Uniform), (1, Write)]),
            attention: make(
                &attention,
                "main",
                &[
                    (0, Uniform),
                    (1, Read),
                    (2, Read),
                    (3, Read),
                    (4, Read),
                    (5, Write),
                ],
            ),
            first_tokens: make(
                &pooling,
                "first_tokens",
                &[(0, Uniform), (1, Read), (3, Write)],
            ),
            pool_sentences: make(
                &pooling,
                "pool",
                &[(0, Uniform), (1, Read), (2, Read), (3, Write)],
            ),
            embedding: make(&embedding, "main", &with_weights(&[(6, Read), (7, Write)])),
        }
    }
}

fn pipeline(
    device: &Device,
    module: &wgpu::ShaderModule,
    entry: &str,
    slots: &[(u32, Slot)],
) -> Pipeline {
    let entries: Vec<wgpu::BindGroupLayoutEntry> = slots
        .iter()
        .map(|&(binding, slot)| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: match slot {
                    Uniform => wgpu::BufferBindingType::Uniform,
                    Read => wgpu::BufferBindingType::Storage { read_only: true },
                    Write => wgpu::BufferBindingType::Storage { read_only: false },
                },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        })
        .collect();
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(entry),
        entries: &entries,
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(entry),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry),
        layout: Some(&pipeline_layout),
        module,
        entry_point: Some(entry),
        compilation_options: Default::default(),
        cache: None,
    });
    Pipeline {
        pipeline,
        layout,
        bindings: slots.iter().map(|s| s.0).collect(),
    }
}
