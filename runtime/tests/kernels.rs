//! Every fast kernel against the scalar reference on random sizes and fresh seeds. Integer (MXINT8) paths
//! must agree exactly; the f32 dot product within the bound derived below. Skipped, with a printed line,
//! where the CPU has no fast kernels.
//!
//! Bound for f32 dot products: any summation order of n products computes the exact dot product with an
//! error at most γₙ·Σ|aᵢbᵢ|, γₙ = n·u/(1−n·u), u = 2⁻²⁴ (Higham, Accuracy and Stability, §3.1; an FMA only
//! removes rounding steps). Two orders therefore differ by at most 2γₙ·Σ|aᵢbᵢ|.

use mxrt_format::{
    encode_f32, Encoding, FileBuilder, MxElem, MxrtFile, ReadOptions, Rounding, SparsePolicy,
};
use mxrt_runtime::bench::Cpu;
use mxrt_runtime::bench::{prepare_blocks, reference, Epilogue, Kernels, PanelWeights, TIERS};
use mxrt_runtime::ActQuant;
use mxrt_runtime::TensorRef;
use rand::{rngs::StdRng, Rng, SeedableRng};

#[path = "../src/test_seed.rs"]
mod test_seed;
use test_seed::test_seed as seed;

/// The tiers `MXRT_REQUIRE_SIMD` (comma-separated, e.g. `avx2,avx512`) says must be tested here: a test that
/// would skip one of them fails instead. `scripts/test.sh` sets it from /proc/cpuinfo, independently of the
/// runtime's own detection, so a machine's fast kernels cannot go untested without CI seeing it.
fn required_tiers() -> Vec<String> {
    let list = std::env::var("MXRT_REQUIRE_SIMD").unwrap_or_default();
    let tiers: Vec<String> = list
        .split(',')
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    for t in &tiers {
        assert!(
            TIERS.contains(&t.as_str()) && t != "reference",
            "MXRT_REQUIRE_SIMD names an unknown tier {t:?} (known: avx2, avx2vnni, avx512, amx)"
        );
    }
    tiers
}

/// Fails when one of `tiers` is required but not among `tables`; says on stderr (uncaptured, so CI logs show
/// it) when there is nothing to test.
fn check_required(tables: &[Kernels], tiers: &[&str], what: &str) {
    for tier in required_tiers() {
        if tiers.contains(&tier.as_str()) && !tables.iter().any(|k| k.tier == tier) {
            panic!(
                "MXRT_REQUIRE_SIMD requires the {tier} kernels but this build detects no such table for \
                 {what} (MXRT_NO_AMX set? CPU flags not detected?)"
            );
        }
    }
    if tables.is_empty() {
        say(&format!(
            "skipped: {what}: no such kernel table on this CPU"
        ));
    }
}

/// Straight to the process's stderr: `cargo test` hides what passing tests print, and a skip must show.
fn say(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{message}");
}

/// Every fast kernel table this CPU runs (each is checked against the reference); says so when none, and
/// fails when `MXRT_REQUIRE_SIMD` names a tier that is missing.
fn fast_tables() -> Vec<Kernels> {
    let tables = Kernels::available();
    check_required(&tables, &TIERS, "the SIMD kernels");
    tables
}

/// Every fast table this machine runs, then the reference (for tests that check each against an oracle of
/// their own, the reference included).
fn fast_tables_and_reference() -> Vec<Kernels> {
    let mut tables = fast_tables();
    tables.push(Kernels::reference());
    tables
}

/// The CPU ops on every fast table this machine runs, each paired with the reference table of the same
/// contract (`Kernels::reference_for`); the reference alone (paired with itself, still checked against the
/// oracles) where there is no fast table. Tables are chosen explicitly, so `MXRT_FORCE_REFERENCE` in the
/// environment cannot turn these tests into the reference compared with itself.
fn cpu_pairs() -> Vec<(Cpu, Cpu)> {
    let mut tables = fast_tables();
    if tables.is_empty() {
        tables.push(Kernels::reference());
    }
    tables
        .into_iter()
        .map(|k| {
            (
                Cpu { kernels: k },
                Cpu {
                    kernels: k.reference_for(),
                },
            )
        })
        .collect()
}

fn dot_bound(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len() as f64;
    let u = 2f64.powi(-24);
    let gamma = n * u / (1.0 - n * u);
    let abs: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(x.abs()) * f64::from(y.abs()))
        .sum();
    (2.0 * gamma * abs) as f32
}

#[test]
fn dot_f32_within_the_derived_bound() {
    for k in fast_tables() {
        let mut rng = StdRng::seed_from_u64(seed());
        for _ in 0..2000 {
            let n = rng.gen_range(0..700);
            let a: Vec<f32> = (0..n).map(|_| rng.gen_range(-2.0..2.0)).collect();
            let b: Vec<f32> = (0..n).map(|_| rng.gen_range(-2.0..2.0)).collect();
            let (r, f) = (reference::dot_f32(&a, &b), k.dot_f32.dot(&a, &b));
            assert!((r - f).abs() <= dot_bound(&a, &b), "n={n}: {r} vs {f}");
        }
    }
}

#[test]
fn dot_f32_rows3_within_the_derived_bound() {
    for k in fast_tables() {
        let mut rng = StdRng::seed_from_u64(seed());
        for _ in 0..500 {
            let (kd, rows) = (rng.gen_range(0..200), rng.gen_range(0..11));
            let x: Vec<f32> = (0..rows * kd).map(|_| rng.gen_range(-2.0..2.0)).collect();
            let w: Vec<Vec<f32>> = (0..3)
                .map(|_| (0..kd).map(|_| rng.gen_range(-2.0..2.0)).collect())
                .collect();
            let ws = [&w[0][..], &w[1][..], &w[2][..]];
            let (mut r, mut f) = (vec![0.0f32; 3 * rows], vec![0.0f32; 3 * rows]);
            reference::dot_f32_rows3(&x, kd, ws, &mut r);
            (k.dot_f32_rows3)(&x, kd, ws, &mut f);
            for i in 0..rows {
                for c in 0..3 {
                    let bound = dot_bound(&x[i * kd..(i + 1) * kd], ws[c]);
                    let (a, b) = (r[3 * i + c], f[3 * i + c]);
                    assert!(
                        (a - b).abs() <= bound,
                        "k={kd} rows={rows} ({i}, {c}): {a} vs {b}"
                    );
                }
            }
        }
    }
}

#[test]
fn sparse_dot_within_the_derived_bound() {
    for k in fast_tables() {
        let mut rng = StdRng::seed_from_u64(seed());
        for _ in 0..2000 {
            let len = rng.gen_range(1..500);
            let x: Vec<f32> = (0..len).map(|_| rng.gen_range(-2.0..2.0)).collect();
            let nnz = rng.gen_range(0..len);
            let cols: Vec<u32> = (0..nnz).map(|_| rng.gen_range(0..len as u32)).collect();
            let vals: Vec<f32> = (0..nnz).map(|_| rng.gen_range(-2.0..2.0)).collect();
            let gathered: Vec<f32> = cols.iter().map(|&c| x[c as usize]).collect();
            let (r, f) = (
                reference::sparse_dot(&vals, &cols, &x),
                k.sparse_dot.dot(&vals, &cols, &x),
            );
            assert!(
                (r - f).abs() <= dot_bound(&vals, &gathered),
                "nnz={nnz}: {r} vs {f}"
            );
        }
    }
}

/// A column index past the activation row panics on every table (the fast ones with their own message, the
/// reference by indexing) instead of reading out of bounds.
#[test]
fn sparse_dot_refuses_out_of_range_columns() {
    let tables = fast_tables_and_reference();
    for k in tables {
        let refused = std::panic::catch_unwind(|| k.sparse_dot.dot(&[1.0], &[5], &[0.0; 3]));
        let message = refused
            .err()
            .and_then(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            })
            .unwrap_or_else(|| panic!("{}: an out-of-range column did not panic", k.isa));
        let expected = if k.isa == "reference" {
            "index out of bounds"
        } else {
            "sparse column out of range"
        };
        assert!(message.contains(expected), "{}: {message}", k.isa);
    }
}

#[test]
fn integer_kernels_agree_exactly() {
    for k in fast_tables() {
        let mut rng = StdRng::seed_from_u64(seed());
        for _ in 0..2000 {
            let n = rng.gen_range(0..300);
            let a: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            let b: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            assert_eq!(reference::dot_i8(&a, &b), k.dot_i8.dot(&a, &b), "n={n}");
            let (blocks, rows) = (rng.gen_range(0..20), rng.gen_range(0..11));
            // Activation codes come from the quantizer: never -128 (the kernels' contract). Weight codes are any
            // byte (a file may hold -128).
            let ac: Vec<u8> = (0..rows * blocks * 32)
                .map(|_| rng.gen_range(-127i8..=127) as u8)
                .collect();
            let wc: Vec<u8> = (0..blocks * 32).map(|_| rng.gen()).collect();
            let wc2: Vec<u8> = (0..blocks * 32).map(|_| rng.gen()).collect();
            // Scale bytes across the whole range, including 0 (subnormal products) and 255 (NaN).
            let scale = |rng: &mut StdRng| {
                if rng.gen_bool(0.05) {
                    255
                } else {
                    rng.gen_range(0..=254u8)
                }
            };
            let asc: Vec<f32> = (0..rows * blocks)
                .map(|_| reference::act_scale(scale(&mut rng)))
                .collect();
            let wsc: Vec<f32> = (0..blocks)
                .map(|_| mxrt_format::mx::scale_value(scale(&mut rng)))
                .collect();
            let wsc2: Vec<f32> = (0..blocks)
                .map(|_| mxrt_format::mx::scale_value(scale(&mut rng)))
                .collect();
            let (mut r, mut f) = (vec![0.0f32; rows], vec![0.0f32; rows]);
            reference::mxint8_rows(&ac, &asc, &wc, &wsc, &mut r);
            (k.mxint8_rows)(&ac, &asc, &wc, &wsc, &mut f);
            let same = |x: &f32, y: &f32| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan());
            for (x, y) in r.iter().zip(&f) {
                assert!(same(x, y), "rows={rows} blocks={blocks}: {x} vs {y}");
            }
            // Output rows `ldo` apart (2: packed; more: columns of a wider matrix, the rest untouched).
            let ldo = 2 + rng.gen_range(0..3);
            let (mut r2, mut f2) = (vec![7.0f32; ldo * rows], vec![7.0f32; ldo * rows]);
            let pair = [(&wc[..], &wsc[..]), (&wc2[..], &wsc2[..])];
            reference::mxint8_rows2(&ac, &asc, rows, pair, &mut r2, ldo);
            (k.mxint8_rows2)(&ac, &asc, rows, pair, &mut f2, ldo);
            for (i, (x, y)) in r2.iter().zip(&f2).enumerate() {
                assert!(
                    same(x, y),
                    "rows2 rows={rows} blocks={blocks} out {i}: {x} vs {y}"
                );
            }
            // The pair kernel's first column is the single-row kernel's result; columns past 2 untouched.
            for i in 0..rows {
                assert!(
                    same(&r2[ldo * i], &r[i]),
                    "rows2 column 0 differs from mxint8_rows at {i}"
                );
                assert!(f2[ldo * i + 2..ldo * (i + 1)].iter().all(|&v| v == 7.0));
            }
        }
    }
}

