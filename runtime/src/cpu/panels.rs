//! The MXINT8 × MXINT8 linear op on a kernel table with `mxint8_panel` (AVX2, AVX-VNNI, AVX-512 VNNI, AMX):
//! activations arrive packed in panels of 16 rows; weight rows are taken 16 at a time straight from the
//! mapped file. A ragged last group of weight rows goes through a zero-padded copy of those few rows, a
//! ragged last panel through a buffer.

use std::borrow::Cow;

use rayon::prelude::*;

use crate::cpu::kernels::ragged::Elementwise;
use crate::cpu::kernels::reference::PANEL_ROWS;
use crate::cpu::kernels::{Kernels, MxPanel, PanelWeights};
use crate::cpu::quant::MxActs;
use crate::cpu::rows::{add_bias_rows, PARALLEL_WORK};
use crate::ops::ActQuant;
use crate::weights::WeightView;
use mxrt_format::Encoding;

/// Weight rows per kernel group (the tile height).
const GROUP_ROWS: usize = 16;

/// `y = post(acts · Wᵀ + b)` for `m` packed activation rows and dense MXINT8 `w`; returns `[m, n]`. `post`
/// (an elementwise activation) runs on each panel's rows right after they are computed.
///
/// Many panels: each core takes whole panels and walks every weight group (the panel stays in L1, the
/// weights stream from L2). Fewer panels than twice the cores (short inputs): the weight groups are split
/// too, so both cores work at batch 1.
pub(crate) fn linear_mxint8_panels(
    kernel: MxPanel,
    acts: &MxActs,
    m: usize,
    w: &WeightView<'_>,
    bias: Option<&[f32]>,
    post: Option<Elementwise>,
) -> Vec<f32> {
    let (n, kdim) = (w.rows(), w.cols());
    // Every element is written below (each panel row, every weight group).
    let mut out = crate::cpu::buffers::take(m * n);
    let Some((w_codes, w_factors)) = panel_weights(w) else {
        unreachable!(
            "the integer panel path is only taken for dense MXINT8 or whole-block fixed:8 weights"
        )
    };
    if n == 0 || m == 0 {
        return out;
    }
    if kdim == 0 {
        // No inputs: every output is its bias (the kernel needs at least one block).
        out.fill(0.0);
        add_bias_rows(&mut out, bias);
        return out;
    }
    let weights = Groups::new(
        &w_codes,
        w_factors,
        n,
        kdim.div_ceil(32),
        (kernel.unsigned_bias, w.prepared()),
        bias,
    );
    let panels = m.div_ceil(PANEL_ROWS);
    let parallel = n * m * kdim >= PARALLEL_WORK;
    let threads = rayon::current_num_threads();
    let groups = weights.count();
    let split = if parallel && panels < 2 * threads {
        (2 * threads).div_ceil(panels).min(groups)
    } else {
        1
    };
    if split == 1 {
        let per_panel = |buf: &mut Vec<f32>, (p, rows): (usize, &mut [f32])| {
            weights.run(kernel, acts, p, 0..groups, rows, buf); // with the bias
            if let Some(f) = post {
                f.apply(rows); // while the panel's outputs are still in cache
            }
        };
        if parallel {
            out.par_chunks_mut(PANEL_ROWS * n)
                .enumerate()
                .for_each_init(Vec::new, per_panel);
        } else {
            let mut buf = Vec::new();
            out.chunks_mut(PANEL_ROWS * n)
                .enumerate()
                .for_each(|task| per_panel(&mut buf, task));
        }
        return out;
    }
    // Few panels: (panel, part of the weight groups) tasks, each into its own [rows, part width] block.
    let per_part = groups.div_ceil(split);
    let tasks: Vec<(usize, std::ops::Range<usize>)> = (0..panels)
        .flat_map(|p| {
            (0..groups)
                .step_by(per_part)
                .map(move |g| (p, g..(g + per_part).min(groups)))
        })
        .collect();
    let blocks: Vec<Vec<f32>> = tasks
        .par_iter()
        .map_init(Vec::new, |buf, (p, range)| {
            let rows = PANEL_ROWS.min(m - p * PANEL_ROWS);
            let width = (range.end * GROUP_ROWS).min(n) - range.start * GROUP_ROWS;
            let mut block = vec![0.0f32; rows * width];
            weights.run_into(kernel, acts, *p, range.clone(), &mut block, width, buf);
            block
        })
        .collect();
    for ((p, range), block) in tasks.iter().zip(&blocks) {
        let c0 = range.start * GROUP_ROWS;
        let width = (range.end * GROUP_ROWS).min(n) - c0;
        for (i, src) in block.chunks(width.max(1)).enumerate() {
            let row = p * PANEL_ROWS + i;
            out[row * n + c0..row * n + c0 + width].copy_from_slice(src);
        }
    }
    if let Some(f) = post {
        f.apply(&mut out); // the kernel added the bias
    }
    out
}

