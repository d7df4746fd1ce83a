//! examples/classify.c compiled against include/mxrt.h and this crate's shared library with AddressSanitizer
//! (invalid accesses and leaks end the run with an error), run on the runtime's small fixtures: its labels
//! and probabilities (classifier) or vectors (sentence encoder) equal the library's Session answers.

use std::path::{Path, PathBuf};
use std::process::Command;

use mxrt_runtime::{Session, SessionOptions};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The directory cargo put libmxrt_c.so in: the test binary lives in its `deps/`.
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    assert!(
        dir.join("libmxrt_c.so").is_file(),
        "no libmxrt_c.so in {}: `cargo test` builds only this crate's rlib; build the library first with \
         `cargo build --profile test -p mxrt-c` (scripts/test.sh builds every target first)",
        dir.display()
    );
    dir
}

fn compile(out: &Path) {
    let lib = library_dir();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-g",
            "-fsanitize=address,undefined",
        ])
        .args(["-fno-omit-frame-pointer", "-fno-sanitize-recover=all"])
        .arg(repo().join("bindings/c/examples/classify.c"))
        .arg("-I")
        .arg(repo().join("bindings/c/include"))
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lmxrt_c", "-o"])
        .arg(out)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run the C compiler {cc:?} ({e}): install gcc (scripts/test.sh does)")
        });
    assert!(status.success(), "compiling examples/classify.c failed");
}

fn run(exe: &Path, model: &Path, texts: &[&str]) -> Vec<Vec<String>> {
    let out = Command::new(exe)
        .arg(model)
        .args(texts)
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:abort_on_error=0:exitcode=23",
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the example failed ({}):\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("Sanitizer"), "{stderr}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

const TEXTS: [&str; 3] = ["the movie was very good!", "boring plot", "a great film"];

#[test]
fn the_c_example_answers_as_the_library_does_under_address_sanitizer() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("classify");
    compile(&exe);
    let fixtures = repo().join("runtime/tests/fixtures");

    let model = fixtures.join("tiny-classifier.mxrt");
    let lines = run(&exe, &model, &TEXTS);
    assert_eq!(lines[0][0], "error");
    assert!(lines[0][1].contains("no-such-model.mxrt"), "{:?}", lines[0]);
    assert_eq!(lines[1][0], "model");
    assert!(lines[1][1].contains("\"task\":\"classification\""));
    let session = Session::open(&model, SessionOptions::default()).unwrap();
    let want = session.classify(&TEXTS).unwrap();
    let texts: Vec<&Vec<String>> = lines.iter().filter(|l| l[0] == "text").collect();
    assert_eq!(texts.len(), TEXTS.len());
    for ((line, w), t) in texts.iter().zip(&want).zip(TEXTS) {
        assert_eq!((line[1].as_str(), line[2].as_str()), (t, w.label.as_str()));
        for (got, want) in line[3..].iter().zip(&w.probabilities) {
            assert!((got.parse::<f32>().unwrap() - want).abs() <= 1e-6);
        }
    }

    let model = fixtures.join("tiny-encoder.mxrt");
    let lines = run(&exe, &model, &TEXTS);
    let session = Session::open(&model, SessionOptions::default()).unwrap();
    let want = session.embed(&TEXTS).unwrap();
    let texts: Vec<&Vec<String>> = lines.iter().filter(|l| l[0] == "text").collect();
    for (line, w) in texts.iter().zip(&want) {
        assert_eq!(line.len() - 2, w.len());
        for (got, want) in line[2..].iter().zip(w) {
            assert!((got.parse::<f32>().unwrap() - want).abs() <= 1e-6);
        }
    }
}
