//! The outputs of `mxrt search`: trials.csv/json, best.toml (a recipe `mxrt convert --recipe` turns into
//! the evaluated model), the sensitivity heat map, the Pareto chart (bytes against metric, every trial, the
//! front joined, FP32 and the uniform points marked), report.md and the terminal summary.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use mxrt_format::write_atomically;
use serde_json::Value;

use super::{points, Search, Trial};
use crate::fmt::{grouped, outln};
use crate::plot::{self, Chart, HeatMap, Series};

fn csv(trials: &[Trial]) -> String {
    let mut out = String::from(
        "trial,phase,label,weight_bytes,metric,drop_points,se_points,feasible,seconds,choice\n",
    );
    for t in trials {
        let _ = writeln!(
            out,
            "{},{},\"{}\",{},{},{},{},{},{:.3},\"{}\"",
            t.id,
            t.phase,
            t.label.replace('"', "\"\""),
            t.weight_bytes,
            t.metric.map_or(String::new(), |m| m.to_string()),
            t.drop_points.map_or(String::new(), |d| format!("{d:.4}")),
            t.se_points.map_or(String::new(), |d| format!("{d:.4}")),
            t.feasible,
            t.seconds,
            t.choice.join(" | ")
        );
    }
    out
}

/// The trials no other trial beats on both bytes (fewer) and metric (higher), in byte order.
fn pareto(trials: &[Trial], scale: f64) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = trials
        .iter()
        .filter_map(|t| t.metric.map(|m| (t.weight_bytes as f64 / scale, points(m))))
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    let mut front: Vec<(f64, f64)> = Vec::new();
    for p in pts {
        if front.last().is_none_or(|l| p.1 > l.1) {
            front.push(p);
        }
    }
    front
}