/// `y = post(quant(x) · Wᵀ + b)` for `fixed:8.Fa` activations against `fixed:8.Fw` weights (dense or sparse)
/// with whole-block rows, on the table's panel kernel: the same exact integer block sums as MXINT8, with the
/// power-of-two factors 2^-Fw and 2^-Fa. `None` (the caller's other routes then run) without a panel kernel,
/// for other encodings, and where an activation code is −128 and the kernel cannot take it.
pub(crate) fn linear_fixed8(
    kernels: &Kernels,
    x: &[f32],
    m: usize,
    w: &WeightView<'_>,
    bias: Option<&[f32]>,
    act: ActQuant,
    post: Option<Elementwise>,
) -> Option<Vec<f32>> {
    let (Some(kernel), Encoding::Fixed { width: 8, frac }) = (kernels.mxint8_panel, act.encoding)
    else {
        return None;
    };
    let weights_fit = matches!(w.tensor.encoding, Encoding::Fixed { width: 8, .. })
        && w.cols().is_multiple_of(32);
    if !weights_fit || m == 0 {
        return None;
    }
    let mut acts = MxActs {
        codes: Vec::new(),
        factors: Vec::new(),
        panels: true,
    };
    let minus_128 = crate::cpu::quant::quantize_fixed8_panels(
        x,
        w.cols(),
        (frac, act.rounding),
        kernels.fixed8_codes,
        &mut acts.codes,
        &mut acts.factors,
    );
    if minus_128 && !kernel.minus_128_activations {
        return None;
    }
    Some(linear_mxint8_panels(kernel, &acts, m, w, bias, post))
}

/// The MXINT8 pieces of a fused feed-forward block: the weights and biases of both layers, the GELU and
/// activation quantizer kernels, and the rounding of the second layer's input.
pub(crate) struct FeedForward<'a, 'w> {
    pub up: &'a WeightView<'w>,
    pub up_bias: Option<&'a [f32]>,
    pub down: &'a WeightView<'w>,
    pub down_bias: Option<&'a [f32]>,
    pub gelu: Elementwise,
    pub quantize_block: crate::cpu::kernels::QuantizeBlock,
    pub quantize_panel_row: Option<crate::cpu::kernels::QuantizePanelRow>,
    pub down_rounding: mxrt_format::Rounding,
}

/// `down(quantize(gelu(up(acts))))` one panel of 16 rows at a time: the panel's up-projection, its GELU and
/// its quantization for the down-projection stay in this core's cache, and the `[m, intermediate]`
/// activations never exist as a whole. Every step is the one the unfused ops take on the same rows (the
/// quantizer works per row, so quantizing one panel gives the panel the whole-matrix quantizer would), so
/// the result is bit for bit the unfused one. The caller guarantees enough panels to keep every core busy.
pub(crate) fn feed_forward_panels(
    kernel: MxPanel,
    acts: &MxActs,
    m: usize,
    ff: &FeedForward<'_, '_>,
) -> Vec<f32> {
    let (hidden_width, n) = (ff.up.rows(), ff.down.rows());
    debug_assert_eq!(ff.down.cols(), hidden_width);
    let (Some((up_codes, up_scales)), Some((down_codes, down_scales))) =
        (ff.up.mxint8_rows_all(), ff.down.mxint8_rows_all())
    else {
        unreachable!("the fused feed-forward block is only taken for dense MXINT8 weights")
    };
    let mut out = crate::cpu::buffers::take(m * n); // every element written below
    if n == 0 || m == 0 || hidden_width == 0 {
        out.fill(0.0);
        add_bias_rows(&mut out, ff.down_bias);
        return out;
    }
    let up = Groups::new(
        up_codes,
        factors_of(ff.up, up_scales),
        hidden_width,
        ff.up.cols().div_ceil(32),
        (kernel.unsigned_bias, ff.up.prepared()),
        ff.up_bias,
    );
    let down = Groups::new(
        down_codes,
        factors_of(ff.down, down_scales),
        n,
        hidden_width.div_ceil(32),
        (kernel.unsigned_bias, ff.down.prepared()),
        ff.down_bias,
    );
    out.par_chunks_mut(PANEL_ROWS * n)
        .enumerate()
        .for_each(|(p, rows)| {
            // Taken out for the panel and put back after: a task that ran in between (pool work this
            // thread picked up) would find an empty set, never a borrowed one.
            let mut scratch = PANEL_SCRATCH.take();
            feed_forward_panel(kernel, acts, ff, (&up, &down), &mut scratch, (p, rows));
            PANEL_SCRATCH.set(scratch);
        });
    out
}

