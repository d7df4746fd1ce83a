//! The CPU runtime against PyTorch (`../shared/reference`): MiniLM-SST2 hidden states of every layer and
//! logits within 1e-4 absolute from an FP32 conversion, the JSC MLPs within 1e-5; and 8 threads running one
//! opened model give the same outputs as one.

mod common;

use common::*;
use mxrt_format::ReadOptions;
use mxrt_runtime::Model;

fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn minilm_fp32_reproduces_pytorch_hidden_states_and_logits() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f32.mxrt");
    convert_quiet(
        &shared().join("models/minilm-sst2"),
        &file,
        &["--weights", "f32"],
    );
    let model = Model::open(&file, ReadOptions::default()).unwrap();
    let r = reference_tensors("minilm-sst2-dev16.safetensors");
    let batch = sst2_batch(&r);
    let out = model.run_bert(&batch, true).unwrap();
    assert_eq!(out.width, 2);
    let logits = max_abs_diff(&out.values, &r["logits"].1);
    assert!(logits < 1e-4, "logits differ by {logits}");
    // Hidden states of sentence 0 (its real tokens only) after the embeddings and each layer.
    let n0 = batch.mask[..batch.seq].iter().filter(|&&m| m != 0).count();
    assert_eq!(r["hidden_states.0.sentence0"].0, vec![n0, 384]);
    for (layer, h) in out.hidden_states.iter().enumerate() {
        let want = &r[&format!("hidden_states.{layer}.sentence0")].1;
        let d = max_abs_diff(&h[..n0 * 384], want);
        assert!(d < 1e-4, "hidden state {layer} differs by {d}");
    }
}

/// Every JSC model (dense, 70 % and 95 % pruned, tiny) as a batch of 32 and one sample at a time.
#[test]
fn jsc_models_reproduce_the_float64_reference() {
    let dir = tempfile::tempdir().unwrap();
    for m in [
        "jsc-3layer",
        "jsc-3layer-70pruned",
        "jsc-3layer-95pruned",
        "jsc-tiny",
    ] {
        let file = dir.path().join(format!("{m}.mxrt"));
        convert_quiet(
            &shared().join("models").join(m),
            &file,
            &["--weights", "f32"],
        );
        let model = Model::open(&file, ReadOptions::default()).unwrap();
        let r = reference_tensors(&format!("{m}-32.safetensors"));
        let x: Vec<f32> = r["inputs"].1.iter().map(|&v| v as f32).collect();
        let y = model.run_mlp(&x, 32).unwrap();
        let d = max_abs_diff(&y, &r["outputs"].1);
        assert!(d < 1e-5, "{m}: outputs differ by {d}");
        // One sample at a time (the batch-1 path, weights transposed at open): the same reference, the
        // batched result, and a wrong-sized sample still a clear error.
        let features = x.len() / 32;
        let outputs = r["outputs"].1.len() / 32;
        for (i, sample) in x.chunks(features).enumerate() {
            let one = model.run_mlp(sample, 1).unwrap();
            let want = &r["outputs"].1[i * outputs..(i + 1) * outputs];
            let d = max_abs_diff(&one, want);
            assert!(d < 1e-5, "{m} sample {i}: outputs differ by {d}");
            let batched: Vec<f64> = y[i * outputs..(i + 1) * outputs]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let d_batch = max_abs_diff(&one, &batched);
            assert!(
                d_batch < 1e-5,
                "{m} sample {i}: batch-1 vs batched {d_batch}"
            );
        }
        let err = model
            .run_mlp(&x[..features - 1], 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("values"), "{m}: {err}");
    }
}

#[test]
fn eight_threads_on_one_model_agree_with_one_thread() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mx.mxrt");
    convert_quiet(
        &shared().join("models/jsc-3layer"),
        &file,
        &["--weights", "mxint8", "--activations", "mxint8"],
    );
    let model = Model::open(&file, ReadOptions::default()).unwrap();
    let inputs: Vec<Vec<f32>> = (0..200)
        .map(|i| {
            (0..16)
                .map(|k| ((i * 16 + k) as f32 * 0.37).sin() * 2.0)
                .collect()
        })
        .collect();
    let single: Vec<Vec<f32>> = inputs
        .iter()
        .map(|x| model.run_mlp(x, 1).unwrap())
        .collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    inputs
                        .iter()
                        .map(|x| model.run_mlp(x, 1).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), single);
        }
    });
    // And the BERT path, a few sentences per thread.
    let file = dir.path().join("bert.mxrt");
    convert_quiet(
        &shared().join("models/minilm-sst2"),
        &file,
        &["--weights", "mxint8", "--activations", "mxint8"],
    );
    let model = Model::open(&file, ReadOptions::default()).unwrap();
    let batch = sst2_batch(&reference_tensors("minilm-sst2-dev16.safetensors"));
    let once = model.run_bert(&batch, false).unwrap().values;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| model.run_bert(&batch, false).unwrap().values))
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), once);
        }
    });
}

