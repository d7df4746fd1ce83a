//! PyTorch checkpoints and the BERT family end to end, on the fixtures `scripts/make-torch-fixtures.py`
//! wrote with torch 2.15 / transformers 5.24 (committed; no PyTorch needed here): a Lightning `.ckpt` of a
//! MASE-style MLP, the same weights as a plain state dict in a `pytorch_model.bin` directory, storages shared
//! between views, the files that must be refused, and classifiers / sentence encoders of BERT, RoBERTa,
//! XLM-RoBERTa, CamemBERT, DistilBERT and ELECTRA from pytorch_model.bin and model.safetensors.
//! Numerics: FP32 outputs against what torch computed from the same files, max |difference| ≤ 1e-4.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch")
}

fn expected(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn convert_json(inputs: &[&Path], out: &Path) -> Value {
    let mut args = vec!["convert"];
    args.extend(inputs.iter().map(|p| p.to_str().unwrap()));
    args.extend(["-o", out.to_str().unwrap(), "--weights", "f32", "--json"]);
    serde_json::from_str(&mxrt_ok(&args)).unwrap()
}

/// Feature rows (a JSON array of arrays) as CSV lines.
fn features_csv(rows: &Value) -> String {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            floats(row)
                .iter()
                .map(|v| format!("{v:e}"))
                .collect::<Vec<_>>()
                .join(",")
                + "\n"
        })
        .collect()
}

/// `mxrt run --json` on the MLP fixture's inputs: one output vector per row.
fn run_mlp(model: &Path, dir: &Path) -> Vec<Vec<f32>> {
    let exp = expected(&fixtures().join("mlp/expected.json"));
    let csv = features_csv(&exp["inputs"]);
    let input = dir.join("x.csv");
    std::fs::write(&input, csv).unwrap();
    mxrt_ok(&[
        "run",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--json",
    ])
    .lines()
    .map(|l| floats(&serde_json::from_str::<Value>(l).unwrap()["outputs"]))
    .collect()
}

#[test]
fn a_lightning_checkpoint_converts_and_matches_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixtures();
    let out = dir.path().join("mlp.mxrt");
    let report = convert_json(
        &[&f.join("mlp/config.json"), &f.join("mlp/best.ckpt")],
        &out,
    );
    let notes: Vec<&str> = report["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("\"state_dict\" entry")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("starts with \"model.\"")),
        "{notes:?}"
    );
    let got = run_mlp(&out, dir.path());
    let want = expected(&f.join("mlp/expected.json"));
    let want: Vec<Vec<f32>> = want["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(floats)
        .collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!(max_abs_diff(g, w) <= 1e-4, "{g:?} vs torch {w:?}");
    }

    // The same weights as a plain state dict, in a checkpoint directory as pytorch_model.bin: the same file
    // content (tensor for tensor) as from the Lightning checkpoint.
    let model_dir = dir.path().join("mlp-bin");
    std::fs::create_dir_all(&model_dir).unwrap();
    std::fs::copy(f.join("mlp/config.json"), model_dir.join("config.json")).unwrap();
    std::fs::copy(
        f.join("mlp/state_dict.pt"),
        model_dir.join("pytorch_model.bin"),
    )
    .unwrap();
    let out_bin = dir.path().join("mlp-bin.mxrt");
    convert_json(&[&model_dir], &out_bin);
    let (a, b) = (dir.path().join("a.st"), dir.path().join("b.st"));
    for (m, st) in [(&out, &a), (&out_bin, &b)] {
        mxrt_ok(&[
            "dequantize",
            m.to_str().unwrap(),
            "-o",
            st.to_str().unwrap(),
        ]);
    }
    assert_eq!(read_f32_tensors(&a), read_f32_tensors(&b));

    // Dropout and identity ops (nothing at inference) change nothing but the notes.
    let mut cfg = expected(&f.join("mlp/config.json"));
    let layers = cfg["layers"].as_array_mut().unwrap();
    layers.insert(3, serde_json::json!({"op": "dropout", "p": 0.2}));
    layers.insert(1, serde_json::json!({"op": "identity"}));
    let cfg_path = dir.path().join("config.json");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let out_drop = dir.path().join("mlp-dropout.mxrt");
    let report = convert_json(&[&cfg_path, &f.join("mlp/best.ckpt")], &out_drop);
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("dropout: nothing to run at inference")
            && notes.contains("identity: nothing")
    );
    assert_eq!(run_mlp(&out_drop, dir.path()), got);
}

