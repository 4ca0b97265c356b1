//! Audit events: every use of a tenant's key, every purge and every cancel,
//! published with
//! publisher confirms to `worker.audit_exchange` (kept in
//! `worker.audit_queue`), a sink apart from the diagnostics (privacy policy
//! P10).
//!
//! Unlike diagnostics, audit events name the tenant, the job, the key id
//! and the purged prefix: an audit record that could not say who was
//! accessed would be useless. They never carry key material or footage.
//! The worker fails closed: no key is used and nothing is deleted unless the
//! broker has confirmed the event announcing it.

use serde::Serialize;

pub const AUDIT_SCHEMA: &str = "monteur.audit.v1";

/// What was done. The names are the routing keys and the `action` label of
/// `monteur_audit_events_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Action {
    /// A tenant key is about to decrypt an input and encrypt the outputs.
    #[serde(rename = "key.use")]
    KeyUse,
    #[serde(rename = "purge.started")]
    PurgeStarted,
    #[serde(rename = "purge.completed")]
    PurgeCompleted,
    #[serde(rename = "purge.failed")]
    PurgeFailed,
    /// A producer's cancel of a job was recorded (the marker that keeps it
    /// from ever running is written with the tenant's key).
    #[serde(rename = "job.cancel")]
    Cancel,
    /// Writes are allowed again under a purged prefix.
    #[serde(rename = "purge.lifted")]
    PurgeLifted,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::KeyUse => "key.use",
            Action::PurgeStarted => "purge.started",
            Action::PurgeCompleted => "purge.completed",
            Action::PurgeFailed => "purge.failed",
            Action::Cancel => "job.cancel",
            Action::PurgeLifted => "purge.lifted",
        }
    }
}

/// One audit record.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent<'a> {
    pub schema: &'static str,
    pub action: Action,
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// Which worker: the host (the pod's name in Kubernetes) and process.
    pub actor: &'a str,
    pub tenant: &'a str,
    pub job_id: &'a str,
    /// The key used: for a process job, the one outputs are encrypted with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<&'a str>,
    /// The key that unwraps a client-mode input's data key (an older key of
    /// the tenant's, perhaps), read from the input's header before any key
    /// is used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_key_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects_deleted: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uploads_aborted: Option<u64>,
    /// Absent where the store keeps no object versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub versions_deleted: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

impl<'a> AuditEvent<'a> {
    pub fn new(action: Action, actor: &'a str, tenant: &'a str, job_id: &'a str) -> Self {
        Self {
            schema: AUDIT_SCHEMA,
            action,
            at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            actor,
            tenant,
            job_id,
            key_id: None,
            input_key_id: None,
            prefix: None,
            objects_deleted: None,
            uploads_aborted: None,
            versions_deleted: None,
            error: None,
        }
    }
}

/// This worker's name in audit records: `<host>/<pid>`.
pub fn actor() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "unknown-host".into());
    format!("{host}/{}", std::process::id())
}
