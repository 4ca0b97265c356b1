//! `monteur worker`: jobs from RabbitMQ, footage from encrypted object
//! storage, the same `run_process` path as the CLI, artifacts back encrypted.
//!
//! Delivery is at-least-once, so the worker makes a job idempotent: a job is
//! finished when its manifest exists (written last, write-once), and a
//! redelivered finished job is only acknowledged. The input message is
//! acknowledged after the completion event is confirmed by the broker.
//!
//! The supervisor (this module's [`run`]) owns `worker.concurrency` slots. It
//! verifies each delivery as it arrives, keeps it in its lane
//! ([`lanes`]: interactive before batch) until a slot frees, then runs it as
//! a job with a stop handle ([`outcome::Stopper`]) that its deadline, a
//! producer's cancel ([`control`]) or a shutdown pulls. A stopped job frees
//! its slot within [`process_job::STOP_GRACE`].
//!
//! - [`session`]: the broker connection, consumers and confirmed publishing.
//! - [`topology`]: the queues and exchanges.
//! - [`outcome`]: how a delivery ends and how it is acknowledged.
//! - [`wire`]: events, manifest and cancel marker (producers' contract).
//! - [`process_job`], [`purge`], [`control`]: the three kinds of work.
//! - [`housekeeping`]: scratch folders and the diagnostics' retention.
//! - [`failpoints`]: test-only fault injection.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use std::panic::AssertUnwindSafe;
use thiserror::Error;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::config::Config;
use crate::crypto::{CryptoError, Keyring};
use crate::health::Health;
use crate::job::{self, Refusal, Request};
use crate::metrics::Metrics;
use crate::process::{Engine, ProcessError};
use crate::reason::Reason;
use crate::scrub::KnownIdentifiers;
use crate::storage::Storage;

mod control;
pub(crate) mod failpoints;
mod housekeeping;
mod lanes;
mod markers;
mod outcome;
mod process_job;
mod purge;
mod session;
mod topology;
mod wire;

use lanes::{Lane, Lanes};
use outcome::{Outcome, Settle, Stop, Stopper};
use session::{Channels, Session};
use wire::Attribution;

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
    #[error("scratch folder: {0}")]
    Scratch(std::io::Error),
    #[error(transparent)]
    Engine(#[from] ProcessError),
    #[error("refusing to start: {0}")]
    Deployment(String),
}

/// What every job of the process shares.
pub(crate) struct Shared {
    pub config: Config,
    pub storage: Storage,
    pub keys: Keyring,
    pub engine: Arc<Engine>,
    pub metrics: Metrics,
    /// This worker in audit records.
    pub actor: String,
    pub scratch: housekeeping::Scratch,
    /// Running process jobs' stop handles: what a broadcast cancel finds.
    running: Mutex<Vec<Running>>,
    next_run: std::sync::atomic::AtomicU64,
}

/// A running process job, as cancels look it up.
struct Running {
    id: u64,
    tenant: String,
    job_id: String,
    stopper: Stopper,
}

/// A running job's place in the registry and the in-flight gauge, given
/// back however the job's task ends (a panic included).
struct Slot {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.running().retain(|r| r.id != self.id);
        self.shared.metrics.in_flight.dec();
    }
}

