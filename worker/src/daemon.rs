//! `monteur worker`: jobs from RabbitMQ, footage from encrypted object
//! storage, the same `run_process` path as the CLI, artifacts back encrypted.
//!
//! Delivery is at-least-once, so the worker makes a job idempotent: a job is
//! finished when its manifest exists (written last, write-once), and a
//! redelivered finished job is only acknowledged. The input message is
//! acknowledged after the completion event is confirmed by the broker.
//!
//! Topology (declared at start, idempotently): the jobs queue is a quorum
//! queue with at-least-once dead-lettering to `dead_letter_exchange`, a
//! delivery limit and a consumer timeout above the job deadline. Refused
//! messages are republished to the dead-letter exchange with their reason in
//! the `x-monteur-reason` header (confirmed), then acknowledged. Key use and
//! purges are announced to the audit exchange (confirmed) before they happen.
//!
//! Two kinds of job share the queue: `monteur.job.v1` (process an input) and
//! `monteur.purge.v1` (delete everything under a tenant or project prefix,
//! then publish a `purged` event with the counts: the completion record).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde::Serialize;
use thiserror::Error;
use tracing::{info, warn};

use crate::audit::{Action, AuditEvent};
use crate::config::Config;
use crate::crypto::{CryptoError, KeyProvider, Keyring};
use crate::health::Health;
use crate::job::{self, Job, Purge, Request};
use crate::metrics::Metrics;
use crate::process::{Engine, ProcessError, ProcessOutcome, run_process};
use crate::progress::ProgressReporter;
use crate::storage::{Protection, PurgeReport, Storage, StorageError};

/// Why the daemon could not start or keep running (a job's own failure is
/// not one: it is reported and the daemon serves on).
#[derive(Debug, Error)]
pub enum DaemonError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("keyring: {0}")]
    Keyring(#[from] CryptoError),
    #[error("worker.keyring is not set: `monteur worker` needs tenant keys")]
    NoKeyring,
    #[error("health endpoint: {0}")]
    Http(String),
}

/// How a job ended, for the event and the acknowledgement.
enum Outcome {
    Done {
        manifest: String,
        duplicate: bool,
    },
    Purged(PurgeReport),
    /// Dead-letter with this reason code and message.
    Refused {
        code: &'static str,
        detail: String,
    },
    /// Hand back to the queue after a pause.
    Retry {
        detail: String,
    },
}

#[derive(Serialize)]
struct Event<'a> {
    schema: &'static str,
    event: &'a str,
    job_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    /// A purge's completion record: the prefix and what was removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    prefix: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    objects_deleted: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uploads_aborted: Option<u64>,
}

impl<'a> Event<'a> {
    fn new(event: &'a str, job_id: Option<&'a str>) -> Self {
        Self {
            schema: "monteur.event.v1",
            event,
            job_id,
            manifest: None,
            reason: None,
            prefix: None,
            objects_deleted: None,
            uploads_aborted: None,
        }
    }
}

#[derive(Serialize)]
struct Manifest {
    schema: &'static str,
    job_id: String,
    outputs: Vec<ManifestEntry>,
}

#[derive(Serialize)]
struct ManifestEntry {
    key: String,
    /// Plaintext size.
    bytes: u64,
}

struct Shared {
    config: Config,
    storage: Storage,
    keys: Keyring,
    engine: Mutex<Engine>,
    metrics: Metrics,
    /// This worker in audit records.
    actor: String,
    /// Jobs' frame kernels run on a GPU.
    gpu: bool,
}

/// One broker connection's publishing channels (both with confirms).
struct Channels {
    events: Channel,
    /// Publishes to the dead-letter exchange.
    dead: Channel,
    audit: Channel,
    /// Signalled when one of them was closed by the broker (a channel
    /// error, such as a deleted exchange): the session is rebuilt, which
    /// declares the topology again.
    broken: tokio::sync::Notify,
}

impl Channels {
    fn all_open(&self) -> bool {
        [&self.events, &self.dead, &self.audit]
            .iter()
            .all(|c| c.status().connected())
    }
}

