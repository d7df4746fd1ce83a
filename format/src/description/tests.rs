//! Tests of the model description (FORMAT.md section 9): parsing, the errors naming section and field,
//! and the tensors a description needs.

use super::*;
use serde_json::json;

fn meta(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("test metadata is an object"),
    }
}

fn bert_hp() -> Value {
    json!({
        "tensor_prefix": "bert.", "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
        "num_attention_heads": 12, "intermediate_size": 1536, "hidden_act": "gelu",
        "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "type_vocab_size": 2, "pad_token_id": 0,
        "head": {"type": "sequence_classification", "num_labels": 2,
                 "id2label": {"0": "NEGATIVE", "1": "POSITIVE"}}
    })
}

#[test]
fn a_bert_description_reads_and_writes_back_the_same_json() {
    let m = meta(json!({"architecture": "bert", "hyperparameters": bert_hp(),
        "recipe": {"layers": [{"name": "bert.encoder.layer.0.attention.self.query", "kind": "attention",
                               "weights": "mxint8", "activations": "mxint8", "rounding": "nearest",
                               "prune": null}]},
        "tokenizer": {"format": "wordpiece-vocab", "files": {"vocab.txt": "tokenizer/vocab.txt"}}}));
    let d = ModelDescription::from_metadata(&m).unwrap();
    let Hyperparameters::Bert(h) = &d.hyperparameters else {
        panic!("not bert")
    };
    assert_eq!((h.hidden_size, h.num_hidden_layers), (384, 6));
    assert_eq!(h.head.labels().unwrap(), ["NEGATIVE", "POSITIVE"]);
    assert_eq!(d.hyperparameters.to_value(), bert_hp());
    assert_eq!(d.recipe_layers[0].activations.as_deref(), Some("mxint8"));
    assert_eq!(
        d.tokenizer.unwrap().files["vocab.txt"],
        "tokenizer/vocab.txt"
    );
}

#[test]
fn an_mlp_description_round_trips_with_its_ops() {
    let hp = json!({"num_features": 16, "num_outputs": 5, "labels": ["g", "q", "t", "w", "z"],
        "ops": [{"op": "linear", "name": "fc1", "weight": "fc1.weight", "bias": "fc1.bias"},
                {"op": "affine", "name": "bn", "scale": "bn.scale", "shift": "bn.shift"},
                {"op": "relu"}, {"op": "softmax"}]});
    let d = ModelDescription::from_metadata(&meta(
        json!({"architecture": "mlp", "hyperparameters": hp}),
    ))
    .unwrap();
    let Hyperparameters::Mlp(m) = &d.hyperparameters else {
        panic!("not mlp")
    };
    assert_eq!(m.ops.len(), 4);
    assert_eq!(m.ops[2], MlpOp::Relu);
    // Written back without the default tensor names; read again, the same ops.
    let compact = json!({"num_features": 16, "num_outputs": 5, "labels": ["g", "q", "t", "w", "z"],
        "ops": [{"op": "linear", "name": "fc1"}, {"op": "affine", "name": "bn"},
                {"op": "relu"}, {"op": "softmax"}]});
    assert_eq!(d.hyperparameters.to_value(), compact);
    let again = ModelDescription::from_metadata(&meta(
        json!({"architecture": "mlp", "hyperparameters": compact}),
    ))
    .unwrap();
    assert_eq!(again.hyperparameters, d.hyperparameters);
    // A name that is not the default is kept.
    let mut other = hp.clone();
    other["ops"][0]["bias"] = json!("shared.bias");
    let d = ModelDescription::from_metadata(&meta(
        json!({"architecture": "mlp", "hyperparameters": other}),
    ))
    .unwrap();
    assert_eq!(
        d.hyperparameters.to_value()["ops"][0],
        json!({"op": "linear", "name": "fc1", "bias": "shared.bias"})
    );
    assert!(d.recipe_layers.is_empty() && d.tokenizer.is_none());
}

