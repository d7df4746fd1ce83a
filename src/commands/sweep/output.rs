//! The outputs of `mxrt sweep`: results.csv, report.md, the charts (one per varied axis) and the terminal
//! table. (results.json is the summary the sweep builds.)

use std::fmt::Write as _;

use anyhow::{Context, Result};
use mxrt_format::write_atomically;
use serde_json::Value;

use mxrt_format::encoding::fixed_container_bits;

use super::{Args, Axis, Row};
use crate::fmt::{grouped, outln, Table};
use crate::plot::{self, Chart, Series};

pub(crate) fn fmt_metric(v: Option<f64>, name: &str) -> String {
    match v {
        Some(x) if name == "accuracy" || name == "agreement" => format!("{:.2} %", 100.0 * x),
        Some(x) => format!("{x:.4}"),
        None => "-".into(),
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or(String::new(), T::to_string)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv(rows: &[Row]) -> String {
    let mut out = String::from("point,label,width,frac,sparsity,prune,scope,encoding,activations,task,metric_name,metric,reference_metric,agreement,mean_embedding_cosine_to_reference,kl,max_abs_logit_diff,weight_bytes,fp32_weight_bytes,file_bytes,saving_percent,weight_sqnr_db,seconds\n");
    for r in rows {
        let fields = [
            r.point.to_string(),
            r.label.clone(),
            opt(&r.width),
            opt(&r.frac),
            opt(&r.sparsity),
            opt(&r.prune),
            opt(&r.scope),
            opt(&r.encoding),
            r.activations.clone(),
            r.task.clone(),
            r.metric_name.clone(),
            opt(&r.metric),
            opt(&r.reference_metric),
            opt(&r.agreement),
            opt(&r.mean_embedding_cosine_to_reference),
            opt(&r.kl),
            opt(&r.max_abs_logit_diff),
            r.weight_bytes.to_string(),
            r.fp32_weight_bytes.to_string(),
            r.file_bytes.to_string(),
            format!("{:.4}", r.saving_percent),
            opt(&r.weight_sqnr_db.map(|s| format!("{s:.3}"))),
            format!("{:.3}", r.seconds),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// The label of the settings of `row` other than `axis` (a chart's series key).
fn other_settings(row: &Row, axis: Axis) -> String {
    let mut parts = Vec::new();
    if axis != Axis::Width {
        if let Some(w) = row.width {
            parts.push(format!("fixed-width {w}"));
        }
    }
    if axis != Axis::Sparsity {
        if let (Some(s), Some(m), Some(sc)) = (row.sparsity, &row.prune, &row.scope) {
            parts.push(format!("{m} {sc} {:.0} %", 100.0 * s));
        }
    } else if let (Some(m), Some(sc)) = (&row.prune, &row.scope) {
        parts.push(format!("{m} ({sc})"));
    }
    if axis != Axis::Encoding {
        if let Some(e) = &row.encoding {
            parts.push(e.clone());
        }
    }
    parts.join(", ")
}

fn metric_axis_label(task: &str, metric: &str) -> String {
    match (task, metric) {
        ("sst2", _) => "SST-2 accuracy (%)".into(),
        ("pairs", "accuracy") => "sentence-pair accuracy (%)".into(),
        ("jsc", "accuracy") => "accuracy (%)".into(),
        (_, "agreement") => "top-1 agreement with FP32 (%)".into(),
        (_, "spearman") => "STS-B Spearman correlation".into(),
        _ => "mean embedding cosine to FP32".into(),
    }
}

fn scaled(metric: &str, v: f64) -> f64 {
    if matches!(metric, "accuracy" | "agreement") {
        100.0 * v
    } else {
        v
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn write_outputs(
    a: &Args,
    out: &std::path::Path,
    summary: &Value,
    rows: &[Row],
    kinds: &[Axis],
    (task, metric): (&str, &str),
    reference_metric: Option<f64>,
    fp32_bytes: u64,
) -> Result<()> {
    let put = |name: &str, bytes: &[u8]| -> Result<()> {
        let p = out.join(name);
        write_atomically(&p, |w| w.write_all(bytes))
            .with_context(|| format!("writing {}", p.display()))
    };
    put("results.csv", csv(rows).as_bytes())?;
    put(
        "results.json",
        serde_json::to_string_pretty(summary)?.as_bytes(),
    )?;
    let y_label = metric_axis_label(task, metric);
    let model_name = a
        .checkpoint
        .file_name()
        .map_or("model".into(), |n| n.to_string_lossy().to_string());
    let reference = reference_metric.map(|v| {
        (
            format!("FP32 ({})", fmt_metric(Some(v), metric)),
            scaled(metric, v),
        )
    });
    let quantized = quantized_what(&a.activations);
    let mut charts = Vec::new();
    let mut not_charted = Vec::new();
    for &axis in kinds {
        // An axis that took one value draws every point at one x: no chart, the value is in the others' legends.
        if let Some(only) = single_value(rows, axis) {
            not_charted.push(format!(
                "{} took one value ({only}): no chart of it",
                axis_name(axis)
            ));
            continue;
        }
        let (stem, title, x_label) = match axis {
            Axis::Width => (
                "metric-vs-width",
                format!("{model_name}: {y_label} vs fixed-point width ({quantized})"),
                width_axis_label(rows),
            ),
            Axis::Sparsity => (
                "metric-vs-sparsity",
                format!("{model_name}: {y_label} vs weight sparsity"),
                "sparsity of the pruned layers (%)".to_string(),
            ),
            Axis::Encoding => (
                "metric-vs-bytes",
                format!("{model_name}: {y_label} vs weight bytes ({quantized})"),
                "weight bytes (MB)".to_string(),
            ),
        };
        let mut chart = Chart {
            title: &title,
            x_label: &x_label,
            y_label: &y_label,
            x_decimals: if axis == Axis::Encoding { 1 } else { 0 },
            legend_upper: axis == Axis::Sparsity,
            series: Vec::new(),
            labelled_points: Vec::new(),
            labelled_legend: "quantized weights",
            reference: reference.clone().map(|(l, v)| (l, v, None)),
        };
        let mut keys: Vec<String> = Vec::new();
        for r in rows {
            let Some(m) = r.metric else { continue };
            let y = scaled(metric, m);
            match axis {
                Axis::Encoding => {
                    let name = match other_settings(r, axis) {
                        o if o.is_empty() => r.encoding.clone().unwrap_or_default(),
                        o => format!("{} ({o})", r.encoding.clone().unwrap_or_default()),
                    };
                    let x = r.weight_bytes as f64 / 1e6;
                    // Encodings that land on the same spot (mxint8 and mxfp8 both store 8.25 bits) share a label.
                    let same = chart
                        .labelled_points
                        .iter_mut()
                        .find(|p| (p.1 - x).abs() <= 0.005 * x.max(1e-9) && (p.2 - y).abs() < 1e-9);
                    match same {
                        Some(p) => p.0 = format!("{}, {name}", p.0),
                        None => chart.labelled_points.push((name, x, y)),
                    }
                }
                _ => {
                    let x = match axis {
                        Axis::Width => f64::from(r.width.unwrap_or(0)),
                        _ => 100.0 * r.sparsity.unwrap_or(0.0),
                    };
                    let key = other_settings(r, axis);
                    let i = match keys.iter().position(|k| *k == key) {
                        Some(i) => i,
                        None => {
                            keys.push(key.clone());
                            chart.series.push(Series {
                                label: match (key.is_empty(), axis) {
                                    (true, Axis::Width) => {
                                        format!("fixed-point {quantized}, F: {}", a.frac)
                                    }
                                    (true, _) => "pruned".into(),
                                    (false, _) => key,
                                },
                                points: Vec::new(),
                                joined: true,
                            });
                            keys.len() - 1
                        }
                    };
                    chart.series[i].points.push((x, y));
                }
            }
        }
        for s in &mut chart.series {
            s.points.sort_by(|p, q| p.0.total_cmp(&q.0));
        }
        if axis == Axis::Encoding {
            if let Some((l, v)) = &reference {
                chart.reference = Some((l.clone(), *v, Some(fp32_bytes as f64 / 1e6)));
            }
        }
        if chart.series.is_empty() && chart.labelled_points.is_empty() {
            continue;
        }
        plot::write(&chart, &out.join(stem))?;
        charts.push((stem, title));
    }
    put(
        "report.md",
        report_md(
            a,
            summary,
            rows,
            &charts,
            &not_charted,
            metric,
            reference_metric,
        )
        .as_bytes(),
    )
}

/// What the points quantize, for chart titles: the weights alone, or the activations too.
fn quantized_what(activations: &str) -> String {
    match activations {
        "f32" => "weights".into(),
        "same" => "weights and activations".into(),
        other => format!("weights; activations {other}"),
    }
}

fn axis_name(axis: Axis) -> &'static str {
    match axis {
        Axis::Width => "fixed-width",
        Axis::Sparsity => "sparsity",
        Axis::Encoding => "encoding",
    }
}

/// The one value `axis` took over the rows (fixed widths and sparsities only: one encoding is still a
/// point against FP32 on the bytes chart), or None when it took several.
fn single_value(rows: &[Row], axis: Axis) -> Option<String> {
    let mut values: Vec<String> = rows
        .iter()
        .filter_map(|r| match axis {
            Axis::Width => r.width.map(|w| w.to_string()),
            Axis::Sparsity => r.sparsity.map(|s| format!("{:.0} %", 100.0 * s)),
            Axis::Encoding => None,
        })
        .collect();
    values.sort();
    values.dedup();
    (values.len() == 1).then(|| values.remove(0))
}

/// The width chart's x label: widths whose codes are stored in a wider container say so (9–15 cost 16 bits,
/// 17–31 cost 32), so a flat saving between 9 and 16 is not a mystery.
fn width_axis_label(rows: &[Row]) -> String {
    let mut padded: Vec<(u8, u32)> = rows
        .iter()
        .filter_map(|r| r.width)
        .map(|w| (w, fixed_container_bits(w)))
        .filter(|&(w, bits)| u32::from(w) != bits)
        .collect();
    padded.sort();
    padded.dedup();
    let mut by_container: Vec<String> = Vec::new();
    for bits in [16, 32] {
        let widths: Vec<u8> = padded.iter().filter(|p| p.1 == bits).map(|p| p.0).collect();
        if let (Some(lo), Some(hi)) = (widths.first(), widths.last()) {
            let range = if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}–{hi}")
            };
            by_container.push(format!("W {range} stored in {bits} bits"));
        }
    }
    match by_container.is_empty() {
        true => "fixed-point width W (bits)".into(),
        false => format!("fixed-point width W (bits; {})", by_container.join(", ")),
    }
}

/// Bits each weight costs at a fixed width (its container), or "" for other points.
fn stored_bits(r: &Row) -> String {
    r.width
        .map_or(String::new(), |w| fixed_container_bits(w).to_string())
}

fn report_md(
    a: &Args,
    summary: &Value,
    rows: &[Row],
    charts: &[(&str, String)],
    not_charted: &[String],
    metric: &str,
    reference_metric: Option<f64>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# mxrt sweep: {}\n", a.checkpoint.display());
    let _ = writeln!(
        s,
        "Data: `{}` ({} examples, task {}). FP32 reference {}: {}. Varied: `{}`; fraction width `{}`; activations `{}`; rounding {}. {} points in {:.1} s ({} at a time).\n",
        summary["data"].as_str().unwrap_or("synthetic"),
        summary["examples"],
        summary["task"].as_str().unwrap_or(""),
        metric,
        fmt_metric(reference_metric, metric),
        a.vary.join("`, `"),
        a.frac,
        a.activations,
        summary["rounding"].as_str().unwrap_or(""),
        rows.len(),
        summary["seconds"].as_f64().unwrap_or(0.0),
        summary["jobs"],
    );
    let columns = Columns::of(rows, metric);
    let header = columns.header(metric);
    let _ = writeln!(s, "| {} |", header.join(" | "));
    let align: Vec<&str> = header
        .iter()
        .enumerate()
        .map(|(i, _)| if i < 2 { "---" } else { "---:" })
        .collect();
    let _ = writeln!(s, "|{}|", align.join("|"));
    for r in rows {
        let _ = writeln!(s, "| {} |", columns.cells(r, metric).join(" | "));
    }
    for line in not_charted {
        let _ = writeln!(s, "\n{line}.");
    }
    for (stem, title) in charts {
        let _ = writeln!(
            s,
            "\n## {title}\n\n![{title}]({stem}.png)\n\n(SVG: [{stem}.svg]({stem}.svg))"
        );
    }
    s
}

/// The columns of the table (terminal and report): agreement only where the metric is not agreement
/// itself (synthetic data), stored bits only where a point has a fixed width.
struct Columns {
    agreement: bool,
    stored_bits: bool,
}

impl Columns {
    fn of(rows: &[Row], metric: &str) -> Columns {
        Columns {
            agreement: metric != "agreement",
            stored_bits: rows.iter().any(|r| r.width.is_some()),
        }
    }

    fn header(&self, metric: &str) -> Vec<String> {
        let mut h = vec!["point".to_string(), "frac".into(), metric.into()];
        if self.agreement {
            h.push("agreement with FP32".into());
        }
        if self.stored_bits {
            h.push("bits/weight".into());
        }
        h.extend(["weight bytes", "saving vs FP32", "weight SQNR (dB)"].map(String::from));
        h
    }

    fn cells(&self, r: &Row, metric: &str) -> Vec<String> {
        let mut c = vec![r.label.clone(), opt(&r.frac), fmt_metric(r.metric, metric)];
        if self.agreement {
            c.push(fmt_metric(r.agreement, "agreement"));
        }
        if self.stored_bits {
            c.push(stored_bits(r));
        }
        c.push(grouped(r.weight_bytes));
        c.push(format!("{:.1} %", r.saving_percent));
        c.push(
            r.weight_sqnr_db
                .map_or("exact".into(), |v| format!("{v:.1}")),
        );
        c
    }
}

pub(crate) fn print_table(
    rows: &[Row],
    metric: &str,
    reference_metric: Option<f64>,
) -> std::io::Result<()> {
    outln!(
        "FP32 reference {metric}: {}",
        fmt_metric(reference_metric, metric)
    )?;
    let columns = Columns::of(rows, metric);
    let mut header = columns.header(metric);
    header.push("s".into());
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let right: Vec<usize> = (2..header.len()).collect();
    let mut t = Table::new(&header, &right);
    for r in rows {
        let mut cells = columns.cells(r, metric);
        cells.push(format!("{:.1}", r.seconds));
        t.row(cells);
    }
    outln!("{}", t.render())
}
