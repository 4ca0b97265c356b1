//! `monteur`: wires the command line to the worker library and maps errors to
//! exit codes. Nothing else lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use monteur_worker::{Config, Engine, Run, TaskSet, progress, run_process, run_render, telemetry};

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
        /// Analyse an input that ends well before the duration its container
        /// declares (a cut upload) instead of failing; report.json notes it.
        #[arg(long)]
        allow_truncated: bool,
    },
    /// Run the daemon: jobs from RabbitMQ, media from encrypted object
    /// storage (see [worker] and [storage] in config/monteur.toml).
    Worker,
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
    // The daemon's errors are diagnostics about other people's data: they are
    // scrubbed like its logs. The CLI's are about the caller's own files.
    let daemon = matches!(cli.command, Command::Worker);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let text = format!("{e:#}");
            let text = if daemon {
                monteur_worker::scrub::scrub_text(&text)
            } else {
                text
            };
            // One line, the whole cause chain: what scripts and people read.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("monteur: error: {text}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref(), std::env::vars())?;
    telemetry::init(&config.log, &config.diagnostics);
    match cli.command {
        Command::Process {
            input,
            out,
            tasks,
            allow_truncated,
        } => {
            let tasks = tasks.unwrap_or_else(TaskSet::available);
            let mut progress = progress::for_stderr();
            let engine = Engine::new(config)?;
            let run = Run {
                allow_truncated,
                ..Run::file(&engine, &input, &out, tasks)
            };
            let outcome = run_process(&engine, &run, progress.as_mut())
                .with_context(|| format!("processing {}", input.display()))?;
            tracing::info!(
                out = %out.display(),
                frames = outcome.frames,
                "done"
            );
            Ok(())
        }
        Command::Worker => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let result = runtime.block_on(async {
                monteur_worker::daemon::run(config, shutdown_signal())
                    .await
                    .context("worker stopped")
            });
            // Dropping the runtime would wait for every blocking thread: a
            // stopped job's decode still unwinding must not hold the exit
            // past the drain deadline.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            result
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

/// Resolves on SIGTERM or the first SIGINT; a second SIGINT exits at once.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the daemon runs until killed.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = int.recv() => tracing::info!("SIGINT: draining (again to force)"),
    }
    tokio::spawn(async move {
        int.recv().await;
        tracing::warn!("second SIGINT: exiting now");
        std::process::exit(130);
    });
}
