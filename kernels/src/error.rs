use thiserror::Error;

/// Why a kernel could not run.
#[derive(Debug, Error)]
pub enum KernelError {
    /// The batch does not describe its own buffers: a caller bug or corrupt input,
    /// never something to retry.
    #[error("invalid frame batch: {0}")]
    InvalidBatch(String),
}
