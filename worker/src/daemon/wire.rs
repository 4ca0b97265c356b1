//! What the worker publishes and writes for producers: events
//! (`monteur.event.v1` on `worker.events_exchange`, routing key
//! `job.<event>`), the job manifest and the cancel marker. Documented in the
//! README with examples; changing a field is changing a contract.

use lapin::message::Delivery;
use serde::Serialize;

/// The producer's own handles on a message (AMQP `correlation_id` and
/// `message_id`), echoed in every event about it so even a message refused
/// before its signature checked out can be matched to what was sent.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Attribution {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

impl Attribution {
    /// The delivery's handles, cut to a sane length.
    pub fn of(d: &Delivery) -> Self {
        let short = |s: &str| s.chars().take(128).collect::<String>();
        Self {
            correlation_id: d
                .properties
                .correlation_id()
                .as_ref()
                .map(|s| short(s.as_str())),
            message_id: d
                .properties
                .message_id()
                .as_ref()
                .map(|s| short(s.as_str())),
        }
    }
}

/// The `event` of an [`Event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Started,
    Progress,
    Completed,
    Cancelled,
    Failed,
    Purged,
    Lifted,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Started => "started",
            Kind::Progress => "progress",
            Kind::Completed => "completed",
            Kind::Cancelled => "cancelled",
            Kind::Failed => "failed",
            Kind::Purged => "purged",
            Kind::Lifted => "lifted",
        }
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// One event about a job.
#[derive(Debug, Serialize)]
pub(crate) struct Event<'a> {
    pub schema: &'static str,
    pub event: Kind,
    pub job_id: Option<&'a str>,
    #[serde(flatten)]
    pub attribution: &'a Attribution,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    /// `progress`: the stage running and the job's overall percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// A purge's completion record: the prefix and what was removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects_deleted: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uploads_aborted: Option<u64>,
    /// Older versions and delete markers removed; absent where the store
    /// keeps no versions (Garage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub versions_deleted: Option<u64>,
}

impl<'a> Event<'a> {
    pub fn new(event: Kind, job_id: Option<&'a str>, attribution: &'a Attribution) -> Self {
        Self {
            schema: "monteur.event.v1",
            event,
            job_id,
            attribution,
            manifest: None,
            reason: None,
            stage: None,
            percent: None,
            prefix: None,
            objects_deleted: None,
            uploads_aborted: None,
            versions_deleted: None,
        }
    }
}

/// `manifest.json`, written last and write-once: a job is done when it
/// exists.
#[derive(Debug, Serialize)]
pub(crate) struct Manifest {
    pub schema: &'static str,
    pub job_id: String,
    pub outputs: Vec<ManifestEntry>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ManifestEntry {
    pub key: String,
    /// Plaintext size.
    pub bytes: u64,
}