impl Shared {
    /// Publishes an audit record (confirmed, mandatory) and counts it.
    pub async fn audit(
        &self,
        channels: &Channels,
        record: &crate::audit::AuditEvent<'_>,
    ) -> Result<(), String> {
        channels.audit(record).await?;
        self.metrics
            .audit_events
            .with_label_values(&[record.action.name()])
            .inc();
        Ok(())
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Vec<Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot for `r`: counted in flight and, for a process job,
    /// findable by cancels, until the returned guard drops.
    fn take_slot(self: &Arc<Self>, r: &Received, stopper: &Stopper) -> Slot {
        let id = self
            .next_run
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(Request::Process(j)) = &r.request {
            self.running().push(Running {
                id,
                tenant: j.tenant.clone(),
                job_id: j.job_id.clone(),
                stopper: stopper.clone(),
            });
        }
        self.metrics.in_flight.inc();
        Slot {
            shared: Arc::clone(self),
            id,
        }
    }
}

/// A delivery, verified on arrival.
struct Received {
    delivery: Delivery,
    request: Result<Request, Refusal>,
    attribution: Attribution,
    arrived: Instant,
    /// The request's identifiers are redacted from every diagnostic for as
    /// long as it is handled (a decoder's error, a panic message).
    known: Option<Arc<KnownIdentifiers>>,
}

impl Received {
    fn new(shared: &Shared, delivery: Delivery) -> Self {
        let m = &shared.metrics;
        if let Some(published) = delivery.properties.timestamp() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            // Whole seconds (AMQP's resolution); a producer clock ahead of
            // ours reads as no wait rather than a negative one.
            m.queue_wait.observe(now.saturating_sub(*published) as f64);
        }
        let verifying = Instant::now();
        let checks = shared.config.worker.checks(job::now_s());
        let request = job::verify(&delivery.data, &shared.keys, &checks);
        m.stage("verify", verifying.elapsed().as_secs_f64());
        let known = request
            .as_ref()
            .ok()
            .map(|r| Arc::new(KnownIdentifiers::register(r.identifiers())));
        Self {
            attribution: Attribution::of(&delivery),
            delivery,
            request,
            arrived: Instant::now(),
            known,
        }
    }

    fn job_id(&self) -> Option<&str> {
        match &self.request {
            Ok(r) => Some(r.job_id()),
            Err(refusal) => refusal.job_id.as_deref(),
        }
    }

    fn kind(&self) -> &'static str {
        self.request
            .as_ref()
            .map(Request::kind)
            .unwrap_or("invalid")
    }

    /// Whether this is the process job a cancel names (a cancel never
    /// touches a purge: deletion must not be stoppable by a job id).
    fn is(&self, tenant: &str, job_id: &str) -> bool {
        matches!(&self.request, Ok(Request::Process(j)) if j.tenant == tenant && j.job_id == job_id)
    }
}

/// A delivery's end, ready to be settled off the slot.
struct Finished {
    received: Received,
    outcome: Outcome,
    began: Instant,
    /// What the job left in storage, if it was stopped.
    stopper: Stopper,
}

/// Runs the daemon until `shutdown` resolves (SIGTERM/SIGINT in `main`).
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    let mut w = config.worker.clone();
    if w.keyring.is_empty() {
        return Err(DaemonError::NoKeyring);
    }
    w.amqp_url = w.broker_url().map_err(DaemonError::Deployment)?;
    let problems = w.deployment_problems(&w.amqp_url, &config.storage);
    if !problems.is_empty() {
        return Err(DaemonError::Deployment(problems.join("; ")));
    }
    let (key_id, secret) = config
        .storage
        .credentials()
        .map_err(DaemonError::Deployment)?;
    let mut keys = Keyring::load(Path::new(&w.keyring))?;
    keys.read_legacy_objects(config.storage.read_v1_objects);
    let scratch =
        housekeeping::Scratch::open(Path::new(&w.scratch_dir)).map_err(DaemonError::Scratch)?;
    let slots = w.slots();
    let health = Arc::new(Health::new(Duration::from_secs(w.recovery_stall_s)));
    let metrics = Metrics::new(slots).map_err(|e| DaemonError::Http(e.to_string()))?;
    let engine = Arc::new(Engine::new(config.clone())?);
    let devices = monteur_kernels::cuda::cuda_device_count();
    metrics.gpu_devices.set(devices as i64);
    housekeeping::spawn_retention_sweep(&config.diagnostics);
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
        storage: Storage::with_credentials(&config.storage, &key_id, &secret),
        engine,
        config,
        keys,
        metrics,
        actor: crate::audit::actor(),
        scratch,
        running: Mutex::new(Vec::new()),
        next_run: std::sync::atomic::AtomicU64::new(1),
    });
    let tag = format!("monteur-{}", std::process::id());
    let mut sup = Supervisor {
        shared: Arc::clone(&shared),
        slots: usize::from(slots),
        lanes: Lanes::new(w.batch_every),
        jobs: JoinSet::new(),
        aux: JoinSet::new(),
    };
    tokio::pin!(shutdown);
    let mut pause = Duration::from_secs(1);
    let mut first = true;
    let session = loop {
        let attempt = tokio::select! {
            () = &mut shutdown => return Ok(()),
            s = session::connect(&w, &tag) => s,
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
            concurrency = slots,
            "consuming"
        );
        if !sup.serve(&mut session, &mut shutdown).await {
            break session;
        }
        health.disconnected();
        shared.metrics.broker_connected.set(0);
        // A connection that still stands (only a channel failed) must go, or
        // the broker keeps delivering to its consumers.
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            session.conn.close(200, "reconnecting".into()),
        )
        .await;
        // Deliveries of the lost connection can no longer be acked: the
        // broker redelivers them. Running jobs stop (their work would be
        // done again anyway); waiting ones are forgotten.
        sup.lanes.drain();
        sup.stop_all(Stop::Shutdown);
        sup.wait_jobs(
            process_job::STOP_GRACE + Duration::from_secs(1),
            &session.channels,
        )
        .await;
    };
    health.stopping();
    shared.metrics.broker_connected.set(0);
    sup.drain(&session, Duration::from_secs(w.drain_deadline_s))
        .await;
    let _ = tokio::time::timeout(
        Duration::from_millis(500),
        session.conn.close(200, "shutdown".into()),
    )
    .await;
    Ok(())
}

