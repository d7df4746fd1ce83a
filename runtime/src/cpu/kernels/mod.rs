//! The CPU backend's kernel tables, one file per instruction-set tier: `reference.rs` (scalar, the numerics
//! every other tier is tested against), `avx2.rs` (AVX2+FMA, and the AVX-VNNI integer kernels of the
//! `avx2vnni` tier; its softmax and LayerNorm in `avx2_norms.rs`), `avx512.rs` (AVX-512 with VNNI; its weight
//! preparation for the panel kernels in `avx512_weights.rs`) and
//! `amx.rs` (the matrix unit). A table starts as the reference and each tier replaces the kernels it speeds
//! up, over the tier below; the features are detected
//! once, when the tables are built. `MXRT_CPU=<tier>` picks a lower tier of those this CPU runs
//! (`reference`, `avx2`, `avx2vnni`, `avx512`, `amx`); `MXRT_FORCE_REFERENCE=1` (the reference) and
//! `MXRT_NO_AMX=1` (the best table without the matrix unit) are older spellings that still work.
//!
//! SIMD kernels that reduce or map a slice work on whole vectors; `ragged.rs` splits each call and handles
//! the values left over, once for every tier.

use crate::error::{Result, RuntimeError};

// The width-generic kernel templates the AVX2 and AVX-512 files instantiate (declared first: macros).
#[cfg(target_arch = "x86_64")]
#[macro_use]
mod x86_templates;
#[cfg(target_arch = "x86_64")]
mod amx;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx2_norms;
#[cfg(target_arch = "x86_64")]
mod avx2_quantize;
#[cfg(target_arch = "x86_64")]
mod avx2_weights;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod avx512_quantize;
#[cfg(target_arch = "x86_64")]
mod avx512_weights;
#[cfg(target_arch = "x86_64")]
mod fixed8;
pub mod fold;
pub mod ragged;
pub mod reference;

use ragged::{Dot, Elementwise, MxDot, SparseDot};

/// `(activation codes, activation f32 scales, weight codes, weight f32 scales, out)`: one output per
/// activation row (see `reference::mxint8_rows`).
pub type MxRows = fn(&[u8], &[f32], &[u8], &[f32], &mut [f32]);

/// `(activations [rows, k] row-major, k, three weight rows, out [rows, 3])`.
pub type F32Rows3 = fn(&[f32], usize, [&[f32]; 3], &mut [f32]);

/// `(activation codes, activation f32 scales, rows, two weight rows (codes, f32 scales), out, ldo)`:
/// `out[i * ldo + c]` for activation row `i` and weight row `c` (see `reference::mxint8_rows2`).
pub type MxRows2 = fn(&[u8], &[f32], usize, [(&[u8], &[f32]); 2], &mut [f32], usize);

/// Groups of 16 MXINT8 weight rows as the panel kernels read them (see `reference::mxint8_panel`).
#[derive(Clone, Copy)]
pub struct PanelWeights<'a> {
    /// Codes, row after row, `32 · bpr` bytes each.
    pub codes: &'a [u8],
    /// The factor of row `r`, block `j` at `r · bpr + j` (`mx::scale_value` of its scale byte).
    pub factors: &'a [f32],
    /// `−128 · Σ codes` of row `r`, block `j` at `r · bpr + j`, for a kernel with an [`MxPanel::unsigned_bias`]
    /// (otherwise empty): `vpdpbusd` multiplies unsigned bytes by signed ones, so such a kernel's panels
    /// hold each activation code `a` as `a + 128` ([`MxPanel::code_flip`]) and it starts the block's sum at
    /// this value to cancel the 128s.
    pub unsigned_bias: &'a [i32],
    /// The bias of each weight row (one per weight row of the groups), added to each of its outputs after
    /// the last block (`out = acc + bias`, as adding it to the stored outputs would); empty: none. In the
    /// kernel, while the outputs are in registers: a separate pass over them was ~3 % of a batch.
    pub bias: &'a [f32],
}

