//! One job on a local file: probe, run the requested tasks, write the outputs.
//!
//! The CLI's `monteur process` calls this directly; the daemon will call it with
//! inputs streamed from object storage. One decode serves every task (video
//! frames for scenes, audio for captions). Outputs are written whole or not at
//! all (temporary file, then rename), so a reader never sees half a document.

use std::path::{Path, PathBuf};
use std::time::Instant;

use monteur_models::{ModelError, Runtime, VoiceActivity, Whisper};
use monteur_pipelines::scenes::TransitionKind;
use monteur_pipelines::{self as pipelines, AnalyseSettings, MediaInfo, PipelineError, captions};
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
            let runtime = Runtime::load(&m.path(&m.onnxruntime))?;
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
    let media = pipelines::probe(input, config.analysis.probe_timeout())?;
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

    let mut done: Vec<(Task, Vec<String>, f64)> = Vec::new();
    if want_scenes || want_captions {
        let started = Instant::now();
        let selected = monteur_kernels::select(config.analysis.backend_choice())
            .map_err(PipelineError::Kernel)?;
        if want_scenes && let Some(reason) = &selected.fallback_reason {
            info!(reason = reason.as_str(), "frame kernels on the CPU");
        }
        let settings = AnalyseSettings {
            video: want_scenes,
            audio: want_captions,
            ..config.analysis.settings()
        };
        let analysis = pipelines::analyse(input, &media, &settings, selected.backend, &mut |p| {
            progress.update(p)
        })?;
        progress.finish();
        let decode_s = started.elapsed().as_secs_f64();
        let mut cuts_s = Vec::new();
        let mut fps = 0.0;
        if want_scenes {
            outcome.backend = Some(analysis.backend);
            outcome.frames = analysis.frames;
            let doc = pipelines::detect_scenes(&analysis, &media, &config.scenes);
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
            fps = doc.source.fps;
            write_json(out_dir, SCENES_FILE, &doc)?;
            done.push((Task::Scenes, vec![SCENES_FILE.into()], decode_s));
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
            // The decode is the scenes task's when both ran.
            let elapsed =
                started.elapsed().as_secs_f64() + if want_scenes { 0.0 } else { decode_s };
            done.push((
                Task::Captions,
                vec![CAPTIONS_SRT.into(), CAPTIONS_VTT.into()],
                elapsed,
            ));
        }
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
