//! One job on a local file: probe, run the requested tasks, write the outputs.
//!
//! The CLI's `monteur process` calls this directly; the daemon will call it with
//! inputs streamed from object storage. One decode serves every task (video
//! frames for scenes, audio for captions). Outputs are written whole or not at
//! all (temporary file, then rename), so a reader never sees half a document.

use std::path::{Path, PathBuf};
use std::time::Instant;

use monteur_models::{ModelError, Runtime, VoiceActivity, Whisper};
use monteur_pipelines::cutplan::{self, CutMode, CutPlan, Rate};
use monteur_pipelines::scenes::TransitionKind;
use monteur_pipelines::timeline::{self, SourceMedia};
use monteur_pipelines::{
    self as pipelines, AUDIO_RATE, AnalyseSettings, AudioTrack, MediaInfo, PipelineError, captions,
};
use serde::Serialize;
use thiserror::Error;
use tracing::{info, warn};

use crate::progress::ProgressReporter;
use crate::{Config, Task, TaskSet};

/// File names inside the output directory: a contract with the tools that read them.
pub const SCENES_FILE: &str = "scenes.json";
pub const REPORT_FILE: &str = "report.json";
pub const CAPTIONS_SRT: &str = "captions.srt";
pub const CAPTIONS_VTT: &str = "captions.vtt";
pub const CUTPLAN_FILE: &str = "cutplan.json";
pub const CUTPLAN_OTIO: &str = "cutplan.otio";
pub const CUTPLAN_EDL: &str = "cutplan.edl";
pub const CUTPLAN_FCPXML: &str = "cutplan.fcpxml";
pub const RENDER_FILE: &str = "render.mp4";

#[derive(Debug, Error)]
pub enum ProcessError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("cannot write {path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ProcessError {
    /// True when running the same job again would fail the same way.
    pub fn is_permanent(&self) -> bool {
        match self {
            ProcessError::Pipeline(e) => e.is_permanent(),
            // Missing or broken model files are a deployment fault, not the job's.
            ProcessError::Model(_) | ProcessError::Output { .. } => false,
        }
    }
}

/// How a task ended.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TaskStatus {
    Done {
        outputs: Vec<String>,
        elapsed_s: f64,
    },
    Skipped {
        reason: String,
    },
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskReport {
    pub task: String,
    #[serde(flatten)]
    pub status: TaskStatus,
}

/// `report.json`: what was found in the input and what each task did. It holds
/// no file names, paths or transcript text, so it can travel with diagnostics.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessOutcome {
    pub input: MediaInfo,
    pub tasks: Vec<TaskReport>,
    /// Kernel backend that ran the frame analysis, when one ran.
    pub backend: Option<&'static str>,
    /// Frames decoded and analysed.
    pub frames: u64,
    /// Caption cues written.
    pub cues: usize,
    /// Seconds the edit keeps, when a cut plan was made.
    pub kept_s: Option<f64>,
    /// The render, when one was made.
    pub render: Option<pipelines::RenderReport>,
    /// Seconds spent in each stage that ran (`probe`, `decode`, `scenes`,
    /// `captions`, `autocut`, `render`), in order.
    pub stages: Vec<StageTime>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageTime {
    pub stage: &'static str,
    pub seconds: f64,
}

/// What a process keeps across jobs: the configuration and the speech models,
/// loaded on first use (a daemon pays for loading Whisper once, not per job).
#[derive(Debug)]
pub struct Engine {
    pub config: Config,
    speech: Option<Speech>,
}

#[derive(Debug)]
struct Speech {
    // The sessions below were made from this runtime; keep it alive with them.
    _runtime: Runtime,
    vad: VoiceActivity,
    whisper: Whisper,
}

impl Engine {
    pub fn new(config: Config) -> Self {
        Self {
            config,
            speech: None,
        }
    }

