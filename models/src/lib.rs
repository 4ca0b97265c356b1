//! Learned models, run through ONNX Runtime.
//!
//! ONNX Runtime is loaded at run time from a library file (the pinned
//! `onnxruntime` wheel that `scripts/setup.sh` unpacks), so the binary builds
//! and links without it. This crate reads model files and nothing else: audio
//! and frames arrive as slices from `pipelines/`.
//!
//! # Layout
//! - [`Runtime`]: the loaded ONNX Runtime and the sessions made from it; one
//!   per process, shared by every model. [`Provider`] says where the heavy
//!   models run (CUDA when the library has it and a GPU registers, else CPU);
//!   [`Tensors`] whether a model's tensors are kept between runs.
//! - [`vad`]: Silero voice activity detection, speech probability per 32 ms.
//! - [`whisper`]: Whisper speech recognition on 30 s windows of log-mel
//!   features: greedy or beam decoding with timestamps, an optional context
//!   prompt, and word timings from the alignment heads' cross-attention.
//! - [`transnet`]: TransNetV2 shot-boundary probabilities on 48×27 RGB
//!   frames, in batched windows of 100, streamed as frames arrive.

mod error;
mod runtime;
pub mod transnet;
pub mod vad;
pub mod whisper;

pub use error::ModelError;
pub use runtime::{Provider, Runtime, Tensors};
pub use transnet::TransNet;
pub use vad::VoiceActivity;
pub use whisper::{
    DecodeOptions, Decoded, Encoded, Segment, Whisper, Window, WindowSegment, WordTiming,
};