/// `(panel codes, panel factors, blocks per row, weights, out, ldo)`: one panel of 16 MXINT8 activation rows
/// against groups of 16 weight rows (see `reference::mxint8_panel`).
pub type MxPanelFn = fn(&[u8], &[f32], usize, PanelWeights<'_>, &mut [f32], usize);

/// `(weight codes, out)`: one `unsigned_bias` entry per 32-code block (see [`MxPanel::unsigned_bias`]).
pub type UnsignedBias = fn(&[u8], &mut [i32]);

/// `(scale bytes, out)`: see [`MxPanel::scale_factors`].
pub type ScaleFactors = fn(&[u8], &mut [f32]);

/// `(block, rounding, codes) -> scale byte`: see `reference::mxint8_quantize_block`.
pub type QuantizeBlock = fn(&[f32; 32], mxrt_format::Rounding, &mut [u8; 32]) -> u8;

/// `(row, frac, rounding, codes)`: see `reference::fixed8_codes`.
pub type Fixed8Codes = fn(&[f32], u8, mxrt_format::Rounding, &mut [i8]);

/// A panel kernel and what it needs of the weights besides codes and factors.
#[derive(Clone, Copy)]
pub struct MxPanel {
    pub run: MxPanelFn,
    /// For a kernel that reads activation codes as unsigned (`code + 128`): what computes its
    /// [`PanelWeights::unsigned_bias`] from weight codes (whole blocks; one entry per block into `out`),
    /// exactly `reference::panel_unsigned_bias`. `None`: the kernel needs no bias.
    pub unsigned_bias: Option<UnsignedBias>,
    /// Each weight block's factor [`PanelWeights::factors`] from its scale byte, exactly
    /// `reference::scale_factors` (`mx::scale_value`); made per call, so it is vectorized per tier.
    pub scale_factors: ScaleFactors,
    /// Exact for the activation code −128 too (8-bit fixed point's most negative code; MXINT8 never
    /// produces it).
    pub minus_128_activations: bool,
    /// `None`: `run` takes every weight code. Otherwise `run` cannot take the weight code −128 (the AVX2
    /// kernel moves each activation's sign onto the weight with `vpsignb`, which cannot negate −128; MXRT's
    /// converter never writes it, 8-bit fixed point and other writers may), and this kernel, with the same
    /// contract but not exact for the activation code −128, serves matrices that hold it
    /// ([`MxPanel::for_weights`]).
    pub minus_128_weights: Option<MxPanelFn>,
    /// `run` for weights folded for the conversion (`fold`: each block's [`PanelWeights::factors`] entry
    /// its base `1.5 · 2²³ · w_factor`, its [`PanelWeights::unsigned_bias`] entry the sum's start,
    /// `bits(base)` plus the unsigned bias where `run` has one), bit for bit `run`'s results where
    /// `fold::folds_exactly` holds for the panel; `None`: the kernel has no such variant.
    pub folded: Option<MxPanelFn>,
}

impl MxPanel {
    /// The kernel for a weight matrix: this one, or where it cannot take the weight code −128 and
    /// `holds_minus_128()` says the matrix has it, its [`MxPanel::minus_128_weights`] kernel.
    pub fn for_weights(self, holds_minus_128: impl FnOnce() -> bool) -> MxPanel {
        match self.minus_128_weights {
            Some(run) if holds_minus_128() => MxPanel {
                run,
                minus_128_activations: false,
                minus_128_weights: None,
                folded: None,
                ..self
            },
            _ => self,
        }
    }

    /// What the panel's codes are XORed with as they are written: `0x80` (each code stored as `code + 128`)
    /// for a kernel that reads activation codes as unsigned (one with an [`MxPanel::unsigned_bias`]), so it
    /// loads each panel line as it is instead of flipping it once per weight group; 0 (two's complement
    /// codes, as `reference::mxint8_panel` reads them) for the others.
    pub fn code_flip(&self) -> u8 {
        if self.unsigned_bias.is_some() {
            0x80
        } else {
            0
        }
    }
}

/// `(rows, cols, rounding, flip, panel codes, panel factors)`: see [`Kernels::mxint8_quantize_panel`].
pub type QuantizePanel = fn(&[f32], usize, mxrt_format::Rounding, u8, &mut [u8], &mut [f32]);

/// `(out, bias, relu)`: see [`Kernels::add_bias_rows`].
pub type AddBiasRows = fn(&mut [f32], &[f32], bool);

/// `(x, rows, k, packed weights, n, out, ldo)`: see `reference::gemm_f32_packed`.
pub type GemmF32Packed = fn(&[f32], usize, usize, &[f32], usize, &mut [f32], usize, Epilogue<'_>);

/// What the packed GEMM does to each output as it stores it: adds its column's `bias[c]`, then with `relu`
/// takes `v > 0 ? v : 0`: the values `reference::add_bias_rows` gives after the product, without the
/// second pass over the outputs (a small MLP's layers spent a sixth of their time in that pass).
#[derive(Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// One value per output column (`n` of them), or none.
    pub bias: Option<&'a [f32]>,
    pub relu: bool,
}

impl Epilogue<'_> {
    /// The products as they are.
    pub const NONE: Epilogue<'static> = Epilogue {
        bias: None,
        relu: false,
    };
}

