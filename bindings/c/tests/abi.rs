//! The C functions called as C would call them (raw pointers, explicit lengths): an MLP through `mxrt_run`
//! equal to the Session's rows, and every failure a status with a message instead of a crash.

use std::ffi::{c_char, CStr, CString};
use std::path::Path;
use std::ptr;

use mxrt_c::*;
use mxrt_runtime::{Session, SessionOptions};

fn fixture(name: &str) -> CString {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../runtime/tests/fixtures")
        .join(name);
    CString::new(p.to_str().unwrap()).unwrap()
}

fn last_error() -> String {
    // SAFETY: mxrt_last_error returns a NUL-terminated string valid until the next mxrt call here.
    unsafe { CStr::from_ptr(mxrt_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn open(name: &str) -> *mut MxrtModel {
    let path = fixture(name);
    let mut m = ptr::null_mut();
    // SAFETY: a NUL-terminated path, NULL options, a writable out pointer.
    let status = unsafe { mxrt_model_open(path.as_ptr(), ptr::null(), &mut m) };
    assert_eq!(status, MxrtStatus::Ok, "{}", last_error());
    m
}

#[test]
fn mxrt_run_gives_the_sessions_rows_and_refuses_bad_input_by_status() {
    let m = open("tiny-mlp.mxrt");
    // SAFETY: the handle is live (or NULL where the test says so); every pointer and length passed is valid for the call.
    let (features, width, task) = unsafe {
        (
            mxrt_model_input_features(m),
            mxrt_model_output_width(m),
            mxrt_model_task(m),
        )
    };
    assert_eq!((features, width, task), (16, 5, 3));
    let rows = 7;
    let x: Vec<f32> = (0..rows * features)
        .map(|i| (i as f32 * 0.11).cos())
        .collect();
    let mut out = vec![0.0f32; rows * width];
    // SAFETY: the handle is live (or NULL where the test says so); every pointer and length passed is valid for the call.
    let status = unsafe { mxrt_run(m, x.as_ptr(), x.len(), rows, out.as_mut_ptr(), out.len()) };
    assert_eq!(status, MxrtStatus::Ok, "{}", last_error());
    let session = Session::open(
        Path::new(fixture("tiny-mlp.mxrt").to_str().unwrap()),
        SessionOptions::default(),
    )
    .unwrap();
    assert_eq!(out, session.run(&x, rows).unwrap());
    // SAFETY: label 0 exists; the string lives as long as the handle.
    let label = unsafe { CStr::from_ptr(mxrt_model_label(m, 0)) };
    assert_eq!(label.to_str().unwrap(), "g");
    // SAFETY: the handle is live (or NULL where the test says so); every pointer and length passed is valid for the call.
    assert!(unsafe { mxrt_model_label(m, 5) }.is_null());

    // SAFETY: the handle is live (or NULL where the test says so); every pointer and length passed is valid for the call.
    let status = unsafe {
        mxrt_run(
            m,
            x.as_ptr(),
            x.len(),
            rows,
            out.as_mut_ptr(),
            out.len() - 1,
        )
    };
    assert_eq!(status, MxrtStatus::BufferTooSmall);
    assert!(
        last_error().contains("7 rows need 35 floats"),
        "{}",
        last_error()
    );
    let mut bad = x.clone();
    bad[3 * features + 2] = f32::NAN;
    // SAFETY: the handle is live (or NULL where the test says so); every pointer and length passed is valid for the call.
    let status = unsafe {
        mxrt_run(
            m,
            bad.as_ptr(),
            bad.len(),
            rows,
            out.as_mut_ptr(),
            out.len(),
        )
    };
    assert_eq!(status, MxrtStatus::InvalidInput);
    assert!(last_error().contains("row 3, column 2"), "{}", last_error());
    // SAFETY: the handle is live (or NULL where the test says so); every pointer and length passed is valid for the call.
    let status = unsafe {
        mxrt_run(
            m,
            x.as_ptr(),
            x.len() - 1,
            rows,
            out.as_mut_ptr(),
            out.len(),
        )
    };
    assert_eq!(status, MxrtStatus::InvalidInput);
    let text = CString::new("a").unwrap();
    let texts = [text.as_ptr()];
    // SAFETY: the handle is live (or NULL where the test says so); every pointer and length passed is valid for the call.
    let status = unsafe {
        mxrt_classify(
            m,
            texts.as_ptr(),
            ptr::null(),
            1,
            ptr::null_mut(),
            ptr::null_mut(),
            0,
            ptr::null_mut(),
        )
    };
    assert_eq!(status, MxrtStatus::InvalidInput);
    assert!(last_error().contains("MLP"), "{}", last_error());
    // SAFETY: freed once.
    unsafe { mxrt_model_free(m) };
}

#[test]
fn null_pointers_bad_strings_and_bad_files_are_statuses() {
    let mut m: *mut MxrtModel = ptr::null_mut();
    // SAFETY: the handle is live (or NULL where the test says so); every pointer and length passed is valid for the call.
    let status = unsafe { mxrt_model_open(ptr::null(), ptr::null(), &mut m) };
    assert_eq!((status, m.is_null()), (MxrtStatus::InvalidArgument, true));
    assert!(last_error().contains("path is NULL"));
    let path = fixture("tiny-mlp.mxrt");
    assert_eq!(
        // SAFETY: the handle is live (or NULL where the test says so); every pointer and length passed is valid for the call.
        unsafe { mxrt_model_open(path.as_ptr(), ptr::null(), ptr::null_mut()) },
        MxrtStatus::InvalidArgument
    );
    let not_utf8: [c_char; 3] = [0xff_u8 as c_char, 0x41, 0];
    assert_eq!(
        // SAFETY: the handle is live (or NULL where the test says so); every pointer and length passed is valid for the call.
        unsafe { mxrt_model_open(not_utf8.as_ptr(), ptr::null(), &mut m) },
        MxrtStatus::InvalidArgument
    );
    assert!(last_error().contains("not UTF-8"));
    let backend = CString::new("tpu").unwrap();
    let options = MxrtOptions {
        backend: backend.as_ptr(),
        threads: 0,
        max_batch: 0,
        max_length: 0,
    };
    assert_eq!(
        // SAFETY: the handle is live (or NULL where the test says so); every pointer and length passed is valid for the call.
        unsafe { mxrt_model_open(path.as_ptr(), &options, &mut m) },
        MxrtStatus::InvalidArgument
    );
    assert!(last_error().contains("unknown backend"), "{}", last_error());
    let missing = CString::new("/nonexistent/model.mxrt").unwrap();
    assert_eq!(
        // SAFETY: the handle is live (or NULL where the test says so); every pointer and length passed is valid for the call.
        unsafe { mxrt_model_open(missing.as_ptr(), ptr::null(), &mut m) },
        MxrtStatus::OpenFailed
    );
    assert!(last_error().contains("/nonexistent/model.mxrt"));
    // A handle that is NULL: statuses and zeros, no crash.
    // SAFETY: the handle is live (or NULL where the test says so); every pointer and length passed is valid for the call.
    assert_eq!(unsafe { mxrt_model_output_width(ptr::null()) }, 0);
    // SAFETY: the handle is live (or NULL where the test says so); every pointer and length passed is valid for the call.
    assert_eq!(unsafe { mxrt_model_task(ptr::null()) }, -1);
    // SAFETY: the handle is live (or NULL where the test says so); every pointer and length passed is valid for the call.
    let status = unsafe { mxrt_embed(ptr::null(), ptr::null(), 0, ptr::null_mut(), 0) };
    assert_eq!(status, MxrtStatus::InvalidArgument);
    // SAFETY: the handle is live (or NULL where the test says so); every pointer and length passed is valid for the call.
    unsafe { mxrt_model_free(ptr::null_mut()) };
}
