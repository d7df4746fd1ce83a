//! Intel AMX (Advanced Matrix Extensions) for MXINT8 × MXINT8: `tdpbssd` computes a 16 × 16 tile of exact
//! i32 block dot products per instruction, and AVX-512 applies each block's two scales. Reachable only
//! through [`enabled`], which checks the CPU (CPUID), the OS (XCR0) and asks Linux for the tile state.
//!
//! Why the roles are weights × activations and not the other way round: `tdpbssd`'s first operand is
//! row-major with K contiguous — exactly how the file stores MXINT8 weight rows, so weights are read in
//! place from the mapped file — and its second operand wants K interleaved in groups of four, which the
//! activation packer writes (`reference::mxint8_panel` documents the layout). The result tile is then
//! [weight row][activation row] and is transposed in registers on the way out.
#![allow(unsafe_code)]

use std::arch::asm;
use std::arch::x86_64::*;
use std::sync::OnceLock;

/// Whether this process may run AMX tiles: the CPU has AMX-TILE and AMX-INT8, the OS saves the tile state
/// (XCR0 bits 17 and 18) and, on Linux, granted this process the tile data permission. Checked once.
pub fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(detect)
}

fn detect() -> bool {
    if !(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("xsave")) {
        return false;
    }
    // CPUID.(EAX=7, ECX=0):EDX bit 24 = AMX-TILE, bit 25 = AMX-INT8.
    let leaf7 = __cpuid_count(7, 0);
    if leaf7.edx & (1 << 24) == 0 || leaf7.edx & (1 << 25) == 0 {
        return false;
    }
    // SAFETY: XSAVE was detected above, so XGETBV with ECX = 0 (XCR0) is a valid instruction.
    let xcr0 = unsafe { xgetbv0() };
    if xcr0 & (0b11 << 17) != 0b11 << 17 {
        return false;
    }
    request_tile_permission()
}

#[target_feature(enable = "xsave")]
unsafe fn xgetbv0() -> u64 {
    // SAFETY: the caller checked XSAVE; XCR0 always exists where XGETBV does.
    unsafe { _xgetbv(0) }
}

/// Linux enables the 8 KiB tile data state per process on request (`arch_prctl(ARCH_REQ_XCOMP_PERM,
/// XFEATURE_XTILEDATA)`); without it the first tile instruction faults. Granted once, for every thread.
#[cfg(target_os = "linux")]
fn request_tile_permission() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: the arch_prctl system call with these arguments only changes this process's permitted
    // XSAVE features; it reads and writes no user memory. `syscall` clobbers rcx and r11, declared here.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == 0
}

#[cfg(not(target_os = "linux"))]
fn request_tile_permission() -> bool {
    false // other systems: not wired up; the AVX-512 kernels run instead
}

/// The tile configuration: palette 1; tmm0 and tmm3 accumulate (16 rows × 16 i32), tmm1 and tmm4 hold 16
/// weight rows × one 32-byte block, tmm2 and tmm5 one activation panel block (8 rows of 16 × 4 bytes).
/// Two sets, so block j + 1 runs on the tile unit while AVX-512 scales block j.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn new() -> TileConfig {
        let mut c = [0u8; 64];
        c[0] = 1;
        let tiles: [(usize, u8, u16); 6] = [
            (0, 16, 64),
            (1, 16, 32),
            (2, 8, 64),
            (3, 16, 64),
            (4, 16, 32),
            (5, 8, 64),
        ];
        for (t, rows, bytes_per_row) in tiles {
            c[16 + 2 * t..18 + 2 * t].copy_from_slice(&bytes_per_row.to_le_bytes());
            c[48 + t] = rows;
        }
        TileConfig(c)
    }
}

/// Two 16 × 16 i32 result tiles, as `tilestored` writes them.
#[repr(C, align(64))]
struct ResultTiles([[i32; 256]; 2]);

/// [`super::reference::mxint8_panel`] on AMX, bit for bit: the same exact block sums, converted, scaled by
/// `w_factor * a_factor` and added with one FMA per block, in block order, into 16 accumulators per
/// activation row.
pub fn mxint8_panel(
    panel: &[u8],
    factors: &[f32],
    bpr: usize,
    w: super::PanelWeights<'_>,
    out: &mut [f32],
    ldo: usize,
) {
    let groups = super::reference::panel_groups(panel, factors, bpr, &w, out, ldo, false);
    assert!(enabled(), "mxint8_panel needs AMX");
    // SAFETY: `enabled()` confirmed AMX-TILE, AMX-INT8, AVX-512F and the OS tile state; `panel_groups`
    // checked the sizes, which is every bound `panel_tiles` relies on.
    unsafe { panel_tiles(panel, factors, bpr, w, groups, out, ldo) }
}

