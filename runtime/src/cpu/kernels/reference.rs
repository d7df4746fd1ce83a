//! Scalar reference kernels: obviously right, and the oracle every fast path is tested against.

use mxrt_format::{mx, MxElem, Rounding};

/// One block of 32 activations to MXINT8: the element codes (two's complement bytes, never -128) and the
/// scale byte, exactly as `mxrt_format::mx::quantize_block` gives them.
pub fn mxint8_quantize_block(block: &[f32; 32], rounding: Rounding, codes: &mut [u8; 32]) -> u8 {
    let mut wide = [0u32; 32];
    let scale = mx::quantize_block(block, MxElem::Int8, rounding, &mut wide);
    for (c, w) in codes.iter_mut().zip(wide) {
        *c = w as u8;
    }
    scale
}

/// `e^x` for every value (std's binary32 exp).
pub fn exp_in_place(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v = v.exp());
}

/// Exact GELU `0.5 x (1 + erf(x / √2))` for every value, erf from libm (binary32).
pub fn gelu_in_place(x: &mut [f32]) {
    for v in x {
        *v = 0.5 * *v * (1.0 + libm::erff(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// One attention score row in place: `row[j] · scale` where `keep[j] != 0`, −∞ elsewhere, then a softmax
/// (max subtracted, `e^x`, divided by the sum in order); masked entries end as 0, and a row with nothing
/// kept as all zeros.
pub fn softmax_masked(row: &mut [f32], keep: &[u8], scale: f32) {
    let mut max = f32::NEG_INFINITY;
    for (s, &kept) in row.iter_mut().zip(keep) {
        *s = if kept != 0 {
            *s * scale
        } else {
            f32::NEG_INFINITY
        };
        max = max.max(*s);
    }
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return;
    }
    row.iter_mut().for_each(|s| *s -= max);
    exp_in_place(row);
    let mut sum = 0.0f32;
    for (s, &kept) in row.iter_mut().zip(keep) {
        if kept == 0 {
            *s = 0.0;
        }
        sum += *s;
    }
    row.iter_mut().for_each(|p| *p /= sum);
}

/// One row of LayerNorm with the residual added first: `v = row + residual` (f32), then
/// `((v − mean) / sqrt(var + eps)) · gamma + beta` with mean and biased variance summed in f64, in order; the
/// normalized value is rounded to f32 before the f32 affine step.
pub fn layer_norm_row(
    row: &mut [f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    if let Some(r) = residual {
        row.iter_mut().zip(r).for_each(|(v, r)| *v += r);
    }
    let n = row.len() as f64;
    let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = row
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    let inv = 1.0 / (var + f64::from(eps)).sqrt();
    for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
        *v = ((f64::from(*v) - mean) * inv) as f32 * g + b;
    }
}

/// Sequential f32 dot product.
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0.0, |acc, (x, y)| acc + x * y)
}

/// Three weight rows against `out.len() / 3` activation rows of length `k` (`x` row-major):
/// `out[3i + c] = dot_f32(x_i, w_c)`.
pub fn dot_f32_rows3(x: &[f32], k: usize, w: [&[f32]; 3], out: &mut [f32]) {
    for (i, o) in out.chunks_mut(3).enumerate() {
        for (c, o) in o.iter_mut().enumerate() {
            *o = dot_f32(&x[i * k..(i + 1) * k], w[c]);
        }
    }
}

/// `out[i · ldo + c] = Σ_t x[i][t] · wt[t][c]` for `rows` rows and `c < n`: `x` is `[rows, k]`, `wt` the
/// weight matrix transposed and packed `[k, stride]` with `stride = n` rounded up to a multiple of 16 (zero
/// columns past `n`). Sums in `t` order; then the `epilogue` as [`add_bias_rows`] (its bias holds `n`
/// values). Other entries of `out` are left alone.
#[allow(clippy::too_many_arguments)]
pub fn gemm_f32_packed(
    x: &[f32],
    rows: usize,
    k: usize,
    wt: &[f32],
    n: usize,
    out: &mut [f32],
    ldo: usize,
    epilogue: super::Epilogue<'_>,
) {
    let stride = n.div_ceil(16) * 16;
    if let Some(b) = epilogue.bias {
        assert!(
            b.len() >= n,
            "gemm_f32_packed: {} bias values for {n} columns",
            b.len()
        );
    }
    for i in 0..rows {
        for c in 0..n {
            let sum = (0..k).fold(0.0, |s, t| s + x[i * k + t] * wt[t * stride + c]);
            let v = epilogue.bias.map_or(sum, |b| sum + b[c]);
            out[i * ldo + c] = if !epilogue.relu || v > 0.0 { v } else { 0.0 };
        }
    }
}

/// One row `x` (`k` values) × the packed panel `wt` of [`gemm_f32_packed`] (`[k, stride]`, `stride` = `n`
/// rounded up to 16): `out[c]` for `c < n`, summed as four fused multiply-add chains, chain `j` over the
/// steps `t ≡ j (mod 4)` in order from 0, then `(p0 + p1) + (p2 + p3)`. For one sample of a small MLP: with
/// one chain over `t` per output (the GEMM's order) each output waited on the multiply-add's latency `k`
/// times, and a JSC sample spent half its time there.
pub fn gemv_f32_packed(x: &[f32], k: usize, wt: &[f32], n: usize, out: &mut [f32]) {
    let stride = check_gemv_sizes(x, k, wt.len(), n, out);
    for (c, o) in out.iter_mut().enumerate().take(n) {
        let mut p = [0.0f32; 4];
        for (t, &xt) in x.iter().enumerate().take(k) {
            p[t % 4] = xt.mul_add(wt[t * stride + c], p[t % 4]);
        }
        *o = (p[0] + p[1]) + (p[2] + p[3]);
    }
}

/// The packed stride of a [`gemv_f32_packed`] call (`wt_len`: the panel's length), after asserting that
/// every slice holds what it reads and writes (the SIMD versions read through raw pointers).
pub fn check_gemv_sizes(x: &[f32], k: usize, wt_len: usize, n: usize, out: &[f32]) -> usize {
    let stride = n.div_ceil(16) * 16;
    assert!(
        x.len() >= k && wt_len >= k * stride && out.len() >= n,
        "gemv_f32_packed: operand sizes do not match"
    );
    stride
}

/// [`gemv_f32_packed`] with the panel held as MXINT8 codes: `codes` `[k, stride]` (one byte, an i8, per
/// weight), `factors` `[k.div_ceil(32), stride]` (the factor of column `c`'s block `b` at `b · stride + c`:
/// its scale's 2^e / 64), each weight decoded as `code · factor` (exactly the f32 the file decodes to), then
/// the same four chains: bit for bit `gemv_f32_packed` on the decoded panel, from a quarter of the bytes.
pub fn gemv_mxint8_packed(
    x: &[f32],
    k: usize,
    codes: &[u8],
    factors: &[f32],
    n: usize,
    out: &mut [f32],
) {
    let stride = check_gemv_mxint8_sizes(x, k, codes, factors, n, out);
    for (c, o) in out.iter_mut().enumerate().take(n) {
        let mut p = [0.0f32; 4];
        for (t, &xt) in x.iter().enumerate().take(k) {
            let w = f32::from(codes[t * stride + c] as i8) * factors[t / 32 * stride + c];
            p[t % 4] = xt.mul_add(w, p[t % 4]);
        }
        *o = (p[0] + p[1]) + (p[2] + p[3]);
    }
}

/// The packed stride of a [`gemv_mxint8_packed`] call, after asserting the operands' sizes.
pub fn check_gemv_mxint8_sizes(
    x: &[f32],
    k: usize,
    codes: &[u8],
    factors: &[f32],
    n: usize,
    out: &[f32],
) -> usize {
    let stride = check_gemv_sizes(x, k, codes.len(), n, out);
    assert!(
        factors.len() >= k.div_ceil(32) * stride,
        "gemv_mxint8_packed: operand sizes do not match"
    );
    stride
}

/// `dst[c · dst_ld + r] = src[r · src_ld + c]` for `r < rows`, `c < cols` (other entries of `dst` are left
/// alone), in 16 × 16 blocks: a block's 16 source and 16 destination lines stay in L1 while it is copied.
pub fn transpose_f32(
    src: &[f32],
    src_ld: usize,
    rows: usize,
    cols: usize,
    dst: &mut [f32],
    dst_ld: usize,
) {
    check_transpose_sizes(src, src_ld, rows, cols, dst, dst_ld);
    const B: usize = 16;
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            for r in r0..(r0 + B).min(rows) {
                for c in c0..(c0 + B).min(cols) {
                    dst[c * dst_ld + r] = src[r * src_ld + c];
                }
            }
        }
    }
}

