//! `mxrt search` on the small labelled MLP: the outputs, a best recipe that meets the budget on the search
//! split and is smaller than the baseline, `best.toml` rebuilding exactly the evaluated model, and errors.

mod common;

use common::labelled_mlp::write_mlp;
use common::{assert_mentions, convert_quiet, mxrt_err, mxrt_ok};
use std::path::Path;

use serde_json::Value;

/// The arguments of `mxrt search` of the MLP in `dir` on its data.csv into `out`, with `extra` options.
fn search_args(dir: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["search", dir.to_str().unwrap(), "--data"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(dir.join("data.csv").to_str().unwrap().to_string());
    args.extend(["--out".to_string(), out.to_str().unwrap().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// That search with `--json`: its summary.
fn search_json(dir: &Path, out: &Path, extra: &[&str]) -> Value {
    let mut args = search_args(dir, out, extra);
    args.push("--json".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    serde_json::from_str(&mxrt_ok(&args)).unwrap()
}

/// That search, refused: its error message.
fn search_err(dir: &Path, out: &Path, extra: &[&str]) -> String {
    let args = search_args(dir, out, extra);
    mxrt_err(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn tensors(file: &Path) -> Value {
    let r: Value =
        serde_json::from_str(&mxrt_ok(&["inspect", file.to_str().unwrap(), "--json"])).unwrap();
    r["tensors"].clone()
}

/// A temporary directory holding the labelled MLP in `mlp/` (and room for outputs beside it).
fn mlp() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mlp");
    write_mlp(&dir);
    (tmp, dir)
}

/// `OUT/trials.json` of a finished search.
fn trials_file(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("trials.json")).unwrap()).unwrap()
}

/// Its trials.
fn trial_list(out: &Path) -> Vec<Value> {
    trials_file(out)["trial_list"].as_array().unwrap().clone()
}

/// Each trial's choice and metric.
fn choices_and_metrics(trials: &[Value]) -> Vec<(Value, Value)> {
    trials
        .iter()
        .map(|t| (t["choice"].clone(), t["metric"].clone()))
        .collect()
}

/// `best.toml` of the search in `out` through `mxrt convert`: the rebuilt model's path.
fn rebuild_best(dir: &Path, out: &Path, tmp: &Path) -> std::path::PathBuf {
    let rebuilt = tmp.join("rebuilt.mxrt");
    let recipe = out.join("best.toml");
    convert_quiet(dir, &rebuilt, &["--recipe", recipe.to_str().unwrap()]);
    rebuilt
}

#[test]
fn search_finds_a_smaller_recipe_within_the_budget_and_best_toml_rebuilds_it() {
    let (tmp, dir) = mlp();
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
    let list = trial_list(&out);
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
    let rebuilt = rebuild_best(&dir, &out, tmp.path());
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
    let (tmp, dir) = mlp();
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
    let (tmp, dir) = mlp();
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
    let (tmp, dir) = mlp();
    let out = tmp.path().join("o");
    let err = search_err(&dir, &out, &["--space", "mxint8"]);
    assert_mentions(&err, &["--space", "at least two"]);
    let err = search_err(&dir, &out, &["--space", "mxint8,mxint3"]);
    assert_mentions(&err, &["--space", "mxint3"]);
    let err = search_err(&dir, &out, &["--search-fraction", "1"]);
    assert_mentions(&err, &["--search-fraction", "(0, 1)"]);
    let err = search_err(&dir, &out, &["--budget", "-1"]);
    assert_mentions(&err, &["--budget", "0 or more"]);
    let err = search_err(&dir, &out, &["--budget", "1pt"]);
    assert_mentions(&err, &["--budget", "\"1pt\"", "2%"]);
    let err = search_err(
        &dir,
        &out,
        &[
            "--space",
            "mxint8,mxint4; activations=mxint8,fixed:8",
            "--activations",
            "f32",
        ],
    );
    assert_mentions(&err, &["--activations", "both"]);
    let err = search_err(&dir, &out, &["--space", "mxint8; sparsity=0..0.5"]);
    assert_mentions(&err, &["--space", "sparsity", "step"]);
    assert!(!out.exists(), "nothing written after a refused search");
}

/// The whole space syntax on a grid: weight encodings with calibrated fixed-point widths, sparsities and
/// activation encodings; the grid measures every point once, its best is the smallest feasible one, and
/// best.toml (fraction widths and pruning spelled out) rebuilds the evaluated model.
#[test]
fn a_grid_over_encodings_sparsity_and_activations_finds_the_smallest_feasible_point() {
    let (tmp, dir) = mlp();
    let out = tmp.path().join("grid");
    let space = "encoding=mxint8,mxint4,fixed:4..5; sparsity=0,0.5; activations=mxint8,fixed:8";
    let r = search_json(
        &dir,
        &out,
        &[
            "--budget",
            "3",
            "--space",
            space,
            "--strategy",
            "grid",
            "--jobs",
            "2",
        ],
    );
    // Two groups (fc1, out) of 4 x 2 x 2 choices: 256 points, each measured once.
    assert_eq!(r["trials"], 256);
    let list = trial_list(&out);
    let mut choices: Vec<String> = list.iter().map(|t| t["choice"].to_string()).collect();
    choices.sort();
    choices.dedup();
    assert_eq!(choices.len(), 256, "a point measured twice");
    let smallest_feasible = list
        .iter()
        .filter(|t| t["feasible"] == true)
        .map(|t| t["weight_bytes"].as_u64().unwrap())
        .min()
        .unwrap();
    assert_eq!(
        r["best"]["weight_bytes"].as_u64().unwrap(),
        smallest_feasible
    );
    assert!(
        !out.join("trials.partial.jsonl").exists(),
        "journal left behind"
    );

    // best.toml spells each choice out: `fixed:W.F` with the fraction width, pruning as l1 per tensor.
    let best = r["best"]["choice"].as_array().unwrap();
    let toml = std::fs::read_to_string(out.join("best.toml")).unwrap();
    for c in best {
        let c = c.as_str().unwrap();
        if c.contains("sparsity=0.5") {
            assert!(toml.contains("sparsity = 0.5, scope = \"local\""), "{toml}");
        }
        for w in ["fixed:4 ", "fixed:5 "] {
            if c.starts_with(w) {
                assert!(
                    toml.contains(&format!("weights = \"{}.", w.trim())),
                    "{toml}"
                );
            }
        }
    }
    let rebuilt = rebuild_best(&dir, &out, tmp.path());
    assert_eq!(tensors(&rebuilt), tensors(&out.join("best.mxrt")));

    // A grid larger than --trials is refused before any work.
    let err = search_err(
        &dir,
        &tmp.path().join("refused"),
        &["--space", space, "--strategy", "grid", "--trials", "100"],
    );
    assert_mentions(&err, &["grid", "256 points", "--trials 100"]);
}

/// Parallel trials do not change a seeded search: random with one job and with two measures the same
/// points with the same results.
#[test]
fn parallel_trials_give_the_same_search() {
    let (tmp, dir) = mlp();
    let run = |jobs: &str| -> Vec<(Value, Value)> {
        let out = tmp.path().join(format!("j{jobs}"));
        search_json(
            &dir,
            &out,
            &[
                "--space",
                "mxint8,mxint4,mxfp4; sparsity=0,0.25",
                "--strategy",
                "random",
                "--trials",
                "10",
                "--jobs",
                jobs,
            ],
        );
        choices_and_metrics(&trial_list(&out))
    };
    let (one, two) = (run("1"), run("2"));
    assert_eq!(one.len(), 1 + 3 + 10);
    assert_eq!(one, two);
}

/// `--resume` takes what an earlier run measured: from its trials.json, and from the journal an
/// interrupted run leaves (a line cut short skipped); a different search is refused.
#[test]
fn resume_reuses_finished_and_interrupted_runs() {
    let (tmp, dir) = mlp();
    let out = tmp.path().join("r");
    let args = |trials: &'static str| {
        vec![
            "--space",
            "mxint8,mxint4,mxfp4",
            "--trials",
            trials,
            "--seed",
            "5",
            "--jobs",
            "1",
        ]
    };
    let first = search_json(&dir, &out, &args("6"));
    assert_eq!(first["resumed_trials"], 0);
    let before = choices_and_metrics(&trial_list(&out));
    let mut more = args("10");
    more.push("--resume");
    let second = search_json(&dir, &out, &more);
    // The same seed retraces the first run's 1 + 2 + 6 trials (the same points, measured then), then goes
    // on (a later suggestion of a point measured before is reused too: the space has 9 points).
    assert_eq!(second["trials"], 1 + 2 + 10);
    assert!(second["resumed_trials"].as_u64().unwrap() >= 9);
    let trials = trial_list(&out);
    assert!(trials[..9].iter().all(|t| t["resumed"] == true));
    assert_eq!(choices_and_metrics(&trials[..9]), before);

    // An interrupted run: only its journal, the last line cut short.
    let finished = trials_file(&out);
    let mut journal = format!(
        "{}\n",
        serde_json::json!({"fingerprint": finished["fingerprint"]})
    );
    for t in finished["trial_list"].as_array().unwrap().iter().take(5) {
        journal += &format!("{t}\n");
    }
    journal += "{\"choice\": [\"mxint4\", \"mxi";
    std::fs::remove_file(out.join("trials.json")).unwrap();
    std::fs::write(out.join("trials.partial.jsonl"), journal).unwrap();
    let third = search_json(&dir, &out, &more);
    let trials = trial_list(&out);
    assert!(trials[..5].iter().all(|t| t["resumed"] == true));
    // What the journal lacks is measured again.
    assert!(trials.iter().any(|t| t["resumed"] == false));
    assert!(third["resumed_trials"].as_u64().unwrap() >= 5);
    assert_eq!(third["best"]["choice"], second["best"]["choice"]);

    // Another space is another search.
    let err = search_err(&dir, &out, &["--space", "mxint8,mxint4", "--resume"]);
    assert_mentions(&err, &["--resume", "different search", "space"]);
    let err = search_err(&dir, &tmp.path().join("empty"), &["--resume"]);
    assert_mentions(&err, &["--resume", "no trials.json"]);
    // A journal that is not ours.
    let damaged = tmp.path().join("damaged");
    std::fs::create_dir_all(&damaged).unwrap();
    std::fs::write(damaged.join("trials.partial.jsonl"), "not json\n").unwrap();
    let err = search_err(&dir, &damaged, &["--resume"]);
    assert_mentions(&err, &["--resume", "trials.partial.jsonl", "fingerprint"]);
}

/// `--group` as a list: a glob makes one group, layers no selector matches keep the baseline (in
/// best.toml too); a selector that matches nothing is refused.
#[test]
fn group_lists_search_the_named_layers_only() {
    let (tmp, dir) = mlp();
    let out = tmp.path().join("g");
    let r = search_json(
        &dir,
        &out,
        &[
            "--group",
            "fc*",
            "--space",
            "mxint8,mxint4",
            "--strategy",
            "grid",
            "--budget",
            "60%",
        ],
    );
    // A relative budget: 60 % of FP32's accuracy on the search split, in points.
    let fp32 = r["search_split"]["fp32"].as_f64().unwrap();
    let points = r["budget_points"].as_f64().unwrap();
    assert!((points - 60.0 * fp32).abs() < 1e-9, "{points} vs {fp32}");
    assert_eq!(r["groups"].as_array().unwrap().len(), 1);
    assert_eq!(r["groups"][0]["layers"], serde_json::json!(["fc1"]));
    assert_eq!(r["baseline_layers"], serde_json::json!(["out"]));
    // A budget of ~50 points takes mxint4 for fc1; `out` stays at the baseline's mxint8.
    assert_eq!(r["best"]["choice"], serde_json::json!(["mxint4"]));
    let t = tensors(&out.join("best.mxrt"));
    let encoding = |name: &str| {
        t.as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .map(|x| x["encoding"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert!(encoding("fc1.weight").contains("mxint4"), "{t}");
    assert!(encoding("out.weight").contains("mxint8"), "{t}");
    let err = search_err(&dir, &tmp.path().join("no"), &["--group", "fc*,attention"]);
    assert_mentions(
        &err,
        &["--group", "\"attention\"", "matches no weight layer"],
    );
}

/// Trials build the checkpoint again and again through a memo of encoded tensors: every build through it
/// gives the bytes a fresh source gives (encodings revisited, a pruned build between, which must not be
/// served from the memo).
#[test]
fn memoized_builds_are_the_builds_of_a_fresh_source() {
    use mxrt_converter::model_convert::{ModelOptions, Shortcuts, Source};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mlp");
    write_mlp(&dir);
    let inputs = [dir.clone()];
    let memo = Source::open(&inputs, false).unwrap().memoize_encodings();
    let settings = [
        ("fixed:4.2", None),
        ("mxint8", None),
        ("fixed:4.2", Some(("l1", 0.5))),
        ("fixed:4.2", None),
        ("mxint8", None),
        ("fixed:6.3", None),
    ];
    for (weights, prune) in settings {
        let shortcuts = Shortcuts {
            weights: Some(weights.into()),
            activations: Some("fixed:8.4".into()),
            rounding: None,
            prune: prune.map(|(m, s): (&str, f64)| (m.to_string(), s, "local".to_string(), 0)),
        };
        let options = ModelOptions::from_recipe(None, &shortcuts).unwrap();
        let fresh = Source::open(&inputs, false).unwrap();
        let out = Path::new("x.mxrt");
        let a = memo.build(out, &options, &mut |_, _, _| {}).unwrap();
        let b = fresh.build(out, &options, &mut |_, _, _| {}).unwrap();
        assert!(
            a.bytes == b.bytes,
            "{weights} {prune:?}: the memoized build differs"
        );
        let sqnr = |r: &mxrt_converter::model_convert::ModelReport| -> Vec<Option<f64>> {
            r.tensors.iter().map(|t| t.fidelity.sqnr_db).collect()
        };
        assert_eq!(sqnr(&a.report), sqnr(&b.report), "{weights} {prune:?}");
    }
}
