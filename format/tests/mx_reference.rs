//! MX block quantization against values that do not come from this crate's own quantizer (the round-trip
//! tests compare the file layout with `mx::quantize_block`, so they cannot see a bug inside it):
//!
//! 1. Cases derived by hand from the OCP Microscaling v1.0 element definitions, at the edges where a wrong
//!    constant shows: subnormal steps, ties under both roundings, the largest normal, saturation, the shared
//!    exponent of a block.
//! 2. The microxcaling reference's outputs in `../shared/conformance/mx` (every element type, both
//!    roundings), read here straight from the safetensors files and compared bit for bit through the crate's
//!    API, with no CLI in between.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mxrt_format::{mx, MxElem, Rounding};

/// The value the block codes decode to (what a fake-quantizing reference returns), per element.
fn fake_quantize(block: &[f32], elem: MxElem, mode: Rounding) -> (u8, Vec<f32>) {
    let mut codes = [0u32; mx::BLOCK];
    let scale = mx::quantize_block(block, elem, mode, &mut codes);
    let table = mx::code_table(elem);
    let values = codes[..block.len()]
        .iter()
        .map(|&c| table[c as usize] * mx::scale_value(scale))
        .collect();
    (scale, values)
}

/// One hand-derived case: a block of `amax` and `elements`, and the values OCP's element definition gives
/// the elements under each rounding.
struct Case {
    elem: MxElem,
    /// The block's first element: a power of two times a representable element, so it decodes to itself.
    amax: f32,
    /// Expected shared exponent: floor(log2 of the block's largest magnitude) - emax of the element type
    /// (elements that saturate are larger than `amax`, in the same binade).
    shared_exp: i32,
    /// (input, expected under round-half-away ("nearest"), expected under round-half-even), before scaling.
    elements: &'static [(f32, f32, f32)],
}

