//! `mxrt sweep` and `mxrt eval --memory-only` on a synthetic MLP checkpoint and a tiny labelled data set
//! (self-contained: no ../shared).

mod common;

use std::path::Path;

use common::labelled_mlp::write_mlp;
use common::{assert_mentions, mxrt_err, mxrt_ok};
use serde_json::Value;

fn sweep(dir: &Path, out: &Path, extra: &[&str]) -> Value {
    let model = dir.to_str().unwrap();
    let data = dir.join("data.csv");
    let mut args = vec![
        "sweep",
        model,
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    serde_json::from_str(&mxrt_ok(&args)).unwrap()
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

fn check_plot(stem: &Path, title_words: &[&str]) {
    let png = std::fs::read(stem.with_extension("png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{}", stem.display());
    // A 900x560 chart with axes, text and curves compresses to far more than an empty canvas (~3 KB).
    assert!(
        png.len() > 15_000,
        "{} is only {} bytes",
        stem.display(),
        png.len()
    );
    let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{}", stem.display());
    for w in title_words {
        assert!(svg.contains(w), "{} lacks {w:?}", stem.display());
    }
    assert!(svg.matches("<polyline").count() + svg.matches("<circle").count() >= 3);
}

#[test]
fn fixed_width_sweep_rows_csv_report_and_plots() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, out) = (tmp.path().join("mlp"), tmp.path().join("out"));
    write_mlp(&dir);
    let r = sweep(
        &dir,
        &out,
        &["--vary", "fixed-width=2..12:2", "--frac", "auto"],
    );
    let points = r["points"].as_array().unwrap();
    assert_eq!(points.len(), 6);
    assert_eq!(r["task"], "jsc");
    assert_eq!(r["metric"], "accuracy");
    assert_eq!(r["examples"], 300);
    let reference = r["reference"]["metric"].as_f64().unwrap();
    assert!(
        reference > 0.75,
        "FP32 accuracy {reference}: four labels in five are its own predictions"
    );
    // With the RMSE-minimising F per layer, one more bit never loses SQNR. Widths up to 8 are bit-packed,
    // wider codes sit in 16-bit containers (FORMAT.md 5.3): 2368 weights.
    let sqnr: Vec<f64> = points.iter().map(|p| f(p, "weight_sqnr_db")).collect();
    assert!(sqnr.windows(2).all(|w| w[1] > w[0] + 5.0), "{sqnr:?}");
    let bytes: Vec<u64> = points
        .iter()
        .map(|p| p["weight_bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(bytes, [592, 1184, 1776, 2368, 4736, 4736]);
    for p in points {
        assert!(p["frac"].as_str().unwrap().starts_with("auto ("));
        assert_eq!(p["reference_metric"].as_f64(), Some(reference));
    }
    // At 12 bits the weights are within 2^-11 relative of FP32: every prediction agrees.
    assert_eq!(f(&points[5], "agreement"), 1.0);
    assert!(
        f(&points[0], "agreement") < 1.0,
        "2-bit weights cannot be exact"
    );

    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 7);
    let header: Vec<&str> = lines[0].split(',').collect();
    for col in [
        "width",
        "frac",
        "metric",
        "agreement",
        "weight_bytes",
        "saving_percent",
        "weight_sqnr_db",
    ] {
        assert!(header.contains(&col), "{col} missing from {header:?}");
    }
    let width_col = header.iter().position(|c| *c == "width").unwrap();
    let widths: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(width_col).unwrap())
        .collect();
    assert_eq!(widths, ["2", "4", "6", "8", "10", "12"]);
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["points"], r["points"]);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("fixed-width 12") && report.contains("metric-vs-width.png"));
    check_plot(
        &out.join("metric-vs-width"),
        &[
            "fixed-point width",
            "(weights)",
            "W 10–12 stored in 16 bits",
            "accuracy",
            "FP32",
        ],
    );
    assert!(report.contains("| bits/weight |"), "{report}");
    assert!(report.contains("| fixed-width 10 | auto"), "{report}");
}