/// An in-memory file holding `tensors` (name, shape), f32 unless the name starts with "raw".
fn file_with(tensors: &[(&str, &[u64])]) -> Vec<u8> {
    use crate::{encode_f32, encode_raw, Encoding, FileBuilder, RawDtype, Rounding, SparsePolicy};
    let mut b = FileBuilder::new(Map::new()).unwrap();
    for (name, shape) in tensors {
        let n = shape.iter().product::<u64>() as usize;
        let t = if name.starts_with("raw") {
            encode_raw(name, shape, RawDtype::U8, vec![0; n]).unwrap()
        } else {
            let values: Vec<f32> = (0..n).map(|i| i as f32 * 0.01).collect();
            encode_f32(
                name,
                shape,
                &values,
                Encoding::F32,
                Rounding::Nearest,
                SparsePolicy::Never,
            )
            .unwrap()
        };
        b.push(t).unwrap();
    }
    b.to_bytes().unwrap()
}

fn mlp(ops: Value, outputs: u64) -> ModelDescription {
    let hp = json!({"num_features": 4, "num_outputs": outputs, "ops": ops});
    ModelDescription::from_metadata(&meta(json!({"architecture": "mlp", "hyperparameters": hp})))
        .unwrap()
}

fn check(d: &ModelDescription, tensors: &[(&str, &[u64])]) -> Result<(), DescriptionError> {
    let bytes = file_with(tensors);
    let file = crate::MxrtFile::parse(&bytes, crate::ReadOptions::default()).unwrap();
    d.check_tensors(&file)
}

#[test]
fn an_mlp_is_checked_against_its_tensors_along_the_chain() {
    let ops = json!([
        {"op": "linear", "name": "fc1", "weight": "fc1.w", "bias": "fc1.b"},
        {"op": "affine", "name": "bn", "scale": "bn.s", "shift": "bn.t"},
        {"op": "relu"},
        {"op": "linear", "name": "fc2", "weight": "fc2.w", "bias": "fc2.b"}
    ]);
    let d = mlp(ops.clone(), 2);
    let good: [(&str, &[u64]); 6] = [
        ("fc1.w", &[8, 4]),
        ("fc1.b", &[8]),
        ("bn.s", &[8]),
        ("bn.t", &[8]),
        ("fc2.w", &[2, 8]),
        ("fc2.b", &[2]),
    ];
    assert_eq!(check(&d, &good), Ok(()));
    assert_eq!(
        check(&d, &good[..5]),
        Err(DescriptionError::MissingTensor {
            name: "fc2.b".into()
        })
    );
    let mut wrong = good;
    wrong[4] = ("fc2.w", &[2, 7]);
    assert_eq!(
        check(&d, &wrong).unwrap_err().to_string(),
        "tensor \"fc2.w\" has shape [2, 7], the model needs [2, 8]"
    );
    let mut short_affine = good;
    short_affine[2] = ("bn.s", &[4]);
    assert!(matches!(
        check(&d, &short_affine),
        Err(DescriptionError::TensorShape { name, .. }) if name == "bn.s"
    ));
    assert_eq!(
        check(&mlp(ops, 3), &good).unwrap_err().to_string(),
        "hyperparameters: num_outputs is 3, but the ops end 2 wide"
    );
    let raw = mlp(
        json!([{"op": "linear", "name": "x", "weight": "raw.w", "bias": "x.b"}]),
        8,
    );
    assert_eq!(
        check(&raw, &[("raw.w", &[8, 4]), ("x.b", &[8])])
            .unwrap_err()
            .to_string(),
        "tensor \"raw.w\" is stored as raw-u8: raw bytes, not numbers the model can compute with"
    );
}