/// One panel of [`feed_forward_panels`] into its output rows `rows`.
fn feed_forward_panel(
    kernel: MxPanel,
    acts: &MxActs,
    ff: &FeedForward<'_, '_>,
    (up, down): (&Groups<'_>, &Groups<'_>),
    s: &mut PanelScratch,
    (p, rows): (usize, &mut [f32]),
) {
    let (hidden_width, n) = (ff.up.rows(), ff.down.rows());
    {
        {
            let real = rows.len() / n;
            s.hidden.clear();
            s.hidden.resize(real * hidden_width, 0.0);
            up.run(kernel, acts, p, 0..up.count(), &mut s.hidden, &mut s.buf); // with the bias
            ff.gelu.apply(&mut s.hidden);
            crate::cpu::quant::quantize_mxint8_panels(
                &s.hidden,
                hidden_width,
                ff.down_rounding,
                (ff.quantize_block, ff.quantize_panel_row),
                &mut s.codes,
                &mut s.factors,
            );
            let panel = MxActs {
                codes: std::mem::take(&mut s.codes),
                factors: std::mem::take(&mut s.factors),
                panels: true,
            };
            down.run(kernel, &panel, 0, 0..down.count(), rows, &mut s.buf); // with the bias
            (s.codes, s.factors) = (panel.codes, panel.factors);
        }
    }
}

/// A fused feed-forward panel's working buffers, one set per thread, kept across panels and inferences
/// (at MiniLM's width about 130 KB per thread). Made per parallel task, they were allocated and freed on
/// the pool's workers in every inference, and the workers' allocator arenas gave those pages back to the
/// system each time: page faults and zero-fills in every layer.
#[derive(Default)]
struct PanelScratch {
    hidden: Vec<f32>,
    buf: Vec<f32>,
    codes: Vec<u8>,
    factors: Vec<f32>,
}

thread_local! {
    static PANEL_SCRATCH: std::cell::RefCell<PanelScratch> =
        std::cell::RefCell::new(PanelScratch::default());
}

/// Blocks per parallel chunk of the per-call weight preparation (factors, unsigned bias): below two chunks
/// it runs on the calling thread.
const PREPARE_CHUNK_BLOCKS: usize = 8192;

/// Each MXINT8 block's factor (its scale, 2^e; the codes' 1/64 is in the activations' factors); split over
/// the cores for large matrices. The model prepares them at open (`cpu::prepared`); this runs per call
/// only for views without them.
pub(crate) fn mx_factors(scales: &[u8]) -> Vec<f32> {
    let mut out = vec![0.0f32; scales.len()];
    let convert = |(dst, src): (&mut [f32], &[u8])| {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = mxrt_format::mx::scale_value(s);
        }
    };
    if scales.len() >= 2 * PREPARE_CHUNK_BLOCKS {
        out.par_chunks_mut(PREPARE_CHUNK_BLOCKS)
            .zip(scales.par_chunks(PREPARE_CHUNK_BLOCKS))
            .for_each(convert);
    } else {
        convert((&mut out, scales));
    }
    out
}