/// The faults found trying sweeps: one fixed width drew a degenerate width chart, `--activations same`
/// charts said "(weights)", synthetic sweeps printed `agreement` twice, more than six series reused colours.
#[test]
fn sweep_charts_and_tables_say_what_was_varied_and_quantized() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, out) = (tmp.path().join("mlp"), tmp.path().join("out"));
    write_mlp(&dir);
    let r = sweep(
        &dir,
        &out,
        &[
            "--vary",
            "fixed-width=8",
            "--vary",
            "sparsity=0..0.6:0.2",
            "--prune",
            "l1,random",
            "--scope",
            "local,global",
            "--activations",
            "same",
        ],
    );
    assert_eq!(r["points"].as_array().unwrap().len(), 16);
    assert!(
        !out.join("metric-vs-width.png").exists(),
        "one width: no width chart"
    );
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("fixed-width took one value (8): no chart of it"),
        "{report}"
    );
    // Four series (two methods x two scopes) on the sparsity chart, each labelled with the one width.
    let svg = std::fs::read_to_string(out.join("metric-vs-sparsity.svg")).unwrap();
    for series in [
        "fixed-width 8, l1 (local)",
        "fixed-width 8, random (global)",
    ] {
        assert!(svg.contains(series), "{series} missing");
    }

    let out2 = tmp.path().join("out2");
    let r = sweep(
        &dir,
        &out2,
        &["--vary", "encoding=mxint8,mxint4", "--activations", "same"],
    );
    assert_eq!(r["points"].as_array().unwrap().len(), 2);
    check_plot(
        &out2.join("metric-vs-bytes"),
        &["(weights and activations)"],
    );

    // Synthetic rows: the metric is agreement, printed once.
    let model = dir.to_str().unwrap();
    let out3 = tmp.path().join("out3");
    let table = mxrt_ok(&[
        "sweep",
        model,
        "--synthetic",
        "64",
        "--vary",
        "fixed-width=4,12",
        "--out",
        out3.to_str().unwrap(),
    ]);
    let header = table
        .lines()
        .find(|l| l.trim_start().starts_with("point"))
        .unwrap_or_else(|| panic!("no table header in {table}"));
    assert_eq!(header.matches("agreement").count(), 1, "{header}");
    assert!(header.contains("bits/weight"), "{header}");
    let twelve = table
        .lines()
        .find(|l| l.contains("fixed-width 12"))
        .unwrap();
    assert!(twelve.split_whitespace().any(|c| c == "16"), "{twelve}");
}

#[test]
fn sparsity_zero_is_the_unpruned_model_and_l1_loses_less_signal_than_random() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, out) = (tmp.path().join("mlp"), tmp.path().join("out"));
    write_mlp(&dir);
    let r = sweep(
        &dir,
        &out,
        &[
            "--vary",
            "sparsity=0..0.8:0.2",
            "--prune",
            "l1,random",
            "--scope",
            "local",
        ],
    );
    let points = r["points"].as_array().unwrap();
    assert_eq!(points.len(), 10);
    let reference = r["reference"]["metric"].as_f64().unwrap();
    for method in ["l1", "random"] {
        let rows: Vec<&Value> = points.iter().filter(|p| p["prune"] == method).collect();
        assert_eq!(rows.len(), 5);
        assert_eq!(f(rows[0], "sparsity"), 0.0);
        assert_eq!(
            f(rows[0], "metric"),
            reference,
            "sparsity 0 must be the unpruned model"
        );
        assert_eq!(f(rows[0], "agreement"), 1.0);
        assert!(
            rows[0]["weight_sqnr_db"].is_null(),
            "nothing pruned, f32 weights: exact"
        );
        let sqnr: Vec<f64> = rows[1..].iter().map(|p| f(p, "weight_sqnr_db")).collect();
        assert!(sqnr.windows(2).all(|w| w[1] < w[0]), "{method}: {sqnr:?}");
    }
    // l1 removes the smallest weights, so it keeps more signal than random at every sparsity.
    for s in [0.2, 0.4, 0.6, 0.8] {
        let at = |m: &str| {
            points
                .iter()
                .find(|p| p["prune"] == m && (f(p, "sparsity") - s).abs() < 1e-9)
                .map(|p| f(p, "weight_sqnr_db"))
                .unwrap()
        };
        // Uniform weights: l1 keeps 1 - s^3 of the energy, random 1 - s (at s = 0.8: 2.9 dB against 1.0 dB).
        assert!(at("l1") > at("random") + 1.5, "sparsity {s}");
    }
    check_plot(
        &out.join("metric-vs-sparsity"),
        &["sparsity", "l1 (local)", "random (local)"],
    );
}

