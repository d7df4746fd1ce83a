//! Writes a small synthetic checkpoint (safetensors) that exercises every path of `mxrt convert`: dense weights
//! (quantized), a pruned weight (stored sparse), 1-D biases (kept exact), an F16 embedding, an integer buffer
//! (copied as is). Usage: `make_tensors OUT.safetensors`. Deterministic: the same bytes on every machine.

use rand::{rngs::StdRng, Rng, SeedableRng};
use safetensors::{tensor::TensorView, Dtype};

fn gaussian(rng: &mut StdRng, n: usize, std: f32) -> Vec<f32> {
    // Box-Muller: plenty for synthetic weights.
    (0..n)
        .map(|_| {
            let (u, v): (f32, f32) = (rng.gen_range(f32::EPSILON..1.0), rng.gen());
            std * (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .ok_or("usage: make_tensors OUT.safetensors")?;
    let mut rng = StdRng::seed_from_u64(2026);
    let w0 = gaussian(&mut rng, 256 * 128, 0.05);
    let mut w1 = gaussian(&mut rng, 64 * 256, 0.08);
    // Magnitude-prune 90 % of layer 1, as a pruned checkpoint would arrive.
    let mut mags: Vec<f32> = w1.iter().map(|v| v.abs()).collect();
    mags.sort_by(f32::total_cmp);
    let threshold = mags[mags.len() * 9 / 10];
    w1.iter_mut()
        .filter(|v| v.abs() < threshold)
        .for_each(|v| *v = 0.0);
    let b0 = gaussian(&mut rng, 256, 0.01);
    let emb: Vec<half::f16> = gaussian(&mut rng, 1000 * 64, 0.1)
        .into_iter()
        .map(half::f16::from_f32)
        .collect();
    let positions: Vec<i64> = (0..128).collect();

    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (w0b, w1b, b0b) = (f32_bytes(&w0), f32_bytes(&w1), f32_bytes(&b0));
    let embb: Vec<u8> = emb.iter().flat_map(|x| x.to_le_bytes()).collect();
    let posb: Vec<u8> = positions.iter().flat_map(|x| x.to_le_bytes()).collect();
    let tensors = vec![
        (
            "layers.0.weight",
            TensorView::new(Dtype::F32, vec![256, 128], &w0b)?,
        ),
        (
            "layers.0.bias",
            TensorView::new(Dtype::F32, vec![256], &b0b)?,
        ),
        (
            "layers.1.weight",
            TensorView::new(Dtype::F32, vec![64, 256], &w1b)?,
        ),
        (
            "embedding.weight",
            TensorView::new(Dtype::F16, vec![1000, 64], &embb)?,
        ),
        (
            "position_ids",
            TensorView::new(Dtype::I64, vec![128], &posb)?,
        ),
    ];
    std::fs::write(&out, safetensors::serialize(tensors, &None)?)?;
    eprintln!("wrote {out}");
    Ok(())
}
