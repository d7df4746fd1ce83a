//! What a file holds, as `mxrt inspect` and the bindings report it: per tensor its encoding, stored bytes,
//! bits per element and sparsity, the totals against FP32, the version and the metadata.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{Encoding, MxrtFile, TensorView};

#[derive(Debug, Clone, Serialize)]
pub struct TensorRow {
    pub name: String,
    pub shape: Vec<u64>,
    pub encoding: String,
    pub sparse: bool,
    pub elements: u64,
    pub bytes: u64,
    /// Stored bits per element, all planes included (scales, masks, row offsets).
    pub bits_per_element: Option<f64>,
    /// Fraction of elements whose encoded value is zero.
    pub sparsity: Option<f64>,
    /// Bytes of the same tensor in FP32 (raw tensors: their own size).
    pub fp32_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub tensors: usize,
    pub elements: u64,
    pub bytes: u64,
    pub fp32_bytes: u64,
    pub saving_percent: f64,
    pub file_bytes: u64,
    pub file_saving_percent: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub file: String,
    pub version: String,
    /// Alignment of every data plane (bytes).
    pub plane_align: u64,
    pub metadata: Map<String, Value>,
    pub tensors: Vec<TensorRow>,
    pub totals: Totals,
}

/// `100 · (1 − stored / reference)`; 0 for an empty reference.
pub fn saving_percent(stored: u64, reference: u64) -> f64 {
    if reference == 0 {
        0.0
    } else {
        100.0 * (1.0 - stored as f64 / reference as f64)
    }
}

fn row(t: &TensorView<'_>) -> TensorRow {
    let numel = t.terms.numel;
    let bytes = t.stored_bytes();
    let fp32_bytes = match t.encoding {
        Encoding::Raw(_) => bytes,
        _ => numel * 4,
    };
    let per_element = |x: f64| (numel > 0).then(|| x / numel as f64);
    TensorRow {
        name: t.name.to_string(),
        shape: t.shape.clone(),
        encoding: t.encoding.to_string(),
        sparse: t.sparse,
        elements: numel,
        bytes,
        bits_per_element: per_element(bytes as f64 * 8.0),
        sparsity: per_element(t.zero_count() as f64),
        fp32_bytes,
    }
}

/// The inspection of a parsed file; `name` is how the report names it (its path).
pub fn inspect(file: &MxrtFile<'_>, name: &str) -> Inspection {
    let tensors: Vec<TensorRow> = file.tensors().iter().map(row).collect();
    let bytes: u64 = tensors.iter().map(|t| t.bytes).sum();
    let fp32_bytes: u64 = tensors.iter().map(|t| t.fp32_bytes).sum();
    let totals = Totals {
        tensors: tensors.len(),
        elements: tensors.iter().map(|t| t.elements).sum(),
        bytes,
        fp32_bytes,
        saving_percent: saving_percent(bytes, fp32_bytes),
        file_bytes: file.file_len(),
        file_saving_percent: saving_percent(file.file_len(), fp32_bytes),
    };
    let (major, minor) = file.version();
    Inspection {
        file: name.to_string(),
        version: format!("{major}.{minor}"),
        plane_align: file.plane_align(),
        metadata: file.metadata().clone(),
        tensors,
        totals,
    }
}
