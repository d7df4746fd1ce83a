//! Helpers shared by the CLI tests: running the binary, locating ../shared, reading safetensors.

#![allow(dead_code)]

pub mod labelled_mlp;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `../shared` beside the repository (CI provides it). Missing shared data is a failure, not a skip.
pub fn shared() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    assert!(
        p.join("conformance/mx/inputs.safetensors").exists(),
        "../shared is missing: tests need it beside the repo"
    );
    p
}

/// Runs `mxrt` with `args`.
pub fn mxrt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mxrt"))
        .args(args)
        .output()
        .expect("mxrt runs")
}

/// Runs `mxrt` and asserts success; returns stdout.
pub fn mxrt_ok(args: &[&str]) -> String {
    let out = mxrt(args);
    assert!(
        out.status.success(),
        "mxrt {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs `mxrt`, asserts failure with exit code 1; returns stderr.
pub fn mxrt_err(args: &[&str]) -> String {
    let out = mxrt(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "mxrt {args:?} should fail with exit 1; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).expect("utf-8 stderr")
}

/// The F32 tensors of a safetensors file as (shape, values), by name; tensors of other dtypes (tokenizer
/// blobs, integer buffers) are skipped.
pub fn read_f32_tensors(path: &Path) -> std::collections::BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .filter(|(_, v)| v.dtype() == safetensors::Dtype::F32)
        .map(|(name, v)| {
            let vals = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (name, (v.shape().to_vec(), vals))
        })
        .collect()
}

/// Writes a safetensors file of F32 tensors.
pub fn write_f32_tensors(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, v)| {
            (
                n.to_string(),
                s.clone(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, &None).unwrap()).unwrap();
}

/// Asserts that an error message mentions every needle (and shows the message when it does not).
pub fn assert_mentions(message: &str, needles: &[&str]) {
    for n in needles {
        assert!(message.contains(n), "expected {n:?} in: {message}");
    }
}

/// `mxrt convert MODEL -o OUT --quiet EXTRA...`, asserting success.
pub fn convert_quiet(model: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec![
        "convert",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    mxrt_ok(&args);
}

/// Every tensor of a `../shared/reference` file as (shape, values in f64); I64 ids converted.
pub fn reference_tensors(file: &str) -> std::collections::BTreeMap<String, (Vec<usize>, Vec<f64>)> {
    let bytes = std::fs::read(shared().join("reference").join(file)).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| {
            let vals: Vec<f64> = match v.dtype() {
                safetensors::Dtype::F32 => v
                    .data()
                    .chunks_exact(4)
                    .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
                safetensors::Dtype::I64 => v
                    .data()
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
                d => panic!("{n}: unexpected dtype {d:?}"),
            };
            (n, (v.shape().to_vec(), vals))
        })
        .collect()
}

/// The padded token batch of `../shared/reference`'s tensors (`input_ids`, `token_type_ids`, `attention_mask`).
pub fn sst2_batch(
    r: &std::collections::BTreeMap<String, (Vec<usize>, Vec<f64>)>,
) -> mxrt_runtime::TokenBatch {
    let (shape, ids) = &r["input_ids"];
    mxrt_runtime::TokenBatch {
        batch: shape[0],
        seq: shape[1],
        ids: ids.iter().map(|&v| v as u32).collect(),
        type_ids: r["token_type_ids"].1.iter().map(|&v| v as u32).collect(),
        mask: r["attention_mask"].1.iter().map(|&v| v as u8).collect(),
    }
}

/// The largest |a − b| over two outputs of the same length.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The JSC models of ../shared and the three ways the device-backend tests convert each (tag, `convert`
/// arguments): FP32, MXINT8 weights + activations, fixed point.
pub const JSC_MODELS: [&str; 4] = [
    "jsc-tiny",
    "jsc-3layer",
    "jsc-3layer-70pruned",
    "jsc-3layer-95pruned",
];
pub const JSC_ENCODINGS: [(&str, &[&str]); 3] = [
    ("f32", &["--weights", "f32"]),
    (
        "mxint8",
        &["--weights", "mxint8", "--activations", "mxint8"],
    ),
    (
        "fixed",
        &["--weights", "fixed:8.5", "--activations", "fixed:8.4"],
    ),
];

/// `rows` rows of deterministic features in [-2, 2] for an MLP model, and its feature count.
pub fn mlp_inputs(model: &mxrt_runtime::Model, rows: usize) -> (Vec<f32>, usize) {
    let features = match model.graph() {
        mxrt_runtime::Graph::Mlp(m) => m.inputs,
        mxrt_runtime::Graph::Bert(_) => panic!("not an MLP model"),
    };
    let x = (0..rows * features)
        .map(|i| ((i * 7919 % 1000) as f32 / 250.0) - 2.0)
        .collect();
    (x, features)
}

/// The encoder fixtures of `scripts/make-torch-fixtures.py` the device backends are checked on: every
/// family, hidden activation (GELU, its tanh approximation, ReLU), head (classifier, sentence embedding),
/// tokenizer (WordPiece, tokenizer.json, vocab.json + merges.txt).
pub const ENCODER_FIXTURES: [&str; 8] = [
    "roberta",
    "distilbert",
    "electra",
    "bert-relu",
    "xlm-roberta",
    "camembert",
    "st-roberta",
    "st-distilbert",
];

/// Converts the encoder fixture `name` (FP32) into `dir`; the file.
pub fn convert_encoder_fixture(name: &str, dir: &Path) -> PathBuf {
    let f = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torch")
        .join(name);
    let file = dir.join(format!("{name}.mxrt"));
    convert_quiet(&f, &file, &["--weights", "f32"]);
    file
}

/// Converts the encoder fixture `name` to fixed point, weights and activations, calibrated per channel
/// (`--calib-channels` on examples/calibration.txt) into `dir`; the file, checked to hold channel scales.
pub fn convert_channel_scaled_fixture(name: &str, dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = dir.join(format!("{name}-channels.mxrt"));
    let data = root.join("examples/calibration.txt");
    convert_quiet(
        &root.join("tests/fixtures/torch").join(name),
        &file,
        &[
            "--weights",
            "fixed:8.5",
            "--activations",
            "fixed:8.5",
            "--calibrate",
            data.to_str().unwrap(),
            "--calib-channels",
        ],
    );
    let info = mxrt_ok(&["inspect", file.to_str().unwrap(), "--json"]);
    assert!(
        info.contains("channel_scales"),
        "{name}: no channel scales in the file"
    );
    file
}

/// `mxrt run` of an encoder on `backend` for two texts and two sentence pairs: every output value (logits or
/// embeddings) in order.
pub fn encoder_outputs(file: &Path, backend: &str) -> Vec<f32> {
    mxrt_ok(&[
        "run",
        file.to_str().unwrap(),
        "--backend",
        backend,
        "--json",
        "--text",
        "the movie was very good!",
        "--text",
        "boring plot",
        "--text-pair",
        "a great film",
        "--text-pair",
        "the acting was fun!",
    ])
    .lines()
    .flat_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let out = if v["logits"].is_array() {
            &v["logits"]
        } else {
            &v["embedding"]
        };
        out.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect::<Vec<_>>()
    })
    .collect()
}

/// `mxrt ARGS` (a command given `--json` that prints one JSON value per line): the values.
pub fn run_json(args: &[&str]) -> Vec<serde_json::Value> {
    mxrt_ok(args)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The leaky-ReLU MLP fixture (Linear, LeakyReLU, Dropout, Linear as a .pt state dict) converted to FP32 in
/// `dir`; the file.
pub fn convert_leaky_mlp_fixture(dir: &Path) -> PathBuf {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch/mlp-leaky");
    let file = dir.join("leaky.mxrt");
    mxrt_ok(&[
        "convert",
        f.join("config.json").to_str().unwrap(),
        f.join("model.pt").to_str().unwrap(),
        "-o",
        file.to_str().unwrap(),
        "--weights",
        "f32",
        "--quiet",
    ]);
    file
}

/// Lowercase hex SHA-256 of a file (as the converter records its sources and calibration data).
pub fn sha256_file(path: &Path) -> String {
    mxrt_converter::sha256_hex(&std::fs::read(path).unwrap())
}
