//! Running a model over many inputs: texts are sorted by length and batched (less padding), and the outputs
//! are returned in input order.

use anyhow::Result;
use mxrt_runtime::Model;

use mxrt_runtime::TextEncoder;

/// One output row per text (`[width]` each), in input order; `after_batch` runs after every batch (memory
/// sampling).
pub fn run_texts(
    model: &Model,
    encoder: &TextEncoder,
    texts: &[&str],
    batch_size: usize,
    after_batch: &mut dyn FnMut(),
) -> Result<(Vec<Vec<f32>>, usize)> {
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| texts[i].len());
    let mut out = vec![Vec::new(); texts.len()];
    let mut width = 0;
    for chunk in order.chunks(batch_size.max(1)) {
        let batch_texts: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
        let batch = encoder.batch(&batch_texts)?;
        let result = model.run_bert(&batch, false)?;
        width = result.width;
        for (k, &i) in chunk.iter().enumerate() {
            out[i] = result.values[k * width..(k + 1) * width].to_vec();
        }
        after_batch();
    }
    Ok((out, width))
}

/// Softmax of one row of logits.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|v| v / sum).collect()
}

/// Index of the largest value (the first on ties).
pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}