/// The slots and the deliveries waiting for them.
struct Supervisor {
    shared: Arc<Shared>,
    slots: usize,
    lanes: Lanes<Received>,
    /// Jobs holding a slot.
    jobs: JoinSet<Finished>,
    /// Settling (events, acknowledgements, retry pauses), refusals and
    /// cancels: quick work that holds no slot.
    aux: JoinSet<()>,
}

impl Supervisor {
    /// Consumes until shutdown (false) or a lost connection (true).
    async fn serve(
        &mut self,
        session: &mut Session,
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> bool {
        let channels = Arc::clone(&session.channels);
        loop {
            if let Err(e) = self.fill(session, &channels).await {
                return lost(e);
            }
            tokio::select! {
                () = shutdown.as_mut() => return false,
                next = session.interactive.consumer.next() => match next {
                    Some(Ok(d)) => self.arrive(Lane::Interactive, d, &channels),
                    Some(Err(e)) => return lost(e),
                    None => return true,
                },
                next = session.batch.consumer.next() => match next {
                    Some(Ok(d)) => self.arrive(Lane::Batch, d, &channels),
                    Some(Err(e)) => return lost(e),
                    None => return true,
                },
                next = session.cancels.next() => match next {
                    Some(Ok(d)) => self.cancel_request(d, &channels),
                    Some(Err(e)) => return lost(e),
                    None => return true,
                },
                next = session.control.next() => match next {
                    Some(Ok(d)) => self.broadcast_cancel(d, &channels),
                    Some(Err(e)) => return lost(e),
                    None => return true,
                },
                () = channels.broken.notified() => {
                    warn!("a publishing channel was closed by the broker; reconnecting");
                    return true;
                }
                Some(done) = self.jobs.join_next(), if !self.jobs.is_empty() => {
                    self.finished(done, &channels);
                }
                Some(_) = self.aux.join_next(), if !self.aux.is_empty() => {
                    if !channels.all_open() {
                        channels.broken.notify_one();
                    }
                }
            }
        }
    }

    /// A delivery on a job lane: refused at once, or waiting for a slot.
    fn arrive(&mut self, lane: Lane, d: Delivery, channels: &Arc<Channels>) {
        let r = Received::new(&self.shared, d);
        match &r.request {
            Err(refusal) => {
                let o = Outcome::refused(refusal.rejection.reason(), refusal.to_string());
                self.settle_later(r, o, Instant::now(), channels);
            }
            Ok(Request::Cancel(_)) => self.record_cancel(r, channels),
            Ok(_) => {
                tracing::debug!(
                    lane = lane.name(),
                    waiting = self.lanes.len(),
                    "job waiting"
                );
                self.lanes.push(lane, r);
            }
        }
    }

    /// A message on the cancel queue.
    fn cancel_request(&mut self, d: Delivery, channels: &Arc<Channels>) {
        let r = Received::new(&self.shared, d);
        match &r.request {
            Ok(Request::Cancel(_)) => self.record_cancel(r, channels),
            Ok(_) => self.settle_later(
                r,
                Outcome::refused(
                    Reason::InvalidField,
                    "only monteur.cancel.v1 messages belong on the cancel queue",
                ),
                Instant::now(),
                channels,
            ),
            Err(refusal) => {
                let o = Outcome::refused(refusal.rejection.reason(), refusal.to_string());
                self.settle_later(r, o, Instant::now(), channels);
            }
        }
    }

    fn record_cancel(&mut self, r: Received, channels: &Arc<Channels>) {
        let (shared, channels) = (Arc::clone(&self.shared), Arc::clone(channels));
        self.aux.spawn(async move {
            let began = Instant::now();
            let outcome = match &r.request {
                Ok(Request::Cancel(c)) => {
                    control::record(&shared, &channels, c, &r.delivery.data).await
                }
                _ => Outcome::HandBack,
            };
            settle(&shared, &channels, r, outcome, began).await;
        });
    }

    /// A recorded cancel, heard by every worker: stop the job if it is
    /// here. Control messages are acknowledged whatever they say.
    fn broadcast_cancel(&mut self, d: Delivery, channels: &Arc<Channels>) {
        let checks = self.shared.config.worker.checks(job::now_s());
        let verified = job::verify(&d.data, &self.shared.keys, &checks);
        if let Ok(Request::Cancel(c)) = &verified {
            for r in self.shared.running().iter() {
                if r.tenant == c.tenant && r.job_id == c.job_id {
                    info!(job_id = c.job_id.as_str(), "cancelling a running job");
                    r.stopper.stop(Stop::Cancelled);
                }
            }
            while let Some(waiting) = self.lanes.remove(|r| r.is(&c.tenant, &c.job_id)) {
                info!(
                    job_id = c.job_id.as_str(),
                    "dropping a cancelled job before it starts"
                );
                self.settle_later(waiting, Outcome::Cancelled, Instant::now(), channels);
            }
        } else {
            warn!("ignored a control message that is not a valid cancel");
        }
        self.aux.spawn(async move {
            let _ = session::ack(&d).await;
        });
    }

    /// Starts waiting jobs while slots are free; each start lets its lane
    /// take the next waiting job (see `session::Standby`).
    async fn fill(
        &mut self,
        session: &mut Session,
        channels: &Arc<Channels>,
    ) -> Result<(), lapin::Error> {
        let w = &self.shared.config.worker;
        let deadline = Duration::from_secs(w.job_deadline_s);
        let budget = Duration::from_secs(w.consumer_timeout_s);
        while self.jobs.len() < self.slots {
            let Some((lane, r)) = self.lanes.next() else {
                break;
            };
            // The broker's consumer timeout runs from delivery: a job that
            // waited here too long to finish inside it goes back instead.
            if r.arrived.elapsed() + deadline > budget {
                self.settle_later(r, Outcome::HandBack, Instant::now(), channels);
                continue;
            }
            self.start(lane, r, channels);
            let standby = match lane {
                Lane::Interactive => &mut session.interactive,
                Lane::Batch => &mut session.batch,
            };
            standby.replace(&session.consume).await?;
        }
        Ok(())
    }

    fn start(&mut self, lane: Lane, r: Received, channels: &Arc<Channels>) {
        let shared = Arc::clone(&self.shared);
        let channels = Arc::clone(channels);
        let stopper = Stopper::default();
        let slot = shared.take_slot(&r, &stopper);
        info!(job_id = r.job_id(), lane = lane.name(), "job started");
        self.jobs.spawn(async move {
            let _slot = slot;
            let began = Instant::now();
            let deadline = Duration::from_secs(shared.config.worker.job_deadline_s);
            let outcome = {
                // A bug that panics in the job's own (async) part must not
                // lose the delivery: it is refused like a panicking job.
                let work = AssertUnwindSafe(handle(&shared, &channels, &r, &stopper))
                    .catch_unwind()
                    .map(|o| {
                        o.unwrap_or_else(|_| {
                            Outcome::refused(Reason::WorkerPanic, "the job's task panicked")
                        })
                    });
                tokio::pin!(work);
                let stopped = tokio::select! {
                    o = &mut work => Some(o),
                    () = tokio::time::sleep(deadline) => {
                        stopper.stop(Stop::Deadline);
                        None
                    }
                    () = process_job::cancelled(&stopper.cancel) => None,
                };
                match stopped {
                    Some(o) => o,
                    // Stopped: the work notices within its grace; an await
                    // that does not (a storage call) is dropped.
                    None => tokio::time::timeout(
                        process_job::STOP_GRACE + Duration::from_millis(300),
                        &mut work,
                    )
                    .await
                    .unwrap_or_else(|_| stopper.outcome(shared.config.worker.job_deadline_s)),
                }
            };
            Finished {
                received: r,
                outcome,
                began,
                stopper,
            }
        });
    }

    fn finished(
        &mut self,
        done: Result<Finished, tokio::task::JoinError>,
        channels: &Arc<Channels>,
    ) {
        match done {
            Ok(f) => {
                let (shared, channels) = (Arc::clone(&self.shared), Arc::clone(channels));
                self.aux.spawn(async move {
                    // A cancelled or timed-out job leaves nothing: what it
                    // uploaded before the stop goes before its event.
                    process_job::discard(&shared, &f.stopper).await;
                    settle(&shared, &channels, f.received, f.outcome, f.began).await
                });
            }
            // Only an abort (a lost connection) ends a job task without a
            // result: its delivery is redelivered by the broker.
            Err(e) => warn!(error = %e, "a job task ended without a result"),
        }
    }

    fn settle_later(
        &mut self,
        r: Received,
        outcome: Outcome,
        began: Instant,
        channels: &Arc<Channels>,
    ) {
        let (shared, channels) = (Arc::clone(&self.shared), Arc::clone(channels));
        self.aux
            .spawn(async move { settle(&shared, &channels, r, outcome, began).await });
    }

    fn stop_all(&self, why: Stop) {
        for r in self.shared.running().iter() {
            r.stopper.stop(why);
        }
    }

    /// Waits up to `limit` for the running jobs, settling each.
    async fn wait_jobs(&mut self, limit: Duration, channels: &Arc<Channels>) -> bool {
        let until = tokio::time::Instant::now() + limit;
        while !self.jobs.is_empty() {
            match tokio::time::timeout_at(until, self.jobs.join_next()).await {
                Ok(Some(done)) => self.finished(done, channels),
                Ok(None) => break,
                Err(_) => return false,
            }
        }
        true
    }

    /// SIGTERM: no new deliveries; waiting ones go back at once; running
    /// ones get `drain` to finish, then are stopped and handed back. All of
    /// it within `drain` + 4 s (`main` allows 1 s more for the runtime).
    async fn drain(&mut self, session: &Session, drain: Duration) {
        let hard = tokio::time::Instant::now() + drain + Duration::from_secs(4);
        let channels = Arc::clone(&session.channels);
        info!(
            running = self.jobs.len(),
            waiting = self.lanes.len(),
            "stopping: no new jobs"
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), session.stop_consuming()).await;
        for r in self.lanes.drain() {
            self.settle_later(r, Outcome::HandBack, Instant::now(), &channels);
        }
        if !self.wait_jobs(drain, &channels).await {
            warn!(
                left = self.jobs.len(),
                "drain deadline passed; stopping jobs and handing them back"
            );
            self.stop_all(Stop::Shutdown);
            let grace = process_job::STOP_GRACE + Duration::from_millis(500);
            let left = hard.saturating_duration_since(tokio::time::Instant::now());
            self.wait_jobs(grace.min(left), &channels).await;
        }
        // Events and acknowledgements of what ended.
        let _ = tokio::time::timeout_at(hard, async {
            while self.aux.join_next().await.is_some() {}
        })
        .await;
    }
}

