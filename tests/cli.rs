//! End-to-end behaviour of `mxrt convert`, `inspect`, `verify` and `dequantize` on the real MiniLM checkpoint
//! and on small generated files, including every bad-input path a user can hit.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn minilm() -> String {
    shared()
        .join("models/minilm-sst2/model.safetensors")
        .to_str()
        .unwrap()
        .to_string()
}

fn convert_minilm(dir: &Path, weights: &str) -> String {
    let out = dir.join(format!("minilm-{weights}.mxrt"));
    mxrt_ok(&[
        "convert",
        &minilm(),
        "-o",
        out.to_str().unwrap(),
        "--weights",
        weights,
        "--quiet",
    ]);
    out.to_str().unwrap().to_string()
}

fn inspect_json(file: &str) -> Value {
    serde_json::from_str(&mxrt_ok(&["inspect", file, "--json"])).unwrap()
}

#[test]
fn minilm_mxint8_sizes_encodings_and_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let file = convert_minilm(dir.path(), "mxint8");
    let j = inspect_json(&file);
    let tensors = j["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 105);
    for t in tensors {
        let rank = t["shape"].as_array().unwrap().len();
        let want = if rank == 2 { "mxint8" } else { "f16" };
        assert_eq!(t["encoding"], want, "{}", t["name"]);
        if rank == 2 {
            // 384 and 1536 columns are whole blocks: exactly 8 + 8/32 bits per element.
            assert_eq!(
                t["bits_per_element"].as_f64().unwrap(),
                8.25,
                "{}",
                t["name"]
            );
        }
    }
    let totals = &j["totals"];
    assert_eq!(totals["elements"], 22_713_986);
    assert_eq!(totals["fp32_bytes"], 22_713_986 * 4);
    let saving = totals["saving_percent"].as_f64().unwrap();
    assert!((74.0..74.25).contains(&saving), "saving {saving}");
    assert_eq!(
        totals["file_bytes"].as_u64().unwrap(),
        std::fs::metadata(&file).unwrap().len()
    );
    let source = &j["metadata"]["provenance"]["sources"][0];
    assert_eq!(source["path"], "model.safetensors");
    assert_eq!(source["bytes"], std::fs::metadata(minilm()).unwrap().len());
    assert_eq!(source["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(j["metadata"]["recipe"]["weights"], "mxint8");

    let text = mxrt_ok(&["verify", &file]);
    assert!(text.starts_with("OK "), "{text}");
    let v: Value = serde_json::from_str(&mxrt_ok(&["verify", &file, "--json"])).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["tensors"], 105);
}

#[test]
fn minilm_dequantized_weights_are_within_half_a_step_of_the_originals() {
    let dir = tempfile::tempdir().unwrap();
    let file = convert_minilm(dir.path(), "mxint8");
    let out = dir.path().join("deq.safetensors");
    mxrt_ok(&["dequantize", &file, "-o", out.to_str().unwrap()]);
    let deq = read_f32_tensors(&out);
    let orig_bytes = std::fs::read(minilm()).unwrap();
    let orig = safetensors::SafeTensors::deserialize(&orig_bytes).unwrap();
    let name = "bert.encoder.layer.0.intermediate.dense.weight";
    let o: Vec<f32> = orig
        .tensor(name)
        .unwrap()
        .data()
        .chunks_exact(2)
        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect();
    let (shape, d) = &deq[name];
    assert_eq!(shape, &vec![1536, 384]);
    // Per block of 32 the step is 2^E / 64 with E = floor(log2 amax), the block's largest magnitude (computed
    // here from the exponent bits, not by the converter's code). Every element is within half a step; one
    // whose code saturates (|x| >= 127.5 steps) is exactly 127 steps, with its sign. A shared exponent one too
    // large doubles the step and breaks the half-step bound; one too small saturates most of the block.
    let mut saturated = 0;
    for (b, (ob, db)) in o.chunks(32).zip(d.chunks(32)).enumerate() {
        let amax = ob.iter().fold(0f32, |m, x| m.max(x.abs()));
        if amax == 0.0 {
            assert!(
                db.iter().all(|&y| y == 0.0),
                "block {b}: zeros must stay zero"
            );
            continue;
        }
        let e = ((amax.to_bits() >> 23) & 0xff) as i32 - 127; // normal: f16 weights are far above 2^-126
        let steps = |e: i32| 2f64.powi(e) / 64.0;
        // float32's log2 rounds a value within 2^-16 below a power of two up to it (what the OCP reference
        // computes, FORMAT.md 5.2): only there may the step be the next power of two.
        let near_next = f64::from(amax) >= 2f64.powi(e + 1) * (1.0 - 2f64.powi(-16));
        // The first element that breaks the rule for this step, if any.
        let breach = |step: f64| {
            ob.iter().zip(db).find(|&(&x, &y)| {
                let (x, y) = (f64::from(x), f64::from(y));
                if x.abs() >= 127.5 * step {
                    y != 127.0 * step * x.signum()
                } else {
                    (x - y).abs() > step / 2.0
                }
            })
        };
        if let Some((x, y)) = breach(steps(e)) {
            assert!(
                near_next && breach(steps(e + 1)).is_none(),
                "block {b} (amax {amax:e}, step 2^{e}/64): {x:e} -> {y:e}, more than half a step"
            );
        }
        saturated += ob
            .iter()
            .filter(|x| f64::from(x.abs()) >= 127.5 * steps(e))
            .count();
    }
    // Most blocks' largest element sits well inside [64, 127.5) steps: saturation is the exception.
    assert!(saturated < o.len() / 100, "{saturated} saturated elements");
    // 1-D tensors were kept as f16: exact.
    let bias = "bert.encoder.layer.0.intermediate.dense.bias";
    let ob: Vec<f32> = orig
        .tensor(bias)
        .unwrap()
        .data()
        .chunks_exact(2)
        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect();
    assert_eq!(deq[bias].1, ob);
}

#[test]
fn minilm_fixed_8_4_packs_one_byte_per_weight() {
    let dir = tempfile::tempdir().unwrap();
    let file = convert_minilm(dir.path(), "fixed:8.4");
    let j = inspect_json(&file);
    let we = j["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "bert.embeddings.word_embeddings.weight")
        .unwrap();
    assert_eq!(we["encoding"], "fixed:8.4");
    // fixed:8.4 has a step of 1/16: 45 % of these small weights become zero, so the writer stores the tensor
    // sparse: one byte per non-zero, a 4-byte mask per block of 32, a row offset per row (+1) of 4 bytes
    // (format 2.0 stores them as narrow as the ~6.4 million stored elements allow).
    let sparsity = we["sparsity"].as_f64().unwrap();
    assert!(sparsity > 0.3, "{we}");
    assert_eq!(we["sparse"], true);
    let numel = 30522u64 * 384;
    let nonzero = numel - (sparsity * numel as f64).round() as u64;
    assert_eq!(
        we["bytes"].as_u64().unwrap(),
        nonzero + 30522 * 12 * 4 + 30523 * 4
    );
    // A dense fixed:8.4 tensor costs exactly one byte per weight.
    let q = j["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "classifier.weight")
        .unwrap();
    if q["sparse"] == false {
        assert_eq!(q["bytes"], 2 * 384);
    }
    assert!(mxrt_ok(&["verify", &file]).starts_with("OK"));
}

#[test]
fn small_and_one_dimensional_tensors_are_kept_unless_asked_and_raw_tensors_are_copied() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    let ids: Vec<u8> = [3i64, -7, 1 << 40]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let w: Vec<u8> = (0..64 * 64)
        .flat_map(|i| ((i % 17) as f32 - 8.0).to_le_bytes())
        .collect();
    let narrow: Vec<u8> = (0..3 * 2).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let views = vec![
        (
            "ids",
            safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![3], &ids).unwrap(),
        ),
        (
            "w",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![64, 64], &w)
                .unwrap(),
        ),
        (
            "narrow",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![3, 2], &narrow)
                .unwrap(),
        ),
    ];
    std::fs::write(&input, safetensors::serialize(views, &None).unwrap()).unwrap();
    let out = dir.path().join("o.mxrt");
    let report: Value = serde_json::from_str(&mxrt_ok(&[
        "convert",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--weights",
        "mxint4",
        "--json",
    ]))
    .unwrap();
    let by_name = |n: &str| {
        report["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("w")["encoding"], "mxint4");
    assert_eq!(by_name("w")["bytes"], 64 * 32 + 64 * 2);
    // Dense: 3 padded rows x (16 + 1) bytes; sparse: 5 codes in 3 bytes + 3 scales + 12 mask bytes + 4 row
    // offsets of 2 bytes = 26; both more than the 24 bytes of f32.
    assert_eq!(by_name("narrow")["encoding"], "f32");
    assert!(by_name("narrow")["kept_because"]
        .as_str()
        .unwrap()
        .contains("not smaller"));
    assert_eq!(by_name("ids")["encoding"], "raw-i64");
    let deq = dir.path().join("d.safetensors");
    mxrt_ok(&[
        "dequantize",
        out.to_str().unwrap(),
        "-o",
        deq.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&deq).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("ids").unwrap().dtype(), safetensors::Dtype::I64);
    assert_eq!(st.tensor("ids").unwrap().data(), &ids[..]);
    assert_eq!(st.tensor("narrow").unwrap().data(), &narrow[..]);

    // --all-tensors encodes the narrow tensor too.
    let all = dir.path().join("all.mxrt");
    mxrt_ok(&[
        "convert",
        input.to_str().unwrap(),
        "-o",
        all.to_str().unwrap(),
        "--weights",
        "mxint4",
        "--all-tensors",
        "--quiet",
    ]);
    let j = inspect_json(all.to_str().unwrap());
    let narrow = j["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "narrow")
        .unwrap()
        .clone();
    assert_eq!(narrow["encoding"], "mxint4");
}

#[test]
fn bad_inputs_are_clear_errors_and_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let out = d("out.mxrt");

    let err = mxrt_err(&["convert", &d("missing.safetensors"), "-o", &out]);
    assert!(
        err.contains("missing.safetensors") && err.contains("No such file"),
        "{err}"
    );

    // NaN weight: named with its index; an existing output stays untouched; no temporary file remains.
    let nan = d("nan.safetensors");
    write_f32_tensors(
        Path::new(&nan),
        &[(
            "layer.weight",
            vec![2, 32],
            (0..64)
                .map(|i| if i == 37 { f32::NAN } else { 1.0 })
                .collect(),
        )],
    );
    std::fs::write(&out, b"previous").unwrap();
    let err = mxrt_err(&["convert", &nan, "-o", &out]);
    assert!(
        err.contains("\"layer.weight\"") && err.contains("index 37") && err.contains("NaN"),
        "{err}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"previous");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "a temporary file was left behind"
    );
    // ... unless explicitly allowed: MX turns the block into a NaN block.
    mxrt_ok(&["convert", &nan, "-o", &out, "--allow-nonfinite", "--quiet"]);
    assert!(mxrt_ok(&["verify", &out]).starts_with("OK"));
    // Fixed point cannot hold NaN even when allowed.
    let err = mxrt_err(&[
        "convert",
        &nan,
        "-o",
        &d("f.mxrt"),
        "--weights",
        "fixed:8.4",
        "--allow-nonfinite",
    ]);
    assert!(err.contains("NaN has no fixed-point code"), "{err}");

    // Duplicate tensor names across inputs.
    let a = d("a.safetensors");
    write_f32_tensors(Path::new(&a), &[("w", vec![1], vec![1.0])]);
    let err = mxrt_err(&["convert", &a, &a, "-o", &d("dup.mxrt")]);
    assert!(err.contains("\"w\" appears in both"), "{err}");

    // Unknown encoding, unknown rounding.
    let err = mxrt_err(&["convert", &a, "-o", &d("x.mxrt"), "--weights", "mxint3"]);
    assert!(err.contains("mxint3") && err.contains("mxint8"), "{err}");
    let err = mxrt_err(&["convert", &a, "-o", &d("x.mxrt"), "--rounding", "down"]);
    assert!(err.contains("nearest") && err.contains("even"), "{err}");
    let err = mxrt_err(&[
        "convert",
        &a,
        "-o",
        &d("x.mxrt"),
        "--weights",
        "sparse(mxint8)",
        "--no-sparse",
    ]);
    assert!(err.contains("contradicts"), "{err}");

    // A truncated safetensors input.
    let bytes = std::fs::read(&a).unwrap();
    let cut = d("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 2]).unwrap();
    let err = mxrt_err(&["convert", &cut, "-o", &d("x.mxrt")]);
    assert!(
        err.contains("cut.safetensors") && err.contains("not a valid safetensors file"),
        "{err}"
    );

    // Output that is also an input.
    let err = mxrt_err(&["convert", &a, "-o", &a]);
    assert!(err.contains("also an input"), "{err}");
    assert!(!Path::new(&d("x.mxrt")).exists());
}

#[test]
fn verify_inspect_and_dequantize_reject_damaged_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    write_f32_tensors(
        &input,
        &[(
            "w",
            vec![4, 64],
            (0..256).map(|i| i as f32 / 100.0).collect(),
        )],
    );
    let good = dir.path().join("good.mxrt");
    mxrt_ok(&[
        "convert",
        input.to_str().unwrap(),
        "-o",
        good.to_str().unwrap(),
        "--quiet",
    ]);
    let bytes = std::fs::read(&good).unwrap();

    let flipped = dir.path().join("flipped.mxrt");
    let mut b = bytes.clone();
    let last = b.len() - 1; // last byte of the scale plane
    b[last] ^= 0x10;
    std::fs::write(&flipped, &b).unwrap();
    let err = mxrt_err(&["verify", flipped.to_str().unwrap()]);
    assert!(
        err.contains("FAILED") && err.contains("checksum mismatch") && err.contains("\"w\""),
        "{err}"
    );
    let v: Value = serde_json::from_str(
        &String::from_utf8(mxrt(&["verify", flipped.to_str().unwrap(), "--json"]).stdout).unwrap(),
    )
    .unwrap();
    assert_eq!(v["ok"], false);
    let err = mxrt_err(&[
        "dequantize",
        flipped.to_str().unwrap(),
        "-o",
        dir.path().join("x.safetensors").to_str().unwrap(),
    ]);
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(!dir.path().join("x.safetensors").exists());

    let truncated = dir.path().join("truncated.mxrt");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    let err = mxrt_err(&["verify", truncated.to_str().unwrap()]);
    assert!(err.contains("header says the file is"), "{err}");

    let junk = dir.path().join("junk.mxrt");
    std::fs::write(&junk, vec![b'x'; 500]).unwrap();
    let err = mxrt_err(&["inspect", junk.to_str().unwrap()]);
    assert!(err.contains("not an .mxrt file"), "{err}");
}

#[test]
fn help_explains_the_encodings() {
    let help = mxrt_ok(&["convert", "--help"]);
    for word in [
        "mxint8",
        "mxfp6-e2m3",
        "fixed:W.F",
        "sparse(",
        "--all-tensors",
        "--rounding",
        "atomically",
    ] {
        assert!(help.contains(word), "convert --help lacks {word}");
    }
}

#[test]
fn a_closed_stdout_pipe_ends_quietly() {
    // `mxrt inspect x.mxrt --json | head -c 1`: the reader goes away; mxrt must not panic.
    let dir = tempfile::tempdir().unwrap();
    let file = convert_minilm(dir.path(), "mxint8");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mxrt"))
        .args(["inspect", &file, "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