/// Element steps (OCP MX v1.0, section 5.3): a subnormal step is 2^(1 - bias - mantissa bits).
///
/// - FP8 E4M3: bias 7, 3 mantissa bits: subnormal step 2^-9, min normal 2^-6, max normal 448 (emax 8).
/// - FP8 E5M2: bias 15, 2 bits: step 2^-16, min normal 2^-14, max normal 57344 (emax 15).
/// - FP6 E3M2: bias 3, 2 bits: step 2^-4, min normal 2^-2, max normal 28 (emax 4).
/// - FP6 E2M3: bias 1, 3 bits: step 2^-3, min normal 1, max normal 7.5 (emax 2).
/// - FP4 E2M1: bias 1, 1 bit: step 2^-1, min normal 1, max normal 6 (emax 2).
/// - INT8: two's complement with 6 fraction bits, ±127 (emax 0); INT4: 2 fraction bits, ±7 (emax 0).
fn cases() -> Vec<Case> {
    vec![
        Case {
            elem: MxElem::Fp8E4M3,
            amax: 448.0,
            shared_exp: 0,
            elements: &[
                (0.001953125, 0.001953125, 0.001953125), // 2^-9: the smallest subnormal
                (0.0009765625, 0.001953125, 0.0),        // 2^-10: half a step: a tie
                (0.0029296875, 0.00390625, 0.00390625),  // 1.5 steps: ties to 2 steps both ways
                (0.013671875, 0.013671875, 0.013671875), // 7 * 2^-9: the largest subnormal
                (0.017578125, 0.017578125, 0.017578125), // 2^-6 * 1.125: min normal + one unit
                (500.0, 448.0, 448.0),                   // saturates at the largest normal
                (-0.0009765625, -0.001953125, -0.0),
            ],
        },
        Case {
            elem: MxElem::Fp8E5M2,
            amax: 57344.0,
            shared_exp: 0,
            elements: &[
                (1.52587890625e-5, 1.52587890625e-5, 1.52587890625e-5), // 2^-16
                (7.62939453125e-6, 1.52587890625e-5, 0.0),              // 2^-17: a tie
                (2.288818359375e-5, 3.0517578125e-5, 3.0517578125e-5),  // 1.5 steps
                (4.57763671875e-5, 4.57763671875e-5, 4.57763671875e-5), // 3 * 2^-16: largest subnormal
                (6.103515625e-5, 6.103515625e-5, 6.103515625e-5),       // 2^-14: min normal
            ],
        },
        Case {
            elem: MxElem::Fp6E3M2,
            amax: 28.0,
            shared_exp: 0,
            elements: &[
                (0.0625, 0.0625, 0.0625), // 2^-4
                (0.03125, 0.0625, 0.0),   // 2^-5: a tie
                (0.09375, 0.125, 0.125),  // 1.5 steps
                (0.1875, 0.1875, 0.1875), // 3 * 2^-4: largest subnormal
                (0.3125, 0.3125, 0.3125), // 2^-2 * 1.25
                (30.0, 28.0, 28.0),       // saturation
                (0.28125, 0.3125, 0.25),  // between 0.25 and 0.3125: a tie in the normal range
            ],
        },
        Case {
            elem: MxElem::Fp6E2M3,
            amax: 7.5,
            shared_exp: 0,
            elements: &[
                (0.125, 0.125, 0.125), // 2^-3
                (0.0625, 0.125, 0.0),  // 2^-4: a tie
                (0.1875, 0.25, 0.25),  // 1.5 steps
                (0.875, 0.875, 0.875), // 7 * 2^-3: largest subnormal
                (1.125, 1.125, 1.125), // min normal + one unit
            ],
        },
        Case {
            elem: MxElem::Fp4,
            amax: 6.0,
            shared_exp: 0,
            elements: &[
                (0.5, 0.5, 0.5),  // the only subnormal
                (0.25, 0.5, 0.0), // a tie at half the subnormal
                (0.75, 1.0, 1.0), // a tie between 0.5 and 1: to 1 both ways (1 is even)
                (2.5, 3.0, 2.0),  // a tie between 2 and 3
                (5.0, 6.0, 4.0),  // a tie between 4 and 6
                (7.0, 6.0, 6.0),  // saturation
            ],
        },
        Case {
            // The same block scaled by 2^20: the shared exponent moves, the element grid with it.
            elem: MxElem::Fp4,
            amax: 6.0 * 1048576.0,
            shared_exp: 20,
            elements: &[
                (0.25 * 1048576.0, 0.5 * 1048576.0, 0.0),
                (2.5 * 1048576.0, 3.0 * 1048576.0, 2.0 * 1048576.0),
            ],
        },
        Case {
            elem: MxElem::Int8,
            amax: 1.5,
            shared_exp: 0,
            elements: &[
                (0.015625, 0.015625, 0.015625),  // 1/64: one unit
                (0.0078125, 0.015625, 0.0),      // half a unit: a tie
                (0.0234375, 0.03125, 0.03125),   // 1.5 units
                (1.9921875, 1.984375, 1.984375), // 127.5 units: saturates at 127/64
                (-1.9921875, -1.984375, -1.984375),
            ],
        },
        Case {
            // amax 0.375: floor(log2 0.375) = -2, so units of 2^-2 / 64 = 2^-8 (0.375 is 96 of them).
            elem: MxElem::Int8,
            amax: 0.375,
            shared_exp: -2,
            elements: &[(0.005859375, 0.0078125, 0.0078125)], // 1.5 units of 2^-8
        },
        Case {
            elem: MxElem::Int4,
            amax: 1.0,
            shared_exp: 0,
            elements: &[
                (0.125, 0.25, 0.0),  // half a unit of 1/4
                (0.375, 0.5, 0.5),   // 1.5 units
                (1.875, 1.75, 1.75), // saturates at 7/4
            ],
        },
    ]
}

