//! Reading safetensors checkpoints: memory-mapped, validated by the safetensors crate, hashed for provenance.

use std::path::{Path, PathBuf};

use memmap2::Mmap;
use mxrt_format::{Encoding, RawDtype};
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};

use crate::error::ConvertError;

/// One input file, mapped read-only.
pub struct SourceFile {
    pub path: PathBuf,
    map: Mmap,
}

/// One tensor of an input file, borrowing its bytes from the mapping.
pub struct SourceTensor<'a> {
    pub name: String,
    pub shape: Vec<u64>,
    /// `F32`, `F16` or `BF16` for floating-point tensors; `Raw(..)` for tensors copied as is.
    pub dtype: Encoding,
    pub data: &'a [u8],
}

impl SourceFile {
    pub fn open(path: &Path) -> Result<SourceFile, ConvertError> {
        let io = |source| ConvertError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = mxrt_format::open_regular_file(path).map_err(io)?;
        // SAFETY: the mapping is read-only and private to this process. A checkpoint modified by another
        // process while we convert it is outside what we support (as with every mmap-based loader); nothing
        // in mxrt writes to an input in place (our writers replace files by rename).
        #[allow(unsafe_code)]
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        Ok(SourceFile {
            path: path.to_path_buf(),
            map,
        })
    }

    pub fn len(&self) -> u64 {
        self.map.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Provenance entry: file name, size and SHA-256.
    pub fn provenance(&self) -> serde_json::Value {
        provenance_entry(&self.path, &self.map)
    }

    /// The tensors, sorted by name (safetensors itself has no order of its own).
    pub fn tensors(&self) -> Result<Vec<SourceTensor<'_>>, ConvertError> {
        let st = SafeTensors::deserialize(&self.map).map_err(|e| ConvertError::Safetensors {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let mut out = Vec::with_capacity(st.len());
        for (name, view) in st.tensors() {
            let dtype = match view.dtype() {
                Dtype::F32 => Encoding::F32,
                Dtype::F16 => Encoding::F16,
                Dtype::BF16 => Encoding::Bf16,
                Dtype::BOOL => Encoding::Raw(RawDtype::Bool),
                Dtype::U8 => Encoding::Raw(RawDtype::U8),
                Dtype::I8 => Encoding::Raw(RawDtype::I8),
                Dtype::U16 => Encoding::Raw(RawDtype::U16),
                Dtype::I16 => Encoding::Raw(RawDtype::I16),
                Dtype::U32 => Encoding::Raw(RawDtype::U32),
                Dtype::I32 => Encoding::Raw(RawDtype::I32),
                Dtype::U64 => Encoding::Raw(RawDtype::U64),
                Dtype::I64 => Encoding::Raw(RawDtype::I64),
                Dtype::F64 => Encoding::Raw(RawDtype::F64),
                other => {
                    return Err(ConvertError::UnsupportedDtype {
                        tensor: name,
                        path: self.path.clone(),
                        dtype: format!("{other:?}"),
                    })
                }
            };
            out.push(SourceTensor {
                shape: view.shape().iter().map(|&d| d as u64).collect(),
                dtype,
                data: view.data(),
                name,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

impl SourceTensor<'_> {
    /// The values as f32 (exact for F32, F16 and BF16 sources); `None` for raw tensors.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        let halves = |f: fn(u16) -> f32| {
            self.data
                .chunks_exact(2)
                .map(|c| f(u16::from_le_bytes([c[0], c[1]])))
                .collect()
        };
        match self.dtype {
            Encoding::F32 => Some(
                self.data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Encoding::F16 => Some(halves(mxrt_format::float::f16_value)),
            Encoding::Bf16 => Some(halves(mxrt_format::float::bf16_value)),
            _ => None,
        }
    }

    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `{"path": file name, "bytes": n, "sha256": hex}` for the metadata's `provenance.sources`.
pub fn provenance_entry(path: &Path, bytes: &[u8]) -> serde_json::Value {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    serde_json::json!({"path": name, "bytes": bytes.len(), "sha256": sha256_hex(bytes)})
}

/// Refuses NaN and infinities, naming the tensor and the first bad index.
pub fn check_finite(name: &str, values: &[f32]) -> Result<(), ConvertError> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(ConvertError::NonFinite {
            tensor: name.to_string(),
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}
