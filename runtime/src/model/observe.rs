//! Running a model while watching its layers: every linear layer's input handed to a callback (calibration
//! measures activation ranges this way). On the CPU, whatever backend the model was moved to: it is a
//! measurement, not a fast path.

use super::Model;
use crate::error::{InputError, Result};
use crate::graphs::bert::BertOutput;
use crate::graphs::Graph;
use crate::ops::observe::{Observed, Seen};
use crate::ops::TokenBatch;

impl Model {
    /// One BERT forward pass that shows `seen` each linear layer's input before the layer runs: the names of
    /// the layers reading it (query, key and value share one input) and the values, `[rows, in]` row-major,
    /// padding rows included (a batch of one sequence has none).
    pub fn observe_bert(&self, batch: &TokenBatch, seen: &mut Seen<'_>) -> Result<BertOutput> {
        match &self.graph {
            Graph::Bert(b) => b.forward(&Observed::new(&self.cpu_exec(), seen), batch, false),
            Graph::Mlp(_) => Err(InputError::NotText.into()),
        }
    }

    /// The MLP on `rows` feature rows, showing `seen` each linear layer's input (as [`Model::observe_bert`]).
    pub fn observe_mlp(&self, x: &[f32], rows: usize, seen: &mut Seen<'_>) -> Result<Vec<f32>> {
        match &self.graph {
            Graph::Mlp(m) => m.forward(&Observed::new(&self.cpu_exec(), seen), x, rows),
            Graph::Bert(_) => Err(InputError::NotFeatures.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use mxrt_format::ReadOptions;

    use crate::graphs::Graph;
    use crate::ops::RowOp;
    use crate::Model;

    #[test]
    fn every_linear_input_of_an_mlp_is_seen_the_first_being_the_normalised_features() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-mlp.mxrt");
        let model = Model::open(&path, ReadOptions::default()).unwrap();
        let Graph::Mlp(mlp) = model.graph() else {
            unreachable!("tiny-mlp is an MLP")
        };
        let inputs = mlp.inputs;
        let (RowOp::Affine(bn), RowOp::Relu) = (&mlp.ops[0], &mlp.ops[1]) else {
            panic!("the fixture starts BatchNorm (folded to an affine), ReLU, Linear")
        };
        let rows = 3;
        let x: Vec<f32> = (0..rows * inputs)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let mut order: Vec<(String, Vec<f32>)> = Vec::new();
        let observed = model
            .observe_mlp(&x, rows, &mut |names, v| {
                order.push((names.join("+"), v.to_vec()))
            })
            .unwrap();
        assert_eq!(observed, model.run_mlp(&x, rows).unwrap());
        let first: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, v)| (v * bn.scale[i % inputs] + bn.shift[i % inputs]).max(0.0))
            .collect();
        assert_eq!(order[0].1.len(), first.len());
        for (a, b) in order[0].1.iter().zip(&first) {
            assert!((a - b).abs() <= 1e-6, "{a} vs {b}");
        }
        let linear: Vec<String> = mlp
            .ops
            .iter()
            .filter_map(|op| match op {
                RowOp::Linear(l) => Some(l.name.clone()),
                _ => None,
            })
            .collect();
        let names: Vec<String> = order.into_iter().map(|o| o.0).collect();
        assert_eq!(names, linear);
        assert_eq!(
            names,
            ["seq_blocks.2", "seq_blocks.4"],
            "the recipe's layer names"
        );
    }
}