/// One connection to the broker, consuming.
struct Session {
    conn: Connection,
    consume: Channel,
    channels: Arc<Channels>,
    consumer: lapin::Consumer,
}

async fn connect(w: &crate::config::WorkerConfig, tag: &str) -> Result<Session, lapin::Error> {
    let conn = Connection::connect(&w.amqp_url, ConnectionProperties::default()).await?;
    let consume = conn.create_channel().await?;
    declare(&consume, w).await?;
    // Set on every new channel: the prefetch holds after a reconnect too.
    consume
        .basic_qos(w.concurrency, BasicQosOptions::default())
        .await?;
    let events = conn.create_channel().await?;
    events
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let dead = conn.create_channel().await?;
    dead.confirm_select(ConfirmSelectOptions::default()).await?;
    let audit = conn.create_channel().await?;
    audit
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let consumer = consume
        .basic_consume(
            w.queue.as_str().into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(Session {
        conn,
        consume,
        channels: Arc::new(Channels {
            events,
            dead,
            audit,
            broken: tokio::sync::Notify::new(),
        }),
        consumer,
    })
}

/// Declares the queues and exchanges this worker needs.
async fn declare(channel: &Channel, c: &crate::config::WorkerConfig) -> Result<(), lapin::Error> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            c.dead_letter_exchange.as_str().into(),
            ExchangeKind::Direct,
            durable,
            FieldTable::default(),
        )
        .await?;
    for exchange in [&c.events_exchange, &c.audit_exchange] {
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
    }
    let quorum = |extra: Vec<(&str, AMQPValue)>| {
        let mut t = FieldTable::default();
        t.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        for (k, v) in extra {
            t.insert(k.into(), v);
        }
        t
    };
    let queue_opts = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    // The dead letters, and the audit events (kept even when nobody reads
    // them yet), each bound to its exchange.
    for (queue, exchange, key) in [
        (
            &c.dead_letter_queue,
            &c.dead_letter_exchange,
            c.queue.as_str(),
        ),
        (&c.audit_queue, &c.audit_exchange, "#"),
    ] {
        channel
            .queue_declare(queue.as_str().into(), queue_opts, quorum(Vec::new()))
            .await?;
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    channel
        .queue_declare(
            c.queue.as_str().into(),
            queue_opts,
            quorum(vec![
                (
                    "x-dead-letter-exchange",
                    AMQPValue::LongString(c.dead_letter_exchange.as_str().into()),
                ),
                (
                    "x-dead-letter-routing-key",
                    AMQPValue::LongString(c.queue.as_str().into()),
                ),
                (
                    "x-dead-letter-strategy",
                    AMQPValue::LongString("at-least-once".into()),
                ),
                // At-least-once dead-lettering requires it.
                ("x-overflow", AMQPValue::LongString("reject-publish".into())),
                (
                    "x-delivery-limit",
                    AMQPValue::LongLongInt(i64::from(c.delivery_limit)),
                ),
                (
                    "x-consumer-timeout",
                    AMQPValue::LongLongInt((c.consumer_timeout_s * 1000) as i64),
                ),
            ]),
        )
        .await?;
    Ok(())
}

