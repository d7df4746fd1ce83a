//! Activation quantization at a linear layer's input, as the recipe says: MX types dynamically per block of 32
//! along the row (the reduction dimension), fixed point per element. The values are exactly what encoding and
//! decoding the activations with `mxrt-format` would give, i.e. what a fake-quantized PyTorch model computes.

use mxrt_format::{fixed, mx, Encoding, Rounding};

use crate::ops::ActQuant;

/// Quantized MXINT8 activations: codes and f32 block factors, row after row, or (`panels`) packed in
/// panels of 16 rows for the kernel table's `mxint8_panel`.
pub(crate) struct MxActs {
    pub codes: Vec<u8>,
    pub factors: Vec<f32>,
    pub panels: bool,
    /// Where the first panel starts in `codes` (panels: on a 64-byte boundary when quantized with
    /// [`quantize_mxint8_panels`]).
    pub start: usize,
}

impl MxActs {
    /// The codes from the first row or panel on.
    pub fn panel_codes(&self) -> &[u8] {
        &self.codes[self.start..]
    }
}

/// Replaces each value of the `cols`-wide rows of `x` by its quantized value.
pub fn fake_quantize_rows(x: &mut [f32], cols: usize, q: ActQuant) {
    match q.encoding {
        Encoding::Mx(elem) => {
            let table = mx::code_table(elem);
            let mut codes = [0u32; mx::BLOCK];
            for row in x.chunks_mut(cols.max(1)) {
                for block in row.chunks_mut(mx::BLOCK) {
                    let s =
                        mx::scale_value(mx::quantize_block(block, elem, q.rounding, &mut codes));
                    for (v, &c) in block.iter_mut().zip(&codes) {
                        *v = table[c as usize] * s;
                    }
                }
            }
        }
        Encoding::Fixed { width, frac } => {
            for v in x.iter_mut() {
                if let Some(code) = fixed::quantize(*v, width, frac, q.rounding) {
                    *v = fixed::dequantize(code, frac);
                }
            }
        }
        _ => {}
    }
}

/// One block of up to 32 activations through the kernel table's block quantizer, a ragged last block
/// zero-padded to 32 (the kernels see whole blocks).
fn quantize_padded(
    values: &[f32],
    rounding: Rounding,
    block: fn(&[f32; 32], Rounding, &mut [u8; 32]) -> u8,
    codes: &mut [u8; 32],
) -> u8 {
    let mut padded = [0f32; 32];
    let input: &[f32; 32] = match values.try_into() {
        Ok(whole) => whole,
        Err(_) => {
            padded[..values.len()].copy_from_slice(values);
            &padded
        }
    };
    block(input, rounding, codes)
}

/// MXINT8 activations as codes (two's complement bytes) and scale bytes, for the integer path: per row,
/// `blocks_per_row * 32` codes (the ragged last block zero-padded here, so the kernel sees whole blocks) and
/// one scale byte per block. `block` is the kernel table's `mxint8_quantize_block`; rows are spread over the
/// cores when there are many.
pub fn quantize_mxint8_rows(
    x: &[f32],
    cols: usize,
    rounding: Rounding,
    block: fn(&[f32; 32], Rounding, &mut [u8; 32]) -> u8,
    codes: &mut Vec<u8>,
    scales: &mut Vec<u8>,
) {
    use rayon::prelude::*;
    let bpr = cols.div_ceil(mx::BLOCK);
    let rows = x.len() / cols.max(1);
    codes.clear();
    codes.resize(rows * bpr * mx::BLOCK, 0);
    scales.clear();
    scales.resize(rows * bpr, 0);
    let one_row = |((row, c), s): ((&[f32], &mut [u8]), &mut [u8])| {
        for ((values, out), scale) in row
            .chunks(mx::BLOCK)
            .zip(c.chunks_exact_mut(mx::BLOCK))
            .zip(s)
        {
            let out: &mut [u8; 32] = out.try_into().expect("chunks of exactly 32");
            *scale = quantize_padded(values, rounding, block, out);
        }
    };
    let (width, code_width) = (cols.max(1), (bpr * mx::BLOCK).max(1));
    if x.len() >= 1 << 15 {
        x.par_chunks(width)
            .zip(codes.par_chunks_mut(code_width))
            .zip(scales.par_chunks_mut(bpr.max(1)))
            .for_each(one_row);
    } else {
        x.chunks(width)
            .zip(codes.chunks_mut(code_width))
            .zip(scales.chunks_mut(bpr.max(1)))
            .for_each(one_row);
    }
}

