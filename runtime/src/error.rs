//! The runtime's error type: opening, model description, and inputs.

use crate::mapped::OpenError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("{path}: cannot run this model: {reason}")]
    Model { path: String, reason: String },
    #[error("input: {0}")]
    Input(String),
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
