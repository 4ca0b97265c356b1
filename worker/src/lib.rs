//! The `monteur` worker: everything around the media pipelines.
//!
//! # Layout
//! - [`allocator`]: glibc malloc's settings, so a long job's peak memory
//!   does not creep up with its length.
//! - [`config`]: the typed configuration, loaded from `config/monteur.toml`
//!   style files plus `MONTEUR_SECTION__KEY` environment overrides, validated
//!   with every problem reported at once.
//! - [`tasks`]: the task names a job or the CLI asks for (`scenes`, ...).
//! - [`job`]: the signed job messages (`monteur.job.v1`, `monteur.purge.v1`,
//!   `monteur.cancel.v1`) and every check made before work starts.
//! - [`reason`]: every reason a message is refused, listed once.
//! - [`crypto`]: per-tenant keys, client-side segmented AEAD, SSE-C headers.
//! - [`audit`]: the audit record of key use and purges, published to a sink
//!   apart from diagnostics.
//! - [`storage`]: the object store, encrypted both ways; multipart uploads,
//!   write-once manifests.
//! - [`daemon`]: `monteur worker`: a supervisor of `worker.concurrency`
//!   slots fed by two priority lanes of RabbitMQ jobs, each job stoppable
//!   (deadline, cancel, shutdown), run through the same `run_process` path,
//!   idempotent under redelivery.
//! - [`health`]: the daemon's `/healthz`, `/readyz` and `/metrics`.
//! - [`metrics`]: the Prometheus metrics, every label from a fixed set.
//! - [`process`]: one job: probe, a plan of stages, the stages, the outputs
//!   and a report; the process-wide [`Engine`] (kernels chosen once, speech
//!   models pooled). The CLI and the daemon run the very same path.
//! - [`producer`]: the producer's side: stamped, signed messages published
//!   with confirms (`monteur keys`, `sign`, `submit`).
//! - [`progress`]: a job's progress: a bar or log lines for the CLI, the
//!   overall percent behind the daemon's `progress` events.
//! - [`scrub`]: what diagnostics may say: an allowlist of fields, keyed
//!   pseudonyms for identifiers, free text scrubbed of e-mails, addresses,
//!   URLs, object keys and key material.
//! - [`telemetry`]: the `tracing` subscriber, every event through [`scrub`];
//!   scrubbed crash reports and their retention limit.
//!
//! `main.rs` only parses the command line, wires these together and maps errors
//! to exit codes.

pub mod allocator;
pub mod audit;
pub mod config;
pub mod crypto;
pub mod daemon;
pub mod health;
pub mod job;
pub mod metrics;
pub mod process;
pub mod producer;
pub mod progress;
pub mod reason;
pub mod scrub;
pub mod storage;
pub mod tasks;
pub mod telemetry;

pub use config::Config;
pub use process::{Engine, ProcessOutcome, Run, run_process, run_render};
pub use tasks::{Task, TaskSet};
