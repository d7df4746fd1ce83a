//! `mxrt verify`: full structural and checksum verification.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use mxrt_format::ReadOptions;
use mxrt_runtime::MappedFile;
use serde_json::json;

use crate::fmt::grouped;
use crate::fmt::outln;

/// `FILE [--json]`.
pub type Args = crate::FileJsonArgs;

pub fn run(a: Args) -> Result<ExitCode> {
    let start = Instant::now();
    let outcome = MappedFile::open(&a.file).and_then(|m| {
        let f = m.validate(ReadOptions {
            verify_checksums: true,
        })?;
        Ok((f.tensors().len(), f.file_len()))
    });
    let seconds = start.elapsed().as_secs_f64();
    let path = a.file.display();
    match outcome {
        Ok((tensors, bytes)) => {
            if a.json {
                outln!(
                    "{}",
                    json!({"file": path.to_string(), "ok": true, "tensors": tensors, "bytes": bytes, "seconds": seconds})
                )?;
            } else {
                outln!(
                    "OK {path}: {tensors} tensors, {} bytes; structure and all checksums verified in {:.1} ms",
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
