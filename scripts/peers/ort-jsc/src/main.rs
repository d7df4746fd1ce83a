//! `ort-jsc LIBONNXRUNTIME MODEL.onnx BATCH THREADS`: the same `--serve` protocol as `mxrt bench --serve`
//! (a JSON line when ready, then one inference per stdin line, its latency in ms on stdout), for ONNX Runtime
//! called through its C API from Rust. Inputs: BATCH rows of 16 seeded values.

use std::io::{BufRead, Write};
use std::time::Instant;

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("ort-jsc: {what}: {e}");
    std::process::exit(1)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        fail("usage", "ort-jsc LIBONNXRUNTIME MODEL.onnx BATCH THREADS");
    }
    let batch: usize = args[3].parse().unwrap_or_else(|e| fail("BATCH", e));
    let threads: usize = args[4].parse().unwrap_or_else(|e| fail("THREADS", e));
    let env = ort::init_from(&args[1])
        .unwrap_or_else(|e| fail("loading ONNX Runtime", e))
        .build()
        .unwrap_or_else(|e| fail("environment", e));
    let mut session = Session::builder(&env)
        .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::Level3)?))
        .and_then(|b| Ok(b.with_intra_threads(threads)?))
        .and_then(|b| Ok(b.with_inter_threads(1)?))
        .and_then(|mut b| b.commit_from_file(&args[2]))
        .unwrap_or_else(|e| fail("session", e));
    let mut state = 7u64;
    let x: Vec<f32> = (0..batch * 16)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    let mut run = || {
        let input =
            TensorRef::from_array_view(([batch, 16], &x[..])).unwrap_or_else(|e| fail("input", e));
        let out = session
            .run(ort::inputs![input])
            .unwrap_or_else(|e| fail("run", e));
        std::hint::black_box(&out);
    };
    for _ in 0..20 {
        run();
    }
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{{\"ready\": true, \"threads\": {threads}}}");
    let _ = stdout.flush();
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
        let t = Instant::now();
        run();
        let _ = writeln!(stdout, "{:.6}", t.elapsed().as_secs_f64() * 1e3);
        let _ = stdout.flush();
    }
}
