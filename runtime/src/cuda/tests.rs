//! The CUDA kernels against the scalar CPU reference (the shared tests of `device_tests`), plus the MXINT8
//! dequantization kernel for every code and scale byte. They run only where a CUDA device exists and print
//! `skipped: no CUDA device` elsewhere; with `MXRT_REQUIRE_CUDA=1` a missing device fails them instead
//! (`scripts/test.sh` runs them so on the CPU emulator of the driver, `tools/cuda-emu`; `scripts/gpu-check.sh` on
//! a GPU). `kernels_compile_with_nvrtc` needs only NVRTC (no GPU): it compiles every kernel for Ampere and
//! Hopper, as PTX and as the CUBIN a device loads, wherever libnvrtc can be loaded.

use super::Cuda;

fn device(max_chunk_bytes: Option<u64>) -> Option<Cuda> {
    match Cuda::bare(max_chunk_bytes) {
        Ok(c) => Some(c),
        Err(crate::RuntimeError::BackendUnavailable { reason, .. }) => {
            if std::env::var_os("MXRT_REQUIRE_CUDA").is_some() {
                panic!("MXRT_REQUIRE_CUDA is set but there is no CUDA device: {reason}");
            }
            crate::device_tests::say_skipped(&format!("skipped: no CUDA device ({reason})"));
            None
        }
        Err(e) => panic!("{e}"),
    }
}

crate::device_tests!();

#[test]
fn kernels_compile_with_nvrtc() {
    use super::Output;
    if !super::libraries_present().1 {
        // scripts/test.sh fetches NVRTC and sets this: there, a library that does not load is a failure.
        if std::env::var_os("MXRT_REQUIRE_NVRTC").is_some() {
            panic!("MXRT_REQUIRE_NVRTC is set but no NVRTC library (libnvrtc.so.12) loads");
        }
        crate::device_tests::say_skipped(
            "skipped: no NVRTC library (libnvrtc.so.12) to compile the kernels with",
        );
        return;
    }
    for (arch, sm) in [("compute_80", "sm_80"), ("compute_90", "sm_90")] {
        let ptx = super::compile(arch, Output::Ptx).unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&ptx);
        // What the device loads: machine code, an ELF file with every kernel's symbol.
        let cubin = super::compile(sm, Output::Cubin).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&cubin[..4], b"\x7fELF", "{sm}: not an ELF image");
        for k in super::KERNELS {
            assert!(
                text.contains(&format!(".entry {k}(")),
                "{arch}: kernel {k} missing from the PTX"
            );
            let symbol = format!("\0{k}\0");
            assert!(
                cubin.windows(symbol.len()).any(|w| w == symbol.as_bytes()),
                "{sm}: kernel {k} missing from the CUBIN"
            );
        }
        // fmad off: the only fused multiply-adds are the source's own fmaf.
        assert!(
            text.contains("fma.rn.f32"),
            "{arch}: the explicit fmaf calls should compile to fma.rn.f32"
        );
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

/// On the CPU emulator of the driver only (a GPU leaves such reads undefined): a kernel that reads one byte
/// past a buffer ends its launch with CUDA_ERROR_ILLEGAL_ADDRESS and a report naming the kernel, the block,
/// the thread and the buffer — so the kernel tests above passing under emulation means no kernel read or
/// wrote outside its buffers on their inputs. The bad launch runs in a child process: like a GPU's, the
/// emulator's context stays failed afterwards.
#[test]
fn the_emulator_reports_a_read_past_the_end_of_a_buffer() {
    let Some(cuda) = device(None) else { return };
    if !cuda.description.contains("emulator") {
        // Not "skipped": scripts/gpu-check.sh fails a kernel-test run that skipped anything.
        crate::device_tests::say_skipped(
            "not run on a GPU: it checks the emulator's bounds checks (a GPU leaves such reads undefined)",
        );
        return;
    }
    drop(cuda);
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "cuda::tests::out_of_bounds_launch",
            "--exact",
            "--ignored",
            "--test-threads",
            "1",
        ])
        .env("MXRT_CUDA_OUT_OF_BOUNDS_CHILD", "1")
        .output()
        .unwrap();
    // The emulator reports on stderr; the test harness prints the child's panic (the driver error) on stdout.
    let stderr = String::from_utf8_lossy(&child.stderr).into_owned()
        + &String::from_utf8_lossy(&child.stdout);
    assert!(
        !child.status.success(),
        "the bad launch succeeded: {stderr}"
    );
    // Block 16 is the first to read past the 4096 codes; which of its threads faults first depends on the
    // emulator's order (MXRT_CUDA_EMULATOR_ORDER).
    assert!(
        stderr.contains("mxrt CUDA emulator: mxint8_dequantize, block (16, 0, 0), thread ("),
        "{stderr}"
    );
    assert!(
        stderr.contains("past the end of a 4096-byte device allocation"),
        "{stderr}"
    );
    assert!(stderr.contains("CUDA_ERROR_ILLEGAL_ADDRESS"), "{stderr}");
}

