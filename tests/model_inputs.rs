//! Model conversion on small synthetic checkpoints built here: sharded inputs, F16/BF16 sources, BatchNorm
//! folding, the tokenizer fallback, and every error a user can hit (each a clear message, exit 1, and no
//! output file left behind).

mod common;

use std::path::Path;

use common::*;
use safetensors::{tensor::TensorView, Dtype};
use serde_json::{json, Value};

/// A tensor to write: name, shape, dtype, little-endian bytes.
type RawTensor = (String, Vec<usize>, Dtype, Vec<u8>);

/// Deterministic pseudo-random values in [-0.5, 0.5).
fn values(n: usize, salt: u64) -> Vec<f32> {
    (0..n as u64)
        .map(|i| (((i * 2654435761 + salt * 97) % 1000) as f32 / 1000.0) - 0.5)
        .collect()
}

fn to_bytes(v: &[f32], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Dtype::F16 => v
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect(),
        Dtype::BF16 => v
            .iter()
            .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
            .collect(),
        _ => unreachable!(),
    }
}

/// The tensors of a tiny BertForSequenceClassification (vocab 40, hidden 8, 2 layers, 2 heads, ffn 16).
fn tiny_bert_tensors() -> Vec<(String, Vec<usize>)> {
    let mut t = vec![
        (
            "bert.embeddings.word_embeddings.weight".to_string(),
            vec![40, 8],
        ),
        (
            "bert.embeddings.position_embeddings.weight".into(),
            vec![16, 8],
        ),
        (
            "bert.embeddings.token_type_embeddings.weight".into(),
            vec![2, 8],
        ),
        ("bert.embeddings.LayerNorm.weight".into(), vec![8]),
        ("bert.embeddings.LayerNorm.bias".into(), vec![8]),
    ];
    for l in 0..2 {
        let p = format!("bert.encoder.layer.{l}");
        for part in [
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
        ] {
            t.push((format!("{p}.{part}.weight"), vec![8, 8]));
            t.push((format!("{p}.{part}.bias"), vec![8]));
        }
        t.push((format!("{p}.intermediate.dense.weight"), vec![16, 8]));
        t.push((format!("{p}.intermediate.dense.bias"), vec![16]));
        t.push((format!("{p}.output.dense.weight"), vec![8, 16]));
        t.push((format!("{p}.output.dense.bias"), vec![8]));
        for ln in ["attention.output.LayerNorm", "output.LayerNorm"] {
            t.push((format!("{p}.{ln}.weight"), vec![8]));
            t.push((format!("{p}.{ln}.bias"), vec![8]));
        }
    }
    t.extend([
        ("bert.pooler.dense.weight".into(), vec![8, 8]),
        ("bert.pooler.dense.bias".into(), vec![8]),
        ("classifier.weight".into(), vec![3, 8]),
        ("classifier.bias".into(), vec![3]),
    ]);
    t
}

fn tiny_bert_config() -> Value {
    json!({
        "architectures": ["BertForSequenceClassification"], "model_type": "bert", "vocab_size": 40, "hidden_size": 8,
        "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 16,
        "type_vocab_size": 2, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
        "id2label": {"0": "a", "1": "b", "2": "c"}
    })
}

fn write_safetensors(path: &Path, tensors: &[RawTensor]) {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, d, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, &None).unwrap()).unwrap();
}

/// Writes a tiny BERT checkpoint; `edit` may change the tensor list (name, shape, dtype, bytes) first.
fn write_tiny_bert(dir: &Path, dtype: Dtype, edit: impl FnOnce(&mut Vec<RawTensor>)) {
    let mut tensors: Vec<RawTensor> = tiny_bert_tensors()
        .into_iter()
        .enumerate()
        .map(|(i, (n, s))| {
            let b = to_bytes(&values(s.iter().product(), i as u64), dtype);
            (n, s, dtype, b)
        })
        .collect();
    edit(&mut tensors);
    std::fs::create_dir_all(dir).unwrap();
    write_safetensors(&dir.join("model.safetensors"), &tensors);
    std::fs::write(dir.join("config.json"), tiny_bert_config().to_string()).unwrap();
    let vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .chain((5..40).map(|i| format!("w{i}")))
        .collect();
    std::fs::write(dir.join("vocab.txt"), vocab.join("\n")).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"do_lower_case": true}"#,
    )
    .unwrap();
}

