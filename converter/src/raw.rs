//! Converting safetensors files without a model description: every floating-point tensor gets the requested
//! encoding (where it makes sense), every other tensor is copied as is.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mxrt_format::{
    encode_f32, encode_raw, EncodedTensor, Encoding, EncodingSpec, FileBuilder, Rounding,
    SparsePolicy,
};
use serde_json::{json, Map, Value};

use crate::error::ConvertError;
use crate::input::{check_finite, SourceFile, SourceTensor};

/// What `mxrt convert` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub weights: EncodingSpec,
    pub rounding: Rounding,
    /// Encode every floating-point tensor with `weights`, even 1-D ones and ones that would not get smaller.
    pub all_tensors: bool,
    /// Never use the sparse layout (by default a tensor is stored sparse when that is smaller).
    pub no_sparse: bool,
    /// Keep NaN and infinities instead of refusing them.
    pub allow_nonfinite: bool,
    /// Alignment of the data planes in the file.
    pub plane_align: mxrt_format::PlaneAlign,
}

/// What happened to one tensor.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TensorOutcome {
    pub name: String,
    pub shape: Vec<u64>,
    pub source_dtype: String,
    pub encoding: String,
    pub sparse: bool,
    pub bytes: u64,
    pub source_bytes: u64,
    /// Why the requested encoding was not used, when it was not.
    pub kept_because: Option<String>,
}

/// The result of a conversion.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub output: PathBuf,
    pub output_bytes: u64,
    pub source_bytes: u64,
    pub tensors: Vec<TensorOutcome>,
}

/// Converts `inputs` into one `.mxrt` file at `output`, written atomically. `progress(done, total, name)` is
/// called before each tensor.
pub fn convert(
    inputs: &[PathBuf],
    output: &Path,
    options: &Options,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<Report, ConvertError> {
    if inputs.is_empty() {
        return Err(ConvertError::NoInputs);
    }
    if options.no_sparse && options.weights.sparse_requested {
        return Err(ConvertError::Options(
            "--no-sparse contradicts a sparse(...) encoding".into(),
        ));
    }
    if matches!(options.weights.encoding, Encoding::Raw(_)) {
        return Err(ConvertError::Options("raw is not a weight encoding".into()));
    }
    reject_output_among_inputs(inputs, output)?;
    let files = inputs
        .iter()
        .map(|p| SourceFile::open(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut per_file = Vec::with_capacity(files.len());
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for f in &files {
        let tensors = f.tensors()?;
        for t in &tensors {
            if let Some(first) = seen.insert(t.name.clone(), f.path.clone()) {
                return Err(ConvertError::DuplicateTensor {
                    name: t.name.clone(),
                    first,
                    second: f.path.clone(),
                });
            }
        }
        per_file.push(tensors);
    }

    let mut builder = FileBuilder::new(metadata(&files, options))?.plane_align(options.plane_align);
    let total: usize = per_file.iter().map(Vec::len).sum();
    let mut outcomes = Vec::with_capacity(total);
    for (i, t) in per_file.iter().flatten().enumerate() {
        progress(i, total, &t.name);
        let (encoded, kept_because) = encode_tensor(t, options)?;
        outcomes.push(TensorOutcome {
            name: t.name.clone(),
            shape: t.shape.clone(),
            source_dtype: t.dtype.to_string().trim_start_matches("raw-").to_string(),
            encoding: encoded.encoding.to_string(),
            sparse: encoded.sparse,
            bytes: encoded.stored_bytes(),
            source_bytes: t.data.len() as u64,
            kept_because,
        });
        builder.push(encoded)?;
    }
    progress(total, total, "");
    let output_bytes = builder.write_to_path(output)?;
    Ok(Report {
        output: output.to_path_buf(),
        output_bytes,
        source_bytes: files.iter().map(SourceFile::len).sum(),
        tensors: outcomes,
    })
}

fn sparse_policy(options: &Options) -> SparsePolicy {
    if options.no_sparse {
        SparsePolicy::Never
    } else {
        SparsePolicy::IfSmaller
    }
}

/// Encodes one tensor; returns why the requested encoding was not used, if it was not.
fn encode_tensor(
    t: &SourceTensor<'_>,
    options: &Options,
) -> Result<(EncodedTensor, Option<String>), ConvertError> {
    let values = match (t.dtype, t.to_f32()) {
        (Encoding::Raw(dtype), _) => {
            return Ok((encode_raw(&t.name, &t.shape, dtype, t.data.to_vec())?, None))
        }
        (_, Some(values)) => values,
        (other, None) => {
            return Err(ConvertError::Options(format!(
                "tensor {:?}: no f32 conversion from {other}",
                t.name
            )))
        }
    };
    if !options.allow_nonfinite {
        check_finite(&t.name, &values)?;
    }
    let policy = sparse_policy(options);
    let target = options.weights.encoding;
    let lossless_float = matches!(target, Encoding::F32 | Encoding::F16 | Encoding::Bf16);
    let keep = |reason: &str| -> Result<(EncodedTensor, Option<String>), ConvertError> {
        let kept = encode_f32(
            &t.name,
            &t.shape,
            &values,
            t.dtype,
            options.rounding,
            policy,
        )?;
        Ok((kept, Some(reason.to_string())))
    };
    if !lossless_float && !options.all_tensors && t.shape.len() < 2 {
        return keep("1-D: kept in its source type (--all-tensors encodes it)");
    }
    let encoded = encode_f32(&t.name, &t.shape, &values, target, options.rounding, policy)?;
    if !lossless_float && !options.all_tensors && encoded.stored_bytes() >= t.data.len() as u64 {
        return keep("not smaller than its source: kept (--all-tensors encodes it)");
    }
    Ok((encoded, None))
}

fn metadata(files: &[SourceFile], options: &Options) -> Map<String, Value> {
    let sources: Vec<Value> = files.iter().map(SourceFile::provenance).collect();
    let recipe = json!({
        "weights": options.weights.encoding.to_string(),
        "rounding": options.rounding.name(),
        "sparse": if options.no_sparse { "never" } else { "if-smaller" },
        "all_tensors": options.all_tensors,
    });
    let mut m = Map::new();
    m.insert("architecture".into(), Value::Null);
    m.insert("hyperparameters".into(), json!({}));
    m.insert("recipe".into(), recipe);
    m.insert(
        "provenance".into(),
        json!({"converter": crate::CONVERTER, "sources": sources}),
    );
    m
}

pub(crate) fn reject_output_among_inputs(
    inputs: &[PathBuf],
    output: &Path,
) -> Result<(), ConvertError> {
    let Ok(out) = output.canonicalize() else {
        return Ok(()); // the output does not exist yet, so it is no input
    };
    for input in inputs {
        if input.canonicalize().is_ok_and(|i| i == out) {
            return Err(ConvertError::OutputIsInput(output.to_path_buf()));
        }
    }
    Ok(())
}