/// Asserts that `src` holds `rows` rows of `cols` values `src_ld` apart and `dst` holds `cols` rows of
/// `rows` values `dst_ld` apart: what every `transpose_f32` reads and writes.
pub fn check_transpose_sizes(
    src: &[f32],
    src_ld: usize,
    rows: usize,
    cols: usize,
    dst: &[f32],
    dst_ld: usize,
) {
    if rows > 0 && cols > 0 {
        assert!(
            src_ld >= cols
                && dst_ld >= rows
                && src.len() >= (rows - 1) * src_ld + cols
                && dst.len() >= (cols - 1) * dst_ld + rows
        );
    }
}

/// One dense MXINT8 weight row · f32 activations: `Σ_j step_j · Σ_e code_je · x_je` with `step_j` the block's
/// value of one code step (`mx::scale_value(s) / 64`). `x` may end inside the last (zero-padded) block.
pub fn mxint8_dot_f32(codes: &[u8], steps: &[f32], x: &[f32]) -> f32 {
    let mut total = 0.0f32;
    for (j, step) in steps.iter().enumerate() {
        let lo = 32 * j;
        let hi = (lo + 32).min(x.len());
        let block: f32 = (lo..hi).map(|e| f32::from(codes[e] as i8) * x[e]).sum();
        total += block * step;
    }
    total
}

