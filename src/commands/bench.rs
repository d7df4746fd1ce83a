//! `mxrt bench`: time to open the file and to run the first inference, then latency percentiles and
//! throughput after a warm-up, on seeded synthetic inputs of the asked shape.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Result};
use mxrt_converter::prune::SplitMix64;
use mxrt_format::ReadOptions;
use mxrt_runtime::{Graph, Model, TokenBatch};
use serde_json::json;

use crate::fmt::outln;

#[derive(clap::Args)]
pub struct Args {
    model: PathBuf,
    /// Sequences (BERT) or feature rows (MLP) per inference.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Tokens per sequence (BERT), [CLS] and [SEP] included.
    #[arg(long, default_value_t = 128)]
    seq: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Timed inferences after the warm-up.
    #[arg(long, default_value_t = 20)]
    iterations: usize,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    #[arg(long, default_value = "cpu")]
    backend: String,
    #[arg(long)]
    json: bool,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn run(a: Args) -> Result<ExitCode> {
    crate::commands::run::check_backend(&a.backend)?;
    if a.batch == 0 || a.iterations == 0 {
        bail!("--batch and --iterations must be at least 1");
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads.unwrap_or(0))
        .build()?;
    let threads = pool.current_num_threads();
    pool.install(|| -> Result<ExitCode> {
        let t0 = Instant::now();
        let model = Model::open(&a.model, ReadOptions::default())?;
        let open_s = t0.elapsed().as_secs_f64();
        let mut rng = SplitMix64(7);
        let model = &model;
        let isa = model.isa();
        let infer: Box<dyn Fn() -> Result<()> + '_> = match model.graph() {
            Graph::Bert(bert) => {
                let c = &bert.config;
                if a.seq < 2 || a.seq > c.max_positions {
                    bail!("--seq must be in 2..={}", c.max_positions);
                }
                // [CLS] w w ... w [SEP] with ids from the ordinary-word range of a BERT vocabulary.
                let mut ids = Vec::with_capacity(a.batch * a.seq);
                for _ in 0..a.batch {
                    ids.push(101.min(c.vocab as u32 - 1));
                    ids.extend((0..a.seq - 2).map(|_| 1000 + (rng.next_u64() % (c.vocab as u64 - 1000).max(1)) as u32));
                    ids.push(102.min(c.vocab as u32 - 1));
                }
                let batch = TokenBatch { batch: a.batch, seq: a.seq, ids, type_ids: vec![0; a.batch * a.seq], mask: vec![1; a.batch * a.seq] };
                Box::new(move || model.run_bert(&batch, false).map(|_| ()).map_err(Into::into))
            }
            Graph::Mlp(mlp) => {
                let x: Vec<f32> = (0..a.batch * mlp.inputs).map(|_| rng.normal() as f32).collect();
                Box::new(move || model.run_mlp(&x, a.batch).map(|_| ()).map_err(Into::into))
            }
        };
        let t1 = Instant::now();
        infer()?;
        let first_s = t1.elapsed().as_secs_f64();
        for _ in 0..a.warmup {
            infer()?;
        }
        let mut times = Vec::with_capacity(a.iterations);
        for _ in 0..a.iterations {
            let t = Instant::now();
            infer()?;
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let (p50, p90, p99) = (percentile(&times, 0.5), percentile(&times, 0.9), percentile(&times, 0.99));
        let r = json!({
            "model": a.model.display().to_string(), "batch": a.batch, "seq": a.seq, "threads": threads, "isa": isa,
            "open_ms": open_s * 1e3, "first_inference_ms": first_s * 1e3, "iterations": a.iterations,
            "p50_ms": p50 * 1e3, "p90_ms": p90 * 1e3, "p99_ms": p99 * 1e3,
            "throughput_per_s": a.batch as f64 / p50,
        });
        if a.json {
            outln!("{}", serde_json::to_string_pretty(&r)?)?;
        } else {
            outln!(
                "{}: batch {} seq {} on {threads} threads ({}): open {:.1} ms, first inference {:.1} ms; p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms; {:.1} per second",
                a.model.display(), a.batch, a.seq, isa, open_s * 1e3, first_s * 1e3, p50 * 1e3, p90 * 1e3, p99 * 1e3, a.batch as f64 / p50
            )?;
        }
        Ok(ExitCode::SUCCESS)
    })
}
