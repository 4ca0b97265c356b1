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
    /// Producer signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Stamp (issued_at, expires_at, nonce) and sign a job document (JSON,
    /// from a file or `-` for stdin); prints the message to send.
    Sign {
        #[command(flatten)]
        signing: Signing,
    },
    /// Stamp, sign and publish a job document with publisher confirms;
    /// with --wait-s, print the job's final event.
    Submit {
        #[command(flatten)]
        signing: Signing,
        /// Queue to publish to; default worker.queue (`--interactive` for
        /// worker.interactive_queue, cancels go to worker.cancel_queue).
        #[arg(long)]
        queue: Option<String>,
        #[arg(long)]
        interactive: bool,
        /// Wait this long for the job's final event and print it.
        #[arg(long)]
        wait_s: Option<u64>,
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

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// A new Ed25519 signing key: the private key (PKCS#8) goes to --out
    /// (mode 600); the entry for the workers' keyring (`verify`) is printed.
    Generate {
        #[arg(long)]
        id: String,
        #[arg(long)]
        out: PathBuf,
        /// What the key may sign: process, purge, cancel.
        #[arg(long, value_delimiter = ',', default_value = "process,cancel")]
        actions: Vec<String>,
        /// Tenants it may sign for (`*`: any).
        #[arg(long, value_delimiter = ',', default_value = "*")]
        tenants: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
struct Signing {
    /// The job document.
    job: PathBuf,
    /// The private key file (from `monteur keys generate`).
    #[arg(long)]
    key: PathBuf,
    /// The key's id, as the workers' keyring names it.
    #[arg(long)]
    key_id: String,
    #[arg(long, value_enum, default_value = "job")]
    kind: monteur_worker::producer::Kind,
    /// Seconds the message stays valid (the workers cap it per kind).
    #[arg(long, default_value_t = 3600)]
    lifetime_s: u64,
}

impl Signing {
    /// The stamped job (exact bytes) and its signed envelope.
    fn envelope(&self) -> anyhow::Result<(String, String)> {
        use monteur_worker::producer;
        let text = if self.job.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())?
        } else {
            std::fs::read_to_string(&self.job)
                .with_context(|| format!("reading {}", self.job.display()))?
        };
        let der = zeroize::Zeroizing::new(
            std::fs::read(&self.key).with_context(|| format!("reading {}", self.key.display()))?,
        );
        let signer = monteur_worker::crypto::Signer::from_pkcs8(&self.key_id, &der)?;
        let stamped = producer::stamp(&text, std::time::Duration::from_secs(self.lifetime_s))?;
        let envelope = producer::sign(self.kind, &stamped, &signer);
        Ok((stamped, envelope))
    }
}

fn main() -> ExitCode {
    monteur_worker::allocator::tune();
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
        Command::Keys {
            command:
                KeysCommand::Generate {
                    id,
                    out,
                    actions,
                    tenants,
                },
        } => {
            use base64::Engine as _;
            let actions: Vec<monteur_worker::crypto::Action> = actions
                .iter()
                .map(|a| serde_json::from_value(serde_json::Value::String(a.clone())))
                .collect::<Result<_, _>>()
                .context("--actions: process, purge or cancel")?;
            let (signer, der) = monteur_worker::crypto::Signer::generate(&id)?;
            write_private(&out, &der)?;
            let entry = serde_json::json!({
                "id": id,
                "public_key": base64::engine::general_purpose::STANDARD.encode(signer.public_key()),
                "actions": actions,
                "tenants": tenants,
            });
            #[allow(clippy::print_stdout)]
            {
                println!("{entry}");
            }
            Ok(())
        }
        Command::Sign { signing } => {
            let (_, envelope) = signing.envelope()?;
            #[allow(clippy::print_stdout)]
            {
                println!("{envelope}");
            }
            Ok(())
        }
        Command::Submit {
            signing,
            queue,
            interactive,
            wait_s,
        } => {
            use monteur_worker::producer;
            let (stamped, envelope) = signing.envelope()?;
            let job_id = serde_json::from_str::<serde_json::Value>(&stamped)?["job_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let w = &config.worker;
            let queue = queue.unwrap_or_else(|| match (signing.kind, interactive) {
                (producer::Kind::Cancel, _) => w.cancel_queue.clone(),
                (_, true) => w.interactive_queue.clone(),
                _ => w.queue.clone(),
            });
            let route = producer::Route {
                amqp_url: w.broker_url().map_err(anyhow::Error::msg)?,
                queue,
                events_exchange: w.events_exchange.clone(),
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let event = runtime.block_on(producer::submit(
                &route,
                &envelope,
                &job_id,
                wait_s.map(std::time::Duration::from_secs),
            ))?;
            #[allow(clippy::print_stdout)]
            match event {
                Some(e) => println!("{e}"),
                None => println!(
                    "{{\"published\":true,\"job_id\":{}}}",
                    serde_json::Value::String(job_id)
                ),
            }
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

/// Writes a private key readable by its owner alone, never over a file.
fn write_private(path: &std::path::Path, der: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(der)?;
    Ok(())
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
