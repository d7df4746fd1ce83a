//! The `mxrt` command: argument parsing and dispatch. Each subcommand lives in its own module.

#![forbid(unsafe_code)]

mod calibrate;
mod commands;
mod data;
mod fmt;
mod heap;
mod memory;
mod memory_report;
mod outputs;
mod plot;
mod rows_file;
mod serve;
mod task;
mod threads;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mxrt",
    version,
    about = "Pack checkpoints into compressed, verified, memory-mappable .mxrt files (OCP MX, fixed point, sparse)",
    long_about = "mxrt packs trained checkpoints into .mxrt files: OCP Microscaling blocks (MXINT8, MXINT4, MXFP8, \
                  MXFP6, MXFP4), fixed-point integers and sparse tensors, with checksums and provenance. \
                  The byte layout is specified in format/FORMAT.md."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pack a checkpoint (safetensors, PyTorch .bin/.pt/.pth, Lightning .ckpt) into one .mxrt file.
    #[command(
        long_about = "Pack a checkpoint, or every tensor of the input weight file(s), into one .mxrt file. \
        Weight files are safetensors or PyTorch zip checkpoints (pytorch_model.bin, .pt, .pth, Lightning .ckpt: \
        read without running pickled code; anything but tensors and plain containers is refused, naming the \
        class).\n\n\
        Floating-point tensors (F32, F16, BF16) get the --weights encoding, except, unless --all-tensors is given, \
        1-D tensors (biases, norms) and tensors the encoding would not make smaller than their source: those are \
        kept in their source type, exactly. Other tensors (integers, bool, F64) are copied as they are. A tensor \
        is stored sparse when that is smaller (--no-sparse to forbid it). NaN or infinite weights are an error \
        unless --allow-nonfinite. The output is written to a temporary file and renamed: it is never left \
        half-written.\n\n\
        Encodings: f32, f16, bf16, mxint8, mxint4, mxfp8-e4m3, mxfp8-e5m2, mxfp6-e3m2, mxfp6-e2m3, mxfp4 \
        (OCP MX, blocks of 32 along the last axis), fixed:W.F (signed, W = 2..32 bits, F = 0..64 fraction bits), \
        sparse(<encoding>)."
    )]
    Convert(commands::convert::Args),
    /// List the tensors of an .mxrt file with their encodings, sizes and the saving against FP32.
    Inspect(commands::inspect::Args),
    /// Check an .mxrt file completely (structure and every checksum); exit 0 only if all holds.
    Verify(commands::verify::Args),
    /// Write every tensor back as F32 safetensors: exactly the values the runtime computes with.
    Dequantize(commands::dequantize::Args),
    /// Run a model on texts (BERT: labels and probabilities, or embeddings) or feature rows (MLP).
    Run(commands::run::Args),
    /// Evaluate a model against its FP32 reference: accuracy or Spearman, agreement, logit differences, KL,
    /// and memory (stored bytes vs FP32, measured peak RSS).
    Eval(commands::eval::Args),
    /// Sweep a checkpoint over fixed-point widths, pruning sparsities and methods, or encodings: every point
    /// converted in memory and evaluated against FP32; results.csv/json, report.md and PNG/SVG charts.
    Sweep(commands::sweep::Args),
    /// Search per-layer (or per-group) encodings, sparsities and activation encodings for the smallest model
    /// within an accuracy budget (tpe, random, grid or greedy; --seed seeds tpe and random): each trial
    /// evaluated on a search split, the result once on a held-out split.
    Search(commands::search::Args),
    /// Latency and throughput of a model on synthetic inputs, with the time to open it and run once.
    Bench(commands::bench::Args),
    /// Serve a model over HTTP: OpenAI-compatible /v1/embeddings, /classify, /run, /health, /metrics, with
    /// dynamic batching, request limits and a graceful shutdown.
    Serve(commands::serve::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server handles SIGTERM and Ctrl-C itself (it finishes the requests in flight) and writes no files.
    if !matches!(cli.command, Command::Serve(_)) {
        outputs::remove_partial_files_on_signals();
    }
    threads::init_global();
    let result = match cli.command {
        Command::Convert(a) => commands::convert::run(a),
        Command::Inspect(a) => commands::inspect::run(a),
        Command::Verify(a) => commands::verify::run(a),
        Command::Dequantize(a) => commands::dequantize::run(a),
        Command::Run(a) => commands::run::run(a),
        Command::Eval(a) => commands::eval::run(a),
        Command::Sweep(a) => commands::sweep::run(a),
        Command::Search(a) => commands::search::run(a),
        Command::Bench(a) => commands::bench::run(a),
        Command::Serve(a) => commands::serve::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, skipping a cause whose text the message already contains (most of our error
/// types embed their cause, and printing it twice would only confuse).
fn error_message(e: &anyhow::Error) -> String {
    let mut message = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message
}

/// Shared by subcommands that read one .mxrt file and can answer in JSON.
#[derive(clap::Args)]
struct FileJsonArgs {
    /// The .mxrt file.
    file: PathBuf,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks argument definitions (unique names, valid defaults) only when a subcommand is parsed; this
    /// checks every subcommand at once.
    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
