//! `mxrt convert`: safetensors files to one .mxrt file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use mxrt_converter::raw::{self, Options};
use mxrt_format::{EncodingSpec, Rounding};

use crate::fmt::outln;
use crate::fmt::{grouped, saving_percent, shape, Table};

#[derive(clap::Args)]
pub struct Args {
    /// Input safetensors file(s); tensors of all inputs go into one output.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output .mxrt file (replaced atomically if it exists).
    #[arg(short, long)]
    output: PathBuf,
    /// Weight encoding, e.g. mxint8, mxfp4, fixed:8.4, f16, sparse(mxint8).
    #[arg(long, default_value = "mxint8")]
    weights: String,
    /// Rounding for MX and fixed point: nearest (half away from zero) or even (half to even; MASE's).
    #[arg(long, default_value = "nearest")]
    rounding: String,
    /// Also encode 1-D tensors and tensors the encoding would not make smaller.
    #[arg(long)]
    all_tensors: bool,
    /// Never store a tensor sparse.
    #[arg(long)]
    no_sparse: bool,
    /// Keep NaN and infinite values instead of refusing the checkpoint.
    #[arg(long)]
    allow_nonfinite: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// No progress bar and no table.
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let options = Options {
        weights: a.weights.parse::<EncodingSpec>()?,
        rounding: a.rounding.parse::<Rounding>()?,
        all_tensors: a.all_tensors,
        no_sparse: a.no_sparse,
        allow_nonfinite: a.allow_nonfinite,
    };
    let bar = if a.quiet || a.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} tensors  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let report = raw::convert(&a.inputs, &a.output, &options, &mut |done, total, name| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(name.to_string());
    });
    bar.finish_and_clear();
    let report = report?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else if !a.quiet {
        print_report(&report)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &raw::Report) -> std::io::Result<()> {
    let mut t = Table::new(
        &["tensor", "shape", "source", "encoding", "bytes", "note"],
        &[4],
    );
    for o in &r.tensors {
        let enc = if o.sparse {
            format!("sparse({})", o.encoding)
        } else {
            o.encoding.clone()
        };
        t.row(vec![
            o.name.clone(),
            shape(&o.shape),
            o.source_dtype.clone(),
            enc,
            grouped(o.bytes),
            o.kept_because.clone().unwrap_or_default(),
        ]);
    }
    crate::fmt::emit(&t.render())?;
    outln!(
        "wrote {}: {} bytes from {} bytes of input ({:.1} % smaller)",
        r.output.display(),
        grouped(r.output_bytes),
        grouped(r.source_bytes),
        saving_percent(r.output_bytes, r.source_bytes)
    )?;
    Ok(())
}
