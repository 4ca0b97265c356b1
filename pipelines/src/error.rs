use std::time::Duration;

use thiserror::Error;

/// Why a pipeline failed. [`PipelineError::is_permanent`] tells the worker
/// whether to dead-letter the job or try it again.
#[derive(Debug, Error)]
pub enum PipelineError {
    #[error("GStreamer could not be initialised: {0}")]
    Init(String),
    #[error("input not found: {0}")]
    NotFound(String),
    #[error("input is not a media file GStreamer recognises ({0})")]
    NotMedia(String),
    /// The input's own streams need a decoder or demuxer this worker lacks.
    #[error("input needs codecs this worker lacks: {0}")]
    MissingCodec(String),
    /// An element of our own graphs (an encoder, a converter) is missing:
    /// the deployment's fault, not the input's.
    #[error("GStreamer element `{0}` is not installed")]
    MissingElement(String),
    #[error("input has no video stream")]
    NoVideo,
    #[error("input has no audio stream")]
    NoAudio,
    /// Valid media this worker will not process (absurd dimensions, ...).
    #[error("input refused: {0}")]
    Refused(String),
    /// Decoding ended well before the duration the container declares: a
    /// cut upload, whose analysis would silently cover only its start.
    #[error(
        "input is truncated: decoding ended at {decoded_s:.1} s of the {declared_s:.1} s the container declares"
    )]
    Truncated { decoded_s: f64, declared_s: f64 },
    #[error("probing the input timed out after {0:?}")]
    ProbeTimeout(Duration),
    /// The input's streams could not be decoded (a stream error raised by a
    /// demuxer or decoder, or streams that yield nothing).
    #[error("decoding failed: {0}")]
    Decode(String),
    #[error("decoding stalled: no frame for {0:?}")]
    Stalled(Duration),
    /// Our graph failed for a reason other than the input's content:
    /// linking, state changes, resources, encoders.
    #[error("GStreamer graph failed: {0}")]
    Graph(String),
    #[error(transparent)]
    Kernel(#[from] monteur_kernels::KernelError),
    #[error("model failed: {0}")]
    Model(String),
    /// The job was cancelled (by its producer, its deadline or a shutdown).
    #[error("stopped: the job was cancelled")]
    Cancelled,
}

impl PipelineError {
    /// True only for errors the input itself caused, so running the same
    /// job again would fail the same way: an allow-list, so that any other
    /// failure (a missing element on this worker, a GPU fault, a resource
    /// error, one we did not foresee) is retried, perhaps on another worker.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            PipelineError::NotFound(_)
                | PipelineError::NotMedia(_)
                | PipelineError::MissingCodec(_)
                | PipelineError::NoVideo
                | PipelineError::NoAudio
                | PipelineError::Refused(_)
                | PipelineError::Truncated { .. }
                | PipelineError::Decode(_)
        )
    }
}

impl From<gstreamer::glib::BoolError> for PipelineError {
    fn from(e: gstreamer::glib::BoolError) -> Self {
        PipelineError::Graph(e.to_string())
    }
}

impl From<monteur_models::ModelError> for PipelineError {
    fn from(e: monteur_models::ModelError) -> Self {
        match e {
            monteur_models::ModelError::Interrupted(_) => PipelineError::Cancelled,
            other => PipelineError::Model(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_input_caused_errors_are_permanent() {
        let permanent = [
            PipelineError::NotMedia("x".into()),
            PipelineError::MissingCodec("h265".into()),
            PipelineError::Truncated {
                decoded_s: 4.0,
                declared_s: 42.0,
            },
            PipelineError::Decode("corrupt".into()),
            PipelineError::Refused("9000x9000".into()),
        ];
        let transient = [
            PipelineError::MissingElement("x264enc".into()),
            PipelineError::Graph("link failed".into()),
            PipelineError::Stalled(Duration::from_secs(1)),
            PipelineError::Model("session".into()),
            PipelineError::Cancelled,
            PipelineError::Init("no gst".into()),
        ];
        assert!(permanent.iter().all(PipelineError::is_permanent));
        assert!(!transient.iter().any(PipelineError::is_permanent));
    }
}
