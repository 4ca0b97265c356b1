//! A process job: the cancel marker and manifest checks, the audit record of
//! the key's use, the input opened for streaming, `run_process` on a blocking
//! thread under the job's stop signal, then the uploads and the manifest.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monteur_pipelines::{Cancel, Input};
use tokio::sync::watch;
use tracing::warn;

use super::markers;
use super::outcome::{Outcome, Stopper, storage_outcome};
use super::session::Channels;
use super::wire::{Attribution, Event, Kind, Manifest, ManifestEntry};
use super::{Shared, failpoints};
use crate::audit::{Action, AuditEvent};
use crate::crypto::KeyProvider;
use crate::job::Job;
use crate::process::{ProcessError, ProcessOutcome, Run, run_process};
use crate::progress::{JobProgress, ProgressReporter, decode_fraction};
use crate::reason::Reason;
use crate::scrub::KnownIdentifiers;
use crate::storage::{ObjectReader, Protection};

/// How long a stopped job's blocking work gets to notice before the job's
/// slot and scratch are taken back regardless (the acceptance bar is 2 s:
/// every loop of the pipelines looks at the stop signal at least every
/// 100 ms).
pub(crate) const STOP_GRACE: Duration = Duration::from_millis(1500);

/// How long an informational event (`started`, `progress`) may wait for the
/// broker's confirm before the job goes on without it.
const EVENT_WAIT: Duration = Duration::from_secs(2);

/// What the supervisor hands a process job.
pub(crate) struct Context<'a> {
    pub job: &'a Job,
    pub stopper: &'a Stopper,
    pub attribution: &'a Attribution,
    /// The job's identifiers, redacted from diagnostics for as long as any
    /// of its work runs (its blocking thread may outlive the job's slot by
    /// a moment).
    pub known: Option<Arc<KnownIdentifiers>>,
}

