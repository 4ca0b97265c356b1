//! The `tracing` subscriber: diagnostics on stderr, as text or JSON, every
//! event passed through [`crate::scrub`] first (fields off the allowlist
//! dropped, identifiers pseudonymised, free text scrubbed), and a panic hook
//! that does the same to panic messages.

use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{LogConfig, LogFormat};
use crate::scrub::Scrubber;

/// Installs the global subscriber and the panic hook. `RUST_LOG`, when set,
/// wins over the config so an operator can raise verbosity without editing
/// files.
pub fn init(log: &LogConfig) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_new(&log.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let layer = ScrubLayer {
        scrubber: Scrubber::new(),
        json: log.format == LogFormat::Json,
    };
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
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
    }));
}

/// Formats events itself, so nothing reaches stderr unscrubbed.
struct ScrubLayer {
    scrubber: Scrubber,
    json: bool,
}

#[derive(Default)]
struct Fields(Vec<(&'static str, String)>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name(), value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name(), format!("{value:?}")));
    }
}

impl<S: Subscriber> Layer<S> for ScrubLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let kept: Vec<(&str, String)> = fields
            .0
            .into_iter()
            .filter_map(|(name, value)| self.scrubber.field(name, &value).map(|v| (name, v)))
            .collect();
        let mut time = String::new();
        let _ = SystemTime.format_time(&mut Writer::new(&mut time));
        let level = event.metadata().level().as_str();
        let line = if self.json {
            let mut map = serde_json::Map::new();
            map.insert("timestamp".into(), time.into());
            map.insert("level".into(), level.into());
            map.insert("target".into(), event.metadata().target().into());
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
                line.push_str(&format!(" {k}={v}"));
            }
            line
        };
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}
