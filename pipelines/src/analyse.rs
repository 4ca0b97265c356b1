//! The analysis decode graph: one pass over the input that feeds every frame, at
//! analysis size, to the frame kernels, and the audio to the speech models.
//!
//! ```text
//! input → decodebin ─ video (selected stream) → queue → videoscale → videoconvert(I420) → appsink
//!                   ├ audio (first stream) → queue → audioconvert → audioresample(16 kHz mono F32) → appsink
//!                   └ anything else (not decoded) → fakesink
//! ```
//! Scaling comes before conversion: converting a full-size frame first halves
//! the throughput. I420 at analysis size is what most decoders give after
//! scaling, so the conversion is usually a pass-through; its luma plane feeds
//! the kernels, and all three planes make the 48×27 RGB thumbnails the
//! boundary model reads (one decode serves both). The front end, the appsinks
//! and the watcher are [`graph`](crate::graph)'s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst_video::prelude::*;
use gstreamer as gst;
use gstreamer_video as gst_video;
use monteur_kernels::{Backend, FrameFeatures, FrameStats, LumaBatch};
use monteur_models::transnet::{self, Prediction, TransNet};
use std::sync::mpsc;
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
    /// Windows of 100 frames per boundary-model run (when a model is given).
    pub neural_batch: usize,
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
            neural_batch: 1,
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
    /// Each frame's mean luma on a coarse grid ([`Grid`]): where in the
    /// picture things change, for telling wipes from dissolves.
    pub grids: Vec<Grid>,
    /// The boundary model's predictions, one per frame, when it ran.
    pub boundaries: Option<Vec<Prediction>>,
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

/// Columns and rows of [`Grid`]: 16×9 cells of 20×20 pixels at the default
/// analysis size, small enough to keep for every frame of a long input
/// (144 bytes a frame, 16 MB an hour at 30 fps).
pub const GRID_COLS: usize = 16;
pub const GRID_ROWS: usize = 9;

/// Mean luma of each cell of a frame, row by row.
pub type Grid = [u8; GRID_COLS * GRID_ROWS];

/// Thumbnails queued between the decode and the boundary model: four
/// seconds at 25 fps, so neither waits on the other's bursts.
const THUMBNAIL_QUEUE: usize = 100;

