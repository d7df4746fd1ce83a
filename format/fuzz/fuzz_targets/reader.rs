//! Fuzzes the reader: any byte string must parse to a file or an error, never panic or read out of bounds;
//! whatever parses (with checksums skipped, so mutations reach the decoders) must decode without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mxrt_format::{MxrtFile, ReadOptions};

fuzz_target!(|data: &[u8]| {
    let _ = MxrtFile::parse(data, ReadOptions::default());
    if let Ok(file) = MxrtFile::parse(data, ReadOptions { verify_checksums: false }) {
        for t in file.tensors() {
            let _ = t.dequantize();
            let _ = t.zero_count();
        }
    }
});
