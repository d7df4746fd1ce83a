//! BERT encoder with its two heads (sequence classification; sentence embedding), one struct per checkpoint
//! module with `load` and `forward`, written against the backend ops. No parsing or I/O here: the model
//! loader hands over tensor references and the configuration (FORMAT.md section 9).

use crate::error::{InputError, Result};
use crate::graphs::params::Params;
use crate::graphs::scaled::{self, ScaledLinear};
use crate::ops::{Activation, Backend, Embeddings, Norm, Parameters, Pooling, TokenBatch};

#[derive(Debug, Clone)]
pub enum Head {
    Classification {
        labels: Vec<String>,
        /// The dense layer on the first token (its activation: tanh unless the description says
        /// otherwise), and the output layer (tensor name stems).
        pooler: String,
        pooler_activation: Activation,
        classifier: String,
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
    /// The feed-forward activation (`hidden_act`: GELU or ReLU).
    pub activation: Activation,
    /// The embedding tables' width when it is not `hidden` (then projected to `hidden`).
    pub embedding_size: Option<usize>,
    /// The tensor-name stems of each encoder layer (BERT's or DistilBERT's scheme).
    pub layer_names: Vec<mxrt_format::description::EncoderLayerNames>,
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

/// What a forward pass gives.
#[derive(Debug, Clone)]
pub struct BertOutput {
    /// `[batch, width]`: logits (classifier) or embeddings (encoder).
    pub values: Vec<f32>,
    pub width: usize,
    /// Hidden states after the embeddings and after each layer, `[batch * seq, hidden]` each (when asked).
    pub hidden_states: Vec<Vec<f32>>,
}

pub(crate) struct EncoderLayer {
    pub(crate) query: ScaledLinear,
    pub(crate) key: ScaledLinear,
    pub(crate) value: ScaledLinear,
    pub(crate) attention_output: ScaledLinear,
    pub(crate) attention_norm: Norm,
    pub(crate) intermediate: ScaledLinear,
    pub(crate) output: ScaledLinear,
    pub(crate) output_norm: Norm,
}

pub struct Bert {
    pub config: BertConfig,
    pub(crate) embeddings: Embeddings,
    pub(crate) layers: Vec<EncoderLayer>,
    /// ELECTRA's projection of narrower embeddings to the hidden width.
    pub(crate) project: Option<ScaledLinear>,
    pub(crate) pooler: Option<ScaledLinear>,
    pub(crate) classifier: Option<ScaledLinear>,
}

impl Bert {
    pub fn load(config: BertConfig, p: &Params<'_>) -> Result<Bert> {
        let (h, pre) = (config.hidden, config.prefix.clone());
        let e = format!("{pre}embeddings");
        let width = config.embedding_size.unwrap_or(h);
        let word = p.matrix(&format!("{e}.word_embeddings.weight"), config.vocab, width)?;
        let position = p.matrix(
            &format!("{e}.position_embeddings.weight"),
            config.max_positions,
            width,
        )?;
        let token_type = p.matrix(
            &format!("{e}.token_type_embeddings.weight"),
            config.type_vocab,
            width,
        )?;
        let embeddings_norm = p.norm(&format!("{e}.LayerNorm"), width)?;
        let project = match config.embedding_size {
            Some(w) => Some(p.scaled_linear(&format!("{pre}embeddings_project"), h, w)?),
            None => None,
        };
        let mut layers = Vec::with_capacity(config.layers);
        for l in &config.layer_names {
            layers.push(EncoderLayer {
                query: p.scaled_linear(&l.query, h, h)?,
                key: p.scaled_linear(&l.key, h, h)?,
                value: p.scaled_linear(&l.value, h, h)?,
                attention_output: p.scaled_linear(&l.attention_output, h, h)?,
                attention_norm: p.norm(&l.attention_norm, h)?,
                intermediate: p.scaled_linear(&l.intermediate, config.intermediate, h)?,
                output: p.scaled_linear(&l.output, h, config.intermediate)?,
                output_norm: p.norm(&l.output_norm, h)?,
            });
        }
        let (pooler, classifier) = match &config.head {
            Head::Classification {
                labels,
                pooler,
                classifier,
                ..
            } => (
                Some(p.scaled_linear(pooler, h, h)?),
                Some(p.scaled_linear(classifier, labels.len(), h)?),
            ),
            Head::Embedding { .. } => (None, None),
        };
        Ok(Bert {
            config,
            embeddings: Embeddings {
                word,
                position,
                token_type,
                norm: embeddings_norm,
            },
            layers,
            project,
            pooler,
            classifier,
        })
    }

    /// What the forward pass reads: the norms, the embedding tables and every linear layer, in that order.
    pub fn parameters(&self) -> Parameters<'_> {
        let mut p = Parameters::default();
        p.norm(&self.embeddings.norm);
        for l in &self.layers {
            p.norm(&l.attention_norm);
            p.norm(&l.output_norm);
        }
        let e = &self.embeddings;
        p.weights.extend([&e.word, &e.position, &e.token_type]);
        let linears = self.layers.iter().flat_map(|l| {
            [
                &l.query,
                &l.key,
                &l.value,
                &l.attention_output,
                &l.intermediate,
                &l.output,
            ]
        });
        for l in linears
            .chain(&self.project)
            .chain(&self.pooler)
            .chain(&self.classifier)
        {
            l.parameters(&mut p);
        }
        p
    }

    /// Runs the batch on backend `be`; `keep_hidden` also returns every layer's hidden states.
    pub fn forward<B: Backend>(
        &self,
        be: &B,
        batch: &TokenBatch,
        keep_hidden: bool,
    ) -> Result<BertOutput> {
        let c = &self.config;
        let (b, s, h) = (batch.batch, batch.seq, c.hidden);
        check_batch(c, batch)?;
        let rows = b * s;
        let mut x = be.embeddings(&self.embeddings, batch, c.eps)?;
        if let Some(project) = &self.project {
            let projected = project.run(be, &x, rows)?;
            be.recycle(std::mem::replace(&mut x, projected));
        }
        let mut hidden_states = Vec::new();
        if keep_hidden {
            hidden_states.push(be.output(&x)?);
        }
        let dim = h / c.heads;
        for layer in &self.layers {
            let [q, k, v] = scaled::run3(be, &x, rows, [&layer.query, &layer.key, &layer.value])?;
            let context = be.attention(&q, &k, &v, &batch.mask, b, s, c.heads, dim)?;
            [q, k, v].into_iter().for_each(|t| be.recycle(t));
            let attended = layer.attention_output.run(be, &context, rows)?;
            be.recycle(context);
            let attended = be.add_layer_norm(attended, Some(&x), &layer.attention_norm, c.eps)?;
            let down = scaled::feed_forward(
                be,
                &attended,
                rows,
                &layer.intermediate,
                c.activation,
                &layer.output,
            )?;
            let next = be.add_layer_norm(down, Some(&attended), &layer.output_norm, c.eps)?;
            be.recycle(std::mem::replace(&mut x, next));
            be.recycle(attended);
            if keep_hidden {
                hidden_states.push(be.output(&x)?);
            }
        }
        let (values, width) = match (&c.head, &self.pooler, &self.classifier) {
            (
                Head::Classification {
                    labels,
                    pooler_activation,
                    ..
                },
                Some(pooler),
                Some(classifier),
            ) => {
                let cls = be.first_tokens(&x, b, s, h)?;
                let pooled = be.activation(pooler.run(be, &cls, b)?, *pooler_activation)?;
                (be.output(&classifier.run(be, &pooled, b)?)?, labels.len())
            }
            (
                Head::Embedding {
                    pooling, normalize, ..
                },
                _,
                _,
            ) => (
                be.output(&be.pool_sentences(&x, &batch.mask, b, s, h, pooling, *normalize)?)?,
                h,
            ),
            _ => unreachable!(
                "load() sets the pooler and classifier exactly for classification heads"
            ),
        };
        be.recycle(x); // the last hidden state: its buffer serves the next inference
        Ok(BertOutput {
            values,
            width,
            hidden_states,
        })
    }
}

fn check_batch(c: &BertConfig, t: &TokenBatch) -> Result<()> {
    let n = t.batch * t.seq;
    if t.ids.len() != n || t.type_ids.len() != n || t.mask.len() != n {
        return Err(InputError::BatchShape {
            batch: t.batch,
            seq: t.seq,
        }
        .into());
    }
    if t.seq > c.max_positions {
        return Err(InputError::SequenceTooLong {
            seq: t.seq,
            positions: c.max_positions,
        }
        .into());
    }
    if let Some(&id) = t.ids.iter().find(|&&i| i as usize >= c.vocab) {
        return Err(InputError::TokenOutOfVocabulary { id, vocab: c.vocab }.into());
    }
    if let Some(&id) = t.type_ids.iter().find(|&&i| i as usize >= c.type_vocab) {
        return Err(InputError::TokenTypeOutOfRange {
            id,
            types: c.type_vocab,
        }
        .into());
    }
    if (0..t.batch).any(|i| t.mask[i * t.seq..(i + 1) * t.seq].iter().all(|&m| m == 0)) {
        return Err(InputError::EmptySequence.into());
    }
    Ok(())
}
