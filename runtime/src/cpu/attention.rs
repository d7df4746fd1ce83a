//! Multi-head self-attention on the CPU: per (sequence, head), `softmax(Q Kᵀ / √dim, masked) V` through
//! the table's packed f32 GEMM and masked softmax, with per-thread working buffers.

use rayon::prelude::*;

use crate::cpu::buffers::AlignedBuffer;
use crate::cpu::frame::Cpu;
use crate::cpu::rows::PARALLEL_WORK;

impl Cpu {
    /// Multi-head self-attention. `q`, `k`, `v`: `[batch * seq, heads * dim]`; `mask`: `[batch, seq]`, 1 for
    /// tokens and 0 for padding (padded keys get no weight). One head's `[seq, seq]` score tile exists per
    /// worker at a time. Returns `[batch * seq, heads * dim]`.
    ///
    /// With at least two sequences per core, each core takes whole sequences and writes every head's output
    /// in place; otherwise (batch 1) the heads are spread over the cores and copied into place after.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        mask: &[u8],
        batch: usize,
        seq: usize,
        heads: usize,
        dim: usize,
    ) -> Vec<f32> {
        let width = heads * dim;
        let mut out = crate::cpu::buffers::take(batch * seq * width); // every element written below
        if out.is_empty() {
            return out;
        }
        let parallel = batch * heads * seq * seq * dim >= PARALLEL_WORK;
        let threads = rayon::current_num_threads();
        if !parallel || threads == 1 || batch >= 2 * threads {
            let per_sequence = |(b, rows): (usize, &mut [f32])| {
                for h in 0..heads {
                    self.attention_head(
                        [q, k, v],
                        mask,
                        (b, h),
                        (seq, heads, dim),
                        &mut rows[h * dim..],
                        width,
                    );
                }
            };
            if parallel {
                out.par_chunks_mut(seq * width)
                    .enumerate()
                    .for_each(per_sequence);
            } else {
                out.chunks_mut(seq * width)
                    .enumerate()
                    .for_each(per_sequence);
            }
            return out;
        }
        let tiles: Vec<Vec<f32>> = (0..batch * heads)
            .into_par_iter()
            .map(|bh| {
                let mut tile = vec![0.0f32; seq * dim];
                self.attention_head(
                    [q, k, v],
                    mask,
                    (bh / heads, bh % heads),
                    (seq, heads, dim),
                    &mut tile,
                    dim,
                );
                tile
            })
            .collect();
        for (bh, t) in tiles.iter().enumerate() {
            let (b, h) = (bh / heads, bh % heads);
            for i in 0..seq {
                out[(b * seq + i) * width + h * dim..][..dim]
                    .copy_from_slice(&t[i * dim..(i + 1) * dim]);
            }
        }
        out
    }

    /// Head `h` of sequence `b`: `softmax(Q Kᵀ / √dim, masked) V` into `out` (`seq` rows `ldo` apart, `dim`
    /// values each).
    #[allow(clippy::too_many_arguments)]
    fn attention_head(
        &self,
        [q, k, v]: [&[f32]; 3],
        mask: &[u8],
        (b, h): (usize, usize),
        (seq, heads, dim): (usize, usize, usize),
        out: &mut [f32],
        ldo: usize,
    ) {
        let width = heads * dim;
        let scale = 1.0 / (dim as f32).sqrt();
        let at = |i: usize| (b * seq + i) * width + h * dim;
        let keep = &mask[b * seq..(b + 1) * seq];
        // Taken out for the head and put back after (pool work run in between would find an empty set).
        let mut scratch = HEAD_SCRATCH.take();
        {
            let sc = &mut scratch;
            // This head's queries, contiguous [seq, dim].
            sc.q.clear();
            for i in 0..seq {
                sc.q.extend_from_slice(&q[at(i)..at(i) + dim]);
            }
            // Keys transposed into a packed [dim, seq rounded up to 16] panel: S = Q Kᵀ by broadcasting.
            // Only the padding columns need zeros: every other element is written here (so a buffer
            // left from the last head is not cleared first).
            let key_stride = seq.div_ceil(16) * 16;
            let kt = sc.kt.resize_stale(dim * key_stride);
            for j in 0..seq {
                for (t, &x) in k[at(j)..at(j) + dim].iter().enumerate() {
                    kt[t * key_stride + j] = x;
                }
            }
            for row in kt.chunks_mut(key_stride) {
                row[seq..].fill(0.0);
            }
            // Values as the packed [seq, stride] panel (stride: dim rounded up to 16, zero columns past
            // dim).
            let stride = dim.div_ceil(16) * 16;
            let values = sc.v.resize_stale(seq * stride);
            for (j, row) in values.chunks_mut(stride).take(seq).enumerate() {
                row[..dim].copy_from_slice(&v[at(j)..at(j) + dim]);
                row[dim..].fill(0.0);
            }
            sc.scores.resize(seq * seq, 0.0); // every score is written by the product
            let kt = sc.kt.as_slice();
            use crate::cpu::kernels::Epilogue;
            const NONE: Epilogue<'static> = Epilogue::NONE;
            (self.kernels.gemm_f32_packed)(&sc.q, seq, dim, kt, seq, &mut sc.scores, seq, NONE);
            for row in sc.scores.chunks_mut(seq) {
                (self.kernels.softmax_masked)(row, keep, scale);
            }
            // Output = P V: the probabilities broadcast against the packed values.
            (self.kernels.gemm_f32_packed)(
                &sc.scores,
                seq,
                seq,
                sc.v.as_slice(),
                dim,
                out,
                ldo,
                NONE,
            );
        }
        HEAD_SCRATCH.set(scratch);
    }
}

/// One attention head's working buffers, one set per thread, reused across heads and inferences: made per
/// parallel task, their allocation and zero-fill (a [seq, seq] score tile among them) took page faults and
/// memsets on every head at batch 1. Each thread keeps them (about 112 KB at 128 tokens, the score
/// tile growing with seq²). The packed keys and values start on 64-byte boundaries (the GEMM loads them
/// as whole vectors).
#[derive(Default)]
struct HeadScratch {
    q: Vec<f32>,
    kt: AlignedBuffer,
    v: AlignedBuffer,
    scores: Vec<f32>,
}

thread_local! {
    static HEAD_SCRATCH: std::cell::RefCell<HeadScratch> = std::cell::RefCell::new(HeadScratch::default());
}
