//! Fuzzes the model layer: the fuzzer's bytes choose a base model (a tiny BERT with its tokenizer, or one of
//! two JSC-shaped MLPs; half the time with channel scales added) and the mutations of its description and
//! tensor table (the same mutations as the CI test `runtime/tests/model_fuzz.rs`); the file is rewritten
//! with valid checksums, then verified, opened and run once. A panic or an abort is a bug. Run:
//! `cargo +nightly fuzz run model` in `runtime/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/model_fuzz/cases.rs"]
#[allow(dead_code)] // the seeded generator is the CI test's
mod cases;

use cases::{build, mutate, parts_of, run_case, with_channel_scales, Choices, FromBytes, Parts};

const BASES: [&[u8]; 3] = [
    include_bytes!("../../../tests/fixtures/format-1.0/tiny-bert.mxint8-wa.mxrt"),
    include_bytes!("../../../tests/fixtures/format-1.0/mlp-95pruned.mxint8.mxrt"),
    include_bytes!("../../../tests/fixtures/format-1.0/mlp.fixed8.4.mxrt"),
];

fuzz_target!(|data: &[u8]| {
    let mut choices = FromBytes(data);
    let mut parts: Parts = parts_of(BASES[choices.below(BASES.len())]);
    // Half the cases start from the base with channel scales on every linear layer (description 2.2).
    if choices.below(2) == 1 {
        parts = with_channel_scales(&parts, 3);
    }
    mutate(&mut parts, &mut choices);
    if let Some(bytes) = build(&parts) {
        run_case(bytes);
    }
});