/// Rearranges MXINT8 activation rows (`bpr * 32` codes and `bpr` factors per row, as
/// [`quantize_mxint8_rows`] and `cpu::reference::act_scale` give them) into the panel layout of
/// `cpu::reference::mxint8_panel`: panels of 16 rows, each block's 16 × 32 codes interleaved in groups of
/// four, each XORed with `flip` (the panel kernel's `MxPanel::code_flip`), and its 16 factors together.
/// Rows past the last one are zero codes (XOR `flip`) with factor 0. Panels are
/// spread over the cores when the input is large. (The runtime quantizes straight into panels with
/// [`quantize_mxint8_panels`]; this two-step route is the layout's definition the tests check it against.)
pub fn pack_mxint8_panels(
    codes: &[u8],
    factors: &[f32],
    bpr: usize,
    flip: u8,
    panel_codes: &mut Vec<u8>,
    panel_factors: &mut Vec<f32>,
) {
    use crate::cpu::kernels::reference::PANEL_ROWS;
    use rayon::prelude::*;
    let rows = factors.len() / bpr.max(1);
    let panels = rows.div_ceil(PANEL_ROWS);
    panel_codes.clear();
    panel_codes.resize(panels * bpr * 512, flip);
    panel_factors.clear();
    panel_factors.resize(panels * bpr * PANEL_ROWS, 0.0);
    if bpr == 0 {
        return;
    }
    let one_panel = |(p, (pc, pf)): (usize, (&mut [u8], &mut [f32]))| {
        let first = p * PANEL_ROWS;
        for i in 0..PANEL_ROWS.min(rows - first) {
            let row = &codes[(first + i) * bpr * 32..(first + i + 1) * bpr * 32];
            for j in 0..bpr {
                let block = &mut pc[512 * j..512 * (j + 1)];
                for q in 0..8 {
                    let src = &row[32 * j + 4 * q..32 * j + 4 * q + 4];
                    for (d, &c) in block[64 * q + 4 * i..64 * q + 4 * i + 4]
                        .iter_mut()
                        .zip(src)
                    {
                        *d = c ^ flip;
                    }
                }
                pf[PANEL_ROWS * j + i] = factors[(first + i) * bpr + j];
            }
        }
    };
    if codes.len() >= 1 << 16 {
        panel_codes
            .par_chunks_mut(bpr * 512)
            .zip(panel_factors.par_chunks_mut(bpr * PANEL_ROWS))
            .enumerate()
            .for_each(one_panel);
    } else {
        panel_codes
            .chunks_mut(bpr * 512)
            .zip(panel_factors.chunks_mut(bpr * PANEL_ROWS))
            .enumerate()
            .for_each(one_panel);
    }
}

/// [`quantize_mxint8_rows`] and [`pack_mxint8_panels`] in one pass: each panel of 16 rows quantized
/// straight into its place by `quantize_panel` (the kernel table's `mxint8_quantize_panel`), codes XORed with
/// `flip` (the panel kernel's `MxPanel::code_flip`). The result is exactly what the two steps give; the
/// row-major codes are never materialised. The panels start at the returned offset of `all_codes`, its
/// first 64-byte boundary: the kernels load each panel line (64 bytes: four codes of 16 rows) whole, and a
/// line that straddles two cache lines costs two loads (the allocator aligns only to 16 bytes).
pub fn quantize_mxint8_panels(
    x: &[f32],
    cols: usize,
    rounding: Rounding,
    (quantize_panel, flip): (crate::cpu::kernels::QuantizePanel, u8),
    all_codes: &mut Vec<u8>,
    panel_factors: &mut Vec<f32>,
) -> usize {
    use crate::cpu::kernels::reference::PANEL_ROWS;
    use rayon::prelude::*;
    let bpr = cols.div_ceil(mx::BLOCK);
    let rows = x.len() / cols.max(1);
    let panels = rows.div_ceil(PANEL_ROWS);
    all_codes.clear();
    panel_factors.clear();
    if bpr == 0 {
        return 0;
    }
    let len = panels * bpr * 512;
    // The buffer's address does not change below (its length is set once), so the offset holds.
    all_codes.reserve(len + 63);
    let start = (64 - all_codes.as_ptr() as usize % 64) % 64;
    all_codes.resize(start + len, 0);
    let panel_codes = &mut all_codes[start..];
    panel_factors.resize(panels * bpr * PANEL_ROWS, 0.0);
    let one_panel = |(p, (pc, pf)): (usize, (&mut [u8], &mut [f32]))| {
        let first = p * PANEL_ROWS;
        let last = (first + PANEL_ROWS).min(rows);
        quantize_panel(&x[first * cols..last * cols], cols, rounding, flip, pc, pf);
    };
    let chunks_wide = bpr * 512;
    if x.len() >= 1 << 15 {
        panel_codes
            .par_chunks_mut(chunks_wide)
            .zip(panel_factors.par_chunks_mut(bpr * PANEL_ROWS))
            .enumerate()
            .for_each(one_panel);
    } else {
        panel_codes
            .chunks_mut(chunks_wide)
            .zip(panel_factors.chunks_mut(bpr * PANEL_ROWS))
            .enumerate()
            .for_each(one_panel);
    }
    start
}

