//! `mxrt verify`: full structural and checksum verification, then, for a file that describes a model, the
//! model check every command runs at open: the description against the tensors (present, numeric, of the
//! shapes the description needs), the recipe, and the embedded tokenizer. What `verify` accepts, the other
//! commands open.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use mxrt_format::ReadOptions;
use mxrt_runtime::{Graph, MappedFile, Model, TextEncoder};
use serde_json::json;

use crate::fmt::grouped;
use crate::fmt::outln;

/// `FILE [--json]`.
pub type Args = crate::FileJsonArgs;

pub fn run(a: Args) -> Result<ExitCode> {
    let start = Instant::now();
    let outcome = MappedFile::open(&a.file)
        .and_then(|m| {
            let f = m.validate(ReadOptions {
                verify_checksums: true,
            })?;
            let is_model = f
                .metadata()
                .get("architecture")
                .is_some_and(|v| !v.is_null());
            Ok((f.tensors().len(), f.file_len(), is_model))
        })
        .map_err(anyhow::Error::from)
        .and_then(|(tensors, bytes, is_model)| {
            let model = if is_model {
                Some(check_model(&a.file)?)
            } else {
                None
            };
            Ok((tensors, bytes, model))
        });
    let seconds = start.elapsed().as_secs_f64();
    let path = a.file.display();
    match outcome {
        Ok((tensors, bytes, model)) => {
            if a.json {
                outln!(
                    "{}",
                    json!({"file": path.to_string(), "ok": true, "tensors": tensors, "bytes": bytes,
                        "seconds": seconds, "model": model})
                )?;
            } else {
                let model = model.map_or(String::new(), |m| format!("; model: {m}"));
                outln!(
                    "OK {path}: {tensors} tensors, {} bytes; structure and all checksums verified in {:.1} ms{model}",
                    grouped(bytes),
                    seconds * 1e3
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if a.json {
                outln!(
                    "{}",
                    json!({"file": path.to_string(), "ok": false, "error": e.to_string()})
                )?;
            }
            eprintln!("FAILED {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Opens the file as a model, as `run` does (its checksums were just verified), and builds its tokenizer;
/// returns what was checked, for the report.
fn check_model(path: &std::path::Path) -> Result<String> {
    let model = Model::open(
        path,
        ReadOptions {
            verify_checksums: false,
        },
    )?;
    describe_checked(&model)
}

/// Builds what an opened model needs beyond its tensors (the tokenizer) and says what was checked.
fn describe_checked(model: &Model) -> Result<String> {
    Ok(match model.graph() {
        Graph::Bert(b) => {
            let tokenizer = match TextEncoder::from_model(model, None) {
                Ok(_) => "tokenizer built",
                Err(mxrt_runtime::RuntimeError::Text(mxrt_runtime::TextError::NoTokenizer)) => {
                    "no tokenizer"
                }
                Err(e) => return Err(e.into()),
            };
            format!(
                "BERT, {} layers, description matches the tensors, {tokenizer}",
                b.config.layers
            )
        }
        Graph::Mlp(m) => format!(
            "MLP {} -> {}, description matches the tensors",
            m.inputs, m.outputs
        ),
    })
}