    fn speech(&mut self) -> Result<&mut Speech, ProcessError> {
        if self.speech.is_none() {
            let m = &self.config.models;
            let started = Instant::now();
            let runtime = Runtime::load(&m.path(&m.onnxruntime))?.with_provider(m.provider());
            info!(
                cuda_provider = runtime.has_cuda(),
                provider = m.provider.as_str(),
                "ONNX Runtime loaded"
            );
            let vad = VoiceActivity::load(&runtime, &m.path(&m.vad))?;
            let whisper = Whisper::load(&runtime, &m.path(&m.whisper), m.threads)?;
            info!(
                elapsed_s = started.elapsed().as_secs_f64(),
                "speech models loaded"
            );
            self.speech = Some(Speech {
                _runtime: runtime,
                vad,
                whisper,
            });
        }
        self.speech
            .as_mut()
            .ok_or_else(|| PipelineError::Model("speech models missing".into()).into())
    }
}

/// Runs `tasks` on `input`, writing into `out_dir` (created if needed).
pub fn run_process(
    engine: &mut Engine,
    input: &Path,
    out_dir: &Path,
    tasks: &TaskSet,
    progress: &mut dyn ProgressReporter,
) -> Result<ProcessOutcome, ProcessError> {
    pipelines::init()?;
    let config = engine.config.clone();
    let probe_started = Instant::now();
    let media = pipelines::probe(input, config.analysis.probe_timeout())?;
    let probe_s = probe_started.elapsed().as_secs_f64();
    info!(
        container = media.container.as_deref().unwrap_or("unknown"),
        duration_s = media.duration.map(|d| d.as_secs_f64()),
        video_streams = media.video.len(),
        audio_streams = media.audio.len(),
        "probed input"
    );
    for note in &media.notes {
        warn!(note = note.as_str(), "input note");
    }
    media.check_limits(config.analysis.max_side)?;
    std::fs::create_dir_all(out_dir).map_err(|source| ProcessError::Output {
        path: out_dir.to_path_buf(),
        source,
    })?;

    let mut outcome = ProcessOutcome {
        input: media.clone(),
        tasks: Vec::new(),
        backend: None,
        frames: 0,
        cues: 0,
        kept_s: None,
        render: None,
        stages: vec![StageTime {
            stage: "probe",
            seconds: probe_s,
        }],
    };
    let has_video = media.primary_video().is_some();
    let has_audio = !media.audio.is_empty();
    let mut skipped: Vec<(Task, &str)> = Vec::new();
    for task in tasks.iter() {
        if task.needs_video() && !has_video {
            skipped.push((task, "input has no video stream"));
        } else if task.needs_audio() && !has_audio {
            skipped.push((task, "input has no audio stream"));
        }
    }
    let runs = |t: Task| tasks.contains(t) && !skipped.iter().any(|(s, _)| *s == t);
    let (want_scenes, want_captions) = (runs(Task::Scenes), runs(Task::Captions));
    let (want_autocut, want_render) = (runs(Task::Autocut), runs(Task::Render));
    // Scene cuts shape the edit when it is aligned to them or fitted to a length.
    let edit_needs_cuts =
        want_autocut && (config.autocut.align_to_scenes || config.autocut.target_s > 0.0);
    let decode_video = (want_scenes || edit_needs_cuts) && has_video;
    let decode_audio = want_captions || want_autocut;

    let mut done: Vec<(Task, Vec<String>, f64)> = Vec::new();
    let mut cues_out = Vec::new();
    let mut plan: Option<CutPlan> = None;
    if decode_video || decode_audio {
        let started = Instant::now();
        let selected = monteur_kernels::select(config.analysis.backend_choice())
            .map_err(PipelineError::Kernel)?;
        if decode_video && let Some(reason) = &selected.fallback_reason {
            info!(reason = reason.as_str(), "frame kernels on the CPU");
        }
        let settings = AnalyseSettings {
            video: decode_video,
            audio: decode_audio,
            ..config.analysis.settings()
        };
        let analysis = pipelines::analyse(input, &media, &settings, selected.backend, &mut |p| {
            progress.update(p)
        })?;
        progress.finish();
        let decode_s = started.elapsed().as_secs_f64();
        outcome.stages.push(StageTime {
            stage: "decode",
            seconds: decode_s,
        });
        let mut cuts_s = Vec::new();
        let mut cut_frames = Vec::new();
        let mut fps = 0.0;
        if decode_video {
            outcome.backend = Some(analysis.backend);
            outcome.frames = analysis.frames;
            let detect_started = Instant::now();
            let doc = pipelines::detect_scenes(&analysis, &media, &config.scenes);
            outcome.stages.push(since("scenes", detect_started));
            info!(
                frames = analysis.frames,
                transitions = doc.transitions.len(),
                backend = analysis.backend,
                "scenes detected"
            );
            cuts_s = doc
                .transitions
                .iter()
                .filter(|t| t.kind == TransitionKind::Cut)
                .map(|t| t.start_s)
                .collect();
            cut_frames = doc
                .transitions
                .iter()
                .filter(|t| t.kind == TransitionKind::Cut)
                .map(|t| t.start_frame)
                .collect();
            fps = doc.source.fps;
            if want_scenes {
                write_json(out_dir, SCENES_FILE, &doc)?;
                done.push((Task::Scenes, vec![SCENES_FILE.into()], decode_s));
            }
        }
        if want_captions && let Some(track) = &analysis.audio {
            let started = Instant::now();
            let mut mel = monteur_kernels::select(config.analysis.backend_choice())
                .map_err(PipelineError::Kernel)?
                .backend;
            let speech = engine.speech()?;
            let phrases = captions::transcribe(
                track,
                &config.captions,
                &mut speech.vad,
                &mut speech.whisper,
                mel.as_mut(),
            )?;
            let cues = captions::build_cues(&phrases, &cuts_s, fps, &config.captions);
            for problem in captions::check_cues(&cues, &cuts_s, fps, &config.captions) {
                warn!(problem = problem.as_str(), "cue breaks a subtitle rule");
            }
            info!(phrases = phrases.len(), cues = cues.len(), "captions built");
            outcome.cues = cues.len();
            write_text(out_dir, CAPTIONS_SRT, &captions::to_srt(&cues))?;
            write_text(out_dir, CAPTIONS_VTT, &captions::to_vtt(&cues))?;
            cues_out = cues;
            outcome.stages.push(since("captions", started));
            // The decode is the scenes task's when both ran.
            let elapsed =
                started.elapsed().as_secs_f64() + if want_scenes { 0.0 } else { decode_s };
            done.push((
                Task::Captions,
                vec![CAPTIONS_SRT.into(), CAPTIONS_VTT.into()],
                elapsed,
            ));
        }
        if want_autocut && let Some(track) = &analysis.audio {
            let started = Instant::now();
            let rate = Rate::from_stream(media.primary_video().and_then(|v| v.frame_rate));
            let source_frames = if decode_video {
                analysis.frames
            } else {
                media
                    .duration
                    .map(|d| (d.as_secs_f64() * rate.fps()).floor() as u64)
                    .unwrap_or(0)
            };
            let made = make_plan(
                engine,
                track,
                rate,
                source_frames,
                &cut_frames,
                config.analysis.backend_choice(),
            )?;
            info!(
                mode = ?made.mode,
                ranges = made.ranges.len(),
                kept_s = made.kept_s,
                source_s = made.source_s,
                "cut plan made"
            );
            outcome.kept_s = Some(made.kept_s);
            let source = source_media(input, &media);
            let title = format!("{} (monteur autocut)", source.name);
            write_json(out_dir, CUTPLAN_FILE, &made)?;
            write_text(
                out_dir,
                CUTPLAN_OTIO,
                &timeline::to_otio(&made, &source, &title),
            )?;
            write_text(
                out_dir,
                CUTPLAN_EDL,
                &timeline::to_edl(&made, &source, &title),
            )?;
            write_text(
                out_dir,
                CUTPLAN_FCPXML,
                &timeline::to_fcpxml(&made, &source, &title),
            )?;
            let elapsed =
                started.elapsed().as_secs_f64() + if decode_video { 0.0 } else { decode_s };
            done.push((
                Task::Autocut,
                vec![
                    CUTPLAN_FILE.into(),
                    CUTPLAN_OTIO.into(),
                    CUTPLAN_EDL.into(),
                    CUTPLAN_FCPXML.into(),
                ],
                elapsed,
            ));
            plan = Some(made);
            outcome.stages.push(since("autocut", started));
        }
    }
    if want_render {
        // Without a cut plan (autocut not asked for, or no audio to plan
        // from) the render keeps the whole source.
        let plan = match plan {
            Some(p) => p,
            None => whole_source(&media),
        };
        let started = Instant::now();
        let report = pipelines::render(
            input,
            &media,
            &plan,
            &cues_out,
            &config.render,
            &out_dir.join(RENDER_FILE),
        )?;
        outcome.render = Some(report);
        outcome.stages.push(since("render", started));
        done.push((
            Task::Render,
            vec![RENDER_FILE.into()],
            started.elapsed().as_secs_f64(),
        ));
    }
    for task in tasks.iter() {
        let status = if let Some((_, reason)) = skipped.iter().find(|(t, _)| *t == task) {
            info!(task = task.name(), reason = *reason, "task skipped");
            TaskStatus::Skipped {
                reason: reason.to_string(),
            }
        } else if let Some((_, outputs, elapsed_s)) = done.iter().find(|(t, _, _)| *t == task) {
            info!(task = task.name(), elapsed_s, "task done");
            TaskStatus::Done {
                outputs: outputs.clone(),
                elapsed_s: *elapsed_s,
            }
        } else {
            continue;
        };
        outcome.tasks.push(TaskReport {
            task: task.name().into(),
            status,
        });
    }
    write_json(out_dir, REPORT_FILE, &outcome)?;
    Ok(outcome)
}

