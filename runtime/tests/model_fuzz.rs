//! The model layer under fuzzing (issue 19, item 6): 10,000+ mutated model files with valid checksums,
//! each verified, opened and run once. Whatever `verify` and the open accept must run without a panic or
//! an abort; everything else must be refused with a message. Reproduce one case with its seed:
//! `MXRT_FUZZ_SEED=<seed> cargo test -p mxrt-runtime --test model_fuzz`.

#[path = "model_fuzz/cases.rs"]
#[allow(dead_code)] // the byte-driven choices are the fuzz target's
mod cases;

use cases::{build, mutate, parts_of, run_case, with_channel_scales, Outcome, Parts, SplitMix};

fn base(name: &str) -> Parts {
    let path = format!(
        "{}/../tests/fixtures/format-1.0/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    parts_of(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

/// Runs `cases` mutations of `base` from consecutive seeds; returns (written, refused, ran).
fn fuzz(base: &Parts, first_seed: u64, cases: u64) -> (u64, u64, u64) {
    let (mut written, mut refused, mut ran) = (0, 0, 0);
    for seed in first_seed..first_seed + cases {
        let mut parts = base.clone();
        let done = mutate(&mut parts, &mut SplitMix(seed));
        let Some(bytes) = build(&parts) else {
            continue;
        };
        written += 1;
        let outcome = std::panic::catch_unwind(|| run_case(bytes))
            .unwrap_or_else(|_| panic!("seed {seed}: panicked after {done:?}"));
        match outcome {
            Outcome::Ran => ran += 1,
            Outcome::Refused(m) | Outcome::RunError(m) => {
                refused += 1;
                assert!(
                    !m.is_empty(),
                    "seed {seed}: an empty message after {done:?}"
                );
                if std::env::var_os("MXRT_FUZZ_SHOW").is_some() {
                    eprintln!("seed {seed}: {done:?}\n    -> {m}");
                }
            }
        }
    }
    (written, refused, ran)
}

#[test]
fn the_base_files_run() {
    for name in [
        "tiny-bert.mxint8-wa.mxrt",
        "mlp-95pruned.mxint8.mxrt",
        "mlp.fixed8.4.mxrt",
    ] {
        let b = base(name);
        assert_eq!(run_case(build(&b).unwrap()), Outcome::Ran, "{name}");
    }
}

fn cases_per_base() -> u64 {
    std::env::var("MXRT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4_000)
}

/// The seed range (one seed to replay a failure).
fn seeds() -> (u64, u64) {
    match std::env::var("MXRT_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(seed) => (seed, 1),
        None => (0, cases_per_base()),
    }
}

#[test]
fn mutated_bert_files_are_refused_or_run() {
    let (first, n) = seeds();
    let (written, refused, ran) = fuzz(&base("tiny-bert.mxint8-wa.mxrt"), first, n);
    eprintln!("tiny BERT: {n} cases, {written} written, {refused} refused, {ran} ran");
    if n > 1 {
        // The mutations must reach both outcomes in numbers, or the fuzzing tests nothing.
        assert!(written * 10 >= n * 8 && refused * 4 >= written && ran * 20 >= written);
    }
}

#[test]
fn mutated_mlp_files_are_refused_or_run() {
    let (first, n) = seeds();
    for name in ["mlp-95pruned.mxint8.mxrt", "mlp.fixed8.4.mxrt"] {
        let (written, refused, ran) = fuzz(&base(name), first, n);
        eprintln!("{name}: {n} cases, {written} written, {refused} refused, {ran} ran");
        if n > 1 {
            assert!(written * 10 >= n * 8 && refused * 4 >= written && ran * 20 >= written);
        }
    }
}

/// Files with channel scales (description 2.2; every linear layer scaled on both sides), mutated: the scale
/// tensors renamed, dropped, reshaped, poisoned with NaN, the recipe's names for them changed.
#[test]
fn mutated_channel_scaled_files_are_refused_or_run() {
    let (first, n) = seeds();
    for name in ["tiny-bert.mxint8-wa.mxrt", "mlp.fixed8.4.mxrt"] {
        let b = with_channel_scales(&base(name), 3);
        assert_eq!(
            run_case(build(&b).unwrap()),
            Outcome::Ran,
            "{name} with channel scales"
        );
        let (written, refused, ran) = fuzz(&b, first, n);
        eprintln!("{name} with channel scales: {n} cases, {written} written, {refused} refused, {ran} ran");
        if n > 1 {
            assert!(written * 10 >= n * 8 && refused * 4 >= written && ran * 20 >= written);
        }
    }
}
