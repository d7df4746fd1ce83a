//! Keeps rayon's worker threads awake for the length of an inference. A worker that finds no work parks
//! after a few microseconds, and waking it again costs tens of microseconds — per parallel op, and a BERT
//! inference has about a hundred of them. After an idle pause (a service between requests) that made two
//! cores no faster than one at batch 1. So at the start of a CPU inference every *other* worker of the pool
//! runs a spinning loop that executes pool work as it appears (`rayon::yield_now`) and returns once it has
//! seen none for [`SPIN`]. The loop never waits on anything, so it cannot deadlock; at worst a worker spins
//! for [`SPIN`] after the inference ends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a warm worker keeps spinning without work before it parks again.
const SPIN: Duration = Duration::from_millis(3);

/// Workers currently spinning (so back-to-back inferences do not stack up loops).
static SPINNING: AtomicUsize = AtomicUsize::new(0);

/// Wakes the pool's other workers and keeps them spinning until the pool has been idle for [`SPIN`].
pub(crate) fn keep_workers_warm() {
    let threads = rayon::current_num_threads();
    if threads < 2 || SPINNING.load(Ordering::Relaxed) > 0 {
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
                    if last_work.elapsed() >= SPIN {
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
        }
        SPINNING.fetch_sub(1, Ordering::Relaxed);
    });
}
