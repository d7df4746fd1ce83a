//! Text to token batches with the tokenizer embedded in the model file: `tokenizer.json` through the
//! `tokenizers` crate, a WordPiece vocabulary (`vocab.txt`) assembled as BERT's tokenizer, or a byte-level
//! BPE vocabulary (`vocab.json` + `merges.txt`) assembled as RoBERTa's. The one way
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
    /// Tokens per text after truncation, special tokens included.
    max_length: usize,
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
            "byte-level-bpe" => byte_level_bpe(
                file("vocab.json")?,
                file("merges.txt")?,
                file("tokenizer_config.json").ok(),
                file("special_tokens_map.json").ok(),
            )?,
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
            max_length,
        })
    }

    /// Tokens per text after truncation (special tokens included).
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Tokens of each text or pair after truncation (special tokens included): what an inference computes on.
    pub fn token_counts(&self, inputs: &[(&str, Option<&str>)]) -> Result<Vec<usize>> {
        Ok(self
            .encode(inputs)?
            .iter()
            .map(|e| e.get_ids().len())
            .collect())
    }

    /// Texts (cut to `max_chars`) and pairs through the tokenizer, truncated, with special tokens.
    fn encode(&self, inputs: &[(&str, Option<&str>)]) -> Result<Vec<tokenizers::Encoding>> {
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
        Ok(self
            .tokenizer
            .encode_batch(cut_inputs, true)
            .map_err(|e| TextError::Encoding(e.to_string()))?)
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
        let encodings = self.encode(inputs)?;
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

/// A special token's text from `special_tokens_map.json` or `tokenizer_config.json` (a string, or an added
/// token object with `content`), else RoBERTa's default.
fn special_token(configs: &[Option<Value>], key: &str, default: &str) -> String {
    configs
        .iter()
        .flatten()
        .find_map(|c| match c.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
            _ => None,
        })
        .unwrap_or_else(|| default.to_string())
}