/// The factors of `w`'s MXINT8 blocks (`scales`): prepared at open where the view has them, else derived
/// now.
fn factors_of<'a>(w: &WeightView<'a>, scales: &[u8]) -> Cow<'a, [f32]> {
    match w.prepared() {
        Some(p) => Cow::Borrowed(&p.factors),
        None => Cow::Owned(mx_factors(scales)),
    }
}

/// A weight matrix's codes and its blocks' factors, each in place or made for the call.
type CodesAndFactors<'a> = (Cow<'a, [u8]>, Cow<'a, [f32]>);

/// The weight codes the panel kernel reads and each block's factor: dense MXINT8, or dense 8-bit fixed
/// point with whole-block rows, whose codes are the same kind of i8 and whose blocks all share the factor
/// 2^-F (the activations then carry 2^-F of their own, not MXINT8's 1/4096).
fn panel_weights<'a>(w: &'a WeightView<'_>) -> Option<CodesAndFactors<'a>> {
    if let Some((codes, scales)) = w.mxint8_rows_all() {
        return Some((Cow::Borrowed(codes), factors_of(w, scales)));
    }
    let (codes, frac) = w.fixed8_rows_all()?;
    let blocks = w.rows() * w.cols() / 32;
    Some((codes, Cow::Owned(vec![2f32.powi(-i32::from(frac)); blocks])))
}

/// Each whole block's unsigned bias by the kernel table's routine `f`, split over the cores for large
/// matrices.
pub(crate) fn unsigned_bias_of(codes: &[u8], f: crate::cpu::kernels::UnsignedBias) -> Vec<i32> {
    let mut out = vec![0; codes.len() / 32];
    if out.len() >= 2 * PREPARE_CHUNK_BLOCKS {
        out.par_chunks_mut(PREPARE_CHUNK_BLOCKS)
            .zip(codes.par_chunks(PREPARE_CHUNK_BLOCKS * 32))
            .for_each(|(dst, src)| f(src, dst));
    } else {
        f(codes, &mut out);
    }
    out
}

/// A weight matrix as the panel kernel reads it: whole groups of 16 rows in place, and the ragged last
/// group (if any) as a zero-padded copy of its rows; each block's factor, and its unsigned bias where the
/// kernel reads activations as unsigned (both prepared at open for a model's layers; computed here, split
/// over the cores, for a view without them).
struct Groups<'a> {
    codes: &'a [u8],
    factors: Cow<'a, [f32]>,
    unsigned_bias: Cow<'a, [i32]>,
    /// Each weight row's bias (empty: none), added by the kernel.
    bias: &'a [f32],
    tail_codes: Vec<u8>,
    tail_factors: Vec<f32>,
    tail_bias: Vec<i32>,
    /// The ragged group's bias, zero-padded to 16 (empty: none).
    tail_row_bias: Vec<f32>,
    n: usize,
    bpr: usize,
    full: usize,
}

