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
    /// The backend was compiled out, or the machine has no device for it.
    #[error("the {backend} backend is unavailable: {reason}")]
    BackendUnavailable {
        backend: &'static str,
        reason: String,
    },
    /// `MXRT_CPU` names a kernel tier that does not exist, or that this CPU does not run.
    #[error("MXRT_CPU={value}: {reason}")]
    CpuTier { value: String, reason: String },
    /// The backend failed while running (device lost, a limit exceeded, a rejected command).
    #[error("{backend} backend: {reason}")]
    Backend {
        backend: &'static str,
        reason: String,
    },
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
