//! `mxrt eval --memory-only`: what a file's weights cost against FP32, encoding by encoding, beside the ideal
//! saving of its main encoding, and the tensors that explain the difference (an exact decomposition: the
//! measured bytes are the ideal bytes plus each tensor's excess).

use std::collections::BTreeMap;

use mxrt_format::{Encoding, EncodingSpec};
use mxrt_runtime::Model;
use mxrt_runtime::TensorRef;
use serde_json::{json, Value};

/// Bits per element an encoding costs in the ideal case: element bits plus the MX scale's share (8 bits per
/// block of 32), fixed point at its exact width (no container), no padding.
pub fn ideal_bits(encoding: Encoding) -> f64 {
    match encoding {
        Encoding::Mx(e) => f64::from(e.bits()) + 8.0 / 32.0,
        Encoding::Fixed { width, .. } => f64::from(width),
        other => f64::from(other.element_bits()),
    }
}

fn numeric(model: &Model) -> Vec<&TensorRef> {
    let mut v: Vec<&TensorRef> = model
        .tensors()
        .values()
        .filter(|t| !matches!(t.encoding, Encoding::Raw(_)))
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Bytes the tensor would take stored dense in its own encoding (rows padded to whole MX blocks, fixed-point
/// codes in their containers).
fn dense_bytes(t: &TensorRef) -> f64 {
    match t.encoding {
        Encoding::Mx(e) => (t.terms.blocks * (32 * u64::from(e.bits()) / 8 + 1)) as f64,
        other => t.terms.numel as f64 * f64::from(other.element_bits()) / 8.0,
    }
}

/// A tensor's excess over `main`'s ideal, split by cause: (cause, bytes).
fn causes(t: &TensorRef, main: Encoding) -> Vec<(String, f64)> {
    let numel = t.terms.numel as f64;
    let own_ideal = numel * ideal_bits(t.encoding) / 8.0;
    let dense = dense_bytes(t);
    let mut out = vec![(
        format!("tensors stored as {} instead of {main}", t.encoding),
        own_ideal - numel * ideal_bits(main) / 8.0,
    )];
    let layout = if t.encoding.is_mx() {
        "MX rows padded to whole blocks of 32"
    } else {
        "fixed-point codes in wider containers"
    };
    out.push((layout.into(), dense - own_ideal));
    out.push((
        "sparse storage (zeros dropped, bitmask and row offsets added)".into(),
        t.stored_bytes() as f64 - dense,
    ));
    out.retain(|c| c.1.abs() >= 0.5);
    out
}

/// Why a tensor costs more (or less) than `main`'s ideal.
fn reason(t: &TensorRef, main: Encoding) -> String {
    let mut parts = Vec::new();
    if t.encoding != main {
        parts.push(format!(
            "stored as {} ({} bits/element), not {main}",
            t.encoding,
            ideal_bits(t.encoding)
        ));
    }
    if t.encoding.is_mx() && !t.terms.cols.is_multiple_of(32) {
        parts.push(format!(
            "rows of {} padded to {} (whole blocks of 32)",
            t.terms.cols,
            t.terms.blocks_per_row * 32
        ));
    }
    if let Encoding::Fixed { width, .. } = t.encoding {
        let container = t.encoding.element_bits();
        if container != u32::from(width) {
            parts.push(format!("{width}-bit codes in {container}-bit containers"));
        }
    }
    if t.sparse {
        let zeros = t.terms.numel.saturating_sub(t.stored_elements);
        parts.push(format!(
            "sparse: {:.1} % zeros not stored (bitmask and row offsets added)",
            100.0 * zeros as f64 / t.terms.numel.max(1) as f64
        ));
    }
    if parts.is_empty() {
        "per-tensor overhead".into()
    } else {
        parts.join("; ")
    }
}

/// The encodings of the what-if table: the course's question ("why is the saving not 86.7 %?") asked of
/// every common choice.
/// (label, encoding): fixed point's size does not depend on its fraction width.
const WHAT_IF: [(&str, &str); 5] = [
    ("mxint8", "mxint8"),
    ("mxint4", "mxint4"),
    ("mxfp4", "mxfp4"),
    ("fixed 8 (any F)", "fixed:8.4"),
    ("fixed 4 (any F)", "fixed:4.2"),
];

/// This model's weights under each [`WHAT_IF`] encoding, by the format's size rules (exact: the bytes
/// `convert` writes for those shapes stored dense, MX rows padded to whole blocks, codes packed): the
/// tensors this file quantizes (for an all-FP32 file, its matrices, as `convert --weights E` would) at that
/// encoding; the rest (biases, LayerNorm) as stored here. A converted file can be smaller still where so
/// many codes are zero that convert stores a tensor sparse.
fn what_if(model: &Model, tensors: &[&TensorRef], fp32: u64) -> Vec<Value> {
    let all_f32 = tensors.iter().all(|t| t.encoding == Encoding::F32);
    let quantized = |t: &TensorRef| match all_f32 {
        true => t.shape.len() >= 2,
        false => t.encoding != Encoding::F32,
    };
    let other_file_bytes = model
        .file_len()
        .saturating_sub(tensors.iter().map(|t| t.stored_bytes()).sum());
    WHAT_IF
        .iter()
        .filter_map(|(name, spec)| {
            let encoding = spec.parse::<EncodingSpec>().ok()?.encoding;
            let mut bytes = 0u64;
            let mut elements = 0u64;
            for t in tensors {
                if quantized(t) {
                    let lens = t.terms.dense_plane_lens(encoding, &t.name).ok()?;
                    bytes += lens.iter().sum::<u64>();
                    elements += t.terms.numel;
                } else {
                    bytes += t.stored_bytes();
                }
            }
            let ideal = ideal_bits(encoding);
            Some(json!({
                "encoding": name,
                "ideal_bits_per_element": ideal,
                "ideal_saving_percent": 100.0 * (1.0 - ideal / 32.0),
                "quantized_elements": elements,
                "weight_bytes": bytes,
                "weight_saving_percent": 100.0 * (1.0 - bytes as f64 / fp32.max(1) as f64),
                "file_bytes": bytes + other_file_bytes,
            }))
        })
        .collect()
}

/// The memory report as JSON (also printed by [`print()`]).
pub fn report(model: &Model) -> Value {
    let tensors = numeric(model);
    let mut groups: BTreeMap<String, (Encoding, u64, u64, u64)> = BTreeMap::new();
    for t in &tensors {
        let g = groups
            .entry(t.encoding.to_string())
            .or_insert((t.encoding, 0, 0, 0));
        g.1 += 1;
        g.2 += t.terms.numel;
        g.3 += t.stored_bytes();
    }
    // The main encoding: the one holding the most elements, FP32 only if everything is FP32.
    let main = groups
        .values()
        .filter(|g| g.0 != Encoding::F32)
        .max_by_key(|g| g.2)
        .map_or(Encoding::F32, |g| g.0);
    let stored: u64 = tensors.iter().map(|t| t.stored_bytes()).sum();
    let elements: u64 = tensors.iter().map(|t| t.terms.numel).sum();
    // The FP32 original: the checkpoint's tensors, without the channel scales the format added.
    let fp32 = 4 * tensors
        .iter()
        .filter(|t| !model.is_channel_scale(&t.name))
        .map(|t| t.terms.numel)
        .sum::<u64>();
    let per_encoding: Vec<Value> = groups
        .iter()
        .map(|(name, &(enc, count, numel, bytes))| {
            json!({
                "encoding": name, "tensors": count, "elements": numel, "bytes": bytes,
                "fp32_bytes": 4 * numel,
                "ideal_bits_per_element": ideal_bits(enc),
                "ideal_saving_percent": 100.0 * (1.0 - ideal_bits(enc) / 32.0),
                "measured_bits_per_element": 8.0 * bytes as f64 / numel.max(1) as f64,
                "measured_saving_percent": 100.0 * (1.0 - bytes as f64 / (4 * numel).max(1) as f64),
            })
        })
        .collect();
    let main_bits = ideal_bits(main);
    let mut excess: Vec<(&TensorRef, f64)> = tensors
        .iter()
        .map(|t| {
            (
                *t,
                t.stored_bytes() as f64 - t.terms.numel as f64 * main_bits / 8.0,
            )
        })
        .collect();
    excess.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    let shown = 10;
    let explaining: Vec<Value> = excess
        .iter()
        .take(shown)
        .filter(|(_, e)| e.abs() >= 1.0)
        .map(|(t, e)| {
            json!({"tensor": t.name, "encoding": t.encoding.to_string(), "sparse": t.sparse,
                   "shape": t.shape, "bytes": t.stored_bytes(), "excess_bytes": e, "reason": reason(t, main)})
        })
        .collect();
    let rest: f64 = excess.iter().skip(shown).map(|e| e.1).sum();
    let mut by_cause: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for t in &tensors {
        for (cause, bytes) in causes(t, main) {
            let c = by_cause.entry(cause).or_insert((0, 0.0));
            c.0 += 1;
            c.1 += bytes;
        }
    }
    let by_cause: Vec<Value> = by_cause
        .into_iter()
        .map(|(cause, (n, bytes))| json!({"cause": cause, "tensors": n, "excess_bytes": bytes}))
        .collect();
    json!({
        "file_bytes": model.file_len(),
        "weight_bytes": stored,
        "fp32_weight_bytes": fp32,
        "saving_percent": 100.0 * (1.0 - stored as f64 / fp32.max(1) as f64),
        "main_encoding": main.to_string(),
        "ideal_saving_percent": 100.0 * (1.0 - main_bits / 32.0),
        "ideal_weight_bytes": elements as f64 * main_bits / 8.0,
        "per_encoding": per_encoding,
        "excess_by_cause": by_cause,
        "explaining_tensors": explaining,
        "excess_bytes_of_other_tensors": rest,
        "non_weight_bytes": model.file_len().saturating_sub(stored),
        "what_if": what_if(model, &tensors, fp32),
    })
}

pub fn print(r: &Value) -> std::io::Result<()> {
    use crate::fmt::{grouped, outln, Table};
    let u = |k: &str| r[k].as_u64().unwrap_or(0);
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    outln!(
        "weights: {} bytes vs {} in FP32: saving {:.2} % (measured); ideal for {}: {:.2} %",
        grouped(u("weight_bytes")),
        grouped(u("fp32_weight_bytes")),
        f(&r["saving_percent"]),
        r["main_encoding"].as_str().unwrap_or(""),
        f(&r["ideal_saving_percent"])
    )?;
    outln!(
        "file: {} bytes ({} of metadata, tokenizer, tensor table and alignment)",
        grouped(u("file_bytes")),
        grouped(u("non_weight_bytes"))
    )?;
    let mut t = Table::new(
        &[
            "encoding",
            "tensors",
            "elements",
            "bytes",
            "ideal bits/el",
            "ideal saving",
            "measured bits/el",
            "measured saving",
        ],
        &[1, 2, 3, 4, 5, 6, 7],
    );
    for g in r["per_encoding"].as_array().into_iter().flatten() {
        t.row(vec![
            g["encoding"].as_str().unwrap_or("").into(),
            g["tensors"].to_string(),
            grouped(g["elements"].as_u64().unwrap_or(0)),
            grouped(g["bytes"].as_u64().unwrap_or(0)),
            format!("{:.2}", f(&g["ideal_bits_per_element"])),
            format!("{:.1} %", f(&g["ideal_saving_percent"])),
            format!("{:.3}", f(&g["measured_bits_per_element"])),
            format!("{:.2} %", f(&g["measured_saving_percent"])),
        ]);
    }
    outln!("{}", t.render())?;
    outln!(
        "measured {} bytes = ideal {} bytes (every element at {}) + excess:",
        grouped(u("weight_bytes")),
        grouped(f(&r["ideal_weight_bytes"]).round() as u64),
        r["main_encoding"].as_str().unwrap_or("")
    )?;
    let signed = |x: f64| {
        format!(
            "{}{}",
            if x < 0.0 { "-" } else { "+" },
            grouped(x.abs().round() as u64)
        )
    };
    let mut c = Table::new(
        &["cause", "tensors", "excess bytes", "saving points"],
        &[1, 2, 3],
    );
    let fp32 = u("fp32_weight_bytes").max(1) as f64;
    for x in r["excess_by_cause"].as_array().into_iter().flatten() {
        let ex = f(&x["excess_bytes"]);
        c.row(vec![
            x["cause"].as_str().unwrap_or("").into(),
            x["tensors"].to_string(),
            signed(ex),
            format!("{:+.2}", -100.0 * ex / fp32),
        ]);
    }
    outln!("{}", c.render())?;
    outln!("the tensors with the largest excess:")?;
    let mut e = Table::new(&["tensor", "bytes", "excess", "why"], &[1, 2]);
    for x in r["explaining_tensors"].as_array().into_iter().flatten() {
        let ex = f(&x["excess_bytes"]);
        e.row(vec![
            x["tensor"].as_str().unwrap_or("").into(),
            grouped(x["bytes"].as_u64().unwrap_or(0)),
            signed(ex),
            x["reason"].as_str().unwrap_or("").into(),
        ]);
    }
    outln!("{}", e.render())?;
    outln!(
        "all other tensors together: {} bytes",
        signed(f(&r["excess_bytes_of_other_tensors"]))
    )?;
    outln!(
        "\nwhat if: this model's weights at other encodings (format arithmetic: the bytes convert writes, \
         stored dense; vectors and tensors kept in f32 here stay f32), against {} FP32 bytes:",
        grouped(u("fp32_weight_bytes"))
    )?;
    let mut w = Table::new(
        &[
            "encoding",
            "ideal bits/el",
            "ideal saving",
            "weight bytes",
            "weight saving",
            "file bytes",
        ],
        &[1, 2, 3, 4, 5],
    );
    for x in r["what_if"].as_array().into_iter().flatten() {
        w.row(vec![
            x["encoding"].as_str().unwrap_or("").into(),
            format!("{:.2}", f(&x["ideal_bits_per_element"])),
            format!("{:.2} %", f(&x["ideal_saving_percent"])),
            grouped(x["weight_bytes"].as_u64().unwrap_or(0)),
            format!("{:.2} %", f(&x["weight_saving_percent"])),
            grouped(x["file_bytes"].as_u64().unwrap_or(0)),
        ]);
    }
    outln!("{}", w.render())?;
    outln!(
        "this file, measured: {} weight bytes ({:.2} % saving), {} file bytes",
        grouped(u("weight_bytes")),
        f(&r["saving_percent"]),
        grouped(u("file_bytes"))
    )
}
