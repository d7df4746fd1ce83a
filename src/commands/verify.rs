//! `mxrt verify`: full structural and checksum verification, then, for a file that describes a model, the
//! model check every command runs at open: the description against the tensors (present, numeric, of the
//! shapes the description needs), the recipe, and the embedded tokenizer. What `verify` accepts, the other
//! commands open.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use serde_json::json;

use crate::fmt::grouped;
use crate::fmt::outln;

/// `FILE [--json]`.
pub type Args = crate::FileJsonArgs;

pub fn run(a: Args) -> Result<ExitCode> {
    let start = Instant::now();
    let outcome = mxrt_runtime::verify(&a.file).map(|v| (v.tensors, v.bytes, v.model));
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