/// Runs one process job to its outcome.
pub(crate) async fn run(shared: &Arc<Shared>, channels: &Channels, ctx: Context<'_>) -> Outcome {
    let Context {
        job,
        stopper,
        attribution,
        known,
    } = ctx;
    let w = &shared.config.worker;
    // A cancel recorded before the job reached a worker: the marker is
    // written in client mode whatever the job's mode, so a plain HEAD finds it.
    let marker = markers::cancel(&job.tenant, &job.job_id);
    match shared.storage.exists_plain(&marker).await {
        Ok(true) => return Outcome::Cancelled,
        Ok(false) => {}
        Err(e) => return storage_outcome(e),
    }
    // Nothing is written under a purged prefix, from the first byte on; and
    // before the manifest is looked at, so a redelivery of a job that raced
    // a purge (or failed half-way) clears what it left instead of reporting
    // it done.
    match markers::under_tombstone(&shared.storage, &job.tenant, &job.output_prefix).await {
        Ok(true) => return purged(shared, job).await,
        Ok(false) => {}
        Err(e) => return storage_outcome(e),
    }
    let key = match shared.keys.active_key(&job.tenant) {
        Ok(k) => k,
        Err(_) => {
            return Outcome::refused(Reason::UnknownTenantKey, "no active key for this tenant");
        }
    };
    let p = Protection {
        mode: job.encryption,
        tenant: &job.tenant,
        key,
        segment_bytes: w.segment_bytes,
    };
    let manifest_key = format!("{}manifest.json", job.output_prefix);
    // Which key unwraps the input: read from its header, no key used yet.
    let input_key = match job.encryption {
        crate::job::Encryption::Client => match shared.storage.wrapping_key_id(&job.input).await {
            Ok(id) => Some(id),
            Err(e) => return storage_outcome(e),
        },
        crate::job::Encryption::SseC => None,
    };
    // No key is used before the audit sink has the record of it.
    let key_use = AuditEvent {
        key_id: Some(&key.id),
        input_key_id: Some(input_key.as_deref().unwrap_or(&key.id)),
        ..AuditEvent::new(Action::KeyUse, &shared.actor, &job.tenant, &job.job_id)
    };
    if let Err(e) = shared.audit(channels, &key_use).await {
        return Outcome::Retry {
            detail: format!("audit sink: {e}"),
        };
    }
    // Informational: a lost one changes nothing, and a slow broker (a
    // memory alarm) must not hold the job.
    let _ = tokio::time::timeout(
        EVENT_WAIT,
        channels.event(&Event::new(Kind::Started, Some(&job.job_id), attribution)),
    )
    .await;
    match shared.storage.exists(&manifest_key, p).await {
        Ok(true) => {
            super::spent(shared, &crate::job::Request::Process(job.clone()), key).await;
            return Outcome::Done {
                manifest: manifest_key,
                duplicate: true,
            };
        }
        Ok(false) => {}
        Err(e) => return storage_outcome(e),
    }
    let tasks = match job.task_set() {
        Ok(t) => t,
        Err(r) => return Outcome::refused(r.reason(), r.to_string()),
    };
    // The input is read in blocks by ranged GETs as the decoder asks for
    // them: memory stays bounded and no plaintext touches a disk.
    let fetching = Instant::now();
    let reader = match shared
        .storage
        .open_reader(
            &job.input,
            p,
            &shared.keys,
            w.max_input_bytes,
            &stopper.cancel,
        )
        .await
    {
        Ok(r) => Arc::new(r),
        Err(_) if stopper.cancel.is_cancelled() => return stopper.outcome(w.job_deadline_s),
        Err(e) => return storage_outcome(e),
    };
    failpoints::arm_reader(&reader, &job.job_id);
    shared
        .metrics
        .stage("fetch", fetching.elapsed().as_secs_f64());
    let scratch = match shared.scratch.job() {
        Ok(d) => d,
        Err(e) => {
            return Outcome::Retry {
                detail: format!("scratch space: {e}"),
            };
        }
    };
    let mut config = shared.engine.config().clone();
    apply_options(&mut config, job);
    let run = Run {
        config,
        input: Input::stream(reader.clone(), job.input.clone()),
        out_dir: scratch.path().to_path_buf(),
        tasks,
        cancel: stopper.cancel.clone(),
        allow_truncated: false,
    };
    let progress = Progress::new(shared, job, reader.clone());
    let (report, mut updates) = (progress.clone(), progress.updates());
    let outcome = {
        let work = blocking(shared, job, run, report, known);
        tokio::pin!(work);
        let every = Duration::from_secs_f64(w.progress_interval_s);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Only news is sent: a percent higher than the last one sent.
        let mut last = -1.0f64;
        loop {
            tokio::select! {
                r = &mut work => break r,
                _ = tick.tick() => {
                    let now = *updates.borrow_and_update();
                    if let Some((stage, percent)) = now
                        && percent > last
                    {
                        last = percent;
                        let e = Event {
                            stage: Some(stage),
                            percent: Some((percent * 10.0).round() / 10.0),
                            ..Event::new(Kind::Progress, Some(&job.job_id), attribution)
                        };
                        let _ = tokio::time::timeout(EVENT_WAIT, channels.event(&e)).await;
                    }
                }
            }
        }
    };
    shared.metrics.input_bytes.inc_by(reader.fetched());
    let (outcome, files) = match outcome {
        Ok(done) => done,
        // A stopped job's failure is its stop.
        Err(_) if stopper.why().is_some() => return stopper.outcome(w.job_deadline_s),
        Err(o) => return o,
    };
    if stopper.cancel.is_cancelled() {
        return stopper.outcome(w.job_deadline_s);
    }
    shared.metrics.record_process(&outcome);
    progress.stage("upload", 0.0);
    let uploading = Instant::now();
    let mut outputs = Vec::new();
    let result = async {
        for (i, f) in files.iter().enumerate() {
            let Some(name) = f.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            let key = format!("{}{name}", job.output_prefix);
            // Recorded before the write: a stop in the middle still knows
            // what to remove.
            stopper.uploading(&job.output_prefix, &key);
            let bytes = tokio::select! {
                r = shared.storage.put_file(&key, f, p, &stopper.cancel) => r?,
                () = cancelled(&stopper.cancel) => return Err(crate::storage::StorageError::Cancelled),
            };
            shared.metrics.output_bytes.inc_by(bytes);
            shared.metrics.output(&name);
            outputs.push(ManifestEntry { key, bytes });
            progress.stage("upload", (i + 1) as f64 / files.len().max(1) as f64);
        }
        Ok(())
    }
    .await;
    drop(scratch);
    if let Err(e) = result {
        return match stopper.why() {
            Some(_) => stopper.outcome(w.job_deadline_s),
            // Parts may already be up: under a purge, they go now.
            None => {
                match markers::under_tombstone(&shared.storage, &job.tenant, &job.output_prefix)
                    .await
                {
                    Ok(true) => purged(shared, job).await,
                    _ => storage_outcome(e),
                }
            }
        };
    }
    if stopper.why().is_some() {
        return stopper.outcome(w.job_deadline_s);
    }
    let manifest = Manifest {
        schema: "monteur.manifest.v1",
        job_id: job.job_id.clone(),
        outputs,
    };
    let body = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    // A purge that began while the job ran: what it wrote goes again, or the
    // purge would not stick.
    match markers::under_tombstone(&shared.storage, &job.tenant, &job.output_prefix).await {
        Ok(true) => return purged(shared, job).await,
        Ok(false) => {}
        Err(e) => return storage_outcome(e),
    }
    let result = shared.storage.put_once(&manifest_key, &body, p).await;
    shared
        .metrics
        .stage("upload", uploading.elapsed().as_secs_f64());
    match result {
        Ok(created) => {
            // The purge's tombstone lands before its first deletion: seen
            // now, it raced this job's last writes. Unknown counts as seen:
            // the job is retried, and its redelivery looks first.
            match markers::under_tombstone(&shared.storage, &job.tenant, &job.output_prefix).await {
                Ok(false) => {}
                Ok(true) => return purged(shared, job).await,
                Err(e) => {
                    return Outcome::Retry {
                        detail: format!("could not check for a purge after the manifest: {e}"),
                    };
                }
            }
            super::spent(shared, &crate::job::Request::Process(job.clone()), key).await;
            Outcome::Done {
                manifest: manifest_key,
                duplicate: !created,
            }
        }
        Err(e) => storage_outcome(e),
    }
}

