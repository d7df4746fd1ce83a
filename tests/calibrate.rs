//! `mxrt convert --calibrate`: fixed-point fraction widths chosen from data, recorded in the file, and the
//! errors. The small MLP is self-contained; the SST-2 check reads ../shared.

mod common;

use std::path::Path;

use common::labelled_mlp::{values, write_mlp};
use common::{assert_mentions, mxrt_err, mxrt_ok, shared};
use serde_json::Value;

fn metadata(file: &Path) -> Value {
    let r: Value =
        serde_json::from_str(&mxrt_ok(&["inspect", file.to_str().unwrap(), "--json"])).unwrap();
    r["metadata"].clone()
}

/// A temporary directory with the labelled MLP in `mlp/`: (the directory, the MLP, its data.csv).
fn mlp_fixture() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mlp");
    write_mlp(&dir);
    let data = dir.join("data.csv");
    (tmp, dir, data)
}

/// The per-layer recipe a file stores for `layer` (what it computes with).
fn stored_layer<'a>(recipe: &'a Value, layer: &str) -> &'a Value {
    recipe["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == layer)
        .unwrap_or_else(|| panic!("no stored recipe for {layer}"))
}

/// The largest F at which `max` fits in an 8-bit code (127 · 2^-F ≥ max), for max one ulp either way (the
/// runtime's sums may round differently from this test's).
fn fitting(max: f32) -> [String; 2] {
    [1.0 + 1e-6, 1.0 - 1e-6].map(|k| {
        let f = (127.0 / (f64::from(max) * k))
            .log2()
            .floor()
            .clamp(0.0, 64.0);
        format!("fixed:8.{f}")
    })
}

/// `mxrt convert` of the MLP in `dir` to `out` at fixed:8.4 weights and activations, calibrated on its
/// data.csv (first 200 rows) with `method`; what it printed.
fn convert_calibrated(dir: &Path, out: &Path, method: &str) -> String {
    convert_with(
        dir,
        out,
        ["fixed:8.4", "fixed:8.4", "200"],
        &["--calib-method", method],
    )
}

/// `mxrt convert` of the MLP in `dir` to `out` at `[weights, activations]` encodings, calibrated on the first
/// `samples` rows of its data.csv, with `extra` options; what it printed.
fn convert_with(
    dir: &Path,
    out: &Path,
    [weights, activations, samples]: [&str; 3],
    extra: &[&str],
) -> String {
    let data = dir.join("data.csv");
    let mut args = vec![
        "convert",
        dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--weights",
        weights,
        "--activations",
        activations,
        "--calibrate",
        data.to_str().unwrap(),
        "--calib-samples",
        samples,
    ];
    args.extend_from_slice(extra);
    mxrt_ok(&args)
}

