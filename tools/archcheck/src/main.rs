//! `archcheck [ROOT]`: checks the repository at ROOT (default: this crate's repository) against the rules of
//! `../shared/DESIGN.md` (see the library docs), prints what it counted and every violation, and exits 1 when
//! there is one. `--json` prints the counts and violations as one JSON object instead.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut json = false;
    let mut root = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--json" => json = true,
            "-h" | "--help" => {
                println!(
                    "usage: archcheck [--json] [ROOT]\n\nChecks module cycles, the runtime's layer rules and \
                     source file sizes (at most {} lines) from the sources under ROOT (default: the \
                     repository this tool belongs to).",
                    mxrt_archcheck::MAX_LINES
                );
                return ExitCode::SUCCESS;
            }
            other => root = Some(PathBuf::from(other)),
        }
    }
    let root = root.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."));
    let report = match mxrt_archcheck::check_repository(&root) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("archcheck: cannot read {}: {e}", root.display());
            return ExitCode::from(2);
        }
    };
    let (largest, largest_lines) = report.largest.clone().unwrap_or_default();
    if json {
        let violations: Vec<String> = report
            .violations
            .iter()
            .map(|v| {
                format!(
                    "\"{}\"",
                    v.to_string().replace('\\', "\\\\").replace('"', "\\\"")
                )
            })
            .collect();
        println!(
            "{{\"files\": {}, \"largest_file\": \"{}\", \"largest_lines\": {}, \"module_cycles\": {}, \
             \"violations\": [{}]}}",
            report.files,
            largest,
            largest_lines,
            report.cycles,
            violations.join(", ")
        );
    } else {
        println!(
            "{} source files (tests excluded); largest {largest} ({largest_lines} lines); {} module cycles",
            report.files, report.cycles
        );
        for v in &report.violations {
            println!("violation: {v}");
        }
        if report.violations.is_empty() {
            println!("no violations");
        }
    }
    if report.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