fn since(stage: &'static str, started: Instant) -> StageTime {
    StageTime {
        stage,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// `monteur render`: plays a cut plan (`cutplan.json`, perhaps edited by
/// hand) of `input` into `out`, without analysing anything.
pub fn run_render(
    config: &Config,
    input: &Path,
    plan_file: &Path,
    out: &Path,
) -> Result<pipelines::RenderReport, ProcessError> {
    pipelines::init()?;
    let bad_plan = |reason: String| {
        ProcessError::Pipeline(PipelineError::Graph(format!(
            "{}: {reason}",
            plan_file.display()
        )))
    };
    let text = std::fs::read(plan_file).map_err(|e| bad_plan(e.to_string()))?;
    let plan: CutPlan = serde_json::from_slice(&text).map_err(|e| bad_plan(e.to_string()))?;
    let problems = plan.problems();
    if !problems.is_empty() {
        return Err(bad_plan(problems.join("; ")));
    }
    let media = pipelines::probe(input, config.analysis.probe_timeout())?;
    Ok(pipelines::render(
        input,
        &media,
        &plan,
        &[],
        &config.render,
        out,
    )?)
}

/// The cut plan of `config.autocut` for this audio track.
fn make_plan(
    engine: &mut Engine,
    track: &AudioTrack,
    rate: Rate,
    source_frames: u64,
    cut_frames: &[u64],
    backend: monteur_kernels::BackendChoice,
) -> Result<CutPlan, ProcessError> {
    let s = engine.config.autocut.clone();
    // Frame-long loudness windows from the track's first sample; audio that
    // starts late counts as silence before it.
    let mut kernels = monteur_kernels::select(backend)
        .map_err(PipelineError::Kernel)?
        .backend;
    let mut levels = Vec::new();
    kernels
        .loudness(
            &track.samples,
            f64::from(AUDIO_RATE) / rate.fps(),
            &mut levels,
        )
        .map_err(PipelineError::Kernel)?;
    let lead = rate.frames_in(track.start.as_secs_f64()) as usize;
    let peaks: Vec<f32> = std::iter::repeat_n(0.0, lead)
        .chain(levels.iter().map(|l| l.peak))
        .collect();
    let frames = if source_frames > 0 {
        source_frames
    } else {
        peaks.len() as u64
    };
    let mut plan = match s.mode {
        CutMode::Silence => cutplan::plan_silence(&peaks, rate, frames, &s),
        CutMode::Speech => {
            let vad_settings = captions::CaptionSettings {
                min_silence_s: s.speech_min_silence_s,
                speech_pad_s: 0.0,
                ..engine.config.captions.clone()
            };
            let speech = engine.speech()?;
            speech.vad.reset();
            let probs = speech.vad.probabilities(&track.samples)?;
            let offset = track.start.as_secs_f64();
            let spans: Vec<(f64, f64)> = captions::speech_regions(&probs, &vad_settings)
                .into_iter()
                .map(|(a, b)| (a + offset, b + offset))
                .collect();
            cutplan::plan_speech(&spans, rate, frames, &s)
        }
    };
    if s.align_to_scenes {
        plan = cutplan::align_to_cuts(&plan, cut_frames, &s);
    }
    if s.target_s > 0.0 {
        let max = peaks
            .iter()
            .cloned()
            .fold(0.0f32, f32::max)
            .max(f32::MIN_POSITIVE);
        let score = |a: u64, b: u64| -> f64 {
            let (a, b) = (a as usize, (b as usize).min(peaks.len()));
            if b <= a {
                return 0.0;
            }
            peaks[a..b].iter().map(|&p| f64::from(p / max)).sum::<f64>() / (b - a) as f64
        };
        plan = cutplan::fit_target(&plan, cut_frames, s.target_s, &score);
    }
    Ok(plan)
}

/// A plan keeping every frame: what a render without autocut plays.
fn whole_source(media: &MediaInfo) -> CutPlan {
    let rate = Rate::from_stream(media.primary_video().and_then(|v| v.frame_rate));
    let frames = media
        .duration
        .map(|d| (d.as_secs_f64() * rate.fps()).round() as u64)
        .unwrap_or(0);
    CutPlan::new(
        CutMode::Silence,
        rate,
        frames,
        vec![(0, frames, cutplan::Reason::Loud, false)],
    )
}

/// How the timeline exports name and locate the source.
fn source_media(input: &Path, media: &MediaInfo) -> SourceMedia {
    // An input streamed from storage is named by its object key: the
    // editor's media lives beside the timeline in the same bucket.
    let (name, url) = match pipelines::source::name_of(input) {
        Some(key) => (
            key.rsplit('/').next().unwrap_or(key.as_str()).to_string(),
            key.clone(),
        ),
        None => {
            let name = input
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "source".into());
            let url = std::fs::canonicalize(input)
                .map(|p| format!("file://{}", p.display()))
                .unwrap_or_else(|_| name.clone());
            (name, url)
        }
    };
    let video = media.primary_video();
    let audio = media.audio.first();
    SourceMedia {
        name,
        url,
        width: video.map(|v| v.width).unwrap_or(0),
        height: video.map(|v| v.height).unwrap_or(0),
        has_video: video.is_some(),
        has_audio: audio.is_some(),
        audio_rate: audio.map(|a| a.sample_rate).unwrap_or(48_000),
        audio_channels: audio.map(|a| a.channels).unwrap_or(2),
    }
}

/// Writes `value` as `dir/name` through a temporary file and a rename.
fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<(), ProcessError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| ProcessError::Output {
        path: dir.join(name),
        source: e.into(),
    })?;
    bytes.push(b'\n');
    write_bytes(dir, name, &bytes)
}

fn write_text(dir: &Path, name: &str, text: &str) -> Result<(), ProcessError> {
    write_bytes(dir, name, text.as_bytes())
}

fn write_bytes(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ProcessError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let err = |source| ProcessError::Output {
        path: path.clone(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)
}