/// The panel kernels (AVX2, AVX-VNNI, AVX-512 VNNI, AMX) against `reference::mxint8_panel`, bit for bit: random block counts, 1-4 weight
/// groups, padding rows (factor 0), every scale byte incl. 0 and 255 (NaN), weight codes incl. -128 (on the
/// table's kernel for such weights where it has one), an
/// output stride wider than the groups (columns past them untouched), with and without a bias per weight
/// row (with one: exactly the outputs without it plus the bias).
#[test]
fn mxint8_panel_agrees_exactly() {
    let tables: Vec<Kernels> = fast_tables()
        .into_iter()
        .filter(|k| k.mxint8_panel.is_some())
        .collect();
    check_required(
        &tables,
        &["avx2", "avx2vnni", "avx512", "amx"],
        "the panel kernels (AVX2, AVX-VNNI, AVX-512 VNNI, AMX)",
    );
    for k in tables {
        let panel_kernel = k.mxint8_panel.expect("filtered");
        let mut rng = StdRng::seed_from_u64(seed());
        for _ in 0..300 {
            let (bpr, groups) = (rng.gen_range(1..50), rng.gen_range(1..5));
            let real_rows = rng.gen_range(1..=16);
            let scale = |rng: &mut StdRng| {
                if rng.gen_bool(0.03) {
                    255
                } else {
                    rng.gen_range(0..=254u8)
                }
            };
            let codes: Vec<u8> = (0..real_rows * bpr * 32)
                .map(|_| rng.gen_range(-127i8..=127) as u8)
                .collect();
            let factors: Vec<f32> = (0..real_rows * bpr)
                .map(|_| reference::act_scale(scale(&mut rng)))
                .collect();
            // The reference kernel reads two's complement codes; the tier's kernel its own (`code_flip`).
            let (mut panel, mut panel_factors) = (Vec::new(), Vec::new());
            mxrt_runtime::bench::pack_mxint8_panels(
                &codes,
                &factors,
                bpr,
                0,
                &mut panel,
                &mut panel_factors,
            );
            let mut kernel_panel = Vec::new();
            mxrt_runtime::bench::pack_mxint8_panels(
                &codes,
                &factors,
                bpr,
                panel_kernel.code_flip(),
                &mut kernel_panel,
                &mut Vec::new(),
            );
            // Every weight code, −128 included in half the cases (a table whose fastest kernel cannot
            // take it serves such matrices with another: `for_weights`).
            let minus_128 = rng.gen_bool(0.5);
            let mut wc: Vec<u8> = (0..groups * 16 * bpr * 32)
                .map(|_| match rng.gen() {
                    0x80 if !minus_128 => 0x81,
                    c => c,
                })
                .collect();
            if minus_128 {
                let at = rng.gen_range(0..wc.len());
                wc[at] = 0x80;
            }
            let panel_kernel = panel_kernel.for_weights(|| wc.contains(&0x80));
            let wf: Vec<f32> = (0..groups * 16 * bpr)
                .map(|_| mxrt_format::mx::scale_value(scale(&mut rng)))
                .collect();
            let mut bias = Vec::new();
            if let Some(unsigned_bias) = panel_kernel.unsigned_bias {
                bias = vec![0; wc.len() / 32];
                unsigned_bias(&wc, &mut bias);
                // The tier's own bias routine against the reference, on this block count and an odd one.
                assert_eq!(bias, reference::panel_unsigned_bias(&wc), "{}", k.isa);
                let odd = &wc[..wc.len() - 32];
                let mut odd_bias = vec![0; odd.len() / 32];
                unsigned_bias(odd, &mut odd_bias);
                assert_eq!(odd_bias, reference::panel_unsigned_bias(odd), "{}", k.isa);
            }
            // Half the cases with a bias per weight row (-0.0 among them: added, it becomes +0.0 only
            // where the sum is -0.0 too, exactly as adding it after the kernel does).
            let row_bias: Vec<f32> = if rng.gen_bool(0.5) {
                (0..groups * 16)
                    .map(|_| {
                        if rng.gen_bool(0.1) {
                            -0.0
                        } else {
                            rng.gen_range(-3.0..3.0)
                        }
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let w = PanelWeights {
                codes: &wc,
                factors: &wf,
                unsigned_bias: &bias,
                bias: &row_bias,
            };
            let ldo = groups * 16 + rng.gen_range(0..5);
            let (mut r, mut f) = (vec![7.0f32; 16 * ldo], vec![7.0f32; 16 * ldo]);
            reference::mxint8_panel(&panel, &panel_factors, bpr, w, &mut r, ldo);
            (panel_kernel.run)(&kernel_panel, &panel_factors, bpr, w, &mut f, ldo);
            if !row_bias.is_empty() {
                let mut plain = vec![7.0f32; 16 * ldo];
                let w_plain = PanelWeights { bias: &[], ..w };
                reference::mxint8_panel(&panel, &panel_factors, bpr, w_plain, &mut plain, ldo);
                for i in 0..16 {
                    for c in 0..groups * 16 {
                        let (got, want) = (r[i * ldo + c], plain[i * ldo + c] + row_bias[c]);
                        assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()));
                    }
                }
            }
            for (i, (x, y)) in r.iter().zip(&f).enumerate() {
                assert!(
                    x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                    "{}: bpr={bpr} groups={groups} out {i}: {x} vs {y}",
                    k.isa
                );
            }
            assert!((0..16).all(|i| f[i * ldo + groups * 16..(i + 1) * ldo]
                .iter()
                .all(|&v| v == 7.0)));
        }
    }
}

/// Packing then the reference panel kernel computes the MXINT8 product: with one scale per row and small
/// codes every step is exact, so the result equals the f64 dot product of the decoded values; padding rows
/// are 0.
#[test]
fn packed_panels_compute_the_decoded_product() {
    let mut rng = StdRng::seed_from_u64(seed());
    for _ in 0..100 {
        let (bpr, rows, wrows) = (rng.gen_range(1..6), rng.gen_range(1..=16), 16);
        let a: Vec<u8> = (0..rows * bpr * 32)
            .map(|_| rng.gen_range(-8i8..8) as u8)
            .collect();
        let w: Vec<u8> = (0..wrows * bpr * 32)
            .map(|_| rng.gen_range(-8i8..8) as u8)
            .collect();
        let a_scale: Vec<u8> = (0..rows).map(|_| rng.gen_range(120..134)).collect();
        let w_scale: Vec<u8> = (0..wrows).map(|_| rng.gen_range(120..134)).collect();
        let af: Vec<f32> = (0..rows * bpr)
            .map(|x| reference::act_scale(a_scale[x / bpr]))
            .collect();
        let wf: Vec<f32> = (0..wrows * bpr)
            .map(|x| mxrt_format::mx::scale_value(w_scale[x / bpr]))
            .collect();
        let (mut panel, mut pf) = (Vec::new(), Vec::new());
        mxrt_runtime::bench::pack_mxint8_panels(&a, &af, bpr, 0, &mut panel, &mut pf);
        let mut out = vec![f32::NAN; 16 * 16];
        let weights = PanelWeights {
            codes: &w,
            factors: &wf,
            unsigned_bias: &[],
            bias: &[],
        };
        reference::mxint8_panel(&panel, &pf, bpr, weights, &mut out, 16);
        for i in 0..16 {
            for r in 0..wrows {
                let expect = if i < rows {
                    (0..bpr * 32)
                        .map(|e| {
                            f64::from(a[i * bpr * 32 + e] as i8)
                                * f64::from(w[r * bpr * 32 + e] as i8)
                        })
                        .sum::<f64>()
                        * f64::from(af[i * bpr])
                        * f64::from(wf[r * bpr])
                } else {
                    0.0
                };
                assert_eq!(f64::from(out[i * 16 + r]), expect, "row {i} weight row {r}");
            }
        }
    }
}

#[test]
fn mxint8_rows_is_the_dot_product_of_the_decoded_values() {
    // With small codes and one scale per row, every partial sum is a multiple of one power of two below 2^24
    // units, so every step is exact: the result equals the f64 dot product of the decoded values.
    let mut rng = StdRng::seed_from_u64(seed());
    for _ in 0..200 {
        let blocks = rng.gen_range(1..6);
        let a: Vec<u8> = (0..blocks * 32)
            .map(|_| rng.gen_range(-8i8..8) as u8)
            .collect();
        let w: Vec<u8> = (0..blocks * 32)
            .map(|_| rng.gen_range(-8i8..8) as u8)
            .collect();
        let (sa, sw) = (
            vec![rng.gen_range(110..140u8); blocks],
            vec![rng.gen_range(110..140u8); blocks],
        );
        let mut got = [0.0f32];
        let asc: Vec<f32> = sa.iter().map(|&s| reference::act_scale(s)).collect();
        let wsc: Vec<f32> = sw
            .iter()
            .map(|&s| mxrt_format::mx::scale_value(s))
            .collect();
        reference::mxint8_rows(&a, &asc, &w, &wsc, &mut got);
        let value =
            |q: u8, s: u8| f64::from(q as i8) / 64.0 * f64::from(mxrt_format::mx::scale_value(s));
        let want: f64 = (0..blocks * 32)
            .map(|e| value(a[e], sa[e / 32]) * value(w[e], sw[e / 32]))
            .sum();
        assert_eq!(f64::from(got[0]), want);
    }
}

/// A file holding one `[n, k]` weight in `enc` with about `zeros` of it zero; returns its bytes and values.
fn weight_file(
    rng: &mut StdRng,
    n: usize,
    k: usize,
    enc: Encoding,
    policy: SparsePolicy,
    zeros: f64,
) -> (Vec<u8>, Vec<f32>) {
    let values: Vec<f32> = (0..n * k)
        .map(|_| {
            if rng.gen_bool(zeros) {
                0.0
            } else {
                rng.gen_range(-1.0..1.0)
            }
        })
        .collect();
    let mut b = FileBuilder::new(serde_json::Map::new()).unwrap();
    b.push(
        encode_f32(
            "w",
            &[n as u64, k as u64],
            &values,
            enc,
            Rounding::Nearest,
            policy,
        )
        .unwrap(),
    )
    .unwrap();
    let bytes = b.to_bytes().unwrap();
    let decoded = MxrtFile::parse(&bytes, ReadOptions::default())
        .unwrap()
        .tensor("w")
        .unwrap()
        .dequantize()
        .unwrap();
    (bytes, decoded)
}

/// The tensor "w" of a file made by [`weight_file`].
fn tensor_w(bytes: &[u8]) -> TensorRef {
    let file = MxrtFile::parse(bytes, ReadOptions::default()).unwrap();
    TensorRef::from_view(file.tensor("w").unwrap())
}

/// Output `(i, o)` of a linear layer in f64 (weight row `o` of `w` · row `i` of the already quantized input
/// `xq`, plus the bias) and the tolerance any f32 summation order meets: the dot-product bound, with room
/// for the bias addition and the final rounding.
fn oracle(w: &[f32], xq: &[f32], bias: &[f32], k: usize, (i, o): (usize, usize)) -> (f64, f32) {
    let (wr, xr) = (&w[o * k..(o + 1) * k], &xq[i * k..(i + 1) * k]);
    let exact = wr
        .iter()
        .zip(xr)
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum::<f64>()
        + f64::from(bias[o]);
    (exact, dot_bound(wr, xr) + 1e-6 * exact.abs() as f32 + 1e-7)
}

/// The linear op for every weight encoding and both input paths against dequantize-then-matmul.
#[test]
fn linear_matches_a_dequantize_then_matmul_oracle() {
    let mut rng = StdRng::seed_from_u64(seed());
    for (fast_cpu, reference_cpu) in cpu_pairs() {
        linear_against_the_oracle(&mut rng, &fast_cpu, &reference_cpu);
    }
}

fn linear_against_the_oracle(rng: &mut StdRng, fast_cpu: &Cpu, reference_cpu: &Cpu) {
    let encodings = [
        Encoding::F32,
        Encoding::F16,
        Encoding::Bf16,
        Encoding::Mx(MxElem::Int8),
        Encoding::Mx(MxElem::Int4),
        Encoding::Mx(MxElem::Fp4),
        Encoding::Fixed { width: 8, frac: 5 },
        Encoding::Fixed { width: 4, frac: 2 },
        Encoding::Fixed { width: 12, frac: 6 },
        Encoding::Fixed {
            width: 24,
            frac: 10,
        },
    ];
    for enc in encodings {
        // Dense; sparse at 30 % zeros (decoded densely); sparse at 90 % zeros (the sparse kernel).
        for (policy, zeros) in [
            (SparsePolicy::Never, 0.3),
            (SparsePolicy::Always, 0.3),
            (SparsePolicy::Always, 0.9),
        ] {
            for act in [
                ActQuant::NONE,
                ActQuant {
                    encoding: Encoding::Mx(MxElem::Int8),
                    rounding: Rounding::Nearest,
                },
            ] {
                // Few activation rows (per-weight-row work), a few dozen to hundreds (the activations
                // transposed into panels; tiles of 64 rows across the cores where the weights are sparse or
                // fixed point), or enough for packing the weights (512 and more).
                let m = match rng.gen_range(0..10) {
                    0..=2 => rng.gen_range(16..300),
                    3..=4 => rng.gen_range(512..700),
                    _ => rng.gen_range(1..9),
                };
                let (n, k) = (rng.gen_range(1..150), rng.gen_range(1..100));
                let (bytes, w) = weight_file(rng, n, k, enc, policy, zeros);
                let tref = tensor_w(&bytes);
                let view = tref.view(&bytes);
                let x: Vec<f32> = (0..m * k).map(|_| rng.gen_range(-3.0..3.0)).collect();
                let bias: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
                // Oracle: activations quantized as the recipe says, then an f64 matmul.
                let mut xq = x.clone();
                mxrt_runtime::bench::fake_quantize_rows(&mut xq, k, act);
                let r = reference_cpu.linear(&x, m, &view, Some(&bias), act);
                let f = fast_cpu.linear(&x, m, &view, Some(&bias), act);
                for i in 0..m {
                    for o in 0..n {
                        let (exact, tol) = oracle(&w, &xq, &bias, k, (i, o));
                        let (rv, fv) = (r[i * n + o], f[i * n + o]);
                        assert!(
                            (f64::from(rv) - exact).abs() as f32 <= tol,
                            "{} {enc} {policy:?} {act:?}: reference {rv} vs exact {exact}",
                            reference_cpu.kernels.isa
                        );
                        assert!(
                            (f64::from(fv) - exact).abs() as f32 <= tol,
                            "{} {enc} {policy:?} {act:?}: fast {fv} vs exact {exact}",
                            fast_cpu.kernels.isa
                        );
                        let int_path = enc == Encoding::Mx(MxElem::Int8)
                            && policy == SparsePolicy::Never
                            && !act.is_none();
                        if int_path {
                            assert_eq!(
                                rv.to_bits(),
                                fv.to_bits(),
                                "{}: integer path must agree exactly",
                                fast_cpu.kernels.isa
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn mxint8_activation_quantizer_agrees_exactly() {
    use mxrt_format::Rounding;
    for k in fast_tables() {
        let mut rng = StdRng::seed_from_u64(seed());
        for case in 0..20_000 {
            let exp = rng.gen_range(-140..128);
            let mut block = [0f32; 32];
            for v in block.iter_mut() {
                *v = match rng.gen_range(0..12) {
                    // Exact ties after scaling: multiples of half a code step.
                    0 => (rng.gen_range(-300i32..300) as f32 + 0.5) * 2f32.powi(exp - 7),
                    // One ulp below such a tie (below half a step, `|t| + 0.5` rounds up to 1.0 in the
                    // reference: the AVX-512 quantizer's one correction to the CPU's own rounding).
                    11 => f32::from_bits(
                        ((rng.gen_range(0i32..4) as f32 + 0.5)
                            * 2f32.powi(exp.clamp(-120, 120) - 7))
                        .to_bits()
                            - 1,
                    ),
                    1 => 0.0,
                    2 => -0.0,
                    // Just below a power of two (the reference's log2 rounding counts it as that power).
                    3 => f32::from_bits(
                        2f32.powi(exp.clamp(-126, 127)).to_bits() - rng.gen_range(1..4),
                    ),
                    4 => f32::from_bits(rng.gen_range(1..0x0080_0000)), // subnormal
                    _ => (rng.gen::<f32>() - 0.5) * 2f32.powi(exp.clamp(-149, 127)),
                };
            }
            match case % 200 {
                0 => block[rng.gen_range(0..32)] = f32::NAN,
                1 => block[rng.gen_range(0..32)] = f32::INFINITY,
                2 => block = [0.0; 32],
                _ => {}
            }
            for rounding in [Rounding::Nearest, Rounding::Even] {
                let (mut r, mut f) = ([0u8; 32], [0u8; 32]);
                let sr = reference::mxint8_quantize_block(&block, rounding, &mut r);
                let sf = (k.mxint8_quantize_block)(&block, rounding, &mut f);
                assert_eq!((sr, r), (sf, f), "{rounding:?} block {block:?}");
                assert!(!r.contains(&0x80), "never -128");
            }
        }
    }
}

#[test]
fn exp_and_gelu_within_their_bounds() {
    let mut rng = StdRng::seed_from_u64(seed());
    for k in fast_tables() {
        for _ in 0..200 {
            let n = rng.gen_range(0..100);
            // exp: within 2 ulp (relative 2^-22) where the result is normal; below, both are tiny.
            let x: Vec<f32> = (0..n).map(|_| rng.gen_range(-100.0..88.5)).collect();
            let (mut r, mut f) = (x.clone(), x.clone());
            reference::exp_in_place(&mut r);
            k.exp_in_place.apply(&mut f);
            for ((a, b), v) in r.iter().zip(&f).zip(&x) {
                if *v >= -87.0 {
                    assert!((a - b).abs() <= a * 2f32.powi(-22), "exp({v}): {a} vs {b}");
                } else {
                    assert!(
                        *a < 1.7e-38 && *b < 1.7e-38 && *b >= 0.0,
                        "exp({v}): {a} vs {b}"
                    );
                }
            }
            // GELU: 0.5 x (1 + erf): erf within 2e-7 absolute, so GELU within 1e-7 |x| plus rounding.
            let x: Vec<f32> = (0..n).map(|_| rng.gen_range(-12.0..12.0)).collect();
            let (mut r, mut f) = (x.clone(), x.clone());
            reference::gelu_in_place(&mut r);
            k.gelu_in_place.apply(&mut f);
            for ((a, b), v) in r.iter().zip(&f).zip(&x) {
                let bound = 1e-7 * v.abs() + 4.0 * f32::EPSILON * a.abs().max(1e-30);
                assert!((a - b).abs() <= bound, "gelu({v}): {a} vs {b}");
            }
        }
        // Special values: exp(0) = 1 exactly, GELU(0) = 0, large |x|: GELU(x) = x or 0.
        let mut e = vec![0.0f32; 9];
        k.exp_in_place.apply(&mut e);
        assert!(e.iter().all(|&v| v == 1.0), "{e:?}");
        let mut g = vec![0.0, 20.0, -20.0, 0.0, 0.0, 0.0, 0.0, 0.0, 30.0];
        k.gelu_in_place.apply(&mut g);
        assert_eq!(&g[..3], &[0.0, 20.0, 0.0]);
    }
}

#[test]
fn linear3_equals_three_linear_calls() {
    let mut rng = StdRng::seed_from_u64(seed());
    for (cpu, _) in cpu_pairs() {
        linear3_against_linear(&mut rng, &cpu);
    }
}

fn linear3_against_linear(rng: &mut StdRng, cpu: &Cpu) {
    for act in [
        ActQuant::NONE,
        ActQuant {
            encoding: Encoding::Mx(MxElem::Int8),
            rounding: Rounding::Even,
        },
    ] {
        for m in [1, 7, 130] {
            let (n, k) = (rng.gen_range(1..30), rng.gen_range(1..90));
            let files: Vec<(Vec<u8>, Vec<f32>)> = (0..3)
                .map(|_| {
                    weight_file(
                        rng,
                        n,
                        k,
                        Encoding::Mx(MxElem::Int8),
                        SparsePolicy::Never,
                        0.1,
                    )
                })
                .collect();
            let refs: Vec<TensorRef> = files
                .iter()
                .map(|(b, _)| {
                    TensorRef::from_view(
                        MxrtFile::parse(b, ReadOptions::default())
                            .unwrap()
                            .tensor("w")
                            .unwrap(),
                    )
                })
                .collect();
            let views: Vec<_> = refs
                .iter()
                .zip(&files)
                .map(|(t, (b, _))| t.view(b))
                .collect();
            let x: Vec<f32> = (0..m * k).map(|_| rng.gen_range(-3.0..3.0)).collect();
            let bias: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let three = cpu.linear3(
                &x,
                m,
                [
                    (&views[0], Some(&bias)),
                    (&views[1], None),
                    (&views[2], Some(&bias)),
                ],
                act,
            );
            for (i, (got, b)) in three
                .iter()
                .zip([Some(&bias[..]), None, Some(&bias[..])])
                .enumerate()
            {
                let want = cpu.linear(&x, m, &views[i], b, act);
                assert_eq!(
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{}: layer {i}, m={m}, {act:?}",
                    cpu.kernels.isa
                );
            }
        }
    }
}

/// The masked softmax of an attention row: masked entries exactly 0, an all-masked row all zeros, and every
/// probability within (n + 8) units in the last place of the reference's (exp within 2 ulp per value, the
/// sum in another order: n ulp relative at most, one division).
#[test]
fn softmax_masked_within_its_bound() {
    let mut rng = StdRng::seed_from_u64(seed());
    for k in fast_tables() {
        for _ in 0..500 {
            let n = rng.gen_range(1..300);
            let row: Vec<f32> = (0..n).map(|_| rng.gen_range(-30.0..30.0)).collect();
            let keep: Vec<u8> = match rng.gen_range(0..4) {
                0 => vec![0; n],
                1 => vec![1; n],
                _ => (0..n).map(|_| u8::from(rng.gen_bool(0.7))).collect(),
            };
            let scale = rng.gen_range(0.05..1.0);
            let (mut r, mut f) = (row.clone(), row.clone());
            reference::softmax_masked(&mut r, &keep, scale);
            (k.softmax_masked)(&mut f, &keep, scale);
            for j in 0..n {
                if keep[j] == 0 {
                    assert_eq!(f[j].to_bits(), 0, "{}: masked entry {j} of {n}", k.isa);
                    continue;
                }
                let bound = (n + 8) as f32 * f32::EPSILON * r[j].abs() + f32::MIN_POSITIVE;
                assert!(
                    (r[j] - f[j]).abs() <= bound,
                    "{}: n={n} entry {j}: {} vs {}",
                    k.isa,
                    r[j],
                    f[j]
                );
            }
            if keep.iter().any(|&x| x != 0) {
                let total: f32 = f.iter().sum();
                assert!((total - 1.0).abs() < 1e-4, "{}: sums to {total}", k.isa);
            }
        }
    }
}

/// LayerNorm rows with and without a residual: the residual add is exact-identical (f32), and the result
/// within 2 ulp of the reference's plus a tiny absolute term (the f64 sums differ only in order: ~1e-16
/// relative, so the f32 results differ by at most a rounding flip of the normalized value and of the
/// affine step).
#[test]
fn layer_norm_row_within_its_bound() {
    let mut rng = StdRng::seed_from_u64(seed());
    for k in fast_tables() {
        for _ in 0..300 {
            let n = rng.gen_range(1..800);
            let offset = rng.gen_range(-50.0..50.0);
            let row: Vec<f32> = (0..n).map(|_| offset + rng.gen_range(-4.0..4.0)).collect();
            let residual: Vec<f32> = (0..n).map(|_| rng.gen_range(-2.0..2.0)).collect();
            let gamma: Vec<f32> = (0..n).map(|_| rng.gen_range(-2.0..2.0)).collect();
            let beta: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let eps = 1e-12;
            for res in [None, Some(&residual[..])] {
                let (mut r, mut f) = (row.clone(), row.clone());
                reference::layer_norm_row(&mut r, res, &gamma, &beta, eps);
                (k.layer_norm_row)(&mut f, res, &gamma, &beta, eps);
                for j in 0..n {
                    let bound = 2.0 * f32::EPSILON * (gamma[j].abs() * 8.0 + beta[j].abs()) + 1e-7;
                    assert!(
                        (r[j] - f[j]).abs() <= bound,
                        "{}: n={n} residual={} entry {j}: {} vs {}",
                        k.isa,
                        res.is_some(),
                        r[j],
                        f[j]
                    );
                }
            }
        }
    }
}

/// LayerNorm with realistic eps (1e-12 as in BERT, 1e-5 and 1e-6 as in most other models) on every table,
/// the reference included, against the formula computed here in f64: rows whose variance is below eps (eps
/// decides the result: without it they are off by a factor of ~5) within 4 ulp, and constant rows (variance
/// exactly 0) exactly beta (without eps: 0/0).
#[test]
fn layer_norm_row_uses_eps_and_keeps_constant_rows_at_beta() {
    let mut rng = StdRng::seed_from_u64(seed());
    let tables = fast_tables_and_reference();
    for k in tables {
        for case in 0..300 {
            let eps = [1e-12f32, 1e-5, 1e-6][case % 3];
            let n = rng.gen_range(1..800);
            let constant = case % 2 == 0;
            let row: Vec<f32> = if constant {
                vec![rng.gen_range(-50.0..50.0); n]
            } else {
                (0..n).map(|_| rng.gen_range(-1e-3..1e-3)).collect()
            };
            let gamma: Vec<f32> = (0..n).map(|_| rng.gen_range(-2.0..2.0)).collect();
            let beta: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let mut got = row.clone();
            (k.layer_norm_row)(&mut got, None, &gamma, &beta, eps);
            let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
            let var = row
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / n as f64;
            for j in 0..n {
                let normalized = (f64::from(row[j]) - mean) / (var + f64::from(eps)).sqrt();
                let want = normalized * f64::from(gamma[j]) + f64::from(beta[j]);
                if constant {
                    assert_eq!(
                        got[j].to_bits(),
                        beta[j].to_bits(),
                        "{}: constant row, n={n} eps={eps:e} entry {j}: {} vs beta {}",
                        k.isa,
                        got[j],
                        beta[j]
                    );
                } else {
                    let tol = 4.0
                        * f64::from(f32::EPSILON)
                        * ((normalized * f64::from(gamma[j])).abs() + f64::from(beta[j]).abs());
                    assert!(
                        (f64::from(got[j]) - want).abs() <= tol,
                        "{}: n={n} eps={eps:e} entry {j}: {} vs {want}",
                        k.isa,
                        got[j]
                    );
                }
            }
        }
    }
}

/// `w` (`n` rows of `kd`) transposed into the packed panel `gemm_f32_packed` and `gemv_f32_packed` read:
/// `[kd, stride]`, stride = n rounded up to 16, zeros past n.
fn packed_panel(w: &[f32], n: usize, kd: usize) -> Vec<f32> {
    let stride = n.div_ceil(16) * 16;
    let mut wt = vec![0.0f32; kd * stride];
    for r in 0..n {
        for t in 0..kd {
            wt[t * stride + r] = w[r * kd + t];
        }
    }
    wt
}

#[test]
fn gemm_f32_packed_within_the_derived_bound() {
    let mut rng = StdRng::seed_from_u64(seed());
    for k in fast_tables() {
        for _ in 0..300 {
            // Depths past the kernels' 128-step passes as well as short ones.
            let (kd, n, rows): (usize, usize, usize) = (
                if rng.gen_bool(0.2) {
                    rng.gen_range(120..300)
                } else {
                    rng.gen_range(0..70)
                },
                rng.gen_range(1..80),
                rng.gen_range(0..20),
            );
            let x: Vec<f32> = (0..rows * kd).map(|_| rng.gen_range(-2.0..2.0)).collect();
            let w: Vec<f32> = (0..n * kd).map(|_| rng.gen_range(-2.0..2.0)).collect();
            let wt = packed_panel(&w, n, kd);
            // Output rows `ldo` apart; the columns past n keep their value.
            let ldo = n + rng.gen_range(0..3);
            let (mut r, mut f) = (vec![7.0f32; rows * ldo], vec![7.0f32; rows * ldo]);
            reference::gemm_f32_packed(&x, rows, kd, &wt, n, &mut r, ldo, Epilogue::NONE);
            (k.gemm_f32_packed)(&x, rows, kd, &wt, n, &mut f, ldo, Epilogue::NONE);
            for i in 0..rows {
                assert!(f[i * ldo + n..(i + 1) * ldo].iter().all(|&v| v == 7.0));
                for c in 0..n {
                    let bound = dot_bound(&x[i * kd..(i + 1) * kd], &w[c * kd..(c + 1) * kd]);
                    let (a, b) = (r[i * ldo + c], f[i * ldo + c]);
                    assert!(
                        (a - b).abs() <= bound,
                        "k={kd} n={n} ({i}, {c}): {a} vs {b}"
                    );
                }
            }
        }
    }
}

/// The packed GEMM's epilogue (bias, ReLU) gives, on every table, the reference and the tier's own kernel
/// alike, bit for bit what its product without one then `reference::add_bias_rows` give: depths past the
/// 128-step passes (applied once, after the last), ragged column vectors, NaN and −0 sums.
#[test]
fn gemm_f32_packed_epilogue_is_the_bias_pass_after_it() {
    let mut rng = StdRng::seed_from_u64(seed());
    for k in fast_tables_and_reference() {
        for case in 0..200 {
            let (kd, n, rows): (usize, usize, usize) = (
                if rng.gen_bool(0.25) {
                    rng.gen_range(120..300)
                } else {
                    rng.gen_range(0..40)
                },
                rng.gen_range(1..80),
                rng.gen_range(1..20),
            );
            let mut x: Vec<f32> = (0..rows * kd).map(|_| rng.gen_range(-2.0..2.0)).collect();
            if case % 7 == 0 && !x.is_empty() {
                let at = rng.gen_range(0..x.len());
                x[at] = f32::NAN;
            }
            let w: Vec<f32> = (0..n * kd).map(|_| rng.gen_range(-2.0..2.0)).collect();
            let wt = packed_panel(&w, n, kd);
            let bias: Vec<f32> = (0..n)
                .map(|_| {
                    if rng.gen_bool(0.2) {
                        -0.0
                    } else {
                        rng.gen_range(-2.0..2.0)
                    }
                })
                .collect();
            let ldo = n + rng.gen_range(0..3);
            for (with_bias, relu) in [(true, false), (false, true), (true, true)] {
                let epilogue = Epilogue {
                    bias: with_bias.then_some(&bias[..]),
                    relu,
                };
                let (mut want, mut got) = (vec![7.0f32; rows * ldo], vec![7.0f32; rows * ldo]);
                (k.gemm_f32_packed)(&x, rows, kd, &wt, n, &mut want, ldo, Epilogue::NONE);
                for row in want.chunks_mut(ldo) {
                    let b: Vec<f32> = if with_bias {
                        bias.clone()
                    } else {
                        vec![0.0; n]
                    };
                    if with_bias || relu {
                        reference::add_bias_rows(&mut row[..n], &b, relu);
                    }
                }
                (k.gemm_f32_packed)(&x, rows, kd, &wt, n, &mut got, ldo, epilogue);
                for (i, (a, b)) in want.iter().zip(&got).enumerate() {
                    assert!(
                        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                        "{}: k={kd} n={n} rows={rows} bias={with_bias} relu={relu}: value {i}: {b} vs {a}",
                        k.isa
                    );
                }
            }
        }
    }
}

/// The one-row product of the small-MLP path: every tier's four-chain sums bit for bit the reference's (the
/// same fused multiply-adds in the same order), and the reference within the dot-product bound of the
/// exact sum; outputs past `n` untouched. Depths not a multiple of 4, widths past one and four vectors.
#[test]
fn gemv_f32_packed_agrees_exactly_and_within_the_bound() {
    let mut rng = StdRng::seed_from_u64(seed());
    let tables = fast_tables_and_reference();
    for k in tables {
        for _ in 0..300 {
            let (kd, n): (usize, usize) = (rng.gen_range(0..140), rng.gen_range(1..150));
            let x: Vec<f32> = (0..kd).map(|_| rng.gen_range(-2.0..2.0)).collect();
            let w: Vec<f32> = (0..n * kd).map(|_| rng.gen_range(-2.0..2.0)).collect();
            let wt = packed_panel(&w, n, kd);
            let (mut r, mut f) = (vec![7.0f32; n + 3], vec![7.0f32; n + 3]);
            reference::gemv_f32_packed(&x, kd, &wt, n, &mut r[..n]);
            (k.gemv_f32_packed)(&x, kd, &wt, n, &mut f[..n]);
            assert!(f[n..].iter().all(|&v| v == 7.0));
            for c in 0..n {
                assert_eq!(
                    r[c].to_bits(),
                    f[c].to_bits(),
                    "{}: k={kd} n={n} column {c}",
                    k.isa
                );
                let exact: f64 = (0..kd)
                    .map(|t| f64::from(x[t]) * f64::from(w[c * kd + t]))
                    .sum();
                let bound = dot_bound(&x, &w[c * kd..(c + 1) * kd]);
                assert!(
                    (f64::from(r[c]) - exact).abs() <= f64::from(bound),
                    "k={kd} n={n} column {c}: {} vs {exact}",
                    r[c]
                );
            }
        }
    }
}

/// The MXINT8 form of the one-row product: every tier bit for bit the reference, and the reference bit for
/// bit `gemv_f32_packed` on the panel decoded as the file decodes it (`code · 2^e / 64`), for every scale
/// byte but the NaN one (incl. subnormal factors) and codes incl. −128; outputs past `n` untouched.
#[test]
fn gemv_mxint8_packed_is_the_f32_gemv_on_the_decoded_panel() {
    let mut rng = StdRng::seed_from_u64(seed());
    let tables = fast_tables_and_reference();
    for k in tables {
        for _ in 0..300 {
            let (kd, n): (usize, usize) = (rng.gen_range(0..140), rng.gen_range(1..150));
            let stride = n.div_ceil(16) * 16;
            let blocks = kd.div_ceil(32);
            let x: Vec<f32> = (0..kd).map(|_| rng.gen_range(-2.0..2.0)).collect();
            let mut codes = vec![0u8; kd * stride];
            let mut factors = vec![0.0f32; blocks * stride];
            let mut decoded = vec![0.0f32; kd * stride];
            for c in 0..n {
                for b in 0..blocks {
                    let scale = if rng.gen_bool(0.1) {
                        rng.gen_range(0..4u8)
                    } else {
                        rng.gen_range(100..150u8)
                    };
                    factors[b * stride + c] = mxrt_format::mx::scale_value(scale) * (1.0 / 64.0);
                }
                for t in 0..kd {
                    let code: u8 = rng.gen();
                    codes[t * stride + c] = code;
                    decoded[t * stride + c] = f32::from(code as i8) * factors[t / 32 * stride + c];
                }
            }
            let (mut want, mut r, mut f) = (
                vec![7.0f32; n + 3],
                vec![7.0f32; n + 3],
                vec![7.0f32; n + 3],
            );
            reference::gemv_f32_packed(&x, kd, &decoded, n, &mut want[..n]);
            reference::gemv_mxint8_packed(&x, kd, &codes, &factors, n, &mut r[..n]);
            (k.gemv_mxint8_packed)(&x, kd, &codes, &factors, n, &mut f[..n]);
            assert!(f[n..].iter().all(|&v| v == 7.0));
            for c in 0..n {
                assert_eq!(
                    want[c].to_bits(),
                    r[c].to_bits(),
                    "reference: k={kd} n={n} column {c}"
                );
                assert_eq!(
                    r[c].to_bits(),
                    f[c].to_bits(),
                    "{}: k={kd} n={n} column {c}",
                    k.isa
                );
            }
        }
    }
}

#[test]
fn mxint8_dot_f32_within_the_derived_bound() {
    let mut rng = StdRng::seed_from_u64(seed());
    for k in fast_tables() {
        for _ in 0..500 {
            let cols: usize = rng.gen_range(0..300);
            let blocks = cols.div_ceil(32);
            // Codes past `cols` are the zero padding of the last block.
            let codes: Vec<u8> = (0..32 * blocks)
                .map(|e| if e < cols { rng.gen::<u8>() } else { 0 })
                .collect();
            let steps: Vec<f32> = (0..blocks)
                .map(|_| 2f32.powi(rng.gen_range(-20..10)) / 64.0)
                .collect();
            let x: Vec<f32> = (0..cols).map(|_| rng.gen_range(-2.0..2.0)).collect();
            let decoded: Vec<f32> = (0..cols)
                .map(|e| f32::from(codes[e] as i8) * steps[e / 32])
                .collect();
            let r = reference::mxint8_dot_f32(&codes, &steps, &x);
            let f = k.mxint8_dot_f32.dot(&codes, &steps, &x);
            assert!(
                (r - f).abs() <= dot_bound(&decoded, &x),
                "cols={cols}: {r} vs {f}"
            );
        }
    }
}

/// The MXINT8 × MXINT8 linear op on shapes that take every route of the panel driver (where the CPU has the
/// panel kernel): few rows split across weight groups (1, 17, 33 rows with enough work to go parallel), a
/// ragged last panel and a ragged last weight group, many panels. Bit for bit equal to the same op on the
/// scalar reference table with the same contract, and within the dot-product bound of the f64 oracle.
#[test]
fn mxint8_linear_every_route_matches_its_reference() {
    let mut rng = StdRng::seed_from_u64(seed());
    for (fast_cpu, reference_cpu) in cpu_pairs() {
        mxint8_routes_against_the_reference(&mut rng, &fast_cpu, &reference_cpu);
    }
}

fn mxint8_routes_against_the_reference(rng: &mut StdRng, fast_cpu: &Cpu, reference_cpu: &Cpu) {
    let act = ActQuant {
        encoding: Encoding::Mx(MxElem::Int8),
        rounding: Rounding::Nearest,
    };
    for m in [1usize, 17, 33, 70] {
        let (n, k) = (rng.gen_range(100..300), rng.gen_range(200..400));
        let (bytes, w) = weight_file(
            rng,
            n,
            k,
            Encoding::Mx(MxElem::Int8),
            SparsePolicy::Never,
            0.0,
        );
        let tref = tensor_w(&bytes);
        let view = tref.view(&bytes);
        let x: Vec<f32> = (0..m * k).map(|_| rng.gen_range(-3.0..3.0)).collect();
        let bias: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let mut xq = x.clone();
        mxrt_runtime::bench::fake_quantize_rows(&mut xq, k, act);
        let r = reference_cpu.linear(&x, m, &view, Some(&bias), act);
        let f = fast_cpu.linear(&x, m, &view, Some(&bias), act);
        let g = fast_cpu.linear_gelu(&x, m, &view, Some(&bias), act);
        let mut f_gelu = f.clone();
        fast_cpu.kernels.gelu_in_place.apply(&mut f_gelu);
        for i in 0..m {
            for o in 0..n {
                let (exact, tol) = oracle(&w, &xq, &bias, k, (i, o));
                let fv = f[i * n + o];
                assert!(
                    (f64::from(fv) - exact).abs() as f32 <= tol,
                    "{}: m={m} n={n} k={k} ({i}, {o}): {fv} vs exact {exact}",
                    fast_cpu.kernels.isa
                );
                assert_eq!(
                    fv.to_bits(),
                    r[i * n + o].to_bits(),
                    "{}: m={m} n={n} k={k} ({i}, {o}): fast and reference tables differ",
                    fast_cpu.kernels.isa
                );
                assert_eq!(
                    g[i * n + o].to_bits(),
                    f_gelu[i * n + o].to_bits(),
                    "{}: m={m} ({i}, {o}): fused GELU differs from GELU after the linear",
                    fast_cpu.kernels.isa
                );
            }
        }
    }
}

/// Quantizing straight into panels (each tier's `mxint8_quantize_panel`, the reference's too) gives
/// exactly what quantizing rows and then packing them gives, with the codes flipped to unsigned or not:
/// ragged rows (cols not a multiple of 32), a ragged last panel, NaN blocks, ties, both roundings, the
/// parallel and serial routes.
#[test]
fn quantizing_into_panels_equals_quantize_then_pack() {
    let mut rng = StdRng::seed_from_u64(seed());
    let tables = fast_tables_and_reference();
    for k in tables {
        for _ in 0..40 {
            let (rows, cols): (usize, usize) = (rng.gen_range(1..120), rng.gen_range(1..700));
            let mut x: Vec<f32> = (0..rows * cols)
                .map(|_| rng.gen_range(-4.0..4.0) * 2f32.powi(rng.gen_range(-8..8)))
                .collect();
            // A NaN (its block's scale is NaN, its codes 0) and exact ties (halves of the code step).
            if rng.gen_bool(0.5) {
                let at = rng.gen_range(0..x.len());
                x[at] = f32::NAN;
            }
            for _ in 0..rows {
                let at = rng.gen_range(0..x.len());
                x[at] = (rng.gen_range(-255i32..=255) as f32 + 0.5) / 64.0;
            }
            // Blocks whose largest magnitude takes the shared exponent's edge cases: zero, subnormal,
            // infinite, the largest finite value, and just below a power of two (where the binary32
            // logarithm rounds up to the next integer).
            for _ in 0..rows.min(8) {
                let (r, b) = (rng.gen_range(0..rows), rng.gen_range(0..cols.div_ceil(32)));
                let block = &mut x[r * cols + 32 * b..(r * cols + 32 * b + 32).min((r + 1) * cols)];
                let edge = match rng.gen_range(0..5) {
                    0 => 0.0,
                    1 => f32::from_bits(rng.gen_range(1..0x0080_0000)),
                    2 => f32::INFINITY,
                    3 => f32::MAX,
                    _ => f32::from_bits(((rng.gen_range(1..254u32)) << 23) | 0x007f_ffff),
                };
                for v in block.iter_mut() {
                    // Smaller than the edge value (never NaN: 0 < u < 1).
                    let u: f32 = rng.gen_range(0.01..0.99);
                    *v = edge * if rng.gen_bool(0.5) { u } else { -u };
                }
                let at = rng.gen_range(0..block.len());
                block[at] = if rng.gen_bool(0.5) { edge } else { -edge };
            }
            for (rounding, flip) in [
                (Rounding::Nearest, 0),
                (Rounding::Even, 0),
                (Rounding::Nearest, 0x80),
                (Rounding::Even, 0x80),
            ] {
                let (mut codes, mut scales) = (Vec::new(), Vec::new());
                mxrt_runtime::bench::quantize_mxint8_rows(
                    &x,
                    cols,
                    rounding,
                    k.mxint8_quantize_block,
                    &mut codes,
                    &mut scales,
                );
                let factors: Vec<f32> = scales.iter().map(|&s| reference::act_scale(s)).collect();
                let (mut packed, mut packed_factors) = (Vec::new(), Vec::new());
                mxrt_runtime::bench::pack_mxint8_panels(
                    &codes,
                    &factors,
                    cols.div_ceil(32),
                    flip,
                    &mut packed,
                    &mut packed_factors,
                );
                let (mut all_codes, mut direct_factors) = (Vec::new(), Vec::new());
                let start = mxrt_runtime::bench::quantize_mxint8_panels(
                    &x,
                    cols,
                    rounding,
                    (k.mxint8_quantize_panel, flip),
                    &mut all_codes,
                    &mut direct_factors,
                );
                let direct = &all_codes[start..];
                assert_eq!(direct.len(), packed.len(), "{}: panel bytes", k.isa);
                assert!(
                    direct.is_empty() || (direct.as_ptr() as usize).is_multiple_of(64),
                    "{}: the panels start on a 64-byte boundary",
                    k.isa
                );
                if let Some(at) = packed.iter().zip(direct).position(|(a, b)| a != b) {
                    let (p, rest) = (
                        at / (cols.div_ceil(32) * 512),
                        at % (cols.div_ceil(32) * 512),
                    );
                    let (j, line) = (rest / 512, rest % 512);
                    let (q, i) = (line / 64, (line % 64) / 4);
                    let row = p * 16 + i;
                    let block =
                        &x[row * cols + 32 * j..(row * cols + 32 * j + 32).min((row + 1) * cols)];
                    panic!("{}: differs at row {row} block {j} group {q} (flip {flip}): {:?} vs {:?}; block {block:?}", k.isa, &packed[at..at + 4], &direct[at..at + 4]);
                }
                assert_eq!(
                    packed_factors
                        .iter()
                        .map(|f| f.to_bits())
                        .collect::<Vec<_>>(),
                    direct_factors
                        .iter()
                        .map(|f| f.to_bits())
                        .collect::<Vec<_>>(),
                    "{}: factors",
                    k.isa
                );
            }
        }
    }
}

/// The fused feed-forward block equals the two linear layers with GELU between them, bit for bit (many
/// panels: the fused route where the CPU has the panel kernel; few: the unfused one), and the same block on
/// the reference table with the same contract.
#[test]
fn feed_forward_block_equals_its_two_layers() {
    let mut rng = StdRng::seed_from_u64(seed());
    for (fast_cpu, reference_cpu) in cpu_pairs() {
        feed_forward_against_two_layers(&mut rng, &fast_cpu, &reference_cpu);
    }
}

fn feed_forward_against_two_layers(rng: &mut StdRng, fast_cpu: &Cpu, reference_cpu: &Cpu) {
    let act = |rounding| ActQuant {
        encoding: Encoding::Mx(MxElem::Int8),
        rounding,
    };
    for m in [9usize, 70, 150] {
        let (k, hidden, n) = (
            rng.gen_range(30..200),
            rng.gen_range(40..300),
            rng.gen_range(20..100),
        );
        let mx = Encoding::Mx(MxElem::Int8);
        let (up_bytes, _) = weight_file(rng, hidden, k, mx, SparsePolicy::Never, 0.0);
        let (down_bytes, _) = weight_file(rng, n, hidden, mx, SparsePolicy::Never, 0.0);
        let (up_ref, down_ref) = (tensor_w(&up_bytes), tensor_w(&down_bytes));
        let (up, down) = (up_ref.view(&up_bytes), down_ref.view(&down_bytes));
        let x: Vec<f32> = (0..m * k).map(|_| rng.gen_range(-3.0..3.0)).collect();
        let up_bias: Vec<f32> = (0..hidden).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let down_bias: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let (a_up, a_down) = (act(Rounding::Nearest), act(Rounding::Even));
        for cpu in [fast_cpu, reference_cpu] {
            let h = cpu.linear_gelu(&x, m, &up, Some(&up_bias), a_up);
            let two = cpu.linear(&h, m, &down, Some(&down_bias), a_down);
            let fused = cpu.feed_forward_gelu(
                &x,
                m,
                (&up, Some(&up_bias), a_up),
                (&down, Some(&down_bias), a_down),
            );
            assert_eq!(
                fused.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                two.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{}: m={m} k={k} hidden={hidden} n={n}",
                cpu.kernels.isa
            );
        }
        let f = fast_cpu.feed_forward_gelu(
            &x,
            m,
            (&up, Some(&up_bias), a_up),
            (&down, Some(&down_bias), a_down),
        );
        let r = reference_cpu.feed_forward_gelu(
            &x,
            m,
            (&up, Some(&up_bias), a_up),
            (&down, Some(&down_bias), a_down),
        );
        // The fast table's GELU is within its bound of the reference's, not equal: after quantization a few
        // codes may differ, so the two tables agree closely, not bitwise.
        let worst = f
            .iter()
            .zip(&r)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 0.5,
            "{}: fast vs reference table: {worst}",
            fast_cpu.kernels.isa
        );
    }
}

/// A layer with no inputs (k = 0) outputs its bias on every route, MXINT8 × MXINT8 included.
#[test]
fn a_layer_without_inputs_outputs_its_bias() {
    let mut rng = StdRng::seed_from_u64(seed());
    let act = ActQuant {
        encoding: Encoding::Mx(MxElem::Int8),
        rounding: Rounding::Nearest,
    };
    for enc in [Encoding::F32, Encoding::Mx(MxElem::Int8)] {
        for m in [1usize, 7, 40, 600] {
            let n = 20;
            let (bytes, _) = weight_file(&mut rng, n, 0, enc, SparsePolicy::Never, 0.0);
            let tref = tensor_w(&bytes);
            let view = tref.view(&bytes);
            let bias: Vec<f32> = (0..n).map(|i| i as f32 - 3.5).collect();
            for (cpu, reference_cpu) in cpu_pairs() {
                for a in [ActQuant::NONE, act] {
                    for cpu in [cpu, reference_cpu] {
                        let y = cpu.linear(&[], m, &view, Some(&bias), a);
                        assert_eq!(y.len(), m * n);
                        for row in y.chunks(n) {
                            assert_eq!(row, &bias[..], "{} {enc} m={m} {a:?}", cpu.kernels.isa);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn transpose_f32_moves_every_value_and_nothing_else() {
    let mut rng = StdRng::seed_from_u64(seed());
    let tables = fast_tables_and_reference();
    for k in tables {
        // Whole 8- and 16-blocks, ragged strips on either side, empty shapes.
        for (rows, cols) in [
            (0, 5),
            (5, 0),
            (1, 1),
            (16, 16),
            (8, 24),
            (17, 33),
            (48, 64),
            (3, 70),
            (70, 3),
        ] {
            let (src_ld, dst_ld) = (cols + rng.gen_range(0..3), rows + rng.gen_range(0..3));
            let src: Vec<f32> = (0..rows * src_ld)
                .map(|_| rng.gen_range(-1e3..1e3))
                .collect();
            let mut dst = vec![f32::NAN; cols * dst_ld];
            (k.transpose_f32)(&src, src_ld, rows, cols, &mut dst, dst_ld);
            for c in 0..cols {
                for r in 0..dst_ld {
                    let got = dst[c * dst_ld + r];
                    if r < rows {
                        assert_eq!(
                            got.to_bits(),
                            src[r * src_ld + c].to_bits(),
                            "{} {rows}x{cols} ({r}, {c})",
                            k.isa
                        );
                    } else {
                        assert!(
                            got.is_nan(),
                            "{} {rows}x{cols}: wrote past row {rows}",
                            k.isa
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn fixed8_codes_are_the_references_bit_for_bit() {
    for k in fast_tables() {
        let mut rng = StdRng::seed_from_u64(seed());
        for _ in 0..300 {
            let n = rng.gen_range(0..300);
            let frac = rng.gen_range(0..12u8);
            let step = 2f32.powi(-i32::from(frac));
            // Ties, values around the clamp, NaN and infinities among random values.
            let row: Vec<f32> = (0..n)
                .map(|_| match rng.gen_range(0..10) {
                    0 => (rng.gen_range(-140..140) as f32 + 0.5) * step,
                    1 => f32::NAN,
                    2 => f32::INFINITY * if rng.gen_bool(0.5) { 1.0 } else { -1.0 },
                    _ => rng.gen_range(-150.0..150.0) * step,
                })
                .collect();
            for rounding in [Rounding::Nearest, Rounding::Even] {
                let (mut want, mut got) = (vec![0i8; n], vec![0i8; n]);
                reference::fixed8_codes(&row, frac, rounding, &mut want);
                (k.fixed8_codes)(&row, frac, rounding, &mut got);
                assert_eq!(got, want, "{} n={n} F={frac} {rounding:?}", k.isa);
            }
        }
    }
}

/// 8-bit fixed point on both sides (the integer panel kernels where the table has them: whole-block rows,
/// dense or sparse weights, activations that saturate to −128 or not) against the oracle, and the same
/// values on the panel path and the per-row path of the reference table.
#[test]
fn fixed8_by_fixed8_matches_the_oracle_on_every_path() {
    let mut rng = StdRng::seed_from_u64(seed());
    for (fast_cpu, reference_cpu) in cpu_pairs() {
        let plain = Cpu {
            kernels: Kernels::reference(), // no panel kernel: the per-row i8 path
        };
        for case in 0..24 {
            // F = 7 in a third of the cases: values near −1 make the weight code −128.
            let wenc = Encoding::Fixed {
                width: 8,
                frac: if case % 3 == 1 { 7 } else { 6 },
            };
            let policy = if case % 3 == 0 {
                SparsePolicy::Always
            } else {
                SparsePolicy::Never
            };
            let k = if case % 4 == 3 {
                rng.gen_range(1..100)
            } else {
                32 * rng.gen_range(1..5)
            };
            let (n, m) = (rng.gen_range(1..70), [1, 5, 16, 40, 130][case % 5]);
            let (bytes, w) = weight_file(&mut rng, n, k, wenc, policy, 0.3);
            let tref = tensor_w(&bytes);
            let view = tref.view(&bytes);
            // F = 4: |x| < 3 fits (48 < 127); F = 6: |x| up to 3 saturates (192 > 127) to ±127/−128.
            let frac = if case % 2 == 0 { 4 } else { 6 };
            let rounding = if case % 5 == 0 {
                Rounding::Even
            } else {
                Rounding::Nearest
            };
            let act = ActQuant {
                encoding: Encoding::Fixed { width: 8, frac },
                rounding,
            };
            let x: Vec<f32> = (0..m * k).map(|_| rng.gen_range(-3.0..3.0)).collect();
            let bias: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let mut xq = x.clone();
            mxrt_runtime::bench::fake_quantize_rows(&mut xq, k, act);
            let outs = [
                fast_cpu.linear(&x, m, &view, Some(&bias), act),
                reference_cpu.linear(&x, m, &view, Some(&bias), act),
                plain.linear(&x, m, &view, Some(&bias), act),
            ];
            for i in 0..m {
                for o in 0..n {
                    let (exact, tol) = oracle(&w, &xq, &bias, k, (i, o));
                    for (name, y) in ["fast", "reference panels", "per-row"].iter().zip(&outs) {
                        let v = y[i * n + o];
                        assert!(
                            (f64::from(v) - exact).abs() as f32 <= tol,
                            "{} {name}: {v} vs {exact} (k={k} F={frac} {policy:?})",
                            fast_cpu.kernels.isa
                        );
                    }
                }
            }
        }
    }
}

/// Weights with what a model prepares at open (the code sums for kernels that read activations as
/// unsigned, whether a code is −128 for the AVX2 table) give bit for bit what the per-call derivation gives, on every MXINT8 op (linear, linear with GELU, three
/// at once, the fused feed-forward block), ragged weight groups and short inputs included; and the kernels
/// do read them: a wrong prepared sum changes the output.
#[test]
fn prepared_blocks_give_the_outputs_of_per_call_ones() {
    let mut rng = StdRng::seed_from_u64(seed());
    let mx = Encoding::Mx(MxElem::Int8);
    let act = ActQuant {
        encoding: mx,
        rounding: Rounding::Nearest,
    };
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut checked = 0;
    for k in fast_tables() {
        let Some(panel) = k
            .mxint8_panel
            .filter(|p| p.unsigned_bias.is_some() || p.minus_128_weights.is_some())
        else {
            continue;
        };
        checked += 1;
        let cpu = Cpu { kernels: k };
        for (m, kdim, hidden) in [
            (1usize, 70usize, 45usize),
            (9, 64, 100),
            (16, 256, 300),
            (70, 130, 77),
            (150, 96, 48),
        ] {
            let (up_bytes, _) = weight_file(&mut rng, hidden, kdim, mx, SparsePolicy::Never, 0.0);
            let (down_bytes, _) = weight_file(&mut rng, kdim, hidden, mx, SparsePolicy::Never, 0.0);
            let (up_ref, down_ref) = (tensor_w(&up_bytes), tensor_w(&down_bytes));
            let (up, down) = (up_ref.view(&up_bytes), down_ref.view(&down_bytes));
            let prepare = |w: &mxrt_runtime::bench::WeightView<'_>| {
                prepare_blocks(w, panel).expect("dense MXINT8")
            };
            let (up_blocks, down_blocks) = (prepare(&up), prepare(&down));
            let up_p = up_ref.view(&up_bytes).with_prepared(Some(&up_blocks));
            let down_p = down_ref.view(&down_bytes).with_prepared(Some(&down_blocks));
            let x: Vec<f32> = (0..m * kdim).map(|_| rng.gen_range(-3.0..3.0)).collect();
            let up_bias: Vec<f32> = (0..hidden).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let down_bias: Vec<f32> = (0..kdim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let what = format!("{}: m={m} k={kdim} hidden={hidden}", k.isa);
            assert_eq!(
                bits(&cpu.linear(&x, m, &up_p, Some(&up_bias), act)),
                bits(&cpu.linear(&x, m, &up, Some(&up_bias), act)),
                "linear, {what}"
            );
            assert_eq!(
                bits(&cpu.linear_gelu(&x, m, &up_p, Some(&up_bias), act)),
                bits(&cpu.linear_gelu(&x, m, &up, Some(&up_bias), act)),
                "linear + GELU, {what}"
            );
            let three = |w: &mxrt_runtime::bench::WeightView<'_>| {
                let b = Some(&up_bias[..]);
                cpu.linear3(&x, m, [(w, b), (w, None), (w, b)], act)
            };
            for (a, b) in three(&up_p).iter().zip(three(&up).iter()) {
                assert_eq!(bits(a), bits(b), "linear3, {what}");
            }
            let ff = |u: &mxrt_runtime::bench::WeightView<'_>,
                      d: &mxrt_runtime::bench::WeightView<'_>| {
                cpu.feed_forward_gelu(&x, m, (u, Some(&up_bias), act), (d, Some(&down_bias), act))
            };
            assert_eq!(
                bits(&ff(&up_p, &down_p)),
                bits(&ff(&up, &down)),
                "feed-forward, {what}"
            );
            if panel.unsigned_bias.is_some() {
                // The prepared sums are what the kernel corrects by: one changed sum changes an output.
                let mut wrong = up_blocks.clone();
                wrong.code_sums[0] += 1;
                let up_wrong = up_ref.view(&up_bytes).with_prepared(Some(&wrong));
                assert_ne!(
                    bits(&cpu.linear(&x, m, &up_wrong, None, act)),
                    bits(&cpu.linear(&x, m, &up, None, act)),
                    "a wrong prepared sum went unnoticed, {what}"
                );
            }
            if panel.minus_128_weights.is_some() {
                // MXRT's converter never writes the code −128; and the flag is what picks the kernel: one
                // saying a code is −128 takes the other kernel, with the same results.
                assert_eq!(up_blocks.minus_128, Some(false), "{what}");
                let mut flagged = up_blocks.clone();
                flagged.minus_128 = Some(true);
                let up_flagged = up_ref.view(&up_bytes).with_prepared(Some(&flagged));
                assert_eq!(
                    bits(&cpu.linear(&x, m, &up_flagged, None, act)),
                    bits(&cpu.linear(&x, m, &up, None, act)),
                    "the kernel for weights holding −128, {what}"
                );
            }
        }
    }
    if checked == 0 {
        say("prepared blocks: no table here reads activations as unsigned; nothing to compare");
    }
}

/// Each panel table's scale-byte conversion gives `mx::scale_value` bit for bit (2^-127 subnormal, 0xFF a
/// NaN), for every byte, at every offset of a vector and every ragged length.
#[test]
fn scale_factors_are_the_scale_values() {
    let mut rng = StdRng::seed_from_u64(seed());
    for k in fast_tables_and_reference() {
        let Some(panel) = k.mxint8_panel else {
            continue;
        };
        for len in [0usize, 1, 7, 8, 15, 16, 17, 33, 256, 300] {
            let mut bytes: Vec<u8> = (0..len).map(|i| (i % 256) as u8).collect();
            if len > 256 {
                bytes[256..].iter_mut().for_each(|b| *b = rng.gen());
            }
            // Every byte somewhere: shuffled so the specials land in different lanes.
            for i in (1..len).rev() {
                bytes.swap(i, rng.gen_range(0..=i));
            }
            let mut out = vec![1.5f32; len];
            (panel.scale_factors)(&bytes, &mut out);
            for (s, f) in bytes.iter().zip(&out) {
                let expected = mxrt_format::mx::scale_value(*s);
                assert_eq!(
                    f.to_bits(),
                    expected.to_bits(),
                    "{}: scale byte {s} gave {f:e}, not {expected:e}",
                    k.isa
                );
            }
        }
    }
}

/// Each table's bias (+ ReLU) over rows gives the reference's values bit for bit: widths around the vector
/// widths (an MLP's 5 classes among them), a ragged last row, NaN, ±0 and values the bias makes cross zero.
#[test]
fn add_bias_rows_agrees_exactly() {
    let mut rng = StdRng::seed_from_u64(seed());
    for k in fast_tables() {
        for width in [1usize, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 100] {
            for relu in [false, true] {
                let rows = rng.gen_range(1..6);
                let ragged = if rng.gen_bool(0.3) {
                    rng.gen_range(1..=width)
                } else {
                    0
                };
                let bias: Vec<f32> = (0..width)
                    .map(|_| match rng.gen_range(0..8) {
                        0 => -0.0,
                        1 => 0.0,
                        _ => rng.gen_range(-2.0..2.0),
                    })
                    .collect();
                let values: Vec<f32> = (0..rows * width + ragged)
                    .map(|_| match rng.gen_range(0..10) {
                        0 => f32::NAN,
                        1 => -0.0,
                        2 => 0.0,
                        _ => rng.gen_range(-2.0..2.0),
                    })
                    .collect();
                let (mut want, mut got) = (values.clone(), values.clone());
                reference::add_bias_rows(&mut want, &bias, relu);
                (k.add_bias_rows)(&mut got, &bias, relu);
                for (i, (w, g)) in want.iter().zip(&got).enumerate() {
                    assert!(
                        w.to_bits() == g.to_bits() || (w.is_nan() && g.is_nan()),
                        "{} width {width} relu {relu}: value {i}: {g} vs {w}",
                        k.isa
                    );
                }
                if relu {
                    assert!(want
                        .iter()
                        .all(|v| v.to_bits() != (-0.0f32).to_bits() && !v.is_nan()));
                }
            }
        }
    }
}

/// The folded panel kernels (`MxPanel::folded`) on folded weights (`fold::fold_blocks`) against
/// `reference::mxint8_panel` on the plain ones, bit for bit, wherever `fold::folds_exactly` allows them:
/// scale bytes drawn around the limits (products of factors near 2^-126 and 2^127, weight factors past
/// 2^103) as well as typical ones, so both verdicts occur and exactness right at the limits is checked;
/// padding rows (factor 0), ragged block counts, with and without a bias per weight row.
#[test]
fn folded_panel_kernels_agree_exactly_where_folding_is_exact() {
    use mxrt_runtime::bench::fold;
    let tables: Vec<Kernels> = fast_tables()
        .into_iter()
        .filter(|k| k.mxint8_panel.is_some_and(|p| p.folded.is_some()))
        .collect();
    check_required(
        &tables,
        &["avx2", "avx2vnni", "avx512"],
        "the folded panel kernels (AVX2, AVX-VNNI, AVX-512 VNNI)",
    );
    for k in tables {
        let kernel = k.mxint8_panel.expect("filtered");
        let folded = kernel.folded.expect("filtered");
        let mut rng = StdRng::seed_from_u64(seed());
        let (mut exact, mut refused) = (0, 0);
        for case in 0..400 {
            let (bpr, groups) = (rng.gen_range(1..20), rng.gen_range(1..3));
            let real_rows = rng.gen_range(1..=16);
            // Activation factor 2^(a - 139), weight factor 2^(w - 127), each byte drawn within 4 of a
            // centre (the extremes occur in nearly every case): the smallest products reach exactly 2^-126
            // (case 0: folds) or 2^-127 (case 5: refused), far below 2^-149, where the reference's product
            // rounds (case 4: refused); the largest reach exactly 2^127 (case 1: folds); weight factors
            // past 2^103 (case 2: refused); typical factors (case 3: folds).
            let (a_centre, w_centre): (i32, i32) = match case % 6 {
                0 => (28, 120),
                1 => (192, 193),
                2 => (120, 232),
                3 => (130, 120),
                4 => (10, 107),
                _ => (27, 120),
            };
            let near = |rng: &mut StdRng, c: i32| (c + rng.gen_range(-4..=4)).clamp(0, 254) as u8;
            let codes: Vec<u8> = (0..real_rows * bpr * 32)
                .map(|_| rng.gen_range(-127i8..=127) as u8)
                .collect();
            let factors: Vec<f32> = (0..real_rows * bpr)
                .map(|_| reference::act_scale(near(&mut rng, a_centre)))
                .collect();
            let (mut panel, mut panel_factors, mut kernel_panel) =
                (Vec::new(), Vec::new(), Vec::new());
            let pack = mxrt_runtime::bench::pack_mxint8_panels;
            pack(&codes, &factors, bpr, 0, &mut panel, &mut panel_factors);
            pack(
                &codes,
                &factors,
                bpr,
                kernel.code_flip(),
                &mut kernel_panel,
                &mut Vec::new(),
            );
            // Weight codes without −128 (the AVX2 kernel's own; matrices with it take another kernel).
            let wc: Vec<u8> = (0..groups * 16 * bpr * 32)
                .map(|_| rng.gen_range(-127i8..=127) as u8)
                .collect();
            let wf: Vec<f32> = (0..groups * 16 * bpr)
                .map(|_| mxrt_format::mx::scale_value(near(&mut rng, w_centre)))
                .collect();
            let unsigned_bias = match kernel.unsigned_bias {
                Some(_) => reference::panel_unsigned_bias(&wc),
                None => Vec::new(),
            };
            let row_bias: Vec<f32> = if rng.gen_bool(0.5) {
                (0..groups * 16).map(|_| rng.gen_range(-3.0..3.0)).collect()
            } else {
                Vec::new()
            };
            let plain = PanelWeights {
                codes: &wc,
                factors: &wf,
                unsigned_bias: &unsigned_bias,
                bias: &row_bias,
            };
            let ldo = groups * 16 + rng.gen_range(0..3);
            let (mut r, mut f) = (vec![7.0f32; 16 * ldo], vec![7.0f32; 16 * ldo]);
            reference::mxint8_panel(&panel, &panel_factors, bpr, plain, &mut r, ldo);
            let range = match fold::fold_range(&wf) {
                Some(range) if fold::folds_exactly(range, &panel_factors) => range,
                _ => {
                    refused += 1;
                    continue;
                }
            };
            assert!(range.min > 0.0 && range.max <= 2f32.powi(103));
            exact += 1;
            let (mut bases, mut starts) = (Vec::new(), Vec::new());
            fold::fold_blocks(&wf, &unsigned_bias, &mut bases, &mut starts);
            let w = PanelWeights {
                factors: &bases,
                unsigned_bias: &starts,
                ..plain
            };
            folded(&kernel_panel, &panel_factors, bpr, w, &mut f, ldo);
            for (i, (x, y)) in r.iter().zip(&f).enumerate() {
                assert!(
                    x.to_bits() == y.to_bits(),
                    "{}: case {case} bpr={bpr} groups={groups} out {i}: reference {x} vs folded {y}",
                    k.isa
                );
            }
        }
        assert!(
            exact >= 100 && refused >= 100,
            "{}: {exact} cases folded, {refused} refused: the draws miss a verdict",
            k.isa
        );
    }
}

/// `fold::fold_range` and `fold::folds_exactly` at their limits: powers of two up to 2^103 (subnormal
/// 2^-127 included) fold, anything else does not; a panel folds exactly while every product of factors is
/// a normal f32, zero factors (padding) always, NaN, ∞ or negative factors never.
#[test]
fn folding_limits() {
    use mxrt_runtime::bench::fold::{fold_range, folds_exactly, FoldRange};
    let p = |e: i32| 2f32.powi(e);
    let range = fold_range(&[p(-3), 0.0, p(5)]).expect("powers of two");
    assert_eq!((range.min, range.max), (p(-3), p(5)));
    assert_eq!(
        fold_range(&[0.0, 0.0]).map(|r| (r.min, r.max)),
        Some((1.0, 1.0))
    );
    assert!(fold_range(&[p(103), f32::from_bits(1 << 22)]).is_some()); // 2^103 and 2^-127
    for bad in [
        3.0,
        p(104),
        f32::NAN,
        f32::INFINITY,
        -1.0,
        f32::from_bits(3),
    ] {
        assert!(fold_range(&[p(-2), bad]).is_none(), "{bad:e} must not fold");
    }
    let w = FoldRange {
        min: p(-10),
        max: p(-10),
    };
    assert!(folds_exactly(w, &[p(-116), 0.0])); // 2^-126: the smallest normal
    assert!(!folds_exactly(w, &[p(-117), p(-3)])); // 2^-127: subnormal
    assert!(folds_exactly(w, &[0.0; 16])); // padding only
    let high = FoldRange {
        min: p(100),
        max: p(100),
    };
    assert!(folds_exactly(high, &[p(27)])); // 2^127
    assert!(!folds_exactly(high, &[p(28)])); // 2^128: infinite
    for bad in [f32::NAN, f32::INFINITY, -p(-3), -0.0] {
        assert!(!folds_exactly(w, &[p(-3), bad]), "{bad:e} must refuse");
    }
}

/// Whole linear ops on MXINT8 weights and activations where folding is exact (inputs near 1) and where it
/// is not (inputs near 1e-36, whose blocks' factors times the weights' fall below 2^-126): the fast tables
/// give the reference table's results bit for bit either way, so the refusal reaches the unfolded kernel.
#[test]
fn linear_with_folding_and_without_matches_the_reference() {
    let mut rng = StdRng::seed_from_u64(seed());
    let act = ActQuant {
        encoding: Encoding::Mx(MxElem::Int8),
        rounding: Rounding::Nearest,
    };
    for (fast_cpu, reference_cpu) in cpu_pairs() {
        for magnitude in [1.0f32, 1e-36, 1e30] {
            let (m, n, k) = (
                rng.gen_range(16..80),
                rng.gen_range(1..60),
                rng.gen_range(1..100),
            );
            let (bytes, _) = weight_file(
                &mut rng,
                n,
                k,
                Encoding::Mx(MxElem::Int8),
                SparsePolicy::Never,
                0.0,
            );
            let tref = tensor_w(&bytes);
            let view = tref.view(&bytes);
            let x: Vec<f32> = (0..m * k)
                .map(|_| rng.gen_range(-3.0..3.0) * magnitude)
                .collect();
            let bias: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let r = reference_cpu.linear(&x, m, &view, Some(&bias), act);
            let f = fast_cpu.linear(&x, m, &view, Some(&bias), act);
            for (i, (a, b)) in r.iter().zip(&f).enumerate() {
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "{} inputs ~{magnitude:e}, output {i}: reference {a} vs fast {b}",
                    fast_cpu.kernels.isa
                );
            }
        }
    }
}