/// Runs the daemon until `shutdown` resolves (SIGTERM/SIGINT in `main`).
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    let w = config.worker.clone();
    if w.keyring.is_empty() {
        return Err(DaemonError::NoKeyring);
    }
    let keys = Keyring::load(Path::new(&w.keyring))?;
    sweep_scratch(Path::new(&w.scratch_dir));
    let health = Arc::new(Health::new(Duration::from_secs(w.recovery_stall_s)));
    let metrics = Metrics::new(w.concurrency).map_err(|e| DaemonError::Http(e.to_string()))?;
    let devices = monteur_kernels::cuda::cuda_device_count();
    metrics.gpu_devices.set(devices as i64);
    let gpu = devices > 0 && config.analysis.backend != "cpu";
    spawn_retention_sweep(&config.diagnostics);
    if !w.http_addr.is_empty() {
        let addr = w
            .http_addr
            .parse()
            .map_err(|_| DaemonError::Http(format!("bad address {}", w.http_addr)))?;
        let bound = crate::health::serve(addr, Arc::clone(&health), metrics.clone())
            .await
            .map_err(|e| DaemonError::Http(format!("{addr}: {e}")))?;
        info!(addr = %bound, "health and metrics endpoint up");
    }
    let shared = Arc::new(Shared {
        storage: Storage::new(&config.storage),
        engine: Mutex::new(Engine::new(config.clone())),
        config,
        keys,
        metrics,
        actor: crate::audit::actor(),
        gpu,
    });
    let tag = format!("monteur-{}", std::process::id());
    let mut running = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    let mut pause = Duration::from_secs(1);
    let mut first = true;
    let session = loop {
        let attempt = tokio::select! {
            () = &mut shutdown => return Ok(()),
            s = connect(&w, &tag) => s,
        };
        let mut session = match attempt {
            Ok(s) => s,
            // The first connection must work: a wrong URL or topology is a
            // deployment error, better seen at once than retried forever.
            Err(e) if first => return Err(e.into()),
            Err(e) => {
                health.disconnected();
                warn!(error = %e, pause_s = pause.as_secs(), "broker unreachable; retrying");
                tokio::select! {
                    () = &mut shutdown => return Ok(()),
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        if !first {
            shared.metrics.reconnects.inc();
        }
        first = false;
        pause = Duration::from_secs(1);
        health.connected();
        shared.metrics.broker_connected.set(1);
        info!(
            queue = w.queue.as_str(),
            region = w.region.as_str(),
            concurrency = w.concurrency,
            "consuming"
        );
        let lost = loop {
            tokio::select! {
                () = &mut shutdown => break false,
                next = session.consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        let (shared, channels) = (Arc::clone(&shared), Arc::clone(&session.channels));
                        running.spawn(async move { handle(shared, channels, delivery).await });
                    }
                    Some(Err(e)) => {
                        warn!(error = %e, "broker connection lost; reconnecting");
                        break true;
                    }
                    None => break true,
                },
                () = session.channels.broken.notified() => {
                    warn!("a publishing channel was closed by the broker; reconnecting");
                    break true;
                }
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        };
        if !lost {
            break session;
        }
        health.disconnected();
        shared.metrics.broker_connected.set(0);
        // A connection that still stands (only a channel failed) must go, or
        // the broker keeps delivering to its consumer.
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            session.conn.close(200, "reconnecting".into()),
        )
        .await;
        // Deliveries of the lost connection can no longer be acked: the
        // broker redelivers them. Their async parts stop here; a decode
        // already running finishes on its thread and is dropped, and holds
        // the engine until then, so work never doubles up.
        running.abort_all();
        while running.join_next().await.is_some() {}
    };
    health.stopping();
    shared.metrics.broker_connected.set(0);
    info!(in_flight = running.len(), "stopping: no new jobs");
    let _ = session
        .consume
        .basic_cancel(tag.as_str().into(), Default::default())
        .await;
    let drain = Duration::from_secs(w.drain_deadline_s);
    if tokio::time::timeout(drain, async {
        while running.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        // Unacknowledged deliveries go back to the queue when the channel
        // closes: another worker takes them.
        warn!(
            left = running.len(),
            "drain deadline passed; handing jobs back"
        );
        running.abort_all();
    }
    let _ = session.conn.close(200, "shutdown".into()).await;
    Ok(())
}

async fn publish_event(
    shared: &Shared,
    channels: &Channels,
    event: &Event<'_>,
) -> Result<(), String> {
    let body = serde_json::to_vec(event).map_err(|e| e.to_string())?;
    publish_confirmed(
        &channels.events,
        &shared.config.worker.events_exchange,
        &format!("job.{}", event.event),
        &body,
        json_properties(),
        false,
    )
    .await
}

fn json_properties() -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
}

