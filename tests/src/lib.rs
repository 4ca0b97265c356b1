//! Helpers for end-to-end tests against the real services the worker talks to.
//!
//! The services are started by `scripts/services.sh` (the test command does it):
//! RabbitMQ on `127.0.0.1:5672` and a Garage S3 server on `127.0.0.1:3900`.
//! Each helper fails with a message that says what is down and how to start it,
//! rather than letting a test time out obscurely.
//!
//! # Layout
//! - [`rabbitmq`]: a connection to the broker.
//! - [`s3`]: an S3 client configured the way Garage needs, the test bucket, and
//!   SSE-C key headers.
//! - [`assets`]: where setup put ONNX Runtime and the model files.
//! - [`fixtures`]: where the shared fixtures with known answers are.
//! - [`synthetic`]: clips made with ffmpeg whose transitions are known to the
//!   frame.
//! - [`sceneset`]: the scene-boundary evaluation set, real footage re-joined
//!   with exact truth, in a tuning and a held-out split.
//! - [`avsync`]: flashes and beeps read back from a render, for sync checks.
//! - [`audio`]: speech (espeak-ng) and silence (sox) at 16 kHz, joined
//!   and trimmed, with their lengths.
//! - [`wordset`]: the word-timing evaluation set, recordings at known
//!   offsets, in a tuning and a held-out split.
//! - [`uploads`]: footage as people upload it (orientations, HDR,
//!   interlace, surround and odd audio) with ffmpeg's upright decode of it.
//! - [`wer`]: word error rate with reference-style normalisation, and the
//!   pocketsphinx test utterances.

pub mod assets;
pub mod audio;
pub mod avsync;
pub mod fixtures;
pub mod rabbitmq;
pub mod s3;
pub mod sceneset;
pub mod synthetic;
pub mod uploads;
pub mod wer;
pub mod wordset;

/// The hint appended to every "service is down" failure.
pub const START_HINT: &str = "start the test services with `scripts/services.sh start` \
     (or run the whole suite with `scripts/test.sh`)";

/// The cache scripts/setup.sh fills: `MONTEUR_CACHE`, else `~/.cache/monteur`
/// (the system temp dir when there is no home).
pub fn cache_dir() -> std::path::PathBuf {
    std::env::var_os("MONTEUR_CACHE")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache/monteur"))
        })
        .unwrap_or_else(std::env::temp_dir)
}
