//! Progress of a decode, shown as a bar on a terminal and as a log line every
//! tenth of the way otherwise (CI logs, pipes, the daemon).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use monteur_pipelines::Progress;
use tracing::info;

/// Receives progress updates from a running pipeline.
pub trait ProgressReporter {
    fn update(&mut self, p: Progress);
    fn finish(&mut self);
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
