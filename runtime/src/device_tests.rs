//! Shader and kernel tests shared by the device backends (wgpu, CUDA): every op against the CPU backend
//! running the scalar reference kernels, on random inputs of odd sizes with fresh seeds (printed to stderr;
//! `MXRT_TEST_SEED=<seed>` replays a failure exactly). Activation quantization must agree bit for bit; float
//! results within bounds derived for a different summation order. `device_tests!(device)` expands the tests in a backend's test module, where
//! `device(max_chunk_bytes)` gives the backend's device with no weights, or `None` after printing why the
//! tests are skipped.

use std::collections::HashMap;

use mxrt_format::{EncodedTensor, Encoding, FileBuilder, MxElem, MxrtFile, ReadOptions};
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::cpu::kernels::Kernels;
use crate::cpu::Cpu;
use crate::weights::TensorRef;

/// The CPU backend on the scalar reference kernels: the oracle.
pub(crate) static REFERENCE: std::sync::LazyLock<Cpu> = std::sync::LazyLock::new(|| Cpu {
    kernels: Kernels::reference(),
});

/// Says that a test was skipped, straight to the process's stderr: `cargo test` captures `println!` of passing
/// tests, and a skip must show in CI logs, never pass silently.
pub(crate) fn say_skipped(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{message}");
}

/// The test's random generator, from its printed seed (`MXRT_TEST_SEED` replays one: see `test_seed`).
pub(crate) fn rng() -> StdRng {
    StdRng::seed_from_u64(crate::test_seed::test_seed())
}

/// A file image holding `tensors`, and a reference to each.
pub(crate) fn file(tensors: Vec<EncodedTensor>) -> (Vec<u8>, HashMap<String, TensorRef>) {
    let mut b = FileBuilder::new(serde_json::Map::new()).unwrap();
    for t in tensors {
        b.push(t).unwrap();
    }
    let bytes = b.to_bytes().unwrap();
    let refs = MxrtFile::parse(&bytes, ReadOptions::default())
        .unwrap()
        .tensors()
        .iter()
        .map(|t| (t.name.to_string(), TensorRef::from_view(t)))
        .collect();
    (bytes, refs)
}

pub(crate) fn random_values(rng: &mut StdRng, n: usize, zeros: f64, range: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            if rng.gen_bool(zeros) {
                0.0
            } else {
                rng.gen_range(-range..range)
            }
        })
        .collect()
}

/// Any two summation orders of a dot product differ by at most 2γₙΣ|aᵢbᵢ| (γₙ = nu/(1−nu), u = 2⁻²⁴).
pub(crate) fn dot_bound(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let u = 2f64.powi(-24);
    let gamma = n * u / (1.0 - n * u);
    let abs: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(x.abs()) * f64::from(y.abs()))
        .sum();
    2.0 * gamma * abs
}

pub(crate) const WEIGHT_ENCODINGS: [Encoding; 14] = [
    Encoding::F32,
    Encoding::F16,
    Encoding::Bf16,
    Encoding::Mx(MxElem::Int8),
    Encoding::Mx(MxElem::Int4),
    Encoding::Mx(MxElem::Fp8E4M3),
    Encoding::Mx(MxElem::Fp8E5M2),
    Encoding::Mx(MxElem::Fp6E3M2),
    Encoding::Mx(MxElem::Fp6E2M3),
    Encoding::Mx(MxElem::Fp4),
    Encoding::Fixed { width: 8, frac: 5 },
    Encoding::Fixed { width: 3, frac: 1 },
    Encoding::Fixed { width: 12, frac: 6 },
    Encoding::Fixed {
        width: 24,
        frac: 10,
    },
];

/// Random rows in wide magnitudes, with exact ties, zeros, tiny values and block maxima just below powers
/// of two (the reference's rounded log2 counts them as the power of two).
pub(crate) fn quantizer_inputs(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| match rng.gen_range(0..6) {
            0 => 0.0,
            1 => rng.gen_range(-4i32..4) as f32 * 0.5 + 0.25 * rng.gen_range(-1i32..2) as f32,
            2 => 8.0 - 2f32.powi(-21),
            3 => rng.gen_range(-1e-6..1e-6),
            4 => rng.gen_range(-300.0..300.0),
            _ => rng.gen_range(-2.0..2.0),
        })
        .collect()
}

