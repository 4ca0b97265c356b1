//! The daemon's Prometheus metrics, in their own registry.
//!
//! Every label takes its values from a fixed set written in this crate
//! (outcomes, task and stage names, output formats, reason codes), never from
//! a job: no tenant, job, object key or file name can become a series, and
//! the number of series is bounded whatever the traffic. Usage (clip
//! durations, output formats) is only ever counted in aggregate (privacy
//! policy P6). `docs/metrics.md` lists them; a test keeps the two in step.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

/// Values the `stage` label takes.
pub const STAGES: &[&str] = &[
    "verify", "fetch", "probe", "decode", "scenes", "captions", "autocut", "render", "upload",
    "purge",
];

/// Values the `format` label of `monteur_outputs_total` takes; anything else
/// counts as `other`.
pub const FORMATS: &[&str] = &[
    "mp4", "srt", "vtt", "json", "otio", "edl", "fcpxml", "other",
];

/// The worker's metrics. Cheap to clone (the collectors are shared).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Jobs by kind (`process`, `purge`, `invalid`) and outcome.
    pub jobs: IntCounterVec,
    /// Delivery to acknowledgement, by kind and outcome.
    pub job_seconds: HistogramVec,
    /// Tasks of process jobs by task and outcome (`done`, `skipped`, `failed`).
    pub tasks: IntCounterVec,
    pub stage_seconds: HistogramVec,
    /// Publish (the message's AMQP timestamp) to delivery.
    pub queue_wait: Histogram,
    /// Frames analysed by kernel backend, frames rendered by encoder.
    pub frames_analysed: IntCounterVec,
    pub frames_rendered: IntCounterVec,
    /// Object bytes read from and plaintext bytes written to storage.
    pub input_bytes: IntCounter,
    pub output_bytes: IntCounter,
    /// Inputs' durations: usage in aggregate.
    pub clip_seconds: Histogram,
    pub outputs: IntCounterVec,
    /// Refusals by reason code (the codes are a fixed set).
    pub dead_letters: IntCounterVec,
    pub purged_objects: IntCounter,
    pub purged_uploads: IntCounter,
    pub audit_events: IntCounterVec,
    pub in_flight: IntGauge,
    pub capacity: IntGauge,
    /// Usable CUDA devices found at start (0: kernels run on the CPU).
    pub gpu_devices: IntGauge,
    /// Jobs running on a GPU now.
    pub gpu_jobs: IntGauge,
    pub broker_connected: IntGauge,
    pub reconnects: IntCounter,
    /// Unix time of the last sign of life from a running job (a decode
    /// progress report, or a job's end): a consumer holding jobs while this
    /// stands still is stalled.
    pub last_progress: IntGauge,
    pub build: IntGaugeVec,
}

fn seconds_buckets() -> Vec<f64> {
    vec![
        0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0,
    ]
}