/// The child of `the_emulator_reports_a_read_past_the_end_of_a_buffer`: a 256 × 256 dequantization of a
/// buffer that holds 4096 codes (16 blocks of 256 threads read inside it).
#[test]
#[ignore = "run in a child process by the_emulator_reports_a_read_past_the_end_of_a_buffer"]
fn out_of_bounds_launch() {
    if std::env::var_os("MXRT_CUDA_OUT_OF_BOUNDS_CHILD").is_none() {
        return;
    }
    let cuda = device(None).expect("the parent checked the device");
    // SAFETY: deliberately not: the codes are 16 times too few. Only ever run on the emulator (the parent test
    // checks), which turns the read past their end into an error instead of undefined behaviour.
    let read =
        unsafe { cuda.dequantize_mxint8_unchecked(&[1u8; 4096], &[127u8; 256 * 8], 256, 256) };
    read.map(|_| ()).unwrap();
}

/// The one list of CUDA kernels is the `extern "C" __global__` functions of `kernels/*.cu`: the host loads
/// exactly those (`KERNELS`), and the driver emulator (`tools/cuda-emu/kernels.cpp`) includes the sources in
/// the host's order and has exactly one launcher table entry for each.
#[test]
fn host_and_emulator_kernel_lists_match_the_sources() {
    use std::collections::BTreeSet;
    let defined: BTreeSet<&str> = super::SOURCES
        .iter()
        .flat_map(|s| s.split("extern \"C\" __global__ void ").skip(1))
        .filter_map(|rest| rest.split('(').next())
        .map(str::trim)
        .collect();
    let host: BTreeSet<&str> = super::KERNELS.iter().copied().collect();
    assert_eq!(
        host.len(),
        super::KERNELS.len(),
        "KERNELS lists a kernel twice"
    );
    assert_eq!(
        host, defined,
        "KERNELS (host) differs from the kernels kernels/*.cu define"
    );

    let emulator = include_str!("../../../tools/cuda-emu/kernels.cpp");
    let table = emulator
        .split("const emu::KernelEntry TABLE[] = {")
        .nth(1)
        .and_then(|t| t.split("};").next())
        .expect("tools/cuda-emu/kernels.cpp has its launcher TABLE");
    let entries: Vec<(&str, &str)> = table
        .split("{\"")
        .skip(1)
        .filter_map(|e| {
            let (name, rest) = e.split_once("\",")?;
            Some((name, rest.split('}').next()?.trim()))
        })
        .collect();
    let emulated: BTreeSet<&str> = entries.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        entries.len(),
        emulated.len(),
        "the emulator's table lists a kernel twice"
    );
    assert_eq!(
        emulated, defined,
        "the emulator's launcher table differs from kernels/*.cu"
    );
    for (name, launcher) in &entries {
        assert_eq!(
            *launcher,
            format!("launch_{name}"),
            "the entry of {name} calls another launcher"
        );
    }
    // The emulator compiles the sources in the order the host concatenates them for NVRTC.
    let included: Vec<&str> = emulator
        .lines()
        .filter_map(|l| l.strip_prefix("#include \"../../kernels/"))
        .filter_map(|l| l.strip_suffix('"'))
        .collect();
    assert_eq!(
        included,
        super::SOURCE_FILES,
        "the emulator includes kernels/ in another order than the host"
    );
}
