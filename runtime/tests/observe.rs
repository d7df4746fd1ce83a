//! `Model::observe_bert`: every linear layer's input is shown once per layer, by its recipe name, with the
//! shape it has, and watching changes no output (the MLP's twin is a unit test of `model::observe`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mxrt_format::ReadOptions;
use mxrt_runtime::{Model, TextEncoder};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The layers of the recipe that quantize an input (linear layers: their `activations` is set).
fn linear_layers(model: &Model) -> Vec<String> {
    model
        .description()
        .recipe_layers
        .iter()
        .filter(|l| l.activations.is_some())
        .map(|l| l.name.clone())
        .collect()
}

#[test]
fn every_linear_input_of_a_bert_is_seen_and_outputs_do_not_change() {
    let model = Model::open(&fixture("tiny-classifier.mxrt"), ReadOptions::default()).unwrap();
    let encoder = TextEncoder::from_model(&model, None).unwrap();
    let batch = encoder
        .batch_inputs(&[("the movie was very good!", None)])
        .unwrap();
    let tokens = batch.ids.len();
    let mut seen: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let observed = model
        .observe_bert(&batch, &mut |names, x| {
            for n in names {
                let e = seen.entry(n.to_string()).or_insert((0, x.len()));
                e.0 += 1;
                assert_eq!(e.1, x.len(), "{n}: one input size");
            }
        })
        .unwrap();
    let plain = model.run_bert(&batch, false).unwrap();
    assert_eq!(observed.width, plain.width);
    for (a, b) in observed.values.iter().zip(&plain.values) {
        assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
    }
    let mut expected = linear_layers(&model);
    expected.sort();
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), expected);
    assert!(seen.values().all(|&(count, _)| count == 1));
    let hidden = match model.graph() {
        mxrt_runtime::Graph::Bert(b) => b.config.hidden,
        _ => unreachable!(),
    };
    // Token-wise layers see every token's row; the pooler and the classifier one row per sequence.
    let query = seen.keys().find(|k| k.ends_with("query")).unwrap();
    assert_eq!(seen[query].1, tokens * hidden);
    let classifier = seen.keys().find(|k| k.contains("classifier")).unwrap();
    assert_eq!(seen[classifier].1, hidden);
}