#[test]
fn minmax_gives_each_layer_the_widest_f_its_largest_input_fits() {
    let (tmp, dir, data) = mlp_fixture();
    let out = tmp.path().join("m.mxrt");
    let text = convert_calibrated(&dir, &out, "minmax");
    assert_mentions(
        &text,
        &["calibrated on", "first 200 examples, method minmax", "fc1"],
    );

    // The layers' inputs over the first 200 rows: the features, then relu(fc1).
    let rows: Vec<Vec<f32>> = std::fs::read_to_string(&data)
        .unwrap()
        .lines()
        .take(200)
        .map(|l| l.split(',').take(32).map(|v| v.parse().unwrap()).collect())
        .collect();
    let (w1, b1) = (values(64 * 32, 1, 0.5), values(64, 2, 0.1));
    let max_x = rows.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
    let max_h = rows
        .iter()
        .flat_map(|x| {
            w1.chunks(32)
                .zip(&b1)
                .map(|(w, b)| (w.iter().zip(x).map(|(a, b)| a * b).sum::<f32>() + b).max(0.0))
                .collect::<Vec<_>>()
        })
        .fold(0f32, f32::max);

    let recipe = &metadata(&out)["recipe"];
    let cal = &recipe["calibration"];
    assert_eq!(cal["method"], "minmax");
    assert_eq!(cal["examples"], 200);
    let sha = common::sha256_file(&data);
    assert_eq!(cal["sha256"], sha.as_str());
    for (layer, max) in [("fc1", max_x), ("out", max_h)] {
        let chosen = cal["layers"][layer]["activations"].as_str().unwrap();
        assert!(
            fitting(max).contains(&chosen.to_string()),
            "{layer}: {chosen} for max {max}"
        );
        let seen = cal["layers"][layer]["max_abs_activation"].as_f64().unwrap();
        assert!(
            (seen - f64::from(max)).abs() <= 1e-5 * f64::from(max),
            "{layer}: {seen} vs {max}"
        );
        // The stored per-layer recipe is what was chosen: the file computes with it.
        let stored = stored_layer(recipe, layer);
        assert_eq!(stored["activations"], chosen);
        assert_eq!(stored["weights"], cal["layers"][layer]["weights"]);
    }
    // Weights: the RMSE-minimising F of fc1's values (|w| < 0.5: at least F = 7 fits).
    let wf = cal["layers"]["fc1"]["weights"].as_str().unwrap();
    assert!(wf.starts_with("fixed:8.") && wf != "fixed:8.4", "{wf}");

    // Percentile 100 is minmax; a lower percentile never picks a narrower F.
    let p100 = tmp.path().join("p100.mxrt");
    let p90 = tmp.path().join("p90.mxrt");
    for (file, method) in [(&p100, "percentile:100"), (&p90, "percentile:90")] {
        convert_calibrated(&dir, file, method);
    }
    let frac = |file: &Path, layer: &str| -> u32 {
        let m = metadata(file);
        let s = m["recipe"]["calibration"]["layers"][layer]["activations"]
            .as_str()
            .unwrap()
            .to_string();
        s.rsplit('.').next().unwrap().parse().unwrap()
    };
    for layer in ["fc1", "out"] {
        assert_eq!(frac(&p100, layer), frac(&out, layer));
        assert!(frac(&p90, layer) >= frac(&p100, layer));
    }
}

#[test]
fn calibration_errors_are_clear() {
    let (tmp, dir, data) = mlp_fixture();
    let out = tmp.path().join("m.mxrt");
    let (d, o, c) = (
        dir.to_str().unwrap(),
        out.to_str().unwrap(),
        data.to_str().unwrap(),
    );
    let err = mxrt_err(&[
        "convert",
        d,
        "-o",
        o,
        "--weights",
        "mxint8",
        "--calibrate",
        c,
    ]);
    assert_mentions(
        &err,
        &["no layer is in fixed point", "--activations fixed:W.F"],
    );
    let err = mxrt_err(&[
        "convert",
        d,
        "-o",
        o,
        "--activations",
        "fixed:8.4",
        "--calibrate",
        c,
        "--calib-method",
        "p99",
    ]);
    assert_mentions(&err, &["--calib-method", "p99", "percentile:P"]);
    let err = mxrt_err(&[
        "convert",
        d,
        "-o",
        o,
        "--activations",
        "fixed:8.4",
        "--calibrate",
        c,
        "--calib-method",
        "percentile:120",
    ]);
    assert_mentions(&err, &["(0, 100]"]);
    let missing = tmp.path().join("missing.csv");
    let err = mxrt_err(&[
        "convert",
        d,
        "-o",
        o,
        "--activations",
        "fixed:8.4",
        "--calibrate",
        missing.to_str().unwrap(),
    ]);
    assert_mentions(&err, &["missing.csv"]);
    assert!(!out.exists(), "no output after a failed calibration");
    let err = mxrt_err(&["convert", c, "-o", o, "--calibrate", c]);
    assert_mentions(&err, &["--calibrate needs a model"]);
}

