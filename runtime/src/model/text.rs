//! Text to token batches with the tokenizer embedded in the model file: `tokenizer.json` through the
//! `tokenizers` crate, or a WordPiece vocabulary (`vocab.txt`) assembled as BERT's tokenizer. The one way
//! text reaches a model: the CLI, and every binding after it, encode through here.

use serde_json::Value;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{Tokenizer, TruncationParams};

use mxrt_format::description::{BertHead, Hyperparameters};

use super::Model;
use crate::error::{Result, TextError};
use crate::ops::TokenBatch;

/// The model's tokenizer, truncating at `max_length` tokens (special tokens included).
pub struct TextEncoder {
    tokenizer: Tokenizer,
    /// The model has one token type (RoBERTa, DistilBERT: no segment embeddings to tell a pair's parts
    /// apart): every token gets type 0, whatever the tokenizer's pair template says.
    single_type: bool,
    /// Characters of a text kept before tokenizing (see [`CHARS_PER_TOKEN`]).
    max_chars: usize,
}

/// Text is cut to `max_length × CHARS_PER_TOKEN` characters before the tokenizer sees it: the tokenizer's
/// work and memory grow with the whole text (a 4 MB line of punctuation took 2.1 GB) while only the first
/// `max_length` tokens are kept. A WordPiece token spans at most 100 characters of a word (longer words become
/// one `[UNK]`) plus separators, so 128 per token keeps every text of ordinary words whole up to truncation.
pub const CHARS_PER_TOKEN: usize = 128;

