//! The worker's typed configuration.
//!
//! Sources, later ones winning: built-in defaults, then the file given with
//! `--config`, then environment variables `MONTEUR_<SECTION>__<KEY>` (for
//! example `MONTEUR_SCENES__MIN_SCORE=0.2`; the double underscore separates the
//! section from the key, which may itself contain underscores).
//!
//! `config/monteur.toml` documents every key with its default; a test keeps it
//! equal to [`Config::default`]. Unknown keys are errors, and loading reports
//! every problem it finds, not just the first.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use monteur_kernels::BackendChoice;
use monteur_pipelines::captions::CaptionSettings;
use monteur_pipelines::{AnalyseSettings, AutocutSettings, RenderSettings, SceneSettings};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "MONTEUR_";

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Config {
    pub log: LogConfig,
    pub analysis: AnalysisConfig,
    pub scenes: SceneSettings,
    pub captions: CaptionSettings,
    pub autocut: AutocutSettings,
    pub render: RenderSettings,
    pub models: ModelsConfig,
    pub worker: WorkerConfig,
    pub storage: StorageConfig,
    pub diagnostics: DiagnosticsConfig,
}

/// `[worker]`: the daemon (`monteur worker`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Broker URL; or read from `amqp_url_file` (a mounted secret) when set.
    pub amqp_url: String,
    pub amqp_url_file: String,
    /// The jobs queue (quorum; the batch lane), its dead-letter exchange and
    /// queue, and the exchange progress/completed/failed events are
    /// published to.
    pub queue: String,
    /// The interactive lane: a second quorum queue whose jobs start before
    /// any waiting batch job (RabbitMQ's quorum queues have no priorities).
    pub interactive_queue: String,
    /// After this many interactive starts in a row while a batch job waits,
    /// a batch job goes next: interactive work cannot starve batch work.
    pub batch_every: u32,
    /// Producers send `monteur.cancel.v1` messages to this queue; the worker
    /// that takes one records it and broadcasts it on `control_exchange`
    /// (fanout), which every worker listens to.
    pub cancel_queue: String,
    pub control_exchange: String,
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
    pub events_exchange: String,
    /// Audit events (key use, purges) go to this exchange, into this queue:
    /// a sink apart from diagnostics, which may carry identifiers.
    pub audit_exchange: String,
    pub audit_queue: String,
    /// The region this worker serves; jobs for another are refused unread.
    pub region: String,
    /// Jobs running at once; 0 picks one from the machine's cores (see
    /// [`WorkerConfig::slots`]).
    pub concurrency: u16,
    /// Deliveries of one message before the broker dead-letters it.
    pub delivery_limit: u32,
    /// A job running longer (from its start, not its delivery) is stopped.
    pub job_deadline_s: u64,
    /// A running job's `progress` events come at most this often.
    pub progress_interval_s: f64,
    /// The longest a message may be valid (`expires_at - issued_at`), by
    /// kind: purges short, as a captured one must not be usable for long.
    pub max_job_lifetime_s: u64,
    pub max_purge_lifetime_s: u64,
    pub max_cancel_lifetime_s: u64,
    /// Plaintext AMQP and HTTP (no TLS) are refused, to the broker and to
    /// storage alike, except to a loopback address when this is set (local
    /// development and tests). TLS is rustls: 1.2 at least, 1.3 preferred.
    pub allow_plaintext_loopback: bool,
    /// The dead-letter queue's bounds: at most this many messages
    /// (`x-max-length`; the oldest are dropped first) kept at most this
    /// long (`x-message-ttl`), so a flood of junk cannot fill the broker's
    /// disk and stop the audit publishes every job waits on.
    pub dead_letter_max_length: u32,
    pub dead_letter_ttl_s: u64,
    /// The broker's consumer timeout; above the job deadline.
    pub consumer_timeout_s: u64,
    /// After SIGTERM, in-flight jobs get this long to finish before they are
    /// handed back to the queue (keep it under Kubernetes' grace period).
    pub drain_deadline_s: u64,
    /// Keyring file (tenant keys, signing secrets).
    pub keyring: String,
    /// RAM-backed folder for a job's outputs before upload (never a disk).
    pub scratch_dir: String,
    /// Plaintext bytes per segment of client-side encrypted objects.
    pub segment_bytes: u32,
    /// Larger inputs are refused.
    pub max_input_bytes: u64,
    /// `/healthz`, `/readyz` and `/metrics` listen here; empty disables.
    pub http_addr: String,
    /// Liveness fails once the broker has been unreachable this long.
    pub recovery_stall_s: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            amqp_url_file: String::new(),
            queue: "monteur.jobs".into(),
            interactive_queue: "monteur.jobs.interactive".into(),
            batch_every: 4,
            cancel_queue: "monteur.cancel".into(),
            control_exchange: "monteur.control".into(),
            dead_letter_exchange: "monteur.dlx".into(),
            dead_letter_queue: "monteur.jobs.dead".into(),
            events_exchange: "monteur.events".into(),
            audit_exchange: "monteur.audit".into(),
            audit_queue: "monteur.audit".into(),
            region: "local".into(),
            concurrency: 0,
            delivery_limit: 5,
            job_deadline_s: 3600,
            progress_interval_s: 2.0,
            max_job_lifetime_s: 7 * 86_400,
            max_purge_lifetime_s: 3600,
            max_cancel_lifetime_s: 86_400,
            allow_plaintext_loopback: false,
            dead_letter_max_length: 100_000,
            dead_letter_ttl_s: 14 * 86_400,
            consumer_timeout_s: 7200,
            drain_deadline_s: 25,
            keyring: String::new(),
            scratch_dir: "/dev/shm".into(),
            segment_bytes: 1 << 20,
            max_input_bytes: 4 << 30,
            http_addr: "0.0.0.0:9464".into(),
            recovery_stall_s: 60,
        }
    }
}