/// Publishes `body` and waits for the broker's confirmation. A mandatory
/// message that no queue took comes back, and counts as not published.
async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
    mandatory: bool,
) -> Result<(), String> {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory,
                ..BasicPublishOptions::default()
            },
            body,
            properties,
        )
        .await
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    if confirm.is_nack() {
        return Err(format!("the broker refused the message ({exchange})"));
    }
    if confirm.take_message().is_some() {
        return Err(format!("no queue took the message ({exchange})"));
    }
    Ok(())
}

async fn handle(shared: Arc<Shared>, channels: Arc<Channels>, delivery: Delivery) {
    let began = std::time::Instant::now();
    let m = &shared.metrics;
    m.in_flight.inc();
    if let Some(published) = delivery.properties.timestamp() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // Whole seconds (AMQP's resolution); a producer clock ahead of ours
        // reads as no wait rather than a negative one.
        m.queue_wait.observe(now.saturating_sub(*published) as f64);
    }
    let (kind, label) = handle_one(&shared, &channels, &delivery).await;
    if !channels.all_open() {
        channels.broken.notify_one();
    }
    m.in_flight.dec();
    m.touch();
    m.jobs.with_label_values(&[kind, label]).inc();
    m.job_seconds
        .with_label_values(&[kind, label])
        .observe(began.elapsed().as_secs_f64());
}

/// Handles one delivery; returns the kind and outcome labels for the metrics.
async fn handle_one(
    shared: &Arc<Shared>,
    channels: &Channels,
    delivery: &Delivery,
) -> (&'static str, &'static str) {
    let m = &shared.metrics;
    let verifying = std::time::Instant::now();
    let verified = job::verify(&delivery.data, &shared.keys, &shared.config.worker.region);
    m.stage("verify", verifying.elapsed().as_secs_f64());
    let kind = verified.as_ref().map(Request::kind).unwrap_or("invalid");
    let job_id = verified.as_ref().ok().map(|r| r.job_id().to_string());
    // From here on, these never appear in a diagnostic, whatever text
    // carries them (a decoder's error, a panic message).
    let _known = verified.as_ref().ok().map(|r| {
        crate::scrub::KnownIdentifiers::register(match r {
            Request::Process(j) => vec![
                j.job_id.as_str(),
                j.tenant.as_str(),
                j.input.as_str(),
                j.output_prefix.as_str(),
            ],
            Request::Purge(p) => vec![p.job_id.as_str(), p.tenant.as_str(), p.prefix.as_str()],
        })
    });
    let outcome = match &verified {
        Err(r) => Outcome::Refused {
            code: r.code(),
            detail: r.to_string(),
        },
        Ok(Request::Process(job)) => run_job(shared, channels, job).await,
        Ok(Request::Purge(purge)) => run_purge(shared, channels, purge).await,
    };
    // Tasks of a process job that did not complete count as failed.
    if let Ok(Request::Process(job)) = &verified
        && !matches!(outcome, Outcome::Done { .. })
    {
        for t in &job.tasks {
            if let Ok(set) = t.parse::<crate::TaskSet>() {
                for task in set.iter() {
                    m.tasks.with_label_values(&[task.name(), "failed"]).inc();
                }
            }
        }
    }
    let (result, label) = match outcome {
        Outcome::Done {
            manifest,
            duplicate,
        } => {
            let label = if duplicate { "duplicate" } else { "completed" };
            info!(job_id = job_id.as_deref(), duplicate, "job completed");
            let event = Event {
                manifest: Some(&manifest),
                ..Event::new("completed", job_id.as_deref())
            };
            (
                confirm_then_ack(shared, channels, delivery, &event).await,
                label,
            )
        }
        Outcome::Purged(report) => {
            info!(
                job_id = job_id.as_deref(),
                objects = report.objects,
                uploads = report.uploads,
                "purge completed"
            );
            let prefix = match &verified {
                Ok(Request::Purge(p)) => Some(p.prefix.as_str()),
                _ => None,
            };
            let event = Event {
                prefix,
                objects_deleted: Some(report.objects),
                uploads_aborted: Some(report.uploads),
                ..Event::new("purged", job_id.as_deref())
            };
            (
                confirm_then_ack(shared, channels, delivery, &event).await,
                "completed",
            )
        }
        Outcome::Refused { code, detail } => {
            warn!(job_id = job_id.as_deref(), reason = code, "job refused");
            m.dead_letters.with_label_values(&[code]).inc();
            let event = Event {
                reason: Some(code),
                ..Event::new("failed", job_id.as_deref())
            };
            let _ = publish_event(shared, channels, &event).await;
            let r = match dead_letter(shared, channels, delivery, code, &detail).await {
                Ok(()) => ack(delivery).await,
                // Could not park it with a reason: let the broker dead-letter it.
                Err(_) => nack(delivery, false).await,
            };
            (r, "refused")
        }
        Outcome::Retry { detail } => {
            let attempts = delivery_count(delivery);
            let pause = Duration::from_secs((1u64 << attempts.min(6)).min(60));
            warn!(
                job_id = job_id.as_deref(),
                attempts,
                error = detail.as_str(),
                "retryable failure"
            );
            tokio::time::sleep(pause).await;
            (nack(delivery, true).await, "retried")
        }
    };
    if let Err(e) = result {
        warn!(error = %e, "acknowledgement failed; the broker will redeliver");
    }
    (kind, label)
}

