//! What every CPU linear route shares: when work is worth spreading over the cores, and adding the bias to
//! output rows.

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