pub(crate) fn write_all(
    search: &Search,
    out: &Path,
    summary: &Value,
    trials: &[Trial],
    recipe: &str,
    (task, metric): (&str, &str),
) -> Result<()> {
    let put = |name: &str, bytes: &[u8]| -> Result<()> {
        let p = out.join(name);
        write_atomically(&p, |w| w.write_all(bytes))
            .with_context(|| format!("writing {}", p.display()))
    };
    put("trials.csv", csv(trials).as_bytes())?;
    let mut full = summary.clone();
    full["trial_list"] = serde_json::to_value(trials)?;
    put(
        "trials.json",
        serde_json::to_string_pretty(&full)?.as_bytes(),
    )?;
    put("best.toml", recipe.as_bytes())?;
    let model = search
        .a
        .checkpoint
        .file_name()
        .map_or("model".into(), |n| n.to_string_lossy().to_string());
    let unit = if matches!(metric, "accuracy" | "agreement") {
        "%"
    } else {
        "× 100"
    };
    let y_label = format!("{task} {metric} on the search split ({unit})");

    // Sensitivity heat map: drop against FP32 of each group alone at each candidate.
    let card = search.space.cardinalities();
    let cols: Vec<String> = (0..card.len())
        .flat_map(|d| (1..card[d]).map(move |v| (d, v)))
        .map(|(d, v)| search.space.value(d, v))
        .collect();
    let values: Vec<Vec<Option<f64>>> = search
        .groups
        .iter()
        .map(|g| {
            cols.iter()
                .map(|e| {
                    trials
                        .iter()
                        .find(|t| t.phase == "sensitivity" && t.label == format!("{}={e}", g.name))
                        .and_then(|t| t.drop_points)
                })
                .collect()
        })
        .collect();
    let title = format!(
        "{model}: metric drop per group alone (others at the baseline, {})",
        search.space.choice_label(&[0; super::space::DIMS])
    );
    let value_label = format!("points of {metric} lost against FP32, search split");
    if trials.iter().any(|t| t.phase == "sensitivity") {
        plot::write_heatmap(
            &HeatMap {
                title: &title,
                value_label: &value_label,
                rows: search.groups.iter().map(|g| g.name.clone()).collect(),
                cols: cols.clone(),
                values: values.clone(),
            },
            &out.join("sensitivity"),
        )?;
    }

    // Pareto chart, bytes in a unit that suits the model.
    let largest = trials.iter().map(|t| t.weight_bytes).max().unwrap_or(0) as f64;
    let (scale, x_label, decimals) = match largest {
        b if b >= 1e7 => (1e6, "weight bytes (MB)", 1),
        b if b >= 1e4 => (1e3, "weight bytes (kB)", 1),
        _ => (1.0, "weight bytes", 0),
    };
    let cloud = |phase: &str| -> Vec<(f64, f64)> {
        trials
            .iter()
            .filter(|t| t.phase == phase)
            .filter_map(|t| t.metric.map(|m| (t.weight_bytes as f64 / scale, points(m))))
            .collect()
    };
    let reference = points(search.reference_metric);
    let mut uniform: Vec<(String, f64, f64)> = trials
        .iter()
        .filter(|t| matches!(t.phase, "uniform" | "baseline"))
        .filter_map(|t| {
            t.metric.map(|m| {
                (
                    t.label.replace("all ", "uniform "),
                    t.weight_bytes as f64 / scale,
                    points(m),
                )
            })
        })
        .collect();
    uniform.sort_by(|a, b| a.1.total_cmp(&b.1));
    let title = format!("{model}: weight bytes against {metric}, every trial");
    let smallest = trials.iter().map(|t| t.weight_bytes).min().unwrap_or(0) as f64 / scale;
    let floor = reference - search.budget;
    let chart = Chart {
        title: &title,
        x_label,
        y_label: &y_label,
        x_decimals: decimals,
        legend_upper: false,
        series: vec![
            Series {
                label: "sensitivity trials (one group changed)".into(),
                points: cloud("sensitivity"),
                joined: false,
            },
            Series {
                label: format!("{} trials", search.a.strategy),
                points: cloud(match search.a.strategy.as_str() {
                    "tpe" => "tpe",
                    "random" => "random",
                    "grid" => "grid",
                    _ => "greedy",
                }),
                joined: false,
            },
            Series {
                label: "Pareto front".into(),
                points: pareto(trials, scale),
                joined: true,
            },
            match search.a.target_bytes {
                Some(n) => {
                    let ys = trials.iter().filter_map(|t| t.metric.map(points));
                    let (lo, hi) =
                        ys.fold((reference, reference), |(l, h), y| (l.min(y), h.max(y)));
                    Series {
                        label: format!("target: {} weight bytes", grouped(n)),
                        points: vec![(n as f64 / scale, lo), (n as f64 / scale, hi)],
                        joined: true,
                    }
                }
                None => Series {
                    label: format!("budget: FP32 - {:.2} ({floor:.2})", search.budget),
                    points: vec![(smallest, floor), (largest / scale, floor)],
                    joined: true,
                },
            },
        ]
        .into_iter()
        .filter(|s| !s.points.is_empty())
        .collect(),
        labelled_points: uniform,
        labelled_legend: "uniform encodings (the baseline among them)",
        reference: Some((format!("FP32 ({reference:.2})"), reference, None)),
    };
    plot::write(&chart, &out.join("pareto"))?;

    put(
        "report.md",
        report(search, summary, trials, &cols, &values, metric).as_bytes(),
    )
}