impl WorkerConfig {
    /// The broker URL: from `amqp_url_file` when set (trailing newline
    /// dropped), else `amqp_url`.
    pub fn broker_url(&self) -> Result<String, String> {
        if self.amqp_url_file.is_empty() {
            return Ok(self.amqp_url.clone());
        }
        std::fs::read_to_string(&self.amqp_url_file)
            .map(|s| s.trim_end().to_string())
            .map_err(|e| format!("worker.amqp_url_file: {e}"))
    }

    /// Why the daemon must not start with these endpoints: plaintext to a
    /// host that is not loopback (or to loopback without
    /// `allow_plaintext_loopback`), storage in another region than the one
    /// served. Empty when all is well.
    pub fn deployment_problems(&self, amqp_url: &str, storage: &StorageConfig) -> Vec<String> {
        let mut p = Vec::new();
        for (what, url, tls, plain) in [
            ("worker.amqp_url", amqp_url, "amqps", "amqp"),
            (
                "storage.endpoint",
                storage.endpoint.as_str(),
                "https",
                "http",
            ),
        ] {
            // Messages name schemes without "://": the scrubber would take a
            // URL out of the very line that must explain it.
            if url.is_empty() {
                continue;
            }
            // Parsed as the clients parse it (both use the `url` crate), so
            // the host checked is the host connected to (`#`, `@`, `\` and
            // percent-encoding tricks included).
            let Ok(parsed) = url::Url::parse(url) else {
                p.push(format!("{what} is not a valid URL"));
                continue;
            };
            if parsed.scheme() == tls {
                continue;
            }
            if parsed.scheme() != plain {
                p.push(format!("{what} must use the {tls} scheme"));
                continue;
            }
            let loopback = match parsed.host() {
                // `amqp` is not a scheme the URL standard knows, so its
                // host stays text even when it is an address.
                Some(url::Host::Domain(d)) => {
                    d.eq_ignore_ascii_case("localhost")
                        || d.parse::<std::net::IpAddr>()
                            .is_ok_and(|ip| ip.is_loopback())
                }
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if !loopback {
                p.push(format!(
                    "{what} has no TLS ({plain}, not {tls}) and its host is not loopback"
                ));
            } else if !self.allow_plaintext_loopback {
                p.push(format!(
                    "{what} has no TLS ({plain}, not {tls}): use {tls}, or set worker.allow_plaintext_loopback = true for a service on this machine"
                ));
            }
        }
        if storage.residency != self.region {
            p.push(format!(
                "storage.residency `{}` is not worker.region `{}`: this worker would store its region's data elsewhere",
                storage.residency, self.region
            ));
        }
        p
    }

    /// What messages are checked against besides keys.
    pub fn checks(&self, now: u64) -> crate::job::Checks<'_> {
        crate::job::Checks {
            region: &self.region,
            lifetimes: crate::job::Lifetimes {
                job_s: self.max_job_lifetime_s,
                purge_s: self.max_purge_lifetime_s,
                cancel_s: self.max_cancel_lifetime_s,
            },
            now,
        }
    }

