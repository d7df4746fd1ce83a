//! The CPU backend's kernel table: filled with the scalar reference, then upgraded to AVX2+FMA versions when
//! the CPU has them (detected once, when the table is built). `MXRT_FORCE_REFERENCE=1` keeps the reference.

#[cfg(target_arch = "x86_64")]
pub mod amx;
pub mod reference;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

/// `(activation codes, activation f32 scales, weight codes, weight f32 scales, out)`: one output per
/// activation row (see `reference::mxint8_rows`).
pub type MxRows = fn(&[u8], &[f32], &[u8], &[f32], &mut [f32]);

/// `(activations [rows, k] row-major, k, three weight rows, out [rows, 3])`.
pub type F32Rows3 = fn(&[f32], usize, [&[f32]; 3], &mut [f32]);

/// `(activation codes, activation f32 scales, rows, two weight rows (codes, f32 scales), out, ldo)`:
/// `out[i * ldo + c]` for activation row `i` and weight row `c` (see `reference::mxint8_rows2`).
pub type MxRows2 = fn(&[u8], &[f32], usize, [(&[u8], &[f32]); 2], &mut [f32], usize);

/// `(panel codes, panel factors, blocks per row, weight codes, weight factors, out, ldo)`: one panel of 16
/// MXINT8 activation rows against groups of 16 weight rows (see `reference::mxint8_panel`).
pub type MxPanel = fn(&[u8], &[f32], usize, &[u8], &[f32], &mut [f32], usize);

/// `(x, rows, k, packed weights, n, out, ldo)`: see `reference::gemm_f32_packed`.
pub type GemmF32Packed = fn(&[f32], usize, usize, &[f32], usize, &mut [f32], usize);

/// `(row, residual, gamma, beta, eps)`: see `reference::layer_norm_row`.
pub type LayerNormRow = fn(&mut [f32], Option<&[f32]>, &[f32], &[f32], f32);

/// Kernels used by the ops; every entry has the same contract as its `reference` namesake.
#[derive(Clone, Copy)]
pub struct Kernels {
    /// Name of the instruction set in use (`"reference"` or `"avx2+fma"`).
    pub isa: &'static str,
    /// f32 dot product of two equal-length slices.
    pub dot_f32: fn(&[f32], &[f32]) -> f32,
    /// Three weight rows against many activation rows (`reference::dot_f32_rows3`).
    pub dot_f32_rows3: F32Rows3,
    /// Activations × a transposed, packed weight matrix (`reference::gemm_f32_packed`).
    pub gemm_f32_packed: GemmF32Packed,
    /// A dense MXINT8 weight row · f32 activations, decoded in registers (`reference::mxint8_dot_f32`).
    pub mxint8_dot_f32: fn(&[u8], &[f32], &[f32]) -> f32,
    /// Integer dot product of two equal-length byte slices read as two's complement i8, in i32.
    pub dot_i8: fn(&[u8], &[u8]) -> i32,
    /// MXINT8 activation rows · one MXINT8 weight row, exactly as `reference::mxint8_rows` defines it.
    pub mxint8_rows: MxRows,
    /// The same for two weight rows at once (each activation block is loaded once for both).
    pub mxint8_rows2: MxRows2,
    /// Where the CPU has a matrix unit (AMX): MXINT8 × MXINT8 a panel of 16 activation rows at a time, each
    /// block summed exactly before it is scaled (`reference::mxint8_panel`). The ops then pack activations
    /// into panels and use this instead of `mxint8_rows`/`mxint8_rows2` (whose per-lane order differs in the
    /// last bits, so a table uses one or the other for every MXINT8 × MXINT8 product).
    pub mxint8_panel: Option<MxPanel>,
    /// One block of 32 activations to MXINT8 codes and scale byte (`reference::mxint8_quantize_block`).
    pub mxint8_quantize_block: fn(&[f32; 32], mxrt_format::Rounding, &mut [u8; 32]) -> u8,
    /// `e^x` in place (SIMD versions within 2 ulp of the reference on [-87, 88]; below, as small as it).
    pub exp_in_place: fn(&mut [f32]),
    /// Exact-erf GELU in place (SIMD versions: erf within 2e-7 absolute of the reference's).
    pub gelu_in_place: fn(&mut [f32]),
    /// `(row, residual, gamma, beta, eps)`: one LayerNorm row after a residual add (`reference::layer_norm_row`;
    /// SIMD versions sum in another order, in f64).
    pub layer_norm_row: LayerNormRow,
    /// Masked, scaled softmax of one attention score row (`reference::softmax_masked`).
    pub softmax_masked: fn(&mut [f32], &[u8], f32),
    /// Sparse weight row (values, column indices) · dense row.
    pub sparse_dot: fn(&[f32], &[u32], &[f32]) -> f32,
}

impl Kernels {
    pub fn reference() -> Kernels {
        Kernels {
            isa: "reference",
            dot_f32: reference::dot_f32,
            dot_f32_rows3: reference::dot_f32_rows3,
            gemm_f32_packed: reference::gemm_f32_packed,
            mxint8_dot_f32: reference::mxint8_dot_f32,
            dot_i8: reference::dot_i8,
            mxint8_rows: reference::mxint8_rows,
            mxint8_rows2: reference::mxint8_rows2,
            mxint8_panel: None,
            mxint8_quantize_block: reference::mxint8_quantize_block,
            exp_in_place: reference::exp_in_place,
            gelu_in_place: reference::gelu_in_place,
            softmax_masked: reference::softmax_masked,
            layer_norm_row: reference::layer_norm_row,
            sparse_dot: reference::sparse_dot,
        }
    }

    /// The scalar reference with this table's choice of MXINT8 × MXINT8 path (rows or panels), so ops on
    /// the two tables must agree bit for bit on that integer path.
    pub fn reference_for(&self) -> Kernels {
        Kernels {
            mxint8_panel: self
                .mxint8_panel
                .map(|_| reference::mxint8_panel as MxPanel),
            ..Kernels::reference()
        }
    }

    /// Every fast table this CPU can run (e.g. AVX2+FMA, and AVX2+FMA+AVX-VNNI), for tests that check each
    /// one against the reference; empty when only the reference runs here.
    pub fn available() -> Vec<Kernels> {
        #[cfg(target_arch = "x86_64")]
        return x86_64::tables();
        #[cfg(not(target_arch = "x86_64"))]
        Vec::new()
    }

    /// The best kernels for this CPU.
    pub fn detect() -> Kernels {
        let mut k = Kernels::reference();
        if std::env::var_os("MXRT_FORCE_REFERENCE").is_some_and(|v| v != "0") {
            return k;
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(fast) = x86_64::kernels() {
            k = fast;
        }
        k
    }
}