impl Metrics {
    pub fn new(capacity: u16) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?;
            registry.register(Box::new(h.clone()))?;
            Ok::<_, prometheus::Error>(h)
        };
        let histogram_vec = |name: &str, help: &str, labels: &[&str]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(seconds_buckets()),
                labels,
            )?;
            registry.register(Box::new(h.clone()))?;
            Ok::<_, prometheus::Error>(h)
        };
        let m = Self {
            jobs: counter_vec(
                "monteur_jobs_total",
                "Job deliveries handled, by kind and outcome.",
                &["kind", "outcome"],
            )?,
            job_seconds: histogram_vec(
                "monteur_job_duration_seconds",
                "Time from delivery to acknowledgement, by kind and outcome.",
                &["kind", "outcome"],
            )?,
            tasks: counter_vec(
                "monteur_tasks_total",
                "Tasks of process jobs, by task and outcome.",
                &["task", "outcome"],
            )?,
            stage_seconds: histogram_vec(
                "monteur_stage_duration_seconds",
                "Time spent in each stage of a job.",
                &["stage"],
            )?,
            queue_wait: histogram(
                "monteur_queue_wait_seconds",
                "Time from publication (the message's timestamp) to delivery.",
                seconds_buckets(),
            )?,
            frames_analysed: counter_vec(
                "monteur_frames_analysed_total",
                "Video frames decoded and analysed, by kernel backend.",
                &["backend"],
            )?,
            frames_rendered: counter_vec(
                "monteur_frames_rendered_total",
                "Video frames rendered, by encoder.",
                &["encoder"],
            )?,
            input_bytes: counter(
                "monteur_input_bytes_total",
                "Bytes of input objects read from storage.",
            )?,
            output_bytes: counter(
                "monteur_output_bytes_total",
                "Plaintext bytes of artifacts written to storage.",
            )?,
            clip_seconds: histogram(
                "monteur_clip_duration_seconds",
                "Duration of the inputs of completed jobs.",
                vec![
                    5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
                ],
            )?,
            outputs: counter_vec(
                "monteur_outputs_total",
                "Artifacts written, by format.",
                &["format"],
            )?,
            dead_letters: counter_vec(
                "monteur_dead_letters_total",
                "Jobs refused and dead-lettered, by reason code.",
                &["reason"],
            )?,
            purged_objects: counter(
                "monteur_purged_objects_total",
                "Objects deleted by purge jobs.",
            )?,
            purged_uploads: counter(
                "monteur_purged_uploads_total",
                "Unfinished multipart uploads aborted by purge jobs.",
            )?,
            audit_events: counter_vec(
                "monteur_audit_events_total",
                "Audit events confirmed by the audit sink, by action.",
                &["action"],
            )?,
            in_flight: gauge("monteur_jobs_in_flight", "Jobs being worked on.")?,
            capacity: gauge(
                "monteur_jobs_capacity",
                "Jobs this worker takes at once (its prefetch).",
            )?,
            gpu_devices: gauge(
                "monteur_gpu_devices",
                "Usable CUDA devices found at start (0: the CPU runs the kernels).",
            )?,
            gpu_jobs: gauge("monteur_gpu_jobs_in_flight", "Jobs running on a GPU now.")?,
            broker_connected: gauge(
                "monteur_broker_connected",
                "1 while consuming from the broker.",
            )?,
            reconnects: counter(
                "monteur_broker_reconnects_total",
                "Broker connections re-established after a loss.",
            )?,
            last_progress: gauge(
                "monteur_last_progress_timestamp_seconds",
                "Unix time of the last progress report or job end.",
            )?,
            build: {
                let g = IntGaugeVec::new(
                    Opts::new("monteur_build_info", "The running build (always 1)."),
                    &["version"],
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            registry,
        };
        m.capacity.set(i64::from(capacity));
        m.build
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        m.touch();
        Ok(m)
    }

    /// A registry with a sample in every family (label vectors show up only
    /// once used): what the worker can expose, for checking the docs, the
    /// alert rules and the dashboard against it.
    pub fn with_every_family() -> Result<Self, prometheus::Error> {
        let m = Self::new(1)?;
        m.jobs.with_label_values(&["process", "completed"]).inc();
        m.job_seconds
            .with_label_values(&["process", "completed"])
            .observe(1.0);
        m.tasks.with_label_values(&["scenes", "done"]).inc();
        m.stage("decode", 1.0);
        m.frames_analysed.with_label_values(&["cpu"]).inc();
        m.frames_rendered.with_label_values(&["x264enc"]).inc();
        m.output("render.mp4");
        m.dead_letters.with_label_values(&["bad_media"]).inc();
        m.audit_events.with_label_values(&["key.use"]).inc();
        Ok(m)
    }

    /// Records a sign of life for the stalled-consumer alert.
    pub fn touch(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        self.last_progress.set(now);
    }

    pub fn stage(&self, stage: &'static str, seconds: f64) {
        self.stage_seconds
            .with_label_values(&[stage])
            .observe(seconds);
    }

    /// Counts one artifact by its file name's extension (a fixed set).
    pub fn output(&self, file_name: &str) {
        let ext = file_name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        let format = FORMATS
            .iter()
            .find(|f| **f == ext)
            .copied()
            .unwrap_or("other");
        self.outputs.with_label_values(&[format]).inc();
    }

    /// Stages, tasks, frames and usage of a finished process job.
    pub fn record_process(&self, o: &crate::ProcessOutcome) {
        for s in &o.stages {
            self.stage(s.stage, s.seconds);
        }
        for t in &o.tasks {
            let outcome = match t.status {
                crate::process::TaskStatus::Done { .. } => "done",
                crate::process::TaskStatus::Skipped { .. } => "skipped",
            };
            // Task names come from the fixed set in `tasks`.
            if let Some(task) = crate::Task::ALL.into_iter().find(|k| k.name() == t.task) {
                self.tasks.with_label_values(&[task.name(), outcome]).inc();
            }
        }
        if let Some(backend) = o.backend {
            self.frames_analysed
                .with_label_values(&[backend])
                .inc_by(o.frames);
        }
        if let Some(r) = &o.render {
            self.frames_rendered
                .with_label_values(&[r.encoder])
                .inc_by(r.frames);
        }
        if let Some(d) = o.input.duration {
            self.clip_seconds.observe(d.as_secs_f64());
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_metric_is_documented() {
        let m = Metrics::with_every_family().unwrap();
        let text = String::from_utf8(m.render()).unwrap();
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/metrics.md"),
        )
        .unwrap();
        let mut names = 0;
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = line.split_whitespace().nth(2).unwrap();
            names += 1;
            assert!(
                doc.contains(&format!("`{name}`")),
                "{name} is not in docs/metrics.md"
            );
        }
        assert_eq!(names, 23);
    }

    #[test]
    fn output_formats_are_a_fixed_set() {
        let m = Metrics::new(1).unwrap();
        m.output("cutplan.otio");
        m.output("tenant-secret-name.xyz");
        m.output("noextension");
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains(r#"monteur_outputs_total{format="otio"} 1"#));
        assert!(text.contains(r#"monteur_outputs_total{format="other"} 2"#));
        assert!(!text.contains("xyz") && !text.contains("tenant-secret"));
    }
}