/// Publishes a job's final event and acknowledges the job once the broker
/// has confirmed the event; otherwise hands the job back.
async fn confirm_then_ack(
    shared: &Shared,
    channels: &Channels,
    delivery: &Delivery,
    event: &Event<'_>,
) -> Result<(), lapin::Error> {
    match publish_event(shared, channels, event).await {
        Ok(()) => ack(delivery).await,
        Err(e) => {
            warn!(
                error = e.as_str(),
                "final event not confirmed; retrying the job"
            );
            nack(delivery, true).await
        }
    }
}

/// Publishes an audit event and waits for the broker's confirmation.
/// Mandatory: an event no queue takes (the audit queue deleted or unbound)
/// counts as not recorded.
async fn audit(shared: &Shared, channels: &Channels, event: &AuditEvent<'_>) -> Result<(), String> {
    let body = serde_json::to_vec(event).map_err(|e| e.to_string())?;
    publish_confirmed(
        &channels.audit,
        &shared.config.worker.audit_exchange,
        event.action.name(),
        &body,
        json_properties(),
        true,
    )
    .await?;
    shared
        .metrics
        .audit_events
        .with_label_values(&[event.action.name()])
        .inc();
    Ok(())
}

/// Deletes everything under the purge's prefix. Announced to the audit sink
/// before a single deletion, and its result recorded there too.
async fn run_purge(shared: &Arc<Shared>, channels: &Channels, purge: &Purge) -> Outcome {
    let record = |action| AuditEvent {
        prefix: Some(&purge.prefix),
        ..AuditEvent::new(action, &shared.actor, &purge.tenant, &purge.job_id)
    };
    if let Err(e) = audit(shared, channels, &record(Action::PurgeStarted)).await {
        return Outcome::Retry {
            detail: format!("audit sink: {e}"),
        };
    }
    let started = std::time::Instant::now();
    let result = shared.storage.purge_prefix(&purge.prefix).await;
    shared
        .metrics
        .stage("purge", started.elapsed().as_secs_f64());
    match result {
        Ok(report) => {
            shared.metrics.purged_objects.inc_by(report.objects);
            shared.metrics.purged_uploads.inc_by(report.uploads);
            let done = AuditEvent {
                objects_deleted: Some(report.objects),
                uploads_aborted: Some(report.uploads),
                ..record(Action::PurgeCompleted)
            };
            match audit(shared, channels, &done).await {
                Ok(()) => Outcome::Purged(report),
                // Redone on redelivery: a purge is idempotent.
                Err(e) => Outcome::Retry {
                    detail: format!("audit sink: {e}"),
                },
            }
        }
        Err(e) => {
            let text = e.to_string();
            let failed = AuditEvent {
                error: Some(&text),
                ..record(Action::PurgeFailed)
            };
            let _ = audit(shared, channels, &failed).await;
            if e.is_permanent() {
                Outcome::Refused {
                    code: "purge_refused",
                    detail: text,
                }
            } else {
                Outcome::Retry { detail: text }
            }
        }
    }
}