/// `(x, k, packed weights, n, out)`: see `reference::gemv_f32_packed`.
pub type GemvF32Packed = fn(&[f32], usize, &[f32], usize, &mut [f32]);

/// `(x, k, packed codes, packed factors, n, out)`: see `reference::gemv_mxint8_packed`.
pub type GemvMxint8Packed = fn(&[f32], usize, &[u8], &[f32], usize, &mut [f32]);

/// `(src, src_ld, rows, cols, dst, dst_ld)`: see `reference::transpose_f32`.
pub type TransposeF32 = fn(&[f32], usize, usize, usize, &mut [f32], usize);

/// `(row, residual, gamma, beta, eps)`: see `reference::layer_norm_row`.
pub type LayerNormRow = fn(&mut [f32], Option<&[f32]>, &[f32], &[f32], f32);

/// A tier's compute-ceiling loops: independent multiply-add chains in registers, no memory traffic.
/// `mxrt bench --kernels` runs them on every thread to report its kernels against this machine's peak.
#[derive(Clone, Copy)]
pub struct PeakLoops {
    /// `iterations` rounds of f32 multiply-adds (returns a value of every chain, so no work is dropped).
    pub f32: fn(u64) -> f32,
    /// Operations per round of `f32` (a multiply-add counts two).
    pub f32_ops: f64,
    /// `iterations` rounds of i8 × i8 multiply-adds into i32.
    pub i8: fn(u64) -> i32,
    pub i8_ops: f64,
    /// What the loops execute, for reports.
    pub what: &'static str,
}

/// The kernel tiers, plainest first, as `MXRT_CPU` (and `MXRT_REQUIRE_SIMD` in the tests) spell them.
pub const TIERS: [&str; 5] = ["reference", "avx2", "avx2vnni", "avx512", "amx"];

