//! Cancels. A producer sends a signed `monteur.cancel.v1` to the cancel
//! queue; the one worker that takes it records it (an audit record, then a
//! write-once marker under the tenant's prefix, so a delivery of the job that
//! comes later, to any worker, is dropped before it starts) and broadcasts
//! the message as sent on the control exchange. Every worker hears the
//! broadcast on a queue of its own and stops the job if it holds it,
//! running or waiting for a slot. A cancel for a job nobody holds only
//! leaves its marker: harmless.

use std::sync::Arc;

use super::Shared;
use super::outcome::Outcome;
use super::session::Channels;
use super::wire::{CancelMarker, cancel_marker};
use crate::audit::{Action, AuditEvent};
use crate::crypto::KeyProvider;
use crate::job::{CancelJob, Encryption};
use crate::reason::Reason;
use crate::storage::Protection;

/// Records `cancel` and broadcasts `body` (the signed message) to every
/// worker.
pub(crate) async fn record(
    shared: &Arc<Shared>,
    channels: &Channels,
    cancel: &CancelJob,
    body: &[u8],
) -> Outcome {
    let Ok(key) = shared.keys.active_key(&cancel.tenant) else {
        return Outcome::refused(Reason::UnknownTenantKey, "no active key for this tenant");
    };
    let audit = AuditEvent {
        key_id: Some(&key.id),
        prefix: Some(&cancel.output_prefix),
        ..AuditEvent::new(
            Action::Cancel,
            &shared.actor,
            &cancel.tenant,
            &cancel.job_id,
        )
    };
    if let Err(e) = shared.audit(channels, &audit).await {
        return Outcome::Retry {
            detail: format!("audit sink: {e}"),
        };
    }
    let marker = CancelMarker {
        schema: "monteur.cancelled.v1",
        job_id: &cancel.job_id,
        at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    };
    let body_json = serde_json::to_vec(&marker).unwrap_or_default();
    // Client mode always: workers look for it with a plain HEAD, before
    // they touch the job's key.
    let p = Protection {
        mode: Encryption::Client,
        key,
        segment_bytes: shared.config.worker.segment_bytes,
    };
    let key = cancel_marker(&cancel.tenant, &cancel.job_id);
    if let Err(e) = shared.storage.put_once(&key, &body_json, p).await {
        return super::outcome::storage_outcome(e);
    }
    match channels.broadcast(body).await {
        Ok(()) => Outcome::CancelRecorded,
        Err(e) => Outcome::Retry {
            detail: format!("control exchange: {e}"),
        },
    }
}
