//! Sizes from the command line are bounded before anything is allocated: a batch, a sequence count or an
//! iteration count that cannot fit ends in a clear error naming the flag, not an abort or a wrapped number.

mod common;

use common::{convert_quiet, mxrt_err, mxrt_ok, shared};

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
                "x.csv: row 2, column 4 holds {shown} (pass --allow-nonfinite to run on it anyway)"
            )),
            "{bad}: {e}"
        );
        // The explicit flag runs it (the runtime's own refusal, for library callers, is tested there).
        mxrt_ok(&[
            "run",
            model.to_str().unwrap(),
            "--input",
            csv.to_str().unwrap(),
            "--allow-nonfinite",
        ]);
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

/// Evaluation data and references are checked against the model: column counts exact, labels in range,
/// the reference the model's own checkpoint (unless --force); and a negative --sparsity is a value, not a flag.
#[test]
fn labels_columns_and_references_are_checked_against_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("jsc.mxrt");
    convert_quiet(
        &shared().join("models/jsc-3layer"),
        &model,
        &["--weights", "mxint8"],
    );
    let m = model.to_str().unwrap();
    let write = |name: &str, rows: &[Vec<String>]| {
        let p = dir.path().join(name);
        let text: Vec<String> = rows.iter().map(|r| r.join(",")).collect();
        std::fs::write(&p, text.join("\n") + "\n").unwrap();
        p
    };
    let features =
        |n: usize| -> Vec<String> { (0..n).map(|i| format!("{}", i as f32 * 0.1)).collect() };
    let x17 = write("x17.csv", &[features(17), features(17)]);
    let e = mxrt_err(&["eval", m, "--data", x17.to_str().unwrap(), "--reference", m]);
    assert!(e.contains("x17.csv: rows of 17 values; the model takes 16 features (or 16 features + 5 one-hot label columns)"), "{e}");

    let mut bad_one_hot = features(16);
    bad_one_hot.extend(["0", "0", "2", "0", "0"].map(String::from));
    let x21 = write("x21.csv", &[bad_one_hot]);
    let e = mxrt_err(&["eval", m, "--data", x21.to_str().unwrap()]);
    assert!(
        e.contains("x21.csv: row 1: one-hot label [0.0, 0.0, 2.0, 0.0, 0.0] is not one 1 among 0s"),
        "{e}"
    );

    let x16 = write("x16.csv", &[features(16), features(16)]);
    let own = shared().join("models/jsc-3layer");
    let own = own.to_str().unwrap();
    for (label, ok) in [("99", false), ("-5", false), ("1.5", false), ("4", true)] {
        let labels = write("l.csv", &[vec!["0".into()], vec![label.into()]]);
        let args = [
            "eval",
            m,
            "--data",
            x16.to_str().unwrap(),
            "--labels",
            labels.to_str().unwrap(),
            "--reference",
            own,
        ];
        if ok {
            mxrt_ok(&args);
        } else {
            let e = mxrt_err(&args);
            assert!(
                e.contains(&format!(
                    "l.csv: row 2: label {label}, the model's classes are 0 to 4"
                )),
                "{e}"
            );
        }
    }

    // References: another checkpoint of the same shape is refused unless --force; another architecture always.
    let other = shared().join("models/jsc-3layer-70pruned");
    let e = mxrt_err(&[
        "eval",
        m,
        "--synthetic",
        "8",
        "--reference",
        other.to_str().unwrap(),
    ]);
    assert!(
        e.contains("was converted from other weights than") && e.contains("--force"),
        "{e}"
    );
    mxrt_ok(&[
        "eval",
        m,
        "--synthetic",
        "8",
        "--reference",
        other.to_str().unwrap(),
        "--force",
    ]);
    let bert = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/format-1.0/tiny-bert.mxint8-wa.mxrt");
    let e = mxrt_err(&[
        "eval",
        m,
        "--synthetic",
        "8",
        "--reference",
        bert.to_str().unwrap(),
    ]);
    assert!(
        e.contains("is a bert model, but") && e.contains("is a mlp model"),
        "{e}"
    );

    let e = mxrt_err(&[
        "convert",
        own,
        "-o",
        dir.path().join("p.mxrt").to_str().unwrap(),
        "--prune",
        "l1",
        "--sparsity",
        "-0.1",
    ]);
    assert!(e.contains("sparsity -0.1 is outside [0, 1)"), "{e}");
}