/// Kernels used by the ops; every entry has the same contract as its `reference` namesake.
#[derive(Clone, Copy)]
pub struct Kernels {
    /// Name of the instruction set in use (`"reference"`, `"avx2+fma"`, ..., `"avx512vnni+amx"`).
    pub isa: &'static str,
    /// The tier this table is, one of [`TIERS`].
    pub tier: &'static str,
    /// f32 dot product of two slices over their common length (`.dot(a, b)`).
    pub dot_f32: Dot<f32, f32>,
    /// Three weight rows against many activation rows (`reference::dot_f32_rows3`).
    pub dot_f32_rows3: F32Rows3,
    /// Activations × a transposed, packed weight matrix (`reference::gemm_f32_packed`).
    pub gemm_f32_packed: GemmF32Packed,
    /// One row × the same packed matrix, four partial sums per output (`reference::gemv_f32_packed`, bit for
    /// bit): one sample of a small MLP.
    pub gemv_f32_packed: GemvF32Packed,
    /// The same from MXINT8 codes decoded in registers (`reference::gemv_mxint8_packed`, bit for bit
    /// `gemv_f32_packed` on the decoded weights).
    pub gemv_mxint8_packed: GemvMxint8Packed,
    /// A block of f32 rows transposed into another matrix (`reference::transpose_f32`; exact: values are
    /// only moved).
    pub transpose_f32: TransposeF32,
    /// A dense MXINT8 weight row · f32 activations, decoded in registers (`reference::mxint8_dot_f32`;
    /// `.dot(codes, steps, x)`).
    pub mxint8_dot_f32: MxDot,
    /// Integer dot product of two byte slices read as two's complement i8, in i32 (`.dot(a, b)`).
    pub dot_i8: Dot<u8, i32>,
    /// MXINT8 activation rows · one MXINT8 weight row, exactly as `reference::mxint8_rows` defines it.
    pub mxint8_rows: MxRows,
    /// The same for two weight rows at once (each activation block is loaded once for both).
    pub mxint8_rows2: MxRows2,
    /// Where the tier has one (AVX2, AVX-VNNI, AVX-512 VNNI, AMX): MXINT8 × MXINT8 a panel of 16 activation
    /// rows at a time, each block summed exactly before it is scaled (`reference::mxint8_panel`). The ops
    /// then pack activations into panels and use this instead of `mxint8_rows`/`mxint8_rows2` (whose
    /// per-lane order differs in the last bits, so a table uses one or the other for every MXINT8 × MXINT8
    /// product; the row kernels serve the table without one: the reference).
    pub mxint8_panel: Option<MxPanel>,
    /// One block of 32 activations to MXINT8 codes and scale byte (`reference::mxint8_quantize_block`).
    pub mxint8_quantize_block: QuantizeBlock,
    /// `(rows, cols, rounding, flip, codes, factors)`: up to 16 rows of activations (`rows.len() / cols`
    /// of them) quantized straight into one panel, codes and factors in the layout of
    /// `reference::mxint8_panel`, each code XORed with `flip` ([`MxPanel::code_flip`]) and rows past the
    /// last code 0 with factor 0: exactly what `reference::mxint8_quantize_block` on each zero-padded block,
    /// then `quant::pack_mxint8_panels`, gives (`reference::mxint8_quantize_panel`).
    pub mxint8_quantize_panel: QuantizePanel,
    /// A row of activations to `fixed:8.F` codes (`reference::fixed8_codes`, the same arithmetic compiled
    /// for the tier's vector width: bit for bit its codes).
    pub fixed8_codes: Fixed8Codes,
    /// `e^x` in place (`.apply(x)`; SIMD versions within 2 ulp of the reference on [-87, 88]; below, as
    /// small as it).
    pub exp_in_place: Elementwise,
    /// Exact-erf GELU in place (`.apply(x)`; SIMD versions: erf within 2e-7 absolute of the reference's).
    pub gelu_in_place: Elementwise,
    /// `(row, residual, gamma, beta, eps)`: one LayerNorm row after a residual add (`reference::layer_norm_row`;
    /// SIMD versions sum in another order, in f64).
    pub layer_norm_row: LayerNormRow,
    /// Masked, scaled softmax of one attention score row (`reference::softmax_masked`; SIMD versions sum in
    /// another order and multiply by the sum's reciprocal).
    pub softmax_masked: fn(&mut [f32], &[u8], f32),
    /// Sparse weight row (values, column indices) · dense row (`.dot(values, cols, x)`).
    pub sparse_dot: SparseDot,
    /// `(out, bias, relu)`: `bias` added to every row of `out` (rows as wide as `bias`), then with `relu`
    /// each value `v > 0 ? v : 0` (`reference::add_bias_rows`; every tier bit for bit: one add and one
    /// comparison per value).
    pub add_bias_rows: AddBiasRows,
    /// The tier's compute-ceiling loops (benchmarks only).
    pub peaks: PeakLoops,
}

impl Kernels {
    pub fn reference() -> Kernels {
        Kernels {
            isa: "reference",
            tier: "reference",
            dot_f32: Dot::whole(reference::dot_f32),
            dot_f32_rows3: reference::dot_f32_rows3,
            gemm_f32_packed: reference::gemm_f32_packed,
            gemv_f32_packed: reference::gemv_f32_packed,
            gemv_mxint8_packed: reference::gemv_mxint8_packed,
            transpose_f32: reference::transpose_f32,
            mxint8_dot_f32: MxDot::whole(reference::mxint8_dot_f32),
            dot_i8: Dot::whole(reference::dot_i8),
            mxint8_rows: reference::mxint8_rows,
            mxint8_rows2: reference::mxint8_rows2,
            mxint8_panel: None,
            mxint8_quantize_block: reference::mxint8_quantize_block,
            mxint8_quantize_panel: reference::mxint8_quantize_panel,
            fixed8_codes: reference::fixed8_codes,
            exp_in_place: Elementwise::whole(reference::exp_in_place),
            gelu_in_place: Elementwise::whole(reference::gelu_in_place),
            softmax_masked: reference::softmax_masked,
            layer_norm_row: reference::layer_norm_row,
            sparse_dot: SparseDot::whole(reference::sparse_dot),
            add_bias_rows: reference::add_bias_rows,
            peaks: PeakLoops {
                f32: reference::peak_f32,
                f32_ops: reference::PEAK_OPS,
                i8: reference::peak_i8,
                i8_ops: reference::PEAK_OPS,
                what: "scalar multiply-add loops (as compiled for the baseline target)",
            },
        }
    }

