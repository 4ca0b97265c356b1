use thiserror::Error;

/// Why a model could not be loaded or run.
#[derive(Debug, Error)]
pub enum ModelError {
    /// The ONNX Runtime library is missing or unusable: a deployment problem.
    #[error("ONNX Runtime could not be loaded from {path}: {reason}")]
    Runtime { path: String, reason: String },
    /// A model file is missing, corrupt or not the expected model.
    #[error("model {model} could not be loaded: {reason}")]
    Load { model: String, reason: String },
    /// Inference failed on valid input.
    #[error("inference failed in {model}: {reason}")]
    Inference { model: &'static str, reason: String },
    /// The caller asked the model to stop (its job was cancelled).
    #[error("{0} stopped: its job was cancelled")]
    Interrupted(&'static str),
}