    /// Jobs run at once: `concurrency`, or when 0 a quarter of the cores
    /// (at least 1, at most 8). A job's decode, x264 render and Whisper each
    /// use several threads, so one job per core would only make every job
    /// slower; see README "Choosing worker.concurrency".
    pub fn slots(&self) -> u16 {
        if self.concurrency > 0 {
            return self.concurrency;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores / 4).clamp(1, 8) as u16
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.concurrency > 256 {
            p.push("worker.concurrency must be 0 (auto) to 256".into());
        }
        if !(self.progress_interval_s.is_finite()
            && (0.1..=3600.0).contains(&self.progress_interval_s))
        {
            p.push("worker.progress_interval_s must be 0.1 to 3600".into());
        }
        if self.batch_every == 0 {
            p.push("worker.batch_every must be at least 1".into());
        }
        if self.queue == self.interactive_queue {
            p.push("worker.interactive_queue must differ from worker.queue".into());
        }
        for (key, v) in [
            ("max_job_lifetime_s", self.max_job_lifetime_s),
            ("max_purge_lifetime_s", self.max_purge_lifetime_s),
            ("max_cancel_lifetime_s", self.max_cancel_lifetime_s),
        ] {
            if !(60..=30 * 86_400).contains(&v) {
                p.push(format!("worker.{key} must be 60 s to 30 days, got {v}"));
            }
        }
        if self.dead_letter_max_length == 0 || self.dead_letter_ttl_s == 0 {
            p.push("worker.dead_letter_max_length and dead_letter_ttl_s must be above 0".into());
        }
        if self.consumer_timeout_s <= self.job_deadline_s {
            p.push(format!(
                "worker.consumer_timeout_s ({}) must exceed worker.job_deadline_s ({})",
                self.consumer_timeout_s, self.job_deadline_s
            ));
        }
        if !(1..=1000).contains(&self.delivery_limit) {
            p.push("worker.delivery_limit must be 1 to 1000".into());
        }
        if !self.http_addr.is_empty() && self.http_addr.parse::<std::net::SocketAddr>().is_err() {
            p.push(format!(
                "worker.http_addr `{}` is not an address:port",
                self.http_addr
            ));
        }
        if !(4096..=(64 << 20)).contains(&self.segment_bytes) {
            p.push("worker.segment_bytes must be 4 KiB to 64 MiB".into());
        }
        p
    }
}

/// `[diagnostics]`: what the worker keeps about itself (crash reports) and
/// how long, and how its log pseudonyms rotate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiagnosticsConfig {
    /// Folder for crash reports (scrubbed, one JSON file per panic); empty
    /// keeps them in the log only.
    pub dir: String,
    /// Files in `dir` older than this are deleted (at start, then every
    /// `sweep_interval_s`). The privacy policy caps it at 90.
    pub retention_days: u32,
    pub sweep_interval_s: u64,
    /// The secret behind log pseudonyms is replaced this often, so a
    /// pseudonym links events of one period only.
    pub pseudonym_rotation_s: u64,
}

/// The privacy policy's limit on keeping diagnostics (P5).
pub const MAX_RETENTION_DAYS: u32 = 90;

impl Default for DiagnosticsConfig {
    fn default() -> Self {
        Self {
            dir: String::new(),
            retention_days: 30,
            sweep_interval_s: 3600,
            pseudonym_rotation_s: 86_400,
        }
    }
}

impl DiagnosticsConfig {
    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(1..=MAX_RETENTION_DAYS).contains(&self.retention_days) {
            p.push(format!(
                "diagnostics.retention_days must be 1 to {MAX_RETENTION_DAYS} (the privacy policy's limit)"
            ));
        }
        if self.sweep_interval_s == 0 {
            p.push("diagnostics.sweep_interval_s must be at least 1".into());
        }
        if self.pseudonym_rotation_s == 0 {
            p.push("diagnostics.pseudonym_rotation_s must be at least 1".into());
        }
        p
    }

    pub fn retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.retention_days) * 86_400)
    }
}