/// `text` up to its `max_chars`-th character.
fn cut(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

impl TextEncoder {
    pub fn from_model(model: &Model, max_length: Option<usize>) -> Result<TextEncoder> {
        let description = model.description();
        let tok = description
            .tokenizer
            .as_ref()
            .ok_or(TextError::NoTokenizer)?;
        let file = |name: &str| -> Result<&[u8]> {
            let tensor = tok
                .files
                .get(name)
                .ok_or_else(|| TextError::MissingFile(name.to_string()))?;
            model
                .raw_bytes(tensor)
                .ok_or_else(|| TextError::MissingTensor(tensor.to_string()).into())
        };
        let mut tokenizer = match tok.format.as_str() {
            "tokenizer.json" => {
                Tokenizer::from_bytes(file("tokenizer.json")?).map_err(|e| TextError::Invalid {
                    what: "embedded tokenizer.json",
                    reason: e.to_string(),
                })?
            }
            "wordpiece-vocab" => wordpiece(file("vocab.txt")?, file("tokenizer_config.json").ok())?,
            other => return Err(TextError::UnknownFormat(other.to_string()).into()),
        };
        // Truncation: the asked length, else the sentence-embedding head's, else 512; never past the
        // model's positions.
        let single_type = matches!(&description.hyperparameters,
            Hyperparameters::Bert(hp) if hp.type_vocab_size == 1);
        let (positions, default) = match &description.hyperparameters {
            Hyperparameters::Bert(hp) => (
                hp.max_position_embeddings,
                match hp.head {
                    BertHead::SentenceEmbedding {
                        max_seq_length: Some(n),
                        ..
                    } => n,
                    _ => 512,
                },
            ),
            Hyperparameters::Mlp(_) => (512, 512),
        };
        let (positions, default) = (
            usize::try_from(positions).unwrap_or(usize::MAX),
            usize::try_from(default).unwrap_or(usize::MAX),
        );
        if let Some(asked @ 0..=1) = max_length {
            return Err(TextError::Invalid {
                what: "max_length",
                reason: format!(
                    "{asked} is too short: a text needs at least 2 tokens ([CLS] and [SEP])"
                ),
            }
            .into());
        }
        let max_length = max_length.unwrap_or(default).min(positions);
        let truncation = TruncationParams {
            max_length,
            ..Default::default()
        };
        tokenizer
            .with_truncation(Some(truncation))
            .map_err(|e| TextError::Invalid {
                what: "tokenizer truncation",
                reason: e.to_string(),
            })?;
        tokenizer.with_padding(None);
        Ok(TextEncoder {
            tokenizer,
            single_type,
            max_chars: max_length.saturating_mul(CHARS_PER_TOKEN),
        })
    }

    /// Encodes `texts` (single sentences) and pads to the longest.
    pub fn batch(&self, texts: &[&str]) -> Result<TokenBatch> {
        let inputs: Vec<(&str, Option<&str>)> = texts.iter().map(|t| (*t, None)).collect();
        self.batch_inputs(&inputs)
    }

    /// Encodes texts and sentence pairs (`(a, Some(b))`: `[CLS] a [SEP] b [SEP]` with token type 0 for the
    /// first part and 1 for the second, as BERT's tokenizer does; truncation takes tokens from the longer
    /// side first) and pads to the longest.
    pub fn batch_inputs(&self, inputs: &[(&str, Option<&str>)]) -> Result<TokenBatch> {
        let cut_inputs: Vec<tokenizers::EncodeInput<'_>> = inputs
            .iter()
            .map(|(a, b)| {
                let a = cut(a, self.max_chars);
                match b {
                    Some(b) => (a, cut(b, self.max_chars)).into(),
                    None => a.into(),
                }
            })
            .collect();
        let encodings = self
            .tokenizer
            .encode_batch(cut_inputs, true)
            .map_err(|e| TextError::Encoding(e.to_string()))?;
        let seq = encodings
            .iter()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(0)
            .max(1);
        let batch = encodings.len();
        let mut out = TokenBatch {
            batch,
            seq,
            ids: vec![0; batch * seq],
            type_ids: vec![0; batch * seq],
            mask: vec![0; batch * seq],
        };
        for (i, e) in encodings.iter().enumerate() {
            for (j, ((&id, &ty), &m)) in e
                .get_ids()
                .iter()
                .zip(e.get_type_ids())
                .zip(e.get_attention_mask())
                .enumerate()
            {
                out.ids[i * seq + j] = id;
                out.type_ids[i * seq + j] = if self.single_type { 0 } else { ty };
                out.mask[i * seq + j] = m as u8;
            }
        }
        Ok(out)
    }
}

/// BERT's tokenizer from a WordPiece vocabulary: BertNormalizer (lowercasing per tokenizer_config.json's
/// `do_lower_case`, default true), BertPreTokenizer, WordPiece with `[UNK]`, `[CLS] ... [SEP]`.
fn wordpiece(vocab_txt: &[u8], config: Option<&[u8]>) -> Result<Tokenizer> {
    let text = std::str::from_utf8(vocab_txt).map_err(|e| TextError::Invalid {
        what: "vocab.txt",
        reason: format!("not UTF-8 ({e})"),
    })?;
    let vocab: ahash::AHashMap<String, u32> = text
        .lines()
        .enumerate()
        .map(|(i, t)| (t.trim_end().to_string(), i as u32))
        .collect();
    let id = |t: &str| {
        vocab.get(t).copied().ok_or_else(|| TextError::Invalid {
            what: "vocab.txt",
            reason: format!("lacks {t}"),
        })
    };
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    id("[UNK]")?;
    let lowercase = config
        .and_then(|c| serde_json::from_slice::<Value>(c).ok())
        .and_then(|c| c.get("do_lower_case").and_then(Value::as_bool))
        .unwrap_or(true);
    let model = WordPiece::builder()
        .vocab(vocab)
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| TextError::Invalid {
            what: "WordPiece",
            reason: e.to_string(),
        })?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)));
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    tokenizer.with_post_processor(Some(BertProcessing::new(
        ("[SEP]".into(), sep),
        ("[CLS]".into(), cls),
    )));
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn texts_are_cut_at_a_character_boundary() {
        assert_eq!(cut("héllo wörld", 4), "héll");
        assert_eq!(cut("short", 100), "short");
        assert_eq!(cut("", 0), "");
        let long = "!".repeat(4 << 20);
        assert_eq!(cut(&long, 512 * super::CHARS_PER_TOKEN).len(), 65_536);
    }
}
