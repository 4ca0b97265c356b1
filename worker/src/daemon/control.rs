//! Cancels. A producer sends a signed `monteur.cancel.v1` to the cancel
//! queue; the one worker that takes it records it (an audit record, then a
//! write-once marker under the tenant's prefix, so a delivery of the job that
//! comes later, to any worker, is dropped before it starts) and broadcasts
//! the message as sent on the control exchange. Every worker hears the
//! broadcast on a queue of its own and stops the job if it holds it,
//! running or waiting for a slot. A cancel for a job nobody holds only
//! leaves its marker: harmless. A lift (`monteur.lift.v2`, signed with a
//! purge key) removes a purge's tombstone, audited.

use std::sync::Arc;

use super::Shared;
use super::markers;
use super::outcome::Outcome;
use super::session::Channels;
use crate::audit::{Action, AuditEvent};
use crate::crypto::KeyProvider;
use crate::job::{CancelJob, Lift, Request};
use crate::reason::Reason;

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
    // Client mode always: workers look for it with a plain HEAD, before
    // they touch the job's key.
    if let Err(e) = markers::put(
        &shared.storage,
        &markers::cancel(&cancel.tenant, &cancel.job_id),
        "cancel",
        &cancel.job_id,
        &cancel.tenant,
        key,
        shared.config.worker.segment_bytes,
    )
    .await
    {
        return super::outcome::storage_outcome(e);
    }
    match channels.broadcast(body).await {
        Ok(()) => Outcome::CancelRecorded,
        Err(e) => Outcome::Retry {
            detail: format!("control exchange: {e}"),
        },
    }
}

/// Allows writes again under a purged prefix: removes the purge's tombstone,
/// audited (`purge.lifted`) before it happens.
pub(crate) async fn lift(shared: &Arc<Shared>, channels: &Channels, lift: &Lift) -> Outcome {
    let Ok(key) = shared.keys.active_key(&lift.tenant) else {
        return Outcome::refused(Reason::UnknownTenantKey, "no active key for this tenant");
    };
    let audit = AuditEvent {
        prefix: Some(&lift.prefix),
        ..AuditEvent::new(
            Action::PurgeLifted,
            &shared.actor,
            &lift.tenant,
            &lift.job_id,
        )
    };
    if let Err(e) = shared.audit(channels, &audit).await {
        return Outcome::Retry {
            detail: format!("audit sink: {e}"),
        };
    }
    if let Err(e) = shared
        .storage
        .delete(&markers::tombstone(&lift.tenant, &lift.prefix))
        .await
    {
        return super::outcome::storage_outcome(e);
    }
    super::spent(shared, &Request::Lift(lift.clone()), key).await;
    Outcome::Lifted {
        prefix: lift.prefix.clone(),
    }
}