/// `[storage]`: the S3-compatible object store. Credentials come from the
/// environment variables named here, never from the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Endpoint URL; empty for AWS's own.
    pub endpoint: String,
    /// The S3 region of the endpoint (signing), not the platform's.
    pub region: String,
    pub bucket: String,
    /// The platform region (`worker.region`'s names) this endpoint and
    /// bucket are in: the worker refuses to start when it differs from the
    /// region it serves, so a job's data cannot be stored out of region by a
    /// misconfiguration.
    pub residency: String,
    pub path_style: bool,
    /// Credentials from files (mounted secrets, preferred: an environment
    /// variable is inherited by every child process, GStreamer's plugin
    /// scanner included), else from these environment variables.
    pub access_key_file: String,
    pub secret_key_file: String,
    pub access_key_env: String,
    pub secret_key_env: String,
    /// Read version 1 client-mode objects (bound to no place, wrapped with
    /// the raw tenant key that was also the SSE-C key): for a migration
    /// only, while old inputs are re-encrypted; off, they are refused as
    /// corrupt.
    pub read_v1_objects: bool,
    /// Seconds to open a connection.
    pub connect_timeout_s: f64,
    /// Seconds one attempt of one request may take (a 16 MiB part included);
    /// the SDK retries a timed-out attempt.
    pub attempt_timeout_s: f64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            region: "us-east-1".into(),
            bucket: "monteur".into(),
            residency: "local".into(),
            path_style: true,
            access_key_file: String::new(),
            secret_key_file: String::new(),
            access_key_env: "AWS_ACCESS_KEY_ID".into(),
            secret_key_env: "AWS_SECRET_ACCESS_KEY".into(),
            read_v1_objects: false,
            connect_timeout_s: 10.0,
            attempt_timeout_s: 120.0,
        }
    }
}

impl StorageConfig {
    /// The access key id and secret: from the files when set, else from the
    /// environment variables.
    pub fn credentials(&self) -> Result<(String, String), String> {
        let read = |file: &str, env: &str| -> Result<String, String> {
            if file.is_empty() {
                Ok(std::env::var(env).unwrap_or_default())
            } else {
                std::fs::read_to_string(file)
                    .map(|s| s.trim_end().to_string())
                    .map_err(|e| format!("{file}: {e}"))
            }
        };
        Ok((
            read(&self.access_key_file, &self.access_key_env)?,
            read(&self.secret_key_file, &self.secret_key_env)?,
        ))
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (key, v) in [
            ("connect_timeout_s", self.connect_timeout_s),
            ("attempt_timeout_s", self.attempt_timeout_s),
        ] {
            if !(v.is_finite() && (0.1..=3600.0).contains(&v)) {
                p.push(format!("storage.{key} must be 0.1 to 3600 s, got {v}"));
            }
        }
        p
    }
}

/// `[models]`: where the runtime libraries and model files are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Folder scripts/setup.sh fills; `~` is the home directory. The other
    /// paths are relative to it unless absolute.
    pub assets: String,
    pub onnxruntime: String,
    pub vad: String,
    pub whisper: String,
    /// TransNetV2 shot boundaries (converted to ONNX by setup), for
    /// `scenes.detector = neural` or `auto`.
    pub transnet: String,
    /// Threads per model session.
    pub threads: usize,
    /// Where Whisper runs: `auto`, `cpu` or `cuda` (see `monteur_models::Provider`).
    pub provider: String,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            assets: "~/.cache/monteur/assets".into(),
            onnxruntime: "onnxruntime/libonnxruntime.so.1.31.1".into(),
            vad: "models/silero_vad.onnx".into(),
            whisper: "models/whisper-tiny.en".into(),
            transnet: "models/transnetv2/transnetv2.onnx".into(),
            threads: 2,
            provider: "auto".into(),
        }
    }
}

impl ModelsConfig {
    /// `rel` resolved against `assets`.
    pub fn path(&self, rel: &str) -> PathBuf {
        let expand = |p: &str| match p.strip_prefix("~/") {
            Some(rest) => std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(rest),
            None => PathBuf::from(p),
        };
        let rel = expand(rel);
        if rel.is_absolute() {
            rel
        } else {
            expand(&self.assets).join(rel)
        }
    }

