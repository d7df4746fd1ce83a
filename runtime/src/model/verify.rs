//! Verifying a file completely: its structure and every checksum, then, for a file that describes a model,
//! the model check every session runs at open (the description against the tensors, the recipe, the
//! tokenizer built). What this accepts, a [`super::session::Session`] opens.

use std::path::Path;

use mxrt_format::ReadOptions;

use super::text::TextEncoder;
use super::Model;
use crate::error::{Result, RuntimeError, TextError};
use crate::graphs::Graph;
use crate::mapped::MappedFile;

/// What [`verify`] checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub tensors: usize,
    pub bytes: u64,
    /// For a model: what was checked, in words (e.g. `BERT, 2 layers, description matches the tensors,
    /// tokenizer built`); `None` for a file of bare tensors.
    pub model: Option<String>,
}

/// Structure, every checksum, and for a model its description, recipe and tokenizer.
pub fn verify(path: &Path) -> Result<Verification> {
    let mapped = MappedFile::open(path)?;
    let (tensors, bytes, is_model) = {
        let f = mapped.validate(ReadOptions {
            verify_checksums: true,
        })?;
        let is_model = f
            .metadata()
            .get("architecture")
            .is_some_and(|v| !v.is_null());
        (f.tensors().len(), f.file_len(), is_model)
    };
    drop(mapped);
    let model = match is_model {
        // Its checksums were just verified.
        true => Some(describe_checked(&Model::open(
            path,
            ReadOptions {
                verify_checksums: false,
            },
        )?)?),
        false => None,
    };
    Ok(Verification {
        tensors,
        bytes,
        model,
    })
}

/// Builds what an opened model needs beyond its tensors (the tokenizer) and says what was checked.
pub(crate) fn describe_checked(model: &Model) -> Result<String> {
    Ok(match model.graph() {
        Graph::Bert(b) => {
            let tokenizer = match TextEncoder::from_model(model, None) {
                Ok(_) => "tokenizer built",
                Err(RuntimeError::Text(TextError::NoTokenizer)) => "no tokenizer",
                Err(e) => return Err(e),
            };
            format!(
                "BERT, {} layers, description matches the tensors, {tokenizer}",
                b.config.layers
            )
        }
        Graph::Mlp(m) => format!(
            "MLP {} -> {}, description matches the tensors",
            m.inputs, m.outputs
        ),
    })
}
