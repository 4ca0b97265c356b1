//! Progress of a job: the stages it will run, how far each is, and the
//! decode's own position. The CLI shows the decode as a bar on a terminal
//! and as a log line every tenth of the way otherwise (CI logs, pipes); the
//! daemon turns the stages into `progress` events
//! ([`JobProgress`] for the overall percent).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use monteur_pipelines::Progress;
use tracing::info;

/// Receives progress updates from a running job.
pub trait ProgressReporter {
    /// The decode's position.
    fn update(&mut self, p: Progress);
    /// The decode ended.
    fn finish(&mut self);
    /// The stages the job will run, in order (before the first).
    fn plan(&mut self, _stages: &[&'static str]) {}
    /// `stage` is `fraction` (0 to 1) done.
    fn stage(&mut self, _stage: &'static str, _fraction: f64) {}
}

/// A job's overall percent from its stages' progress: each planned stage
/// weighs the same, and the percent never goes back (a stage reported late
/// or twice cannot lower it).
#[derive(Debug, Default, Clone)]
pub struct JobProgress {
    stages: Vec<&'static str>,
    /// Stages before the plan (the daemon's own) count too.
    extra: Vec<&'static str>,
    current: Option<&'static str>,
    percent: f64,
}

impl JobProgress {
    /// Adds `stage` before the planned ones (`fetch`, say).
    pub fn with_leading(mut self, stage: &'static str) -> Self {
        self.extra.push(stage);
        self
    }

    /// The stages the job's process runs; `upload` always follows them.
    pub fn plan(&mut self, stages: &[&'static str]) {
        self.stages = stages.to_vec();
    }

    /// Records `stage` at `fraction`; returns the overall percent.
    pub fn update(&mut self, stage: &'static str, fraction: f64) -> f64 {
        let order: Vec<&'static str> = self
            .extra
            .iter()
            .chain(self.stages.iter())
            .copied()
            .chain(std::iter::once("upload"))
            .collect();
        if let Some(i) = order.iter().position(|s| *s == stage) {
            let p = 100.0 * (i as f64 + fraction.clamp(0.0, 1.0)) / order.len() as f64;
            self.percent = self.percent.max(p);
            self.current = Some(stage);
        }
        self.percent
    }

    pub fn percent(&self) -> f64 {
        self.percent
    }

    pub fn stage(&self) -> Option<&'static str> {
        self.current
    }
}

/// Picks a bar when stderr is a terminal, log lines otherwise.
pub fn for_stderr() -> Box<dyn ProgressReporter> {
    if std::io::stderr().is_terminal() {
        Box::new(Bar::new())
    } else {
        Box::new(LogLines::default())
    }
}

/// A terminal progress bar over the input's duration.
#[derive(Debug)]
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    pub fn new() -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} analysing [{bar:30}] {percent:>3}% {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Self { bar }
    }
}

impl Default for Bar {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgressReporter for Bar {
    fn update(&mut self, p: Progress) {
        if let Some(total) = p.duration {
            self.bar.set_length(total.as_millis() as u64);
        }
        if let Some(pos) = p.position {
            self.bar.set_position(pos.as_millis() as u64);
        }
        self.bar.set_message(format!("{} frames", p.frames));
    }

    fn finish(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// The decode's share done, when the input's duration is known.
pub fn decode_fraction(p: &Progress) -> Option<f64> {
    let (pos, total) = (p.position?, p.duration?);
    (!total.is_zero()).then(|| (pos.as_secs_f64() / total.as_secs_f64()).clamp(0.0, 1.0))
}

/// Log lines at each tenth of the input's duration.
#[derive(Debug, Default)]
pub struct LogLines {
    last_tenth: Option<u64>,
}

impl ProgressReporter for LogLines {
    fn update(&mut self, p: Progress) {
        let (Some(pos), Some(total)) = (p.position, p.duration) else {
            return;
        };
        if total.is_zero() {
            return;
        }
        let tenth = ((pos.as_secs_f64() / total.as_secs_f64()) * 10.0).floor() as u64;
        let tenth = tenth.min(10);
        if self.last_tenth.is_none_or(|t| tenth > t) {
            self.last_tenth = Some(tenth);
            info!(percent = tenth * 10, frames = p.frames, "analysing");
        }
    }

    fn finish(&mut self) {}
}

/// Discards progress (tests, embedding).
#[derive(Debug, Default)]
pub struct Silent;

impl ProgressReporter for Silent {
    fn update(&mut self, _: Progress) {}
    fn finish(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_percent_follows_the_stages_and_never_goes_back() {
        let mut p = JobProgress::default().with_leading("hold");
        p.plan(&["decode", "scenes"]);
        assert_eq!(p.update("hold", 0.5), 12.5);
        assert_eq!(p.update("decode", 0.0), 25.0);
        assert_eq!(p.update("decode", 0.5), 37.5);
        assert_eq!(p.update("hold", 1.0), 37.5, "late reports do not lower it");
        assert_eq!(p.update("upload", 1.0), 100.0);
        assert_eq!(p.update("unknown", 0.1), 100.0);
    }
}
