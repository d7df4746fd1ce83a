//! Running a model over many inputs: the library's batching (texts sorted by length, outputs in input order)
//! and its softmax / argmax, named here for the commands.

use anyhow::Result;
use mxrt_runtime::{Model, TextEncoder};

pub use mxrt_runtime::{argmax, run_text_inputs, softmax};

/// One output row per text (`[width]` each), in input order; `after_batch` runs after every batch (memory
/// sampling).
pub fn run_texts(
    model: &Model,
    encoder: &TextEncoder,
    texts: &[&str],
    batch_size: usize,
    after_batch: &mut dyn FnMut(),
) -> Result<Vec<Vec<f32>>> {
    let inputs: Vec<(&str, Option<&str>)> = texts.iter().map(|t| (*t, None)).collect();
    Ok(run_text_inputs(
        model,
        encoder,
        &inputs,
        batch_size,
        after_batch,
    )?)
}