fn lost(e: lapin::Error) -> bool {
    warn!(error = %e, "broker connection lost; reconnecting");
    true
}

/// Runs one verified delivery to its outcome.
async fn handle(
    shared: &Arc<Shared>,
    channels: &Channels,
    r: &Received,
    stopper: &Stopper,
) -> Outcome {
    let request = match &r.request {
        Err(refusal) => {
            return Outcome::refused(refusal.rejection.reason(), refusal.to_string());
        }
        Ok(request) => request,
    };
    // Verified on arrival, but it may have waited in a lane since: an
    // expired purge must not start because a slot came free late.
    let now = crate::job::now_s();
    if request.stamp().expires_at <= now {
        return Outcome::refused(
            Reason::Expired,
            format!(
                "expired {} s ago, while waiting for a slot",
                now - request.stamp().expires_at
            ),
        );
    }
    // The message claims its nonce before it does anything (markers.rs):
    // a second copy, now or later, on any worker, is a replay. A cancel is
    // harmless to repeat and is not tracked.
    if !matches!(request, Request::Cancel(_)) {
        let Ok(key) = crate::crypto::KeyProvider::active_key(&shared.keys, request.tenant()) else {
            return Outcome::refused(Reason::UnknownTenantKey, "no active key for this tenant");
        };
        let (tenant, nonce) = (request.tenant(), &request.stamp().nonce);
        let claim_key = markers::nonce(tenant, nonce);
        // Looked for first: not every store honours a conditional PUT
        // (Garage ignores `If-None-Match`), so the write-once claim alone
        // would not see a copy that comes after; where it is honoured it
        // also closes the window between the two for copies delivered at
        // the same moment.
        let claim = match shared.storage.exists_plain(&claim_key).await {
            Ok(true) => Ok(false),
            Ok(false) => {
                markers::put(
                    &shared.storage,
                    &claim_key,
                    "nonce",
                    request.job_id(),
                    tenant,
                    key,
                    shared.config.worker.segment_bytes,
                )
                .await
            }
            Err(e) => Err(e),
        };
        match claim {
            Ok(true) => {}
            // Claimed before, and this is the broker handing the same
            // delivery back (retried, or its worker died): done work is
            // only announced again (nothing is redone, a purge above all);
            // unfinished work runs again, idempotently.
            Ok(false) if r.delivery.redelivered => {
                match shared
                    .storage
                    .exists_plain(&markers::spent(tenant, nonce))
                    .await
                {
                    Ok(true) => return already_done(request),
                    Ok(false) => {}
                    Err(e) => return outcome::storage_outcome(e),
                }
            }
            Ok(false) => {
                return Outcome::refused(
                    Reason::Replayed,
                    "this message's nonce was already claimed",
                );
            }
            Err(e) => return outcome::storage_outcome(e),
        }
    }
    match request {
        Request::Process(job) => {
            let ctx = process_job::Context {
                job,
                stopper,
                attribution: &r.attribution,
                known: r.known.clone(),
            };
            process_job::run(shared, channels, ctx).await
        }
        Request::Purge(p) => purge::run(shared, channels, p).await,
        Request::Lift(l) => control::lift(shared, channels, l).await,
        Request::Cancel(c) => control::record(shared, channels, c, &r.delivery.data).await,
    }
}

