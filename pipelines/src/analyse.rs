//! The analysis decode graph: one pass over the input that feeds every frame, at
//! analysis size, to the frame kernels, and the audio to the speech models.
//!
//! ```text
//! input → decodebin ─ video (selected stream) → queue → upright front → videoconvert(8-bit YUV, usually passthrough) → appsink
//!                   ├ audio (first stream) → queue → audioconvert → audioresample(16 kHz mono F32) → appsink
//!                   └ anything else (not decoded) → fakesink
//! ```
//! Frames reach the appsink at full size, as the decoder made them, and are
//! area-averaged there to analysis size ([`monteur_kernels::decimate`]): a
//! plain mean per output sample costs a fraction of GStreamer's `videoscale`
//! filter, which cost about as much CPU as the decoder (docs/BENCHMARKS.md).
//! The luma feeds the frame kernels; luma and chroma make the 48×27 RGB
//! thumbnails the boundary model reads (one decode serves both). The front
//! end, the appsinks and the watcher are [`graph`](crate::graph)'s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst_video::prelude::*;
use gstreamer as gst;
use gstreamer_video as gst_video;
use monteur_kernels::{Backend, Decimator, FrameFeatures, FrameStats, LumaBatch, Plane};
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
    /// Decode and area-average to analysis frames, then discard.
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
    /// Highest frame rate the boundary model is fed at: faster footage gives
    /// it every second (third...) frame, so a transition spans as many of its
    /// frames as on the 24-30 fps footage it was trained on. 0 feeds every
    /// frame.
    pub neural_fps: f64,
    /// Also run the model on every n-th of the frames it sees (0 or 1: no
    /// second pass): a transition of several seconds then fits its window
    /// and looks as short as those it was trained on. Costs 1/n more.
    pub neural_coarse: usize,
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
            neural_fps: 30.0,
            neural_coarse: 4,
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
    /// The model's second pass over every few of its frames
    /// ([`AnalyseSettings::neural_coarse`]), one per frame, when it ran.
    pub coarse_boundaries: Option<Vec<Prediction>>,
    /// The model saw one frame in this many (see
    /// [`AnalyseSettings::neural_fps`]).
    pub model_stride: usize,
    /// Analysis frame size (0 when no frame went through the kernels).
    pub width: u32,
    pub height: u32,
    /// Frame rate the decoder announced, if constant.
    pub fps: Option<f64>,
    /// The kernel backend that ran.
    pub backend: &'static str,
    /// Where the decoded audio lay, when it was decoded.
    pub audio: Option<AudioExtent>,
    /// Set when decoding ended well before the container's duration (and
    /// the settings allowed it): the error it would otherwise have been.
    pub truncated: Option<String>,
}

impl Analysis {
    /// Lets go of the per-frame data (times, features, grids, the model's
    /// predictions) once the scenes are found: the later stages need only
    /// the counts and the audio's extent, and an hour of footage holds
    /// tens of megabytes of it through recognition's peak.
    pub fn forget_frames(&mut self) {
        self.times = Vec::new();
        self.features = Vec::new();
        self.grids = Vec::new();
        self.boundaries = None;
        self.coarse_boundaries = None;
    }
}

/// Where the decoded audio lay. The samples themselves went to the caller's
/// listener as they were decoded: an hour of 16 kHz audio is 230 MB, the
/// listener keeps a few bytes a second of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AudioExtent {
    /// Stream time of the first sample.
    pub start: Duration,
    /// Samples decoded, at [`AUDIO_RATE`].
    pub samples: u64,
}

/// Hears each chunk of decoded audio (16 kHz mono, -1..1) in order; an
/// error stops the decode and is what the analysis returns.
pub type Listener<'a> = &'a mut (dyn FnMut(&[f32]) -> Result<(), PipelineError> + Send);

/// Chunks of decoded audio (one decoder buffer each, about 20-40 ms) queued
/// for the listener: a second or so, so neither waits on the other's
/// bursts and the backlog stays small.
const AUDIO_QUEUE: usize = 64;

/// Longest input whose per-frame vectors are reserved up front (3 h);
/// longer ones grow.
const MAX_RESERVED_S: f64 = 3.0 * 3600.0;

/// Frames to reserve room for: grown by doubling, the per-frame vectors of a
/// long input would hold up to twice their length, and three times while a
/// reallocation copies (measured: an hour of 30 fps video peaked 124 MiB
/// above two minutes). Capped, since a container may lie about its length;
/// pages reserved and never written cost no memory.
fn expected_frames(fps: Option<f64>, duration: Option<Duration>) -> usize {
    match (fps, duration) {
        (Some(f), Some(d)) if f.is_finite() && f > 0.0 => {
            (d.as_secs_f64().min(MAX_RESERVED_S) * f.min(240.0) * 1.01) as usize + 16
        }
        _ => 0,
    }
}

/// Sample rate of the audio a [`Listener`] hears.
pub const AUDIO_RATE: u32 = 16_000;

