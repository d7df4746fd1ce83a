//! `mxrt search` on the small labelled MLP: the outputs, a best recipe that meets the budget on the search
//! split and is smaller than the baseline, `best.toml` rebuilding exactly the evaluated model, and errors.

mod common;

use common::labelled_mlp::write_mlp;
use common::{assert_mentions, mxrt_err, mxrt_ok};
use serde_json::Value;

/// `mxrt search` of the MLP in `dir` on its data.csv into `out`, with `extra` options: the JSON summary.
fn search_json(dir: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> Value {
    let data = dir.join("data.csv");
    let mut args = vec![
        "search",
        dir.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    serde_json::from_str(&mxrt_ok(&args)).unwrap()
}

fn tensors(file: &std::path::Path) -> Value {
    let r: Value =
        serde_json::from_str(&mxrt_ok(&["inspect", file.to_str().unwrap(), "--json"])).unwrap();
    r["tensors"].clone()
}

#[test]
fn search_finds_a_smaller_recipe_within_the_budget_and_best_toml_rebuilds_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mlp");
    write_mlp(&dir);
    let (data, out) = (dir.join("data.csv"), tmp.path().join("search"));
    let r = search_json(
        &dir,
        &out,
        &[
            "--budget",
            "3",
            "--space",
            "mxint8,mxint4,fixed:4.3",
            "--strategy",
            "greedy",
        ],
    );
    for f in [
        "trials.csv",
        "trials.json",
        "best.toml",
        "best.mxrt",
        "pareto.png",
        "pareto.svg",
        "sensitivity.png",
        "sensitivity.svg",
        "report.md",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    assert_eq!(r["search_split"]["examples"], 150);
    assert_eq!(r["held_out_split"]["examples"], 150);
    // Two groups (fc1, out) x two candidates, the baseline, two uniform points, then greedy moves.
    let trials: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("trials.json")).unwrap()).unwrap();
    let list = trials["trial_list"].as_array().unwrap();
    let phase = |p: &str| list.iter().filter(|t| t["phase"] == p).count();
    assert_eq!(
        (phase("baseline"), phase("sensitivity"), phase("uniform")),
        (1, 4, 2)
    );
    let csv = std::fs::read_to_string(out.join("trials.csv")).unwrap();
    assert_eq!(csv.lines().count(), list.len() + 1);

    let best = &r["best"];
    let (best_bytes, baseline_bytes) = (
        best["weight_bytes"].as_u64().unwrap(),
        r["baseline"]["weight_bytes"].as_u64().unwrap(),
    );
    assert!(
        best_bytes < baseline_bytes,
        "{best_bytes} vs {baseline_bytes}"
    );
    assert!(best["drop_points"].as_f64().unwrap() <= 3.0);
    // The held-out split was evaluated (its own number, from examples no choice saw).
    assert!(r["held_out_split"]["best"].as_f64().is_some());

    // best.toml through convert: the same tensors, byte for byte, as the evaluated model.
    let rebuilt = tmp.path().join("rebuilt.mxrt");
    mxrt_ok(&[
        "convert",
        dir.to_str().unwrap(),
        "-o",
        rebuilt.to_str().unwrap(),
        "--recipe",
        out.join("best.toml").to_str().unwrap(),
        "--quiet",
    ]);
    let (a, b) = (tensors(&rebuilt), tensors(&out.join("best.mxrt")));
    assert_eq!(a, b, "tensor tables differ");
    let weight_bytes: u64 = a
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"].as_str().unwrap().ends_with(".weight"))
        .map(|t| t["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(weight_bytes, best_bytes);
    // And the same metric on the search split (its first 150 rows).
    let search_rows: String = std::fs::read_to_string(&data)
        .unwrap()
        .lines()
        .take(150)
        .map(|l| format!("{l}\n"))
        .collect();
    let split = tmp.path().join("search-split.csv");
    std::fs::write(&split, search_rows).unwrap();
    let e: Value = serde_json::from_str(&mxrt_ok(&[
        "eval",
        rebuilt.to_str().unwrap(),
        "--data",
        split.to_str().unwrap(),
        "--reference",
        dir.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(e["accuracy"].as_f64(), best["search_metric"].as_f64());
}

/// TPE (the default) and random: the seed makes a run repeatable; trials beyond the baseline and the uniform
/// points are the strategy's, no sensitivity table is drawn, and TPE's best is feasible and smaller.
#[test]
fn tpe_and_random_are_seeded_and_keep_their_best_within_the_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mlp");
    write_mlp(&dir);
    let run = |strategy: &str, out: &str| -> Value {
        let out = tmp.path().join(out);
        let r = search_json(
            &dir,
            &out,
            &[
                "--budget",
                "3",
                "--space",
                "mxint8,mxint4,fixed:4.3",
                "--strategy",
                strategy,
                "--trials",
                "16",
                "--seed",
                "3",
            ],
        );
        assert!(!out.join("sensitivity.png").exists());
        assert!(out.join("pareto.png").exists() && out.join("best.toml").exists());
        r
    };
    let (a, b) = (run("tpe", "a"), run("tpe", "b"));
    assert_eq!(a["trials"], 1 + 2 + 16);
    assert_eq!(
        a["best"]["choice"], b["best"]["choice"],
        "same seed, same search"
    );
    let best = &a["best"];
    assert!(best["drop_points"].as_f64().unwrap() <= 3.0);
    assert!(best["weight_bytes"].as_u64() < a["baseline"]["weight_bytes"].as_u64());
    let r = run("random", "r");
    assert_eq!(r["trials"], 1 + 2 + 16);
    assert!(r["best"]["drop_points"].as_f64().unwrap() <= 3.0);
}

/// `--target-bytes`: the best metric with the weights under the target, by tpe and by greedy.
#[test]
fn a_byte_target_is_met_by_every_strategy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mlp");
    write_mlp(&dir);
    // Baseline (MXINT8): 2,442 weight bytes; every layer at MXINT4: 1,258.
    for strategy in ["tpe", "greedy"] {
        let out = tmp.path().join(strategy);
        let r = search_json(
            &dir,
            &out,
            &[
                "--target-bytes",
                "1800",
                "--space",
                "mxint8,mxint4",
                "--strategy",
                strategy,
                "--trials",
                "12",
            ],
        );
        assert_eq!(r["baseline"]["weight_bytes"], 2442);
        let bytes = r["best"]["weight_bytes"].as_u64().unwrap();
        assert!(bytes <= 1800, "{strategy}: {bytes}");
        let report = std::fs::read_to_string(out.join("report.md")).unwrap();
        assert!(
            report.contains("with at most 1,800 weight bytes"),
            "{report}"
        );
    }
}

#[test]
fn search_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mlp");
    write_mlp(&dir);
    let data = dir.join("data.csv");
    let (d, c) = (dir.to_str().unwrap(), data.to_str().unwrap());
    let out = tmp.path().join("o");
    let o = out.to_str().unwrap();
    let err = mxrt_err(&["search", d, "--data", c, "--space", "mxint8", "--out", o]);
    assert_mentions(&err, &["--space", "at least two"]);
    let err = mxrt_err(&[
        "search",
        d,
        "--data",
        c,
        "--space",
        "mxint8,mxint3",
        "--out",
        o,
    ]);
    assert_mentions(&err, &["--space", "mxint3"]);
    let err = mxrt_err(&[
        "search",
        d,
        "--data",
        c,
        "--search-fraction",
        "1",
        "--out",
        o,
    ]);
    assert_mentions(&err, &["--search-fraction", "(0, 1)"]);
    let err = mxrt_err(&["search", d, "--data", c, "--budget", "-1", "--out", o]);
    assert_mentions(&err, &["--budget", "0 or more"]);
    assert!(!out.exists(), "nothing written after a refused search");
}