/// 8-bit fixed-point activations (`fixed:8.frac`) packed into panels for the kernel table's `mxint8_panel`,
/// in the layout [`quantize_mxint8_panels`] gives MXINT8 codes: each value's code (`fixed::quantize`, as the
/// scalar path computes it) XORed with `flip` (the panel kernel's `MxPanel::code_flip`), every factor
/// 2^-frac. Returns whether any code is −128, the one code MXINT8 never produces
/// (`MxPanel::minus_128_activations` says whether the kernel takes it).
pub fn quantize_fixed8_panels(
    x: &[f32],
    cols: usize,
    (frac, rounding): (u8, Rounding),
    (codes_of, flip): (crate::cpu::kernels::Fixed8Codes, u8),
    panel_codes: &mut Vec<u8>,
    panel_factors: &mut Vec<f32>,
) -> bool {
    use crate::cpu::kernels::reference::PANEL_ROWS;
    let bpr = cols.div_ceil(mx::BLOCK);
    let rows = x.len() / cols.max(1);
    let panels = rows.div_ceil(PANEL_ROWS);
    panel_codes.clear();
    panel_factors.clear();
    if bpr == 0 {
        return false;
    }
    panel_codes.resize(panels * bpr * 512, flip);
    panel_factors.resize(panels * bpr * PANEL_ROWS, 2f32.powi(-i32::from(frac)));
    // One panel: each row's codes (zero-padded to whole blocks), four at a time into their places.
    let one_panel = |(p, panel): (usize, &mut [u8])| -> bool {
        let mut codes = vec![0i8; bpr * mx::BLOCK];
        let mut minus_128 = false;
        let first = p * PANEL_ROWS;
        for i in 0..PANEL_ROWS.min(rows - first) {
            let row = &x[(first + i) * cols..(first + i + 1) * cols];
            codes_of(row, frac, rounding, &mut codes[..cols]);
            minus_128 |= codes.contains(&i8::MIN);
            for (q, four) in codes.chunks_exact(4).enumerate() {
                let at = 512 * (q / 8) + 64 * (q % 8) + 4 * i;
                for (d, &c) in panel[at..at + 4].iter_mut().zip(four) {
                    *d = c as u8 ^ flip;
                }
            }
        }
        minus_128
    };
    let panels_wide = bpr * 512;
    if x.len() >= 1 << 15 {
        use rayon::prelude::*;
        panel_codes
            .par_chunks_mut(panels_wide)
            .enumerate()
            .map(one_panel)
            .reduce(|| false, |a, b| a | b)
    } else {
        panel_codes
            .chunks_mut(panels_wide)
            .enumerate()
            .map(one_panel)
            // Every panel must be filled: no `any`, which would stop at the first −128.
            .fold(false, |a, b| a | b)
    }
}

#[cfg(test)]
mod fixed8_tests {
    use super::*;
    use crate::cpu::kernels::reference::fixed8_codes;

    /// The vectorizable quantizer gives `fixed::quantize`'s code for every kind of value: ties both ways,
    /// saturation, infinities, NaN, values just below and above a half, every fraction width.
    #[test]
    fn fixed8_codes_equal_the_format_quantizer() {
        let mut values: Vec<f32> = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            126.5,
            -127.5,
            127.49,
            -128.49,
            127.5,
            -128.5,
            1e30,
            -1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
            0.49999997,
            -0.49999997,
            0.50000006,
        ];
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..4000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            values.push(((seed >> 11) as f64 / (1u64 << 53) as f64 * 300.0 - 150.0) as f32);
        }
        for frac in [0u8, 1, 3, 7, 12, 30, 64] {
            let scaled: Vec<f32> = values
                .iter()
                .map(|v| v * 2f32.powi(-i32::from(frac)))
                .collect();
            for rounding in [Rounding::Nearest, Rounding::Even] {
                let mut out = vec![0i8; scaled.len()];
                fixed8_codes(&scaled, frac, rounding, &mut out);
                for (v, &q) in scaled.iter().zip(&out) {
                    let want = fixed::quantize(*v, 8, frac, rounding).unwrap_or(0) as i8;
                    assert_eq!(q, want, "{v} F={frac} {rounding:?}");
                }
            }
        }
    }
}
