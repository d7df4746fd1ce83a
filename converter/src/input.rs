//! Reading weight files: safetensors (validated by the safetensors crate) and PyTorch zip checkpoints
//! ([`crate::torch`]), memory-mapped and hashed for provenance. The format is told by the file's first bytes,
//! not its name.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use mxrt_format::{Encoding, RawDtype};
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use sha2::{Digest, Sha256};

use crate::error::ConvertError;

/// One input file, mapped read-only.
pub struct SourceFile {
    pub path: PathBuf,
    map: Mmap,
}

/// One tensor of an input file, borrowing its bytes from the mapping (a copy only for a strided PyTorch view).
pub struct SourceTensor<'a> {
    pub name: String,
    pub shape: Vec<u64>,
    /// `F32`, `F16` or `BF16` for floating-point tensors; `Raw(..)` for tensors copied as is.
    pub dtype: Encoding,
    pub data: Cow<'a, [u8]>,
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
        Ok(self.read()?.0)
    }

    /// The tensors, sorted by name, and notes on how the file was interpreted (PyTorch checkpoints: the
    /// entry the weights came from, a dropped module prefix).
    pub fn read(&self) -> Result<(Vec<SourceTensor<'_>>, Vec<String>), ConvertError> {
        if self.map.starts_with(crate::torch::ZIP_MAGIC) {
            return self.read_torch();
        }
        if crate::torch::is_legacy(&self.map) {
            return Err(ConvertError::Torch {
                path: self.path.clone(),
                reason: "a PyTorch checkpoint in the legacy format (torch < 1.6, or saved with \
                         _use_new_zipfile_serialization=False), which mxrt does not read: load it in \
                         Python and save it again with torch.save(state_dict, path) (or \
                         safetensors.torch.save_file)"
                    .into(),
            });
        }
        Ok((self.read_safetensors()?, Vec::new()))
    }

    fn read_torch(&self) -> Result<(Vec<SourceTensor<'_>>, Vec<String>), ConvertError> {
        let (tensors, notes) =
            crate::torch::read(&self.map).map_err(|reason| ConvertError::Torch {
                path: self.path.clone(),
                reason,
            })?;
        let mut out: Vec<SourceTensor<'_>> = tensors
            .into_iter()
            .map(|t| SourceTensor {
                name: t.name,
                shape: t.shape,
                dtype: t.dtype,
                data: t.data,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = out.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(ConvertError::Torch {
                path: self.path.clone(),
                reason: format!("tensor {:?} appears twice", w[0].name),
            });
        }
        let name = self.path.display();
        let notes = notes.into_iter().map(|n| format!("{name}: {n}")).collect();
        Ok((out, notes))
    }

    fn read_safetensors(&self) -> Result<Vec<SourceTensor<'_>>, ConvertError> {
        let st = SafeTensors::deserialize(&self.map).map_err(|e| ConvertError::Safetensors {
            path: self.path.clone(),
            reason: explain_safetensors_error(&e, &self.map),
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
                data: Cow::Borrowed(view.data()),
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

/// The safetensors crate's error in words, with the tensor at fault where the crate does not name it (its
/// `Display` is the bare variant name, such as `TensorInvalidInfo`).
fn explain_safetensors_error(e: &SafeTensorError, bytes: &[u8]) -> String {
    use SafeTensorError as E;
    match e {
        E::HeaderTooSmall => format!(
            "the file is {} bytes, shorter than the 8-byte header length a safetensors file starts with",
            bytes.len()
        ),
        E::HeaderTooLarge => "the header length (first 8 bytes) is over 100 MB: not a safetensors file".into(),
        E::InvalidHeaderLength => "the header length (first 8 bytes) runs past the end of the file (truncated?)".into(),
        E::InvalidHeader => "the JSON header is not valid UTF-8".into(),
        E::InvalidHeaderStart => "the JSON header does not start with '{'".into(),
        E::InvalidHeaderDeserialization => format!(
            "the JSON header is not a safetensors header ({})",
            header_json_problem(bytes)
        ),
        E::JsonError(j) => format!("the JSON header is invalid: {j}"),
        E::TensorNotFound(name) => format!("tensor {name:?} is not in the file"),
        E::InvalidOffset(name) => format!(
            "tensor {name:?}: its data_offsets do not follow the previous tensor's (gap, overlap or reversed)"
        ),
        E::TensorInvalidInfo | E::ValidationOverflow => match tensor_at_fault(bytes) {
            Some(why) => why,
            None => "a tensor's shape, dtype and data_offsets disagree".into(),
        },
        E::MetadataIncompleteBuffer => format!(
            "the tensors' data_offsets do not cover the data exactly: the header accounts for {} bytes, \
             the file holds {} after the header (truncated, or bytes appended)",
            data_extent(bytes).map_or("an unknown number of".into(), |n| n.to_string()),
            header_end(bytes).map_or(0, |h| bytes.len().saturating_sub(h))
        ),
        E::InvalidTensorView(dtype, shape, len) => {
            format!("a {dtype:?} tensor of shape {shape:?} cannot hold {len} bytes")
        }
        E::IoError(io) => format!("I/O error: {io}"),
    }
}

/// End of the JSON header (8 + its length), when the length is plausible.
fn header_end(bytes: &[u8]) -> Option<usize> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    8usize
        .checked_add(usize::try_from(n).ok()?)
        .filter(|&e| e <= bytes.len())
}

fn header_json(bytes: &[u8]) -> Option<serde_json::Map<String, serde_json::Value>> {
    serde_json::from_slice(bytes.get(8..header_end(bytes)?)?).ok()
}

/// Why serde could not read the header as a safetensors header.
fn header_json_problem(bytes: &[u8]) -> String {
    let Some(header) = header_json(bytes) else {
        return "not a JSON object".into();
    };
    for (name, info) in &header {
        if name == "__metadata__" {
            if !info.is_object()
                || info
                    .as_object()
                    .is_some_and(|m| m.values().any(|v| !v.is_string()))
            {
                return "__metadata__ must map names to strings".into();
            }
            continue;
        }
        let ok = info.get("dtype").is_some_and(|d| d.is_string())
            && info
                .get("shape")
                .and_then(|s| s.as_array())
                .is_some_and(|s| s.iter().all(|d| d.is_u64()))
            && info
                .get("data_offsets")
                .and_then(|o| o.as_array())
                .is_some_and(|o| o.len() == 2 && o.iter().all(|d| d.is_u64()));
        if !ok {
            return format!(
                "tensor {name:?} needs \"dtype\" (a name), \"shape\" (non-negative integers) and \
                 \"data_offsets\" (two non-negative integers); found {info}"
            );
        }
    }
    "unknown dtype or malformed entry".into()
}

/// The largest end offset in the header.
fn data_extent(bytes: &[u8]) -> Option<u64> {
    header_json(bytes)?
        .iter()
        .filter(|(n, _)| *n != "__metadata__")
        .filter_map(|(_, info)| info.get("data_offsets")?.get(1)?.as_u64())
        .max()
}

/// The first tensor whose shape × dtype size differs from its data_offsets span, in words.
fn tensor_at_fault(bytes: &[u8]) -> Option<String> {
    let header = header_json(bytes)?;
    for (name, info) in &header {
        if name == "__metadata__" {
            continue;
        }
        let dtype = info.get("dtype")?.as_str()?;
        let shape: Vec<u64> = info
            .get("shape")?
            .as_array()?
            .iter()
            .map(|d| d.as_u64())
            .collect::<Option<_>>()?;
        let offsets = info.get("data_offsets")?.as_array()?;
        let (begin, end) = (offsets.first()?.as_u64()?, offsets.get(1)?.as_u64()?);
        // The crate's own names and sizes (an unknown dtype: no tensor to blame here).
        let size = serde_json::from_value::<Dtype>(serde_json::json!(dtype))
            .ok()?
            .size() as u64;
        let needed = shape.iter().try_fold(size, |a, &d| a.checked_mul(d));
        match needed {
            None => {
                return Some(format!(
                    "tensor {name:?}: shape {shape:?} of {dtype} overflows 64-bit arithmetic"
                ))
            }
            Some(n) if Some(n) != end.checked_sub(begin) => {
                return Some(format!(
                    "tensor {name:?}: shape {shape:?} of {dtype} needs {n} bytes, but its data_offsets \
                     [{begin}, {end}] span {}",
                    end.checked_sub(begin).map_or("a negative length".into(), |l| format!("{l} bytes"))
                ))
            }
            _ => {}
        }
    }
    None
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors image: the header JSON, then `data` bytes.
    fn image(header: &str, data: usize) -> Vec<u8> {
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend(header.as_bytes());
        b.extend(vec![0u8; data]);
        b
    }

    fn message(bytes: &[u8]) -> String {
        let e = SafeTensors::deserialize(bytes)
            .err()
            .expect("an invalid file");
        explain_safetensors_error(&e, bytes)
    }

    /// Each failure the safetensors crate reports by a bare variant name gets a sentence, naming the tensor
    /// where one is at fault.
    #[test]
    fn safetensors_errors_in_words() {
        assert_eq!(
            message(b"abc"),
            "the file is 3 bytes, shorter than the 8-byte header length a safetensors file starts with"
        );
        let mut long = (1u64 << 40).to_le_bytes().to_vec();
        long.extend(b"{}");
        assert!(message(&long).contains("over 100 MB"), "{}", message(&long));
        let mut cut = 100u64.to_le_bytes().to_vec();
        cut.extend(b"{\"a\"");
        assert!(message(&cut).contains("past the end of the file"));
        assert_eq!(
            message(&image("[1]", 0)),
            "the JSON header is not a safetensors header (not a JSON object)"
        );
        assert_eq!(
            message(&image(r#"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}"#, 4)),
            "tensor \"w\": shape [2] of F32 needs 8 bytes, but its data_offsets [0, 4] span 4 bytes"
        );
        assert_eq!(
            message(&image(r#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#, 8)),
            "the tensors' data_offsets do not cover the data exactly: the header accounts for 4 bytes, \
             the file holds 8 after the header (truncated, or bytes appended)"
        );
        let e = message(&image(
            r#"{"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}"#,
            4,
        ));
        assert!(
            e.starts_with("the JSON header is not a safetensors header (tensor \"w\" needs"),
            "{e}"
        );
        for e in [
            message(b"abc"),
            message(&image("[1]", 0)),
            message(&image(r#"{"w": 1}"#, 0)),
        ] {
            assert!(!e.contains("Invalid") && !e.contains("Metadata"), "{e}");
        }
    }
}