#[test]
fn encoding_sweep_matches_convert_and_eval_of_the_kept_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, out) = (tmp.path().join("mlp"), tmp.path().join("out"));
    write_mlp(&dir);
    let r = sweep(
        &dir,
        &out,
        &[
            "--vary",
            "encoding=f32,mxint8,mxfp4",
            "--activations",
            "same",
            "--keep",
            "--jobs",
            "2",
        ],
    );
    let points = r["points"].as_array().unwrap();
    assert_eq!(points.len(), 3);
    assert_eq!(
        f(&points[0], "metric"),
        r["reference"]["metric"].as_f64().unwrap()
    );
    assert_eq!(points[1]["activations"], "mxint8");
    assert_eq!(points[2]["activations"], "mxfp4");
    // mxint8 stores 8.25 bits per weight: rows of 32 and 64 are whole blocks, so exactly 74.22 % saving.
    assert!((f(&points[1], "saving_percent") - 100.0 * (1.0 - 8.25 / 32.0)).abs() < 1e-9);
    // The in-memory point equals converting and evaluating the kept file.
    for (i, p) in points.iter().enumerate() {
        let kept = out.join("models").join(format!("point-{i:03}.mxrt"));
        let data = dir.join("data.csv");
        let e: Value = serde_json::from_str(&mxrt_ok(&[
            "eval",
            kept.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--reference",
            dir.to_str().unwrap(),
            "--json",
        ]))
        .unwrap();
        assert_eq!(e["accuracy"].as_f64(), p["metric"].as_f64(), "point {i}");
        assert_eq!(
            e["agreement"].as_f64(),
            p["agreement"].as_f64(),
            "point {i}"
        );
        // The sweep counts weight matrices; eval counts every numeric tensor (plus the 69 f32 biases).
        assert_eq!(
            e["memory"]["weight_bytes"].as_u64().unwrap(),
            p["weight_bytes"].as_u64().unwrap() + 4 * 69,
            "point {i}"
        );
    }
    check_plot(
        &out.join("metric-vs-bytes"),
        &["weight bytes", "mxint8", "FP32"],
    );
}

#[test]
fn sweep_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, out) = (tmp.path().join("mlp"), tmp.path().join("out"));
    write_mlp(&dir);
    let (m, o) = (dir.to_str().unwrap(), out.to_str().unwrap());
    let data = dir.join("data.csv");
    let d = data.to_str().unwrap();
    for (vary, needles) in [
        ("width=40", &["fixed-width", "40", "2..=32"][..]),
        ("sparsity=0.5..1.0:0.25", &["sparsity", "outside [0, 1)"]),
        ("encoding=mxint9", &["encoding", "mxint9"]),
        ("depth=3", &["unknown key", "depth"]),
        ("fixed-width", &["KEY=VALUES"]),
        ("fixed-width=8..4", &["start <= end"]),
    ] {
        let err = mxrt_err(&["sweep", m, "--data", d, "--out", o, "--vary", vary]);
        assert_mentions(&err, needles);
    }
    let err = mxrt_err(&[
        "sweep",
        m,
        "--data",
        d,
        "--out",
        o,
        "--vary",
        "sparsity=0.5",
        "--prune",
        "magnitude",
    ]);
    assert_mentions(&err, &["--prune", "magnitude"]);
    let err = mxrt_err(&[
        "sweep",
        m,
        "--data",
        d,
        "--out",
        o,
        "--vary",
        "encoding=f32",
        "--vary",
        "encoding=mxint8",
    ]);
    assert_mentions(&err, &["each key at most once"]);
    let missing = tmp.path().join("nope");
    let err = mxrt_err(&[
        "sweep",
        missing.to_str().unwrap(),
        "--data",
        d,
        "--out",
        o,
        "--vary",
        "encoding=f32",
    ]);
    assert_mentions(&err, &["nope"]);
    assert!(!out.exists(), "a failed sweep leaves no output directory");

    // A failure after the outputs are staged (the data is read after the checkpoint) leaves neither the
    // output directory nor the staging directory; a complete sweep leaves only the output directory.
    let bad = tmp.path().join("bad.csv");
    std::fs::write(&bad, "1,2,3\n4,5,6\n").unwrap();
    let err = mxrt_err(&[
        "sweep",
        m,
        "--data",
        bad.to_str().unwrap(),
        "--out",
        o,
        "--vary",
        "encoding=f32",
    ]);
    assert_mentions(&err, &["bad.csv", "rows of 3 values"]);
    let names = || -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(), ["bad.csv", "mlp"]);
    sweep(&dir, &out, &["--vary", "encoding=f32,mxint8", "--keep"]);
    assert_eq!(names(), ["bad.csv", "mlp", "out"]);
    assert!(out.join("results.csv").is_file() && out.join("models").is_dir());
    // Into an existing directory: files replaced in place, nothing staged left behind.
    sweep(&dir, &out, &["--vary", "encoding=f32"]);
    assert_eq!(names(), ["bad.csv", "mlp", "out"]);
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
}

