//! The library API (`Session`) against the lower-level calls it is built on (`Model` + `TextEncoder`), on the
//! small models of `tests/fixtures`: same numbers in input order whatever the batching, typed errors for the
//! wrong task or bad options, and one session shared by many threads.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mxrt_format::ReadOptions;
use mxrt_runtime::{
    BackendKind, InputError, Model, RuntimeError, Session, SessionOptions, Task, TextEncoder,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

const TEXTS: [&str; 5] = [
    "the movie was very good!",
    "not fun",
    "a great film, i love this film and the acting was great fun",
    "boring plot",
    "awful",
];

/// Logits straight from the model, one text at a time (no sorting, no padding).
fn one_by_one(file: &Path, inputs: &[(&str, Option<&str>)]) -> Vec<Vec<f32>> {
    let model = Model::open(file, ReadOptions::default()).unwrap();
    let encoder = TextEncoder::from_model(&model, None).unwrap();
    inputs
        .iter()
        .map(|input| {
            let batch = encoder.batch_inputs(&[*input]).unwrap();
            model.run_bert(&batch, false).unwrap().values
        })
        .collect()
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5)
}

#[test]
fn classify_gives_each_texts_logits_in_input_order_whatever_the_batch() {
    let file = fixture("tiny-classifier.mxrt");
    let inputs: Vec<(&str, Option<&str>)> = TEXTS.iter().map(|t| (*t, None)).collect();
    let want = one_by_one(&file, &inputs);
    for max_batch in [1, 2, 32] {
        let session = Session::open(
            &file,
            SessionOptions {
                max_batch,
                ..Default::default()
            },
        )
        .unwrap();
        let got = session.classify(&TEXTS).unwrap();
        assert_eq!(got.len(), TEXTS.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(close(&g.logits, w), "max_batch {max_batch}, text {i}");
            assert_eq!(g.score, None);
            assert_eq!(g.probabilities.len(), 2);
            let best = if w[1] > w[0] { 1 } else { 0 };
            assert_eq!(g.index, best);
            assert_eq!(g.label, ["negative", "positive"][best]);
        }
    }
}

#[test]
fn classify_pairs_gives_the_pairs_logits() {
    let file = fixture("tiny-classifier.mxrt");
    let pairs = [
        ("the movie was good", "a great film"),
        ("boring plot", "fun"),
    ];
    let inputs: Vec<(&str, Option<&str>)> = pairs.iter().map(|(a, b)| (*a, Some(*b))).collect();
    let want = one_by_one(&file, &inputs);
    let session = Session::open(&file, SessionOptions::default()).unwrap();
    let got = session.classify_pairs(&pairs).unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!(close(&g.logits, w));
    }
    // A pair is not the same input as its first text alone.
    let alone = session.classify(&[pairs[0].0]).unwrap();
    assert!(!close(&alone[0].logits, &got[0].logits));
}

#[test]
fn embed_gives_normalised_vectors_of_the_model_width() {
    let file = fixture("tiny-encoder.mxrt");
    let session = Session::open(&file, SessionOptions::default()).unwrap();
    let info = session.describe();
    assert_eq!(info.task, Task::Embedding);
    assert_eq!(
        (info.output_width, info.pooling, info.normalized),
        (32, Some("mean"), true)
    );
    // The sentence-transformers max_seq_length of the fixture.
    assert_eq!(info.max_length, Some(24));
    let inputs: Vec<(&str, Option<&str>)> = TEXTS.iter().map(|t| (*t, None)).collect();
    let want = one_by_one(&file, &inputs);
    let got = session.embed(&TEXTS).unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!(close(g, w));
        let norm: f32 = g.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
}

