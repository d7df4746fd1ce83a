//! BERT encoder with its two heads (sequence classification; sentence embedding), one struct per checkpoint
//! module with `load` and `forward`, written against the backend ops. No parsing or I/O here: the model
//! loader hands over tensor references and the configuration (FORMAT.md section 9).

use crate::error::{Result, RuntimeError};
use crate::graph::{Linear, Norm, Params};
use crate::ops::Cpu;

#[derive(Debug, Clone, PartialEq)]
pub enum Pooling {
    Cls,
    Mean,
    Max,
}

#[derive(Debug, Clone)]
pub enum Head {
    Classification {
        labels: Vec<String>,
    },
    Embedding {
        pooling: Pooling,
        normalize: bool,
        max_seq_length: Option<usize>,
    },
}

#[derive(Debug, Clone)]
pub struct BertConfig {
    pub prefix: String,
    pub vocab: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub eps: f32,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub head: Head,
}

/// Token ids of a padded batch, `[batch, seq]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    pub batch: usize,
    pub seq: usize,
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// 1 for tokens, 0 for padding.
    pub mask: Vec<u8>,
}

/// What a forward pass gives.
#[derive(Debug, Clone)]
pub struct BertOutput {
    /// `[batch, width]`: logits (classifier) or embeddings (encoder).
    pub values: Vec<f32>,
    pub width: usize,
    /// Hidden states after the embeddings and after each layer, `[batch * seq, hidden]` each (when asked).
    pub hidden_states: Vec<Vec<f32>>,
}

struct EncoderLayer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_output: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

pub struct Bert {
    pub config: BertConfig,
    word: crate::weights::TensorRef,
    position: crate::weights::TensorRef,
    token_type: crate::weights::TensorRef,
    embeddings_norm: Norm,
    layers: Vec<EncoderLayer>,
    pooler: Option<Linear>,
    classifier: Option<Linear>,
}

impl Bert {
    pub fn load(config: BertConfig, p: &Params<'_>) -> Result<Bert> {
        let (h, pre) = (config.hidden, config.prefix.clone());
        let e = format!("{pre}embeddings");
        let word = p.matrix(&format!("{e}.word_embeddings.weight"), config.vocab, h)?;
        let position = p.matrix(
            &format!("{e}.position_embeddings.weight"),
            config.max_positions,
            h,
        )?;
        let token_type = p.matrix(
            &format!("{e}.token_type_embeddings.weight"),
            config.type_vocab,
            h,
        )?;
        let embeddings_norm = p.norm(&format!("{e}.LayerNorm"), h)?;
        let mut layers = Vec::with_capacity(config.layers);
        for i in 0..config.layers {
            let l = format!("{pre}encoder.layer.{i}");
            layers.push(EncoderLayer {
                query: p.linear(&format!("{l}.attention.self.query"), h, h)?,
                key: p.linear(&format!("{l}.attention.self.key"), h, h)?,
                value: p.linear(&format!("{l}.attention.self.value"), h, h)?,
                attention_output: p.linear(&format!("{l}.attention.output.dense"), h, h)?,
                attention_norm: p.norm(&format!("{l}.attention.output.LayerNorm"), h)?,
                intermediate: p.linear(
                    &format!("{l}.intermediate.dense"),
                    config.intermediate,
                    h,
                )?,
                output: p.linear(&format!("{l}.output.dense"), h, config.intermediate)?,
                output_norm: p.norm(&format!("{l}.output.LayerNorm"), h)?,
            });
        }
        let (pooler, classifier) = match &config.head {
            Head::Classification { labels } => (
                Some(p.linear(&format!("{pre}pooler.dense"), h, h)?),
                Some(p.linear("classifier", labels.len(), h)?),
            ),
            Head::Embedding { .. } => (None, None),
        };
        Ok(Bert {
            config,
            word,
            position,
            token_type,
            embeddings_norm,
            layers,
            pooler,
            classifier,
        })
    }