fn delivery_count(d: &Delivery) -> u32 {
    d.properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-delivery-count").cloned())
        .and_then(|v| match v {
            AMQPValue::LongLongInt(n) => Some(n as u32),
            AMQPValue::LongInt(n) => Some(n as u32),
            _ => None,
        })
        .unwrap_or(0)
}

async fn ack(d: &Delivery) -> Result<(), lapin::Error> {
    // lapin reports a vanished channel as Ok(false): the broker redelivers.
    let acked = d.ack(BasicAckOptions::default()).await?;
    if !acked {
        warn!("ack not sent: channel closed; the job will be redelivered");
    }
    Ok(())
}

async fn nack(d: &Delivery, requeue: bool) -> Result<(), lapin::Error> {
    let sent = d
        .nack(BasicNackOptions {
            requeue,
            ..BasicNackOptions::default()
        })
        .await?;
    if !sent {
        warn!("nack not sent: channel closed; the job will be redelivered");
    }
    Ok(())
}

async fn dead_letter(
    shared: &Shared,
    channels: &Channels,
    d: &Delivery,
    code: &str,
    detail: &str,
) -> Result<(), String> {
    let w = &shared.config.worker;
    let mut headers = FieldTable::default();
    headers.insert(
        ShortString::from("x-monteur-reason"),
        AMQPValue::LongString(LongString::from(code)),
    );
    let detail: String = detail.chars().take(300).collect();
    headers.insert(
        ShortString::from("x-monteur-detail"),
        AMQPValue::LongString(LongString::from(detail.as_str())),
    );
    publish_confirmed(
        &channels.dead,
        &w.dead_letter_exchange,
        &w.queue,
        &d.data,
        BasicProperties::default()
            .with_delivery_mode(2)
            .with_headers(headers),
        false,
    )
    .await
}

fn storage_outcome(e: StorageError) -> Outcome {
    if e.is_permanent() {
        let code = match &e {
            StorageError::Crypto(_) => "corrupt_input",
            StorageError::TooLarge { .. } => "input_too_large",
            _ => "input_unreadable",
        };
        Outcome::Refused {
            code,
            detail: e.to_string(),
        }
    } else {
        Outcome::Retry {
            detail: e.to_string(),
        }
    }
}

async fn run_job(shared: &Arc<Shared>, channels: &Channels, job: &Job) -> Outcome {
    let w = &shared.config.worker;
    let key = match shared.keys.active_key(&job.tenant) {
        Ok(k) => k,
        Err(_) => {
            return Outcome::Refused {
                code: "unknown_tenant_key",
                detail: "no active key for this tenant".into(),
            };
        }
    };
    let p = Protection {
        mode: job.encryption,
        key,
        segment_bytes: w.segment_bytes,
    };
    let manifest_key = format!("{}manifest.json", job.output_prefix);
    // No key is used before the audit sink has the record of it.
    let key_use = AuditEvent {
        key_id: Some(&key.id),
        ..AuditEvent::new(Action::KeyUse, &shared.actor, &job.tenant, &job.job_id)
    };
    if let Err(e) = audit(shared, channels, &key_use).await {
        return Outcome::Retry {
            detail: format!("audit sink: {e}"),
        };
    }
    // Progress is informational: a lost one changes nothing.
    let _ = publish_event(shared, channels, &Event::new("started", Some(&job.job_id))).await;
    match shared.storage.exists(&manifest_key, p).await {
        Ok(true) => {
            return Outcome::Done {
                manifest: manifest_key,
                duplicate: true,
            };
        }
        Ok(false) => {}
        Err(e) => return storage_outcome(e),
    }
    // The input is read in blocks by ranged GETs as the decoder asks for
    // them: memory stays bounded and no plaintext touches a disk.
    let fetching = std::time::Instant::now();
    let reader = match shared
        .storage
        .open_reader(&job.input, &job.tenant, p, &shared.keys, w.max_input_bytes)
        .await
    {
        Ok(r) => Arc::new(r),
        Err(e) => return storage_outcome(e),
    };
    shared
        .metrics
        .stage("fetch", fetching.elapsed().as_secs_f64());
    let outcome = process_input(shared, job, p, &manifest_key, &reader).await;
    shared.metrics.input_bytes.inc_by(reader.fetched());
    outcome
}

