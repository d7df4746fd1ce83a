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
    let inputs: Vec<(&str, Option<&str>)> = texts.iter().map(|t| (*t, None)).collect();
    run_text_inputs(model, encoder, &inputs, batch_size, after_batch)
}

/// As [`run_texts`], for texts and sentence pairs (`(a, Some(b))`).
pub fn run_text_inputs(
    model: &Model,
    encoder: &TextEncoder,
    inputs: &[(&str, Option<&str>)],
    batch_size: usize,
    after_batch: &mut dyn FnMut(),
) -> Result<(Vec<Vec<f32>>, usize)> {
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by_key(|&i| inputs[i].0.len() + inputs[i].1.map_or(0, str::len));
    let mut out = vec![Vec::new(); inputs.len()];
    let mut width = 0;
    for chunk in order.chunks(batch_size.max(1)) {
        let batch_inputs: Vec<(&str, Option<&str>)> = chunk.iter().map(|&i| inputs[i]).collect();
        let batch = encoder.batch_inputs(&batch_inputs)?;
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