/// The BERT classifier from its pytorch_model.bin and from the safetensors twin: torch's token ids and logits
/// for texts and pairs.
#[test]
fn a_bert_pytorch_model_bin_matches_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    family_matches_pytorch("bert", BOTH, dir.path());
}

/// Shared storages, offsets, strided views and every storage type a state dict holds, read from the torch
/// file, give exactly the tensors torch wrote (contiguous) to the safetensors twin.
#[test]
fn views_and_storage_types_read_as_torch_wrote_them() {
    let f = fixtures();
    let torch = mxrt_converter::SourceFile::open(&f.join("views.pt")).unwrap();
    let twin = mxrt_converter::SourceFile::open(&f.join("views.safetensors")).unwrap();
    let (a, b) = (torch.tensors().unwrap(), twin.tensors().unwrap());
    let summary =
        |ts: &[mxrt_converter::SourceTensor<'_>]| -> Vec<(String, Vec<u64>, String, Vec<u8>)> {
            ts.iter()
                .map(|t| {
                    (
                        t.name.clone(),
                        t.shape.clone(),
                        t.dtype.to_string(),
                        t.data.to_vec(),
                    )
                })
                .collect()
        };
    assert_eq!(a.len(), 11);
    assert_eq!(summary(&a), summary(&b));
}