impl<'a> Groups<'a> {
    /// `unsigned_bias`: the kernel's bias routine (`None`: it needs none) and what the view has prepared.
    fn new(
        codes: &'a [u8],
        factors: Cow<'a, [f32]>,
        n: usize,
        bpr: usize,
        unsigned_bias: (
            Option<crate::cpu::kernels::UnsignedBias>,
            Option<&'a crate::weights::PreparedBlocks>,
        ),
        bias: Option<&'a [f32]>,
    ) -> Groups<'a> {
        let full = n / GROUP_ROWS;
        let bias = bias.map_or(&[][..], |b| &b[..n]);
        let (mut tail_codes, mut tail_factors, mut tail_row_bias) =
            (Vec::new(), Vec::new(), Vec::new());
        if !n.is_multiple_of(GROUP_ROWS) {
            let first = full * GROUP_ROWS;
            tail_codes = vec![0u8; GROUP_ROWS * bpr * 32];
            tail_factors = vec![0.0f32; GROUP_ROWS * bpr];
            tail_codes[..(n - first) * bpr * 32].copy_from_slice(&codes[first * bpr * 32..]);
            tail_factors[..(n - first) * bpr].copy_from_slice(&factors[first * bpr..]);
            if !bias.is_empty() {
                tail_row_bias = vec![0.0f32; GROUP_ROWS];
                tail_row_bias[..n - first].copy_from_slice(&bias[first..]);
            }
        }
        let (routine, prepared) = unsigned_bias;
        let whole_blocks = full * GROUP_ROWS * bpr;
        let (unsigned_bias, tail_bias) = match routine {
            Some(f) => (
                match prepared {
                    Some(p) if p.unsigned_bias.len() >= whole_blocks => {
                        Cow::Borrowed(&p.unsigned_bias[..whole_blocks])
                    }
                    _ => Cow::Owned(unsigned_bias_of(&codes[..whole_blocks * 32], f)),
                },
                unsigned_bias_of(&tail_codes, f),
            ),
            None => (Cow::Owned(Vec::new()), Vec::new()),
        };
        Groups {
            codes,
            factors,
            unsigned_bias,
            bias,
            tail_codes,
            tail_factors,
            tail_bias,
            tail_row_bias,
            n,
            bpr,
            full,
        }
    }

    fn count(&self) -> usize {
        self.n.div_ceil(GROUP_ROWS)
    }

    /// Panel `p` × weight groups `range` into `out` (rows of width `n`, as many rows as the panel has):
    /// straight into `out` for a full panel, through `buf` for the ragged last one and the ragged group.
    fn run(
        &self,
        kernel: MxPanel,
        acts: &MxActs,
        p: usize,
        range: std::ops::Range<usize>,
        out: &mut [f32],
        buf: &mut Vec<f32>,
    ) {
        self.run_into(kernel, acts, p, range, out, self.n, buf)
    }

    /// As [`Groups::run`], into `out` with row stride `ldo` whose column 0 is weight row `range.start * 16`.
    #[allow(clippy::too_many_arguments)]
    fn run_into(
        &self,
        kernel: MxPanel,
        acts: &MxActs,
        p: usize,
        range: std::ops::Range<usize>,
        out: &mut [f32],
        ldo: usize,
        buf: &mut Vec<f32>,
    ) {
        let bpr = self.bpr;
        let panel = &acts.codes[p * bpr * 512..(p + 1) * bpr * 512];
        let factors = &acts.factors[p * bpr * PANEL_ROWS..(p + 1) * bpr * PANEL_ROWS];
        let rows = out.len().div_ceil(ldo.max(1));
        let (g0, full_end) = (range.start, range.end.min(self.full));
        let row_width = bpr * 32;
        let width = (range.end * GROUP_ROWS).min(self.n) - g0 * GROUP_ROWS;
        if full_end > g0 {
            let cols = (full_end - g0) * GROUP_ROWS;
            let w_codes =
                &self.codes[g0 * GROUP_ROWS * row_width..full_end * GROUP_ROWS * row_width];
            let blocks = g0 * GROUP_ROWS * bpr..full_end * GROUP_ROWS * bpr;
            let w = PanelWeights {
                codes: w_codes,
                factors: &self.factors[blocks.clone()],
                unsigned_bias: self.unsigned_bias.get(blocks).unwrap_or_default(),
                bias: self
                    .bias
                    .get(g0 * GROUP_ROWS..full_end * GROUP_ROWS)
                    .unwrap_or_default(),
            };
            if rows == PANEL_ROWS {
                (kernel.run)(panel, factors, bpr, w, out, ldo);
            } else {
                buf.clear();
                buf.resize(PANEL_ROWS * cols, 0.0);
                (kernel.run)(panel, factors, bpr, w, buf, cols);
                for (i, src) in buf.chunks(cols).take(rows).enumerate() {
                    out[i * ldo..i * ldo + cols].copy_from_slice(src);
                }
            }
        }
        if range.end > self.full {
            // The ragged group: its first `n % 16` columns are real.
            let c0 = (self.full - g0) * GROUP_ROWS;
            let real = width - c0;
            buf.clear();
            buf.resize(PANEL_ROWS * GROUP_ROWS, 0.0);
            let w = PanelWeights {
                codes: &self.tail_codes,
                factors: &self.tail_factors,
                unsigned_bias: &self.tail_bias,
                bias: &self.tail_row_bias,
            };
            (kernel.run)(panel, factors, bpr, w, buf, GROUP_ROWS);
            for (i, src) in buf.chunks(GROUP_ROWS).take(rows).enumerate() {
                out[i * ldo + c0..i * ldo + c0 + real].copy_from_slice(&src[..real]);
            }
        }
    }
}
