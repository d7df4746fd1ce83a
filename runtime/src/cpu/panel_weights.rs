//! A weight matrix as the MXINT8 panel kernels read it ([`Groups`]): whole groups of 16 rows in place in
//! the mapped file, a ragged last group as a zero-padded copy, and the per-block values the kernels take
//! beside the codes: each block's f32 factor and, where the kernel reads activations as unsigned, its
//! `−128 · Σ codes`. The factors are made per call from the scale bytes (the table's vectorized pass over
//! a byte per block); the code sums come prepared at open (`cpu::prepared`, two bytes per block), because
//! deriving them reads every code of the matrix (see there for what that cost). For a kernel with a
//! folded variant (`MxPanel::folded`), each block's base and start are made per call too (`kernels::fold`),
//! and each panel runs folded where `fold::folds_exactly` holds for its activation factors. The per-call
//! arrays live in per-thread spare buffers, so a call allocates nothing once warm.

use std::borrow::Cow;
use std::cell::RefCell;

use crate::cpu::kernels::fold::{fold_blocks, fold_range, folds_exactly, FoldRange};
use crate::cpu::kernels::reference::PANEL_ROWS;
use crate::cpu::kernels::{MxPanel, PanelWeights, ScaleFactors, UnsignedBias};
use crate::cpu::quant::MxActs;
use crate::weights::{PreparedBlocks, WeightView};

/// Weight rows per kernel group (the tile height).
pub(crate) const GROUP_ROWS: usize = 16;

/// Spare buffers kept per thread for each kind (a fused feed-forward block holds two matrices at once).
const SPARES: usize = 4;

thread_local! {
    static SPARE_FACTORS: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
    static SPARE_BIASES: RefCell<Vec<Vec<i32>>> = const { RefCell::new(Vec::new()) };
}

/// Each MXINT8 block's factor (its scale, 2^e; the codes' 1/64 is in the activations' factors) by the
/// table's routine, into a spare buffer.
pub(crate) fn mx_factors(scales: &[u8], convert: ScaleFactors) -> Vec<f32> {
    let mut out = spare_factors();
    out.clear();
    out.resize(scales.len(), 0.0);
    convert(scales, &mut out);
    out
}

/// Each whole block's unsigned bias: from the code sums prepared at open where there are enough of them,
/// else by the kernel table's routine over the codes (the tests' views, and models without them).
fn unsigned_biases(codes: &[u8], f: UnsignedBias, prepared: Option<&PreparedBlocks>) -> Vec<i32> {
    let blocks = codes.len() / 32;
    let mut out = spare_biases();
    out.clear();
    match prepared {
        Some(p) if p.code_sums.len() >= blocks => {
            out.extend(p.code_sums[..blocks].iter().map(|&s| -128 * i32::from(s)));
        }
        _ => {
            out.resize(blocks, 0);
            f(codes, &mut out);
        }
    }
    out
}

/// A weight matrix's codes and its blocks' factors, each in place or made for the call.
type CodesAndFactors<'a> = (Cow<'a, [u8]>, Vec<f32>);

/// The weight codes the panel kernel reads and each block's factor: dense MXINT8, or dense 8-bit fixed
/// point with whole-block rows, whose codes are the same kind of i8 and whose blocks all share the factor
/// 2^-F (the activations then carry 2^-F of their own, not MXINT8's 1/4096).
pub(crate) fn panel_weights<'a>(
    w: &'a WeightView<'_>,
    convert: ScaleFactors,
) -> Option<CodesAndFactors<'a>> {
    if let Some((codes, scales)) = w.mxint8_rows_all() {
        return Some((Cow::Borrowed(codes), mx_factors(scales, convert)));
    }
    let (codes, frac) = w.fixed8_rows_all()?;
    let blocks = w.rows() * w.cols() / 32;
    Some((codes, vec![2f32.powi(-i32::from(frac)); blocks]))
}

