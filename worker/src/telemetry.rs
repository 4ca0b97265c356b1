//! The `tracing` subscriber: diagnostics on stderr, as text or JSON, every
//! event passed through [`crate::scrub`] first (fields off the allowlist
//! dropped, identifiers pseudonymised, free text scrubbed); a panic hook that
//! does the same to panic messages and leaves a scrubbed crash report in
//! `diagnostics.dir`; and the retention sweep that deletes such files once
//! they are older than `diagnostics.retention_days` (privacy policy P5).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime as Clock};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{DiagnosticsConfig, LogConfig, LogFormat};
use crate::scrub::{Scrubber, scrub_text};

/// Installs the global subscriber and the panic hook, and applies the
/// retention limit to the diagnostics folder once. `RUST_LOG`, when set,
/// wins over the config so an operator can raise verbosity without editing
/// files.
pub fn init(log: &LogConfig, diagnostics: &DiagnosticsConfig) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_new(&log.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let layer = ScrubLayer::new(
        Scrubber::new(diagnostics.pseudonym_rotation_s),
        log.format == LogFormat::Json,
        std::io::stderr,
    );
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
    let crash_dir = diagnostics_dir(diagnostics);
    std::panic::set_hook(Box::new(move |info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        // The message goes through the scrubbing layer like any other.
        tracing::error!("panic at {at}: {payload}");
        if let Some(dir) = &crash_dir {
            match write_crash_report(dir, &at, &payload) {
                Ok(()) => {}
                Err(e) => tracing::error!(error = %e, "could not write the crash report"),
            }
        }
    }));
    if let Some(dir) = diagnostics_dir(diagnostics) {
        sweep_expired(&dir, diagnostics.retention());
    }
}

fn diagnostics_dir(d: &DiagnosticsConfig) -> Option<PathBuf> {
    (!d.dir.is_empty()).then(|| PathBuf::from(&d.dir))
}

/// `crash-<unix ms>-<pid>.json`: what panicked and where, scrubbed, with no
/// backtrace (its frames would name the job's data only through arguments
/// we cannot see, so it stays out).
fn write_crash_report(dir: &Path, at: &str, payload: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let report = serde_json::json!({
        "schema": "monteur.crash.v1",
        "unix_ms": now.as_millis() as u64,
        "version": env!("CARGO_PKG_VERSION"),
        "thread": std::thread::current().name().map(scrub_text),
        "location": scrub_text(at),
        "message": scrub_text(payload),
    });
    let name = format!("crash-{}-{}.json", now.as_millis(), std::process::id());
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, report.to_string())?;
    std::fs::rename(&tmp, dir.join(name))
}

/// Deletes the files in `dir` last modified more than `max_age` ago; returns
/// how many went. Unreadable entries are left and reported.
pub fn sweep_expired(dir: &Path, max_age: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for e in entries.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if age > max_age {
            match std::fs::remove_file(e.path()) {
                Ok(()) => removed += 1,
                Err(err) => {
                    tracing::warn!(error = %err, "could not delete an expired diagnostic file")
                }
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, "expired diagnostic files deleted");
    }
    removed
}

/// Formats events itself, so nothing reaches its writer unscrubbed.
pub struct ScrubLayer<W> {
    scrubber: Scrubber,
    json: bool,
    writer: W,
}

impl<W> std::fmt::Debug for ScrubLayer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrubLayer")
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

impl<W> ScrubLayer<W> {
    /// One event's line, scrubbed: fields off the allowlist dropped,
    /// identifiers pseudonymised, text scrubbed. Public for the telemetry
    /// benchmark, which replays a real job's events through it.
    pub fn line(&self, level: &str, target: &str, fields: Vec<(&'static str, String)>) -> String {
        let kept: Vec<(&str, String)> = fields
            .into_iter()
            .filter_map(|(name, value)| self.scrubber.field(name, &value).map(|v| (name, v)))
            .collect();
        let mut time = String::new();
        let _ = Clock.format_time(&mut Writer::new(&mut time));
        if self.json {
            let mut map = serde_json::Map::new();
            map.insert("timestamp".into(), time.into());
            map.insert("level".into(), level.into());
            map.insert("target".into(), target.into());
            for (k, v) in kept {
                map.insert(k.into(), v.into());
            }
            serde_json::Value::Object(map).to_string()
        } else {
            let mut line = format!("{time} {level:>5}");
            if let Some((_, m)) = kept.iter().find(|(k, _)| *k == "message") {
                line.push(' ');
                line.push_str(m);
            }
            for (k, v) in kept.iter().filter(|(k, _)| *k != "message") {
                let _ = write!(line, " {k}={v}");
            }
            line
        }
    }

    /// A layer writing one line per event to what `writer` makes (stderr in
    /// the daemon, a sink in the telemetry benchmark).
    pub fn new(scrubber: Scrubber, json: bool, writer: W) -> Self {
        Self {
            scrubber,
            json,
            writer,
        }
    }
}

/// An event's fields as text, in the order recorded: what [`ScrubLayer::line`]
/// takes (the telemetry benchmark records a real job's events with it).
#[derive(Debug, Default)]
pub struct EventFields(pub Vec<(&'static str, String)>);

impl Visit for EventFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name(), value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name(), format!("{value:?}")));
    }
}

impl<S: Subscriber, W: for<'w> MakeWriter<'w> + 'static> Layer<S> for ScrubLayer<W> {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = EventFields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let line = self.line(meta.level().as_str(), meta.target(), fields.0);
        let mut line = line;
        line.push('\n');
        // One write per line, so lines of concurrent events never interleave.
        let _ = self.writer.make_writer().write_all(line.as_bytes());
    }
}