/// Columns and rows of [`Grid`]: 16×9 cells of 20×20 pixels at the default
/// analysis size, small enough to keep for every frame of a long input
/// (144 bytes a frame, 16 MB an hour at 30 fps).
pub const GRID_COLS: usize = 16;
pub const GRID_ROWS: usize = 9;

/// Mean luma of each cell of a frame, row by row.
pub type Grid = [u8; GRID_COLS * GRID_ROWS];

/// 8-bit planar and semi-planar YUV (and grey): what the decimator reads in
/// place; anything else is converted to one of them.
const SAMPLED_FORMATS: [gst_video::VideoFormat; 7] = [
    gst_video::VideoFormat::I420,
    gst_video::VideoFormat::Yv12,
    gst_video::VideoFormat::Nv12,
    gst_video::VideoFormat::Nv21,
    gst_video::VideoFormat::Y42b,
    gst_video::VideoFormat::Y444,
    gst_video::VideoFormat::Gray8,
];

/// Thumbnails queued between the decode and the boundary model: four
/// seconds at 25 fps, so neither waits on the other's bursts.
const THUMBNAIL_QUEUE: usize = 100;

/// Decodes the primary video stream of `input` and computes per-frame
/// features, and/or decodes its first audio stream for `listener`.
///
/// `info` is the input's probe; its primary video stream is the one analysed.
/// `on_progress` is called from this thread about ten times a second. With a
/// boundary model, frames' thumbnails also go to it (one in
/// [`model_stride`] frames, see [`AnalyseSettings::neural_fps`]), on a thread of
/// its own so decoding and inference overlap; the listener, when
/// [`AnalyseSettings::audio`] asks for audio, hears it on another.
#[allow(clippy::too_many_arguments)]
pub fn analyse(
    input: &Input,
    info: &MediaInfo,
    settings: &AnalyseSettings,
    backend: Box<dyn Backend>,
    neural: Option<&mut TransNet>,
    listener: Option<Listener<'_>>,
    cancel: &Cancel,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<Analysis, PipelineError> {
    let neural = neural.filter(|_| settings.video && settings.stage == Stage::Features);
    let listener = match (settings.audio, listener) {
        (true, Some(l)) => Some(l),
        (true, None) => {
            return Err(PipelineError::Graph(
                "audio decode asked for without a listener".into(),
            ));
        }
        (false, _) => None,
    };
    let batch = settings.neural_batch;
    let coarse_every = settings.neural_coarse;
    std::thread::scope(|scope| {
        type Passes = (Vec<Prediction>, Option<Vec<Prediction>>);
        let (thumbnails, runner) = match neural {
            Some(model) => {
                let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(THUMBNAIL_QUEUE);
                let runner = scope.spawn(move || -> Result<Passes, PipelineError> {
                    let mut fine = transnet::Stream::new(batch);
                    let mut coarse = (coarse_every > 1).then(|| transnet::Stream::new(batch));
                    for (i, frame) in rx.into_iter().enumerate() {
                        cancel.check()?;
                        if let Some(c) = coarse.as_mut()
                            && i.is_multiple_of(coarse_every)
                        {
                            c.push(model, &frame)?;
                        }
                        fine.push(model, &frame)?;
                    }
                    cancel.check()?;
                    let coarse = coarse.map(|c| c.finish(model)).transpose()?;
                    Ok((fine.finish(model)?, coarse))
                });
                (Some(tx), Some(runner))
            }
            None => (None, None),
        };
        let (chunks, hearing) = match listener {
            Some(listen) => {
                let (tx, rx) = mpsc::sync_channel::<Vec<f32>>(AUDIO_QUEUE);
                let hearing = scope.spawn(move || -> Result<(), PipelineError> {
                    for chunk in rx {
                        cancel.check()?;
                        listen(&chunk)?;
                    }
                    Ok(())
                });
                (Some(tx), Some(hearing))
            }
            None => (None, None),
        };
        let analysis = analyse_with(
            input,
            info,
            settings,
            backend,
            thumbnails,
            chunks,
            cancel,
            on_progress,
        );
        // A helper's own failure explains a decode that stopped because the
        // helper went away; otherwise the decode's error comes first.
        let heard = match hearing.map(|h| h.join()) {
            Some(Err(_)) => Err(PipelineError::Graph("the audio listener panicked".into())),
            Some(Ok(r)) => r,
            None => Ok(()),
        };
        let predictions = match runner.map(|r| r.join()) {
            Some(Err(_)) => Err(PipelineError::Graph(
                "the boundary model thread panicked".into(),
            )),
            Some(Ok(r)) => r.map(Some),
            None => Ok(None),
        };
        let (mut analysis, passes) = match (analysis, heard, predictions) {
            (_, Err(e), _) | (_, _, Err(e)) => return Err(e),
            (Err(e), _, _) => return Err(e),
            (Ok(a), Ok(()), Ok(p)) => (a, p),
        };
        let Some((fine, coarse)) = passes else {
            return Ok(analysis);
        };
        let stride = analysis.model_stride.max(1);
        let frames = analysis.features.len();
        // Every frame gets the prediction of the model frame that stands for
        // it; the kernel features place a cut within those frames.
        let per_frame = |p: Vec<Prediction>, stride: usize| {
            if p.len() != frames.div_ceil(stride) {
                return Err(PipelineError::Graph(format!(
                    "{} boundary predictions for {frames} frames, one in {stride}",
                    p.len(),
                )));
            }
            Ok((0..frames).map(|i| p[i / stride]).collect::<Vec<_>>())
        };
        analysis.boundaries = Some(per_frame(fine, stride)?);
        analysis.coarse_boundaries = coarse
            .map(|c| per_frame(c, stride * coarse_every))
            .transpose()?;
        Ok(analysis)
    })
}

/// Decodes the first audio stream of `input` once more, on a thread of its
/// own, and hands it to `body` as a stream it reads forward: what a second
/// pass over the audio needs (recognition over speech regions the first
/// pass found) without the track held whole.
pub fn with_audio_stream<R>(
    input: &Input,
    info: &MediaInfo,
    settings: &AnalyseSettings,
    cancel: &Cancel,
    body: impl FnOnce(&mut AudioReader) -> Result<R, PipelineError>,
) -> Result<(R, AudioExtent), PipelineError> {
    let settings = AnalyseSettings {
        video: false,
        audio: true,
        // The first pass judged the input whole or not.
        allow_truncated: true,
        ..settings.clone()
    };
    let (tx, rx) = mpsc::sync_channel::<Vec<f32>>(AUDIO_QUEUE);
    std::thread::scope(|scope| {
        let decode = scope.spawn(move || {
            analyse_with(
                input,
                info,
                &settings,
                Box::new(monteur_kernels::CpuBackend::new()),
                None,
                Some(tx),
                cancel,
                &mut |_| {},
            )
        });
        let mut stream = AudioReader::new(rx);
        let result = body(&mut stream);
        // Whatever the body did not read is drained so the decode can end;
        // after a failure, dropping the stream stops it instead.
        let result = match result {
            Ok(r) => {
                stream.drain();
                Ok(r)
            }
            Err(e) => {
                drop(stream);
                Err(e)
            }
        };
        let analysis = decode
            .join()
            .map_err(|_| PipelineError::Graph("the audio decode thread panicked".into()))?;
        match (result, analysis) {
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(e),
            (Ok(r), Ok(a)) => Ok((r, a.audio.unwrap_or_default())),
        }
    })
}

/// A decoded audio track read forward. It holds only the samples between
/// the reader's floor ([`Self::forget_before`]) and what it last asked for,
/// and of those only the ones it said it wants ([`Self::keep_only`]: the
/// speech regions): a window of 30 s of speech spread over an hour of
/// silence holds the 30 s.
#[derive(Debug)]
pub struct AudioReader {
    rx: mpsc::Receiver<Vec<f32>>,
    /// Runs of kept samples `(track index of the first, samples)`, in
    /// order, not touching one another unless merged.
    runs: std::collections::VecDeque<(usize, Vec<f32>)>,
    /// Track index of the next sample to arrive.
    next: usize,
    /// Samples before this index are dropped as they arrive.
    floor: usize,
    /// Track ranges `[start, end)` worth keeping, in order; `None`: all.
    keep: Option<Vec<(usize, usize)>>,
    ended: bool,
}

impl AudioReader {
    fn new(rx: mpsc::Receiver<Vec<f32>>) -> Self {
        Self {
            rx,
            runs: std::collections::VecDeque::new(),
            next: 0,
            floor: 0,
            keep: None,
            ended: false,
        }
    }

    /// Keeps only samples inside these track ranges `[start, end)` (in
    /// order) from now on; reading outside them is an error.
    pub fn keep_only(&mut self, ranges: &[(usize, usize)]) {
        self.keep = Some(ranges.to_vec());
    }

    /// Copies the samples from track index `at` into `out`, waiting for the
    /// decoder as needed; returns how many (fewer only at the track's end).
    pub fn read(&mut self, at: usize, out: &mut [f32]) -> Result<usize, PipelineError> {
        if at < self.floor {
            return Err(PipelineError::Graph(format!(
                "audio sample {at} read after samples before {} were let go",
                self.floor
            )));
        }
        while self.next < at + out.len() && self.pull() {}
        let want = out.len().min(self.next.saturating_sub(at));
        let mut done = 0;
        for (start, samples) in &self.runs {
            let pos = at + done;
            if done == want || *start > pos {
                break;
            }
            let end = start + samples.len();
            if end <= pos {
                continue;
            }
            let n = (end - pos).min(want - done);
            out[done..done + n].copy_from_slice(&samples[pos - start..pos - start + n]);
            done += n;
        }
        if done < want {
            return Err(PipelineError::Graph(format!(
                "audio sample {} read outside the ranges kept",
                at + done
            )));
        }
        Ok(done)
    }

    /// Lets go of the samples before track index `at`: nothing before it
    /// will be read again.
    pub fn forget_before(&mut self, at: usize) {
        if at <= self.floor {
            return;
        }
        self.floor = at;
        while let Some((start, samples)) = self.runs.front_mut() {
            let end = *start + samples.len();
            if end <= at {
                self.runs.pop_front();
            } else {
                if *start < at {
                    samples.drain(..at - *start);
                    *start = at;
                }
                break;
            }
        }
    }

    /// Track samples decoded so far.
    pub fn decoded(&self) -> usize {
        self.next
    }

    /// Samples held now.
    pub fn held(&self) -> usize {
        self.runs.iter().map(|r| r.1.len()).sum()
    }

    /// Waits for the next chunk and keeps what is wanted of it; false at
    /// the track's end.
    fn pull(&mut self) -> bool {
        if self.ended {
            return false;
        }
        let Ok(chunk) = self.rx.recv() else {
            self.ended = true;
            return false;
        };
        let (a, b) = (self.next, self.next + chunk.len());
        self.next = b;
        let from = a.max(self.floor);
        if from >= b {
            return true;
        }
        match &self.keep {
            None => self.append(from, &chunk[from - a..]),
            Some(ranges) => {
                // The ranges this chunk overlaps (ranges end before the
                // floor are never needed again).
                let first = ranges.partition_point(|r| r.1 <= from);
                let spans: Vec<(usize, usize)> = ranges[first..]
                    .iter()
                    .take_while(|r| r.0 < b)
                    .map(|r| (r.0.max(from), r.1.min(b)))
                    .filter(|(s, e)| s < e)
                    .collect();
                for (s, e) in spans {
                    self.append(s, &chunk[s - a..e - a]);
                }
            }
        }
        true
    }

    fn append(&mut self, at: usize, samples: &[f32]) {
        match self.runs.back_mut() {
            Some((start, run)) if *start + run.len() == at => run.extend_from_slice(samples),
            _ => self.runs.push_back((at, samples.to_vec())),
        }
    }

    fn drain(&mut self) {
        self.forget_before(usize::MAX);
        while self.pull() {}
    }
}

#[allow(clippy::too_many_arguments)]
fn analyse_with(
    input: &Input,
    info: &MediaInfo,
    settings: &AnalyseSettings,
    backend: Box<dyn Backend>,
    thumbnails: Option<mpsc::SyncSender<Vec<u8>>>,
    chunks: Option<mpsc::SyncSender<Vec<f32>>>,
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
        SinkSettings {
            width: aw as usize,
            batch_frames: settings.batch_frames.max(1),
            neural_fps: settings.neural_fps,
            kernels: settings.stage == Stage::Features,
            expected_frames: match (video, settings.stage) {
                (Some(v), Stage::Features) => expected_frames(v.fps(), info.duration),
                _ => 0,
            },
        },
        thumbnails,
    )));
    let counter = Arc::new(AtomicU64::new(0));
    let position = Arc::new(AtomicU64::new(u64::MAX));
    let audio_state = Arc::new(Mutex::new(AudioSink {
        chunks,
        ..AudioSink::default()
    }));
    let audio_buffers = Arc::new(AtomicU64::new(0));

    let extent = graph::Extent::default();
    let branches = Branches {
        extent: extent.clone(),
        video: video.map(|v| {
            let branch = Branch {
                stage: settings.stage,
                width: aw,
                orientation: v.orientation,
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
    // Closes the channels: the boundary model runs its last windows, the
    // listener hears the end.
    state.thumbnails = None;
    lock(&audio_state).chunks = None;
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
        if a.extent.samples == 0 {
            return Err(PipelineError::Decode(
                "the audio stream produced no samples".into(),
            ));
        }
        Some(a.extent)
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
        .map(|a| a.start + Duration::from_secs_f64(a.samples as f64 / f64::from(AUDIO_RATE)));
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
        coarse_boundaries: None,
        model_stride: state.model_stride,
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
    orientation: crate::Orientation,
    sink_state: Arc<Mutex<FrameSink>>,
    counter: Arc<AtomicU64>,
    position: Arc<AtomicU64>,
    cancel: Cancel,
}

impl Branch {
    fn attach(&self, pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<(), PipelineError> {
        let mut chain = vec![graph::make("queue")?];
        if self.stage != Stage::Decode {
            let decoded = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            chain.extend(crate::upright::front(&decoded, self.orientation)?);
        }
        let caps = if self.stage == Stage::Decode {
            gst::Caps::builder("video/x-raw").build()
        } else {
            // Decoders give one of these nearly always, and then the
            // conversion passes frames through untouched; anything else
            // (RGB, 10-bit) is converted at full size, on every core.
            let convert = graph::make("videoconvert")?;
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            convert.set_property("n-threads", cores as u32);
            chain.push(convert);
            gst_video::VideoCapsBuilder::new()
                .format_list(SAMPLED_FORMATS)
                .build()
        };
        let counter = Arc::clone(&self.counter);
        let position = Arc::clone(&self.position);
        let state = Arc::clone(&self.sink_state);
        let compute = self.stage != Stage::Decode;
        let sink = graph::appsink(&caps, 16, &self.cancel, move |sample| {
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
        });
        accept_video_meta(&sink)?;
        chain.push(sink);
        graph::link_chain(pipeline, pad, &chain)?;
        debug!(width = self.width, "video branch linked");
        Ok(())
    }
}

/// Tells the decoder that the frame sink reads strides and plane offsets
/// from the frame's video meta, so a decoder that hands over its own padded
/// buffers need not repack them (before libav's decoders ran with direct
/// rendering off, `avdec_h264` did: 6% of the CPU time of a 720p analysis,
/// `perf`; now it copies each frame once, into a buffer of the size the
/// meta describes, whatever is offered: `graph::decode_into_own_buffers`).
/// Crop meta is not offered: the sink reads frames from their top-left
/// corner.
fn accept_video_meta(sink: &gst::Element) -> Result<(), PipelineError> {
    let pad = sink
        .static_pad("sink")
        .ok_or_else(|| PipelineError::Graph("appsink without a sink pad".into()))?;
    pad.add_probe(gst::PadProbeType::QUERY_DOWNSTREAM, |_, info| {
        if let Some(gst::PadProbeData::Query(q)) = &mut info.data
            && let gst::QueryViewMut::Allocation(a) = q.view_mut()
            && a.find_allocation_meta::<gst_video::VideoMeta>().is_none()
        {
            a.add_allocation_meta::<gst_video::VideoMeta>(None);
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
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
    extent: AudioExtent,
    /// To the listener; closed at the end of the decode.
    chunks: Option<mpsc::SyncSender<Vec<f32>>>,
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
                st.extent.start = time.unwrap_or_default();
            }
            let chunk: Vec<f32> = map
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            st.extent.samples += chunk.len() as u64;
            // Blocks while the listener's queue is full: the decode waits for
            // it rather than piling audio up. A listener that went away has
            // failed or been cancelled, and said why itself.
            if let Some(tx) = &st.chunks
                && tx.send(chunk).is_err()
            {
                st.error = Some(PipelineError::Graph("the audio listener stopped".into()));
                return Err(gst::FlowError::Error);
            }
            if let (Some(p), Some(t)) = (&position, time) {
                p.store(t.as_nanos() as u64, Ordering::Relaxed);
            }
            buffers.fetch_add(1, Ordering::Relaxed);
            Ok(())
        });
        let chain = [
            graph::make("queue")?,
            graph::downmix(pad, 1)?,
            graph::make("audioresample")?,
            appsink,
        ];
        graph::link_chain(pipeline, pad, &chain)
    }
}

/// What [`FrameSink`] is asked to do.
struct SinkSettings {
    /// Analysis width; the height follows the display aspect ratio.
    width: usize,
    batch_frames: usize,
    neural_fps: f64,
    /// Run the kernels (else only area-average, for [`Stage::Scale`]).
    kernels: bool,
    /// Frames the probe announces: the per-frame vectors are sized once.
    expected_frames: usize,
}

/// Area-averages each frame to analysis size, collects the frames into
/// batches and runs the kernels on each full batch.
struct FrameSink {
    backend: Box<dyn Backend>,
    settings: SinkSettings,
    /// Analysis frame size, fixed by the first frame.
    width: usize,
    height: usize,
    batch: Vec<u8>,
    queued: usize,
    previous_frame: Vec<u8>,
    previous_stats: Option<FrameStats>,
    stats: Vec<FrameStats>,
    features: Vec<FrameFeatures>,
    times: Vec<FrameTime>,
    grids: Vec<Grid>,
    decimator: Decimator,
    thumb_decimator: Decimator,
    /// Where thumbnails go for the boundary model, while it runs.
    thumbnails: Option<mpsc::SyncSender<Vec<u8>>>,
    /// One frame in this many goes to the model; fixed by the first frame.
    model_stride: usize,
    fps: Option<f64>,
    error: Option<PipelineError>,
}

impl FrameSink {
    fn new(
        backend: Box<dyn Backend>,
        settings: SinkSettings,
        thumbnails: Option<mpsc::SyncSender<Vec<u8>>>,
    ) -> Self {
        let room = settings.expected_frames;
        Self {
            backend,
            stats: Vec::with_capacity(settings.batch_frames),
            settings,
            width: 0,
            height: 0,
            batch: Vec::new(),
            queued: 0,
            previous_frame: Vec::new(),
            previous_stats: None,
            features: Vec::with_capacity(room),
            times: Vec::with_capacity(room),
            grids: Vec::with_capacity(room),
            decimator: Decimator::new(),
            thumb_decimator: Decimator::new(),
            thumbnails,
            model_stride: 1,
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
        if self.fps.is_none() {
            let f = info.fps();
            if f.numer() > 0 && f.denom() > 0 {
                self.fps = Some(f64::from(f.numer()) / f64::from(f.denom()));
            }
        }
        if self.times.is_empty() {
            // The first frame fixes the analysis geometry for the whole pass
            // (a later change of size is resampled into the same one), and
            // which frames the model sees.
            (self.width, self.height) = analysis_size(&info, self.settings.width);
            self.batch = vec![0; self.width * self.height * self.settings.batch_frames];
            self.model_stride = model_stride(self.fps, self.settings.neural_fps);
        }
        let buffer = sample
            .buffer()
            .ok_or_else(|| PipelineError::Graph("sample without buffer".into()))?;
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
            .map_err(|_| PipelineError::Graph("frame buffer could not be mapped".into()))?;
        let n = self.width * self.height;
        let dst = &mut self.batch[self.queued * n..(self.queued + 1) * n];
        let luma = plane(&frame, &info, 0)?.ok_or_else(|| {
            PipelineError::Decode(format!("{:?} frames have no luma plane", info.format()))
        })?;
        resample(&mut self.decimator, &luma, dst, (self.width, self.height))?;
        self.times.push(FrameTime(time));
        if !self.settings.kernels {
            return Ok(());
        }
        self.grids.push(grid(dst, self.width, self.height));
        let to_model = (self.times.len() - 1).is_multiple_of(self.model_stride);
        if let (Some(tx), true) = (&self.thumbnails, to_model) {
            let thumb = thumbnail(
                &mut self.thumb_decimator,
                dst,
                (self.width, self.height),
                plane(&frame, &info, 1)?,
                plane(&frame, &info, 2)?,
            )?;
            // The model thread only goes away on an error or a cancel, which
            // it reports itself; the decode just stops.
            tx.send(thumb).map_err(|_| {
                PipelineError::Graph("the boundary model stopped reading frames".into())
            })?;
        }
        self.queued += 1;
        if self.queued == self.settings.batch_frames {
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

/// How many frames each frame the boundary model sees stands for: the
/// nearest whole ratio of the stream's rate to `limit` (50 and 60 fps give 2,
/// 29.97 gives 1). Without a declared rate every frame goes.
fn model_stride(fps: Option<f64>, limit: f64) -> usize {
    match fps {
        Some(f) if limit > 0.0 && f > limit => ((f / limit).round() as usize).clamp(1, 8),
        _ => 1,
    }
}

/// Mean luma of each [`Grid`] cell of a packed `w`×`h` luma frame.
fn grid(luma: &[u8], w: usize, h: usize) -> Grid {
    let mut out = [0u8; GRID_COLS * GRID_ROWS];
    if w == 0 || h == 0 {
        return out;
    }
    // Column x falls in cell x·COLS/w, so cell c spans [⌈c·w/COLS⌉,
    // ⌈(c+1)·w/COLS⌉). A band's rows are summed column by column first (a
    // loop of wide adds), then each cell's stretch of that sum once: a sum
    // and a count per pixel, scattered by a lookup, had cost 2.7% of a
    // 720p kernel-detector run (`perf`).
    let edges: [usize; GRID_COLS + 1] = std::array::from_fn(|c| (c * w).div_ceil(GRID_COLS));
    let mut acc = vec![0u32; w];
    let mut rows = luma.chunks_exact(w).take(h).enumerate().peekable();
    for (band, cells) in out.chunks_exact_mut(GRID_COLS).enumerate() {
        acc.fill(0);
        let mut count = 0u32;
        while let Some((_, row)) = rows.next_if(|(y, _)| y * GRID_ROWS / h == band) {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += u32::from(v);
            }
            count += 1;
        }
        for (c, o) in cells.iter_mut().enumerate() {
            let (x0, x1) = (edges[c], edges[c + 1]);
            let sum: u32 = acc[x0..x1].iter().sum();
            let n = count * (x1 - x0) as u32;
            *o = (sum + n / 2).checked_div(n).unwrap_or(0) as u8;
        }
    }
    out
}

/// Analysis frame size for a decoded frame: `width` wide (never wider than
/// the frame), as tall as the display aspect ratio makes it (never taller
/// than the frame), both rounded down to even unless the frame is a single
/// pixel across.
fn analysis_size(info: &gst_video::VideoInfo, width: usize) -> (usize, usize) {
    let (w, h) = (info.width() as usize, info.height() as usize);
    let par = info.par();
    let (pn, pd) = match (par.numer(), par.denom()) {
        (n, d) if n > 0 && d > 0 => (n as f64, d as f64),
        _ => (1.0, 1.0),
    };
    let aw = width.min(w).max(1);
    let ah = (aw as f64 * h as f64 * pd / (w.max(1) as f64 * pn)).round() as usize;
    let even = |v: usize, limit: usize| (v.min(limit) & !1).max(limit.min(2));
    (even(aw, w), even(ah, h))
}

/// Component `c` (0 luma, 1 U, 2 V) of a decoded 8-bit frame as a plane the
/// decimator reads; `None` when the format has no such component (grey).
/// Sizes come from the caps (`info`): a decoder's video meta may describe
/// padded rows below the picture. Strides and offsets come from the mapped
/// frame, which reads them from that meta.
fn plane<'a>(
    frame: &'a gst_video::VideoFrameRef<&gst::BufferRef>,
    info: &gst_video::VideoInfo,
    c: u8,
) -> Result<Option<Plane<'a>>, PipelineError> {
    if u32::from(c) >= info.n_components() {
        return Ok(None);
    }
    let finfo = info.format_info();
    let i = usize::from(c);
    let index = finfo.plane()[i];
    let data = frame
        .plane_data(index)
        .map_err(|e| PipelineError::Graph(format!("frame plane: {e}")))?;
    let data = data
        .get(finfo.poffset()[i] as usize..)
        .ok_or_else(|| PipelineError::Decode("frame plane shorter than its layout".into()))?;
    let stride = frame.plane_stride()[index as usize];
    let step = finfo.pixel_stride()[i];
    if finfo.depth()[i] != 8 || stride <= 0 || step <= 0 {
        return Err(PipelineError::Decode(format!(
            "{:?} frames are not 8-bit planar YUV",
            info.format()
        )));
    }
    Plane::new(
        data,
        info.comp_width(c) as usize,
        info.comp_height(c) as usize,
        stride as usize,
        step as usize,
    )
    .map(Some)
    .map_err(|e| PipelineError::Decode(e.to_string()))
}

/// Area-averages `src` into the packed `w`×`h` `dst`; a plane smaller than
/// that on a side (a stream that changed size mid-way, a chroma plane
/// smaller than a thumbnail) is averaged to what it has and its samples
/// repeated.
fn resample(
    decimator: &mut Decimator,
    src: &Plane<'_>,
    dst: &mut [u8],
    (w, h): (usize, usize),
) -> Result<(), PipelineError> {
    let err = |e: monteur_kernels::KernelError| PipelineError::Decode(e.to_string());
    let (sw, sh) = (w.min(src.width()), h.min(src.height()));
    if (sw, sh) == (w, h) {
        return decimator.run(src, dst, w, h).map_err(err);
    }
    let mut small = vec![0u8; sw * sh];
    decimator.run(src, &mut small, sw, sh).map_err(err)?;
    for (y, row) in dst.chunks_exact_mut(w).enumerate() {
        let from = &small[(y * sh / h) * sw..][..sw];
        for (x, out) in row.iter_mut().enumerate() {
            *out = from[x * sw / w];
        }
    }
    Ok(())
}

/// The boundary model's 48×27 RGB frame: the analysis luma and the decoded
/// chroma area-averaged to that size, converted with the BT.601
/// limited-range matrix, which is what ffmpeg's `rgb24` output (the model's
/// training input) uses for untagged video. Grey frames have neutral chroma.
fn thumbnail(
    decimator: &mut Decimator,
    luma: &[u8],
    (w, h): (usize, usize),
    u: Option<Plane<'_>>,
    v: Option<Plane<'_>>,
) -> Result<Vec<u8>, PipelineError> {
    const TW: usize = transnet::WIDTH;
    const TH: usize = transnet::HEIGHT;
    let err = |e: monteur_kernels::KernelError| PipelineError::Decode(e.to_string());
    let (tw, th) = (TW.min(w), TH.min(h));
    let mut planes = [[128u8; TW * TH]; 3];
    let y = Plane::new(luma, w, h, w, 1).map_err(err)?;
    resample(decimator, &y, &mut planes[0][..tw * th], (tw, th))?;
    for (out, chroma) in planes[1..].iter_mut().zip([u, v]) {
        if let Some(p) = chroma {
            resample(decimator, &p, &mut out[..tw * th], (tw, th))?;
        }
    }
    let mut out = Vec::with_capacity(transnet::FRAME_BYTES);
    for ty in 0..TH {
        for tx in 0..TW {
            // Frames smaller than the thumbnail repeat their samples.
            let i = (ty * th / TH) * tw + tx * tw / TW;
            let y = 1.164_383 * (f32::from(planes[0][i]) - 16.0);
            let (cb, cr) = (
                f32::from(planes[1][i]) - 128.0,
                f32::from(planes[2][i]) - 128.0,
            );
            let rgb = [
                y + 1.596_027 * cr,
                y - 0.391_762 * cb - 0.812_968 * cr,
                y + 2.017_232 * cb,
            ];
            out.extend(rgb.map(|c| c.round().clamp(0.0, 255.0) as u8));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader fed 1000-sample chunks of 0, 1, 2, ... in another thread.
    fn counting_reader(total: usize) -> (AudioReader, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::sync_channel::<Vec<f32>>(4);
        let feeder = std::thread::spawn(move || {
            for a in (0..total).step_by(1000) {
                let chunk = (a..(a + 1000).min(total)).map(|i| i as f32).collect();
                if tx.send(chunk).is_err() {
                    return;
                }
            }
        });
        (AudioReader::new(rx), feeder)
    }

    /// The grid against its definition: every pixel added to the cell its
    /// column and row fall in, the mean rounded half up.
    #[test]
    fn grid_cells_are_the_rounded_means_of_their_pixels() {
        let mut seed = 0x9e37_79b9_u32;
        for (w, h) in [(320, 180), (320, 569), (17, 5), (5, 3), (1, 1), (33, 10)] {
            let luma: Vec<u8> = (0..w * h)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    (seed >> 24) as u8
                })
                .collect();
            let mut sums = [0u32; GRID_COLS * GRID_ROWS];
            let mut counts = [0u32; GRID_COLS * GRID_ROWS];
            for y in 0..h {
                for x in 0..w {
                    let cell = y * GRID_ROWS / h * GRID_COLS + x * GRID_COLS / w;
                    sums[cell] += u32::from(luma[y * w + x]);
                    counts[cell] += 1;
                }
            }
            let want: Vec<u8> = sums
                .iter()
                .zip(&counts)
                .map(|(&s, &c)| (s + c / 2).checked_div(c).unwrap_or(0) as u8)
                .collect();
            assert_eq!(grid(&luma, w, h).to_vec(), want, "{w}x{h}");
        }
    }

    #[test]
    fn an_audio_reader_reads_forward_and_lets_go_behind() {
        let (mut r, feeder) = counting_reader(100_500);
        let mut out = vec![0f32; 2500];
        assert_eq!(r.read(700, &mut out).unwrap(), 2500);
        assert_eq!((out[0], out[2499]), (700.0, 3199.0));
        r.forget_before(50_000);
        // Chunks wholly behind the floor are dropped as they arrive, so what
        // is held is the span asked for, not everything decoded.
        assert_eq!(r.read(60_000, &mut out).unwrap(), 2500);
        assert_eq!(out[0], 60_000.0);
        assert_eq!(
            r.held(),
            13_000,
            "from the floor to the end of the chunk read"
        );
        assert!(r.read(10, &mut out).is_err(), "read behind the floor");
        // The end: fewer than asked.
        assert_eq!(r.read(99_000, &mut out).unwrap(), 1500);
        assert_eq!(out[1499], 100_499.0);
        assert_eq!(r.decoded(), 100_500);
        r.drain();
        feeder.join().unwrap();
    }

    #[test]
    fn an_audio_reader_keeps_only_the_ranges_asked_for() {
        let (mut r, feeder) = counting_reader(100_000);
        r.keep_only(&[(1_500, 2_500), (40_000, 40_010), (90_000, 100_000)]);
        let mut out = vec![0f32; 1_000];
        assert_eq!(r.read(1_500, &mut out).unwrap(), 1_000);
        assert_eq!((out[0], out[999]), (1_500.0, 2_499.0));
        let mut ten = [0f32; 10];
        assert_eq!(r.read(40_000, &mut ten).unwrap(), 10);
        assert_eq!(ten[9], 40_009.0);
        // The silence between was never held.
        assert_eq!(r.held(), 1_010);
        assert!(r.read(50_000, &mut ten).is_err(), "outside the ranges");
        r.forget_before(90_000);
        assert_eq!(r.read(99_995, &mut ten).unwrap(), 5);
        assert_eq!(r.held(), 10_000);
        r.drain();
        feeder.join().unwrap();
    }

    #[test]
    fn per_frame_room_follows_the_probe_within_a_cap() {
        let hour = Some(Duration::from_secs(3600));
        assert_eq!(expected_frames(Some(30.0), hour), 109_096);
        assert_eq!(expected_frames(None, hour), 0);
        assert_eq!(expected_frames(Some(30.0), None), 0);
        // A container claiming a year gets three hours' room.
        let year = Some(Duration::from_secs(365 * 86_400));
        assert_eq!(expected_frames(Some(30.0), year), 327_256);
        assert_eq!(expected_frames(Some(f64::NAN), hour), 0);
    }

    #[test]
    fn model_stride_follows_the_rate() {
        assert_eq!(model_stride(Some(29.97), 30.0), 1);
        assert_eq!(model_stride(Some(23.976), 30.0), 1);
        assert_eq!(model_stride(Some(50.0), 30.0), 2);
        assert_eq!(model_stride(Some(59.94), 30.0), 2);
        assert_eq!(model_stride(Some(120.0), 30.0), 4);
        assert_eq!(model_stride(Some(1000.0), 30.0), 8);
        assert_eq!(model_stride(Some(60.0), 0.0), 1);
        assert_eq!(model_stride(None, 30.0), 1);
    }

    #[test]
    fn analysis_size_keeps_the_display_aspect() {
        crate::init().unwrap();
        let size = |w, h, par: (i32, i32), width| {
            let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, w, h)
                .par(gst::Fraction::new(par.0, par.1))
                .build()
                .unwrap();
            analysis_size(&info, width)
        };
        assert_eq!(size(1280, 720, (1, 1), 320), (320, 180));
        assert_eq!(size(1920, 1080, (1, 1), 320), (320, 180));
        assert_eq!(size(854, 480, (1, 1), 320), (320, 180));
        assert_eq!(size(1080, 1920, (1, 1), 320), (320, 568));
        // Anamorphic PAL 16:9: 720x576 shown at 1024x576.
        assert_eq!(size(720, 576, (64, 45), 320), (320, 180));
        // Never larger than the frame.
        assert_eq!(size(160, 90, (1, 1), 320), (160, 90));
        assert_eq!(size(320, 240, (1, 2), 320), (320, 240));
    }
}