/// Dot product of bytes read as two's complement i8, accumulated in i32 (exact for n < 2^17).
pub fn dot_i8(a: &[u8], b: &[u8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(x as i8) * i32::from(y as i8))
        .sum()
}

/// Activation scale byte → f32 factor `2^(s-127) / 4096` (the two /64 of the codes folded in); NaN for 0xFF.
pub fn act_scale(s: u8) -> f32 {
    mxrt_format::mx::scale_value(s) * (1.0 / 4096.0)
}

/// MXINT8 rows · one MXINT8 weight row. For activation row `i` (codes `a_codes[i*32*B..]`, f32 scales
/// `a_scales[i*B..]` from [`act_scale`]) and the weight row (`w_codes`, `w_scales` = `mx::scale_value`):
/// lane `l` of block `j` holds the exact i32 sum of the products at positions `4l .. 4l+3` (what `vpmaddubsw`
/// then `vpmaddwd`, or `vpdpbusd`, give). There are 16 f32 accumulators: block `j` goes to lanes
/// `8 (j mod 2) + l`, each as `fma(p_jl as f32, a_scale_ij * w_scale_j, acc)`, block after block (even blocks
/// in the low eight, odd ones in the high eight: two independent chains, or one 16-lane AVX-512 register).
/// Then `t_l = acc_l + acc_{8+l}` and the row's result is `((t0+t4) + (t2+t6)) + ((t1+t5) + (t3+t7))`. SIMD
/// versions compute exactly this.
pub fn mxint8_rows(
    a_codes: &[u8],
    a_scales: &[f32],
    w_codes: &[u8],
    w_scales: &[f32],
    out: &mut [f32],
) {
    let blocks = w_scales.len();
    for (i, o) in out.iter_mut().enumerate() {
        let mut acc = [0.0f32; 16];
        for j in 0..blocks {
            let a = &a_codes[(i * blocks + j) * 32..][..32];
            let w = &w_codes[j * 32..j * 32 + 32];
            let s = a_scales[i * blocks + j] * w_scales[j];
            for l in 0..8 {
                let p: i32 = (4 * l..4 * l + 4)
                    .map(|e| i32::from(a[e] as i8) * i32::from(w[e] as i8))
                    .sum();
                let lane = &mut acc[8 * (j % 2) + l];
                *lane = (p as f32).mul_add(s, *lane);
            }
        }
        let t: [f32; 8] = std::array::from_fn(|l| acc[l] + acc[8 + l]);
        *o = ((t[0] + t[4]) + (t[2] + t[6])) + ((t[1] + t[5]) + (t[3] + t[7]));
    }
}