#[test]
fn memory_only_explains_the_gap_to_the_ideal_saving() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mlp");
    write_mlp(&dir);
    let file = tmp.path().join("m.mxrt");
    common::convert_quiet(&dir, &file, &["--weights", "mxint8"]);
    let r: Value = serde_json::from_str(&mxrt_ok(&[
        "eval",
        "--memory-only",
        file.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(r["main_encoding"], "mxint8");
    assert!((f(&r, "ideal_saving_percent") - 74.21875).abs() < 1e-9);
    // Weights 64x32 + 5x64 = 2368 codes and 74 scales; biases 69 f32.
    assert_eq!(r["weight_bytes"].as_u64(), Some(2368 + 74 + 4 * 69));
    assert_eq!(r["fp32_weight_bytes"].as_u64(), Some(4 * (2368 + 69)));
    // The excess by cause adds up exactly to measured minus ideal.
    let excess: f64 = r["excess_by_cause"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| f(c, "excess_bytes"))
        .sum();
    assert!((f(&r, "ideal_weight_bytes") + excess - f(&r, "weight_bytes")).abs() < 1e-6);
    let causes: Vec<&str> = r["excess_by_cause"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cause"].as_str().unwrap())
        .collect();
    assert_eq!(causes, ["tensors stored as f32 instead of mxint8"]);
    // 69 f32 elements instead of 8.25 bits: 69 * (32 - 8.25) / 8 bytes.
    assert!((excess - 69.0 * 23.75 / 8.0).abs() < 1e-9);
    // What if: the two matrices at each encoding, the 69 biases still f32 (276 bytes). mxint4/mxfp4:
    // 74 blocks of 16 + 1 bytes; fixed 8: a byte a code; fixed 4: codes packed two to a byte.
    let what_if: Vec<(&str, u64)> = r["what_if"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["encoding"].as_str().unwrap(),
                w["weight_bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        what_if,
        [
            ("mxint8", 2368 + 74 + 276),
            ("mxint4", 74 * 17 + 276),
            ("mxfp4", 74 * 17 + 276),
            ("fixed 8 (any F)", 2368 + 276),
            ("fixed 4 (any F)", 2368 / 2 + 276),
        ]
    );
    let mxint8 = &r["what_if"][0];
    assert_eq!(
        mxint8["weight_bytes"], r["weight_bytes"],
        "the file's own encoding is what was measured"
    );
    assert_eq!(mxint8["file_bytes"], r["file_bytes"]);
    assert!(
        (f(&r["what_if"][1], "ideal_saving_percent") - 100.0 * (1.0 - 4.25 / 32.0)).abs() < 1e-9
    );
    let text = mxrt_ok(&["eval", "--memory-only", file.to_str().unwrap()]);
    assert_mentions(
        &text,
        &[
            "ideal for mxint8: 74.22 %",
            "fc1.bias",
            "stored as f32",
            "what if",
            "fixed 4 (any F)",
            "86.72 %",
        ],
    );
}