#[test]
fn run_gives_the_mlp_rows_and_names_a_bad_row_across_batches() {
    let file = fixture("tiny-mlp.mxrt");
    let session = Session::open(
        &file,
        SessionOptions {
            max_batch: 1, // 1,024 rows per pass: the 3,000 rows below take three
            ..Default::default()
        },
    )
    .unwrap();
    let info = session.describe();
    assert_eq!(
        (info.task, info.input_features, info.output_width),
        (Task::Features, Some(16), 5)
    );
    assert_eq!(info.labels, ["g", "q", "W", "Z", "t"]);
    let rows = 3000;
    let x: Vec<f32> = (0..rows * 16)
        .map(|i| ((i * 7919 % 1000) as f32 / 250.0) - 2.0)
        .collect();
    let model = Model::open(&file, ReadOptions::default()).unwrap();
    assert_eq!(
        session.run(&x, rows).unwrap(),
        model.run_mlp(&x, rows).unwrap()
    );

    let mut bad = x.clone();
    bad[2500 * 16 + 3] = f32::NAN;
    match session.run(&bad, rows) {
        Err(RuntimeError::Input(InputError::NonFiniteFeature { row, col, .. })) => {
            assert_eq!((row, col), (2500, 3))
        }
        other => panic!("{other:?}"),
    }
    match session.run(&x[..17], 1) {
        Err(RuntimeError::Input(InputError::FeatureCount {
            rows: 1,
            inputs: 16,
            got: 17,
        })) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_wrong_task_and_bad_options_are_typed_errors() {
    let classifier =
        Session::open(&fixture("tiny-classifier.mxrt"), SessionOptions::default()).unwrap();
    let encoder = Session::open(&fixture("tiny-encoder.mxrt"), SessionOptions::default()).unwrap();
    let mlp = Session::open(&fixture("tiny-mlp.mxrt"), SessionOptions::default()).unwrap();
    let is = |r: Result<_, RuntimeError>, want: InputError| match r {
        Err(RuntimeError::Input(e)) => assert_eq!(e, want),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("no error, expected {want}"),
    };
    is(classifier.embed(&["a"]).map(|_| ()), InputError::NotEncoder);
    is(
        encoder.classify(&["a"]).map(|_| ()),
        InputError::NotClassifier,
    );
    is(mlp.classify(&["a"]).map(|_| ()), InputError::NotText);
    is(mlp.embed(&["a"]).map(|_| ()), InputError::NotText);
    is(
        classifier.run(&[0.0; 16], 1).map(|_| ()),
        InputError::NotFeatures,
    );

    for (options, needle) in [
        (
            SessionOptions {
                max_batch: 0,
                ..Default::default()
            },
            "option max_batch",
        ),
        (
            SessionOptions {
                threads: Some(0),
                ..Default::default()
            },
            "option threads",
        ),
        (
            SessionOptions {
                max_length: Some(1),
                ..Default::default()
            },
            "max_length: 1 is too short",
        ),
    ] {
        let err = Session::open(&fixture("tiny-classifier.mxrt"), options)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains(needle), "{err}");
    }
    let err = Session::open(&fixture("missing.mxrt"), SessionOptions::default())
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("missing.mxrt"), "{err}");
}

#[test]
fn one_session_answers_many_threads_at_once() {
    let session = Arc::new(
        Session::open(
            &fixture("tiny-classifier.mxrt"),
            SessionOptions {
                threads: Some(2),
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let want = session.classify(&TEXTS).unwrap();
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let s = Arc::clone(&session);
            std::thread::spawn(move || {
                (0..10)
                    .map(|_| s.classify(&TEXTS).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for h in handles {
        for got in h.join().unwrap() {
            for (g, w) in got.iter().zip(&want) {
                assert!(close(&g.logits, &w.logits));
            }
        }
    }
}

#[test]
fn describe_reports_the_files_encodings_and_memory() {
    let file = fixture("tiny-classifier.mxrt");
    let session = Session::open(&file, SessionOptions::default()).unwrap();
    let info = session.describe();
    assert_eq!(
        (info.architecture, info.task),
        ("bert", Task::Classification)
    );
    assert_eq!(info.file_bytes, std::fs::metadata(&file).unwrap().len());
    assert_eq!(info.device_bytes, 0);
    assert!(info.backend.starts_with("cpu"), "{}", info.backend);
    // The fixture has 64 positions: the default 512 is cut to them.
    assert_eq!(info.max_length, Some(64));
    let (tensors, bytes) = info.encodings["mxint8"];
    assert!(tensors >= 12 && bytes > 0, "{tensors} {bytes}");
    assert!(info.encodings.contains_key("f32"));
    let json = info.to_json();
    assert_eq!(json["task"], "classification");
    assert_eq!(json["labels"][1], "positive");
    assert_eq!(json["encodings"]["mxint8"]["tensors"], tensors);
    assert_eq!(BackendKind::default(), BackendKind::Cpu);
}

/// `tokenizer: false`: the model answers token ids as with the tokenizer, text calls say why they cannot.
#[test]
fn a_session_without_its_tokenizer_runs_ids_and_refuses_text() {
    let file = fixture("tiny-classifier.mxrt");
    let with = Session::open(&file, SessionOptions::default()).unwrap();
    let without = Session::open(
        &file,
        SessionOptions {
            tokenizer: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(with.encoder().is_some() && without.encoder().is_none());
    let batch = with
        .encoder()
        .unwrap()
        .batch_inputs(&[("not fun", None)])
        .unwrap();
    let a = with.model().run_bert(&batch, false).unwrap().values;
    let b = without.model().run_bert(&batch, false).unwrap().values;
    assert_eq!(a, b);
    let err = without.classify(&["not fun"]).unwrap_err();
    assert!(
        matches!(err, RuntimeError::Text(mxrt_runtime::TextError::NotLoaded)),
        "{err}"
    );
    assert!(err.to_string().contains("tokenizer = false"), "{err}");
}