/// Two weight rows at once: `out[i * ldo + c]` is [`mxint8_rows`] of activation row `i` (of `rows`) with
/// weight row `c` (other entries of `out` are left alone).
pub fn mxint8_rows2(
    a_codes: &[u8],
    a_scales: &[f32],
    rows: usize,
    w: [(&[u8], &[f32]); 2],
    out: &mut [f32],
    ldo: usize,
) {
    let mut one = vec![0.0f32; rows];
    for (c, (codes, scales)) in w.iter().enumerate() {
        mxint8_rows(a_codes, a_scales, codes, scales, &mut one);
        for (i, v) in one.iter().enumerate() {
            out[i * ldo + c] = *v;
        }
    }
}

/// Σ_k `values[k] * x[cols[k]]`, in order: a sparse weight row (stored entries only) times a dense row.
/// Every column must be inside `x` (the reader validated the masks; callers check).
pub fn sparse_dot(values: &[f32], cols: &[u32], x: &[f32]) -> f32 {
    values
        .iter()
        .zip(cols)
        .fold(0.0, |acc, (v, &c)| acc + v * x[c as usize])
}

/// `bias` added to every row of `out` (rows as wide as `bias`; a ragged last row gets its first values),
/// then with `relu` each value `v > 0 ? v : 0` (NaN and −0 become +0).
pub fn add_bias_rows(out: &mut [f32], bias: &[f32], relu: bool) {
    for row in out.chunks_mut(bias.len().max(1)) {
        for (v, b) in row.iter_mut().zip(bias) {
            let sum = *v + b;
            *v = if !relu || sum > 0.0 { sum } else { 0.0 };
        }
    }
}

/// Activation rows per panel in the layout [`mxint8_panel`] reads.
pub const PANEL_ROWS: usize = 16;

/// Up to 16 rows of activations (`rows.len() / cols` of them, `cols` wide) quantized into one panel in the
/// layout [`mxint8_panel`] reads (`codes`: `512 · bpr` bytes, `factors`: `16 · bpr`, `bpr = ⌈cols / 32⌉`):
/// each block by [`mxint8_quantize_block`] (the ragged last one zero-padded), its codes XORed with `flip`
/// (`MxPanel::code_flip`: 0, or 0x80 for kernels that read codes as unsigned) and its factor
/// [`act_scale`]; rows past the last are code 0 (XOR `flip`) with factor 0. The definition every tier's
/// panel quantizer is checked against.
pub fn mxint8_quantize_panel(
    rows: &[f32],
    cols: usize,
    rounding: Rounding,
    flip: u8,
    codes: &mut [u8],
    factors: &mut [f32],
) {
    quantize_panel_by_blocks(
        mxint8_quantize_block,
        rows,
        cols,
        (rounding, flip),
        codes,
        factors,
    );
}

/// [`mxint8_quantize_panel`] with `block` as the block quantizer (any table's `mxint8_quantize_block`).
pub(crate) fn quantize_panel_by_blocks(
    block: fn(&[f32; 32], Rounding, &mut [u8; 32]) -> u8,
    rows: &[f32],
    cols: usize,
    (rounding, flip): (Rounding, u8),
    codes: &mut [u8],
    factors: &mut [f32],
) {
    let real = check_quantize_panel_sizes(rows, cols, codes, factors);
    let bpr = cols.div_ceil(32);
    codes[..bpr * 512].fill(flip);
    factors[..bpr * PANEL_ROWS].fill(0.0);
    let mut padded = [0f32; 32];
    let mut block_codes = [0u8; 32];
    for (i, row) in rows.chunks_exact(cols.max(1)).take(real).enumerate() {
        for (j, values) in row.chunks(32).enumerate() {
            padded.fill(0.0);
            padded[..values.len()].copy_from_slice(values);
            let scale = block(&padded, rounding, &mut block_codes);
            for (q, four) in block_codes.chunks_exact(4).enumerate() {
                let at = 512 * j + 64 * q + 4 * i;
                for (d, &c) in codes[at..at + 4].iter_mut().zip(four) {
                    *d = c ^ flip;
                }
            }
            factors[PANEL_ROWS * j + i] = act_scale(scale);
        }
    }
}

