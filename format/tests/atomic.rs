//! The writer never leaves a partial file: it writes a temporary file in the target directory and renames it.

use mxrt_format::{
    encode_f32, write_atomically, Encoding, FileBuilder, MxrtFile, ReadOptions, Rounding,
    SparsePolicy,
};

fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn an_error_midway_leaves_the_old_file_untouched_and_no_temporary_behind() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("model.mxrt");
    std::fs::write(&target, b"old contents").unwrap();
    let err = write_atomically(&target, |w| {
        w.write_all(&[7u8; 100_000])?;
        Err(std::io::Error::other("disk full (simulated)"))
    })
    .unwrap_err();
    assert!(err.to_string().contains("disk full (simulated)"), "{err}");
    assert!(err.to_string().contains("model.mxrt"), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"old contents");
    assert_eq!(entries(dir.path()), vec!["model.mxrt".to_string()]);
}

#[test]
fn a_successful_write_replaces_the_file_completely() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("model.mxrt");
    std::fs::write(&target, vec![1u8; 1 << 16]).unwrap();
    let mut b = FileBuilder::new(serde_json::Map::new()).unwrap();
    b.push(
        encode_f32(
            "w",
            &[2],
            &[1.0, 2.0],
            Encoding::F16,
            Rounding::Nearest,
            SparsePolicy::Never,
        )
        .unwrap(),
    )
    .unwrap();
    let len = b.write_to_path(&target).unwrap();
    let bytes = std::fs::read(&target).unwrap();
    assert_eq!(bytes.len() as u64, len);
    let f = MxrtFile::parse(&bytes, ReadOptions::default()).unwrap();
    assert_eq!(f.tensor("w").unwrap().dequantize().unwrap(), vec![1.0, 2.0]);
    assert_eq!(entries(dir.path()), vec!["model.mxrt".to_string()]);
}

#[test]
fn an_unwritable_directory_is_a_clear_error() {
    let err =
        write_atomically(std::path::Path::new("/nonexistent-dir/x.mxrt"), |_| Ok(())).unwrap_err();
    assert!(err.to_string().contains("/nonexistent-dir/x.mxrt"), "{err}");
}

#[test]
fn duplicate_names_and_bad_shapes_are_refused_before_writing() {
    let mut b = FileBuilder::new(serde_json::Map::new()).unwrap();
    let t = encode_f32(
        "w",
        &[1],
        &[1.0],
        Encoding::F32,
        Rounding::Nearest,
        SparsePolicy::Never,
    )
    .unwrap();
    b.push(t.clone()).unwrap();
    assert!(matches!(
        b.push(t),
        Err(mxrt_format::Error::DuplicateName { .. })
    ));
    let err = encode_f32(
        "x",
        &[2, 2],
        &[1.0],
        Encoding::F32,
        Rounding::Nearest,
        SparsePolicy::Never,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            mxrt_format::Error::ShapeMismatch {
                expected: 4,
                actual: 1,
                ..
            }
        ),
        "{err}"
    );
    let err = encode_f32(
        "n",
        &[2],
        &[1.0, f32::NAN],
        Encoding::fixed(8, 4).unwrap(),
        Rounding::Nearest,
        SparsePolicy::Never,
    )
    .unwrap_err();
    assert!(
        matches!(err, mxrt_format::Error::Unencodable { index: 1, .. }),
        "{err}"
    );
    let err = encode_f32(
        "o",
        &[1],
        &[1e6],
        Encoding::F16,
        Rounding::Nearest,
        SparsePolicy::Never,
    )
    .unwrap_err();
    assert!(err.to_string().contains("overflows f16"), "{err}");
}

#[cfg(unix)]
#[test]
fn new_files_are_0644_and_replaced_files_keep_their_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("new.mxrt");
    write_atomically(&fresh, |w| w.write_all(b"x")).unwrap();
    assert_eq!(
        std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let kept = dir.path().join("kept.mxrt");
    std::fs::write(&kept, b"old").unwrap();
    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o640)).unwrap();
    write_atomically(&kept, |w| w.write_all(b"new")).unwrap();
    assert_eq!(
        std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert_eq!(std::fs::read(&kept).unwrap(), b"new");
}
