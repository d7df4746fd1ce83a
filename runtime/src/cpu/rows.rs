//! What every CPU linear route shares: when work is worth spreading over the cores, adding the bias to
//! output rows, and transposing blocks of rows.

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

/// `dst[c * dst_ld + r] = src[r * src_ld + c]` for `r < rows`, `c < cols`, in 16 × 16 blocks: a block's 16
/// source and 16 destination lines stay in L1 while it is copied (a whole row or column at a time missed
/// the cache on every strided access).
pub(crate) fn transpose_into(
    src: &[f32],
    src_ld: usize,
    rows: usize,
    cols: usize,
    dst: &mut [f32],
    dst_ld: usize,
) {
    const B: usize = 16;
    for r0 in (0..rows).step_by(B) {
        let r1 = (r0 + B).min(rows);
        for c0 in (0..cols).step_by(B) {
            let c1 = (c0 + B).min(cols);
            if r1 - r0 == B && c1 - c0 == B {
                let mut block = [[0.0f32; B]; B];
                for (r, b) in block.iter_mut().enumerate() {
                    b.copy_from_slice(&src[(r0 + r) * src_ld + c0..][..B]);
                }
                for c in 0..B {
                    let d = &mut dst[(c0 + c) * dst_ld + r0..][..B];
                    for (r, d) in d.iter_mut().enumerate() {
                        *d = block[r][c];
                    }
                }
            } else {
                for r in r0..r1 {
                    for c in c0..c1 {
                        dst[c * dst_ld + r] = src[r * src_ld + c];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_into_moves_every_value_across_whole_and_ragged_blocks() {
        for (rows, cols) in [(1, 1), (16, 16), (17, 33), (48, 5), (3, 70)] {
            let (src_ld, dst_ld) = (cols + 2, rows + 3);
            let src: Vec<f32> = (0..rows * src_ld).map(|v| v as f32).collect();
            let mut dst = vec![-1.0f32; cols * dst_ld];
            transpose_into(&src, src_ld, rows, cols, &mut dst, dst_ld);
            for c in 0..cols {
                for r in 0..dst_ld {
                    let want = if r < rows { src[r * src_ld + c] } else { -1.0 };
                    assert_eq!(dst[c * dst_ld + r], want, "{rows}x{cols} at ({r}, {c})");
                }
            }
        }
    }
}
