//! The analysis decode graph: one pass over the input that feeds every frame, at
//! analysis size, to the frame kernels, and the audio to the speech models.
//!
//! ```text
//! input → decodebin ─ video (selected stream) → queue → videoscale → videoconvert(GRAY8) → appsink
//!                   ├ audio (first stream) → queue → audioconvert → audioresample(16 kHz mono F32) → appsink
//!                   └ anything else (not decoded) → fakesink
//! ```
//! Scaling comes before conversion: converting a full-size frame to GRAY8 first
//! halves the throughput. The front end, the appsinks and the watcher are
//! [`graph`](crate::graph)'s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst_video::prelude::*;
use gstreamer as gst;
use gstreamer_video as gst_video;
use monteur_kernels::{Backend, FrameFeatures, FrameStats, LumaBatch};
use tracing::debug;

use crate::graph::{self, Branches, Watch, lock, stream_time};
use crate::{Cancel, Input, MediaInfo, PipelineError};

/// How far the graph goes. Everything but [`Stage::Features`] exists to measure
/// the cost of each stage in benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Decode and discard.
    Decode,
    /// Decode, scale and convert to analysis frames, then discard.
    Scale,
    /// Everything: frames go through the kernels.
    Features,
}

/// Knobs of the analysis graph.
#[derive(Debug, Clone)]
pub struct AnalyseSettings {
    /// Width of analysis frames; height follows the display aspect ratio.
    pub width: u32,
    /// Frames per kernel launch.
    pub batch_frames: usize,
    /// Give up when no frame arrives for this long.
    pub stall_timeout: Duration,
    pub stage: Stage,
    /// Decode the primary video stream (for the frame kernels).
    pub video: bool,
    /// Decode the first audio stream to 16 kHz mono f32 (for speech).
    pub audio: bool,
    /// Return what a truncated input gave (with [`Analysis::truncated`]
    /// set) instead of failing with [`PipelineError::Truncated`].
    pub allow_truncated: bool,
}

impl Default for AnalyseSettings {
    fn default() -> Self {
        Self {
            width: 320,
            batch_frames: 32,
            stall_timeout: Duration::from_secs(30),
            stage: Stage::Features,
            video: true,
            audio: false,
            allow_truncated: false,
        }
    }
}

/// Where the decode is, for progress reports.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub frames: u64,
    pub position: Option<Duration>,
    pub duration: Option<Duration>,
}

/// Presentation time of one decoded frame, from the stream's start (edit lists
/// applied), when the container gave one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTime(pub Option<Duration>);

/// The per-frame results of one pass.
#[derive(Debug)]
pub struct Analysis {
    /// Frames that reached the end of the graph, in presentation order.
    pub frames: u64,
    pub times: Vec<FrameTime>,
    pub features: Vec<FrameFeatures>,
    /// Analysis frame size (0 when no frame went through the kernels).
    pub width: u32,
    pub height: u32,
    /// Frame rate the decoder announced, if constant.
    pub fps: Option<f64>,
    /// The kernel backend that ran.
    pub backend: &'static str,
    /// The decoded audio, when asked for.
    pub audio: Option<AudioTrack>,
    /// Set when decoding ended well before the container's duration (and
    /// the settings allowed it): the error it would otherwise have been.
    pub truncated: Option<String>,
}

/// Audio resampled for speech models.
#[derive(Debug, Clone, Default)]
pub struct AudioTrack {
    /// 16 kHz mono samples in -1..1.
    pub samples: Vec<f32>,
    /// Stream time of the first sample.
    pub start: Duration,
}

/// Sample rate of [`AudioTrack`].
pub const AUDIO_RATE: u32 = 16_000;

