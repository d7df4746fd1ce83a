//! Keeps rayon's worker threads awake for the length of an inference and a moment after. A worker that
//! finds no work parks after a few microseconds, and waking it again costs tens of microseconds — per
//! parallel op, and a BERT inference has about a hundred of them. So at the start of a CPU inference every
//! *other* worker of the pool runs a spinning loop that executes pool work as it appears
//! (`rayon::yield_now`) and returns once it has seen none for the spin time: 3 ms by default, `MXRT_SPIN_MS`
//! sets it (0: park at once). Measured on this 2-vCPU VM with pinned workers (the CLI pins them), a batch-1
//! MiniLM request 125 ms after the previous one: 7.9 ms without the loop, 7.2 ms with it. The loop never
//! waits on anything, so it cannot deadlock; it costs one core for the spin time after the last inference.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a warm worker keeps spinning without work before it parks again (`MXRT_SPIN_MS`, default 3).
fn spin_time() -> Duration {
    static SPIN: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *SPIN.get_or_init(|| {
        let ms = std::env::var("MXRT_SPIN_MS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(3);
        Duration::from_millis(ms)
    })
}

/// Workers currently spinning (so back-to-back inferences do not stack up loops).
static SPINNING: AtomicUsize = AtomicUsize::new(0);

/// Wakes the pool's other workers and keeps them spinning until the pool has been idle for the spin time.
pub(crate) fn keep_workers_warm() {
    let threads = rayon::current_num_threads();
    let spin = spin_time();
    if threads < 2 || spin.is_zero() || SPINNING.load(Ordering::Relaxed) > 0 {
        return;
    }
    // The calling thread (a pool worker when the caller used `install`) runs the inference itself; a loop
    // on it would only delay it.
    let me = rayon::current_thread_index();
    rayon::spawn_broadcast(move |ctx| {
        if Some(ctx.index()) == me {
            return;
        }
        SPINNING.fetch_add(1, Ordering::Relaxed);
        let mut last_work = Instant::now();
        loop {
            match rayon::yield_now() {
                Some(rayon::Yield::Executed) => last_work = Instant::now(),
                _ => {
                    if last_work.elapsed() >= spin {
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
        }
        SPINNING.fetch_sub(1, Ordering::Relaxed);
    });
}