#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn panel_tiles(
    panel: &[u8],
    factors: &[f32],
    bpr: usize,
    w: super::PanelWeights<'_>,
    groups: usize,
    out: &mut [f32],
    ldo: usize,
) {
    let (w_codes, w_factors, bias) = (w.codes, w.factors, w.bias);
    let config = TileConfig::new();
    let mut results = ResultTiles([[0; 256]; 2]);
    let row_bytes = bpr * 32;
    let (pa, pw) = (panel.as_ptr(), w_codes.as_ptr());
    // SAFETY: a valid palette-1 configuration (6 tiles, each at most 16 rows × 64 bytes).
    unsafe { asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack)) };
    for g in 0..groups {
        let wg = pw.wrapping_add(g * 16 * row_bytes);
        let wf = &w_factors[g * 16 * bpr..(g + 1) * 16 * bpr];
        // Block j on the tile unit: 16 weight rows' codes j (stride one row), the panel's block j, the
        // exact sums into result buffer j mod 2.
        let tile = |j: usize, results: &mut ResultTiles| {
            let dst = results.0[j & 1].as_mut_ptr();
            // SAFETY: rows g*16 .. g*16+16 of `w_codes` have `row_bytes` each and 32 * j + 32 <= row_bytes,
            // so the 16 strided 32-byte reads are in bounds; the panel block is 512 bytes at 512 * j <
            // panel.len(); `dst` is a 1 KiB, 64-byte aligned buffer. Tiles 0-5 are configured above.
            unsafe {
                if j & 1 == 0 {
                    asm!(
                        "tileloadd tmm1, [{w} + {ws}*1]",
                        "tileloadd tmm2, [{a} + {as_}*1]",
                        "tilezero tmm0",
                        "tdpbssd tmm0, tmm1, tmm2",
                        "tilestored [{d} + {ds}*1], tmm0",
                        w = in(reg) wg.add(32 * j), ws = in(reg) row_bytes,
                        a = in(reg) pa.add(512 * j), as_ = in(reg) 64usize,
                        d = in(reg) dst, ds = in(reg) 64usize,
                        options(nostack),
                    );
                } else {
                    asm!(
                        "tileloadd tmm4, [{w} + {ws}*1]",
                        "tileloadd tmm5, [{a} + {as_}*1]",
                        "tilezero tmm3",
                        "tdpbssd tmm3, tmm4, tmm5",
                        "tilestored [{d} + {ds}*1], tmm3",
                        w = in(reg) wg.add(32 * j), ws = in(reg) row_bytes,
                        a = in(reg) pa.add(512 * j), as_ = in(reg) 64usize,
                        d = in(reg) dst, ds = in(reg) 64usize,
                        options(nostack),
                    );
                }
            }
        };
        let mut acc = [_mm512_setzero_ps(); 16];
        tile(0, &mut results);
        for j in 0..bpr {
            if j + 1 < bpr {
                tile(j + 1, &mut results);
            }
            // SAFETY: 16 factors of block j are in bounds (factors.len() >= 16 * bpr).
            let a_factors = unsafe { _mm512_loadu_ps(factors.as_ptr().add(16 * j)) };
            let sums = &results.0[j & 1];
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: row r of the 16 × 16 result tile: 16 i32 at 16 * r, 64-byte aligned.
                let p = unsafe { _mm512_load_si512(sums.as_ptr().add(16 * r).cast()) };
                let scale = _mm512_mul_ps(_mm512_set1_ps(wf[r * bpr + j]), a_factors);
                *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), scale, *acc);
            }
        }
        super::avx512::store_panel_outputs(&acc, bias, g, out, ldo);
    }
    // SAFETY: releases the tile state this function configured.
    unsafe { asm!("tilerelease", options(nostack)) };
}

/// Operations per iteration of [`peak_i8`]: four `tdpbssd` of 16 × 16 outputs over K = 64 (a multiply-add
/// counts two).
pub const PEAK_OPS_I8: f64 = (4 * 2 * 16 * 16 * 64) as f64;

/// The tile unit's int8 ceiling: `iterations` rounds of `tdpbssd` into four independent 16 × 16 accumulator
/// tiles (so the instruction's latency overlaps), the operands loaded once.
pub fn peak_i8(iterations: u64) -> i32 {
    assert!(enabled(), "peak_i8 needs AMX");
    // SAFETY: `enabled()` confirmed AMX-TILE, AMX-INT8 and the OS tile state.
    unsafe { peak_tiles(iterations) }
}

#[target_feature(enable = "avx512f")]
unsafe fn peak_tiles(iterations: u64) -> i32 {
    // Palette 1; tiles 0-3 accumulators (16 rows of 16 i32), 4 and 5 the operands (16 rows of 64 bytes):
    // the shapes tdpbssd needs for M = N = 16, K = 64.
    let mut c = [0u8; 64];
    c[0] = 1;
    for t in 0..6 {
        c[16 + 2 * t..18 + 2 * t].copy_from_slice(&64u16.to_le_bytes());
        c[48 + t] = 16;
    }
    let config = TileConfig(c);
    let operand = [1u8; 1024];
    let mut result = ResultTiles([[0; 256]; 2]);
    // SAFETY: a valid palette-1 configuration (6 tiles of 16 rows × 64 bytes); the operand loads read 16
    // rows of 64 bytes from the 1 KiB `operand`; tdpbssd touches only tiles; the store writes 16 rows of 64
    // bytes into the 64-byte aligned 1 KiB `result.0[0]`; the tile state is released at the end.
    unsafe {
        asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack));
        asm!(
            "tileloadd tmm4, [{a} + {s}*1]",
            "tileloadd tmm5, [{a} + {s}*1]",
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            a = in(reg) operand.as_ptr(), s = in(reg) 64usize,
            options(nostack),
        );
        for _ in 0..iterations {
            asm!(
                "tdpbssd tmm0, tmm4, tmm5",
                "tdpbssd tmm1, tmm4, tmm5",
                "tdpbssd tmm2, tmm4, tmm5",
                "tdpbssd tmm3, tmm4, tmm5",
                options(nostack, nomem),
            );
        }
        asm!(
            "tilestored [{d} + {s}*1], tmm0",
            d = in(reg) result.0[0].as_mut_ptr(), s = in(reg) 64usize,
            options(nostack),
        );
        asm!("tilerelease", options(nostack));
    }
    result.0[0][0]
}