/// Decodes the primary video stream of `input` and computes per-frame
/// features, and/or decodes its first audio stream.
///
/// `info` is the input's probe; its primary video stream is the one analysed.
/// `on_progress` is called from this thread about ten times a second.
pub fn analyse(
    input: &Input,
    info: &MediaInfo,
    settings: &AnalyseSettings,
    backend: Box<dyn Backend>,
    cancel: &Cancel,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<Analysis, PipelineError> {
    if !settings.video && !settings.audio {
        return Err(PipelineError::Graph("nothing to decode".into()));
    }
    let video = match settings.video {
        true => Some(info.primary_video().ok_or(PipelineError::NoVideo)?),
        false => None,
    };
    if settings.audio && info.audio.is_empty() {
        return Err(PipelineError::NoAudio);
    }
    // Never upscale; some containers do not declare a size, then trust the
    // setting. The height follows from the display aspect ratio at negotiation.
    let aw = match video.map(|v| v.width) {
        Some(0) | None => settings.width,
        Some(w) => settings.width.min(w),
    }
    .max(2)
        & !1;
    let backend_name = backend.name();
    let sink_state = Arc::new(Mutex::new(FrameSink::new(
        backend,
        settings.batch_frames.max(1),
    )));
    let counter = Arc::new(AtomicU64::new(0));
    let position = Arc::new(AtomicU64::new(u64::MAX));
    let audio_state = Arc::new(Mutex::new(AudioSink::default()));
    let audio_buffers = Arc::new(AtomicU64::new(0));

    let extent = graph::Extent::default();
    let branches = Branches {
        extent: extent.clone(),
        video: video.map(|v| {
            let branch = Branch {
                stage: settings.stage,
                width: aw,
                sink_state: Arc::clone(&sink_state),
                counter: Arc::clone(&counter),
                position: Arc::clone(&position),
                cancel: cancel.clone(),
            };
            let attach: graph::Attach = Box::new(move |p, pad| branch.attach(p, pad));
            (v.stream_id.clone(), attach)
        }),
        audio: settings.audio.then(|| {
            let branch = AudioBranch {
                sink: Arc::clone(&audio_state),
                buffers: Arc::clone(&audio_buffers),
                position: (!settings.video).then(|| Arc::clone(&position)),
                cancel: cancel.clone(),
            };
            let attach: graph::Attach = Box::new(move |p, pad| branch.attach(p, pad));
            attach
        }),
    };
    let pipeline = graph::decode_graph("analyse", input, branches)?;
    let outcome = run_to_eos(
        &pipeline,
        settings,
        info,
        cancel,
        &|| counter.load(Ordering::Relaxed) + audio_buffers.load(Ordering::Relaxed),
        &counter,
        &position,
        on_progress,
    );
    let _ = pipeline.set_state(gst::State::Null);
    cancel.check()?;
    let mut state = lock(&sink_state);
    if let Some(e) = state.error.take() {
        return Err(e);
    }
    outcome?;
    if settings.stage == Stage::Features {
        state.flush()?;
    }
    let frames = counter.load(Ordering::Relaxed);
    if settings.video && frames == 0 {
        return Err(PipelineError::Decode(
            "the video stream produced no frames".into(),
        ));
    }
    let audio = if settings.audio {
        let mut a = lock(&audio_state);
        if let Some(e) = a.error.take() {
            return Err(e);
        }
        if a.track.samples.is_empty() {
            return Err(PipelineError::Decode(
                "the audio stream produced no samples".into(),
            ));
        }
        Some(std::mem::take(&mut a.track))
    } else {
        None
    };
    // Where decoding got to: the last frame's end, or the audio's end.
    let frame_s = state.fps.map(|f| 1.0 / f).unwrap_or(0.0);
    let video_end = state
        .times
        .iter()
        .rev()
        .find_map(|t| t.0)
        .map(|t| t + Duration::from_secs_f64(frame_s));
    let audio_end = audio
        .as_ref()
        .map(|a| a.start + Duration::from_secs_f64(a.samples.len() as f64 / f64::from(AUDIO_RATE)));
    // Streams nobody decoded count too: a file whose video ends before its
    // audio is whole; a cut one stops every stream early.
    let decoded_until = video_end
        .into_iter()
        .chain(audio_end)
        .chain(extent.until())
        .max();
    let truncated = match decoded_until.map(|d| graph::check_complete(d, info.duration)) {
        Some(Err(e)) if settings.allow_truncated => Some(e.to_string()),
        Some(Err(e)) => return Err(e),
        _ => None,
    };
    Ok(Analysis {
        frames,
        times: std::mem::take(&mut state.times),
        features: std::mem::take(&mut state.features),
        width: state.width as u32,
        height: state.height as u32,
        fps: state.fps,
        backend: backend_name,
        audio,
        truncated,
    })
}

/// Plays the graph to its end, reporting progress as it goes.
#[allow(clippy::too_many_arguments)]
fn run_to_eos(
    pipeline: &gst::Pipeline,
    settings: &AnalyseSettings,
    info: &MediaInfo,
    cancel: &Cancel,
    activity: &(dyn Fn() -> u64 + Sync),
    counter: &AtomicU64,
    position: &AtomicU64,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<(), PipelineError> {
    let bus = pipeline
        .bus()
        .ok_or_else(|| PipelineError::Graph("pipeline has no bus".into()))?;
    graph::start(pipeline, gst::State::Playing)?;
    let watch = Watch {
        cancel,
        stall: settings.stall_timeout,
        activity,
        encoder: None,
    };
    watch.until(&bus, gst::MessageType::Eos, &mut || {
        let pos = position.load(Ordering::Relaxed);
        on_progress(Progress {
            frames: counter.load(Ordering::Relaxed),
            position: (pos != u64::MAX).then(|| Duration::from_nanos(pos)),
            duration: info.duration,
        })
    })?;
    on_progress(Progress {
        frames: counter.load(Ordering::Relaxed),
        position: info.duration,
        duration: info.duration,
    });
    Ok(())
}

/// The video branch.
struct Branch {
    stage: Stage,
    width: u32,
    sink_state: Arc<Mutex<FrameSink>>,
    counter: Arc<AtomicU64>,
    position: Arc<AtomicU64>,
    cancel: Cancel,
}

impl Branch {
    fn attach(&self, pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<(), PipelineError> {
        let mut chain = vec![graph::make("queue")?];
        if self.stage != Stage::Decode {
            let scale = graph::make("videoscale")?;
            scale.set_property("add-borders", false);
            let size = graph::make("capsfilter")?;
            size.set_property(
                "caps",
                gst::Caps::builder("video/x-raw")
                    .field("width", self.width as i32)
                    .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
                    .build(),
            );
            chain.extend([scale, size, graph::make("videoconvert")?]);
        }
        let caps = if self.stage == Stage::Decode {
            gst::Caps::builder("video/x-raw").build()
        } else {
            gst_video::VideoCapsBuilder::new()
                .format(gst_video::VideoFormat::Gray8)
                .width(self.width as i32)
                .build()
        };
        let counter = Arc::clone(&self.counter);
        let position = Arc::clone(&self.position);
        let state = Arc::clone(&self.sink_state);
        let compute = self.stage == Stage::Features;
        chain.push(graph::appsink(&caps, 16, &self.cancel, move |sample| {
            let time = stream_time(&sample);
            if let Some(t) = time {
                position.store(t.as_nanos() as u64, Ordering::Relaxed);
            }
            if compute {
                let mut st = lock(&state);
                if let Err(e) = st.push(&sample, time) {
                    st.error = Some(e);
                    return Err(gst::FlowError::Error);
                }
            }
            counter.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }));
        graph::link_chain(pipeline, pad, &chain)?;
        debug!(width = self.width, "video branch linked");
        Ok(())
    }
}

/// The audio branch: decoded audio to 16 kHz mono f32 for speech models.
struct AudioBranch {
    sink: Arc<Mutex<AudioSink>>,
    buffers: Arc<AtomicU64>,
    /// Drives progress when no video is decoded.
    position: Option<Arc<AtomicU64>>,
    cancel: Cancel,
}

#[derive(Default)]
struct AudioSink {
    track: AudioTrack,
    started: bool,
    error: Option<PipelineError>,
}

impl AudioBranch {
    fn attach(&self, pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<(), PipelineError> {
        let caps = gst::Caps::builder("audio/x-raw")
            .field("format", "F32LE")
            .field("rate", AUDIO_RATE as i32)
            .field("channels", 1i32)
            .field("layout", "interleaved")
            .build();
        let sink = Arc::clone(&self.sink);
        let buffers = Arc::clone(&self.buffers);
        let position = self.position.clone();
        let appsink = graph::appsink(&caps, 64, &self.cancel, move |sample| {
            let time = stream_time(&sample);
            let mut st = lock(&sink);
            let Some(buffer) = sample.buffer() else {
                return Ok(());
            };
            let Ok(map) = buffer.map_readable() else {
                st.error = Some(PipelineError::Graph(
                    "audio buffer could not be mapped".into(),
                ));
                return Err(gst::FlowError::Error);
            };
            if !st.started {
                st.started = true;
                st.track.start = time.unwrap_or_default();
            }
            st.track.samples.extend(
                map.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
            if let (Some(p), Some(t)) = (&position, time) {
                p.store(t.as_nanos() as u64, Ordering::Relaxed);
            }
            buffers.fetch_add(1, Ordering::Relaxed);
            Ok(())
        });
        let chain = [
            graph::make("queue")?,
            graph::make("audioconvert")?,
            graph::make("audioresample")?,
            appsink,
        ];
        graph::link_chain(pipeline, pad, &chain)
    }
}

/// Collects frames into batches and runs the kernels on each full batch.
struct FrameSink {
    backend: Box<dyn Backend>,
    width: usize,
    height: usize,
    batch_frames: usize,
    batch: Vec<u8>,
    queued: usize,
    previous_frame: Vec<u8>,
    previous_stats: Option<FrameStats>,
    stats: Vec<FrameStats>,
    features: Vec<FrameFeatures>,
    times: Vec<FrameTime>,
    fps: Option<f64>,
    error: Option<PipelineError>,
}

impl FrameSink {
    fn new(backend: Box<dyn Backend>, batch_frames: usize) -> Self {
        Self {
            backend,
            width: 0,
            height: 0,
            batch_frames,
            batch: Vec::new(),
            queued: 0,
            previous_frame: Vec::new(),
            previous_stats: None,
            stats: Vec::with_capacity(batch_frames),
            features: Vec::new(),
            times: Vec::new(),
            fps: None,
            error: None,
        }
    }

    fn push(&mut self, sample: &gst::Sample, time: Option<Duration>) -> Result<(), PipelineError> {
        let caps = sample
            .caps()
            .ok_or_else(|| PipelineError::Graph("frame without caps".into()))?;
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|e| PipelineError::Graph(format!("unreadable frame caps: {e}")))?;
        if self.width == 0 {
            // The first frame fixes the analysis geometry for the whole pass.
            self.width = info.width() as usize;
            self.height = info.height() as usize;
            self.batch = vec![0; self.width * self.height * self.batch_frames];
        }
        if info.width() as usize != self.width || info.height() as usize != self.height {
            return Err(PipelineError::Decode(format!(
                "frame is {}x{}, expected {}x{}",
                info.width(),
                info.height(),
                self.width,
                self.height
            )));
        }
        if self.fps.is_none() {
            let f = info.fps();
            if f.numer() > 0 && f.denom() > 0 {
                self.fps = Some(f64::from(f.numer()) / f64::from(f.denom()));
            }
        }
        let buffer = sample
            .buffer()
            .ok_or_else(|| PipelineError::Graph("sample without buffer".into()))?;
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
            .map_err(|_| PipelineError::Graph("frame buffer could not be mapped".into()))?;
        let stride = frame.plane_stride()[0] as usize;
        let data = frame
            .plane_data(0)
            .map_err(|e| PipelineError::Graph(format!("frame plane: {e}")))?;
        let n = self.width * self.height;
        let dst = &mut self.batch[self.queued * n..(self.queued + 1) * n];
        // Rows are padded to the stride; the kernels want them packed.
        for (row, out) in dst.chunks_exact_mut(self.width).enumerate() {
            let start = row * stride;
            let src = data.get(start..start + self.width).ok_or_else(|| {
                PipelineError::Decode("frame plane shorter than its geometry".into())
            })?;
            out.copy_from_slice(src);
        }
        self.queued += 1;
        self.times.push(FrameTime(time));
        if self.queued == self.batch_frames {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), PipelineError> {
        if self.queued == 0 {
            return Ok(());
        }
        let n = self.width * self.height;
        let frames = &self.batch[..self.queued * n];
        let previous = (!self.previous_frame.is_empty()).then_some(self.previous_frame.as_slice());
        let batch = LumaBatch::new(self.width, self.height, frames, previous)?;
        self.backend.frame_stats(&batch, &mut self.stats)?;
        for s in &self.stats {
            self.features
                .push(FrameFeatures::derive(s, self.previous_stats.as_ref(), n));
            self.previous_stats = Some(*s);
        }
        self.previous_frame.clear();
        self.previous_frame
            .extend_from_slice(&self.batch[(self.queued - 1) * n..self.queued * n]);
        self.queued = 0;
        Ok(())
    }
}
