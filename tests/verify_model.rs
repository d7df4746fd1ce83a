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

/// An MLP layer of width 0 (a weight [0, k], or `num_features` 0) passes every shape check but leaves
/// nothing to rank: `verify` refuses it and `run` and `eval` say so (they used to panic splitting rows of
/// zero values).
#[test]
fn an_mlp_layer_of_width_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("x.csv");
    std::fs::write(&csv, "1,2,3,4\n").unwrap();
    for (features, rows, reason) in [
        (4u64, 0u64, "the output of \"fc.weight\" is 0 wide"),
        (0, 3, "num_features is 0 wide"),
    ] {
        let mut meta = serde_json::Map::new();
        meta.insert("architecture".into(), json!("mlp"));
        meta.insert(
            "hyperparameters".into(),
            json!({"num_features": features, "num_outputs": rows, "ops": [{"op": "linear", "name": "fc"}]}),
        );
        let mut b = FileBuilder::new(meta).unwrap();
        for (name, shape) in [("fc.weight", vec![rows, features]), ("fc.bias", vec![rows])] {
            let n = shape.iter().product::<u64>() as usize;
            b.push(
                encode_f32(
                    name,
                    &shape,
                    &vec![0.5; n],
                    Encoding::F32,
                    Rounding::Nearest,
                    SparsePolicy::Never,
                )
                .unwrap(),
            )
            .unwrap();
        }
        let path = dir.path().join("empty.mxrt");
        b.write_to_path(&path).unwrap();
        let p = path.to_str().unwrap();
        for args in [
            vec!["verify", p],
            vec!["run", p, "--input", csv.to_str().unwrap()],
            vec!["eval", p, "--data", csv.to_str().unwrap()],
        ] {
            let out = mxrt(&args);
            let e = String::from_utf8(out.stderr).unwrap();
            assert_eq!(out.status.code(), Some(1), "{args:?}: {e}");
            assert!(
                e.contains(reason) && e.contains("every layer of an MLP needs at least one value"),
                "{args:?}: {e}"
            );
        }
    }
}
