//! The CLI's worker pools. Each worker is pinned to its own CPU (when there are at least as many allowed
//! CPUs as workers): measured on this 2-vCPU VM, a batch-1 MiniLM request arriving 125 ms after the previous
//! one took 14.2 ms median unpinned against 7.0 ms pinned, because after an idle spell the scheduler woke
//! both workers on the same CPU and took milliseconds to move one. `MXRT_PIN=0` leaves placement to the OS.

/// A pool of `threads` workers (0: one per allowed CPU), pinned as described above.
pub fn pool(threads: usize) -> anyhow::Result<rayon::ThreadPool> {
    Ok(builder(threads).build()?)
}

/// Configures rayon's global pool (used by `run`, `eval` and the library calls they make) the same way.
/// Respects RAYON_NUM_THREADS; does nothing if the global pool already exists.
pub fn init_global() {
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let _ = builder(threads).build_global();
}

fn builder(threads: usize) -> rayon::ThreadPoolBuilder {
    let builder = rayon::ThreadPoolBuilder::new().num_threads(threads);
    if std::env::var_os("MXRT_PIN").is_some_and(|v| v == "0") {
        return builder;
    }
    let Some(cpus) = core_affinity::get_core_ids() else {
        return builder;
    };
    let workers = if threads == 0 { cpus.len() } else { threads };
    if workers > cpus.len() || workers < 2 {
        return builder; // oversubscribed, or nothing to spread: let the OS place the threads
    }
    builder.start_handler(move |i| {
        // Best effort: a refused pin leaves the thread where the OS put it.
        let _ = core_affinity::set_for_current(cpus[i % cpus.len()]);
    })
}
