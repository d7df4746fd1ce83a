//! `mxrt bench`: time to open the file and to run the first inference, then latency percentiles and
//! throughput after a warm-up, on seeded synthetic inputs of the asked shape.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Result};
use mxrt_converter::rng::SplitMix64;
use mxrt_format::ReadOptions;
use mxrt_runtime::{Graph, TokenBatch};
use serde_json::json;

use crate::fmt::outln;

#[derive(clap::Args)]
pub struct Args {
    /// The .mxrt model (not needed with --kernels).
    #[arg(required_unless_present = "kernels")]
    model: Option<PathBuf>,
    /// Benchmark the linear kernels alone (f32, MXINT8 weights, MXINT8 x MXINT8) on a [batch*seq, 384] x
    /// [1536, 384] product, in GFLOP/s or GOP/s against this machine's peaks. With --backend cuda: the
    /// MXINT8 GEMV's bandwidth on an 8192 x 16384 weight (138 MB stored, beyond any L2) against a
    /// device-to-device copy, in one run.
    #[arg(long)]
    kernels: bool,
    /// Sequences (BERT) or feature rows (MLP) per inference.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Tokens per sequence (BERT), `[CLS]` and `[SEP]` included.
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
    #[command(flatten)]
    backend: crate::commands::run::BackendArgs,
    #[arg(long)]
    json: bool,
    /// For benchmark drivers that interleave runtimes (scripts/bench-peers.sh): after the warm-up, print one
    /// JSON line with the inputs, then for every line read on stdin run one inference and print its latency
    /// in milliseconds on its own line; stop at end of input.
    #[arg(long)]
    serve: bool,
}