/// The table's panel kernel for weight matrix `w`, whose codes as the kernel reads them are `codes`: the
/// table's own, or where that one cannot take the weight code −128 and `w` holds it, the table's kernel
/// for such matrices (`MxPanel::minus_128_weights`). Whether `w` holds it comes from what was prepared at
/// open, else from a pass over the codes.
pub(crate) fn kernel_for(kernel: MxPanel, w: &WeightView<'_>, codes: &[u8]) -> MxPanel {
    kernel.for_weights(|| match w.prepared().and_then(|p| p.minus_128) {
        Some(held) => held,
        None => holds_minus_128(codes),
    })
}

/// Whether any of `codes` is −128 (0x80).
pub(crate) fn holds_minus_128(codes: &[u8]) -> bool {
    codes.contains(&0x80)
}

/// A weight matrix as the panel kernel reads it: whole groups of 16 rows in place, and the ragged last
/// group (if any) as a zero-padded copy of its rows; each block's factor, and its unsigned bias where the
/// kernel reads activations as unsigned.
pub(crate) struct Groups<'a> {
    codes: &'a [u8],
    factors: Vec<f32>,
    unsigned_bias: Vec<i32>,
    /// Each weight row's bias (empty: none), added by the kernel.
    bias: &'a [f32],
    tail_codes: Vec<u8>,
    tail_factors: Vec<f32>,
    tail_bias: Vec<i32>,
    /// The ragged group's bias, zero-padded to 16 (empty: none).
    tail_row_bias: Vec<f32>,
    /// The blocks folded for the kernel's `folded` variant, where it has one and every factor folds.
    folded: Option<Folded>,
    n: usize,
    bpr: usize,
    full: usize,
}

/// A matrix's blocks as a folded kernel reads them (`kernels::fold`): the weight factors' range, each
/// block's base (in place of its factor) and start (in place of its unsigned bias); the ragged group's too.
struct Folded {
    range: FoldRange,
    bases: Vec<f32>,
    starts: Vec<i32>,
    tail_bases: Vec<f32>,
    tail_starts: Vec<i32>,
}

impl Folded {
    /// `None` where a factor cannot be folded (see `fold::fold_range`).
    fn new(
        (factors, unsigned_bias): (&[f32], &[i32]),
        (tail_factors, tail_bias): (&[f32], &[i32]),
    ) -> Option<Folded> {
        let whole = fold_range(factors)?;
        let tail = fold_range(tail_factors)?;
        let range = FoldRange {
            min: whole.min.min(tail.min),
            max: whole.max.max(tail.max),
        };
        let (mut bases, mut starts) = (spare_factors(), spare_biases());
        fold_blocks(factors, unsigned_bias, &mut bases, &mut starts);
        let (mut tail_bases, mut tail_starts) = (Vec::new(), Vec::new());
        fold_blocks(tail_factors, tail_bias, &mut tail_bases, &mut tail_starts);
        Some(Folded {
            range,
            bases,
            starts,
            tail_bases,
            tail_starts,
        })
    }
}

fn spare_factors() -> Vec<f32> {
    SPARE_FACTORS.with_borrow_mut(Vec::pop).unwrap_or_default()
}

fn spare_biases() -> Vec<i32> {
    SPARE_BIASES.with_borrow_mut(Vec::pop).unwrap_or_default()
}

/// Gives per-call arrays back to this thread's spares.
fn give_back(factors: Vec<f32>, biases: Vec<i32>) {
    SPARE_FACTORS.with_borrow_mut(|spare| {
        if spare.len() < SPARES && factors.capacity() > 0 {
            spare.push(factors);
        }
    });
    SPARE_BIASES.with_borrow_mut(|spare| {
        if spare.len() < SPARES && biases.capacity() > 0 {
            spare.push(biases);
        }
    });
}

impl Drop for Groups<'_> {
    /// The per-call arrays go back to this thread's spares.
    fn drop(&mut self) {
        give_back(
            std::mem::take(&mut self.factors),
            std::mem::take(&mut self.unsigned_bias),
        );
        if let Some(folded) = self.folded.take() {
            give_back(folded.bases, folded.starts);
        }
    }
}