#[test]
fn legacy_hostile_and_whole_module_files_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixtures();
    let out = dir.path().join("x.mxrt");
    let refuse = |file: &str, needles: &[&str]| {
        let e = mxrt_err(&[
            "convert",
            f.join(file).to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_mentions(&e, needles);
        assert!(!out.exists());
    };
    refuse("legacy.pt", &["legacy.pt", "legacy format", "torch.save"]);
    // os.system pickles as posix.system on Linux.
    refuse(
        "evil.pt",
        &["evil.pt", "posix.system", "never runs pickled code"],
    );
    refuse(
        "module.pt",
        &[
            "module.pt",
            "torch.nn.modules.container.Sequential",
            "state_dict",
        ],
    );
    // Truncated: half a Lightning checkpoint.
    let bytes = std::fs::read(f.join("mlp/best.ckpt")).unwrap();
    let cut = dir.path().join("cut.ckpt");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = mxrt_err(&[
        "convert",
        f.join("mlp/config.json").to_str().unwrap(),
        cut.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_mentions(&e, &["cut.ckpt", "not a PyTorch checkpoint mxrt can read"]);
    assert!(!out.exists());
}

fn spearman_ranks(v: &[f64]) -> Vec<f64> {
    // No ties in these fixtures: a rank is the count of smaller values.
    v.iter()
        .map(|x| v.iter().filter(|y| *y < x).count() as f64)
        .collect()
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// Sentence pairs: `run --text A --text-pair B` and pair files give torch's token ids (token types 0/1
/// included, or the logits would differ) and logits; `eval` on an MRPC-layout file reports the accuracy and
/// F1 those logits give.
#[test]
fn sentence_pairs_run_and_evaluate_as_pytorch_computes_them() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixtures().join("bert");
    let out = dir.path().join("bert.mxrt");
    convert_json(&[&f], &out);
    let exp = expected(&f.join("expected.json"));
    let pairs: Vec<(String, String)> = exp["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut args = vec!["run", out.to_str().unwrap(), "--json", "--tokens"];
    for (a, _) in &pairs {
        args.extend(["--text", a.as_str()]);
    }
    for (_, b) in &pairs {
        args.extend(["--text-pair", b.as_str()]);
    }
    let lines = run_json(&args);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["input_ids"], exp["pair_input_ids"][i], "pair {i}");
        assert_eq!(line["text_pair"], pairs[i].1.as_str());
        let (got, want) = (floats(&line["logits"]), floats(&exp["pair_logits"][i]));
        assert!(
            max_abs_diff(&got, &want) <= 1e-4,
            "pair {i}: {got:?} vs {want:?}"
        );
    }
    // The same pairs from a file (RTE's column names), with a label column to evaluate on.
    let logits: Vec<Vec<f32>> = (0..pairs.len())
        .map(|i| floats(&exp["pair_logits"][i]))
        .collect();
    let predicted: Vec<usize> = logits.iter().map(|l| usize::from(l[1] > l[0])).collect();
    // Labels: the first as predicted, the second the other way: accuracy 1/2.
    let labels = [predicted[0], 1 - predicted[1]];
    let tsv = dir.path().join("dev.tsv");
    let mut text = String::from("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n");
    for ((a, b), l) in pairs.iter().zip(labels) {
        text += &format!("{l}\t1\t2\t{a}\t{b}\n");
    }
    std::fs::write(&tsv, text).unwrap();
    let lines = run_json(&[
        "run",
        out.to_str().unwrap(),
        "--input",
        tsv.to_str().unwrap(),
        "--json",
    ]);
    for (i, line) in lines.iter().enumerate() {
        assert!(max_abs_diff(&floats(&line["logits"]), &logits[i]) <= 1e-4);
    }
    let report: Value = serde_json::from_str(&mxrt_ok(&[
        "eval",
        out.to_str().unwrap(),
        "--data",
        tsv.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(report["task"], "pairs");
    assert_eq!(report["accuracy"], 0.5);
    let (tp, fp, fneg) = (0..2).fold((0.0, 0.0, 0.0), |(tp, fp, fneg), i| {
        match (predicted[i] == 1, labels[i] == 1) {
            (true, true) => (tp + 1.0, fp, fneg),
            (true, false) => (tp, fp + 1.0, fneg),
            (false, true) => (tp, fp, fneg + 1.0),
            _ => (tp, fp, fneg),
        }
    });
    let f1 = if tp == 0.0 {
        0.0
    } else {
        2.0 * tp / (2.0 * tp + fp + fneg)
    };
    assert_eq!(report["f1"].as_f64().unwrap(), f1);
    assert_eq!(report["agreement"], 1.0);
}

/// A one-label regression head (an STS-B cross-encoder): `run` prints the score, `eval` on GLUE's STS-B
/// layout reports Pearson and Spearman of those scores against the gold ones.
#[test]
fn a_regression_head_scores_pairs_as_pytorch_does() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixtures().join("bert-regression");
    let out = dir.path().join("sts.mxrt");
    let report = convert_json(&[&f], &out);
    assert!(report["notes"].to_string().contains("regression head"));
    let exp = expected(&f.join("expected.json"));
    let want: Vec<f64> = floats(&exp["scores"])
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let gold = [0.5, 3.0, 1.0, 4.5, 2.5];
    let tsv = dir.path().join("sts-dev.tsv");
    let mut text = String::from("index\tgenre\tsentence1\tsentence2\tscore\n");
    for (i, p) in exp["pairs"].as_array().unwrap().iter().enumerate() {
        text += &format!(
            "{i}\tmain\t{}\t{}\t{}\n",
            p[0].as_str().unwrap(),
            p[1].as_str().unwrap(),
            gold[i]
        );
    }
    std::fs::write(&tsv, text).unwrap();
    let lines = run_json(&[
        "run",
        out.to_str().unwrap(),
        "--input",
        tsv.to_str().unwrap(),
        "--json",
    ]);
    let got: Vec<f64> = lines.iter().map(|l| l["score"].as_f64().unwrap()).collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-4, "{got:?} vs torch {want:?}");
    }
    let report: Value = serde_json::from_str(&mxrt_ok(&[
        "eval",
        out.to_str().unwrap(),
        "--data",
        tsv.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(report["task"], "stsb");
    let spearman = pearson(&spearman_ranks(&want), &spearman_ranks(&gold));
    assert!((report["spearman"].as_f64().unwrap() - spearman).abs() < 1e-12);
    assert!((report["pearson"].as_f64().unwrap() - pearson(&want, &gold)).abs() < 1e-4);
}

/// `mxrt sweep --embeddings f32` keeps the embedding tables exact (as MASE, which quantizes linear layers
/// only) while the varied encoding applies to every linear layer; the default quantizes them too.
#[test]
fn sweeps_can_leave_the_embeddings_unquantized() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dev.tsv");
    std::fs::write(&data, "sentence\tlabel\na great film\t1\nboring plot\t0\n").unwrap();
    let model = fixtures().join("bert");
    let weights_of = |extra: &[&str]| -> Vec<(String, String)> {
        let out = dir.path().join("sweep");
        let mut args = vec![
            "sweep",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--json",
            "--vary",
            "encoding=mxint8",
        ];
        args.extend_from_slice(extra);
        let v: Value = serde_json::from_str(&mxrt_ok(&args)).unwrap();
        v["points"][0]["recipe"]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["kind"] == "embedding" || l["kind"] == "attention")
            .map(|l| {
                (
                    l["kind"].as_str().unwrap().to_string(),
                    l["weights"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let kept = weights_of(&["--embeddings", "f32"]);
    assert!(kept
        .iter()
        .all(|(k, w)| w == if k == "embedding" { "f32" } else { "mxint8" }));
    assert_eq!(kept.iter().filter(|(k, _)| k == "embedding").count(), 3);
    assert!(weights_of(&[]).iter().all(|(_, w)| w == "mxint8"));
}

/// `leaky_relu` (slope from the config) and `dropout` in an MLP config: outputs as torch's; the file is
/// description 2.1 and lists `leaky_relu` in `requires` (a 2.0 reader refuses it by name).
#[test]
fn a_leaky_relu_mlp_matches_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixtures().join("mlp-leaky");
    let out = dir.path().join("leaky.mxrt");
    convert_json(&[&f.join("config.json"), &f.join("model.pt")], &out);
    let exp = expected(&f.join("expected.json"));
    let csv = features_csv(&exp["inputs"]);
    let input = dir.path().join("x.csv");
    std::fs::write(&input, csv).unwrap();
    for backend_tier in ["reference", "avx2"] {
        let lines = run_json_env(
            &[
                "run",
                out.to_str().unwrap(),
                "--input",
                input.to_str().unwrap(),
                "--json",
            ],
            backend_tier,
        );
        assert_eq!(lines.len(), 6);
        for (i, line) in lines.iter().enumerate() {
            let (got, want) = (floats(&line["outputs"]), floats(&exp["outputs"][i]));
            assert!(
                max_abs_diff(&got, &want) <= 1e-5,
                "row {i}: {got:?} vs torch {want:?}"
            );
        }
    }
    let inspect: Value =
        serde_json::from_str(&mxrt_ok(&["inspect", out.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(inspect["version"], "2.1");
    assert_eq!(
        inspect["metadata"]["requires"],
        serde_json::json!(["leaky_relu"])
    );
    let ops = &inspect["metadata"]["hyperparameters"]["ops"];
    assert_eq!(
        ops[1],
        serde_json::json!({"op": "leaky_relu", "negative_slope": 0.2f32})
    );
    assert_eq!(ops.as_array().unwrap().len(), 3, "dropout left out: {ops}");
}

/// `mxrt ... --json` with MXRT_CPU set: one JSON value per line.
fn run_json_env(args: &[&str], tier: &str) -> Vec<Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mxrt"))
        .args(args)
        .env("MXRT_CPU", tier)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Converts fixture `name` (a classifier with texts and sentence pairs in its expected.json) from each of its
/// weight files `formats` (`model.safetensors`, `pytorch_model.bin`: each must exist), runs texts and pairs,
/// checks token ids and logits against torch's; returns the converter's report and the file of the first.
fn family_matches_pytorch(name: &str, formats: &[&str], dir: &Path) -> (Value, PathBuf) {
    let f = fixtures().join(name);
    let exp = expected(&f.join("expected.json"));
    let mut first = None;
    for format in formats {
        let weights = f.join(format);
        assert!(weights.is_file(), "{} is missing", weights.display());
        let out = dir.join(format!("{name}-{format}.mxrt"));
        let report = convert_json(&[&f.join("config.json"), &weights], &out);
        let what = format!("{name} from {format}");
        check_texts_and_pairs(&what, &out, &exp);
        first.get_or_insert((report, out));
    }
    first.expect("at least one format")
}

/// `mxrt run` on the texts and pairs of `exp`: torch's token ids and logits (max |difference| ≤ 1e-4).
fn check_texts_and_pairs(what: &str, model: &Path, exp: &Value) {
    let texts: Vec<&str> = exp["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let mut args = vec!["run", model.to_str().unwrap(), "--json", "--tokens"];
    for t in &texts {
        args.extend(["--text", t]);
    }
    for (i, line) in run_json(&args).iter().enumerate() {
        assert_eq!(line["input_ids"], exp["input_ids"][i], "{what} text {i}");
        let (got, want) = (floats(&line["logits"]), floats(&exp["logits"][i]));
        assert!(
            max_abs_diff(&got, &want) <= 1e-4,
            "{what} text {i}: {got:?} vs torch {want:?}"
        );
    }
    let pairs = exp["pairs"].as_array().unwrap();
    let mut args = vec!["run", model.to_str().unwrap(), "--json", "--tokens"];
    for p in pairs {
        args.extend(["--text", p[0].as_str().unwrap()]);
    }
    for p in pairs {
        args.extend(["--text-pair", p[1].as_str().unwrap()]);
    }
    for (i, line) in run_json(&args).iter().enumerate() {
        assert_eq!(
            line["input_ids"], exp["pair_input_ids"][i],
            "{what} pair {i}"
        );
        let (got, want) = (floats(&line["logits"]), floats(&exp["pair_logits"][i]));
        assert!(
            max_abs_diff(&got, &want) <= 1e-4,
            "{what} pair {i}: {got:?} vs torch {want:?}"
        );
    }
}

/// Both weight files of the families saved in both.
const BOTH: &[&str] = &["model.safetensors", "pytorch_model.bin"];

/// A RoBERTa classifier (position ids from padding_idx + 1, one token type, the dense + tanh + out_proj
/// head, a byte-level BPE tokenizer.json): texts and sentence pairs give torch's token ids and logits.
#[test]
fn a_roberta_classifier_matches_pytorch_on_texts_and_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let (report, out) = family_matches_pytorch("roberta", BOTH, dir.path());
    assert!(report["notes"].to_string().contains("padding_idx + 1 = 2"));
    let inspect: Value =
        serde_json::from_str(&mxrt_ok(&["inspect", out.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(inspect["version"], "2.1");
    let head = &inspect["metadata"]["hyperparameters"]["head"];
    assert_eq!(head["pooler"], "classifier.dense");
    assert_eq!(head["classifier"], "classifier.out_proj");
}

/// A DistilBERT classifier (its own layer names, no token types, pre_classifier + ReLU): texts and sentence
/// pairs (types all 0, as DistilBERT takes none) give torch's token ids and logits.
#[test]
fn a_distilbert_classifier_matches_pytorch_on_texts_and_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let (report, out) = family_matches_pytorch("distilbert", BOTH, dir.path());
    assert!(report["notes"]
        .to_string()
        .contains("DistilBERT has no token types"));
    let inspect: Value =
        serde_json::from_str(&mxrt_ok(&["inspect", out.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(inspect["version"], "2.1");
    let hp = &inspect["metadata"]["hyperparameters"];
    assert_eq!(hp["layer_names"], "distilbert");
    assert_eq!(hp["head"]["pooler"], "pre_classifier");
    assert_eq!(hp["head"]["pooler_activation"], "relu");
}

/// An ELECTRA discriminator classifier whose embeddings (16 wide) are projected to its hidden size (32), with
/// the dense + GELU + out_proj head: texts and pairs give torch's token ids and logits.
#[test]
fn an_electra_classifier_matches_pytorch_on_texts_and_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = family_matches_pytorch("electra", BOTH, dir.path());
    let inspect: Value =
        serde_json::from_str(&mxrt_ok(&["inspect", out.to_str().unwrap(), "--json"])).unwrap();
    let hp = &inspect["metadata"]["hyperparameters"];
    assert_eq!(hp["embedding_size"], 16);
    assert_eq!(hp["head"]["pooler_activation"], "gelu");
}

/// A BERT classifier with `hidden_act: relu`: torch's logits; the file requires `hidden_act_relu` (a 2.0
/// reader, which knows GELU only, refuses it by name).
#[test]
fn a_relu_bert_matches_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = family_matches_pytorch("bert-relu", &["pytorch_model.bin"], dir.path());
    let inspect: Value =
        serde_json::from_str(&mxrt_ok(&["inspect", out.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(inspect["metadata"]["hyperparameters"]["hidden_act"], "relu");
    assert_eq!(
        inspect["metadata"]["requires"],
        serde_json::json!(["hidden_act_relu"])
    );
    assert_eq!(inspect["version"], "2.1");
}

fn inspect_json(model: &Path) -> Value {
    serde_json::from_str(&mxrt_ok(&["inspect", model.to_str().unwrap(), "--json"])).unwrap()
}

/// An XLM-RoBERTa classifier with `hidden_act: gelu_new` (GELU's tanh approximation), from the safetensors
/// transformers wrote and from pytorch_model.bin: torch's logits; the file stores `gelu_tanh` and requires
/// `hidden_act_gelu_tanh` (a 2.0 reader would compute the exact GELU).
#[test]
fn an_xlm_roberta_classifier_with_gelu_new_matches_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = family_matches_pytorch("xlm-roberta", BOTH, dir.path());
    let inspect = inspect_json(&out);
    assert_eq!(inspect["version"], "2.1");
    let meta = &inspect["metadata"];
    assert_eq!(meta["hyperparameters"]["hidden_act"], "gelu_tanh");
    assert_eq!(
        meta["requires"],
        serde_json::json!(["hidden_act_gelu_tanh"])
    );
}

/// A CamemBERT classifier (`gelu_pytorch_tanh`) whose tokenizer is only `vocab.json` + `merges.txt`: the
/// byte-level BPE embedded as such (description 2.1) gives the token ids of transformers' Python
/// RobertaTokenizer (`<s> a </s></s> b </s>` for pairs) and torch's logits.
#[test]
fn a_camembert_classifier_with_a_vocab_json_and_merges_tokenizer_matches_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixtures().join("camembert");
    assert!(!f.join("tokenizer.json").exists());
    let (_, out) = family_matches_pytorch("camembert", &["pytorch_model.bin"], dir.path());
    let meta = &inspect_json(&out)["metadata"];
    assert_eq!(meta["tokenizer"]["format"], "byte-level-bpe");
    let files: Vec<&String> = meta["tokenizer"]["files"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(files, ["merges.txt", "vocab.json"]);
    assert_eq!(meta["hyperparameters"]["hidden_act"], "gelu_tanh");

    // vocab.json without merges.txt: refused, naming what is missing.
    let half = dir.path().join("half");
    std::fs::create_dir(&half).unwrap();
    for name in ["config.json", "pytorch_model.bin", "vocab.json"] {
        std::fs::copy(f.join(name), half.join(name)).unwrap();
    }
    let err = mxrt_err(&[
        "convert",
        half.to_str().unwrap(),
        "-o",
        dir.path().join("half.mxrt").to_str().unwrap(),
    ]);
    assert_mentions(&err, &["vocab.json but no merges.txt"]);
    // A merges.txt that is not pairs of symbols: refused at convert, naming the line.
    std::fs::write(
        half.join("merges.txt"),
        "#version: 0.2\nĠ a\nthree symbols here\n",
    )
    .unwrap();
    let err = mxrt_err(&[
        "convert",
        half.to_str().unwrap(),
        "-o",
        dir.path().join("half.mxrt").to_str().unwrap(),
    ]);
    assert_mentions(&err, &["merges.txt", "line 3"]);
    assert!(!dir.path().join("half.mxrt").exists());
}

/// sentence-transformers encoders on RoBERTa (mean pooling, Normalize, max_seq_length 24, safetensors) and
/// on DistilBERT (CLS pooling, pytorch_model.bin): torch's token ids (truncated) and embeddings.
#[test]
fn sentence_transformers_encoders_on_roberta_and_distilbert_match_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    for (name, pooling, normalize) in [
        ("st-roberta", "mean", true),
        ("st-distilbert", "cls", false),
    ] {
        let f = fixtures().join(name);
        let out = dir.path().join(format!("{name}.mxrt"));
        convert_json(&[&f], &out);
        let head = &inspect_json(&out)["metadata"]["hyperparameters"]["head"];
        assert_eq!(head["type"], "sentence_embedding", "{name}");
        assert_eq!(head["pooling"], pooling, "{name}");
        assert_eq!(head["normalize"], normalize, "{name}");
        let exp = expected(&f.join("expected.json"));
        let mut args = vec!["run", out.to_str().unwrap(), "--json", "--tokens"];
        for t in exp["texts"].as_array().unwrap() {
            args.extend(["--text", t.as_str().unwrap()]);
        }
        let lines = run_json(&args);
        assert_eq!(lines.len(), exp["texts"].as_array().unwrap().len());
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(line["input_ids"], exp["input_ids"][i], "{name} text {i}");
            let (got, want) = (floats(&line["embedding"]), floats(&exp["embeddings"][i]));
            assert_eq!(got.len(), 32);
            assert!(
                max_abs_diff(&got, &want) <= 1e-4,
                "{name} text {i}: {got:?} vs torch {want:?}"
            );
        }
    }
}
