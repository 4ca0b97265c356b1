//! Media pipelines: what GStreamer decodes and what we make of it.
//!
//! # Layout
//! - [`Input`]: what a job reads, a local file or a random-access stream
//!   (an object in storage, read through [`source`]'s `monteursrc`).
//! - [`Cancel`]: a job's stop signal, checked by every graph, model loop and
//!   byte source working for the job, so a cancelled job stops at once.
//! - [`probe`]: what a file holds (container, streams, duration, frame rate),
//!   read before any decode so a job can refuse bad input early.
//! - `graph`: the GStreamer scaffolding the graphs below share (decode front
//!   end, appsinks, the watcher of a running graph, error classification,
//!   truncation check).
//! - [`upright`]: the front of every video branch: display orientation
//!   (pixels turned, not a tag copied), deinterlacing, HDR tone mapping, so
//!   everything downstream sees the picture as people see it.
//! - [`analyse`]: one decode graph per input (`decodebin → appsink`, frames
//!   area-averaged to analysis size in the sink) feeding them, in batches, to a kernel
//!   [`Backend`](monteur_kernels::Backend), and their thumbnails to the
//!   shot-boundary model on a thread of its own, and the audio as it is
//!   decoded to a listener; [`with_audio_stream`] decodes the audio again for
//!   a reader that walks it forward. No graph holds a whole track.
//! - [`listen`]: what the first pass keeps of the audio (speech
//!   probabilities, frame-long loudness), a few bytes a second.
//! - [`captions`]: speech regions (voice activity), Whisper's seeking loop
//!   over the speech, cues that follow subtitle rules; SRT, VTT, and
//!   word-level (karaoke) VTT and ASS.
//! - [`transcript`]: the `transcript.json` contract (segments, timed words,
//!   speech regions) and the clean-ups of word times.
//! - [`scenes`]: pure logic turning per-frame features into transitions and
//!   scenes, and the `scenes.json` contract.
//! - [`cutplan`]: pure logic deciding which frames an automatic edit keeps
//!   (silence or speech, scene alignment, target length): `cutplan.json`.
//! - [`timeline`]: the plan as OpenTimelineIO, CMX 3600 EDL and FCPXML.
//! - [`source`]: `monteursrc`, random-access reads of inputs that are not
//!   files (objects in storage), through the [`RandomAccess`] trait.
//! - [`render`]: a second graph that plays the plan through the encoders
//!   into `render.mp4`, captions retimed, muxed and optionally burned in.
//!
//! Everything here is synchronous and blocks the calling thread: the worker runs
//! it on a blocking thread so the async runtime (and AMQP heartbeats) stay live.

pub mod analyse;
mod cancel;
pub mod captions;
pub mod cutplan;
mod error;
mod graph;
mod input;
pub mod listen;
pub mod probe;
pub mod render;
pub mod scenes;
pub mod source;
pub mod timeline;
pub mod transcript;
pub mod upright;

pub use analyse::{
    AUDIO_RATE, AnalyseSettings, Analysis, AudioExtent, AudioReader, FrameTime, Grid, Listener,
    Progress, analyse, with_audio_stream,
};
pub use cancel::Cancel;
pub use cutplan::{AutocutSettings, CutMode, CutPlan};
pub use error::PipelineError;
pub use graph::truncation_tolerance;
pub use input::Input;
pub use probe::{AudioStream, MediaInfo, VideoStream, probe};
pub use render::{RenderReport, RenderSettings, render};
pub use scenes::{SceneSettings, ScenesDocument, detect_scenes};
pub use source::{RandomAccess, ReadError};
pub use upright::Orientation;

/// Initialises GStreamer once per process; later calls are cheap.
pub fn init() -> Result<(), PipelineError> {
    gstreamer::init().map_err(|e| PipelineError::Init(e.to_string()))?;
    refuse_fetching_elements();
    source::register_element()
}

/// Elements that would fetch what an input names (adaptive streaming
/// manifests, playlists): an uploaded file is media, never a list of other
/// URIs to open, and a job must read nothing but its own input. Ranked out,
/// decodebin (the discoverer's included) never plugs them.
const FETCHING: [&str; 7] = [
    "hlsdemux",
    "hlsdemux2",
    "dashdemux",
    "dashdemux2",
    "mssdemux",
    "mssdemux2",
    "playlistdemux",
];

fn refuse_fetching_elements() {
    use gstreamer::prelude::*;
    let registry = gstreamer::Registry::get();
    for name in FETCHING {
        if let Some(f) = registry.lookup_feature(name) {
            f.set_rank(gstreamer::Rank::NONE);
        }
    }
}
