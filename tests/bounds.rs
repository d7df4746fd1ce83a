//! Sizes from the command line are bounded before anything is allocated: a batch, a sequence count or an
//! iteration count that cannot fit ends in a clear error naming the flag, not an abort or a wrapped number.

mod common;

use common::{convert_quiet, mxrt_err, shared};

#[test]
fn absurd_sizes_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("jsc.mxrt");
    convert_quiet(&shared().join("models/jsc-3layer"), &model, &[]);
    let m = model.to_str().unwrap();
    let e = mxrt_err(&["bench", m, "--batch", "1099511627776"]);
    assert!(
        e.contains("--batch 1099511627776 needs about") && e.contains("available"),
        "{e}"
    );
    let e = mxrt_err(&["bench", m, "--batch", "9223372036854775808"]);
    assert!(e.contains("needs more than 16 EiB"), "{e}");
    let e = mxrt_err(&["bench", m, "--iterations", "1099511627776"]);
    assert!(
        e.contains("--iterations and --warmup are at most 10000000"),
        "{e}"
    );
    let e = mxrt_err(&["eval", m, "--synthetic", "1000000000000"]);
    assert!(e.contains("--synthetic 1000000000000 needs about"), "{e}");
    let e = mxrt_err(&["bench", "--kernels", "--batch", "1099511627776"]);
    assert!(e.contains("--kernels with --batch 1099511627776"), "{e}");
}

#[test]
fn non_finite_features_and_a_max_length_under_two_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("jsc.mxrt");
    convert_quiet(&shared().join("models/jsc-3layer"), &model, &[]);
    for (bad, shown) in [("nan", "NaN"), ("1e400", "inf"), ("-inf", "-inf")] {
        let csv = dir.path().join("x.csv");
        let mut row = vec!["0.5"; 16];
        row[3] = bad;
        std::fs::write(
            &csv,
            format!("{}\n{}\n", vec!["0.1"; 16].join(","), row.join(",")),
        )
        .unwrap();
        let e = mxrt_err(&[
            "run",
            model.to_str().unwrap(),
            "--input",
            csv.to_str().unwrap(),
        ]);
        assert!(
            e.contains(&format!(
                "feature row 1, column 3 (counting from 0) is {shown}"
            )),
            "{bad}: {e}"
        );
    }
    let bert = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/format-1.0/tiny-bert.mxint8-wa.mxrt");
    for short in ["0", "1"] {
        let e = mxrt_err(&[
            "run",
            bert.to_str().unwrap(),
            "--text",
            "hi",
            "--max-length",
            short,
        ]);
        assert!(
            e.contains(&format!("max_length: {short} is too short")),
            "{e}"
        );
    }
}