    /// The provider setting, parsed.
    pub fn provider(&self) -> monteur_models::Provider {
        self.provider
            .parse()
            .unwrap_or(monteur_models::Provider::Auto)
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(1..=64).contains(&self.threads) {
            p.push(format!(
                "models.threads must be within 1..=64, got {}",
                self.threads
            ));
        }
        if let Err(e) = self.provider.parse::<monteur_models::Provider>() {
            p.push(format!("models.provider: {e}"));
        }
        p
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// `[log]`: diagnostics written to stderr.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter (`info`, `monteur_pipelines=debug,info`).
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// `[analysis]`: the decode graph that feeds the frame kernels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalysisConfig {
    /// Kernel backend: `auto` (CUDA when a usable GPU is present, else CPU),
    /// `cpu`, or `cuda` (fail rather than fall back).
    pub backend: String,
    /// Width of the frames the kernels see; height keeps the display aspect.
    pub width: u32,
    /// Frames per kernel launch.
    pub batch_frames: usize,
    /// Windows of 100 frames per shot-boundary model run.
    pub neural_batch: usize,
    /// Highest frame rate the shot-boundary model is fed at (0: every frame).
    pub neural_fps: f64,
    /// The model's second pass reads every n-th of its frames (0: none).
    pub neural_coarse: usize,
    /// Seconds to wait for the probe of an input.
    pub probe_timeout_s: f64,
    /// Seconds without a decoded frame before a decode is declared stalled.
    pub stall_timeout_s: f64,
    /// Inputs whose pictures exceed this many pixels on a side are refused.
    pub max_side: u32,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        let a = AnalyseSettings::default();
        Self {
            backend: "auto".into(),
            width: a.width,
            batch_frames: a.batch_frames,
            neural_batch: a.neural_batch,
            neural_fps: a.neural_fps,
            neural_coarse: a.neural_coarse,
            probe_timeout_s: 15.0,
            stall_timeout_s: a.stall_timeout.as_secs_f64(),
            // 8K UHD fits; a crafted 60000x60000 header does not.
            max_side: 8192,
        }
    }
}

impl AnalysisConfig {
    pub fn settings(&self) -> AnalyseSettings {
        AnalyseSettings {
            width: self.width,
            batch_frames: self.batch_frames,
            neural_batch: self.neural_batch,
            neural_fps: self.neural_fps,
            neural_coarse: self.neural_coarse,
            stall_timeout: Duration::from_secs_f64(self.stall_timeout_s),
            ..AnalyseSettings::default()
        }
    }

    /// The parsed backend choice; `problems` has already rejected bad names.
    pub fn backend_choice(&self) -> BackendChoice {
        self.backend.parse().unwrap_or(BackendChoice::Auto)
    }

    pub fn probe_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.probe_timeout_s)
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Err(e) = self.backend.parse::<BackendChoice>() {
            p.push(format!("analysis.backend: {e}"));
        }
        if !(16..=3840).contains(&self.width) {
            p.push(format!(
                "analysis.width must be within 16..=3840, got {}",
                self.width
            ));
        }
        if !(1..=1024).contains(&self.batch_frames) {
            p.push(format!(
                "analysis.batch_frames must be within 1..=1024, got {}",
                self.batch_frames
            ));
        }
        // A batch blocks the decode while it runs (about 0.7 s a window on
        // two cores): more than 16 would come near the stall timeout.
        if !(1..=16).contains(&self.neural_batch) {
            p.push(format!(
                "analysis.neural_batch must be within 1..=16, got {}",
                self.neural_batch
            ));
        }
        if !(self.neural_fps == 0.0 || (10.0..=240.0).contains(&self.neural_fps)) {
            p.push(format!(
                "analysis.neural_fps must be 0 (every frame) or within 10..=240, got {}",
                self.neural_fps
            ));
        }
        if self.neural_coarse > 16 {
            p.push(format!(
                "analysis.neural_coarse must be within 0..=16, got {}",
                self.neural_coarse
            ));
        }
        for (key, v) in [
            ("probe_timeout_s", self.probe_timeout_s),
            ("stall_timeout_s", self.stall_timeout_s),
        ] {
            if !(v > 0.0 && v <= 3600.0) {
                p.push(format!("analysis.{key} must be within (0, 3600], got {v}"));
            }
        }
        p
    }
}

/// Every problem found while loading, one per line.
#[derive(Debug, Error, PartialEq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}", self.0.join("; "))
    }
}