/// The acceptance on real data: minilm-sst2 with fixed 8-bit weights and activations, calibrated on
/// the first 256 SST-2 dev sentences, within 1.0 point of FP32 on the other 616 (held out).
#[test]
fn calibrated_fixed8_minilm_sst2_is_within_a_point_of_fp32_on_held_out_sentences() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = std::fs::read_to_string(shared().join("data/sst2/dev.tsv")).unwrap();
    let lines: Vec<&str> = dev.lines().collect();
    let (header, rows) = (lines[0], &lines[1..]);
    let write = |name: &str, part: &[&str]| {
        let p = tmp.path().join(name);
        std::fs::write(&p, format!("{header}\n{}\n", part.join("\n"))).unwrap();
        p
    };
    let calib = write("calib.tsv", &rows[..256]);
    let held_out = write("held-out.tsv", &rows[256..]);
    let model = shared().join("models/minilm-sst2");
    let out = tmp.path().join("fixed8.mxrt");
    mxrt_ok(&[
        "convert",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--weights",
        "fixed:8.7",
        "--activations",
        "fixed:8.4",
        "--calibrate",
        calib.to_str().unwrap(),
        "--quiet",
    ]);
    let r = eval_json(&out, &held_out, &model);
    let (acc, fp32) = (
        r["accuracy"].as_f64().unwrap(),
        r["reference_accuracy"].as_f64().unwrap(),
    );
    assert_eq!(r["examples"], 616);
    assert!(
        fp32 - acc <= 0.010,
        "fixed 8 calibrated {acc} vs FP32 {fp32}"
    );
}

/// `mxrt eval MODEL --data DATA --reference REFERENCE --json`.
fn eval_json(model: &Path, data: &Path, reference: &Path) -> Value {
    let arg = |p: &Path| p.to_str().unwrap().to_string();
    let (m, d, r) = (arg(model), arg(data), arg(reference));
    serde_json::from_str(&mxrt_ok(&[
        "eval",
        &m,
        "--data",
        &d,
        "--reference",
        &r,
        "--json",
    ]))
    .unwrap()
}

/// The MLP in `dir` converted to FP32 at `out`, and its outputs on `data` (the reference).
fn fp32_outputs(dir: &Path, out: &Path, data: &Path) -> Vec<Vec<f64>> {
    let (d, o) = (dir.to_str().unwrap(), out.to_str().unwrap());
    mxrt_ok(&["convert", d, "-o", o, "--weights", "f32"]);
    run_outputs(out, data)
}

/// The model's outputs on the MLP's data.csv (`mxrt run --json`), one vector per row.
fn run_outputs(model: &Path, data: &Path) -> Vec<Vec<f64>> {
    let (m, d) = (model.to_str().unwrap(), data.to_str().unwrap());
    common::run_json(&["run", m, "--input", d, "--json"])
        .iter()
        .map(|v| {
            let out = v["outputs"].as_array().unwrap_or_else(|| panic!("{v}"));
            out.iter().map(|x| x.as_f64().unwrap()).collect()
        })
        .collect()
}

/// Mean over rows of KL(r || y) for class probabilities: the error `--calib-refine` records for a classifier
/// (the MLP ends in a softmax, so its outputs are probabilities).
fn mean_kl(out: &[Vec<f64>], refs: &[Vec<f64>]) -> f64 {
    assert_eq!(out.len(), refs.len());
    let per_row = out.iter().zip(refs).map(|(q, p)| {
        p.iter()
            .zip(q)
            .filter(|(pi, _)| **pi > 0.0)
            .map(|(pi, qi)| pi * (pi / qi.max(1e-30)).ln())
            .sum::<f64>()
    });
    per_row.sum::<f64>() / out.len() as f64
}

/// `--calib-refine` at widths where the statistics' choice is not the best for the output (4-bit
/// activations): the recorded errors are the ones the files give (checked here from the outputs of `mxrt
/// run`), the refined file is closer to FP32 than the unrefined one, and what it stores is what it records.
#[test]
fn refine_lowers_the_output_error_it_records() {
    let (tmp, dir, data) = mlp_fixture();
    let (d, t) = (dir.to_str().unwrap(), tmp.path());
    let convert = |out: &Path, extra: &[&str]| {
        convert_with(&dir, out, ["fixed:6.2", "fixed:4.2", "300"], extra)
    };
    let (plain, refined, fp32) = (
        t.join("plain.mxrt"),
        t.join("refined.mxrt"),
        t.join("fp32.mxrt"),
    );
    convert(&plain, &[]);
    let text = convert(&refined, &["--calib-refine"]);
    assert_mentions(&text, &["refined on the same examples", "steps kept"]);

    let refs = fp32_outputs(&dir, &fp32, &data);
    assert_eq!(refs.len(), 300);
    let before = mean_kl(&run_outputs(&plain, &data), &refs);
    let after = mean_kl(&run_outputs(&refined, &data), &refs);
    let recipe = &metadata(&refined)["recipe"];
    let r = &recipe["calibration"]["refined"];
    let close = |recorded: &Value, measured: f64| {
        let recorded = recorded.as_f64().unwrap();
        assert!(
            (recorded - measured).abs() <= 1e-6 * measured.max(1e-12),
            "recorded {recorded}, measured {measured}"
        );
    };
    assert_mentions(r["error"].as_str().unwrap(), &["KL"]);
    close(&r["error_before"], before);
    close(&r["error_after"], after);
    assert!(after < before * 0.999, "refined {after} vs {before}");
    assert!(r["steps_kept"].as_u64().unwrap() >= 1);
    // The file computes with what the calibration record says.
    for layer in ["fc1", "out"] {
        let stored = stored_layer(recipe, layer);
        let chosen = &recipe["calibration"]["layers"][layer];
        assert_eq!(stored["activations"], chosen["activations"]);
        assert_eq!(stored["weights"], chosen["weights"]);
    }
    // Without data to run on, there is nothing to refine against.
    assert_needs_calibrate(d, &t.join("x.mxrt"), "--calib-refine");
}

