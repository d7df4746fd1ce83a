//! Outputs never destroy inputs or leave debris: the CLI refuses an output that is one of its inputs (or a
//! file of the input checkpoint directory) or an existing special file, checks every output path before
//! replacing any, and removes partial files a killed writer left behind.

mod common;

use std::path::Path;
use std::process::Command;

use common::{mxrt, mxrt_ok, shared};

/// A copy of jsc-tiny in `dir` (so the tests may try to overwrite its files).
fn checkpoint(dir: &Path) -> std::path::PathBuf {
    let ckpt = dir.join("jsc-tiny");
    std::fs::create_dir(&ckpt).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(shared().join("models/jsc-tiny").join(f), ckpt.join(f)).unwrap();
    }
    ckpt
}

fn refused(args: &[&str]) -> String {
    let out = mxrt(args);
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn an_output_that_is_an_input_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(dir.path());
    let weights = ckpt.join("model.safetensors");
    let before = std::fs::read(&weights).unwrap();
    for target in [weights.clone(), ckpt.join("config.json")] {
        let e = refused(&[
            "convert",
            ckpt.to_str().unwrap(),
            "-o",
            target.to_str().unwrap(),
        ]);
        assert!(
            e.contains("refusing to write") && e.contains("a file of the input"),
            "{e}"
        );
    }
    assert_eq!(std::fs::read(&weights).unwrap(), before);
    // dequantize over its own source, spelled differently.
    let model = dir.path().join("m.mxrt");
    mxrt_ok(&[
        "convert",
        ckpt.to_str().unwrap(),
        "-o",
        model.to_str().unwrap(),
        "--quiet",
    ]);
    let bytes = std::fs::read(&model).unwrap();
    let dotted = dir.path().join(".").join("m.mxrt");
    let e = refused(&[
        "dequantize",
        model.to_str().unwrap(),
        "-o",
        dotted.to_str().unwrap(),
    ]);
    assert!(e.contains("it is also an input"), "{e}");
    assert_eq!(std::fs::read(&model).unwrap(), bytes);
}

#[test]
fn special_files_and_bad_report_paths_are_refused_before_anything_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(dir.path());
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let e = refused(&[
        "convert",
        ckpt.to_str().unwrap(),
        "-o",
        fifo.to_str().unwrap(),
    ]);
    assert!(e.contains("not a regular file (a FIFO)"), "{e}");
    assert!(!fifo.is_file(), "the FIFO was replaced");
    // An existing model and a report in a directory that does not exist: the model stays as it was.
    let model = dir.path().join("m.mxrt");
    std::fs::write(&model, b"an older model").unwrap();
    let e = refused(&[
        "convert",
        ckpt.to_str().unwrap(),
        "-o",
        model.to_str().unwrap(),
        "--report",
        dir.path().join("missing/r.json").to_str().unwrap(),
    ]);
    assert!(e.contains("does not exist"), "{e}");
    assert_eq!(std::fs::read(&model).unwrap(), b"an older model");
    // The report and the model the same file.
    let e = refused(&[
        "convert",
        ckpt.to_str().unwrap(),
        "-o",
        model.to_str().unwrap(),
        "--report",
        model.to_str().unwrap(),
    ]);
    assert!(e.contains("two outputs"), "{e}");
}

#[test]
fn partial_files_of_a_killed_writer_are_removed_by_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // As a SIGKILL mid-write leaves it: a partial file named for a process that no longer runs.
    let stale = out.join(format!("{}4000000000-x1y2z3", mxrt_format::PARTIAL_PREFIX));
    std::fs::write(&stale, vec![0u8; 4096]).unwrap();
    mxrt_ok(&[
        "convert",
        ckpt.to_str().unwrap(),
        "-o",
        out.join("m.mxrt").to_str().unwrap(),
        "--quiet",
    ]);
    assert!(!stale.exists());
    let left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["m.mxrt"]);
}