/// RoBERTa's tokenizer from `vocab.json` + `merges.txt`, as transformers' `RobertaConverter` builds it: byte-level
/// pre-tokenizer (`add_prefix_space` from tokenizer_config.json, default false), BPE without an unknown
/// token (every byte has a symbol), `<s> a </s>` and `<s> a </s></s> b </s>`, the special tokens kept whole.
fn byte_level_bpe(
    vocab_json: &[u8],
    merges_txt: &[u8],
    config: Option<&[u8]>,
    special_map: Option<&[u8]>,
) -> Result<Tokenizer> {
    use tokenizers::models::bpe::BPE;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::processors::roberta::RobertaProcessing;
    use tokenizers::AddedToken;

    let invalid = |what: &'static str, reason: String| TextError::Invalid { what, reason };
    let vocab: ahash::AHashMap<String, u32> = serde_json::from_slice(vocab_json).map_err(|e| {
        invalid(
            "vocab.json",
            format!("not a JSON object of token ids ({e})"),
        )
    })?;
    let merges_text = std::str::from_utf8(merges_txt)
        .map_err(|e| invalid("merges.txt", format!("not UTF-8 ({e})")))?;
    let mut merges = Vec::new();
    for (i, line) in merges_text.lines().enumerate() {
        if line.starts_with("#version") || line.trim().is_empty() {
            continue;
        }
        let mut parts = line.split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty() => {
                merges.push((a.to_string(), b.to_string()))
            }
            _ => {
                return Err(invalid(
                    "merges.txt",
                    format!(
                        "line {} is not two symbols separated by one space: {line:?}",
                        i + 1
                    ),
                )
                .into())
            }
        }
    }
    let configs: Vec<Option<Value>> = [special_map, config]
        .iter()
        .map(|c| c.and_then(|c| serde_json::from_slice::<Value>(c).ok()))
        .collect();
    let add_prefix_space = configs[1]
        .as_ref()
        .and_then(|c| c.get("add_prefix_space").and_then(Value::as_bool))
        .unwrap_or(false);
    let id = |token: &str| {
        vocab
            .get(token)
            .copied()
            .ok_or_else(|| invalid("vocab.json", format!("lacks the special token {token:?}")))
    };
    let (cls, sep) = (
        special_token(&configs, "cls_token", "<s>"),
        special_token(&configs, "sep_token", "</s>"),
    );
    let (cls_id, sep_id) = (id(&cls)?, id(&sep)?);
    let specials: Vec<AddedToken> = [
        ("bos_token", "<s>"),
        ("eos_token", "</s>"),
        ("unk_token", "<unk>"),
        ("sep_token", "</s>"),
        ("cls_token", "<s>"),
        ("pad_token", "<pad>"),
        ("mask_token", "<mask>"),
    ]
    .iter()
    .map(|(key, default)| special_token(&configs, key, default))
    .filter(|t| vocab.contains_key(t))
    .map(|t| {
        // RoBERTa's mask token takes the space before it (`lstrip`), as transformers defines it.
        let lstrip = t == special_token(&configs, "mask_token", "<mask>");
        AddedToken::from(t, true).lstrip(lstrip)
    })
    .collect();
    let model = BPE::builder()
        .vocab_and_merges(vocab.clone(), merges)
        .build()
        .map_err(|e| invalid("vocab.json + merges.txt", e.to_string()))?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(
        ByteLevel::default().add_prefix_space(add_prefix_space),
    ));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    tokenizer.with_post_processor(Some(
        RobertaProcessing::new((sep, sep_id), (cls, cls_id))
            .trim_offsets(true)
            .add_prefix_space(add_prefix_space),
    ));
    tokenizer.add_special_tokens(&specials);
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::{byte_level_bpe, cut};

    /// vocab.json + merges.txt: merges applied by rank (`a b`, then `Ġ ab`), RoBERTa's templates for texts and
    /// pairs, special tokens kept whole, and malformed files named.
    #[test]
    fn a_byte_level_bpe_from_vocab_and_merges_encodes_as_roberta() {
        let vocab = br#"{"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4,
            "a": 5, "b": 6, "ab": 7, "\u0120": 8, "\u0120ab": 9}"#;
        let merges = "#version: 0.2\na b\n\u{120} ab\n".as_bytes();
        let tok = byte_level_bpe(vocab, merges, None, None).unwrap();
        let ids = |e: tokenizers::Encoding| e.get_ids().to_vec();
        assert_eq!(ids(tok.encode("ab ab", true).unwrap()), [0, 7, 9, 2]);
        assert_eq!(
            ids(tok.encode(("ab", "ab"), true).unwrap()),
            [0, 7, 2, 2, 7, 2]
        );
        assert_eq!(ids(tok.encode("ab<mask>", true).unwrap()), [0, 7, 4, 2]);
        // add_prefix_space from tokenizer_config.json: the first word as if after a space.
        let spaced =
            byte_level_bpe(vocab, merges, Some(br#"{"add_prefix_space": true}"#), None).unwrap();
        assert_eq!(ids(spaced.encode("ab", true).unwrap()), [0, 9, 2]);

        let err = byte_level_bpe(vocab, b"a b c\n", None, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("merges.txt") && err.contains("line 1"),
            "{err}"
        );
        let err = byte_level_bpe(b"[1, 2]", merges, None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("vocab.json"), "{err}");
        let err = byte_level_bpe(br#"{"a": 0}"#, b"", None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("lacks the special token \"<s>\""), "{err}");
    }

    #[test]
    fn texts_are_cut_at_a_character_boundary() {
        assert_eq!(cut("héllo wörld", 4), "héll");
        assert_eq!(cut("short", 100), "short");
        assert_eq!(cut("", 0), "");
        let long = "!".repeat(4 << 20);
        assert_eq!(cut(&long, 512 * super::CHARS_PER_TOKEN).len(), 65_536);
    }
}
