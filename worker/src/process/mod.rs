//! One job: probe, plan the stages the tasks need, run them, write the
//! outputs and a report.
//!
//! The CLI's `monteur process` and the daemon run the very same path: the
//! daemon with an input streamed from storage, a scratch folder, and a
//! cancel signal its supervisor pulls at a deadline, a producer's cancel or
//! a shutdown. One decode serves every analysis task (video frames for
//! scenes, audio for captions and cut plans); the render is a second graph.
//! Outputs are written whole or not at all (temporary file, then rename),
//! so a reader never sees half a document.
//!
//! - [`engine`]: the process-wide [`Engine`] (kernels chosen once, speech
//!   models pooled per concurrent job).
//! - [`plan`]: the [`TaskPlan`], the stages a job needs.
//! - `stages`: each stage's work.
//! - `outputs`: the output folder's names and writes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use monteur_models::ModelError;
use monteur_pipelines::cutplan::CutPlan;
use monteur_pipelines::{self as pipelines, Cancel, Input, MediaInfo, PipelineError};
use serde::Serialize;
use thiserror::Error;
use tracing::{info, warn};

use crate::progress::ProgressReporter;
use crate::{Config, TaskSet};

mod engine;
mod outputs;
pub mod plan;
mod stages;

pub use engine::Engine;
pub use outputs::{
    CAPTIONS_ASS, CAPTIONS_SRT, CAPTIONS_VTT, CAPTIONS_WORDS_VTT, CUTPLAN_EDL, CUTPLAN_FCPXML,
    CUTPLAN_FILE, CUTPLAN_OTIO, RENDER_FILE, REPORT_FILE, SCENES_FILE, TRANSCRIPT_FILE,
};
pub use plan::{Stage, TaskPlan};

#[derive(Debug, Error)]
pub enum ProcessError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Model(ModelError),
    #[error("cannot write {path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<ModelError> for ProcessError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::Interrupted(_) => ProcessError::Pipeline(PipelineError::Cancelled),
            other => ProcessError::Model(other),
        }
    }
}

impl ProcessError {
    /// True only when the input caused it (see
    /// [`PipelineError::is_permanent`]): running the same job again would
    /// fail the same way. Models and the output folder are this worker's.
    pub fn is_permanent(&self) -> bool {
        match self {
            ProcessError::Pipeline(e) => e.is_permanent(),
            ProcessError::Model(_) | ProcessError::Output { .. } => false,
        }
    }

    /// The job was stopped rather than failed.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, ProcessError::Pipeline(PipelineError::Cancelled))
    }

    /// The input ends well before its declared duration.
    pub fn is_truncated(&self) -> bool {
        matches!(
            self,
            ProcessError::Pipeline(PipelineError::Truncated { .. })
        )
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
    /// What the job noticed about the input and worked around (a truncated
    /// input analysed anyway, a stream without a decoder ignored).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageTime {
    pub stage: &'static str,
    pub seconds: f64,
}

/// One job's request: everything that may differ between two jobs of one
/// process travels here, by value, never through the shared [`Engine`].
#[derive(Debug, Clone)]
pub struct Run {
    /// The process's configuration with the job's options applied.
    pub config: Config,
    pub input: Input,
    pub out_dir: PathBuf,
    pub tasks: TaskSet,
    pub cancel: Cancel,
    /// Analyse what a truncated input holds instead of failing (the CLI's
    /// `--allow-truncated`; the daemon never does).
    pub allow_truncated: bool,
}

impl Run {
    /// A run of `tasks` on a local file with the engine's configuration.
    pub fn file(engine: &Engine, input: &Path, out_dir: &Path, tasks: TaskSet) -> Self {
        Self {
            config: engine.config().clone(),
            input: Input::file(input),
            out_dir: out_dir.to_path_buf(),
            tasks,
            cancel: Cancel::new(),
            allow_truncated: false,
        }
    }
}

/// Runs `run`: probe, plan, stages, report.
pub fn run_process(
    engine: &Engine,
    run: &Run,
    progress: &mut dyn ProgressReporter,
) -> Result<ProcessOutcome, ProcessError> {
    pipelines::init()?;
    run.cancel.check()?;
    let config = &run.config;
    let probe_started = Instant::now();
    // A probe that failed because its job was cancelled was cancelled.
    let media =
        pipelines::probe(&run.input, config.analysis.probe_timeout()).map_err(|e| {
            match run.cancel.check() {
                Err(c) => c,
                Ok(()) => e,
            }
        })?;
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
    run.cancel.check()?;
    std::fs::create_dir_all(&run.out_dir).map_err(|source| ProcessError::Output {
        path: run.out_dir.clone(),
        source,
    })?;
    let plan = TaskPlan::new(&run.tasks, &media, config);
    progress.plan(&plan.stage_names());
    let outcome = ProcessOutcome {
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
        notes: media.notes.clone(),
    };
    let out = outputs::Outputs {
        dir: &run.out_dir,
        cancel: &run.cancel,
    };
    let mut state = stages::State::new(engine, run, &media, &plan, out, outcome);
    for stage in &plan.stages {
        state.run(*stage, progress)?;
    }
    let mut outcome = state.outcome;
    for task in run.tasks.iter() {
        let status = if let Some((_, reason)) = plan.skipped.iter().find(|(t, _)| *t == task) {
            info!(task = task.name(), reason = *reason, "task skipped");
            TaskStatus::Skipped {
                reason: reason.to_string(),
            }
        } else if let Some((_, outputs, elapsed_s)) = state.done.iter().find(|(t, _, _)| *t == task)
        {
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
    out.json(REPORT_FILE, &outcome)?;
    Ok(outcome)
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
        ProcessError::Pipeline(PipelineError::Refused(format!(
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
    let input = Input::file(input);
    let media: MediaInfo = pipelines::probe(&input, config.analysis.probe_timeout())?;
    Ok(pipelines::render(
        &input,
        &media,
        &plan,
        &[],
        &config.render,
        out,
        &Cancel::new(),
        &mut |_| {},
    )?)
}
