//! Kernel benchmarks (`cargo bench -p mxrt-runtime`): the linear op on BERT-base-like MiniLM shapes for every
//! weight/activation path, a GEMV over a weight matrix far larger than the L2 caches, and attention. Counters:
//! multiply-adds × 2 as "items" (so items/s is FLOP/s or integer OP/s), bytes of weights read for GEMV.
//! `scripts/bench-kernels.sh` turns the output into fractions of this machine's peaks, measured in the same
//! run (`mxrt_runtime::bench::measure_peaks`, through `mxrt bench --kernels`).

use divan::counter::{BytesCount, ItemsCount};
use divan::{black_box, Bencher};
use mxrt_format::{
    encode_f32, Encoding, FileBuilder, MxElem, MxrtFile, ReadOptions, Rounding, SparsePolicy,
};
use mxrt_runtime::bench::Cpu;
use mxrt_runtime::ActQuant;
use mxrt_runtime::TensorRef;

fn main() {
    divan::main();
}

/// Seeded values in [-1, 1) (an LCG: the benchmark needs no statistics, only fixed inputs).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// A file image holding one `[n, k]` weight in `enc` (about `zeros` of it zero, stored sparse if asked).
fn weight(n: usize, k: usize, enc: Encoding, zeros: f64, sparse: bool) -> (Vec<u8>, TensorRef) {
    let mut w = values(n * k, 3);
    for (i, v) in w.iter_mut().enumerate() {
        *v *= 0.05;
        if (i * 7919 % 1000) as f64 / 1000.0 < zeros {
            *v = 0.0;
        }
    }
    let policy = if sparse {
        SparsePolicy::Always
    } else {
        SparsePolicy::Never
    };
    let mut b = FileBuilder::new(serde_json::Map::new()).expect("metadata");
    b.push(
        encode_f32(
            "w",
            &[n as u64, k as u64],
            &w,
            enc,
            Rounding::Nearest,
            policy,
        )
        .expect("encode"),
    )
    .expect("push");
    let bytes = b.to_bytes().expect("layout");
    let t = TensorRef::from_view(
        MxrtFile::parse(&bytes, ReadOptions::default())
            .expect("valid")
            .tensor("w")
            .expect("w"),
    );
    (bytes, t)
}

const MXINT8: Encoding = Encoding::Mx(MxElem::Int8);
const FIXED_8_4: Encoding = Encoding::Fixed { width: 8, frac: 4 };

fn act(encoding: Encoding) -> ActQuant {
    ActQuant {
        encoding,
        rounding: Rounding::Nearest,
    }
}

#[allow(clippy::too_many_arguments)]
fn linear(
    bencher: Bencher,
    m: usize,
    n: usize,
    k: usize,
    enc: Encoding,
    a: ActQuant,
    zeros: f64,
    sparse: bool,
) {
    let (bytes, t) = weight(n, k, enc, zeros, sparse);
    let view = t.view(&bytes);
    let x: Vec<f32> = values(m * k, 5).iter().map(|v| v * 3.0).collect();
    let cpu = Cpu::default();
    bencher
        .counter(ItemsCount::new(2 * m * n * k))
        .bench_local(|| black_box(cpu.linear(black_box(&x), m, &view, None, a)));
}

/// The linear op on a given kernel table (`linear` uses the one detected for this CPU).
fn linear_on(
    bencher: Bencher,
    cpu: Option<Cpu>,
    m: usize,
    n: usize,
    k: usize,
    enc: Encoding,
    a: ActQuant,
) {
    let Some(cpu) = cpu else {
        eprintln!("skipped: this CPU has no AVX-512 VNNI table");
        return;
    };
    let (bytes, t) = weight(n, k, enc, 0.0, false);
    let view = t.view(&bytes);
    let x: Vec<f32> = values(m * k, 5).iter().map(|v| v * 3.0).collect();
    bencher
        .counter(ItemsCount::new(2 * m * n * k))
        .bench_local(|| black_box(cpu.linear(black_box(&x), m, &view, None, a)));
}

/// The AVX-512 VNNI kernel table without the AMX panel kernel, where this CPU has it.
fn vnni_cpu() -> Option<Cpu> {
    mxrt_runtime::bench::Kernels::available()
        .into_iter()
        .find(|k| k.isa == "avx512vnni")
        .map(|kernels| Cpu { kernels })
}

/// The FFN up-projection of MiniLM at batch 1 / seq 128: [128, 384] · [1536, 384]ᵀ.
const M: usize = 128;
const N: usize = 1536;
const K: usize = 384;

#[divan::bench]
fn gemm_f32_weights_f32_activations(b: Bencher) {
    linear(b, M, N, K, Encoding::F32, ActQuant::NONE, 0.0, false);
}

#[divan::bench]
fn gemm_mxint8_weights_f32_activations(b: Bencher) {
    linear(b, M, N, K, MXINT8, ActQuant::NONE, 0.0, false);
}

#[divan::bench]
fn gemm_mxint8_weights_mxint8_activations(b: Bencher) {
    linear(b, M, N, K, MXINT8, act(MXINT8), 0.0, false);
}

