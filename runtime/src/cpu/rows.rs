//! What every CPU linear route shares: when work is worth spreading over the cores, adding the bias to
//! output rows, and the output of an empty product.

/// Below this many multiply-adds an op runs on the calling thread (rayon's overhead would dominate).
pub(crate) const PARALLEL_WORK: usize = 1 << 16;

/// Adds `bias` to every row of `out` (rows of `bias.len()` values).
pub(crate) fn add_bias_rows(out: &mut [f32], bias: Option<&[f32]>) {
    if let Some(b) = bias {
        for row in out.chunks_mut(b.len().max(1)) {
            row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
        }
    }
}

/// The output of a product with no weight rows or no inputs per row: `len` values of bias (zero without
/// one), through `post`.
pub(crate) fn outputs_of_an_empty_product(
    len: usize,
    bias: Option<&[f32]>,
    post: Option<crate::cpu::kernels::ragged::Elementwise>,
) -> Vec<f32> {
    let mut out = vec![0.0f32; len];
    add_bias_rows(&mut out, bias);
    if let Some(f) = post {
        f.apply(&mut out);
    }
    out
}
