//! What the worker's telemetry costs per job, against the job itself, in
//! one run:
//!
//! 1. a real job (`run_process`, scenes + autocut on the 2 s fixture clip,
//!    in-process, best of 3) with a layer that records every event it logs;
//! 2. that job's telemetry, replayed many times: its events through the
//!    scrubbing formatter (allowlist, pseudonyms, free-text rules, with the
//!    job's identifiers registered for redaction) into a sink, and the
//!    metric updates the daemon makes for one job (`record_process` on the
//!    job's real outcome, plus the per-delivery counters);
//! 3. one `/metrics` exposition after it (a scrape, every 15 s in the fleet).
//!
//! The telemetry's share of the job is the figure; the same events through
//! `tracing_subscriber`'s own formatter (no scrubbing) are the peer.
//!
//! Run: `cargo bench -p monteur-benches --bench telemetry`

#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use monteur_tests::fixtures;
use monteur_worker::metrics::Metrics;
use monteur_worker::scrub::{KnownIdentifiers, Scrubber};
use monteur_worker::telemetry::{EventFields, ScrubLayer};
use monteur_worker::{Config, Engine, Run, TaskSet, progress::Silent, run_process};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};

const REPLAYS: usize = 20_000;

/// One logged event: level, target and fields as text.
type Recorded = (String, String, Vec<(&'static str, String)>);

/// Keeps every event of the job.
struct Recorder(Arc<Mutex<Vec<Recorded>>>);

impl<S: tracing::Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut f = EventFields::default();
        event.record(&mut f);
        let m = event.metadata();
        if let Ok(mut all) = self.0.lock() {
            all.push((m.level().to_string(), m.target().to_string(), f.0));
        }
    }
}

fn main() -> ExitCode {
    monteur_benches::finish(run())
}

fn run() -> Result<(), String> {
    let input = fixtures::path("inputs/testsrc.mkv");
    let tasks: TaskSet = "scenes,autocut".parse().map_err(|e| format!("{e}"))?;
    let config = Config::load(None, std::env::vars()).map_err(|e| e.to_string())?;
    let engine = Engine::new(config).map_err(|e| e.to_string())?;
    let out = tempfile::tempdir().map_err(|e| e.to_string())?;
    let run = Run::file(&engine, &input, out.path(), tasks);

    // 1. The job, its events recorded. The first run warms caches.
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let mut best = f64::MAX;
    let mut outcome = None;
    for _ in 0..3 {
        if let Ok(mut r) = recorded.lock() {
            r.clear();
        }
        let subscriber = tracing_subscriber::registry().with(Recorder(recorded.clone()));
        let started = Instant::now();
        let o = tracing::subscriber::with_default(subscriber, || {
            run_process(&engine, &run, &mut Silent)
        })
        .map_err(|e| e.to_string())?;
        best = best.min(started.elapsed().as_secs_f64());
        outcome = Some(o);
    }
    let outcome = outcome.ok_or("no run")?;
    let mut events = recorded.lock().map_err(|e| e.to_string())?.clone();
    // The daemon's own lines around the job.
    events.push((
        "INFO".into(),
        "monteur_worker::daemon".into(),
        vec![
            ("message", "job completed".into()),
            ("job_id", "job-7f3e2a".into()),
            ("duplicate", "false".into()),
        ],
    ));

    // 2. The job's telemetry, replayed.
    let layer = ScrubLayer::new(Scrubber::new(86_400), false, std::io::sink);
    let metrics = Metrics::new(1).map_err(|e| e.to_string())?;
    let started = Instant::now();
    for _ in 0..REPLAYS {
        let known = KnownIdentifiers::register([
            "job-7f3e2a",
            "acme",
            "tenants/acme/projects/p1/in/talk.mp4",
            "tenants/acme/projects/p1/out/job-7f3e2a/",
        ]);
        for (level, target, fields) in &events {
            let line = layer.line(level, target, fields.clone());
            std::hint::black_box(line);
        }
        drop(known);
        metrics.in_flight.inc();
        metrics.queue_wait.observe(0.5);
        metrics.stage("verify", 0.0001);
        metrics.stage("fetch", 0.01);
        metrics.record_process(&outcome);
        for name in ["scenes.json", "cutplan.json", "cutplan.otio", "cutplan.edl"] {
            metrics.output(name);
        }
        metrics.output_bytes.inc_by(40_000);
        metrics.input_bytes.inc_by(31_048);
        metrics.stage("upload", 0.05);
        metrics.audit_events.with_label_values(&["key.use"]).inc();
        metrics.in_flight.dec();
        metrics.touch();
        metrics
            .jobs
            .with_label_values(&["process", "completed"])
            .inc();
        metrics
            .job_seconds
            .with_label_values(&["process", "completed"])
            .observe(best);
    }
    let per_job = started.elapsed().as_secs_f64() / REPLAYS as f64;

    // The peer: the same events through tracing_subscriber's formatter,
    // without scrubbing (fields re-emitted as one message).
    let plain = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .with_ansi(false)
        .finish();
    let started = Instant::now();
    tracing::subscriber::with_default(plain, || {
        for _ in 0..REPLAYS {
            for (_, _, fields) in &events {
                let text: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                tracing::info!(fields = text.join(" ").as_str(), "event");
            }
        }
    });
    let plain_per_job = started.elapsed().as_secs_f64() / REPLAYS as f64;

    // 3. One scrape.
    let started = Instant::now();
    let mut bytes = 0;
    for _ in 0..1000 {
        bytes = metrics.render().len();
    }
    let scrape = started.elapsed().as_secs_f64() / 1000.0;

    println!("telemetry per job (2 s clip, scenes + autocut)");
    println!("  job itself (best of 3)         {:>10.1} ms", best * 1e3);
    println!("  events logged per job          {:>10}", events.len());
    println!(
        "  telemetry per job              {:>10.1} us  = {:.4}% of the job",
        per_job * 1e6,
        per_job / best * 100.0
    );
    println!(
        "  same events, unscrubbed fmt    {:>10.1} us  (scrubbed/plain = {:.2}x)",
        plain_per_job * 1e6,
        per_job / plain_per_job
    );
    println!(
        "  one /metrics scrape            {:>10.1} us  ({bytes} bytes)",
        scrape * 1e6
    );
    Ok(())
}
