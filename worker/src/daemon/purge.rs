//! A purge job: delete every artifact under a tenant's or project's prefix,
//! unfinished uploads and older versions included, announced to the audit
//! sink before the first deletion and recorded there after the last. A
//! tombstone goes down before anything is deleted, so a job running at the
//! same time, or replayed later, writes nothing under the prefix (until an
//! audited lift).

use std::sync::Arc;

use super::outcome::Outcome;
use super::session::Channels;
use super::{Shared, markers};
use crate::audit::{Action, AuditEvent};
use crate::crypto::KeyProvider;
use crate::job::{Purge, Request};
use crate::reason::Reason;

pub(crate) async fn run(shared: &Arc<Shared>, channels: &Channels, purge: &Purge) -> Outcome {
    let record = |action| AuditEvent {
        prefix: Some(&purge.prefix),
        ..AuditEvent::new(action, &shared.actor, &purge.tenant, &purge.job_id)
    };
    let Ok(key) = shared.keys.active_key(&purge.tenant) else {
        return Outcome::refused(Reason::UnknownTenantKey, "no active key for this tenant");
    };
    if let Err(e) = shared.audit(channels, &record(Action::PurgeStarted)).await {
        return Outcome::Retry {
            detail: format!("audit sink: {e}"),
        };
    }
    if let Err(e) = markers::put(
        &shared.storage,
        &markers::tombstone(&purge.tenant, &purge.prefix),
        "tombstone",
        &purge.job_id,
        &purge.tenant,
        key,
        shared.config.worker.segment_bytes,
    )
    .await
    {
        return super::outcome::storage_outcome(e);
    }
    let started = std::time::Instant::now();
    let result = shared.storage.purge_prefix(&purge.prefix).await;
    shared
        .metrics
        .stage("purge", started.elapsed().as_secs_f64());
    match result {
        Ok(report) => {
            shared.metrics.purged_objects.inc_by(report.objects);
            shared.metrics.purged_uploads.inc_by(report.uploads);
            let done = AuditEvent {
                objects_deleted: Some(report.objects),
                uploads_aborted: Some(report.uploads),
                versions_deleted: report.versions,
                ..record(Action::PurgeCompleted)
            };
            match shared.audit(channels, &done).await {
                Ok(()) => {
                    super::spent(shared, &Request::Purge(purge.clone()), key).await;
                    Outcome::Purged {
                        prefix: purge.prefix.clone(),
                        report,
                    }
                }
                // Redone on redelivery: a purge is idempotent.
                Err(e) => Outcome::Retry {
                    detail: format!("audit sink: {e}"),
                },
            }
        }
        Err(e) => {
            let text = e.to_string();
            let failed = AuditEvent {
                error: Some(&text),
                ..record(Action::PurgeFailed)
            };
            let _ = shared.audit(channels, &failed).await;
            if e.is_permanent() {
                Outcome::refused(Reason::PurgeRefused, text)
            } else {
                Outcome::Retry { detail: text }
            }
        }
    }
}
