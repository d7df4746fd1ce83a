//! The CUDA kernels against the scalar CPU reference (the shared tests of `device_tests`), plus the MXINT8
//! dequantization kernel for every code and scale byte. They run only where a CUDA device exists and print
//! `skipped: no CUDA device` elsewhere. `kernels_compile_with_nvrtc` needs only NVRTC (no GPU): it compiles
//! every kernel for Ampere and Hopper wherever libnvrtc can be loaded.

use super::Cuda;

fn device(max_chunk_bytes: Option<u64>) -> Option<Cuda> {
    match Cuda::bare(max_chunk_bytes) {
        Ok(c) => Some(c),
        Err(crate::RuntimeError::BackendUnavailable { reason, .. }) => {
            crate::device_tests::say_skipped(&format!("skipped: no CUDA device ({reason})"));
            None
        }
        Err(e) => panic!("{e}"),
    }
}

crate::device_tests!();

#[test]
fn kernels_compile_with_nvrtc() {
    if !super::libraries_present().1 {
        crate::device_tests::say_skipped(
            "skipped: no NVRTC library (libnvrtc.so.12) to compile the kernels with",
        );
        return;
    }
    for arch in ["compute_80", "compute_90"] {
        let ptx = super::compile(arch).unwrap_or_else(|e| panic!("{e}"));
        let text = ptx.to_src();
        for k in super::KERNELS {
            assert!(
                text.contains(&format!(".entry {k}(")),
                "{arch}: kernel {k} missing from the PTX"
            );
        }
    }
}

/// MXINT8 dequantization on the device for every code -128..127 under every scale byte 0..255, bit for bit
/// against the host: q/64 · 2^(s-127), 2^-127 at s = 0 (a subnormal), NaN at s = 255.
#[test]
fn mxint8_dequantize_is_exact_for_every_code_and_scale() {
    let Some(cuda) = device(None) else { return };
    let (rows, cols) = (256usize, 256usize);
    let codes: Vec<u8> = (0..rows * cols).map(|i| (i % 256) as u8).collect();
    let scales: Vec<u8> = (0..rows * cols / 32).map(|b| (b / 8) as u8).collect();
    let got = cuda.dequantize_mxint8(&codes, &scales, rows, cols).unwrap();
    for (i, g) in got.iter().enumerate() {
        let (r, c) = (i / cols, i % cols);
        let want = f32::from(codes[i] as i8) / 64.0
            * mxrt_format::mx::scale_value(scales[r * (cols / 32) + c / 32]);
        assert!(
            g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
            "code {} scale {}: {g:e} vs {want:e}",
            codes[i] as i8,
            scales[r * (cols / 32) + c / 32]
        );
    }
}
