//! `mxrt serve MODEL`: the model behind HTTP on a loopback address by default, with dynamic batching, request
//! limits, Prometheus metrics and a graceful shutdown on SIGTERM or Ctrl-C (requests in flight are answered).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use mxrt_runtime::{BackendKind, Session, SessionOptions, Task};

use crate::serve::batcher::{BatchConfig, Batcher};
use crate::serve::metrics::Metrics;
use crate::serve::{router, App, Limits};

#[derive(clap::Args)]
#[command(after_help = "\
Routes:
  POST /v1/embeddings  OpenAI's embeddings API (sentence encoders): {\"input\": \"text\" | [\"text\", ...],
                       \"encoding_format\": \"float\" | \"base64\"}
  POST /classify       classifiers and regression heads: {\"texts\": [...], \"pairs\": [[a, b], ...]}
  POST /run            MLPs: {\"inputs\": [[features], ...]}
  GET  /health         {\"status\": \"ok\", ...}
  GET  /metrics        Prometheus text: requests, errors, latency, inputs per forward pass, queue, memory

Errors are JSON ({\"error\": {\"message\", \"type\", \"code\"}}): 400 malformed request, 404 unknown route,
413 body/inputs/tokens over the limits, 503 queue full (with Retry-After).

Example:
  mxrt serve model.mxrt --port 8080 &
  curl -s localhost:8080/classify -d '{\"texts\": [\"a great film\"]}'")]
pub struct Args {
    /// The .mxrt model.
    model: PathBuf,
    /// Address to listen on (loopback by default: give 0.0.0.0 to accept other machines).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free port; the address is printed on stderr).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Where the model runs.
    #[arg(long, default_value = "cpu", value_parser = clap::value_parser!(BackendKind))]
    backend: BackendKind,
    /// CPU worker threads for inference (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
    /// Texts (or 1,024-row blocks of MLP rows) per forward pass; the batcher gathers requests up to it.
    #[arg(long, default_value_t = 32)]
    max_batch: usize,
    /// How long the first request of a batch waits for others, in milliseconds (0: only those already queued).
    #[arg(long, default_value_t = 5)]
    batch_window_ms: u64,
    /// Run every request alone (no dynamic batching): for comparison.
    #[arg(long)]
    no_batching: bool,
    /// Requests allowed to wait for the batcher; more are refused with 503 and Retry-After.
    #[arg(long, default_value_t = 256)]
    queue: usize,
    /// Largest request body, in bytes (larger: 413).
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Texts (and pairs) or feature rows per request (more: 413).
    #[arg(long, default_value_t = 256)]
    max_inputs: usize,
    /// Tokens per request after truncation (more: 413).
    #[arg(long, default_value_t = 65_536)]
    max_tokens: usize,
    /// Truncate texts to this many tokens (default: the model's max_seq_length, else 512).
    #[arg(long)]
    max_length: Option<usize>,
    /// The model name responses carry (default: the file name without .mxrt).
    #[arg(long)]
    model_name: Option<String>,
}

pub fn run(a: Args) -> Result<ExitCode> {
    if a.max_batch == 0 || a.queue == 0 || a.max_inputs == 0 {
        bail!("--max-batch, --queue and --max-inputs must be at least 1");
    }
    eprintln!("mxrt serve: loading {} ...", a.model.display());
    let session = Arc::new(Session::open(
        &a.model,
        SessionOptions {
            backend: a.backend,
            threads: a.threads,
            max_batch: a.max_batch,
            max_length: a.max_length,
            ..SessionOptions::default()
        },
    )?);
    let info = session.describe();
    if info.task != Task::Features && session.encoder().is_none() {
        bail!(
            "{}: {} (a server takes text in)",
            a.model.display(),
            mxrt_runtime::TextError::NoTokenizer
        );
    }
    let name = a.model_name.clone().unwrap_or_else(|| {
        a.model
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into())
    });
    let metrics = Arc::new(Metrics::new(info.file_bytes, info.device_bytes));
    let config = BatchConfig {
        max_batch: if a.no_batching { 1 } else { a.max_batch },
        window: if a.no_batching {
            Duration::ZERO
        } else {
            Duration::from_millis(a.batch_window_ms)
        },
        queue: a.queue,
    };
    let (batcher, batcher_thread) =
        Batcher::start(Arc::clone(&session), config, Arc::clone(&metrics))
            .context("starting the batcher thread")?;
    let app = Arc::new(App {
        session,
        info,
        name,
        batcher,
        metrics,
        limits: Limits {
            max_body_bytes: a.max_body_bytes,
            max_inputs: a.max_inputs,
            max_tokens: a.max_tokens,
        },
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("mxrt-http")
        .enable_all()
        .build()
        .context("starting the HTTP runtime")?;
    let served = runtime.block_on(async {
        let addr: SocketAddr = format!("{}:{}", a.host, a.port)
            .parse()
            .with_context(|| format!("--host {} --port {}: not an address", a.host, a.port))?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        eprintln!(
            "mxrt serve: {} ({} model, {}), listening on http://{local}",
            app.name,
            app.info.task.name(),
            app.info.backend
        );
        axum::serve(listener, router(Arc::clone(&app)))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("serving HTTP")
    });
    // The server has answered every request it accepted; the batcher ends when its queue is dropped.
    drop(app);
    let _ = batcher_thread.join();
    runtime.shutdown_timeout(Duration::from_secs(1));
    served?;
    eprintln!("mxrt serve: stopped");
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    eprintln!("mxrt serve: shutting down (finishing the requests in flight)");
}
