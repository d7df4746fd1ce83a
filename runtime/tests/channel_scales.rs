//! Channel scales (FORMAT.md section 9, description 2.2): a layer computes `s_out ⊙ (quant(s_in ⊙ x) · Wᵀ) + b`.
//! Each test takes a fixture model apart (the fuzz cases' helpers), gives its linear layers power-of-two
//! scales with the weights divided to match, and checks the runtime computes what the definition says:
//! the same function in FP32, the input scaled before it is quantized, and a clear refusal of bad scales.

#[path = "model_fuzz/cases.rs"]
#[allow(dead_code)] // the fuzzing half of the helpers
mod cases;

use cases::{
    build, layers_mut, linears, parts_of, powers_of_two, scaled, values_mut, Contents, Parts,
    SplitMix,
};
use mxrt_format::{Encoding, ReadOptions};
use mxrt_runtime::{Graph, Model, TextEncoder};
use serde_json::json;

const FIXTURES: [&str; 3] = ["tiny-classifier.mxrt", "tiny-encoder.mxrt", "tiny-mlp.mxrt"];

fn fixture(name: &str) -> Parts {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    parts_of(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

/// Every tensor stored f32; every recipe layer's input quantized as `activations` (or left f32).
fn with_encodings(mut p: Parts, activations: &str) -> Parts {
    for t in &mut p.tensors {
        if let Contents::Values {
            encoding, sparse, ..
        } = &mut t.contents
        {
            (*encoding, *sparse) = (Encoding::F32, false);
        }
    }
    for l in layers_mut(&mut p) {
        if !l["activations"].is_null() {
            l["activations"] = json!(activations);
        }
    }
    p
}

fn open(p: &Parts) -> Result<Model, String> {
    let bytes = build(p).expect("the writer takes the parts");
    Model::from_bytes("scaled.mxrt", bytes, ReadOptions::default()).map_err(|e| e.to_string())
}

/// The model's outputs on a fixed input (two sentences; two feature rows).
fn outputs(p: &Parts) -> Vec<f32> {
    let model = open(p).unwrap_or_else(|e| panic!("opens: {e}"));
    match model.graph() {
        Graph::Bert(_) => {
            let encoder = TextEncoder::from_model(&model, Some(16)).unwrap();
            let batch = encoder.batch(&["the cat sat on the mat", "a dog"]).unwrap();
            model.run_bert(&batch, false).unwrap().values
        }
        Graph::Mlp(m) => {
            let x: Vec<f32> = (0..2 * m.inputs)
                .map(|i| (i as f32 * 0.37).sin() * 2.0)
                .collect();
            model.run_mlp(&x, 2).unwrap()
        }
    }
}

fn assert_close(a: &[f32], b: &[f32], rel: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= rel * x.abs().max(1.0),
            "{what}: output {i}: {x} vs {y}"
        );
    }
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn power_of_two_scales_leave_an_fp32_model_s_function_unchanged() {
    for name in FIXTURES {
        let base = with_encodings(fixture(name), "f32");
        let mut rng = SplitMix(7);
        let mut rng2 = SplitMix(11);
        let twin = scaled(
            &base,
            &mut |_, n| Some(powers_of_two(&mut rng, n)),
            &mut |_, n| Some(powers_of_two(&mut rng2, n)),
        );
        let (expected, got) = (outputs(&base), outputs(&twin));
        assert_close(&expected, &got, 1e-5, name);
        // The scales are read: without the output scales the same weights compute something else.
        let mut unscaled = twin.clone();
        for l in layers_mut(&mut unscaled) {
            l.as_object_mut().unwrap().remove("output_scale");
        }
        let off = max_difference(&expected, &outputs(&unscaled));
        assert!(
            off > 1e-2,
            "{name}: ignoring the output scales changed the outputs by only {off}"
        );
    }
}

#[test]
fn the_input_is_scaled_before_it_is_quantized() {
    // quant_{F-2}(4x) · (W/4) = 2^-F round(2^F x) · W = quant_F(x) · W: a uniform input scale 2^2 at F - 2
    // computes what F does without it. Scaling after quantizing would compute quant_{F-2}(x) · W instead.
    for name in FIXTURES {
        let base = with_encodings(fixture(name), "fixed:8.5");
        let twin = scaled(
            &with_encodings(fixture(name), "fixed:8.3"),
            &mut |_, n| Some(vec![4.0; n]),
            &mut |_, _| None,
        );
        let expected = outputs(&base);
        assert_close(&expected, &outputs(&twin), 1e-5, name);
        let coarse = outputs(&with_encodings(fixture(name), "fixed:8.3"));
        assert!(
            max_difference(&expected, &coarse) > 1e-3,
            "{name}: F 3 and F 5 should differ"
        );
    }
}

#[test]
fn bad_channel_scales_are_refused_by_name() {
    for name in FIXTURES {
        let base = with_encodings(fixture(name), "f32");
        let twin = scaled(&base, &mut |_, n| Some(vec![2.0; n]), &mut |_, n| {
            Some(vec![0.5; n])
        });
        let (layer, _, _) = linears(&base)[0].clone();
        let tensor = format!("{layer}.input_scale");
        for bad in [f32::NAN, 0.0, -1.0, f32::INFINITY] {
            let mut p = twin.clone();
            values_mut(&mut p, &tensor)[0] = bad;
            let e = open(&p)
                .err()
                .unwrap_or_else(|| panic!("{name}: a scale of {bad} was accepted"));
            assert!(
                e.contains(&tensor) && e.contains("positive finite"),
                "{name}, {bad}: {e}"
            );
        }
        let mut missing = twin.clone();
        missing.tensors.retain(|t| t.name != tensor);
        let e = open(&missing)
            .err()
            .expect("a missing scale tensor is refused");
        assert!(e.contains(&tensor) && e.contains("missing"), "{name}: {e}");
        let mut short = twin.clone();
        let t = short.tensors.iter_mut().find(|t| t.name == tensor).unwrap();
        t.shape = vec![t.shape[0] - 1];
        if let Contents::Values { values, .. } = &mut t.contents {
            values.pop();
        }
        let e = open(&short)
            .err()
            .expect("a scale of the wrong length is refused");
        assert!(e.contains(&tensor) && e.contains("shape"), "{name}: {e}");
    }
}
