//! The server's counters and histograms, rendered as Prometheus text (`GET /metrics`): requests by route and
//! status, errors, latency, inputs per forward pass (what dynamic batching achieved), queue depth, memory.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// Request latency buckets, seconds.
const LATENCY_BOUNDS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// Inputs (texts or feature rows) per forward pass.
const BATCH_BOUNDS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];

/// A cumulative histogram with fixed upper bounds (Prometheus `le` buckets, `+Inf` last).
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        for (b, c) in self.bounds.iter().zip(&mut self.counts) {
            if v <= *b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// Everything `/metrics` reports. Shared by the handlers and the batcher.
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    batch_inputs: Mutex<Histogram>,
    batches: AtomicU64,
    queue_depth: AtomicI64,
    file_bytes: u64,
    device_bytes: u64,
}

impl Metrics {
    pub fn new(file_bytes: u64, device_bytes: u64) -> Metrics {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            latency: Mutex::new(BTreeMap::new()),
            batch_inputs: Mutex::new(Histogram::new(&BATCH_BOUNDS)),
            batches: AtomicU64::new(0),
            queue_depth: AtomicI64::new(0),
            file_bytes,
            device_bytes,
        }
    }

    /// One answered request: its route (a known route or `other`), status and seconds from arrival.
    pub fn request(&self, route: &'static str, status: u16, seconds: f64) {
        *lock(&self.requests).entry((route, status)).or_default() += 1;
        lock(&self.latency)
            .entry(route)
            .or_insert_with(|| Histogram::new(&LATENCY_BOUNDS))
            .observe(seconds);
    }

    /// One forward pass over `inputs` texts or rows, gathered from one or more requests.
    pub fn batch(&self, inputs: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        lock(&self.batch_inputs).observe(inputs as f64);
    }

    pub fn queued(&self, delta: i64) {
        self.queue_depth.fetch_add(delta, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let requests = lock(&self.requests).clone();
        out.push_str("# HELP mxrt_requests_total Requests answered, by route and HTTP status.\n");
        out.push_str("# TYPE mxrt_requests_total counter\n");
        for ((route, status), n) in &requests {
            let _ = writeln!(
                out,
                "mxrt_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let mut errors: BTreeMap<&str, u64> = BTreeMap::new();
        for ((route, status), n) in &requests {
            if *status >= 400 {
                *errors.entry(route).or_default() += n;
            }
        }
        out.push_str("# HELP mxrt_request_errors_total Requests answered with a 4xx or 5xx status, by route.\n");
        out.push_str("# TYPE mxrt_request_errors_total counter\n");
        for (route, n) in errors {
            let _ = writeln!(out, "mxrt_request_errors_total{{route=\"{route}\"}} {n}");
        }
        out.push_str(
            "# HELP mxrt_request_duration_seconds Time from a request's arrival to its answer.\n",
        );
        out.push_str("# TYPE mxrt_request_duration_seconds histogram\n");
        for (route, h) in lock(&self.latency).iter() {
            h.render(
                &mut out,
                "mxrt_request_duration_seconds",
                &format!("route=\"{route}\""),
            );
        }
        out.push_str("# HELP mxrt_batch_inputs Texts or feature rows per forward pass (dynamic batching gathers them from many requests).\n");
        out.push_str("# TYPE mxrt_batch_inputs histogram\n");
        lock(&self.batch_inputs).render(&mut out, "mxrt_batch_inputs", "");
        out.push_str(
            "# HELP mxrt_batches_total Forward passes run.\n# TYPE mxrt_batches_total counter\n",
        );
        let _ = writeln!(
            out,
            "mxrt_batches_total {}",
            self.batches.load(Ordering::Relaxed)
        );
        out.push_str("# HELP mxrt_queue_depth Requests waiting for the batcher.\n# TYPE mxrt_queue_depth gauge\n");
        let _ = writeln!(
            out,
            "mxrt_queue_depth {}",
            self.queue_depth.load(Ordering::Relaxed)
        );
        out.push_str("# HELP mxrt_model_file_bytes Size of the model file (mapped; weights read in place on the CPU).\n# TYPE mxrt_model_file_bytes gauge\n");
        let _ = writeln!(out, "mxrt_model_file_bytes {}", self.file_bytes);
        out.push_str("# HELP mxrt_model_device_bytes Weights uploaded to a GPU backend.\n# TYPE mxrt_model_device_bytes gauge\n");
        let _ = writeln!(out, "mxrt_model_device_bytes {}", self.device_bytes);
        if let Some(rss) = resident_bytes() {
            out.push_str("# HELP mxrt_resident_memory_bytes Resident memory of the server process.\n# TYPE mxrt_resident_memory_bytes gauge\n");
            let _ = writeln!(out, "mxrt_resident_memory_bytes {rss}");
        }
        out
    }
}

/// The lock's data even if a thread panicked holding it (counters stay usable).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Resident set size from /proc/self/statm (Linux); `None` elsewhere.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_requests_count_by_status() {
        let m = Metrics::new(1000, 0);
        m.request("/classify", 200, 0.003);
        m.request("/classify", 200, 0.2);
        m.request("/classify", 400, 0.0001);
        m.batch(3);
        m.batch(40);
        let text = m.render();
        for line in [
            "mxrt_requests_total{route=\"/classify\",status=\"200\"} 2",
            "mxrt_requests_total{route=\"/classify\",status=\"400\"} 1",
            "mxrt_request_errors_total{route=\"/classify\"} 1",
            "mxrt_request_duration_seconds_bucket{route=\"/classify\",le=\"0.001\"} 1",
            "mxrt_request_duration_seconds_bucket{route=\"/classify\",le=\"0.005\"} 2",
            "mxrt_request_duration_seconds_bucket{route=\"/classify\",le=\"+Inf\"} 3",
            "mxrt_request_duration_seconds_count{route=\"/classify\"} 3",
            "mxrt_batch_inputs_bucket{le=\"4\"} 1",
            "mxrt_batch_inputs_bucket{le=\"64\"} 2",
            "mxrt_batch_inputs_sum 43",
            "mxrt_batches_total 2",
            "mxrt_model_file_bytes 1000",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }
}