    /// The scalar reference with this table's choice of MXINT8 × MXINT8 path (rows or panels), so ops on
    /// the two tables must agree bit for bit on that integer path.
    pub fn reference_for(&self) -> Kernels {
        Kernels {
            mxint8_panel: self.mxint8_panel.map(|_| MxPanel {
                run: reference::mxint8_panel,
                unsigned_bias: None,
                scale_factors: reference::scale_factors,
                minus_128_activations: true,
                minus_128_weights: None,
                folded: None,
            }),
            ..Kernels::reference()
        }
    }

    /// Every fast table this CPU can run (e.g. AVX2+FMA, and AVX2+FMA+AVX-VNNI), for tests that check each
    /// one against the reference; empty when only the reference runs here.
    pub fn available() -> Vec<Kernels> {
        #[cfg(target_arch = "x86_64")]
        return x86_tables();
        #[cfg(not(target_arch = "x86_64"))]
        Vec::new()
    }

    /// The kernels the environment asks for (see the module documentation), else the best this CPU runs. An
    /// unknown tier, or one this CPU does not run, is an error that names the tiers it does run.
    pub fn from_env() -> Result<Kernels> {
        let asked = std::env::var("MXRT_CPU").ok();
        let force_reference =
            std::env::var_os("MXRT_FORCE_REFERENCE").is_some_and(|v| !v.is_empty() && v != "0");
        Kernels::select(asked.as_deref(), force_reference, Kernels::available())
    }

    /// The best table for this CPU, as [`Kernels::from_env`] picks it when neither `MXRT_CPU` nor
    /// `MXRT_FORCE_REFERENCE` is set.
    pub fn detect() -> Kernels {
        Kernels::available()
            .pop()
            .unwrap_or_else(Kernels::reference)
    }

    /// The table `asked` names among `tables` (this CPU's fast tables, plainest first) or the reference;
    /// without a name, the reference when `force_reference`, else the best of `tables`. `MXRT_CPU` wins over
    /// `MXRT_FORCE_REFERENCE` when both are set.
    pub fn select(
        asked: Option<&str>,
        force_reference: bool,
        tables: Vec<Kernels>,
    ) -> Result<Kernels> {
        let Some(name) = asked.map(str::trim).filter(|n| !n.is_empty()) else {
            return Ok(match tables.last() {
                Some(best) if !force_reference => *best,
                _ => Kernels::reference(),
            });
        };
        let name = name.to_ascii_lowercase();
        if name == "reference" {
            return Ok(Kernels::reference());
        }
        if let Some(k) = tables.iter().find(|k| k.tier == name) {
            return Ok(*k);
        }
        let reason = if TIERS.contains(&name.as_str()) {
            let runs: Vec<&str> = std::iter::once("reference")
                .chain(tables.iter().map(|k| k.tier))
                .collect();
            let no_amx = if name == "amx" && std::env::var_os("MXRT_NO_AMX").is_some() {
                "; MXRT_NO_AMX is set"
            } else {
                ""
            };
            format!(
                "this CPU does not run the {name} kernels (it runs: {}{no_amx})",
                runs.join(", ")
            )
        } else {
            format!("unknown kernel tier (one of: {})", TIERS.join(", "))
        };
        Err(RuntimeError::CpuTier {
            value: asked.unwrap_or_default().to_string(),
            reason,
        })
    }
}