/// `convert` of `dir` with `flag` but no `--calibrate`: a usage error naming `--calibrate`.
fn assert_needs_calibrate(dir: &str, out: &Path, flag: &str) {
    let o = common::mxrt(&["convert", dir, "-o", out.to_str().unwrap(), flag]);
    assert_eq!(o.status.code(), Some(2), "{flag}: a usage error");
    assert_mentions(&String::from_utf8_lossy(&o.stderr), &["--calibrate"]);
}

/// `--calib-channels` on an MLP whose first layer's rows differ in magnitude (row r scaled by 2^-(r mod 4)):
/// each row is stored at its own RMSE-best fraction width (checked from `mxrt dequantize`: stored row times
/// its output scale equals the row quantized at the width this test finds by brute force), the file requires
/// `channel_scales`, and it is closer to FP32 than one width per matrix.
#[test]
fn per_channel_calibration_gives_each_weight_row_its_own_width() {
    let (tmp, dir, data) = mlp_fixture();
    let t = tmp.path();
    let w1: Vec<f32> = values(64 * 32, 1, 0.5)
        .chunks(32)
        .enumerate()
        .flat_map(|(r, row)| row.iter().map(move |v| v / (1 << (r % 4)) as f32))
        .collect();
    common::write_f32_tensors(
        &dir.join("model.safetensors"),
        &[
            ("fc1.weight", vec![64, 32], w1.clone()),
            ("fc1.bias", vec![64], values(64, 2, 0.1)),
            ("out.weight", vec![5, 64], values(5 * 64, 3, 0.4)),
            ("out.bias", vec![5], values(5, 4, 0.1)),
        ],
    );
    let encodings = ["fixed:8.4", "fixed:8.4", "300"];
    let (plain, channels, fp32) = (t.join("plain.mxrt"), t.join("ch.mxrt"), t.join("fp32.mxrt"));
    convert_with(&dir, &plain, encodings, &[]);
    let text = convert_with(&dir, &channels, encodings, &["--calib-channels"]);
    assert_mentions(
        &text,
        &[
            "per channel: 0 layers' inputs smoothed",
            "fraction width per row",
        ],
    );
    let d = dir.to_str().unwrap();

    let meta = metadata(&channels);
    assert!(meta["requires"]
        .as_array()
        .unwrap()
        .contains(&"channel_scales".into()));
    let fc1 = stored_layer(&meta["recipe"], "fc1");
    assert_eq!(fc1["output_scale"], "fc1.output_scale");
    assert!(
        fc1.get("input_scale").is_none(),
        "an MLP has no LayerNorm-fed input to smooth"
    );
    let frac: i32 = fc1["weights"]
        .as_str()
        .unwrap()
        .rsplit('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();

    let dq = t.join("dq.safetensors");
    mxrt_ok(&[
        "dequantize",
        channels.to_str().unwrap(),
        "-o",
        dq.to_str().unwrap(),
    ]);
    let tensors = common::read_f32_tensors(&dq);
    let (stored, scales) = (&tensors["fc1.weight"].1, &tensors["fc1.output_scale"].1);
    let quantized = |v: f32, f: i32| {
        let step = 2f64.powi(-f);
        ((f64::from(v) / step).round().clamp(-128.0, 127.0) * step) as f32
    };
    let best = |row: &[f32]| {
        let rmse = |f: i32| {
            row.iter()
                .map(|&v| f64::from(v - quantized(v, f)).powi(2))
                .sum::<f64>()
        };
        (0..=24)
            .min_by(|&a, &b| rmse(a).total_cmp(&rmse(b)))
            .unwrap()
    };
    let mut widths = std::collections::BTreeSet::new();
    for (r, row) in w1.chunks(32).enumerate() {
        let own = best(row);
        widths.insert(own);
        assert_eq!(scales[r], 2f32.powi(frac - own), "row {r}");
        for (i, &v) in row.iter().enumerate() {
            assert_eq!(
                stored[r * 32 + i] * scales[r],
                quantized(v, own),
                "row {r}, column {i}"
            );
        }
    }
    assert!(
        widths.len() >= 3,
        "the rows' magnitudes differ 8-fold: {widths:?}"
    );

    let refs = fp32_outputs(&dir, &fp32, &data);
    let (kl_plain, kl_channels) = (
        mean_kl(&run_outputs(&plain, &data), &refs),
        mean_kl(&run_outputs(&channels, &data), &refs),
    );
    // The memory report's FP32 original is the checkpoint's: the scale vectors cost bytes, not FP32 bytes.
    let memory = |f: &Path| -> Value {
        serde_json::from_str(&mxrt_ok(&[
            "eval",
            f.to_str().unwrap(),
            "--memory-only",
            "--json",
        ]))
        .unwrap()
    };
    let (m_plain, m_channels) = (memory(&plain), memory(&channels));
    assert_eq!(
        m_channels["fp32_weight_bytes"],
        m_plain["fp32_weight_bytes"]
    );
    assert_eq!(
        m_channels["weight_bytes"].as_u64().unwrap(),
        m_plain["weight_bytes"].as_u64().unwrap() + 4 * 64,
        "fc1's 64 output scales in f32 on top of the same codes"
    );
    assert!(
        kl_channels < kl_plain,
        "per channel {kl_channels} vs per matrix {kl_plain}"
    );
    assert_needs_calibrate(d, &t.join("x.mxrt"), "--calib-channels");
}

/// all-MiniLM-L6-v2 (fetched by scripts/fetch-models.sh) at fixed:8 weights and activations, calibrated per
/// channel on examples/calibration.txt: embeddings of examples/sentences.txt (not seen in calibration) keep a
/// mean cosine ≥ 0.985 to FP32 (measured 0.9884; one width per tensor gives 0.969, `--calib-refine` on top
/// 0.9944 — BENCHMARKS.md), with every LayerNorm-fed input smoothed and every linear weight per row.
#[test]
fn per_channel_fixed8_all_minilm_embeddings_stay_close_to_fp32() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let base = root.join("target/models/all-MiniLM-L6-v2");
    let (tmp, b) = (tempfile::tempdir().unwrap(), base.to_str().unwrap());
    let (fp32, fixed) = (tmp.path().join("fp32.mxrt"), tmp.path().join("fixed8.mxrt"));
    mxrt_ok(&[
        "convert",
        b,
        "-o",
        fp32.to_str().unwrap(),
        "--weights",
        "f32",
        "--quiet",
    ]);
    let calib = root.join("examples/calibration.txt");
    mxrt_ok(&[
        "convert",
        b,
        "-o",
        fixed.to_str().unwrap(),
        "--weights",
        "fixed:8.5",
        "--activations",
        "fixed:8.5",
        "--rounding",
        "even",
        "--calibrate",
        calib.to_str().unwrap(),
        "--calib-channels",
        "--quiet",
    ]);
    let channels = &metadata(&fixed)["recipe"]["calibration"]["channels"];
    assert_eq!(
        channels["smoothed"], 24,
        "query, key, value and FFN up of 6 layers"
    );
    assert_eq!(
        channels["per_row_weights"], 37,
        "36 encoder linears and the pooler"
    );
    let sentences = root.join("examples/sentences.txt");
    let r = eval_json(&fixed, &sentences, &fp32);
    let cosine = r["mean_embedding_cosine_to_reference"].as_f64().unwrap();
    assert!(cosine >= 0.985, "mean cosine {cosine}");
}
