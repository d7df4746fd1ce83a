//! Dynamic batching: requests wait in a bounded queue; one thread takes the first, gathers whatever else
//! arrives within a short window (up to the batch size), runs them as one forward pass, and answers each
//! request with its own rows. A full queue refuses new work at once (the handler answers 503).

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mxrt_runtime::Session;
use tokio::sync::oneshot;

use super::metrics::Metrics;

/// What a request asks the model to compute.
pub enum Work {
    /// Texts and sentence pairs (text models): one output row each.
    Texts(Vec<(String, Option<String>)>),
    /// Feature rows of an MLP, row-major: `rows` rows.
    Rows { x: Vec<f32>, rows: usize },
}

impl Work {
    fn inputs(&self) -> usize {
        match self {
            Work::Texts(t) => t.len(),
            Work::Rows { rows, .. } => *rows,
        }
    }
}

/// One output row per input, or the reason the model refused this request's inputs.
pub type Answer = Result<Vec<Vec<f32>>, String>;

struct Job {
    work: Work,
    reply: oneshot::Sender<Answer>,
}

/// How requests are gathered.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// Inputs per forward pass the batcher gathers up to (a single larger request runs alone).
    pub max_batch: usize,
    /// How long the first request of a batch waits for company.
    pub window: Duration,
    /// Requests allowed to wait; more are refused.
    pub queue: usize,
}

/// The handlers' side: submit work, get a receiver for the answer.
pub struct Batcher {
    tx: SyncSender<Job>,
    metrics: Arc<Metrics>,
}

/// The queue is full: the caller should retry later.
pub struct QueueFull;

impl Batcher {
    /// Starts the batching thread; it ends when the last `Batcher` is dropped and the queue is drained.
    pub fn start(
        session: Arc<Session>,
        config: BatchConfig,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<(Batcher, JoinHandle<()>)> {
        let (tx, rx) = sync_channel(config.queue.max(1));
        let worker_metrics = Arc::clone(&metrics);
        let handle = std::thread::Builder::new()
            .name("mxrt-batcher".into())
            .spawn(move || run(&session, &rx, config, &worker_metrics))?;
        Ok((Batcher { tx, metrics }, handle))
    }

    pub fn submit(&self, work: Work) -> Result<oneshot::Receiver<Answer>, QueueFull> {
        let (reply, answer) = oneshot::channel();
        match self.tx.try_send(Job { work, reply }) {
            Ok(()) => {
                self.metrics.queued(1);
                Ok(answer)
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => Err(QueueFull),
        }
    }
}

fn run(session: &Session, rx: &Receiver<Job>, config: BatchConfig, metrics: &Metrics) {
    let width = session.describe().output_width.max(1);
    while let Ok(first) = rx.recv() {
        metrics.queued(-1);
        let mut size = first.work.inputs();
        let mut jobs = vec![first];
        let deadline = Instant::now() + config.window;
        while size < config.max_batch {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = if left.is_zero() {
                rx.try_recv().map_err(|_| RecvTimeoutError::Timeout)
            } else {
                rx.recv_timeout(left)
            };
            match next {
                Ok(job) => {
                    metrics.queued(-1);
                    size += job.work.inputs();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        answer(session, width, jobs, metrics);
    }
}

/// Runs the jobs as one forward pass (texts with texts, rows with rows) and sends each its rows. If the pass
/// fails, each job runs alone, so that one request's bad input fails only that request.
fn answer(session: &Session, width: usize, jobs: Vec<Job>, metrics: &Metrics) {
    let (texts, rows): (Vec<Job>, Vec<Job>) = jobs
        .into_iter()
        .partition(|j| matches!(j.work, Work::Texts(_)));
    for group in [texts, rows] {
        if group.is_empty() {
            continue;
        }
        let inputs: usize = group.iter().map(|j| j.work.inputs()).sum();
        metrics.batch(inputs);
        match compute(session, width, group.iter().map(|j| &j.work)) {
            Ok(mut out) => {
                for job in group {
                    let rest = out.split_off(job.work.inputs());
                    let _ = job.reply.send(Ok(out));
                    out = rest;
                }
            }
            Err(_) if group.len() > 1 => {
                for job in group {
                    let result = compute(session, width, std::iter::once(&job.work));
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                for job in group {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// The output rows of all `works` (all texts, or all rows of `width` outputs), in order.
fn compute<'a>(session: &Session, width: usize, works: impl Iterator<Item = &'a Work>) -> Answer {
    let mut texts: Vec<(&str, Option<&str>)> = Vec::new();
    let mut x: Vec<f32> = Vec::new();
    let mut rows = 0;
    for w in works {
        match w {
            Work::Texts(t) => texts.extend(t.iter().map(|(a, b)| (a.as_str(), b.as_deref()))),
            Work::Rows { x: r, rows: n } => {
                x.extend_from_slice(r);
                rows += n;
            }
        }
    }
    if rows > 0 {
        let y = session.run(&x, rows).map_err(|e| e.to_string())?;
        return Ok(y.chunks(width).map(<[f32]>::to_vec).collect());
    }
    session.outputs(&texts).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue of two with nobody taking from it: the third request is refused at once (the handler's 503),
    /// and the depth gauge counts the two waiting.
    #[test]
    fn a_full_queue_refuses_at_once() {
        let (tx, _rx) = sync_channel(2);
        let metrics = Arc::new(Metrics::new(0, 0));
        let batcher = Batcher {
            tx,
            metrics: Arc::clone(&metrics),
        };
        let work = || Work::Texts(vec![("a".into(), None)]);
        let _a = batcher.submit(work()).ok().expect("room for one");
        let _b = batcher.submit(work()).ok().expect("room for two");
        assert!(batcher.submit(work()).is_err());
        assert!(metrics.render().contains("mxrt_queue_depth 2\n"));
    }
}
