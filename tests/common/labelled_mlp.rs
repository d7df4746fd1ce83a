//! A small labelled MLP checkpoint (safetensors + config.json + data.csv), self-contained: the sweep and
//! calibration tests run on it without ../shared.

use std::path::Path;

use super::write_f32_tensors;

/// Deterministic pseudo-random values in [-scale, scale).
pub fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// A 32-64-5 MLP (linear, relu, linear, softmax; rows of 32 and 64 are whole MX blocks) and 300 labelled
/// rows: 32 features + 5 one-hot columns. Four rows in five carry the FP32 model's own prediction as label
/// and the fifth a random one, so the FP32 accuracy is about 84 %, not chance.
pub fn write_mlp(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let (w1, b1) = (values(64 * 32, 1, 0.5), values(64, 2, 0.1));
    let (w2, b2) = (values(5 * 64, 3, 0.4), values(5, 4, 0.1));
    write_f32_tensors(
        &dir.join("model.safetensors"),
        &[
            ("fc1.weight", vec![64, 32], w1.clone()),
            ("fc1.bias", vec![64], b1.clone()),
            ("out.weight", vec![5, 64], w2.clone()),
            ("out.bias", vec![5], b2.clone()),
        ],
    );
    let config = serde_json::json!({
        "model_type": "mlp", "num_features": 32, "labels": ["a", "b", "c", "d", "e"],
        "layers": [{"op": "linear", "name": "fc1"}, {"op": "relu"}, {"op": "linear", "name": "out"}, {"op": "softmax"}]
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let x = values(300 * 32, 5, 2.0);
    let noise = values(300, 6, 1.0);
    let mut csv = String::new();
    for (i, row) in x.chunks(32).enumerate() {
        let hidden: Vec<f32> = w1
            .chunks(32)
            .zip(&b1)
            .map(|(w, b)| (w.iter().zip(row).map(|(a, b)| a * b).sum::<f32>() + b).max(0.0))
            .collect();
        let logits: Vec<f32> = w2
            .chunks(64)
            .zip(&b2)
            .map(|(w, b)| w.iter().zip(&hidden).map(|(a, b)| a * b).sum::<f32>() + b)
            .collect();
        let predicted = (0..5).fold(0, |b, k| if logits[k] > logits[b] { k } else { b });
        let label = if i % 5 == 4 {
            ((noise[i] + 1.0) * 2.5) as usize % 5
        } else {
            predicted
        };
        let mut fields: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        fields.extend((0..5).map(|k| if k == label { "1" } else { "0" }.to_string()));
        csv.push_str(&fields.join(","));
        csv.push('\n');
    }
    std::fs::write(dir.join("data.csv"), csv).unwrap();
}