/// Seconds since the Unix epoch (wall clock, comparable with the timestamps other processes print).
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A duration for people: microseconds below a millisecond, else milliseconds.
fn duration(seconds: f64) -> String {
    if seconds < 1e-3 {
        format!("{:.2} µs", seconds * 1e6)
    } else {
        format!("{:.2} ms", seconds * 1e3)
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    if a.kernels {
        match a.backend.backend {
            mxrt_runtime::BackendKind::Cpu => {}
            mxrt_runtime::BackendKind::Cuda => return cuda_bandwidth(&a),
            mxrt_runtime::BackendKind::Wgpu => {
                bail!("--kernels measures the CPU kernels, or the CUDA GEMV with --backend cuda")
            }
        }
        return kernels(&a);
    }
    let Some(model_path) = a.model.clone() else {
        bail!("give a model, or --kernels")
    };
    if a.batch == 0 || a.iterations == 0 {
        bail!("--batch and --iterations must be at least 1");
    }
    check_iterations(&a)?;
    let pool = crate::threads::pool(a.threads.unwrap_or(0))?;
    let threads = pool.current_num_threads();
    pool.install(|| -> Result<ExitCode> {
        let t0 = Instant::now();
        // Opened as the library's session, without the tokenizer: the timed calls are the model's own on
        // synthetic token ids (the network's numbers, as the peers are timed on ids), so neither the open
        // time nor the memory counts a tokenizer nothing here uses.
        let session = a.backend.session_with(
            &model_path,
            mxrt_runtime::SessionOptions {
                max_batch: a.batch,
                tokenizer: false,
                ..mxrt_runtime::SessionOptions::default()
            },
        )?;
        let model = session.model();
        let open_s = t0.elapsed().as_secs_f64();
        let backend = model.backend_description();
        let ready_unix_s = unix_now();
        let mut rng = SplitMix64(7);
        let mut inputs = json!(null);
        let isa = model.isa();
        let infer: Box<dyn Fn() -> Result<()> + '_> = match model.graph() {
            Graph::Bert(bert) => {
                let c = &bert.config;
                if a.seq < 2 || a.seq > c.max_positions {
                    bail!("--seq must be in 2..={}", c.max_positions);
                }
                model.check_working_memory(&format!("--batch {} --seq {}", a.batch, a.seq), a.batch, a.seq)?;
                // [CLS] w w ... w [SEP].
                let mut ids = Vec::with_capacity(a.batch * a.seq);
                for _ in 0..a.batch {
                    ids.push(101.min(c.vocab as u32 - 1));
                    // Ordinary word ids: from 1000 up in a BERT vocabulary, from half the vocabulary up in small ones.
                    let low = 1000.min(c.vocab as u64 / 2);
                    ids.extend((0..a.seq - 2).map(|_| (low + rng.next_u64() % (c.vocab as u64 - low)) as u32));
                    ids.push(102.min(c.vocab as u32 - 1));
                }
                inputs = json!({"input_ids": ids});
                let batch = TokenBatch { batch: a.batch, seq: a.seq, ids, type_ids: vec![0; a.batch * a.seq], mask: vec![1; a.batch * a.seq] };
                Box::new(move || model.run_bert(&batch, false).map(|_| ()).map_err(Into::into))
            }
            Graph::Mlp(mlp) => {
                model.check_working_memory(&format!("--batch {}", a.batch), a.batch, 1)?;
                let x: Vec<f32> = (0..a.batch * mlp.inputs).map(|_| rng.normal() as f32).collect();
                Box::new(move || model.run_mlp(&x, a.batch).map(|_| ()).map_err(Into::into))
            }
        };
        // The heap the inferences take beyond the open model and its inputs, over every run (the first fills
        // the buffer pool that later ones reuse).
        crate::heap::reset_peak();
        let t1 = Instant::now();
        infer()?;
        let first_s = t1.elapsed().as_secs_f64();
        let first_result_unix_s = unix_now();
        for _ in 0..a.warmup {
            infer()?;
        }
        if a.serve {
            return serve(&*infer, &inputs, threads, isa);
        }
        let mut times = Vec::with_capacity(a.iterations);
        for _ in 0..a.iterations {
            let t = Instant::now();
            infer()?;
            times.push(t.elapsed().as_secs_f64());
        }
        let activation_bytes = crate::heap::peak_since_reset();
        times.sort_by(f64::total_cmp);
        let (p50, p90, p99) = (percentile(&times, 0.5), percentile(&times, 0.9), percentile(&times, 0.99));
        let r = json!({
            "model": model_path.display().to_string(), "batch": a.batch,
            "seq": matches!(model.graph(), Graph::Bert(_)).then_some(a.seq), "threads": threads, "isa": isa,
            "backend": backend, "device_weight_bytes": model.device_bytes(),
            "open_ms": open_s * 1e3, "first_inference_ms": first_s * 1e3, "iterations": a.iterations,
            "ready_unix_s": ready_unix_s, "first_result_unix_s": first_result_unix_s,
            "peak_rss_bytes": crate::memory::rss().map(|r| r.0), "activation_bytes": activation_bytes,
            "p50_ms": p50 * 1e3, "p90_ms": p90 * 1e3, "p99_ms": p99 * 1e3,
            "throughput_per_s": a.batch as f64 / p50,
        });
        if a.json {
            outln!("{}", serde_json::to_string_pretty(&r)?)?;
        } else {
            // An MLP has rows, not sequences; its calls take microseconds, which "0.00 ms" would hide.
            let (shape, unit) = match model.graph() {
                Graph::Bert(_) => (format!("batch {} × seq {}", a.batch, a.seq), "sequences"),
                Graph::Mlp(_) => (format!("batch of {} rows", a.batch), "rows"),
            };
            outln!(
                "{}: {shape} on {}: open {}, first inference {}; p50 {}, p90 {}, p99 {}; {:.1} {unit} per second; \
                 activations {:.1} MB",
                model_path.display(),
                if a.backend.backend == mxrt_runtime::BackendKind::Cpu { format!("{threads} threads ({isa})") } else { backend.clone() },
                duration(open_s), duration(first_s), duration(p50), duration(p90), duration(p99), a.batch as f64 / p50,
                activation_bytes as f64 / 1e6
            )?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The `--serve` loop: one inference per line of stdin, its latency in ms per line of stdout.
fn serve(
    infer: &dyn Fn() -> Result<()>,
    inputs: &serde_json::Value,
    threads: usize,
    isa: &str,
) -> Result<ExitCode> {
    use std::io::{BufRead, Write};
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}",
        json!({"ready": true, "threads": threads, "isa": isa, "inputs": inputs})
    )?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        line?;
        let t = Instant::now();
        infer()?;
        writeln!(out, "{:.6}", t.elapsed().as_secs_f64() * 1e3)?;
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `--kernels --backend cuda`: the MXINT8 GEMV's bandwidth against a device-to-device copy of the same bytes,
/// in one run (a GEMV at batch 1 reads each stored byte once: it cannot beat the copy).
fn cuda_bandwidth(a: &Args) -> Result<ExitCode> {
    let (rows, cols) = (8192usize, 16384usize);
    let (device, gemv, copy) = mxrt_runtime::cuda_gemv_bandwidth(rows, cols, a.iterations.max(10))?;
    let r = json!({
        "backend": format!("cuda: {device}"), "kernel": "gemv_mxint8", "rows": rows, "cols": cols,
        "stored_bytes": rows * cols.div_ceil(32) * 33, "gemv_gb_per_s": gemv, "copy_gb_per_s": copy,
        "fraction_of_copy": gemv / copy,
    });
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&r)?)?;
    } else {
        outln!(
            "cuda: {device}\nMXINT8 GEMV {rows}x{cols} (batch 1): {gemv:.0} GB/s; device copy {copy:.0} GB/s; {:.0} % of copy",
            100.0 * gemv / copy
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Times `Cpu::linear` for one shape and three weight/activation combinations.
fn kernels(a: &Args) -> Result<ExitCode> {
    use mxrt_format::{
        encode_f32, Encoding, FileBuilder, MxElem, MxrtFile, Rounding, SparsePolicy,
    };
    use mxrt_runtime::bench::Cpu;
    use mxrt_runtime::ActQuant;
    use mxrt_runtime::TensorRef;
    check_iterations(a)?;
    let (k, n) = (384usize, 1536usize);
    // Activations, outputs and their quantized copies: a few times (k + n) f32 per row.
    let m = a
        .batch
        .checked_mul(a.seq)
        .filter(|m| m.checked_mul((k + n) * 4 * 4).is_some_and(|b| b <= 64 << 30))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--kernels with --batch {} --seq {}: {} rows of [384 x 1536] is more than this benchmark holds \
                 (64 GiB of activations)",
                a.batch,
                a.seq,
                a.batch.saturating_mul(a.seq)
            )
        })?;
    let mut rng = SplitMix64(11);
    let w: Vec<f32> = (0..n * k).map(|_| (rng.normal() * 0.05) as f32).collect();
    let x: Vec<f32> = (0..m * k).map(|_| rng.normal() as f32).collect();
    let pool = crate::threads::pool(a.threads.unwrap_or(0))?;
    let cpu = Cpu::from_env()?;
    // The ceilings the kernels are reported against: measured now, on these threads, with this tier.
    let peaks = mxrt_runtime::bench::measure_peaks(&cpu.kernels, &pool);
    let mut rows = Vec::new();
    let mxint8 = ActQuant {
        encoding: Encoding::Mx(MxElem::Int8),
        rounding: Rounding::Nearest,
    };
    for (label, enc, act, peak) in [
        (
            "f32 weights x f32",
            Encoding::F32,
            ActQuant::NONE,
            peaks.f32_gflops,
        ),
        (
            "mxint8 weights x f32",
            Encoding::Mx(MxElem::Int8),
            ActQuant::NONE,
            peaks.f32_gflops,
        ),
        (
            "mxint8 x mxint8 (integer)",
            Encoding::Mx(MxElem::Int8),
            mxint8,
            peaks.int8_gops,
        ),
    ] {
        let mut b = FileBuilder::new(serde_json::Map::new())?;
        b.push(encode_f32(
            "w",
            &[n as u64, k as u64],
            &w,
            enc,
            Rounding::Nearest,
            SparsePolicy::Never,
        )?)?;
        let bytes = b.to_bytes()?;
        let file = MxrtFile::parse(&bytes, ReadOptions::default())?;
        let tref = TensorRef::from_view(file.tensor("w").ok_or_else(|| anyhow::anyhow!("w"))?);
        let view = tref.view(&bytes);
        let mut times = Vec::new();
        pool.install(|| {
            for i in 0..a.warmup + a.iterations {
                let t = Instant::now();
                std::hint::black_box(cpu.linear(&x, m, &view, None, act));
                if i >= a.warmup {
                    times.push(t.elapsed().as_secs_f64());
                }
            }
        });
        times.sort_by(f64::total_cmp);
        let p50 = percentile(&times, 0.5);
        let ops = 2.0 * (m * n * k) as f64 / p50 / 1e9;
        rows.push(json!({"kernel": label, "m": m, "k": k, "n": n, "p50_ms": p50 * 1e3, "g_ops_per_s": ops, "fraction_of_peak": ops / peak, "peak": peak}));
    }
    let r = json!({"isa": cpu.kernels.isa, "threads": pool.current_num_threads(), "kernels": rows,
        "peaks": {"f32_gflops": peaks.f32_gflops, "int8_gops": peaks.int8_gops,
                  "measured_with": cpu.kernels.peaks.what}});
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&r)?)?;
    } else {
        outln!(
            "linear [{m} x {k}] . [{n} x {k}]^T on {} threads ({}); peaks measured now: {:.0} GFLOP/s f32, \
             {:.0} GOP/s int8 ({})",
            pool.current_num_threads(),
            cpu.kernels.isa,
            peaks.f32_gflops,
            peaks.int8_gops,
            cpu.kernels.peaks.what
        )?;
        for row in &rows {
            outln!(
                "  {:<28} p50 {:>8.2} ms  {:>7.1} G(FL)OP/s  {:>5.1} % of the {:.0} peak",
                row["kernel"].as_str().unwrap_or(""),
                row["p50_ms"].as_f64().unwrap_or(0.0),
                row["g_ops_per_s"].as_f64().unwrap_or(0.0),
                100.0 * row["fraction_of_peak"].as_f64().unwrap_or(0.0),
                row["peak"].as_f64().unwrap_or(0.0)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Each timed iteration is kept for the percentiles: a bound keeps that list (and the run) finite.
fn check_iterations(a: &Args) -> Result<()> {
    const MAX: usize = 10_000_000;
    if a.iterations > MAX || a.warmup > MAX {
        bail!(
            "--iterations and --warmup are at most {MAX} (got {} and {})",
            a.iterations,
            a.warmup
        );
    }
    Ok(())
}