/// MXINT8 × MXINT8 for one panel of 16 activation rows against `w.factors.len() / (16 · bpr)` groups of 16
/// weight rows (the AMX tile shape; tables without a panel kernel use [`mxint8_rows`] instead).
///
/// The panel (written by `quant::pack_mxint8_panels` with no flip): block `j` at byte `512 j`, in it code
/// `32 j + 4 q + t` of panel row `i` at byte `64 q + 4 i + t` (`q < 8`, `t < 4`); `factors[16 j + i]` is that block's
/// [`act_scale`] (0 for padding rows); activation codes are never −128 (the quantizer's range is ±127;
/// the AVX2 kernel relies on it). Weight rows: codes row-major, `32 · bpr` bytes each; the factor of
/// weight row `r`, block `j` is `w_factors[r · bpr + j]` (`mx::scale_value`). Result: `out[i · ldo + r]` is
/// `acc` after every block `j` in order, starting from 0, of `acc = fma(p as f32, w_factor · a_factor, acc)`
/// where `p` is the exact i32 sum of the block's 32 products (exact in f32 too, as its magnitude is at most
/// 32 · 128² < 2²⁴), plus `w.bias[r]` where there is a bias.
pub fn mxint8_panel(
    panel: &[u8],
    factors: &[f32],
    bpr: usize,
    w: super::PanelWeights<'_>,
    out: &mut [f32],
    ldo: usize,
) {
    let groups = panel_groups(panel, factors, bpr, &w, out, ldo, false);
    for i in 0..PANEL_ROWS {
        for r in 0..groups * 16 {
            let mut acc = 0.0f32;
            for j in 0..bpr {
                let block = &panel[512 * j..512 * (j + 1)];
                let codes = &w.codes[(r * bpr + j) * 32..][..32];
                let p: i32 = (0..32)
                    .map(|e| {
                        let a = block[64 * (e / 4) + 4 * i + e % 4];
                        i32::from(a as i8) * i32::from(codes[e] as i8)
                    })
                    .sum();
                acc = (p as f32).mul_add(w.factors[r * bpr + j] * factors[16 * j + i], acc);
            }
            out[i * ldo + r] = match w.bias.get(r) {
                Some(b) => acc + b,
                None => acc,
            };
        }
    }
}

/// The `unsigned_bias` of `PanelWeights` for weight `codes` (whole 32-code blocks): `−128 · Σ codes` of
/// each block, the codes read as two's complement i8.
pub fn panel_unsigned_bias(codes: &[u8]) -> Vec<i32> {
    codes
        .chunks_exact(32)
        .map(|block| -128 * block.iter().map(|&c| i32::from(c as i8)).sum::<i32>())
        .collect()
}

/// Each scale byte's value `mx::scale_value` (2^(s − 127); NaN for 0xFF) into `out` (the same length):
/// the weight blocks' factors of a panel kernel call.
pub fn scale_factors(scales: &[u8], out: &mut [f32]) {
    check_scale_factor_sizes(scales, out);
    for (o, &s) in out.iter_mut().zip(scales) {
        *o = mxrt_format::mx::scale_value(s);
    }
}

/// The sizes an [`super::MxPanel::scale_factors`] routine relies on: one output per scale byte. Panics (a
/// caller's bug) when they differ.
/// The sizes a panel quantizer relies on: at most 16 rows of `cols` values, `512 · bpr` codes and `16 · bpr`
/// factors (`bpr = ⌈cols / 32⌉`). Returns the number of rows. Panics (a caller's bug) when they do not match.
pub(crate) fn check_quantize_panel_sizes(
    rows: &[f32],
    cols: usize,
    codes: &[u8],
    factors: &[f32],
) -> usize {
    let bpr = cols.div_ceil(32);
    let real = rows.len().checked_div(cols).unwrap_or(0);
    assert!(
        real <= PANEL_ROWS && codes.len() >= bpr * 512 && factors.len() >= bpr * PANEL_ROWS,
        "mxint8_quantize_panel: operand sizes do not match"
    );
    real
}

pub(crate) fn check_scale_factor_sizes(scales: &[u8], out: &[f32]) {
    assert!(
        scales.len() == out.len(),
        "scale_factors: one output per scale byte"
    );
}