    /// Runs the batch; `keep_hidden` also returns every layer's hidden states.
    pub fn forward(
        &self,
        cpu: &Cpu,
        bytes: &[u8],
        batch: &TokenBatch,
        keep_hidden: bool,
    ) -> Result<BertOutput> {
        let c = &self.config;
        let (b, s, h) = (batch.batch, batch.seq, c.hidden);
        check_batch(c, batch)?;
        let rows = b * s;
        // Embeddings: gather rows from the tables where they lie (decoded row by row).
        let mut x = vec![0.0f32; rows * h];
        let (word, pos, typ) = (
            self.word.view(bytes),
            self.position.view(bytes),
            self.token_type.view(bytes),
        );
        let mut tmp = vec![0.0f32; h];
        for (r, out) in x.chunks_mut(h).enumerate() {
            word.decode_row(batch.ids[r] as usize, out);
            pos.decode_row(r % s, &mut tmp);
            out.iter_mut().zip(&tmp).for_each(|(o, t)| *o += t);
            typ.decode_row(batch.type_ids[r] as usize, &mut tmp);
            out.iter_mut().zip(&tmp).for_each(|(o, t)| *o += t);
        }
        self.embeddings_norm.apply(cpu, &mut x, c.eps);
        let mut hidden_states = Vec::new();
        if keep_hidden {
            hidden_states.push(x.clone());
        }
        let dim = h / c.heads;
        for layer in &self.layers {
            let [q, k, v] = Linear::apply3(
                [&layer.query, &layer.key, &layer.value],
                cpu,
                bytes,
                &x,
                rows,
            );
            let context = cpu.attention(&q, &k, &v, &batch.mask, b, s, c.heads, dim);
            let mut attended = layer.attention_output.apply(cpu, bytes, &context, rows);
            attended.iter_mut().zip(&x).for_each(|(a, r)| *a += r);
            layer.attention_norm.apply(cpu, &mut attended, c.eps);
            let mut up = layer.intermediate.apply(cpu, bytes, &attended, rows);
            cpu.gelu(&mut up);
            let mut down = layer.output.apply(cpu, bytes, &up, rows);
            down.iter_mut().zip(&attended).for_each(|(d, r)| *d += r);
            layer.output_norm.apply(cpu, &mut down, c.eps);
            x = down;
            if keep_hidden {
                hidden_states.push(x.clone());
            }
        }
        let (values, width) = match (&c.head, &self.pooler, &self.classifier) {
            (Head::Classification { labels }, Some(pooler), Some(classifier)) => {
                let cls: Vec<f32> = (0..b)
                    .flat_map(|i| x[i * s * h..i * s * h + h].iter().copied())
                    .collect();
                let mut pooled = pooler.apply(cpu, bytes, &cls, b);
                pooled.iter_mut().for_each(|v| *v = v.tanh());
                (classifier.apply(cpu, bytes, &pooled, b), labels.len())
            }
            (
                Head::Embedding {
                    pooling, normalize, ..
                },
                _,
                _,
            ) => (pool(&x, &batch.mask, b, s, h, pooling, *normalize), h),
            _ => unreachable!(
                "load() sets the pooler and classifier exactly for classification heads"
            ),
        };
        Ok(BertOutput {
            values,
            width,
            hidden_states,
        })
    }
}

fn check_batch(c: &BertConfig, t: &TokenBatch) -> Result<()> {
    let bad = |m: String| Err(RuntimeError::Input(m));
    let n = t.batch * t.seq;
    if t.ids.len() != n || t.type_ids.len() != n || t.mask.len() != n {
        return bad(format!(
            "a batch of {}x{} needs {n} ids, type ids and mask values",
            t.batch, t.seq
        ));
    }
    if t.seq > c.max_positions {
        return bad(format!(
            "sequence length {} exceeds the model's {} positions",
            t.seq, c.max_positions
        ));
    }
    if let Some(&id) = t.ids.iter().find(|&&i| i as usize >= c.vocab) {
        return bad(format!(
            "token id {id} is outside the vocabulary of {}",
            c.vocab
        ));
    }
    if let Some(&id) = t.type_ids.iter().find(|&&i| i as usize >= c.type_vocab) {
        return bad(format!(
            "token type {id} is outside the model's {} types",
            c.type_vocab
        ));
    }
    if (0..t.batch).any(|i| t.mask[i * t.seq..(i + 1) * t.seq].iter().all(|&m| m == 0)) {
        return bad("every sequence needs at least one unmasked token".into());
    }
    Ok(())
}

/// Sentence embeddings from the last hidden states: masked mean, CLS, or masked max; optionally L2-normalised.
fn pool(
    x: &[f32],
    mask: &[u8],
    b: usize,
    s: usize,
    h: usize,
    pooling: &Pooling,
    normalize: bool,
) -> Vec<f32> {
    let mut out = vec![0.0f32; b * h];
    for (i, o) in out.chunks_mut(h).enumerate() {
        let tokens = (0..s).filter(|&t| mask[i * s + t] != 0);
        match pooling {
            Pooling::Cls => o.copy_from_slice(&x[i * s * h..i * s * h + h]),
            Pooling::Mean => {
                let mut count = 0.0f32;
                for t in tokens {
                    o.iter_mut()
                        .zip(&x[(i * s + t) * h..][..h])
                        .for_each(|(a, v)| *a += v);
                    count += 1.0;
                }
                o.iter_mut().for_each(|a| *a /= count.max(1e-9));
            }
            Pooling::Max => {
                o.fill(f32::NEG_INFINITY);
                for t in tokens {
                    o.iter_mut()
                        .zip(&x[(i * s + t) * h..][..h])
                        .for_each(|(a, v)| *a = a.max(*v));
                }
            }
        }
        if normalize {
            // torch.nn.functional.normalize: x / max(||x||, 1e-12)
            let norm = o.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            o.iter_mut().for_each(|v| *v /= norm);
        }
    }
    out
}
