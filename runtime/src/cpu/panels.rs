//! The MXINT8 × MXINT8 linear op on a kernel table with `mxint8_panel` (AVX2, AVX-VNNI, AVX-512 VNNI, AMX):
//! activations arrive packed in panels of 16 rows; weight rows are taken 16 at a time straight from the
//! mapped file. A ragged last group of weight rows goes through a zero-padded copy of those few rows, a
//! ragged last panel through a buffer.

use rayon::prelude::*;

use crate::cpu::kernels::ragged::Elementwise;
use crate::cpu::kernels::reference::PANEL_ROWS;
use crate::cpu::kernels::{Kernels, MxPanel};
use crate::cpu::panel_weights::{kernel_for, mx_factors, panel_weights, Groups, GROUP_ROWS};
use crate::cpu::quant::MxActs;
use crate::cpu::rows::{add_bias_rows, PARALLEL_WORK};
use crate::ops::ActQuant;
use crate::weights::WeightView;
use mxrt_format::Encoding;

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
    let Some((w_codes, w_factors)) = panel_weights(w, kernel.scale_factors) else {
        unreachable!(
            "the integer panel path is only taken for dense MXINT8 or whole-block fixed:8 weights"
        )
    };
    let kernel = kernel_for(kernel, w, &w_codes);
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
        (n, kdim.div_ceil(32)),
        (kernel, w.prepared()),
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
        start: 0,
    };
    let minus_128 = crate::cpu::quant::quantize_fixed8_panels(
        x,
        w.cols(),
        (frac, act.rounding),
        (kernels.fixed8_codes, kernel.code_flip()),
        &mut acts.codes,
        &mut acts.factors,
    );
    if minus_128 {
        // Whether the kernel these weights get takes the activation code −128.
        let (codes, _) = panel_weights(w, kernel.scale_factors)?;
        if !kernel_for(kernel, w, &codes).minus_128_activations {
            return None;
        }
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
    pub quantize_panel: crate::cpu::kernels::QuantizePanel,
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
    let kernels = (
        kernel_for(kernel, ff.up, up_codes),
        kernel_for(kernel, ff.down, down_codes),
    );
    let up = Groups::new(
        up_codes,
        mx_factors(up_scales, kernel.scale_factors),
        (hidden_width, ff.up.cols().div_ceil(32)),
        (kernels.0, ff.up.prepared()),
        ff.up_bias,
    );
    let down = Groups::new(
        down_codes,
        mx_factors(down_scales, kernel.scale_factors),
        (n, hidden_width.div_ceil(32)),
        (kernels.1, ff.down.prepared()),
        ff.down_bias,
    );
    out.par_chunks_mut(PANEL_ROWS * n)
        .enumerate()
        .for_each(|(p, rows)| {
            // Taken out for the panel and put back after: a task that ran in between (pool work this
            // thread picked up) would find an empty set, never a borrowed one.
            let mut scratch = PANEL_SCRATCH.take();
            feed_forward_panel(kernels, acts, ff, (&up, &down), &mut scratch, (p, rows));
            PANEL_SCRATCH.set(scratch);
        });
    out
}

/// One panel of [`feed_forward_panels`] into its output rows `rows`, with the kernels for the up and down
/// weights.
fn feed_forward_panel(
    (up_kernel, down_kernel): (MxPanel, MxPanel),
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
            up.run(up_kernel, acts, p, 0..up.count(), &mut s.hidden, &mut s.buf); // with the bias
            ff.gelu.apply(&mut s.hidden);
            let start = crate::cpu::quant::quantize_mxint8_panels(
                &s.hidden,
                hidden_width,
                ff.down_rounding,
                (ff.quantize_panel, down_kernel.code_flip()),
                &mut s.codes,
                &mut s.factors,
            );
            let panel = MxActs {
                codes: std::mem::take(&mut s.codes),
                factors: std::mem::take(&mut s.factors),
                panels: true,
                start,
            };
            down.run(down_kernel, &panel, 0, 0..down.count(), rows, &mut s.buf); // with the bias
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