#[cfg(target_arch = "x86_64")]
/// Every x86-64 table this CPU runs, from the plainest to the best: each tier's kernels over the tier below.
fn x86_tables() -> Vec<Kernels> {
    let mut out = Vec::new();
    if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
        return out;
    }
    let avx2_table = Kernels {
        isa: "avx2+fma",
        tier: "avx2",
        dot_f32: Dot::vectors(8, avx2::dot_f32),
        dot_f32_rows3: avx2::dot_f32_rows3,
        gemm_f32_packed: avx2::gemm_f32_packed,
        gemv_f32_packed: avx2::gemv_f32_packed,
        gemv_mxint8_packed: avx2::gemv_mxint8_packed,
        transpose_f32: avx2::transpose_f32,
        mxint8_dot_f32: MxDot::blocks(avx2::mxint8_dot_f32),
        dot_i8: Dot::vectors(32, avx2::dot_i8),
        mxint8_rows: avx2::mxint8_rows,
        mxint8_rows2: avx2::mxint8_rows2,
        mxint8_panel: Some(MxPanel {
            run: avx2::mxint8_panel,
            unsigned_bias: None,
            scale_factors: avx2_weights::scale_factors_entry,
            minus_128_activations: true,
            minus_128_weights: Some(avx2::mxint8_panel_any_weights),
            folded: Some(avx2::mxint8_panel_folded),
        }),
        mxint8_quantize_block: avx2::mxint8_quantize_block,
        mxint8_quantize_panel: avx2_quantize::mxint8_quantize_panel_entry,
        fixed8_codes: fixed8::fixed8_codes_avx2_entry,
        exp_in_place: avx2::EXP,
        gelu_in_place: avx2::GELU,
        softmax_masked: avx2_norms::softmax_masked,
        layer_norm_row: avx2_norms::layer_norm_row,
        sparse_dot: SparseDot::vectors(8, avx2::sparse_dot),
        add_bias_rows: avx2_norms::add_bias_rows,
        peaks: PeakLoops {
            f32: avx2::peak_f32,
            f32_ops: avx2::PEAK_OPS_F32,
            i8: avx2::peak_i8,
            i8_ops: avx2::PEAK_OPS_I8,
            what: "vfmadd (ymm) and vpmaddubsw+vpmaddwd (ymm) loops",
        },
    };
    out.push(avx2_table);
    if is_x86_feature_detected!("avxvnni") {
        out.push(Kernels {
            isa: "avx2+fma+avxvnni",
            tier: "avx2vnni",
            mxint8_rows: avx2::mxint8_rows_vnni_entry,
            mxint8_rows2: avx2::mxint8_rows2_vnni_entry,
            mxint8_panel: Some(MxPanel {
                run: avx2::mxint8_panel_vnni_entry,
                unsigned_bias: Some(avx2_weights::unsigned_bias_entry),
                scale_factors: avx2_weights::scale_factors_entry,
                minus_128_activations: true,
                minus_128_weights: None,
                folded: Some(avx2::mxint8_panel_vnni_folded_entry),
            }),
            peaks: PeakLoops {
                i8: avx2::peak_i8_vnni_entry,
                what: "vfmadd (ymm) and vpdpbusd (ymm) loops",
                ..avx2_table.peaks
            },
            ..avx2_table
        });
    }
    if is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx512vnni")
        && is_x86_feature_detected!("avx512vl")
    {
        out.push(Kernels {
            isa: "avx512vnni",
            tier: "avx512",
            dot_f32_rows3: avx512::dot_f32_rows3_avx512_entry,
            exp_in_place: avx512::EXP,
            gelu_in_place: avx512::GELU,
            gemm_f32_packed: avx512::gemm_f32_packed_avx512_entry,
            gemv_f32_packed: avx512::gemv_f32_packed_avx512_entry,
            gemv_mxint8_packed: avx512::gemv_mxint8_packed_avx512_entry,
            transpose_f32: avx512::transpose_f32_avx512_entry,
            softmax_masked: avx512::softmax_masked_avx512_entry,
            mxint8_quantize_block: avx512_quantize::mxint8_quantize_block_avx512_entry,
            mxint8_quantize_panel: avx512_quantize::mxint8_quantize_panel_entry,
            fixed8_codes: fixed8::fixed8_codes_avx512_entry,
            mxint8_dot_f32: MxDot::blocks(avx512::mxint8_dot_f32_avx512_entry),
            mxint8_panel: Some(MxPanel {
                run: avx512::mxint8_panel_avx512_entry,
                unsigned_bias: Some(avx512_weights::unsigned_bias_avx512_entry),
                scale_factors: avx512_weights::scale_factors_avx512_entry,
                minus_128_activations: true,
                minus_128_weights: None,
                folded: Some(avx512::mxint8_panel_folded_avx512_entry),
            }),
            layer_norm_row: avx512::layer_norm_row_avx512_entry,
            add_bias_rows: avx512::add_bias_rows_avx512_entry,
            peaks: PeakLoops {
                f32: avx512::peak_f32,
                f32_ops: avx512::PEAK_OPS_F32,
                i8: avx512::peak_i8,
                i8_ops: avx512::PEAK_OPS_I8,
                what: "vfmadd (zmm) and vpdpbusd (zmm) loops",
            },
            ..*out.last().unwrap_or(&avx2_table)
        });
        // MXRT_NO_AMX=1 leaves the matrix unit out (to compare the AVX-512 VNNI path on the same machine).
        let no_amx = std::env::var_os("MXRT_NO_AMX").is_some_and(|v| v != "0");
        if amx::enabled() && !no_amx {
            out.push(Kernels {
                isa: "avx512vnni+amx",
                tier: "amx",
                mxint8_panel: Some(MxPanel {
                    run: amx::mxint8_panel,
                    unsigned_bias: None,
                    scale_factors: avx512_weights::scale_factors_avx512_entry,
                    minus_128_activations: true,
                    minus_128_weights: None,
                    folded: None,
                }),
                peaks: PeakLoops {
                    i8: amx::peak_i8,
                    i8_ops: amx::PEAK_OPS_I8,
                    what: "vfmadd (zmm) and tdpbssd (AMX tiles) loops",
                    ..out.last().map_or(avx2_table.peaks, |k| k.peaks)
                },
                ..*out.last().unwrap_or(&avx2_table)
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Kernels;

    /// Stand-ins for a CPU's fast tables (selection looks at names only).
    fn tables(tiers: &[(&'static str, &'static str)]) -> Vec<Kernels> {
        tiers
            .iter()
            .map(|&(tier, isa)| Kernels {
                tier,
                isa,
                ..Kernels::reference()
            })
            .collect()
    }

    #[test]
    fn mxrt_cpu_picks_a_tier_this_cpu_runs() {
        let zen4 = tables(&[("avx2", "avx2+fma"), ("avx512", "avx512vnni")]);
        let pick = |asked, force| Kernels::select(asked, force, zen4.clone()).map(|k| k.isa);
        assert_eq!(pick(None, false).unwrap(), "avx512vnni");
        assert_eq!(pick(Some(""), false).unwrap(), "avx512vnni");
        assert_eq!(pick(None, true).unwrap(), "reference");
        assert_eq!(pick(Some("reference"), false).unwrap(), "reference");
        assert_eq!(pick(Some("AVX2"), false).unwrap(), "avx2+fma");
        assert_eq!(pick(Some(" avx512 "), false).unwrap(), "avx512vnni");
        // MXRT_CPU wins over the older MXRT_FORCE_REFERENCE.
        assert_eq!(pick(Some("avx2"), true).unwrap(), "avx2+fma");
        assert_eq!(
            Kernels::select(None, false, Vec::new()).unwrap().isa,
            "reference"
        );
    }

    #[test]
    fn mxrt_cpu_names_what_this_cpu_runs_when_it_cannot() {
        let zen4 = tables(&[("avx2", "avx2+fma"), ("avx512", "avx512vnni")]);
        let err = |asked| {
            Kernels::select(Some(asked), false, zen4.clone())
                .err()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            err("avx2vnni"),
            "MXRT_CPU=avx2vnni: this CPU does not run the avx2vnni kernels \
             (it runs: reference, avx2, avx512)"
        );
        assert_eq!(
            err("sse2"),
            "MXRT_CPU=sse2: unknown kernel tier (one of: reference, avx2, avx2vnni, avx512, amx)"
        );
    }
}