impl<'a> Groups<'a> {
    /// `n` weight rows of `bpr` blocks (`codes`, `factors`) for `kernel` (its unsigned-bias routine, if
    /// any; folded for its `folded` variant, if any), with what the view has prepared, and each row's
    /// `bias`.
    pub(crate) fn new(
        codes: &'a [u8],
        factors: Vec<f32>,
        (n, bpr): (usize, usize),
        (kernel, prepared): (MxPanel, Option<&'a PreparedBlocks>),
        bias: Option<&'a [f32]>,
    ) -> Groups<'a> {
        let routine = kernel.unsigned_bias;
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
        let whole_blocks = full * GROUP_ROWS * bpr;
        let (unsigned_bias, tail_bias) = match routine {
            Some(f) => {
                let mut tail = vec![0; tail_codes.len() / 32];
                f(&tail_codes, &mut tail);
                (
                    unsigned_biases(&codes[..whole_blocks * 32], f, prepared),
                    tail,
                )
            }
            None => (Vec::new(), Vec::new()),
        };
        let folded = kernel.folded.and_then(|_| {
            Folded::new(
                (&factors[..whole_blocks], &unsigned_bias),
                (&tail_factors, &tail_bias),
            )
        });
        Groups {
            codes,
            factors,
            unsigned_bias,
            bias,
            tail_codes,
            tail_factors,
            tail_bias,
            tail_row_bias,
            folded,
            n,
            bpr,
            full,
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.n.div_ceil(GROUP_ROWS)
    }

    /// Panel `p` × weight groups `range` into `out` (rows of width `n`, as many rows as the panel has):
    /// straight into `out` for a full panel, through `buf` for the ragged last one and the ragged group.
    pub(crate) fn run(
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
    pub(crate) fn run_into(
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
        let panel = &acts.panel_codes()[p * bpr * 512..(p + 1) * bpr * 512];
        let factors = &acts.factors[p * bpr * PANEL_ROWS..(p + 1) * bpr * PANEL_ROWS];
        let rows = out.len().div_ceil(ldo.max(1));
        // The folded variant where the weights were folded and this panel's factors keep it exact.
        let folded = match (&self.folded, kernel.folded) {
            (Some(f), Some(run)) if folds_exactly(f.range, factors) => Some((f, run)),
            _ => None,
        };
        let (g0, full_end) = (range.start, range.end.min(self.full));
        let row_width = bpr * 32;
        let width = (range.end * GROUP_ROWS).min(self.n) - g0 * GROUP_ROWS;
        if full_end > g0 {
            let cols = (full_end - g0) * GROUP_ROWS;
            let w_codes =
                &self.codes[g0 * GROUP_ROWS * row_width..full_end * GROUP_ROWS * row_width];
            let blocks = g0 * GROUP_ROWS * bpr..full_end * GROUP_ROWS * bpr;
            let (w_factors, unsigned_bias, run) = match folded {
                Some((f, run)) => (&f.bases[blocks.clone()], &f.starts[blocks], run),
                None => (
                    &self.factors[blocks.clone()],
                    self.unsigned_bias.get(blocks).unwrap_or_default(),
                    kernel.run,
                ),
            };
            let w = PanelWeights {
                codes: w_codes,
                factors: w_factors,
                unsigned_bias,
                bias: self
                    .bias
                    .get(g0 * GROUP_ROWS..full_end * GROUP_ROWS)
                    .unwrap_or_default(),
            };
            if rows == PANEL_ROWS {
                run(panel, factors, bpr, w, out, ldo);
            } else {
                buf.clear();
                buf.resize(PANEL_ROWS * cols, 0.0);
                run(panel, factors, bpr, w, buf, cols);
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
            let (w_factors, unsigned_bias, run) = match folded {
                Some((f, run)) => (&f.tail_bases[..], &f.tail_starts[..], run),
                None => (&self.tail_factors[..], &self.tail_bias[..], kernel.run),
            };
            let w = PanelWeights {
                codes: &self.tail_codes,
                factors: w_factors,
                unsigned_bias,
                bias: &self.tail_row_bias,
            };
            run(panel, factors, bpr, w, buf, GROUP_ROWS);
            for (i, src) in buf.chunks(GROUP_ROWS).take(rows).enumerate() {
                out[i * ldo + c0..i * ldo + c0 + real].copy_from_slice(&src[..real]);
            }
        }
    }
}
