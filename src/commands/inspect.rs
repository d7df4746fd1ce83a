//! `mxrt inspect`: tensors, encodings, sizes, sparsity, and the saving against FP32.

use std::process::ExitCode;

use anyhow::Result;
use mxrt_format::inspect::{inspect, Inspection};
use mxrt_format::ReadOptions;
use mxrt_runtime::MappedFile;
use serde_json::Value;

use crate::fmt::outln;
use crate::fmt::{grouped, shape, Table};

/// `FILE [--json]`.
pub type Args = crate::FileJsonArgs;

pub fn run(a: Args) -> Result<ExitCode> {
    let mapped = MappedFile::open(&a.file)?;
    // Structure is always validated; inspect skips the data checksums (that is `verify`'s job).
    let file = mapped.validate(ReadOptions {
        verify_checksums: false,
    })?;
    let inspection = inspect(&file, &a.file.display().to_string());
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&inspection)?)?;
    } else {
        print_text(&inspection)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(i: &Inspection) -> std::io::Result<()> {
    let t = &i.totals;
    outln!(
        "{}: .mxrt {}, {} bytes, {} tensors",
        i.file,
        i.version,
        grouped(t.file_bytes),
        t.tensors
    )?;
    let m = &i.metadata;
    let arch = m
        .get("architecture")
        .and_then(Value::as_str)
        .unwrap_or("none (tensors only)");
    outln!("architecture: {arch}")?;
    if let Some(h) = m.get("hyperparameters").and_then(|h| h.get("head")) {
        outln!("head: {h}")?;
    }
    if let Some(recipe) = m.get("recipe").and_then(Value::as_object) {
        print_recipe(recipe)?;
    }
    if let Some(p) = m.get("provenance") {
        let conv = p
            .get("converter")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        outln!("converter: {conv}")?;
        for s in p
            .get("sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let sha = s.get("sha256").and_then(Value::as_str).unwrap_or("");
            outln!(
                "source: {} ({} bytes, sha256 {})",
                s.get("path").and_then(Value::as_str).unwrap_or("?"),
                grouped(s.get("bytes").and_then(Value::as_u64).unwrap_or(0)),
                sha
            )?;
        }
    }
    outln!()?;
    let mut table = Table::new(
        &[
            "tensor",
            "shape",
            "encoding",
            "bytes",
            "bits/elem",
            "sparsity",
        ],
        &[3, 4, 5],
    );
    for r in &i.tensors {
        let enc = if r.sparse {
            format!("sparse({})", r.encoding)
        } else {
            r.encoding.clone()
        };
        table.row(vec![
            r.name.clone(),
            shape(&r.shape),
            enc,
            grouped(r.bytes),
            r.bits_per_element.map_or("-".into(), |b| format!("{b:.2}")),
            r.sparsity
                .map_or("-".into(), |s| format!("{:.1} %", 100.0 * s)),
        ]);
    }
    crate::fmt::emit(&table.render())?;
    outln!(
        "\ntotal: {} elements in {} bytes ({:.2} bits/elem); FP32 size of the same tensors {} bytes: saving {:.1} %",
        grouped(t.elements),
        grouped(t.bytes),
        if t.elements > 0 { t.bytes as f64 * 8.0 / t.elements as f64 } else { 0.0 },
        grouped(t.fp32_bytes),
        t.saving_percent
    )?;
    outln!(
        "file: {} bytes including header, metadata and {}-byte alignment: saving {:.1} % against FP32",
        grouped(t.file_bytes),
        i.plane_align,
        t.file_saving_percent
    )?;
    Ok(())
}

/// The recipe: for models, one row per layer as resolved; for tensor-only files, its settings in one line.
fn print_recipe(recipe: &serde_json::Map<String, Value>) -> std::io::Result<()> {
    let text = |v: Option<&Value>| match v {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let Some(layers) = recipe.get("layers").and_then(Value::as_array) else {
        let parts: Vec<String> = recipe
            .iter()
            .map(|(k, v)| format!("{k}={}", text(Some(v))))
            .collect();
        return outln!("recipe: {}", parts.join(" "));
    };
    outln!(
        "recipe (from {}), resolved per layer:",
        text(recipe.get("source"))
    )?;
    let mut t = Table::new(
        &[
            "layer",
            "kind",
            "weights",
            "activations",
            "rounding",
            "prune",
        ],
        &[],
    );
    for l in layers {
        let prune = match l.get("prune") {
            Some(Value::Object(p)) => format!(
                "{} {:.0} % {} seed {}",
                text(p.get("method")),
                100.0 * p.get("sparsity").and_then(Value::as_f64).unwrap_or(0.0),
                text(p.get("scope")),
                text(p.get("seed"))
            ),
            _ => "-".into(),
        };
        t.row(vec![
            text(l.get("name")),
            text(l.get("kind")),
            text(l.get("weights")),
            text(l.get("activations")),
            // Rounding matters only where something is quantized.
            if l.get("weights").is_some_and(|w| !w.is_null())
                || l.get("activations").is_some_and(|a| !a.is_null())
            {
                text(l.get("rounding"))
            } else {
                "-".into()
            },
            prune,
        ]);
    }
    crate::fmt::emit(&t.render())
}