/// The sizes an [`super::MxPanel::unsigned_bias`] routine relies on: one output per 32-code block (the
/// codes' tail past the last whole block is not read). Panics (a caller's bug) when they do not match.
pub(crate) fn check_unsigned_bias_sizes(codes: &[u8], out: &[i32]) {
    assert!(
        out.len() == codes.len() / 32,
        "unsigned_bias: one entry per block"
    );
}

/// The number of 16-row weight groups in `w`, after checking that every operand of a panel kernel has the
/// size [`mxint8_panel`] documents (and `w.unsigned_bias` one entry per factor where `unsigned`): the bounds
/// the SIMD panel kernels rely on. Panics (a caller's bug) when one does not.
pub(crate) fn panel_groups(
    panel: &[u8],
    factors: &[f32],
    bpr: usize,
    w: &super::PanelWeights<'_>,
    out: &[f32],
    ldo: usize,
    unsigned: bool,
) -> usize {
    let groups = w.factors.len() / (16 * bpr).max(1);
    assert!(
        bpr > 0
            && panel.len() >= bpr * 512
            && factors.len() >= bpr * 16
            && w.factors.len() == groups * 16 * bpr
            && w.codes.len() >= groups * 16 * bpr * 32
            && (!unsigned || w.unsigned_bias.len() == w.factors.len())
            && (w.bias.is_empty() || w.bias.len() == groups * 16)
            && ldo >= groups * 16
            && (groups == 0 || out.len() >= 15 * ldo + groups * 16),
        "mxint8_panel: operand sizes do not match"
    );
    groups
}

/// Independent multiply-add chains, as many as a wide core keeps in flight: the compute ceiling the peak
/// loops measure (each chain's dependency forces one op after another; the chains overlap).
const PEAK_CHAINS: usize = 32;

/// `iterations` rounds of f32 multiply-adds on 32 independent chains, in plain code (what the
/// compiler makes of it for the baseline target): the reference tier's compute ceiling. Returns a value
/// derived from every chain, so the work cannot be dropped.
pub fn peak_f32(iterations: u64) -> f32 {
    let (a, b) = (
        std::hint::black_box(0.999_999_9f32),
        std::hint::black_box(1e-7f32),
    );
    let mut acc = [1.0f32; PEAK_CHAINS];
    for _ in 0..iterations {
        for v in &mut acc {
            *v = *v * a + b;
        }
    }
    acc.iter().sum()
}

/// The same for i8 × i8 products accumulated in i32.
pub fn peak_i8(iterations: u64) -> i32 {
    let b = i32::from(std::hint::black_box(-2i8));
    let mut acc = [std::hint::black_box(3i32); PEAK_CHAINS];
    for _ in 0..iterations {
        for v in &mut acc {
            // The accumulator's low byte is the next i8 operand: each chain depends on itself, so the
            // multiply stays in the loop.
            *v = v.wrapping_add(i32::from(*v as i8) * b);
        }
    }
    acc.iter().fold(0, |s, v| s.wrapping_add(*v))
}

/// Operations (a multiply-add counts two) per iteration of [`peak_f32`] and [`peak_i8`].
pub const PEAK_OPS: f64 = 2.0 * PEAK_CHAINS as f64;

/// `mxrt_format::fixed::quantize(v, 8, frac, rounding)` of each value (NaN to 0), in f32 arithmetic the compiler can
/// vectorize: `v · 2^frac` is exact in f32 (a power of two; an overflow to infinity saturates as the
/// clamp would), and rounding is done on the truncation and the exact remainder `s − trunc(s)`.
#[inline(always)]
pub fn fixed8_codes(row: &[f32], frac: u8, rounding: Rounding, out: &mut [i8]) {
    let scale = 2f32.powi(i32::from(frac));
    let even = rounding == Rounding::Even;
    for (o, &v) in out.iter_mut().zip(row) {
        // Beyond ±129 every value saturates; clamping first keeps the integer conversion in range.
        let s = (v * scale).clamp(-129.0, 129.0);
        let t = s as i32; // toward zero; NaN gives 0
        let rest = s - t as f32; // exact: |s| < 2^23
        let half = rest.abs() == 0.5;
        let away = rest.abs() > 0.5 || (half && !(even && t % 2 == 0));
        let q = if away { t + rest.signum() as i32 } else { t };
        *o = q.clamp(-128, 127) as i8;
    }
}