/// The completion of a request whose work is done, for a redelivery of it.
fn already_done(request: &Request) -> Outcome {
    match request {
        Request::Process(j) => Outcome::Done {
            manifest: format!("{}manifest.json", j.output_prefix),
            duplicate: true,
        },
        Request::Purge(p) => Outcome::Purged {
            prefix: p.prefix.clone(),
            report: Default::default(),
        },
        Request::Lift(l) => Outcome::Lifted {
            prefix: l.prefix.clone(),
        },
        Request::Cancel(_) => Outcome::CancelRecorded,
    }
}

/// Records that `request` had its effect: a redelivery of it only
/// announces it again (its claim already refuses copies).
pub(crate) async fn spent(shared: &Shared, request: &Request, key: &crate::crypto::Key) {
    let stamp = request.stamp();
    let marker = markers::spent(request.tenant(), &stamp.nonce);
    if let Err(e) = markers::put(
        &shared.storage,
        &marker,
        "spent",
        request.job_id(),
        request.tenant(),
        key,
        shared.config.worker.segment_bytes,
    )
    .await
    {
        // The work is done and copies are refused by the claim; only a
        // broker redelivery would redo it (idempotently).
        warn!(error = %e, "could not record a message's effect");
    }
}

/// Publishes the delivery's event, acknowledges it, and counts it.
async fn settle(
    shared: &Shared,
    channels: &Channels,
    r: Received,
    outcome: Outcome,
    began: Instant,
) {
    let m = &shared.metrics;
    let (kind, label) = (r.kind(), outcome.label());
    // Tasks of a process job that did not complete count as failed.
    if let Ok(Request::Process(job)) = &r.request
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
    outcome::settle(
        shared,
        channels,
        Settle {
            delivery: &r.delivery,
            job_id: r.job_id(),
            attribution: &r.attribution,
        },
        outcome,
    )
    .await;
    if !channels.all_open() {
        channels.broken.notify_one();
    }
    m.touch();
    m.jobs.with_label_values(&[kind, label]).inc();
    m.job_seconds
        .with_label_values(&[kind, label])
        .observe(began.elapsed().as_secs_f64());
}
