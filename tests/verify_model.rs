//! `verify` checks what the runtime will rely on, not only the bytes: a file whose checksums are all valid
//! but whose model description lies about its tensors fails `verify`, with the reason, and a file that passes
//! opens in the other commands.

mod common;

use common::{mxrt, mxrt_ok};
use mxrt_format::{encode_f32, Encoding, FileBuilder, Rounding, SparsePolicy};
use serde_json::json;

/// A one-layer MLP file (weight [5, 16], bias [5]) with `num_features` as given.
fn mlp_file(dir: &std::path::Path, num_features: u64) -> std::path::PathBuf {
    let mut meta = serde_json::Map::new();
    meta.insert("architecture".into(), json!("mlp"));
    meta.insert(
        "hyperparameters".into(),
        json!({"num_features": num_features, "num_outputs": 5, "ops": [{"op": "linear", "name": "fc"}]}),
    );
    let mut b = FileBuilder::new(meta).unwrap();
    let w: Vec<f32> = (0..80).map(|i| i as f32 / 80.0).collect();
    for (name, shape, values) in [
        ("fc.weight", vec![5, 16], w),
        ("fc.bias", vec![5], vec![0.1; 5]),
    ] {
        b.push(
            encode_f32(
                name,
                &shape,
                &values,
                Encoding::F32,
                Rounding::Nearest,
                SparsePolicy::Never,
            )
            .unwrap(),
        )
        .unwrap();
    }
    let path = dir.join(format!("mlp-{num_features}.mxrt"));
    b.write_to_path(&path).unwrap();
    path
}

#[test]
fn verify_refuses_a_description_that_lies_about_its_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let good = mlp_file(dir.path(), 16);
    let ok = mxrt_ok(&["verify", good.to_str().unwrap()]);
    assert!(
        ok.contains("model: MLP 16 -> 5, description matches the tensors"),
        "{ok}"
    );
    for lie in [8u64, 1 << 40] {
        let bad = mlp_file(dir.path(), lie);
        let out = mxrt(&["verify", bad.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        let e = String::from_utf8(out.stderr).unwrap();
        assert!(
            e.starts_with("FAILED") && e.contains("fc.weight"),
            "{lie}: {e}"
        );
        // and run refuses it the same way, without a panic
        let out = mxrt(&["bench", bad.to_str().unwrap(), "--iterations", "1"]);
        assert_eq!(out.status.code(), Some(1), "{lie}");
    }
}