#[test]
fn a_bert_description_lists_every_tensor_it_reads() {
    let mut hp = bert_hp();
    hp["num_hidden_layers"] = json!(2);
    let d = ModelDescription::from_metadata(&meta(
        json!({"architecture": "bert", "hyperparameters": hp}),
    ))
    .unwrap();
    let Hyperparameters::Bert(h) = &d.hyperparameters else {
        panic!("not bert")
    };
    let list = h.tensors();
    // 3 tables + the embeddings' norm, 16 per layer, pooler and classifier.
    assert_eq!(list.len(), 3 + 2 + 2 * 16 + 4);
    assert_eq!(
        list[0],
        NeededTensor {
            name: "bert.embeddings.word_embeddings.weight".into(),
            shape: vec![30522, 384]
        }
    );
    assert!(list.contains(&NeededTensor {
        name: "bert.encoder.layer.1.intermediate.dense.weight".into(),
        shape: vec![1536, 384]
    }));
    assert_eq!(
        list.last().unwrap(),
        &NeededTensor {
            name: "classifier.bias".into(),
            shape: vec![2]
        }
    );
    let names: std::collections::BTreeSet<&str> = list.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), list.len(), "a tensor is listed twice");
    let mut hp = bert_hp();
    hp["num_attention_heads"] = json!(0);
    assert_eq!(
        ModelDescription::from_metadata(&meta(
            json!({"architecture": "bert", "hyperparameters": hp})
        ))
        .unwrap_err()
        .to_string(),
        "hyperparameters: hidden_size 384 is not a positive multiple of num_attention_heads 0"
    );
    let mut hp = bert_hp();
    hp["num_hidden_layers"] = json!(u64::MAX);
    let lying = ModelDescription::from_metadata(&meta(
        json!({"architecture": "bert", "hyperparameters": hp}),
    ))
    .unwrap();
    assert_eq!(
        check(&lying, &[("x", &[1])]).unwrap_err().to_string(),
        format!(
            "hyperparameters: num_hidden_layers is {}, but the file holds only 1 tensors",
            u64::MAX
        )
    );
    let mut hp = bert_hp();
    hp["head"]["num_labels"] = json!(3);
    let e = ModelDescription::from_metadata(&meta(
        json!({"architecture": "bert", "hyperparameters": hp}),
    ))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "hyperparameters: head.num_labels is 3 but head.id2label has 2 labels"
    );
}

#[test]
fn each_error_names_its_section_and_field() {
    let err = |v: Value| {
        ModelDescription::from_metadata(&meta(v))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(json!({"architecture": null})),
        "no architecture: this file holds bare tensors (convert the checkpoint directory to get a model)"
    );
    assert_eq!(
        err(json!({"architecture": "gpt2"})),
        "architecture \"gpt2\" is not supported (bert, mlp)"
    );
    assert_eq!(
        err(json!({"architecture": 7})),
        "architecture: expected a name, found 7"
    );
    let mut hp = bert_hp();
    hp.as_object_mut().unwrap().remove("hidden_size");
    assert_eq!(
        err(json!({"architecture": "bert", "hyperparameters": hp})),
        "hyperparameters: missing field `hidden_size`"
    );
    let mut hp = bert_hp();
    hp["head"] = json!({"type": "sentence_embedding", "pooling": "embedding"});
    let e = err(json!({"architecture": "bert", "hyperparameters": hp}));
    assert!(
        e.starts_with("hyperparameters: head: unknown variant `embedding`, expected one of `mean`, `cls`, `max`"),
        "{e}"
    );
    assert!(!e.contains("Some("), "{e}");
    let mut hp = bert_hp();
    hp["head"]["id2label"] = json!({"0": "a", "2": "c"});
    assert_eq!(
        err(json!({"architecture": "bert", "hyperparameters": hp})),
        "hyperparameters: head.id2label has 2 labels but no label 1"
    );
    let e = err(json!({"architecture": "mlp", "hyperparameters":
        {"num_features": 4, "num_outputs": 2, "ops": [{"op": "conv"}]}}));
    assert!(
        e.starts_with("hyperparameters: ops[0].op: unknown variant `conv`"),
        "{e}"
    );
    let e = err(json!({"architecture": "mlp", "hyperparameters":
        {"num_features": 4, "num_outputs": 2, "ops": [{"op": "linear", "weight": "fc.weight"}]}}));
    // (Without a name there are no default tensor names to fill in.)
    assert!(
        e.starts_with("hyperparameters: ops[0]: missing field `name`"),
        "{e}"
    );
    let e = err(json!({"architecture": "mlp", "hyperparameters":
        {"num_features": 4, "num_outputs": 2, "ops": []}, "recipe": {"layers": [{"kind": "linear"}]}}));
    assert!(
        e.starts_with("recipe.layers: [0]: missing field `name`"),
        "{e}"
    );
    let e = err(json!({"architecture": "mlp", "hyperparameters":
        {"num_features": 4, "num_outputs": 2, "ops": []}, "tokenizer": {"format": "x"}}));
    assert!(e.starts_with("tokenizer: missing field `files`"), "{e}");
}