/// The part of a process job after its input is open: decode and analyse,
/// upload the artifacts, then the manifest.
async fn process_input(
    shared: &Arc<Shared>,
    job: &Job,
    p: Protection<'_>,
    manifest_key: &str,
    reader: &Arc<crate::storage::ObjectReader>,
) -> Outcome {
    let w = &shared.config.worker;
    let handle = monteur_pipelines::source::register(reader.clone(), &job.input);
    let tasks = match job.task_set() {
        Ok(t) => t,
        Err(r) => {
            return Outcome::Refused {
                code: r.code(),
                detail: r.to_string(),
            };
        }
    };
    let scratch = match tempfile::Builder::new()
        .prefix(&format!("monteur-job-{}-", std::process::id()))
        .tempdir_in(&w.scratch_dir)
    {
        Ok(d) => d,
        Err(e) => {
            return Outcome::Retry {
                detail: format!("scratch space: {e}"),
            };
        }
    };
    let out_dir = scratch.path().to_path_buf();
    let shared2 = Arc::clone(shared);
    let job2 = job.clone();
    let deadline = Duration::from_secs(w.job_deadline_s);
    // Decoding and inference are CPU-bound and blocking: off the runtime, so
    // heartbeats and other deliveries stay live.
    let gpu = shared.gpu.then(|| GpuJob::new(&shared.metrics));
    let work = tokio::task::spawn_blocking(move || -> Result<Done, ProcessError> {
        let path = handle.path();
        let mut engine = match shared2.engine.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        failpoint("job.panic", &job2.job_id, || {
            format!(
                "cannot open {} for tenant {} ({})",
                job2.input, job2.tenant, job2.job_id
            )
        });
        let saved = engine.config.clone();
        apply_options(&mut engine.config, &job2);
        let mut alive = Liveness(shared2.metrics.clone());
        let result = run_process(&mut engine, &path, &out_dir, &tasks, &mut alive);
        engine.config = saved;
        let outcome = result?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&out_dir)
            .map_err(|e| ProcessError::Output {
                path: out_dir.clone(),
                source: e,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        Ok(Done { outcome, files })
    });
    let result = tokio::time::timeout(deadline, work).await;
    drop(gpu);
    let Done { outcome, files } = match result {
        Err(_) => {
            return Outcome::Refused {
                code: "deadline_exceeded",
                detail: format!("job ran past {} s", w.job_deadline_s),
            };
        }
        // The panic hook has logged it, scrubbed, and written the crash
        // report; its text may name the job's data, so it stays out of the
        // dead-letter header.
        Ok(Err(_)) => {
            return Outcome::Refused {
                code: "worker_panic",
                detail: "the job panicked; see the worker's crash report".into(),
            };
        }
        // A failed read says more than the decoder's error it caused.
        Ok(Ok(Err(_))) if let Some(e) = reader.failure() => return storage_outcome(e),
        Ok(Ok(Err(e))) if e.is_permanent() => {
            return Outcome::Refused {
                code: "bad_media",
                detail: e.to_string(),
            };
        }
        Ok(Ok(Err(e))) => {
            return Outcome::Retry {
                detail: e.to_string(),
            };
        }
        Ok(Ok(Ok(done))) => done,
    };
    shared.metrics.record_process(&outcome);
    let uploading = std::time::Instant::now();
    let mut outputs = Vec::new();
    for f in &files {
        let Some(name) = f.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let key = format!("{}{name}", job.output_prefix);
        let bytes = match shared.storage.put_file(&key, f, p).await {
            Ok(b) => b,
            Err(e) => return storage_outcome(e),
        };
        shared.metrics.output_bytes.inc_by(bytes);
        shared.metrics.output(&name);
        outputs.push(ManifestEntry { key, bytes });
    }
    drop(scratch);
    let manifest = Manifest {
        schema: "monteur.manifest.v1",
        job_id: job.job_id.clone(),
        outputs,
    };
    let body = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    let result = shared.storage.put_once(manifest_key, &body, p).await;
    shared
        .metrics
        .stage("upload", uploading.elapsed().as_secs_f64());
    match result {
        Ok(created) => Outcome::Done {
            manifest: manifest_key.to_string(),
            duplicate: !created,
        },
        Err(e) => storage_outcome(e),
    }
}

/// What a job's blocking part hands back.
struct Done {
    outcome: ProcessOutcome,
    files: Vec<PathBuf>,
}

/// Counts a job as running on the GPU for as long as it lives.
struct GpuJob(Metrics);

impl GpuJob {
    fn new(m: &Metrics) -> Self {
        m.gpu_jobs.inc();
        Self(m.clone())
    }
}

impl Drop for GpuJob {
    fn drop(&mut self) {
        self.0.gpu_jobs.dec();
    }
}

/// A job's decode progress, as the stalled-consumer signal.
struct Liveness(Metrics);

impl ProgressReporter for Liveness {
    fn update(&mut self, _: monteur_pipelines::Progress) {
        self.0.touch();
    }

    fn finish(&mut self) {
        self.0.touch();
    }
}

/// Test-only fault injection, compiled in only with the `failpoints` cargo
/// feature (the test suites turn it on; release builds never have it).
/// `MONTEUR_FAILPOINTS=job.panic=<job id>` panics inside that job with its
/// identifiers in the message, as a careless `expect` would: the canary test
/// checks that none of them survive into logs or crash reports.
#[cfg(feature = "failpoints")]
fn failpoint(name: &str, job_id: &str, message: impl FnOnce() -> String) {
    let armed = std::env::var("MONTEUR_FAILPOINTS").is_ok_and(|v| {
        v.split(',')
            .any(|f| f.split_once('=') == Some((name, job_id)))
    });
    if armed {
        panic!("failpoint {name}: {}", message());
    }
}

#[cfg(not(feature = "failpoints"))]
fn failpoint(_: &str, _: &str, _: impl FnOnce() -> String) {}

/// Deletes expired diagnostic files every `sweep_interval_s` (the first
/// sweep ran in `telemetry::init`).
fn spawn_retention_sweep(d: &crate::config::DiagnosticsConfig) {
    if d.dir.is_empty() {
        return;
    }
    let (dir, max_age) = (PathBuf::from(&d.dir), d.retention());
    let every = Duration::from_secs(d.sweep_interval_s);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let (dir, max_age) = (dir.clone(), max_age);
            let _ =
                tokio::task::spawn_blocking(move || crate::telemetry::sweep_expired(&dir, max_age))
                    .await;
        }
    });
}

/// Removes what killed workers left in the scratch folder: a job's outputs,
/// in plaintext until uploaded, must not outlive the process that made them.
fn sweep_scratch(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("monteur-job-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            match std::fs::remove_dir_all(e.path()) {
                Ok(()) => info!(pid, "removed a dead worker's scratch folder"),
                Err(err) => {
                    warn!(pid, error = %err, "could not remove a dead worker's scratch folder")
                }
            }
        }
    }
}

fn apply_options(config: &mut Config, job: &Job) {
    if let Some(l) = &job.options.language {
        config.captions.language = l.clone();
    }
    if let Some(t) = job.options.target_s {
        config.autocut.target_s = t;
    }
    if let Some(b) = job.options.burn_captions {
        config.render.burn_captions = b;
    }
}
