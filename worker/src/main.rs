//! `monteur`: wires the command line to the worker library and maps errors to
//! exit codes. Nothing else lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use monteur_worker::{Config, Engine, TaskSet, progress, run_process, run_render, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "monteur",
    version,
    about = "GPU-accelerated media-processing worker"
)]
struct Cli {
    /// Configuration file (see config/monteur.toml); built-in defaults otherwise.
    #[arg(long, global = true, env = "MONTEUR_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Analyse a local media file and write the results into a directory.
    Process {
        /// The media file.
        input: PathBuf,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Comma list of tasks: scenes, captions, autocut, render.
        /// Default: every task this build can run.
        #[arg(long)]
        tasks: Option<TaskSet>,
    },
    /// Render a cut plan (cutplan.json from `process --tasks autocut`, perhaps
    /// edited) of a local media file into an MP4.
    Render {
        /// The media file the plan was made from.
        input: PathBuf,
        /// The cut plan.
        #[arg(long)]
        plan: PathBuf,
        /// The MP4 to write.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, the whole cause chain: what scripts and people read.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("monteur: error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref(), std::env::vars())?;
    telemetry::init(&config.log);
    match cli.command {
        Command::Process { input, out, tasks } => {
            let tasks = tasks.unwrap_or_else(TaskSet::available);
            let mut progress = progress::for_stderr();
            let mut engine = Engine::new(config);
            let outcome = run_process(&mut engine, &input, &out, &tasks, progress.as_mut())
                .with_context(|| format!("processing {}", input.display()))?;
            tracing::info!(
                out = %out.display(),
                frames = outcome.frames,
                "done"
            );
            Ok(())
        }
        Command::Render { input, plan, out } => {
            let report = run_render(&config, &input, &plan, &out)
                .with_context(|| format!("rendering {}", input.display()))?;
            tracing::info!(
                out = %out.display(),
                frames = report.frames,
                elapsed_s = report.elapsed_s,
                "done"
            );
            Ok(())
        }
    }
}
