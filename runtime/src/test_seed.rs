//! The seed of a randomized test: `MXRT_TEST_SEED` when it is set (so a failure replays exactly), otherwise a
//! fresh one. Either way it is written straight to the process's stderr with the test's name, where CI logs
//! keep it even when the test aborts the process instead of failing. One file, compiled into the library's
//! unit tests and included by path in `runtime/tests/kernels.rs`, so both read the variable the same way.

/// The variable that fixes the seed of every randomized test (decimal `u64`).
pub const SEED_VARIABLE: &str = "MXRT_TEST_SEED";

/// The seed for one randomized test (see the module documentation). Panics when `MXRT_TEST_SEED` is set but
/// is not a decimal `u64`: a replay that silently used another seed would prove nothing.
pub fn test_seed() -> u64 {
    let seed = match std::env::var(SEED_VARIABLE) {
        Ok(text) => text.trim().parse::<u64>().unwrap_or_else(|_| {
            panic!("{SEED_VARIABLE}={text:?} is not a decimal seed (an unsigned 64-bit integer)")
        }),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    };
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "seed {seed} for {test} (replay: {SEED_VARIABLE}={seed})"
    );
    seed
}
