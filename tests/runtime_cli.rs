//! `mxrt run`, `eval` and `bench` end to end: identical token ids and logits to PyTorch through the embedded
//! tokenizer, MLP rows from CSV, evaluation metrics computed independently here, and clear errors.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn reference_json() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(shared().join("reference/minilm-sst2-dev16.json")).unwrap(),
    )
    .unwrap()
}

/// One reference tensor: (shape, values as f64).
fn reference_tensor(file: &str, name: &str) -> (Vec<usize>, Vec<f64>) {
    reference_tensors(file).remove(name).unwrap()
}

#[test]
fn run_gives_pytorchs_token_ids_and_logits_through_the_embedded_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f32.mxrt");
    convert_quiet(
        &shared().join("models/minilm-sst2"),
        &file,
        &["--weights", "f32"],
    );
    let sentences: Vec<String> = reference_json()["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let mut args = vec![
        "run",
        file.to_str().unwrap(),
        "--json",
        "--tokens",
        "--max-length",
        "128",
        "--text",
    ];
    args.extend(sentences.iter().map(String::as_str));
    let lines: Vec<Value> = mxrt_ok(&args)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 16);
    let (shape, ids) = reference_tensor("minilm-sst2-dev16.safetensors", "input_ids");
    let (_, mask) = reference_tensor("minilm-sst2-dev16.safetensors", "attention_mask");
    let (_, logits) = reference_tensor("minilm-sst2-dev16.safetensors", "logits");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["text"], sentences[i].as_str());
        let want: Vec<u64> = (0..shape[1])
            .filter(|&j| mask[i * shape[1] + j] != 0.0)
            .map(|j| ids[i * shape[1] + j] as u64)
            .collect();
        let got: Vec<u64> = line["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(got, want, "sentence {i}");
        for (k, l) in line["logits"].as_array().unwrap().iter().enumerate() {
            assert!(
                (l.as_f64().unwrap() - logits[i * 2 + k]).abs() < 1e-4,
                "sentence {i} logit {k}"
            );
        }
        let p: f64 = line["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((p - 1.0).abs() < 1e-5);
    }
    // Text mode: label, probability, text per line.
    let text = mxrt_ok(&[
        "run",
        file.to_str().unwrap(),
        "--text",
        "a gorgeous, witty, seductive movie .",
    ]);
    assert!(text.starts_with("positive\t0."), "{text}");
}