/// The op tests, expanded in a backend's test module (see the module documentation).
#[macro_export]
#[doc(hidden)]
macro_rules! device_tests {
    () => {
        use mxrt_format::{encode_f32, Encoding, MxElem, Rounding, SparsePolicy};
        use rand::{rngs::StdRng, Rng};

        use $crate::ops::{ActQuant, Activation, Affine, Backend, Embeddings, Linear, Norm, Pooling, TokenBatch};
        use $crate::cpu::CpuExec;
        use $crate::device_tests::{dot_bound, file, quantizer_inputs, random_values, rng, REFERENCE, WEIGHT_ENCODINGS};

        fn act(encoding: Encoding, rounding: Rounding) -> ActQuant {
            ActQuant { encoding, rounding }
        }

        #[test]
        fn linear_matches_the_reference_for_every_encoding_layout_and_input_quantization() {
            let Some(_) = device(None) else { return };
            let mut rng = rng();
            let acts = [
                ActQuant::NONE,
                act(Encoding::Mx(MxElem::Int8), Rounding::Nearest),
                act(Encoding::Mx(MxElem::Int8), Rounding::Even),
                act(Encoding::Mx(MxElem::Int4), Rounding::Nearest),
                act(Encoding::Mx(MxElem::Fp8E4M3), Rounding::Nearest),
                act(Encoding::Mx(MxElem::Fp4), Rounding::Even),
                act(Encoding::Fixed { width: 8, frac: 4 }, Rounding::Nearest),
                act(Encoding::Fixed { width: 6, frac: 3 }, Rounding::Even),
            ];
            for chunk in [None, Some(1024u64)] {
                let Some(mut gpu) = device(chunk) else { return };
                let mut case = 0;
                for enc in WEIGHT_ENCODINGS {
                    for (policy, zeros) in [(SparsePolicy::Never, 0.2), (SparsePolicy::Always, 0.7)] {
                        for a in acts {
                            case += 1;
                            let (m, n, k) = (
                                rng.gen_range(1..40),
                                rng.gen_range(1..50),
                                rng.gen_range(1..100),
                            );
                            let w = random_values(&mut rng, n * k, zeros, 1.0);
                            let name = format!("w{case}");
                            let t = encode_f32(
                                &name,
                                &[n as u64, k as u64],
                                &w,
                                enc,
                                Rounding::Nearest,
                                policy,
                            )
                            .unwrap();
                            let (bytes, refs) = file(vec![t]);
                            let layer = Linear {
                                name: format!("l{case}"),
                                weight: refs[&name].clone(),
                                bias: random_values(&mut rng, n, 0.0, 1.0),
                                act: a,
                            };
                            gpu.weight(&layer.weight, &bytes).unwrap();
                            gpu.vector(&layer.bias_key(), &layer.bias).unwrap();
                            let x = random_values(&mut rng, m * k, 0.05, 3.0);
                            let cpu = CpuExec {
                                cpu: &*REFERENCE,
                                bytes: &bytes,
                                small_chain: None,
                                panels: None,
                            };
                            let want = cpu.linear(&x, m, &layer).unwrap();
                            let exec = gpu.exec();
                            let got = exec
                                .output(&exec.linear(&exec.input(&x).unwrap(), m, &layer).unwrap())
                                .unwrap();
                            // Bound: the dequantized weights against the quantized inputs in another order.
                            let mut wd = vec![0.0f32; k];
                            let mut xq = x.clone();
                            $crate::cpu::quant::fake_quantize_rows(&mut xq, k, a);
                            let view = layer.weight.view(&bytes);
                            for o in 0..n {
                                view.decode_row(o, &mut wd);
                                for i in 0..m {
                                    let bound = dot_bound(&wd, &xq[i * k..(i + 1) * k]) + 1e-6;
                                    let (g, c) = (got[i * n + o], want[i * n + o]);
                                    assert!(
                                        (f64::from(g) - f64::from(c)).abs() <= bound,
                                        "{enc} {policy:?} {a:?} m={m} n={n} k={k} chunk={chunk:?}: \
                                         row {i} col {o}: gpu {g} vs cpu {c} (bound {bound:e})"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }

        #[test]
        fn activation_quantizers_agree_bit_for_bit() {
            let Some(gpu) = device(None) else { return };
            let mut rng = rng();
            let elems = [
                MxElem::Int8,
                MxElem::Int4,
                MxElem::Fp8E4M3,
                MxElem::Fp8E5M2,
                MxElem::Fp6E3M2,
                MxElem::Fp6E2M3,
                MxElem::Fp4,
            ];
            let mut encodings: Vec<Encoding> = elems.iter().map(|&e| Encoding::Mx(e)).collect();
            encodings.extend([
                Encoding::Fixed { width: 8, frac: 4 },
                Encoding::Fixed { width: 5, frac: 0 },
                Encoding::Fixed {
                    width: 16,
                    frac: 12,
                },
                Encoding::Fixed { width: 2, frac: 7 },
            ]);
            for enc in encodings {
                for rounding in [Rounding::Nearest, Rounding::Even] {
                    let (rows, cols) = (rng.gen_range(1..9), rng.gen_range(1..150));
                    let mut x = quantizer_inputs(&mut rng, rows * cols);
                    if rows * cols > 40 {
                        x[37] = f32::NAN; // one NaN block (MX) / a NaN element (fixed)
                    }
                    let q = act(enc, rounding);
                    let mut want = x.clone();
                    $crate::cpu::quant::fake_quantize_rows(&mut want, cols, q);
                    let exec = gpu.exec();
                    let got = exec
                        .output(
                            &exec
                                .fake_quant(&exec.input(&x).unwrap(), rows, cols, q)
                                .unwrap(),
                        )
                        .unwrap();
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        // MXINT codes have no -0: the CPU decodes +0 where the GPU keeps the sign; same value.
                        let same = g.to_bits() == w.to_bits()
                            || (g.is_nan() && w.is_nan())
                            || (*g == 0.0 && *w == 0.0);
                        assert!(
                            same,
                            "{enc} {rounding:?}: element {i} ({}): gpu {g:e} vs cpu {w:e}",
                            x[i]
                        );
                    }
                    if enc == Encoding::Mx(MxElem::Int8) {
                        // The integer path's codes and factors.
                        let (mut codes, mut scales) = (Vec::new(), Vec::new());
                        $crate::cpu::quant::quantize_mxint8_rows(
                            &x,
                            cols,
                            rounding,
                            $crate::cpu::kernels::reference::mxint8_quantize_block,
                            &mut codes,
                            &mut scales,
                        );
                        let (c, s) = exec
                            .mxint8_codes(&exec.input(&x).unwrap(), rows, cols, rounding)
                            .unwrap();
                        let got_codes: Vec<u8> = exec
                            .output(&c)
                            .unwrap()
                            .iter()
                            .flat_map(|v| v.to_bits().to_le_bytes())
                            .collect();
                        assert_eq!(got_codes, codes, "MXINT8 codes");
                        for (g, s) in exec.output(&s).unwrap().iter().zip(&scales) {
                            let w = mxrt_format::mx::scale_value(*s) / 64.0;
                            assert!(
                                g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                                "factor {g} vs {w}"
                            );
                        }
                    }
                }
            }
        }

        /// Realistic eps values (BERT's 1e-12, and the 1e-5 / 1e-6 of most other models) on rows of three
        /// kinds: wide values, values whose variance is below eps (so eps decides the result: a dropped
        /// `+ eps` is off by a factor of ~5) and constant rows (variance exactly 0: the output is beta,
        /// where a dropped eps gives 0/0).
        #[test]
        fn layer_norm_with_and_without_residual() {
            let Some(mut gpu) = device(None) else { return };
            let mut rng = rng();
            for case in 0..9 {
                let eps = [1e-12f32, 1e-5, 1e-6][case % 3];
                let (rows, cols) = (rng.gen_range(1..20), rng.gen_range(1..300));
                let norm = Norm {
                    name: format!("n{case}"),
                    gamma: random_values(&mut rng, cols, 0.0, 2.0),
                    beta: random_values(&mut rng, cols, 0.0, 1.0),
                };
                gpu.norm(&norm).unwrap();
                let (mut x, mut r) = (Vec::new(), Vec::new());
                let mut kinds = Vec::new();
                for _ in 0..rows {
                    let kind = rng.gen_range(0..3);
                    let mut values = |range| random_values(&mut rng, cols, 0.0, range);
                    let (row, res) = match kind {
                        0 => (values(5.0), values(5.0)),
                        1 => (values(1e-3), values(1e-3)),
                        _ => (
                            vec![rng.gen_range(-5.0f32..5.0); cols],
                            vec![rng.gen_range(-5.0f32..5.0); cols],
                        ),
                    };
                    x.extend(row);
                    r.extend(res);
                    kinds.push(["wide", "variance below eps", "constant"][kind]);
                }
                let cpu = CpuExec {
                    cpu: &*REFERENCE,
                    bytes: &[],
                    small_chain: None,
                    panels: None,
                };
                let exec = gpu.exec();
                for residual in [false, true] {
                    let want = cpu
                        .add_layer_norm(x.clone(), residual.then_some(&r), &norm, eps)
                        .unwrap();
                    let (xt, rt) = (exec.input(&x).unwrap(), exec.input(&r).unwrap());
                    let got = exec
                        .output(
                            &exec
                                .add_layer_norm(xt, residual.then_some(&rt), &norm, eps)
                                .unwrap(),
                        )
                        .unwrap();
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                            "rows={rows} cols={cols} eps={eps:e} residual={residual}: \
                             row {} ({}): {g} vs {w}",
                            i / cols,
                            kinds[i / cols]
                        );
                    }
                }
            }
        }

        #[test]
        fn attention_with_padding_masks() {
            let Some(gpu) = device(None) else { return };
            let mut rng = rng();
            for _ in 0..5 {
                let (batch, seq, heads, dim) = (
                    rng.gen_range(1..4),
                    rng.gen_range(1..150),
                    rng.gen_range(1..4),
                    rng.gen_range(1..70),
                );
                let n = batch * seq * heads * dim;
                let (q, k, v) = (
                    random_values(&mut rng, n, 0.0, 2.0),
                    random_values(&mut rng, n, 0.0, 2.0),
                    random_values(&mut rng, n, 0.0, 2.0),
                );
                // Each sequence: a random number of real tokens, then padding; the last one all padding (its
                // output rows stay zero).
                let mut mask = vec![0u8; batch * seq];
                for b in 0..batch.saturating_sub(1) {
                    let len = rng.gen_range(1..=seq);
                    mask[b * seq..b * seq + len].fill(1);
                }
                let cpu = CpuExec {
                    cpu: &*REFERENCE,
                    bytes: &[],
                    small_chain: None,
                    panels: None,
                };
                let want = cpu
                    .attention(&q, &k, &v, &mask, batch, seq, heads, dim)
                    .unwrap();
                let exec = gpu.exec();
                let (qt, kt, vt) = (
                    exec.input(&q).unwrap(),
                    exec.input(&k).unwrap(),
                    exec.input(&v).unwrap(),
                );
                let got = exec
                    .output(
                        &exec
                            .attention(&qt, &kt, &vt, &mask, batch, seq, heads, dim)
                            .unwrap(),
                    )
                    .unwrap();
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 2e-5 * (1.0 + w.abs()),
                        "b={batch} s={seq} h={heads} d={dim}: element {i}: {g} vs {w}"
                    );
                }
            }
        }

        #[test]
        fn elementwise_ops_softmax_and_affine() {
            let Some(mut gpu) = device(None) else { return };
            let mut rng = rng();
            let cpu = CpuExec {
                cpu: &*REFERENCE,
                bytes: &[],
                small_chain: None,
                panels: None,
            };
            let (rows, width) = (rng.gen_range(1..300), rng.gen_range(1..40));
            let x = random_values(&mut rng, rows * width, 0.05, 12.0);
            let exec = gpu.exec();
            for f in [Activation::Gelu, Activation::Tanh, Activation::Relu] {
                let want = cpu.activation(x.clone(), f).unwrap();
                let got = exec
                    .output(&exec.activation(exec.input(&x).unwrap(), f).unwrap())
                    .unwrap();
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    // erf to 1.5e-7 absolute (A&S 7.1.26), exp/tanh to a few ulp
                    let tol = 1e-6 * (1.0 + x[i].abs());
                    assert!((g - w).abs() <= tol, "{f:?}({}): {g} vs {w}", x[i]);
                }
            }
            let want = cpu.softmax_rows(x.clone(), width).unwrap();
            let got = exec
                .output(&exec.softmax_rows(exec.input(&x).unwrap(), width).unwrap())
                .unwrap();
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-6, "softmax: {g} vs {w}");
            }
            drop(exec);
            let a = Affine {
                name: "bn".into(),
                scale: random_values(&mut rng, width, 0.0, 2.0),
                shift: random_values(&mut rng, width, 0.0, 2.0),
            };
            let (scale, shift) = a.keys();
            gpu.vector(&scale, &a.scale).unwrap();
            gpu.vector(&shift, &a.shift).unwrap();
            let exec = gpu.exec();
            let want = cpu.affine(x.clone(), width, &a).unwrap();
            let got = exec
                .output(&exec.affine(exec.input(&x).unwrap(), width, &a).unwrap())
                .unwrap();
            for (g, w) in got.iter().zip(&want) {
                // one rounding (fused multiply-add) or two
                assert!(
                    (g - w).abs() <= 4e-7 * (1.0 + w.abs()) * 24.0,
                    "affine: {g} vs {w}"
                );
            }
        }

        #[test]
        fn first_tokens_and_pooling() {
            let Some(gpu) = device(None) else { return };
            let mut rng = rng();
            let cpu = CpuExec {
                cpu: &*REFERENCE,
                bytes: &[],
                small_chain: None,
                panels: None,
            };
            let (batch, seq, h) = (
                rng.gen_range(1..6),
                rng.gen_range(1..40),
                rng.gen_range(1..200),
            );
            let x = random_values(&mut rng, batch * seq * h, 0.0, 3.0);
            let mut mask = vec![0u8; batch * seq];
            for b in 0..batch {
                let len = rng.gen_range(1..=seq);
                mask[b * seq..b * seq + len].fill(1);
            }
            let exec = gpu.exec();
            let xt = exec.input(&x).unwrap();
            let want = cpu.first_tokens(&x, batch, seq, h).unwrap();
            let got = exec
                .output(&exec.first_tokens(&xt, batch, seq, h).unwrap())
                .unwrap();
            assert_eq!(got, want);
            for pooling in [Pooling::Cls, Pooling::Mean, Pooling::Max] {
                for normalize in [false, true] {
                    let want = cpu
                        .pool_sentences(&x, &mask, batch, seq, h, &pooling, normalize)
                        .unwrap();
                    let got = exec
                        .output(
                            &exec
                                .pool_sentences(&xt, &mask, batch, seq, h, &pooling, normalize)
                                .unwrap(),
                        )
                        .unwrap();
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                            "{pooling:?} normalize={normalize}: {g} vs {w}"
                        );
                    }
                }
            }
        }

        #[test]
        fn embeddings_from_tables_in_any_encoding_and_in_chunks() {
            let mut rng = rng();
            for (enc, policy) in [
                (Encoding::F32, SparsePolicy::Never),
                (Encoding::Mx(MxElem::Int8), SparsePolicy::Never),
                (Encoding::Mx(MxElem::Fp4), SparsePolicy::Never),
                (Encoding::Mx(MxElem::Int8), SparsePolicy::Always),
                (Encoding::Fixed { width: 5, frac: 3 }, SparsePolicy::Never),
                (Encoding::F16, SparsePolicy::Always),
            ] {
                let (vocab, positions, types, h) = (
                    rng.gen_range(2..60),
                    rng.gen_range(20..40),
                    2,
                    rng.gen_range(1..100),
                );
                // Whole tables, and chunks of two of the widest rows.
                for forced_chunks in [false, true] {
                    let table = |rng: &mut StdRng, name: &str, rows: usize| {
                        let v = random_values(rng, rows * h, 0.3, 1.0);
                        encode_f32(
                            name,
                            &[rows as u64, h as u64],
                            &v,
                            enc,
                            Rounding::Nearest,
                            policy,
                        )
                        .unwrap()
                    };
                    let (bytes, refs) = file(vec![
                        table(&mut rng, "word", vocab),
                        table(&mut rng, "pos", positions),
                        table(&mut rng, "type", types),
                    ]);
                    // A row's size as the upload plan counts it (MX rows padded to whole blocks, sparse rows
                    // as stored, plus the word the kernels may read past the end), never a guess from h.
                    let chunk = forced_chunks.then(|| {
                        let widest = ["word", "pos", "type"]
                            .map(|t| $crate::device_upload::widest_row_bytes(&refs[t], &bytes));
                        2 * widest.into_iter().max().unwrap_or(0)
                    });
                    let Some(mut gpu) = device(chunk) else { return };
                    let e = Embeddings {
                        word: refs["word"].clone(),
                        position: refs["pos"].clone(),
                        token_type: refs["type"].clone(),
                        norm: Norm {
                            name: "ln".into(),
                            gamma: random_values(&mut rng, h, 0.0, 2.0),
                            beta: random_values(&mut rng, h, 0.0, 1.0),
                        },
                    };
                    for t in [&e.word, &e.position, &e.token_type] {
                        gpu.weight(t, &bytes).unwrap();
                    }
                    gpu.norm(&e.norm).unwrap();
                    let (batch, seq) = (rng.gen_range(1..4), rng.gen_range(1..20));
                    let n = batch * seq;
                    let tokens = TokenBatch {
                        batch,
                        seq,
                        ids: (0..n).map(|_| rng.gen_range(0..vocab as u32)).collect(),
                        type_ids: (0..n).map(|_| rng.gen_range(0..2)).collect(),
                        mask: vec![1; n],
                    };
                    let cpu = CpuExec {
                        cpu: &*REFERENCE,
                        bytes: &bytes,
                        small_chain: None,
                        panels: None,
                    };
                    let want = cpu.embeddings(&e, &tokens, 1e-12).unwrap();
                    let exec = gpu.exec();
                    let got = exec
                        .output(&exec.embeddings(&e, &tokens, 1e-12).unwrap())
                        .unwrap();
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                            "{enc} {policy:?} chunk {chunk:?}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    };
}