fn convert_json(model: &Path, out: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "convert",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    serde_json::from_str(&mxrt_ok(&args)).unwrap()
}

fn convert_err(model: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "convert",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let err = mxrt_err(&args);
    assert!(!out.exists(), "an output was left behind after: {err}");
    let leftovers: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".mxrt-partial"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
    err
}

#[test]
fn a_tiny_bert_converts_with_the_wordpiece_vocabulary_and_any_float_dtype() {
    let dir = tempfile::tempdir().unwrap();
    for dtype in [Dtype::F32, Dtype::F16, Dtype::BF16] {
        let model = dir.path().join(format!("{dtype:?}"));
        write_tiny_bert(&model, dtype, |_| {});
        let out = dir.path().join(format!("{dtype:?}.mxrt"));
        let report = convert_json(&model, &out, &["--weights", "f32"]);
        assert_eq!(
            report["tensors"].as_array().unwrap().len(),
            tiny_bert_tensors().len()
        );
        // f32 of an F16/BF16 source is exact.
        assert!(
            report["tensors"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["sqnr_db"].is_null()),
            "{dtype:?}"
        );
        let inspect: Value =
            serde_json::from_str(&mxrt_ok(&["inspect", out.to_str().unwrap(), "--json"])).unwrap();
        assert_eq!(
            inspect["metadata"]["tokenizer"]["format"],
            "wordpiece-vocab"
        );
        assert_eq!(
            inspect["metadata"]["tokenizer"]["files"]["vocab.txt"],
            "tokenizer/vocab.txt"
        );
        assert_eq!(
            inspect["metadata"]["hyperparameters"]["head"]["num_labels"],
            3
        );
    }
}