impl Config {
    /// Loads defaults, then `file`, then the `MONTEUR_*__*` entries of `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigErrors> {
        let mut errors = Vec::new();
        let mut table = match file {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => match text.parse::<toml::Table>() {
                    Ok(t) => t,
                    Err(e) => {
                        return Err(ConfigErrors(vec![format!(
                            "{}: {}",
                            path.display(),
                            e.to_string().trim()
                        )]));
                    }
                },
                Err(e) => {
                    return Err(ConfigErrors(vec![format!("{}: {e}", path.display())]));
                }
            },
            None => toml::Table::new(),
        };
        for (key, value) in env {
            if let Err(e) = apply_env(&mut table, &key, &value) {
                errors.push(e);
            }
        }
        let config = Config {
            log: section(&mut table, "log", &mut errors),
            analysis: section(&mut table, "analysis", &mut errors),
            scenes: section(&mut table, "scenes", &mut errors),
            captions: section(&mut table, "captions", &mut errors),
            autocut: section(&mut table, "autocut", &mut errors),
            render: section(&mut table, "render", &mut errors),
            models: section(&mut table, "models", &mut errors),
            worker: section(&mut table, "worker", &mut errors),
            storage: section(&mut table, "storage", &mut errors),
            diagnostics: section(&mut table, "diagnostics", &mut errors),
        };
        for unknown in table.keys() {
            errors.push(format!(
                "unknown section or key `{unknown}` (sections: log, analysis, scenes, captions, autocut, render, models, worker, storage, diagnostics)"
            ));
        }
        errors.extend(config.problems());
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Semantic checks the types cannot express.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            p.push(format!(
                "log.level `{}` is not a valid filter: {e}",
                self.log.level
            ));
        }
        p.extend(self.analysis.problems());
        p.extend(self.scenes.problems());
        p.extend(self.captions.problems());
        p.extend(self.autocut.problems());
        p.extend(self.render.problems());
        p.extend(self.models.problems());
        p.extend(self.worker.problems());
        p.extend(self.storage.problems());
        p.extend(self.diagnostics.problems());
        p
    }
}

/// Deserializes one section, recording its error and falling back to defaults
/// so the other sections are still checked.
fn section<T: DeserializeOwned + Default>(
    table: &mut toml::Table,
    name: &str,
    errors: &mut Vec<String>,
) -> T {
    match table.remove(name) {
        None => T::default(),
        Some(value @ toml::Value::Table(_)) => match value.try_into() {
            Ok(v) => v,
            Err(e) => {
                errors.push(format!("[{name}]: {}", e.to_string().trim()));
                T::default()
            }
        },
        Some(_) => {
            errors.push(format!("`{name}` must be a section ([{name}])"));
            T::default()
        }
    }
}

