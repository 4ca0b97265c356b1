//! The analysis decode graph: one pass over the input that feeds every frame, at
//! analysis size, to the frame kernels.
//!
//! ```text
//! filesrc|monteursrc → decodebin ─ video (selected stream) → queue → videoscale → videoconvert(GRAY8) → appsink
//!                     └ anything else (not decoded) → fakesink
//! ```
//! Scaling comes before conversion: converting a full-size frame to GRAY8 first
//! halves the throughput.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gst_video::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use monteur_kernels::{Backend, FrameFeatures, FrameStats, LumaBatch};
use tracing::debug;

use crate::{MediaInfo, PipelineError};

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

/// Decodes the primary video stream of `path` and computes per-frame features.
///
/// `info` is the file's probe; its primary video stream is the one analysed.
/// `on_progress` is called from this thread a few times a second.
pub fn analyse(
    path: &Path,
    info: &MediaInfo,
    settings: &AnalyseSettings,
    backend: Box<dyn Backend>,
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

    let path = crate::probe::canonical(path)?;
    let pipeline = gst::Pipeline::new();
    let src = crate::source::element_for(&path)?;
    let decodebin = gst::ElementFactory::make("decodebin").build()?;
    pipeline.add_many([&src, &decodebin])?;
    src.link(&decodebin)?;

    let (want_video, want_audio) = (settings.video, settings.audio);
    decode_only(&decodebin, want_video, want_audio);

    let audio_state = Arc::new(Mutex::new(AudioSink::default()));
    let audio_buffers = Arc::new(AtomicU64::new(0));
    let audio_branch = AudioBranch {
        sink: Arc::clone(&audio_state),
        buffers: Arc::clone(&audio_buffers),
        position: (!want_video).then(|| Arc::clone(&position)),
    };
    let audio_linked = Arc::new(Mutex::new(false));
    let wanted_stream = video.and_then(|v| v.stream_id.clone());
    let branch = Branch {
        stage: settings.stage,
        width: aw,
        sink_state: Arc::clone(&sink_state),
        counter: Arc::clone(&counter),
        position: Arc::clone(&position),
    };
    let linked = Arc::new(Mutex::new(false));
    let pipeline_weak = pipeline.downgrade();
    decodebin.connect_pad_added(move |_, pad| {
        let Some(pipeline) = pipeline_weak.upgrade() else {
            return;
        };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let is_raw_video = caps
            .structure(0)
            .map(|s| s.name() == "video/x-raw")
            .unwrap_or(false);
        let stream_ok = match (&wanted_stream, pad.stream_id()) {
            (Some(want), Some(got)) => want.as_str() == got.as_str(),
            _ => true,
        };
        let is_raw_audio = caps
            .structure(0)
            .map(|s| s.name() == "audio/x-raw")
            .unwrap_or(false);
        let mut done = lock(&linked);
        let mut audio_done = lock(&audio_linked);
        let result = if want_video && is_raw_video && stream_ok && !*done {
            *done = true;
            branch.attach(&pipeline, pad)
        } else if want_audio && is_raw_audio && !*audio_done {
            *audio_done = true;
            audio_branch.attach(&pipeline, pad)
        } else {
            attach_fakesink(&pipeline, pad)
        };
        report_link_failure(&pipeline, result);
    });

    let outcome = run_to_eos(
        &pipeline,
        settings,
        info,
        [&counter, &audio_buffers],
        &counter,
        &position,
        on_progress,
    );
    let _ = pipeline.set_state(gst::State::Null);
    let mut state = lock(&sink_state);
    if let Some(e) = state.error.take() {
        return Err(e);
    }
    outcome?;
    if settings.stage == Stage::Features {
        state.flush()?;
    }
    let frames = counter.load(Ordering::Relaxed);
    if want_video && frames == 0 {
        return Err(PipelineError::Decode(
            "the video stream produced no frames".into(),
        ));
    }
    let audio = if want_audio {
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
    Ok(Analysis {
        frames,
        times: std::mem::take(&mut state.times),
        features: std::mem::take(&mut state.features),
        width: state.width as u32,
        height: state.height as u32,
        fps: state.fps,
        backend: backend_name,
        audio,
    })
}

/// Plays the graph to its end. `activity` counters (frames, audio buffers)
/// tell a working decode from a stalled one; `frames` feeds progress.
fn run_to_eos(
    pipeline: &gst::Pipeline,
    settings: &AnalyseSettings,
    info: &MediaInfo,
    activity: [&AtomicU64; 2],
    counter: &AtomicU64,
    position: &AtomicU64,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<(), PipelineError> {
    let bus = pipeline
        .bus()
        .ok_or_else(|| PipelineError::Graph("pipeline has no bus".into()))?;
    pipeline.set_state(gst::State::Playing).map_err(|_| {
        PipelineError::Decode(
            first_error(&bus).unwrap_or_else(|| "the decoder refused to start".into()),
        )
    })?;
    let mut last_frames = 0;
    let mut last_change = Instant::now();
    loop {
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(200),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        if let Some(msg) = msg {
            match msg.view() {
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Error(err) => {
                    return Err(PipelineError::Decode(describe_error(err)));
                }
                _ => {}
            }
        }
        let frames = counter.load(Ordering::Relaxed);
        let pos = position.load(Ordering::Relaxed);
        on_progress(Progress {
            frames,
            position: (pos != u64::MAX).then(|| Duration::from_nanos(pos)),
            duration: info.duration,
        });
        let ticks: u64 = activity.iter().map(|a| a.load(Ordering::Relaxed)).sum();
        if ticks != last_frames {
            last_frames = ticks;
            last_change = Instant::now();
        } else if last_change.elapsed() > settings.stall_timeout {
            return Err(PipelineError::Stalled(settings.stall_timeout));
        }
    }
    on_progress(Progress {
        frames: counter.load(Ordering::Relaxed),
        position: info.duration,
        duration: info.duration,
    });
    Ok(())
}

pub(crate) fn first_error(bus: &gst::Bus) -> Option<String> {
    bus.pop_filtered(&[gst::MessageType::Error])
        .and_then(|m| match m.view() {
            gst::MessageView::Error(err) => Some(describe_error(err)),
            _ => None,
        })
}

/// The error's own message and the element that raised it; GStreamer's debug
/// string is left out as it carries file paths.
pub(crate) fn describe_error(err: &gst::message::Error) -> String {
    let source = err
        .src()
        .map(|s| s.name().to_string())
        .unwrap_or_else(|| "pipeline".into());
    format!("{} (in {source})", err.error().message())
}

/// A decoded stream that could not be linked (in decodebin's `pad-added`)
/// becomes a pipeline error, so the bus ends the run with its reason.
pub(crate) fn report_link_failure(pipeline: &gst::Pipeline, result: Result<(), PipelineError>) {
    if let Err(e) = result {
        gst::element_error!(
            pipeline,
            gst::CoreError::Negotiation,
            ("could not link decoded stream: {}", e)
        );
    }
}

pub(crate) fn attach_fakesink(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
) -> Result<(), PipelineError> {
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()?;
    pipeline.add(&sink)?;
    sink.sync_state_with_parent()?;
    let sinkpad = sink
        .static_pad("sink")
        .ok_or_else(|| PipelineError::Graph("fakesink has no sink pad".into()))?;
    pad.link(&sinkpad)
        .map_err(|e| PipelineError::Graph(format!("{e:?}")))?;
    Ok(())
}

/// The video branch, built when decodebin exposes the selected stream: a branch
/// built up front for a stream that never appears would wait forever for EOS.
struct Branch {
    stage: Stage,
    width: u32,
    sink_state: Arc<Mutex<FrameSink>>,
    counter: Arc<AtomicU64>,
    position: Arc<AtomicU64>,
}

impl Branch {
    fn attach(&self, pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<(), PipelineError> {
        let queue = gst::ElementFactory::make("queue").build()?;
        let mut chain = vec![queue];
        if self.stage != Stage::Decode {
            let scale = gst::ElementFactory::make("videoscale")
                .property("add-borders", false)
                .build()?;
            let size = gst::ElementFactory::make("capsfilter")
                .property(
                    "caps",
                    gst::Caps::builder("video/x-raw")
                        .field("width", self.width as i32)
                        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
                        .build(),
                )
                .build()?;
            let convert = gst::ElementFactory::make("videoconvert").build()?;
            chain.extend([scale, size, convert]);
        }
        let caps = if self.stage == Stage::Decode {
            gst::Caps::builder("video/x-raw").build()
        } else {
            gst_video::VideoCapsBuilder::new()
                .format(gst_video::VideoFormat::Gray8)
                .width(self.width as i32)
                .build()
        };
        let appsink = gst_app::AppSink::builder()
            .caps(&caps)
            .sync(false)
            .max_buffers(16)
            .build();
        let counter = Arc::clone(&self.counter);
        let position = Arc::clone(&self.position);
        let state = Arc::clone(&self.sink_state);
        let compute = self.stage == Stage::Features;
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
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
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        chain.push(appsink.upcast());
        link_chain(pipeline, pad, &chain)?;
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
}

#[derive(Default)]
struct AudioSink {
    track: AudioTrack,
    started: bool,
    error: Option<PipelineError>,
}

impl AudioBranch {
    fn attach(&self, pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<(), PipelineError> {
        let chain = vec![
            gst::ElementFactory::make("queue").build()?,
            gst::ElementFactory::make("audioconvert").build()?,
            gst::ElementFactory::make("audioresample").build()?,
        ];
        let appsink = gst_app::AppSink::builder()
            .caps(
                &gst::Caps::builder("audio/x-raw")
                    .field("format", "F32LE")
                    .field("rate", AUDIO_RATE as i32)
                    .field("channels", 1i32)
                    .field("layout", "interleaved")
                    .build(),
            )
            .sync(false)
            .max_buffers(64)
            .build();
        let sink = Arc::clone(&self.sink);
        let buffers = Arc::clone(&self.buffers);
        let position = self.position.clone();
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let time = stream_time(&sample);
                    let mut st = lock(&sink);
                    let Some(buffer) = sample.buffer() else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let Ok(map) = buffer.map_readable() else {
                        st.error = Some(PipelineError::Decode(
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
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let mut chain = chain;
        chain.push(appsink.upcast());
        link_chain(pipeline, pad, &chain)
    }
}

/// Stops `decodebin` autoplugging at elementary streams nobody reads, so they
/// are demuxed but never decoded (audio for scenes only, subtitles, cover
/// images). Container caps ("video/quicktime", "audio/x-m4a") are not judged:
/// only pads coming out of a demuxer or parser carry one stream.
pub(crate) fn decode_only(decodebin: &gst::Element, video: bool, audio: bool) {
    decodebin.connect("autoplug-continue", false, move |args| {
        let pad = args.get(1).and_then(|v| v.get::<gst::Pad>().ok());
        let elementary = pad
            .and_then(|p| p.parent_element())
            .and_then(|e| e.factory())
            .map(|f| {
                let klass = f.metadata("klass").unwrap_or_default();
                klass.contains("Demux") || klass.contains("Parser")
            })
            .unwrap_or(false);
        let caps = args.get(2).and_then(|v| v.get::<gst::Caps>().ok());
        let name = caps
            .as_ref()
            .and_then(|c| c.structure(0))
            .map(|s| s.name().to_string())
            .unwrap_or_default();
        let keep = !elementary
            || (video && name.starts_with("video/"))
            || (audio && name.starts_with("audio/"));
        Some(keep.to_value())
    });
}

/// Adds `chain` to the running pipeline, links it in order, starts it and
/// feeds it from `pad`.
pub(crate) fn link_chain(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    chain: &[gst::Element],
) -> Result<(), PipelineError> {
    pipeline.add_many(chain)?;
    gst::Element::link_many(chain)?;
    for e in chain {
        e.sync_state_with_parent()?;
    }
    let sink = chain
        .first()
        .and_then(|e| e.static_pad("sink"))
        .ok_or_else(|| PipelineError::Graph("branch has no sink pad".into()))?;
    pad.link(&sink)
        .map_err(|e| PipelineError::Graph(format!("{e:?}")))?;
    Ok(())
}

/// The frame's presentation time on the stream's own timeline. Buffer PTS from
/// MP4 include the edit-list offset; the segment maps it back.
pub(crate) fn stream_time(sample: &gst::Sample) -> Option<Duration> {
    let pts = sample.buffer()?.pts()?;
    let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
    segment
        .to_stream_time(pts)
        .map(|t| Duration::from_nanos(t.nseconds()))
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; carry on with it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
            .ok_or_else(|| PipelineError::Decode("frame without caps".into()))?;
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|e| PipelineError::Decode(format!("unreadable frame caps: {e}")))?;
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
            .ok_or_else(|| PipelineError::Decode("sample without buffer".into()))?;
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
            .map_err(|_| PipelineError::Decode("frame buffer could not be mapped".into()))?;
        let stride = frame.plane_stride()[0] as usize;
        let data = frame
            .plane_data(0)
            .map_err(|e| PipelineError::Decode(format!("frame plane: {e}")))?;
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
