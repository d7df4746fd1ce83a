//! Format versions end to end: files written by format 1.0 (`tests/fixtures/format-1.0`, made by mxrt at
//! a3888ff from synthetic checkpoints) keep verifying, inspecting and running exactly as they did then; the
//! 2.0 writer keeps small models small.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{convert_quiet, mxrt_ok, shared};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-1.0")
}

/// The format 1.0 fixtures: (file stem, input file).
const FIXTURES: [(&str, &str); 3] = [
    ("tiny-bert.mxint8-wa", "sentences.tsv"),
    ("mlp-95pruned.mxint8", "rows.csv"),
    ("mlp.fixed8.4", "rows.csv"),
];

fn fixture(name: &str) -> String {
    fixtures().join(name).to_str().unwrap().to_string()
}

#[test]
fn format_1_0_fixtures_verify_and_inspect_as_they_did() {
    for (stem, _) in FIXTURES {
        let file = fixture(&format!("{stem}.mxrt"));
        let bytes = std::fs::metadata(&file).unwrap().len();
        let verified = mxrt_ok(&["verify", &file]);
        assert!(
            verified.starts_with("OK ") && verified.contains(&format!("{} bytes", group(bytes))),
            "{stem}: {verified}"
        );
        // The inspect text names the file by its path: compare from the second line's content on.
        let inspected = mxrt_ok(&["inspect", &file]);
        let recorded =
            std::fs::read_to_string(fixtures().join(format!("{stem}.inspect.txt"))).unwrap();
        let body = |s: &str| s.split_once(':').map(|(_, rest)| rest.to_string()).unwrap();
        assert_eq!(
            body(&inspected),
            body(&recorded),
            "{stem}: inspect output changed"
        );
        assert!(inspected.contains(".mxrt 1.0,"), "{stem}");
    }
}

#[test]
fn format_1_0_fixtures_run_to_the_recorded_outputs_bit_for_bit() {
    for (stem, input) in FIXTURES {
        let out = Command::new(env!("CARGO_BIN_EXE_mxrt"))
            .args([
                "run",
                &fixture(&format!("{stem}.mxrt")),
                "--input",
                &fixture(input),
                "--json",
            ])
            .env("MXRT_CPU", "reference")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{stem}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let recorded =
            std::fs::read_to_string(fixtures().join(format!("{stem}.run.jsonl"))).unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), recorded, "{stem}");
    }
}

/// `1234567` → `1,234,567`, as the CLI prints byte counts.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn small_models_stay_small_in_format_2_0() {
    let dir = tempfile::tempdir().unwrap();
    let models = shared().join("models");
    let size = |model: &str, weights: &str| {
        let out = dir.path().join(format!("{model}.{weights}.mxrt"));
        convert_quiet(&models.join(model), &out, &["--weights", weights]);
        let text = mxrt_ok(&["inspect", out.to_str().unwrap()]);
        assert!(text.contains(".mxrt 2.0,"), "{text}");
        std::fs::metadata(&out).unwrap().len()
    };
    // Half of the dense jsc-3layer file format 1.0 wrote at MXINT8 (10,260 bytes).
    let pruned = size("jsc-3layer-95pruned", "mxint8");
    assert!(
        pruned <= 5_130,
        "95 %-pruned jsc-3layer at MXINT8: {pruned} bytes"
    );
    // At most twice the safetensors source, at every encoding asked for in the issue.
    let source = std::fs::metadata(models.join("jsc-tiny/model.safetensors"))
        .unwrap()
        .len();
    for weights in ["f32", "mxint8", "fixed:8.4"] {
        let tiny = size("jsc-tiny", weights);
        assert!(
            tiny <= 2 * source,
            "jsc-tiny at {weights}: {tiny} bytes, source {source}"
        );
    }
}