#[test]
fn hand_derived_ocp_values_for_every_element_type() {
    for case in cases() {
        let mut block = vec![case.amax];
        block.extend(case.elements.iter().map(|e| e.0));
        for (mode, pick) in [(Rounding::Nearest, 1), (Rounding::Even, 2)] {
            let (scale, got) = fake_quantize(&block, case.elem, mode);
            assert_eq!(
                i32::from(scale) - 127,
                case.shared_exp,
                "{:?} amax {}: shared exponent",
                case.elem,
                case.amax
            );
            assert_eq!(got[0], case.amax, "{:?}: the block maximum", case.elem);
            for (i, e) in case.elements.iter().enumerate() {
                let want = if pick == 1 { e.1 } else { e.2 };
                assert!(
                    got[i + 1] == want,
                    "{:?} {mode:?}: {:e} quantized to {:e}, OCP gives {want:e}",
                    case.elem,
                    e.0,
                    got[i + 1]
                );
            }
        }
    }
}

/// The F32 tensors of a safetensors file by name: `(shape, values)`. Written here, not borrowed from the
/// `safetensors` crate, which this crate does not depend on.
fn read_f32_safetensors(path: &PathBuf) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let data = &bytes[8 + header_len..];
    let mut out = BTreeMap::new();
    for (name, info) in header.as_object().unwrap() {
        if name == "__metadata__" {
            continue;
        }
        assert_eq!(info["dtype"], "F32", "{name}");
        let shape: Vec<usize> = info["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let [start, end] = [0, 1].map(|i| info["data_offsets"][i].as_u64().unwrap() as usize);
        let values = data[start..end]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        out.insert(name.clone(), (shape, values));
    }
    out
}

fn conformance_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/mx");
    assert!(
        dir.join("inputs.safetensors").exists(),
        "{} is missing: the tests need ../shared beside the repository",
        dir.display()
    );
    dir
}

#[test]
fn microxcaling_reference_outputs_bit_for_bit() {
    let dir = conformance_dir();
    let inputs = read_f32_safetensors(&dir.join("inputs.safetensors"));
    let types = [
        (MxElem::Int8, "mxint8"),
        (MxElem::Int4, "mxint4"),
        (MxElem::Fp8E4M3, "mxfp8_e4m3"),
        (MxElem::Fp8E5M2, "mxfp8_e5m2"),
        (MxElem::Fp6E3M2, "mxfp6_e3m2"),
        (MxElem::Fp6E2M3, "mxfp6_e2m3"),
        (MxElem::Fp4, "mxfp4"),
    ];
    let mut compared = 0usize;
    for (elem, tag) in types {
        for (mode, mode_tag) in [(Rounding::Nearest, "nearest"), (Rounding::Even, "even")] {
            let expected =
                read_f32_safetensors(&dir.join(format!("expected-{tag}-{mode_tag}.safetensors")));
            assert_eq!(
                expected.keys().collect::<Vec<_>>(),
                inputs.keys().collect::<Vec<_>>(),
                "{tag} {mode_tag}"
            );
            for (name, (shape, x)) in &inputs {
                let (want_shape, want) = &expected[name];
                assert_eq!(want_shape, shape, "{tag} {mode_tag} {name}");
                let cols = *shape.last().unwrap();
                let mut got = Vec::with_capacity(x.len());
                for row in x.chunks(cols) {
                    for block in row.chunks(mx::BLOCK) {
                        got.extend(fake_quantize(block, elem, mode).1);
                    }
                }
                for (i, (g, w)) in got.iter().zip(want).enumerate() {
                    // MXINT codes have no -0: +0 where the reference keeps the sign (FORMAT.md 5.2).
                    let integer_zero =
                        matches!(elem, MxElem::Int8 | MxElem::Int4) && *g == 0.0 && *w == 0.0;
                    assert!(
                        g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()) || integer_zero,
                        "{tag} {mode_tag} {name}[{i}]: input {:e}: got {g:e}, reference {w:e}",
                        x[i]
                    );
                    compared += 1;
                }
            }
        }
    }
    // 22 input tensors, 7 types x 2 roundings: every element compared.
    let per_pass: usize = inputs.values().map(|(_, v)| v.len()).sum();
    assert_eq!(compared, per_pass * 14);
}