/// Applies one `MONTEUR_SECTION__KEY=value` override. Variables without the
/// double underscore (such as `MONTEUR_CONFIG`) are not config keys.
fn apply_env(table: &mut toml::Table, key: &str, value: &str) -> Result<(), String> {
    let Some(rest) = key.strip_prefix(ENV_PREFIX) else {
        return Ok(());
    };
    let Some((section, field)) = rest.split_once("__") else {
        return Ok(());
    };
    if section.is_empty() || field.is_empty() {
        return Err(format!("{key}: expected {ENV_PREFIX}<SECTION>__<KEY>"));
    }
    // Numbers and booleans keep their type; anything else is a string.
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let entry = table
        .entry(section.to_ascii_lowercase())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    match entry {
        toml::Value::Table(t) => {
            t.insert(field.to_ascii_lowercase(), parsed);
            Ok(())
        }
        _ => Err(format!(
            "{key}: `{}` is not a section",
            section.to_ascii_lowercase()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/monteur.toml")
    }

    #[test]
    fn shipped_file_parses_and_equals_defaults() {
        let loaded = Config::load(Some(&shipped()), []).unwrap();
        assert_eq!(loaded, Config::default());
    }

    #[test]
    fn shipped_file_documents_every_key() {
        // Serialising the defaults lists every key; each must appear, set, in
        // the shipped file.
        let text = std::fs::read_to_string(shipped()).unwrap();
        let shipped: toml::Table = text.parse().unwrap();
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        for (section, keys) in &defaults {
            let keys = keys.as_table().unwrap();
            let doc = shipped
                .get(section)
                .and_then(|s| s.as_table())
                .unwrap_or_else(|| panic!("section [{section}] missing from monteur.toml"));
            for key in keys.keys() {
                assert!(
                    doc.contains_key(key),
                    "{section}.{key} missing from monteur.toml"
                );
            }
        }
    }

    #[test]
    fn plaintext_is_allowed_only_to_a_host_that_is_truly_loopback() {
        let mut w = WorkerConfig::default();
        let s = StorageConfig {
            residency: w.region.clone(),
            ..StorageConfig::default()
        };
        let refused = |w: &WorkerConfig, url: &str| !w.deployment_problems(url, &s).is_empty();
        for url in [
            "amqp://guest:guest@rabbit.example:5672/%2f",
            // The host lapin would connect to is evil.example in each.
            "amqp://evil.example#@127.0.0.1/",
            "amqp://evil.example?@127.0.0.1/",
            "amqp://127.0.0.1@evil.example/",
            "amqp://localhost.evil.example/",
            "amqp://127.0.0.1.nip.io/",
            "AMQP://10.0.0.7/",
            "ftp://127.0.0.1/",
            "not a url",
        ] {
            assert!(refused(&w, url), "{url} passed");
            w.allow_plaintext_loopback = true;
            assert!(refused(&w, url), "{url} passed with loopback allowed");
            w.allow_plaintext_loopback = false;
        }
        for url in [
            "amqp://127.0.0.1:5672/%2f",
            "amqp://[::1]/",
            "amqp://u:p@LOCALHOST/",
        ] {
            assert!(refused(&w, url), "{url} passed without the loopback flag");
            w.allow_plaintext_loopback = true;
            assert!(!refused(&w, url), "{url} refused with the loopback flag");
            w.allow_plaintext_loopback = false;
        }
        assert!(!refused(&w, "amqps://broker.example:5671/%2f"));
        assert!(!refused(&w, "AMQPS://broker.example/"));
        // Storage the same way; AWS itself ("") is https.
        let plain_storage = StorageConfig {
            endpoint: "http://s3.example".into(),
            ..s.clone()
        };
        assert!(
            !w.deployment_problems("amqps://b/", &plain_storage)
                .is_empty()
        );
        assert!(w.deployment_problems("amqps://b/", &s).is_empty());
    }

    #[test]
    fn environment_overrides_file() {
        let env = [
            ("MONTEUR_SCENES__MIN_SCORE".to_string(), "0.25".to_string()),
            ("MONTEUR_LOG__FORMAT".to_string(), "json".to_string()),
            ("MONTEUR_CONFIG".to_string(), "/ignored".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        let c = Config::load(Some(&shipped()), env).unwrap();
        assert_eq!(c.scenes.min_score, 0.25);
        assert_eq!(c.log.format, LogFormat::Json);
    }

    #[test]
    fn reports_every_problem_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(
            &path,
            "[analysis]\nwidth = 4\n[scenes]\nmin_scor = 1\n[loggg]\nlevel = 'x'\n",
        )
        .unwrap();
        let env = [
            (
                "MONTEUR_ANALYSIS__BATCH_FRAMES".to_string(),
                "0".to_string(),
            ),
            ("MONTEUR_ANALYSIS__BACKEND".to_string(), "tpu".to_string()),
        ];
        let errs = Config::load(Some(&path), env).unwrap_err().0;
        let all = errs.join("\n");
        assert!(all.contains("unknown backend `tpu`"), "{all}");
        assert!(all.contains("min_scor"), "{all}");
        assert!(all.contains("loggg"), "{all}");
        assert!(all.contains("analysis.width"), "{all}");
        assert!(all.contains("analysis.batch_frames"), "{all}");
        assert_eq!(errs.len(), 5, "{all}");
    }

    #[test]
    fn diagnostics_retention_is_capped_at_ninety_days() {
        let env = |d: &str| {
            [(
                "MONTEUR_DIAGNOSTICS__RETENTION_DAYS".to_string(),
                d.to_string(),
            )]
        };
        assert_eq!(
            Config::load(None, env("90"))
                .unwrap()
                .diagnostics
                .retention_days,
            90
        );
        let errs = Config::load(None, env("91")).unwrap_err().0.join("\n");
        assert!(errs.contains("retention_days must be 1 to 90"), "{errs}");
        assert!(Config::load(None, env("0")).is_err());
    }

    #[test]
    fn unreadable_file_is_one_clear_error() {
        let errs = Config::load(Some(Path::new("/nonexistent/monteur.toml")), [])
            .unwrap_err()
            .0;
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("/nonexistent/monteur.toml"));
    }
}
