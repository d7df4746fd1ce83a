//! `mxrt dequantize`: every tensor back to safetensors, floating-point ones as F32.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use mxrt_format::{layout::PLANE_ELEMENTS, write_atomically, Encoding, RawDtype, ReadOptions};
use mxrt_runtime::MappedFile;
use safetensors::{tensor::TensorView, Dtype};

#[derive(clap::Args)]
pub struct Args {
    /// The .mxrt file.
    file: PathBuf,
    /// Output safetensors file (replaced atomically if it exists).
    #[arg(short, long)]
    output: PathBuf,
}

fn raw_dtype(d: RawDtype) -> Dtype {
    match d {
        RawDtype::Bool => Dtype::BOOL,
        RawDtype::U8 => Dtype::U8,
        RawDtype::I8 => Dtype::I8,
        RawDtype::U16 => Dtype::U16,
        RawDtype::I16 => Dtype::I16,
        RawDtype::U32 => Dtype::U32,
        RawDtype::I32 => Dtype::I32,
        RawDtype::U64 => Dtype::U64,
        RawDtype::I64 => Dtype::I64,
        RawDtype::F64 => Dtype::F64,
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    crate::outputs::check_outputs(&[&a.output], &[&a.file])?;
    let mapped = MappedFile::open(&a.file)?;
    let file = mapped.validate(ReadOptions::default())?;
    // (name, dtype, shape, bytes): floating-point encodings decoded to F32, raw tensors copied.
    let mut decoded: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> =
        Vec::with_capacity(file.tensors().len());
    for t in file.tensors() {
        let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
        let (dtype, bytes) = match t.encoding {
            Encoding::Raw(d) => (raw_dtype(d), t.plane(PLANE_ELEMENTS).to_vec()),
            _ => (
                Dtype::F32,
                t.dequantize()?
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
        };
        decoded.push((t.name.to_string(), dtype, shape, bytes));
    }
    let views = decoded
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .with_context(|| format!("tensor {name:?}: cannot describe it as safetensors"))
        })
        .collect::<Result<Vec<_>>>()?;
    let serialized = safetensors::serialize(views, &None).context("serialising safetensors")?;
    write_atomically(&a.output, |w| w.write_all(&serialized))?;
    eprintln!("wrote {} ({} tensors)", a.output.display(), decoded.len());
    Ok(ExitCode::SUCCESS)
}