/// The 32 reference input rows of jsc-3layer as a CSV file (a header, then one row of 16 features a line).
fn jsc_reference_csv(dir: &Path) -> std::path::PathBuf {
    let (_, x) = reference_tensor("jsc-3layer-32.safetensors", "inputs");
    let mut csv = (0..16)
        .map(|k| format!("f{k}"))
        .collect::<Vec<_>>()
        .join(",")
        + "\n";
    for row in x.chunks(16) {
        csv += &(row
            .iter()
            .map(|v| format!("{:e}", *v as f32))
            .collect::<Vec<_>>()
            .join(",")
            + "\n");
    }
    let path = dir.join("x.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

#[test]
fn run_reads_mlp_features_from_csv() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jsc.mxrt");
    convert_quiet(
        &shared().join("models/jsc-3layer"),
        &file,
        &["--weights", "f32"],
    );
    let (_, y) = reference_tensor("jsc-3layer-32.safetensors", "outputs");
    let path = jsc_reference_csv(dir.path());
    let lines: Vec<Value> = mxrt_ok(&[
        "run",
        file.to_str().unwrap(),
        "--input",
        path.to_str().unwrap(),
        "--json",
    ])
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    assert_eq!(lines.len(), 32);
    for (i, l) in lines.iter().enumerate() {
        for (k, v) in l["outputs"].as_array().unwrap().iter().enumerate() {
            assert!((v.as_f64().unwrap() - y[i * 5 + k]).abs() < 1e-5, "row {i}");
        }
    }
    let err = mxrt_err(&["run", file.to_str().unwrap(), "--text", "hello"]);
    assert!(err.contains("MLP"), "{err}");
    let err = mxrt_err(&[
        "run",
        file.to_str().unwrap(),
        "--input",
        path.to_str().unwrap(),
        "--backend",
        "cuda",
    ]);
    assert!(err.contains("cuda backend is unavailable"), "{err}");
}

/// `MXRT_CPU` picks each kernel tier this CPU runs (the `-v` line names its table) and gives the same
/// outputs within float rounding; a tier it does not run, or an unknown one, is one clear error; the older
/// `MXRT_FORCE_REFERENCE=1` still means the reference, and `MXRT_CPU` wins over it.
#[test]
fn mxrt_cpu_selects_a_kernel_tier_or_says_why_not() {
    use mxrt_runtime::bench::{Kernels, TIERS};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jsc.mxrt");
    convert_quiet(
        &shared().join("models/jsc-3layer"),
        &file,
        &["--weights", "mxint8", "--activations", "mxint8"],
    );
    let input = jsc_reference_csv(dir.path());
    let run = |env: &[(&str, &str)]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_mxrt"));
        c.args([
            "run",
            file.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--json",
            "-v",
        ]);
        for var in ["MXRT_CPU", "MXRT_FORCE_REFERENCE", "MXRT_NO_AMX"] {
            c.env_remove(var);
        }
        c.envs(env.iter().copied());
        let out = c.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let outputs = |stdout: &str| -> Vec<f64> {
        stdout
            .lines()
            .flat_map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["outputs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| o.as_f64().unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let (ok, reference_out, err) = run(&[("MXRT_CPU", "reference")]);
    assert!(ok && err.contains("backend: cpu (reference)"), "{err}");
    let reference_out = outputs(&reference_out);
    assert_eq!(reference_out.len(), 32 * 5);
    let (ok, _, err) = run(&[("MXRT_FORCE_REFERENCE", "1")]);
    assert!(ok && err.contains("backend: cpu (reference)"), "{err}");
    let tables = Kernels::available();
    for k in &tables {
        let (ok, out, err) = run(&[("MXRT_CPU", k.tier), ("MXRT_FORCE_REFERENCE", "1")]);
        assert!(
            ok && err.contains(&format!("backend: cpu ({})", k.isa)),
            "{}: {err}",
            k.tier
        );
        for (a, b) in outputs(&out).iter().zip(&reference_out) {
            assert!((a - b).abs() <= 1e-5, "{}: {a} vs reference {b}", k.tier);
        }
    }
    if let Some(missing) = TIERS
        .iter()
        .find(|t| **t != "reference" && !tables.iter().any(|k| k.tier == **t))
    {
        let (ok, out, err) = run(&[("MXRT_CPU", missing)]);
        assert!(!ok && out.is_empty(), "{missing}: {err}");
        assert!(
            err.contains(&format!("MXRT_CPU={missing}: this CPU does not run the {missing} kernels (it runs: reference")),
            "{err}"
        );
    }
    let (ok, _, err) = run(&[("MXRT_CPU", "sse9")]);
    assert!(!ok, "{err}");
    assert!(
        err.contains(
            "MXRT_CPU=sse9: unknown kernel tier (one of: reference, avx2, avx2vnni, avx512, amx)"
        ),
        "{err}"
    );
}

#[test]
fn eval_metrics_match_an_independent_computation() {
    let dir = tempfile::tempdir().unwrap();
    let f32_file = dir.path().join("f32.mxrt");
    convert_quiet(
        &shared().join("models/minilm-sst2"),
        &f32_file,
        &["--weights", "f32"],
    );
    // The first 16 dev sentences with their labels.
    let dev = std::fs::read_to_string(shared().join("data/sst2/dev.tsv")).unwrap();
    let subset: Vec<&str> = dev.lines().take(17).collect();
    let data = dir.path().join("dev16.tsv");
    std::fs::write(&data, subset.join("\n")).unwrap();
    let labels: Vec<usize> = subset[1..]
        .iter()
        .map(|l| l.rsplit('\t').next().unwrap().trim().parse().unwrap())
        .collect();
    let (_, logits) = reference_tensor("minilm-sst2-dev16.safetensors", "logits");
    let want = labels
        .iter()
        .enumerate()
        .filter(|(i, &l)| (logits[i * 2 + 1] > logits[i * 2]) as usize == l)
        .count() as f64
        / 16.0;
    let r: Value = serde_json::from_str(&mxrt_ok(&[
        "eval",
        f32_file.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--max-length",
        "128",
        "--json",
    ]))
    .unwrap();
    assert_eq!(r["accuracy"].as_f64().unwrap(), want);
    assert_eq!(r["agreement"], 1.0);
    assert_eq!(r["memory"]["saving_percent"], 0.0);
    assert!(r["memory"]["peak_rss_file_bytes"].as_u64().unwrap() > 0);

    // A quantized model needs a reference; with the checkpoint directory it gets one.
    let mx = dir.path().join("mx.mxrt");
    convert_quiet(
        &shared().join("models/minilm-sst2"),
        &mx,
        &["--weights", "mxint8", "--activations", "mxint8"],
    );
    let err = mxrt_err(&[
        "eval",
        mx.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(err.contains("--reference"), "{err}");
    let r: Value = serde_json::from_str(&mxrt_ok(&[
        "eval",
        mx.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--max-length",
        "128",
        "--json",
        "--reference",
        shared().join("models/minilm-sst2").to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(r["reference_accuracy"].as_f64().unwrap(), want);
    assert!(r["agreement"].as_f64().unwrap() >= 15.0 / 16.0, "{r}");
    let saving = r["memory"]["saving_percent"].as_f64().unwrap();
    assert!((74.0..74.3).contains(&saving), "{saving}");
    assert!(r["kl"].as_f64().unwrap() >= 0.0);
    // The FP32 reference ran in its own process (issue 18, item 4): its file-backed peak holds its ~91 MB of
    // f32 weights, while the model's own holds its ~24 MB file and the executable, and not the reference's.
    let m = &r["memory"];
    let fp32_weights = m["fp32_weight_bytes"].as_u64().unwrap();
    let reference_file = m["reference_peak_rss_file_bytes"].as_u64().unwrap();
    assert!(reference_file >= fp32_weights * 9 / 10, "{m}");
    assert!(
        m["peak_rss_file_bytes"].as_u64().unwrap() < fp32_weights * 6 / 10,
        "{m}"
    );
    assert!(
        m["reference_peak_rss_bytes"].as_u64().unwrap() >= reference_file,
        "{m}"
    );
}

#[test]
fn eval_of_an_mlp_on_synthetic_inputs_reports_agreement_only() {
    let dir = tempfile::tempdir().unwrap();
    let mx = dir.path().join("jsc.mxrt");
    convert_quiet(
        &shared().join("models/jsc-3layer"),
        &mx,
        &["--weights", "mxint8", "--activations", "mxint8"],
    );
    let r: Value = serde_json::from_str(&mxrt_ok(&[
        "eval",
        mx.to_str().unwrap(),
        "--synthetic",
        "2000",
        "--json",
        "--reference",
        shared().join("models/jsc-3layer").to_str().unwrap(),
    ]))
    .unwrap();
    assert!(r["accuracy"].is_null());
    assert!(r["note"].as_str().unwrap().contains("no jet data"));
    let agreement = r["agreement"].as_f64().unwrap();
    assert!(agreement > 0.95 && agreement <= 1.0, "{agreement}");
    assert_eq!(r["examples"], 2000);
    let err = mxrt_err(&[
        "eval",
        mx.to_str().unwrap(),
        "--synthetic",
        "0",
        "--reference",
        shared().join("models/jsc-3layer").to_str().unwrap(),
    ]);
    assert!(err.contains("no examples"), "{err}");
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "f0,f1\n").unwrap();
    let err = mxrt_err(&[
        "eval",
        mx.to_str().unwrap(),
        "--data",
        empty.to_str().unwrap(),
        "--reference",
        shared().join("models/jsc-3layer").to_str().unwrap(),
    ]);
    assert!(
        err.contains("columns") || err.contains("no examples"),
        "{err}"
    );
}

#[test]
fn bench_reports_latency_and_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jsc.mxrt");
    convert_quiet(
        &shared().join("models/jsc-3layer"),
        &file,
        &["--weights", "mxint8"],
    );
    let r: Value = serde_json::from_str(&mxrt_ok(&[
        "bench",
        file.to_str().unwrap(),
        "--batch",
        "64",
        "--iterations",
        "5",
        "--json",
    ]))
    .unwrap();
    for k in [
        "open_ms",
        "first_inference_ms",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "throughput_per_s",
    ] {
        assert!(r[k].as_f64().unwrap() > 0.0, "{k}: {r}");
    }
    assert!(r["p50_ms"].as_f64().unwrap() <= r["p99_ms"].as_f64().unwrap());
    assert!(r["backend"].as_str().unwrap().starts_with("cpu ("), "{r}");
    // A backend name clap cannot parse is a usage error (exit 2) that lists the backends.
    let out = mxrt(&["bench", file.to_str().unwrap(), "--backend", "tpu"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown backend \"tpu\" (cpu, wgpu, cuda)"),
        "{err}"
    );
}

#[test]
fn eval_of_an_encoder_on_plain_sentences_reports_embedding_fidelity() {
    let dir = tempfile::tempdir().unwrap();
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/models/all-MiniLM-L6-v2");
    assert!(
        base.exists(),
        "run ./scripts/fetch-models.sh first (./scripts/test.sh does)"
    );
    let (f32_file, mx) = (dir.path().join("f32.mxrt"), dir.path().join("mx.mxrt"));
    convert_quiet(&base, &f32_file, &["--weights", "f32"]);
    convert_quiet(
        &base,
        &mx,
        &["--weights", "mxint8", "--activations", "mxint8"],
    );
    let sentences = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sentences.txt");
    let run = |model: &Path| -> Value {
        serde_json::from_str(&mxrt_ok(&[
            "eval",
            model.to_str().unwrap(),
            "--data",
            sentences.to_str().unwrap(),
            "--reference",
            f32_file.to_str().unwrap(),
            "--json",
        ]))
        .unwrap()
    };
    let same = run(&f32_file);
    assert_eq!(same["task"], "embed");
    assert!((same["mean_embedding_cosine_to_reference"].as_f64().unwrap() - 1.0).abs() < 1e-6);
    assert_eq!(same["nearest_neighbour_agreement"], 1.0);
    assert_eq!(same["examples"], 40);
    let q = run(&mx);
    let cos = q["min_embedding_cosine_to_reference"].as_f64().unwrap();
    assert!(cos > 0.99 && cos < 1.0, "{cos}");
    assert!(q["nearest_neighbour_agreement"].as_f64().unwrap() >= 0.8);
}

#[test]
fn bench_kernels_reports_throughput_against_the_peaks() {
    let r: Value = serde_json::from_str(&mxrt_ok(&[
        "bench",
        "--kernels",
        "--batch",
        "1",
        "--seq",
        "32",
        "--iterations",
        "2",
        "--warmup",
        "0",
        "--json",
    ]))
    .unwrap();
    let kernels = r["kernels"].as_array().unwrap();
    assert_eq!(kernels.len(), 3);
    for k in kernels {
        assert!(
            k["g_ops_per_s"].as_f64().unwrap() > 0.0
                && k["fraction_of_peak"].as_f64().unwrap() < 1.0,
            "{k}"
        );
    }
}

/// An MLP's bench speaks of rows, not sequences, and shows its sub-millisecond times in µs (a JSC call takes
/// about a microsecond: "0.00 ms" hid it).
#[test]
fn bench_of_an_mlp_reports_rows_and_microseconds() {
    let mlp = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/format-1.0/mlp.fixed8.4.mxrt");
    let m = mlp.to_str().unwrap();
    let text = mxrt_ok(&["bench", m, "--batch", "1", "--iterations", "200"]);
    assert!(
        text.contains(": batch of 1 rows on ")
            && text.contains(" µs")
            && text.contains("rows per second"),
        "{text}"
    );
    assert!(
        !text.contains("seq") && !text.contains("sequences"),
        "{text}"
    );
    let r: Value =
        serde_json::from_str(&mxrt_ok(&["bench", m, "--iterations", "5", "--json"])).unwrap();
    assert!(r["seq"].is_null(), "{r}");
    assert!(r["p50_ms"].as_f64().unwrap() > 0.0);
}