#[test]
fn a_sharded_checkpoint_gives_the_same_file_as_a_single_one() {
    let dir = tempfile::tempdir().unwrap();
    let single = dir.path().join("single");
    write_tiny_bert(&single, Dtype::F32, |_| {});
    let sharded = dir.path().join("sharded");
    std::fs::create_dir_all(&sharded).unwrap();
    for f in ["config.json", "vocab.txt", "tokenizer_config.json"] {
        std::fs::copy(single.join(f), sharded.join(f)).unwrap();
    }
    let bytes = std::fs::read(single.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut map = serde_json::Map::new();
    let mut shards: [Vec<RawTensor>; 2] = Default::default();
    for (i, (name, view)) in st.tensors().into_iter().enumerate() {
        let shard = i % 2;
        map.insert(
            name.clone(),
            json!(format!("model-0000{}-of-00002.safetensors", shard + 1)),
        );
        shards[shard].push((
            name,
            view.shape().to_vec(),
            view.dtype(),
            view.data().to_vec(),
        ));
    }
    for (k, shard) in shards.iter().enumerate() {
        write_safetensors(
            &sharded.join(format!("model-0000{}-of-00002.safetensors", k + 1)),
            shard,
        );
    }
    std::fs::write(
        sharded.join("model.safetensors.index.json"),
        json!({"metadata": {}, "weight_map": map}).to_string(),
    )
    .unwrap();
    let (a, b) = (dir.path().join("a.mxrt"), dir.path().join("b.mxrt"));
    convert_json(&single, &a, &["--weights", "mxint8"]);
    convert_json(&sharded, &b, &["--weights", "mxint8"]);
    let (da, db) = (
        dir.path().join("a.safetensors"),
        dir.path().join("b.safetensors"),
    );
    mxrt_ok(&[
        "dequantize",
        a.to_str().unwrap(),
        "-o",
        da.to_str().unwrap(),
    ]);
    mxrt_ok(&[
        "dequantize",
        b.to_str().unwrap(),
        "-o",
        db.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&da).unwrap(), std::fs::read(&db).unwrap());

    // An index that names a tensor its shard lacks is an error.
    let name_in_shard_two = map
        .iter()
        .find(|(_, v)| v.as_str().unwrap().starts_with("model-00002"))
        .map(|(k, _)| k.clone())
        .unwrap();
    map.insert(name_in_shard_two, json!("model-00001-of-00002.safetensors"));
    std::fs::write(
        sharded.join("model.safetensors.index.json"),
        json!({"weight_map": map}).to_string(),
    )
    .unwrap();
    let err = convert_err(&sharded, &dir.path().join("c.mxrt"), &[]);
    assert_mentions(&err, &["index puts"]);

    // Shard names that lead out of the checkpoint directory are refused before anything is opened: a
    // relative path, an absolute one, and a symbolic link to a file elsewhere.
    let outside = dir.path().join("outside.safetensors");
    std::fs::copy(sharded.join("model-00001-of-00002.safetensors"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, sharded.join("link.safetensors")).unwrap();
    for (shard, why) in [
        ("../outside.safetensors", "is not a plain file name"),
        (outside.to_str().unwrap(), "is not a plain file name"),
        ("link.safetensors", "leads out of the checkpoint directory"),
    ] {
        let mut lying = map.clone();
        for v in lying.values_mut() {
            *v = json!(shard);
        }
        std::fs::write(
            sharded.join("model.safetensors.index.json"),
            json!({"weight_map": lying}).to_string(),
        )
        .unwrap();
        let err = convert_err(&sharded, &dir.path().join("c.mxrt"), &[]);
        assert_mentions(
            &err,
            &[
                "model.safetensors.index.json",
                &format!("shard {shard:?} {why}"),
                "shards must be files in the checkpoint directory",
            ],
        );
    }
}

/// Config values, tokenizer and label maps are checked when converting, not at first use; and what is
/// wrong with an input path is said as it is, not as a missing config.json.
#[test]
fn config_tokenizer_and_paths_are_checked_at_convert() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mxrt");
    let model = dir.path().join("m");
    write_tiny_bert(&model, Dtype::F32, |_| {});
    let with_config = |edit: &dyn Fn(&mut Value)| {
        let mut c = tiny_bert_config();
        edit(&mut c);
        std::fs::write(model.join("config.json"), c.to_string()).unwrap();
    };
    for eps in [json!(-1), json!(0), json!(2.0), json!("1e-12")] {
        with_config(&|c| c["layer_norm_eps"] = eps.clone());
        let err = convert_err(&model, &out, &[]);
        assert_mentions(
            &err,
            &[
                "config.json",
                "\"layer_norm_eps\" must be a number in (0, 1)",
                &eps.to_string(),
            ],
        );
    }
    with_config(&|c| c["hidden_size"] = json!(-8));
    assert_mentions(
        &convert_err(&model, &out, &[]),
        &["\"hidden_size\" must be a positive integer, found -8"],
    );
    with_config(&|c| c["id2label"] = json!({"0": "a", "2": "c", "3": "d"}));
    assert_mentions(&convert_err(&model, &out, &[]), &["no label 1"]);
    with_config(&|_| {});

    // A tokenizer.json that is JSON but not a tokenizer: refused at convert, naming it.
    std::fs::write(
        model.join("tokenizer.json"),
        r#"{"version": "1.0", "model": 7}"#,
    )
    .unwrap();
    assert_mentions(
        &convert_err(&model, &out, &[]),
        &[
            "converted, but the runtime would refuse the result",
            "tokenizer.json",
        ],
    );
    std::fs::remove_file(model.join("tokenizer.json")).unwrap();
    convert_json(&model, &out, &[]);
    std::fs::remove_file(&out).unwrap();

    // Paths: a directory named model.safetensors, a FIFO config.json, a symbolic-link loop, a directory
    // we may not read (as root every directory is readable, so that case is only checked as a user).
    std::fs::remove_file(model.join("model.safetensors")).unwrap();
    std::fs::create_dir(model.join("model.safetensors")).unwrap();
    assert_mentions(
        &convert_err(&model, &out, &[]),
        &["model.safetensors is a directory, not a file"],
    );
    let fifo_dir = dir.path().join("fifo");
    std::fs::create_dir(&fifo_dir).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(fifo_dir.join("config.json"))
        .status()
        .unwrap();
    assert!(made.success());
    assert_mentions(
        &convert_err(&fifo_dir, &out, &[]),
        &["config.json is not a regular file"],
    );
    let looped = dir.path().join("loop");
    std::os::unix::fs::symlink(&looped, &looped).unwrap();
    let err = convert_err(&looped, &out, &[]);
    assert!(!err.contains("config.json"), "{err}");
    assert_mentions(&err, &["loop", "symbolic links"]);
}

#[test]
fn checkpoint_errors_are_clear_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mxrt");
    let case = |name: &str, edit: &dyn Fn(&mut Vec<RawTensor>)| {
        let model = dir.path().join(name);
        write_tiny_bert(&model, Dtype::F32, |t| edit(t));
        model
    };

    let m = case("missing", &|t| {
        t.retain(|x| x.0 != "bert.encoder.layer.1.output.dense.weight")
    });
    let err = convert_err(&m, &out, &[]);
    assert_mentions(
        &err,
        &[
            "lacks tensor \"bert.encoder.layer.1.output.dense.weight\"",
            "[8, 16]",
        ],
    );

    let m = case("extra", &|t| {
        t.push((
            "bert.encoder.layer.9.surprise".into(),
            vec![2],
            Dtype::F32,
            vec![0; 8],
        ))
    });
    let err = convert_err(&m, &out, &[]);
    assert_mentions(&err, &["bert.encoder.layer.9.surprise", "does not use"]);

    let m = case("shape", &|t| {
        let x = t
            .iter_mut()
            .find(|x| x.0 == "bert.encoder.layer.0.intermediate.dense.weight")
            .unwrap();
        x.1 = vec![8, 16];
    });
    let err = convert_err(&m, &out, &[]);
    assert_mentions(&err, &["intermediate.dense.weight", "[8, 16]", "[16, 8]"]);

    let m = case("nan", &|t| {
        let x = t
            .iter_mut()
            .find(|x| x.0 == "bert.pooler.dense.weight")
            .unwrap();
        x.3[4 * 5..4 * 6].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    let err = convert_err(&m, &out, &[]);
    assert_mentions(&err, &["\"bert.pooler.dense.weight\"", "index 5", "NaN"]);

    let m = case("inf", &|t| {
        let x = t.iter_mut().find(|x| x.0 == "classifier.bias").unwrap();
        x.3[..4].copy_from_slice(&f32::NEG_INFINITY.to_le_bytes());
    });
    let err = convert_err(&m, &out, &[]);
    assert_mentions(&err, &["\"classifier.bias\"", "index 0", "inf"]);

    let m = case("dtype", &|t| {
        let x = t.iter_mut().find(|x| x.0 == "classifier.weight").unwrap();
        x.2 = Dtype::F8_E4M3;
        x.3 = vec![0; 24];
    });
    let err = convert_err(&m, &out, &[]);
    assert_mentions(&err, &["classifier.weight", "F8_E4M3"]);

    let m = case("position-ids", &|t| {
        let ids: Vec<u8> = [0i64, 1, 2, 4]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        t.push((
            "bert.embeddings.position_ids".into(),
            vec![1, 4],
            Dtype::I64,
            ids,
        ));
    });
    let err = convert_err(&m, &out, &[]);
    assert_mentions(&err, &["bert.embeddings.position_ids", "not the standard"]);
    let m = case("position-ids-ok", &|t| {
        let ids: Vec<u8> = (0..16i64).flat_map(|v| v.to_le_bytes()).collect();
        t.push((
            "bert.embeddings.position_ids".into(),
            vec![1, 16],
            Dtype::I64,
            ids,
        ));
    });
    convert_json(&m, &out, &["--weights", "f32"]);
    std::fs::remove_file(&out).unwrap();

    let m = case("json", &|_| {});
    std::fs::write(m.join("config.json"), "{\"model_type\": \"bert\",").unwrap();
    let err = convert_err(&m, &out, &[]);
    assert_mentions(&err, &["config.json", "cannot read JSON"]);

    for (key, value, needle) in [
        (
            "hidden_act",
            json!("quick_gelu"),
            "hidden_act \"quick_gelu\" is not supported",
        ),
        (
            "model_type",
            json!("gpt2"),
            "model_type \"gpt2\" is not supported",
        ),
        (
            "architectures",
            json!(["BertForTokenClassification"]),
            "BertForTokenClassification",
        ),
        (
            "position_embedding_type",
            json!("relative_key"),
            "relative_key",
        ),
        ("num_attention_heads", json!(3), "not a multiple"),
        ("vocab_size", json!(-1), "positive integer"),
    ] {
        let m = case(&format!("cfg-{key}"), &|_| {});
        let mut cfg = tiny_bert_config();
        cfg[key] = value;
        std::fs::write(m.join("config.json"), cfg.to_string()).unwrap();
        let err = convert_err(&m, &out, &[]);
        assert!(err.contains(needle), "{key}: {err}");
    }

    // A sentencepiece model alone: refused, saying how to get a tokenizer.json.
    let m = case("sentencepiece", &|_| {});
    std::fs::remove_file(m.join("vocab.txt")).unwrap();
    std::fs::write(m.join("sentencepiece.bpe.model"), b"\x0a\x00").unwrap();
    let err = convert_err(&m, &out, &[]);
    assert_mentions(
        &err,
        &[
            "sentencepiece.bpe.model",
            "tokenizer.json",
            "save_pretrained",
            "--no-tokenizer",
        ],
    );

    let m = case("no-tokenizer", &|_| {});
    std::fs::remove_file(m.join("vocab.txt")).unwrap();
    let err = convert_err(&m, &out, &[]);
    assert_mentions(
        &err,
        &[
            "none of tokenizer.json, vocab.txt, or vocab.json + merges.txt",
            "--no-tokenizer",
        ],
    );
    convert_json(&m, &out, &["--no-tokenizer"]);
    // Such a file opens as a session (inspected, benchmarked on token ids); text in is refused by name.
    let o = out.to_str().unwrap();
    let bench = mxrt_ok(&[
        "bench",
        o,
        "--batch",
        "1",
        "--seq",
        "8",
        "--iterations",
        "1",
        "--json",
    ]);
    assert!(bench.contains("\"p50_ms\""), "{bench}");
    let err = mxrt_err(&["run", o, "--text", "a film"]);
    assert_mentions(&err, &["no embedded tokenizer", "--no-tokenizer"]);
    let err = mxrt_err(&["serve", o, "--port", "0"]);
    assert_mentions(&err, &["no embedded tokenizer", "a server takes text in"]);
    std::fs::remove_file(&out).unwrap();

    let recipe = dir.path().join("bad.toml");
    std::fs::write(&recipe, "[default]\nweights = \"mxint3\"\n").unwrap();
    let err = convert_err(
        &m,
        &out,
        &["--no-tokenizer", "--recipe", recipe.to_str().unwrap()],
    );
    assert_mentions(&err, &["bad.toml", "mxint3"]);
    let err = convert_err(&m, &out, &["--no-tokenizer", "--activations", "f16"]);
    assert_mentions(&err, &["activations can be"]);
    let err = convert_err(
        &m,
        &out,
        &["--no-tokenizer", "--prune", "l1", "--sparsity", "1.5"],
    );
    assert_mentions(&err, &["outside [0, 1)"]);

    let empty = dir.path().join("empty-dir");
    std::fs::create_dir_all(&empty).unwrap();
    let err = convert_err(&empty, &out, &[]);
    assert_mentions(&err, &["no config.json"]);

    // Model-only options on bare safetensors files.
    let err = convert_err(
        &m.join("model.safetensors"),
        &out,
        &["--activations", "mxint8"],
    );
    assert_mentions(&err, &["--activations needs a model"]);
}

/// An MLP with Linear -> BatchNorm (folded) and BatchNorm -> ReLU -> Linear (kept as affine), in BF16.
#[test]
fn batch_norm_after_a_linear_is_folded_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("mlp");
    std::fs::create_dir_all(&model).unwrap();
    let cfg = json!({"model_type": "mlp", "num_features": 4, "labels": ["x", "y"], "layers": [
        {"op": "batch_norm", "name": "bn0", "eps": 1e-3}, {"op": "relu"},
        {"op": "linear", "name": "fc1"}, {"op": "batch_norm", "name": "bn1", "eps": 1e-5}, {"op": "relu"},
        {"op": "linear", "name": "out"}, {"op": "softmax"}]});
    std::fs::write(model.join("config.json"), cfg.to_string()).unwrap();
    let w1 = values(6 * 4, 1);
    let b1 = values(6, 2);
    let (g, beta, mean) = (values(6, 3), values(6, 4), values(6, 5));
    let var: Vec<f32> = values(6, 6).iter().map(|v| v + 0.6).collect();
    let t =
        |n: &str, s: Vec<usize>, v: &[f32]| (n.to_string(), s, Dtype::F32, to_bytes(v, Dtype::F32));
    let ones4 = [1.0f32; 4];
    let zeros4 = [0.0f32; 4];
    write_safetensors(
        &model.join("model.safetensors"),
        &[
            t("bn0.weight", vec![4], &ones4),
            t("bn0.bias", vec![4], &zeros4),
            t("bn0.running_mean", vec![4], &zeros4),
            t("bn0.running_var", vec![4], &ones4),
            (
                "bn0.num_batches_tracked".into(),
                vec![],
                Dtype::I64,
                7i64.to_le_bytes().to_vec(),
            ),
            t("fc1.weight", vec![6, 4], &w1),
            t("fc1.bias", vec![6], &b1),
            t("bn1.weight", vec![6], &g),
            t("bn1.bias", vec![6], &beta),
            t("bn1.running_mean", vec![6], &mean),
            t("bn1.running_var", vec![6], &var),
            t("out.weight", vec![2, 6], &values(12, 7)),
        ],
    );
    let out = dir.path().join("mlp.mxrt");
    let report = convert_json(&model, &out, &["--weights", "f32"]);
    let notes = report["notes"].as_array().unwrap();
    assert!(notes.iter().any(|n| n
        .as_str()
        .unwrap()
        .contains("bn1: BatchNorm folded into the preceding linear fc1")));
    let deq = dir.path().join("mlp.safetensors");
    mxrt_ok(&[
        "dequantize",
        out.to_str().unwrap(),
        "-o",
        deq.to_str().unwrap(),
    ]);
    let got = read_f32_tensors(&deq);
    assert!(!got.contains_key("bn1.weight") && got.contains_key("bn0.scale"));
    for o in 0..6 {
        let s = f64::from(g[o]) / (f64::from(var[o]) + 1e-5).sqrt();
        for i in 0..4 {
            assert_eq!(
                got["fc1.weight"].1[o * 4 + i],
                (f64::from(w1[o * 4 + i]) * s) as f32
            );
        }
        let b = (f64::from(b1[o]) - f64::from(mean[o])) * s + f64::from(beta[o]);
        assert_eq!(got["fc1.bias"].1[o], b as f32);
    }
    // `out` had no bias: an all-zero one is stored so every linear has one.
    assert_eq!(got["out.bias"].1, vec![0.0; 2]);
    let inspect: Value =
        serde_json::from_str(&mxrt_ok(&["inspect", out.to_str().unwrap(), "--json"])).unwrap();
    let ops: Vec<&str> = inspect["metadata"]["hyperparameters"]["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["op"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        ["affine", "relu", "linear", "relu", "linear", "softmax"]
    );

    // A BatchNorm whose variance is negative enough to make var + eps <= 0 is refused, naming it.
    let mut bad = var.clone();
    bad[2] = -1.0;
    write_safetensors(
        &model.join("model.safetensors"),
        &[
            t("bn0.weight", vec![4], &ones4),
            t("bn0.bias", vec![4], &zeros4),
            t("bn0.running_mean", vec![4], &zeros4),
            t("bn0.running_var", vec![4], &ones4),
            t("fc1.weight", vec![6, 4], &w1),
            t("fc1.bias", vec![6], &b1),
            t("bn1.weight", vec![6], &g),
            t("bn1.bias", vec![6], &beta),
            t("bn1.running_mean", vec![6], &mean),
            t("bn1.running_var", vec![6], &bad),
            t("out.weight", vec![2, 6], &values(12, 7)),
        ],
    );
    let err = convert_err(&model, &dir.path().join("bad.mxrt"), &[]);
    assert_mentions(&err, &["bn1.running_var", "channel 2"]);
}

/// Checkpoints as found in the wild give the model the plain one gives: TensorFlow-style LayerNorm
/// gamma/beta names, a config without model_type or architectures (inferred from the tensors, classifier
/// included), pre-training heads beside the encoder, and an unmerged PEFT/LoRA checkpoint (merged here with
/// adapter_config.json's scale; refused with how to merge when that file is missing).
#[test]
fn checkpoints_in_the_wild_convert_to_the_plain_model() {
    let dir = tempfile::tempdir().unwrap();
    let dequantized = |model: &Path, name: &str| {
        let out = dir.path().join(format!("{name}.mxrt"));
        let report = convert_json(model, &out, &["--weights", "f32"]);
        let st = dir.path().join(format!("{name}.safetensors"));
        mxrt_ok(&[
            "dequantize",
            out.to_str().unwrap(),
            "-o",
            st.to_str().unwrap(),
        ]);
        let notes: Vec<String> = report["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect();
        (read_f32_tensors(&st), notes)
    };
    let plain = dir.path().join("plain");
    write_tiny_bert(&plain, Dtype::F32, |_| {});
    let (want, _) = dequantized(&plain, "plain");

    // TensorFlow names, pre-training heads, no model_type and no architectures.
    let old = dir.path().join("old");
    write_tiny_bert(&old, Dtype::F32, |ts| {
        for t in ts.iter_mut() {
            t.0 =
                t.0.replace("LayerNorm.weight", "LayerNorm.gamma")
                    .replace("LayerNorm.bias", "LayerNorm.beta");
        }
        for (n, s) in [
            ("cls.predictions.bias", vec![40]),
            ("cls.predictions.transform.dense.weight", vec![8, 8]),
            ("cls.seq_relationship.weight", vec![2, 8]),
        ] {
            let b = to_bytes(&values(s.iter().product(), 99), Dtype::F32);
            ts.push((n.to_string(), s, Dtype::F32, b));
        }
    });
    let mut cfg = tiny_bert_config();
    let obj = cfg.as_object_mut().unwrap();
    obj.remove("model_type");
    obj.remove("architectures");
    std::fs::write(old.join("config.json"), cfg.to_string()).unwrap();
    let (got, notes) = dequantized(&old, "old");
    assert_eq!(got, want);
    for needle in [
        "no \"model_type\": bert inferred from the tensor names",
        "read as BertForSequenceClassification",
        "10 LayerNorm tensors named gamma/beta",
        "3 tensors of pre-training heads",
    ] {
        assert!(
            notes.iter().any(|n| n.contains(needle)),
            "{needle}: {notes:?}"
        );
    }

    // PEFT: every name under base_model.model., LoRA on one query projection, the classifier trained as
    // modules_to_save beside its original.
    let query = "bert.encoder.layer.0.attention.self.query";
    let peft = dir.path().join("peft");
    let (a, b) = (values(2 * 8, 51), values(8 * 2, 52));
    write_tiny_bert(&peft, Dtype::F32, |ts| {
        for t in ts.iter_mut() {
            if t.0.starts_with(query) {
                t.0 = t.0.replace(query, &format!("{query}.base_layer"));
            } else if t.0.starts_with("classifier.") {
                t.0 =
                    t.0.replace("classifier.", "classifier.modules_to_save.default.");
            }
        }
        ts.push((
            format!("{query}.lora_A.default.weight"),
            vec![2, 8],
            Dtype::F32,
            to_bytes(&a, Dtype::F32),
        ));
        ts.push((
            format!("{query}.lora_B.default.weight"),
            vec![8, 2],
            Dtype::F32,
            to_bytes(&b, Dtype::F32),
        ));
        ts.push((
            "classifier.original_module.weight".into(),
            vec![3, 8],
            Dtype::F32,
            to_bytes(&values(24, 77), Dtype::F32),
        ));
        for t in ts.iter_mut() {
            t.0 = format!("base_model.model.{}", t.0);
        }
    });
    let e = convert_err(&peft, &dir.path().join("peft.mxrt"), &[]);
    assert_mentions(&e, &["LoRA", "adapter_config.json", "merge_and_unload"]);
    std::fs::write(
        peft.join("adapter_config.json"),
        r#"{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["query"]}"#,
    )
    .unwrap();
    let (got, notes) = dequantized(&peft, "peft");
    assert!(notes
        .iter()
        .any(|n| n.contains("LoRA adapters merged into 1 weight matrices")));
    assert!(notes.iter().any(|n| n.contains("modules_to_save")));
    let w = &want[&format!("{query}.weight")].1;
    let merged: Vec<f32> = (0..8)
        .flat_map(|o| (0..8).map(move |i| (o, i)))
        .map(|(o, i)| {
            let delta: f64 = (0..2)
                .map(|k| f64::from(b[o * 2 + k]) * f64::from(a[k * 8 + i]))
                .sum();
            (f64::from(w[o * 8 + i]) + delta * 2.0) as f32
        })
        .collect();
    assert_eq!(got[&format!("{query}.weight")].1, merged);
    for (name, t) in &want {
        if name != &format!("{query}.weight") {
            assert_eq!(&got[name], t, "{name}");
        }
    }
}

/// A MASE quantization pass config used as the recipe: fixed-point weights, inputs and biases on every
/// linear, rounded half to even, and a BatchNorm after a QAT-trained linear kept apart so that weights on
/// the 1/16 grid stay exactly on it (folded, fixed:8.4 would move them).
#[test]
fn a_mase_quantization_config_converts_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("mlp");
    std::fs::create_dir_all(&model).unwrap();
    let cfg = json!({"model_type": "mlp", "num_features": 4, "labels": ["x", "y"], "layers": [
        {"op": "linear", "name": "fc1"}, {"op": "batch_norm", "name": "bn1", "eps": 1e-5}, {"op": "relu"},
        {"op": "linear", "name": "out"}]});
    std::fs::write(model.join("config.json"), cfg.to_string()).unwrap();
    // Weights on the fixed:8.4 grid (multiples of 1/16), biases off it.
    let on_grid = |n: usize, salt: u64| -> Vec<f32> {
        values(n, salt)
            .iter()
            .map(|v| (v * 64.0).round() / 16.0)
            .collect()
    };
    let (w1, w2) = (on_grid(6 * 4, 1), on_grid(2 * 6, 2));
    let (b1, b2) = (values(6, 3), values(2, 4));
    let var: Vec<f32> = values(6, 6).iter().map(|v| v + 0.6).collect();
    let t =
        |n: &str, s: Vec<usize>, v: &[f32]| (n.to_string(), s, Dtype::F32, to_bytes(v, Dtype::F32));
    write_safetensors(
        &model.join("model.safetensors"),
        &[
            t("fc1.weight", vec![6, 4], &w1),
            t("fc1.bias", vec![6], &b1),
            t("bn1.weight", vec![6], &values(6, 7)),
            t("bn1.bias", vec![6], &values(6, 8)),
            t("bn1.running_mean", vec![6], &values(6, 9)),
            t("bn1.running_var", vec![6], &var),
            t("out.weight", vec![2, 6], &w2),
            t("out.bias", vec![2], &b2),
        ],
    );
    let recipe = dir.path().join("mase.toml");
    std::fs::write(
        &recipe,
        r#"
[passes.quantize]
by = "type"
[passes.quantize.default.config]
name = "NA"
[passes.quantize.linear.config]
name = "integer"
data_in_width = 8
data_in_frac_width = 4
weight_width = 8
weight_frac_width = 4
bias_width = 8
bias_frac_width = 4
"#,
    )
    .unwrap();
    let out = dir.path().join("mase.mxrt");
    let report = convert_json(&model, &out, &["--recipe", recipe.to_str().unwrap()]);
    assert!(report["notes"]
        .to_string()
        .contains("bn1: BatchNorm kept as a per-channel affine op (fold_batch_norm = false)"));
    for t in report["tensors"].as_array().unwrap() {
        match t["name"].as_str().unwrap() {
            // Exactly on the grid already: nothing lost.
            "fc1.weight" | "out.weight" => {
                assert_eq!(t["encoding"], "fixed:8.4");
                assert!(t["sqnr_db"].is_null(), "{t}");
            }
            "fc1.bias" | "out.bias" => assert_eq!(t["encoding"], "fixed:8.4"),
            _ => {}
        }
    }
    let deq = dir.path().join("mase.safetensors");
    mxrt_ok(&[
        "dequantize",
        out.to_str().unwrap(),
        "-o",
        deq.to_str().unwrap(),
    ]);
    let got = read_f32_tensors(&deq);
    assert_eq!(got["fc1.weight"].1, w1);
    // Biases rounded half to even onto the 1/16 grid.
    let expect: Vec<f32> = b1
        .iter()
        .map(|v| (v * 16.0).round_ties_even() / 16.0)
        .collect();
    assert_eq!(got["fc1.bias"].1, expect);
    let inspect: Value =
        serde_json::from_str(&mxrt_ok(&["inspect", out.to_str().unwrap(), "--json"])).unwrap();
    let layers = inspect["metadata"]["recipe"]["layers"].as_array().unwrap();
    let fc1 = layers.iter().find(|l| l["name"] == "fc1").unwrap();
    assert_eq!(fc1["activations"], "fixed:8.4");
    assert_eq!(fc1["biases"], "fixed:8.4");
    assert_eq!(fc1["rounding"], "even");
    assert_eq!(inspect["metadata"]["recipe"]["fold_batch_norm"], false);
    // Quantized biases are a description 2.1 field: the header says so.
    assert_eq!(inspect["version"], "2.1");

    // The same model folded (the default): the weights leave the grid and lose something.
    let folded = dir.path().join("folded.mxrt");
    let report = convert_json(&model, &folded, &["--weights", "fixed:8.4"]);
    let fc1 = report["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "fc1.weight")
        .unwrap();
    assert!(fc1["rmse"].as_f64().unwrap() > 0.0, "{fc1}");
    let inspect: Value =
        serde_json::from_str(&mxrt_ok(&["inspect", folded.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(inspect["version"], "2.0");
}