/// A job whose output prefix a purge covers: whatever it, or an earlier
/// attempt of it, left there goes (unfinished uploads and older versions
/// included), then it is refused. A failed clean-up retries the job, whose
/// redelivery cleans again: a purged prefix ends empty.
async fn purged(shared: &Shared, job: &Job) -> Outcome {
    match shared.storage.purge_prefix(&job.output_prefix).await {
        Ok(_) => purged_prefix(),
        Err(e) => Outcome::Retry {
            detail: format!("clearing a purged output prefix: {e}"),
        },
    }
}

fn purged_prefix() -> Outcome {
    Outcome::refused(
        Reason::PurgedPrefix,
        "the output prefix was purged; nothing is written there until a lift",
    )
}

/// The outputs a cancelled or timed-out job had uploaded (or begun to)
/// before it was stopped are removed, and its unfinished multipart uploads
/// aborted: a job without a manifest leaves nothing. Runs after the job's
/// slot is free. A job handed back is redone by another worker over the
/// same keys, which must not be pulled from under it.
pub(crate) async fn discard(shared: &Shared, stopper: &Stopper) {
    if !matches!(
        stopper.why(),
        Some(super::outcome::Stop::Cancelled | super::outcome::Stop::Deadline)
    ) {
        return;
    }
    remove(shared, stopper).await;
}

/// Deletes what `stopper` recorded as written, and aborts unfinished
/// uploads under its prefix.
async fn remove(shared: &Shared, stopper: &Stopper) {
    let Some(uploads) = stopper.uploads() else {
        return;
    };
    for key in &uploads.keys {
        if let Err(e) = shared.storage.delete(key).await {
            warn!(error = %e, "could not remove an output of a stopped job");
        }
    }
    if let Err(e) = shared.storage.abort_uploads_under(&uploads.prefix).await {
        warn!(error = %e, "could not abort a stopped job's uploads");
    }
}

/// What a job's blocking part hands back.
type Done = (ProcessOutcome, Vec<PathBuf>);

/// `run_process` (after the `stage.hold` failpoint, in tests) on a blocking
/// thread, waited for until it ends or, once the job is stopped, for
/// [`STOP_GRACE`] more: a stopped job frees its slot in time even if a
/// foreign call (a decoder, an ONNX Runtime run) takes longer to return.
/// Its scratch folder goes when the caller drops it; writes after the stop
/// are refused by the output writer itself.
async fn blocking(
    shared: &Arc<Shared>,
    job: &Job,
    run: Run,
    progress: Progress,
    known: Option<Arc<KnownIdentifiers>>,
) -> Result<Done, Outcome> {
    let engine = Arc::clone(&shared.engine);
    let mut reporter = progress.clone();
    let job2 = job.clone();
    let cancel = run.cancel.clone();
    let gpu = (engine.kernels().name() == "cuda").then(|| GpuJob::new(&shared.metrics));
    let work = tokio::task::spawn_blocking(move || -> Result<Done, ProcessError> {
        let _known = known;
        failpoints::panic(&job2.job_id, || {
            format!(
                "cannot open {} for tenant {} ({})",
                job2.input, job2.tenant, job2.job_id
            )
        });
        if let Some(d) = failpoints::hold(&job2.job_id)
            && !hold(&run.cancel, d, &mut reporter)
        {
            return Err(monteur_pipelines::PipelineError::Cancelled.into());
        }
        let outcome = run_process(&engine, &run, &mut reporter)?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&run.out_dir)
            .map_err(|e| ProcessError::Output {
                path: run.out_dir.clone(),
                source: e,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        Ok((outcome, files))
    });
    tokio::pin!(work);
    let stopped = cancelled(&cancel);
    let result = tokio::select! {
        r = &mut work => r,
        () = stopped => match tokio::time::timeout(STOP_GRACE, &mut work).await {
            Ok(r) => r,
            Err(_) => {
                warn!("a stopped job's work did not return in time; its slot is freed anyway");
                drop(gpu);
                return Err(Outcome::HandBack);
            }
        },
    };
    drop(gpu);
    match result {
        // The panic hook has logged it, scrubbed, and written the crash
        // report; its text may name the job's data, so it stays out of the
        // dead-letter header.
        Err(_) => Err(Outcome::refused(
            Reason::WorkerPanic,
            "the job panicked; see the worker's crash report",
        )),
        Ok(Ok(done)) => Ok(done),
        Ok(Err(e)) => Err(failure(e, &progress)),
    }
}

/// The outcome of a failed `run_process`.
fn failure(e: ProcessError, progress: &Progress) -> Outcome {
    // A failed read says more than the decoder's error it caused.
    if let Some(f) = progress.reader.failure() {
        return storage_outcome(f);
    }
    if e.is_truncated() {
        return Outcome::refused(Reason::TruncatedInput, e.to_string());
    }
    if e.is_permanent() {
        return Outcome::refused(Reason::BadMedia, e.to_string());
    }
    Outcome::Retry {
        detail: e.to_string(),
    }
}

/// Resolves when `cancel` fires.
pub(crate) async fn cancelled(cancel: &Cancel) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    cancel.on_cancel(move || {
        let _ = tx.send(());
    });
    let _ = rx.await;
}

