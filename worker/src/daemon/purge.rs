//! A purge job: delete every artifact under a tenant's or project's prefix,
//! unfinished uploads included, announced to the audit sink before the first
//! deletion and recorded there after the last.

use std::sync::Arc;

use super::Shared;
use super::outcome::Outcome;
use super::session::Channels;
use crate::audit::{Action, AuditEvent};
use crate::job::Purge;
use crate::reason::Reason;

pub(crate) async fn run(shared: &Arc<Shared>, channels: &Channels, purge: &Purge) -> Outcome {
    let record = |action| AuditEvent {
        prefix: Some(&purge.prefix),
        ..AuditEvent::new(action, &shared.actor, &purge.tenant, &purge.job_id)
    };
    if let Err(e) = shared.audit(channels, &record(Action::PurgeStarted)).await {
        return Outcome::Retry {
            detail: format!("audit sink: {e}"),
        };
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
                ..record(Action::PurgeCompleted)
            };
            match shared.audit(channels, &done).await {
                Ok(()) => Outcome::Purged {
                    prefix: purge.prefix.clone(),
                    report,
                },
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