fn report(
    search: &Search,
    summary: &Value,
    trials: &[Trial],
    cols: &[String],
    values: &[Vec<Option<f64>>],
    metric: &str,
) -> String {
    let mut s = String::new();
    let f = |v: &Value| {
        v.as_f64()
            .map_or("-".into(), |x| format!("{:.2}", points(x)))
    };
    let _ = writeln!(s, "# mxrt search: {}\n", search.a.checkpoint.display());
    let objective = match search.a.target_bytes {
        Some(n) => format!("the best {metric} with at most {} weight bytes", grouped(n)),
        None => format!(
            "the fewest weight bytes with {metric} at most {:.2} points below FP32",
            search.budget
        ),
    };
    let _ = writeln!(
        s,
        "Objective: {objective} on the search split ({} examples); the result evaluated once on the held-out \
         split ({} examples). Space: `{}` per group ({} groups, `--group {}`), strategy `{}`. \
         {} trials{} in {:.0} s ({} at a time).\n",
        summary["search_split"]["examples"],
        summary["held_out_split"]["examples"],
        search.space.describe(),
        search.groups.len(),
        search.a.group,
        search.a.strategy,
        trials.len(),
        match summary["resumed_trials"].as_u64() {
            Some(n) if n > 0 => format!(" ({n} measured by an earlier run, `--resume`)"),
            _ => String::new(),
        },
        summary["seconds"].as_f64().unwrap_or(0.0),
        summary["jobs"]
    );
    let h = &summary["held_out_split"];
    let _ = writeln!(
        s,
        "| model | weight bytes | {metric}, search split | {metric}, held-out split |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|");
    let _ = writeln!(
        s,
        "| FP32 | - | {} | {} |",
        f(&summary["search_split"]["fp32"]),
        f(&h["fp32"])
    );
    let _ = writeln!(
        s,
        "| baseline (all {}) | {} | {} | {} |",
        search.space.choice_label(&[0; super::space::DIMS]),
        grouped(summary["baseline"]["weight_bytes"].as_u64().unwrap_or(0)),
        f(&summary["baseline"]["search_metric"]),
        f(&h["baseline"])
    );
    match summary["best"].as_object() {
        Some(b) => {
            let _ = writeln!(
                s,
                "| **best** (trial {}, `best.toml`) | {} | {} | {} |\n\nHeld-out drop of the best recipe against FP32: {} (n = {}).\n",
                b["trial"],
                grouped(b["weight_bytes"].as_u64().unwrap_or(0)),
                f(&b["search_metric"]),
                f(&b["held_out_metric"]),
                held_drop(summary),
                h["examples"]
            );
        }
        None => {
            let _ = writeln!(s, "\nNo trial met the budget on the search split.\n");
        }
    }
    let _ = writeln!(s, "![Pareto chart](pareto.png)\n");
    if !trials.iter().any(|t| t.phase == "sensitivity") {
        return s;
    }
    let _ = writeln!(
        s,
        "## Sensitivity (points lost against FP32, one group at a time)\n"
    );
    let _ = writeln!(s, "| group | {} |", cols.join(" | "));
    let _ = writeln!(
        s,
        "|---|{}|",
        cols.iter().map(|_| "---:").collect::<Vec<_>>().join("|")
    );
    for (g, row) in search.groups.iter().zip(values) {
        let cells: Vec<String> = row
            .iter()
            .map(|v| v.map_or("-".into(), |v| format!("{v:+.2}")))
            .collect();
        let _ = writeln!(s, "| {} | {} |", g.name, cells.join(" | "));
    }
    let _ = writeln!(s, "\n![Sensitivity heat map](sensitivity.png)");
    s
}

/// The held-out drop of the best recipe against FP32 in points, with its 95 % interval where the paired
/// standard error is known.
fn held_drop(summary: &Value) -> String {
    let h = &summary["held_out_split"];
    match (h["fp32"].as_f64(), h["best"].as_f64()) {
        (Some(r), Some(b)) => {
            let d = points(r) - points(b);
            match h["best_se_points"].as_f64() {
                Some(se) => format!(
                    "{d:.2} pt, 95 % interval {:.2} to {:.2}",
                    d - 1.96 * se,
                    d + 1.96 * se
                ),
                None => format!("{d:.2} pt"),
            }
        }
        _ => "-".into(),
    }
}

pub(crate) fn print_summary(summary: &Value) -> std::io::Result<()> {
    let f = |v: &Value| {
        v.as_f64()
            .map_or("-".into(), |x| format!("{:.2}", points(x)))
    };
    let h = &summary["held_out_split"];
    outln!(
        "FP32 {}: search split {}, held-out {}",
        summary["metric"].as_str().unwrap_or(""),
        f(&summary["search_split"]["fp32"]),
        f(&h["fp32"])
    )?;
    outln!(
        "baseline: {} weight bytes, search {}, held-out {}",
        grouped(summary["baseline"]["weight_bytes"].as_u64().unwrap_or(0)),
        f(&summary["baseline"]["search_metric"]),
        f(&h["baseline"])
    )?;
    match summary["best"].as_object() {
        Some(b) => outln!(
            "best: {} weight bytes, search {} (drop {:.2} pt), held-out {} (drop {}, n = {}); recipe in best.toml",
            grouped(b["weight_bytes"].as_u64().unwrap_or(0)),
            f(&b["search_metric"]),
            b["drop_points"].as_f64().unwrap_or(0.0),
            f(&b["held_out_metric"]),
            held_drop(summary),
            h["examples"]
        ),
        None => outln!("no trial met the budget on the search split"),
    }
}
