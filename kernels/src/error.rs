use thiserror::Error;

/// Why a kernel could not run.
#[derive(Debug, Error)]
pub enum KernelError {
    /// The batch does not describe its own buffers: a caller bug or corrupt input,
    /// never something to retry.
    #[error("invalid frame batch: {0}")]
    InvalidBatch(String),
    /// The requested backend cannot run on this machine.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// A kernel failed to compile (a bug in the kernel source).
    #[error("kernel compilation failed: {0}")]
    Compile(String),
    /// The device reported an error while running a kernel.
    #[error("GPU error: {0}")]
    Device(String),
}