/// Decodes the primary video stream of `input` and computes per-frame
/// features, and/or decodes its first audio stream.
///
/// `info` is the input's probe; its primary video stream is the one analysed.
/// `on_progress` is called from this thread about ten times a second. With a
/// boundary model, every frame's thumbnail also goes to it, on a thread of
/// its own so decoding and inference overlap.
pub fn analyse(
    input: &Input,
    info: &MediaInfo,
    settings: &AnalyseSettings,
    backend: Box<dyn Backend>,
    neural: Option<&mut TransNet>,
    cancel: &Cancel,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<Analysis, PipelineError> {
    let neural = neural.filter(|_| settings.video && settings.stage == Stage::Features);
    let Some(model) = neural else {
        return analyse_with(input, info, settings, backend, None, cancel, on_progress);
    };
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(THUMBNAIL_QUEUE);
    let batch = settings.neural_batch;
    std::thread::scope(|scope| {
        let runner = scope.spawn(move || -> Result<Vec<Prediction>, PipelineError> {
            let mut stream = transnet::Stream::new(batch);
            for frame in rx {
                cancel.check()?;
                stream.push(model, &frame)?;
            }
            cancel.check()?;
            Ok(stream.finish(model)?)
        });
        let analysis = analyse_with(
            input,
            info,
            settings,
            backend,
            Some(tx),
            cancel,
            on_progress,
        );
        // The model's own failure explains a decode that stopped because the
        // model went away; otherwise the decode's error comes first.
        let predictions = runner
            .join()
            .map_err(|_| PipelineError::Graph("the boundary model thread panicked".into()))?;
        let mut analysis = match (analysis, predictions) {
            (Err(e), Ok(_)) => return Err(e),
            (_, Err(e)) => return Err(e),
            (Ok(a), Ok(p)) => (a, p),
        };
        if analysis.1.len() != analysis.0.features.len() {
            return Err(PipelineError::Graph(format!(
                "{} boundary predictions for {} frames",
                analysis.1.len(),
                analysis.0.features.len()
            )));
        }
        analysis.0.boundaries = Some(analysis.1);
        Ok(analysis.0)
    })
}

fn analyse_with(
    input: &Input,
    info: &MediaInfo,
    settings: &AnalyseSettings,
    backend: Box<dyn Backend>,
    thumbnails: Option<mpsc::SyncSender<Vec<u8>>>,
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
        thumbnails,
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
    let mut state = lock(&sink_state);
    // Closes the channel: the boundary model runs its last windows.
    state.thumbnails = None;
    cancel.check()?;
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
        grids: std::mem::take(&mut state.grids),
        boundaries: None,
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
            // Scaling a full-size frame down is the costliest step after the
            // decoder itself, and videoscale runs it on one thread unless
            // told otherwise (docs/BENCHMARKS.md has the measurement).
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            scale.set_property("n-threads", cores as u32);
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
                .format(gst_video::VideoFormat::I420)
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
    grids: Vec<Grid>,
    /// Where thumbnails go for the boundary model, while it runs.
    thumbnails: Option<mpsc::SyncSender<Vec<u8>>>,
    fps: Option<f64>,
    error: Option<PipelineError>,
}

impl FrameSink {
    fn new(
        backend: Box<dyn Backend>,
        batch_frames: usize,
        thumbnails: Option<mpsc::SyncSender<Vec<u8>>>,
    ) -> Self {
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
            grids: Vec::new(),
            thumbnails,
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
        self.grids.push(grid(dst, self.width, self.height));
        if let Some(tx) = &self.thumbnails {
            let plane = |i: u32| -> Result<(&[u8], usize), PipelineError> {
                let data = frame
                    .plane_data(i)
                    .map_err(|e| PipelineError::Graph(format!("frame plane: {e}")))?;
                Ok((data, frame.plane_stride()[i as usize] as usize))
            };
            let thumb = thumbnail(dst, plane(1)?, plane(2)?, self.width, self.height)?;
            // The model thread only goes away on an error or a cancel, which
            // it reports itself; the decode just stops.
            tx.send(thumb).map_err(|_| {
                PipelineError::Graph("the boundary model stopped reading frames".into())
            })?;
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

/// Mean luma of each [`Grid`] cell of a packed `w`×`h` luma frame.
fn grid(luma: &[u8], w: usize, h: usize) -> Grid {
    let mut sums = [0u32; GRID_COLS * GRID_ROWS];
    let mut counts = [0u32; GRID_COLS * GRID_ROWS];
    let col_of: Vec<usize> = (0..w).map(|x| x * GRID_COLS / w.max(1)).collect();
    for (y, row) in luma.chunks_exact(w.max(1)).take(h).enumerate() {
        let base = y * GRID_ROWS / h.max(1) * GRID_COLS;
        for (x, &v) in row.iter().enumerate() {
            sums[base + col_of[x]] += u32::from(v);
            counts[base + col_of[x]] += 1;
        }
    }
    let mut out = [0u8; GRID_COLS * GRID_ROWS];
    for ((o, s), c) in out.iter_mut().zip(sums).zip(counts) {
        *o = (s + c / 2).checked_div(c).unwrap_or(0) as u8;
    }
    out
}

/// Box-filters a `w`×`h` I420 frame (packed luma, strided chroma planes) to
/// the boundary model's 48×27 and converts it to RGB with the BT.601
/// limited-range matrix, which is what ffmpeg's `rgb24` output (the model's
/// training input) uses for untagged video.
fn thumbnail(
    luma: &[u8],
    (u, u_stride): (&[u8], usize),
    (v, v_stride): (&[u8], usize),
    w: usize,
    h: usize,
) -> Result<Vec<u8>, PipelineError> {
    const TW: usize = transnet::WIDTH;
    const TH: usize = transnet::HEIGHT;
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    if u.len() < u_stride * (ch - 1) + cw || v.len() < v_stride * (ch - 1) + cw {
        return Err(PipelineError::Decode(
            "chroma plane shorter than its geometry".into(),
        ));
    }
    let mut acc = [[0u32; 4]; TW * TH];
    for y in 0..h {
        let ty = y * TH / h;
        let row = &luma[y * w..(y + 1) * w];
        let (urow, vrow) = (&u[(y / 2) * u_stride..], &v[(y / 2) * v_stride..]);
        for x in 0..w {
            let cell = &mut acc[ty * TW + x * TW / w];
            cell[0] += u32::from(row[x]);
            cell[1] += u32::from(urow[x / 2]);
            cell[2] += u32::from(vrow[x / 2]);
            cell[3] += 1;
        }
    }
    let mut out = Vec::with_capacity(transnet::FRAME_BYTES);
    for [ys, us, vs, n] in acc {
        let n = n.max(1) as f32;
        let y = 1.164_383 * (ys as f32 / n - 16.0);
        let (cb, cr) = (us as f32 / n - 128.0, vs as f32 / n - 128.0);
        let rgb = [
            y + 1.596_027 * cr,
            y - 0.391_762 * cb - 0.812_968 * cr,
            y + 2.017_232 * cb,
        ];
        out.extend(rgb.map(|c| c.round().clamp(0.0, 255.0) as u8));
    }
    Ok(out)
}
