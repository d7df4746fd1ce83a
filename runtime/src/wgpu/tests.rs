//! The WGSL shaders against the scalar CPU reference (the shared tests of `device_tests`), on whatever adapter
//! wgpu finds (Mesa's lavapipe in CI). Without any adapter they fail with the backend's message;
//! `MXRT_SKIP_WGPU=1` skips them (printed).

use super::Gpu;

fn device(max_chunk_bytes: Option<u64>) -> Option<Gpu> {
    if std::env::var_os("MXRT_SKIP_WGPU").is_some() {
        crate::device_tests::say_skipped("skipped: MXRT_SKIP_WGPU is set");
        return None;
    }
    Some(Gpu::bare(max_chunk_bytes).unwrap_or_else(|e| panic!("{e}")))
}

crate::device_tests!();
