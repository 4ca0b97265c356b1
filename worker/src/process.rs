//! One job on a local file: probe, run the requested tasks, write the outputs.
//!
//! The CLI's `monteur process` calls this directly; the daemon will call it with
//! inputs streamed from object storage. Outputs are written whole or not at all
//! (temporary file, then rename), so a reader never sees half a document.

use std::path::{Path, PathBuf};
use std::time::Instant;

use monteur_pipelines::{self as pipelines, MediaInfo, PipelineError, ScenesDocument};
use serde::Serialize;
use thiserror::Error;
use tracing::{info, warn};

use crate::progress::ProgressReporter;
use crate::{Config, Task, TaskSet};

/// File names inside the output directory: a contract with the tools that read them.
pub const SCENES_FILE: &str = "scenes.json";
pub const REPORT_FILE: &str = "report.json";

#[derive(Debug, Error)]
pub enum ProcessError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
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
            ProcessError::Output { .. } => false,
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
/// no file names or paths, so it can travel with diagnostics.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessOutcome {
    pub input: MediaInfo,
    pub tasks: Vec<TaskReport>,
    /// Kernel backend that ran the frame analysis, when one ran.
    pub backend: Option<&'static str>,
    /// Frames decoded and analysed.
    pub frames: u64,
}

/// Runs `tasks` on `input`, writing into `out_dir` (created if needed).
pub fn run_process(
    config: &Config,
    input: &Path,
    out_dir: &Path,
    tasks: &TaskSet,
    progress: &mut dyn ProgressReporter,
) -> Result<ProcessOutcome, ProcessError> {
    pipelines::init()?;
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
    };
    let has_video = media.primary_video().is_some();
    for task in tasks.iter() {
        if task.needs_video() && !has_video {
            let reason = "input has no video stream".to_string();
            info!(task = task.name(), reason = reason.as_str(), "task skipped");
            outcome.tasks.push(TaskReport {
                task: task.name().into(),
                status: TaskStatus::Skipped { reason },
            });
            continue;
        }
        let started = Instant::now();
        let outputs = match task {
            Task::Scenes => {
                let doc = scenes(config, input, &media, progress, &mut outcome)?;
                write_json(out_dir, SCENES_FILE, &doc)?;
                vec![SCENES_FILE.to_string()]
            }
            // TaskSet only admits tasks this build can run.
            Task::Captions | Task::Autocut | Task::Render => continue,
        };
        let elapsed_s = started.elapsed().as_secs_f64();
        info!(task = task.name(), elapsed_s, "task done");
        outcome.tasks.push(TaskReport {
            task: task.name().into(),
            status: TaskStatus::Done { outputs, elapsed_s },
        });
    }
    write_json(out_dir, REPORT_FILE, &outcome)?;
    Ok(outcome)
}

fn scenes(
    config: &Config,
    input: &Path,
    media: &MediaInfo,
    progress: &mut dyn ProgressReporter,
    outcome: &mut ProcessOutcome,
) -> Result<ScenesDocument, ProcessError> {
    let selected =
        monteur_kernels::select(config.analysis.backend_choice()).map_err(PipelineError::Kernel)?;
    if let Some(reason) = &selected.fallback_reason {
        info!(reason = reason.as_str(), "frame kernels on the CPU");
    }
    let analysis = pipelines::analyse(
        input,
        media,
        &config.analysis.settings(),
        selected.backend,
        &mut |p| progress.update(p),
    )?;
    progress.finish();
    outcome.backend = Some(analysis.backend);
    outcome.frames = analysis.frames;
    let doc = pipelines::detect_scenes(&analysis, media, &config.scenes);
    info!(
        frames = analysis.frames,
        transitions = doc.transitions.len(),
        backend = analysis.backend,
        "scenes detected"
    );
    Ok(doc)
}

/// Writes `value` as `dir/name` through a temporary file and a rename.
fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<(), ProcessError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let err = |source| ProcessError::Output {
        path: path.clone(),
        source,
    };
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| err(e.into()))?;
    bytes.push(b'\n');
    std::fs::write(&tmp, &bytes).map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)
}
