use std::time::Duration;

use thiserror::Error;

/// Why a pipeline failed. Each variant says whether retrying could help
/// ([`PipelineError::is_permanent`]): the worker dead-letters permanent ones.
#[derive(Debug, Error)]
pub enum PipelineError {
    #[error("GStreamer could not be initialised: {0}")]
    Init(String),
    #[error("input not found: {0}")]
    NotFound(String),
    #[error("input is not a media file GStreamer recognises ({0})")]
    NotMedia(String),
    #[error("input needs codecs this worker lacks: {0}")]
    MissingCodec(String),
    #[error("input has no video stream")]
    NoVideo,
    #[error("input has no audio stream")]
    NoAudio,
    /// Valid media this worker will not process (absurd dimensions, ...).
    #[error("input refused: {0}")]
    Refused(String),
    #[error("probing the input timed out after {0:?}")]
    ProbeTimeout(Duration),
    #[error("decoding failed: {0}")]
    Decode(String),
    #[error("decoding stalled: no frame for {0:?}")]
    Stalled(Duration),
    #[error("building the GStreamer graph failed: {0}")]
    Graph(String),
    #[error(transparent)]
    Kernel(#[from] monteur_kernels::KernelError),
    #[error("model failed: {0}")]
    Model(String),
}

impl PipelineError {
    /// True when the same input would fail the same way again.
    pub fn is_permanent(&self) -> bool {
        use monteur_kernels::KernelError;
        // A stalled decode, a GPU fault or a missing backend says nothing about
        // the input: another attempt, perhaps on another worker, may succeed.
        !matches!(
            self,
            PipelineError::ProbeTimeout(_)
                | PipelineError::Stalled(_)
                | PipelineError::Init(_)
                | PipelineError::Kernel(KernelError::Device(_) | KernelError::Unavailable(_))
                // Missing or mismatched models are the deployment's fault.
                | PipelineError::Model(_)
        )
    }
}

impl From<gstreamer::glib::BoolError> for PipelineError {
    fn from(e: gstreamer::glib::BoolError) -> Self {
        PipelineError::Graph(e.to_string())
    }
}