/// A large MLP batch runs as blocks of rows across the cores; every op works row by row, so the result is
/// exactly the one of smaller batches that run as one pass (here 3000 rows against three runs of 1000), for
/// FP32 and for MXINT8 weights and activations.
#[test]
fn a_large_mlp_batch_in_blocks_equals_smaller_batches() {
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("f32", &["--weights", "f32"][..]),
        (
            "mx",
            &["--weights", "mxint8", "--activations", "mxint8"][..],
        ),
    ] {
        let file = dir.path().join(format!("{name}.mxrt"));
        convert_quiet(&shared().join("models/jsc-3layer"), &file, args);
        let model = Model::open(&file, ReadOptions::default()).unwrap();
        let x: Vec<f32> = (0..3000 * 16)
            .map(|i| (i as f32 * 0.713).sin() * 3.0)
            .collect();
        let whole = model.run_mlp(&x, 3000).unwrap();
        let parts: Vec<f32> = x
            .chunks(1000 * 16)
            .flat_map(|c| model.run_mlp(c, 1000).unwrap())
            .collect();
        assert_eq!(whole.len(), 3000 * 5);
        assert_eq!(
            whole.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            parts.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{name}"
        );
    }
}

/// A batch of any size gives each row what the row alone gives: 7 rows (one block on the calling thread),
/// 1,024 and 2,500 (blocks over the cores), for f32 and MXINT8 weights (the small-chain form, weights
/// transposed at open, from 16 rows on) and for MXINT8 weights and activations (the general op path). Within 1e-6:
/// the final softmax's `exp` runs vectorised over many rows but partly scalar over one 5-wide row.
#[test]
fn mlp_batches_agree_with_one_row_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("f32", &["--weights", "f32"][..]),
        ("mxint8", &["--weights", "mxint8"][..]),
        (
            "mxint8-wa",
            &["--weights", "mxint8", "--activations", "mxint8"][..],
        ),
    ] {
        let file = dir.path().join(format!("{name}.mxrt"));
        convert_quiet(&shared().join("models/jsc-3layer"), &file, args);
        let model = Model::open(&file, ReadOptions::default()).unwrap();
        for rows in [7usize, 1024, 2500] {
            let x: Vec<f32> = (0..rows * 16)
                .map(|i| (i as f32 * 0.37).sin() * 2.0)
                .collect();
            let batched = model.run_mlp(&x, rows).unwrap();
            assert_eq!(batched.len(), rows * 5, "{name} rows={rows}");
            for (i, sample) in x.chunks(16).enumerate().step_by(97) {
                let one = model.run_mlp(sample, 1).unwrap();
                let d = one
                    .iter()
                    .zip(&batched[i * 5..(i + 1) * 5])
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(d <= 1e-6, "{name} rows={rows} row {i}: differs by {d}");
            }
        }
    }
}

/// Batches of 16 rows and more run the small-chain form (weights transposed when the model opens, blocks
/// of rows over the cores) where the model's activations are f32: bit for bit what the general op path
/// gives (`observe_mlp` runs that path), for FP32 and MXINT8 weights, on one block and on many.
#[test]
fn mlp_batches_in_the_small_chain_form_equal_the_general_path() {
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("f32", &["--weights", "f32"][..]),
        ("mxint8", &["--weights", "mxint8"][..]),
    ] {
        let file = dir.path().join(format!("{name}.mxrt"));
        convert_quiet(&shared().join("models/jsc-3layer"), &file, args);
        let model = Model::open(&file, ReadOptions::default()).unwrap();
        for rows in [16usize, 100, 1024, 2500] {
            let x: Vec<f32> = (0..rows * 16)
                .map(|i| (i as f32 * 0.29).cos() * 2.5)
                .collect();
            let fast = model.run_mlp(&x, rows).unwrap();
            let general = model.observe_mlp(&x, rows, &mut |_, _| {}).unwrap();
            assert_eq!(
                fast.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                general.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{name} rows={rows}"
            );
        }
    }
}