/// The `stage.hold` failpoint: sleeps `d`, reporting progress each second;
/// false when cancelled first.
fn hold(cancel: &Cancel, d: Duration, progress: &mut Progress) -> bool {
    let started = Instant::now();
    while started.elapsed() < d {
        progress.stage("hold", started.elapsed().as_secs_f64() / d.as_secs_f64());
        if !cancel.sleep(Duration::from_secs(1).min(d)) {
            return false;
        }
    }
    true
}

/// A job's progress: the overall percent for `progress` events, the
/// stalled-consumer signal, and (tests) the moment the decode starts.
#[derive(Clone)]
struct Progress {
    metrics: crate::metrics::Metrics,
    state: Arc<std::sync::Mutex<JobProgress>>,
    tx: Arc<watch::Sender<Option<(&'static str, f64)>>>,
    reader: Arc<ObjectReader>,
}

impl Progress {
    fn new(shared: &Shared, job: &Job, reader: Arc<ObjectReader>) -> Self {
        let mut state = JobProgress::default();
        if failpoints::hold(&job.job_id).is_some() {
            state = state.with_leading("hold");
        }
        Self {
            metrics: shared.metrics.clone(),
            state: Arc::new(std::sync::Mutex::new(state)),
            tx: Arc::new(watch::channel(None).0),
            reader,
        }
    }

    fn updates(&self) -> watch::Receiver<Option<(&'static str, f64)>> {
        self.tx.subscribe()
    }
}

impl ProgressReporter for Progress {
    fn update(&mut self, p: monteur_pipelines::Progress) {
        self.metrics.touch();
        if let Some(f) = decode_fraction(&p) {
            self.stage("decode", f);
        }
    }

    fn finish(&mut self) {
        self.metrics.touch();
    }

    fn plan(&mut self, stages: &[&'static str]) {
        failpoints::decoding(&self.reader);
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .plan(stages);
    }

    fn stage(&mut self, stage: &'static str, fraction: f64) {
        Progress::stage(self, stage, fraction);
    }
}

impl Progress {
    fn stage(&self, stage: &'static str, fraction: f64) {
        self.metrics.touch();
        let percent = self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .update(stage, fraction);
        self.tx.send_replace(Some((stage, percent)));
    }
}

/// Counts a job as running on the GPU for as long as it lives.
struct GpuJob(crate::metrics::Metrics);

impl GpuJob {
    fn new(m: &crate::metrics::Metrics) -> Self {
        m.gpu_jobs.inc();
        Self(m.clone())
    }
}

impl Drop for GpuJob {
    fn drop(&mut self) {
        self.0.gpu_jobs.dec();
    }
}

/// A job's options over the process's configuration, in the job's own copy.
fn apply_options(config: &mut crate::Config, job: &Job) {
    if let Some(l) = &job.options.language {
        config.captions.language = l.clone();
    }
    if let Some(t) = job.options.target_s {
        config.autocut.target_s = t;
    }
    if let Some(m) = job.options.autocut_mode {
        config.autocut.mode = m;
    }
    if let Some(d) = &job.options.drop {
        config.autocut.drop = d.clone();
    }
    if let Some(b) = job.options.burn_style {
        config.render.burn_style = b;
    }
    if let Some(b) = job.options.burn_captions {
        config.render.burn_captions = b;
    }
}