/// The same product on the AVX-512 VNNI table (no AMX), for the speed-up of the tile unit in one process.
#[divan::bench]
fn gemm_mxint8_weights_mxint8_activations_vnni(b: Bencher) {
    linear_on(b, vnni_cpu(), M, N, K, MXINT8, act(MXINT8));
}

/// MiniLM's FFN up-projection at batch 32 / seq 128: [4096, 384] · [1536, 384]ᵀ.
#[divan::bench(sample_count = 30)]
fn gemm_b32_f32_weights_f32_activations(b: Bencher) {
    linear(b, 32 * M, N, K, Encoding::F32, ActQuant::NONE, 0.0, false);
}

#[divan::bench(sample_count = 30)]
fn gemm_b32_mxint8_weights_mxint8_activations(b: Bencher) {
    linear(b, 32 * M, N, K, MXINT8, act(MXINT8), 0.0, false);
}

#[divan::bench(sample_count = 30)]
fn gemm_b32_mxint8_weights_mxint8_activations_vnni(b: Bencher) {
    linear_on(b, vnni_cpu(), 32 * M, N, K, MXINT8, act(MXINT8));
}

/// MiniLM's FFN down-projection at batch 32 / seq 128: [4096, 1536] · [384, 1536]ᵀ.
#[divan::bench(sample_count = 30)]
fn gemm_b32_down_mxint8_weights_mxint8_activations(b: Bencher) {
    linear(b, 32 * M, K, N, MXINT8, act(MXINT8), 0.0, false);
}

#[divan::bench]
fn gemm_fixed8_weights_fixed8_activations(b: Bencher) {
    linear(b, M, N, K, FIXED_8_4, act(FIXED_8_4), 0.0, false);
}

#[divan::bench]
fn gemm_sparse90_f32_weights(b: Bencher) {
    linear(b, M, N, K, Encoding::F32, ActQuant::NONE, 0.9, true);
}

/// GEMV (batch 1, seq 1) over a [16384, 4096] weight: 64 MiB as MXINT8 (68 MB with scales), 256 MiB as f32,
/// both far beyond the 2 × 2 MiB of L2 (the L3 this VM reports is 480 MiB, shared by the host: no matrix
/// that fits in RAM comfortably beats it). Bytes counted: the stored weight bytes read once per call.
const GN: usize = 16384;
const GK: usize = 4096;

fn gemv(bencher: Bencher, enc: Encoding) {
    let (bytes, t) = weight(GN, GK, enc, 0.0, false);
    let view = t.view(&bytes);
    let x = values(GK, 9);
    let cpu = Cpu::default();
    bencher
        .counter(BytesCount::new(t.stored_bytes() as usize))
        .bench_local(|| black_box(cpu.linear(black_box(&x), 1, &view, None, ActQuant::NONE)));
}

#[divan::bench(sample_count = 20)]
fn gemv_large_mxint8(b: Bencher) {
    gemv(b, MXINT8);
}

#[divan::bench(sample_count = 20)]
fn gemv_large_f32(b: Bencher) {
    gemv(b, Encoding::F32);
}

/// A [16384, 16384] GEMV: 277 MB as MXINT8 (inside the 480 MiB L3 this VM reports), 1.07 GB as f32 (not):
/// what storing MXINT8 buys when only the compressed weights fit in the last-level cache.
const LN: usize = 16384;

fn gemv_sized(bencher: Bencher, n: usize, k: usize, enc: Encoding) {
    let (bytes, t) = weight(n, k, enc, 0.0, false);
    let view = t.view(&bytes);
    let x = values(k, 9);
    let cpu = Cpu::default();
    bencher
        .counter(BytesCount::new(t.stored_bytes() as usize))
        .bench_local(|| black_box(cpu.linear(black_box(&x), 1, &view, None, ActQuant::NONE)));
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn gemv_l3_mxint8(b: Bencher) {
    gemv_sized(b, LN, LN, MXINT8);
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn gemv_l3_f32(b: Bencher) {
    gemv_sized(b, LN, LN, Encoding::F32);
}

/// A [32768, 16384] MXINT8 GEMV: 554 MB stored, larger than the reported L3, so it streams from DRAM.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn gemv_dram_mxint8(b: Bencher) {
    gemv_sized(b, 2 * LN, LN, MXINT8);
}

/// Masked self-attention of one MiniLM layer at batch 1 / seq 128 (12 heads of 32): QKᵀ and PV.
#[divan::bench]
fn attention_b1_s128(b: Bencher) {
    let (seq, heads, dim) = (128, 12, 32);
    let (q, k, v) = (
        values(seq * heads * dim, 1),
        values(seq * heads * dim, 2),
        values(seq * heads * dim, 3),
    );
    let mask = vec![1u8; seq];
    let cpu = Cpu::default();
    b.counter(ItemsCount::new(2 * 2 * heads * seq * seq * dim))
        .bench_local(|| black_box(cpu.attention(&q, &k, &v, &mask, 1, seq, heads, dim)));
}
