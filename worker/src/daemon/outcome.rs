//! How a delivery ends, and what the worker does about it: one event, then
//! the acknowledgement that fits (ack, dead-letter with a reason, or back to
//! the queue).

use std::sync::{Arc, Mutex};

use lapin::message::Delivery;
use monteur_pipelines::Cancel;
use tracing::{info, warn};

use super::Shared;
use super::session::{self, Channels};
use super::wire::{Attribution, Event, Kind};
use crate::reason::Reason;
use crate::storage::{PurgeReport, StorageError};

/// How a delivery ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    Done {
        manifest: String,
        duplicate: bool,
    },
    Purged {
        prefix: String,
        report: PurgeReport,
    },
    /// A cancel recorded and broadcast.
    CancelRecorded,
    /// A purge's tombstone lifted.
    Lifted {
        prefix: String,
    },
    /// Dead-letter with this reason.
    Refused {
        reason: Reason,
        detail: String,
    },
    /// Hand back to the queue after a pause (the delivery limit bounds it).
    Retry {
        detail: String,
    },
    /// Stopped by its producer's cancel: no outputs, a `cancelled` event.
    Cancelled,
    /// Stopped by a shutdown or a lost connection: back to the queue at
    /// once, for another worker.
    HandBack,
}

impl Outcome {
    pub fn refused(reason: Reason, detail: impl Into<String>) -> Self {
        Outcome::Refused {
            reason,
            detail: detail.into(),
        }
    }

    /// The `outcome` label of `monteur_jobs_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Done {
                duplicate: true, ..
            } => "duplicate",
            Outcome::Done { .. }
            | Outcome::Purged { .. }
            | Outcome::CancelRecorded
            | Outcome::Lifted { .. } => "completed",
            Outcome::Refused { .. } => "refused",
            Outcome::Retry { .. } => "retried",
            Outcome::Cancelled => "cancelled",
            Outcome::HandBack => "handed_back",
        }
    }
}

/// Why a running job was stopped; the first reason given wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Its producer cancelled it.
    Cancelled,
    /// It ran past `worker.job_deadline_s`.
    Deadline,
    /// The worker is shutting down, or lost its broker connection.
    Shutdown,
}

/// A job's stop handle: the [`Cancel`] every stage watches, why it was
/// pulled, and what the job has put in storage so far (a stopped job's
/// uploads are removed after it, off its slot).
#[derive(Debug, Clone, Default)]
pub(crate) struct Stopper {
    pub cancel: Cancel,
    why: Arc<Mutex<Option<Stop>>>,
    uploads: Arc<Mutex<Option<Uploads>>>,
}

/// Objects a job has started to write: their prefix and keys.
#[derive(Debug, Clone, Default)]
pub(crate) struct Uploads {
    pub prefix: String,
    pub keys: Vec<String>,
}

impl Stopper {
    pub fn stop(&self, why: Stop) {
        {
            let mut w = self.why.lock().unwrap_or_else(|p| p.into_inner());
            if w.is_none() {
                *w = Some(why);
            }
        }
        self.cancel.cancel();
    }

    pub fn why(&self) -> Option<Stop> {
        *self.why.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records, before it is written, that `key` under `prefix` may exist.
    pub fn uploading(&self, prefix: &str, key: &str) {
        let mut u = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        let u = u.get_or_insert_with(|| Uploads {
            prefix: prefix.to_string(),
            keys: Vec::new(),
        });
        u.keys.push(key.to_string());
    }

    /// What the job may have written, if anything.
    pub fn uploads(&self) -> Option<Uploads> {
        self.uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The outcome of a job that stopped because of this.
    pub fn outcome(&self, deadline_s: u64) -> Outcome {
        match self.why() {
            Some(Stop::Cancelled) => Outcome::Cancelled,
            Some(Stop::Deadline) => Outcome::refused(
                Reason::DeadlineExceeded,
                format!("job ran past {deadline_s} s"),
            ),
            Some(Stop::Shutdown) | None => Outcome::HandBack,
        }
    }
}

/// The outcome of a storage failure: the object's fault is refused with its
/// reason, an outage retried.
pub(crate) fn storage_outcome(e: StorageError) -> Outcome {
    if e.is_permanent() {
        let reason = match &e {
            StorageError::Crypto(_) => Reason::CorruptInput,
            StorageError::TooLarge { .. } => Reason::InputTooLarge,
            _ => Reason::InputUnreadable,
        };
        Outcome::refused(reason, e.to_string())
    } else {
        Outcome::Retry {
            detail: e.to_string(),
        }
    }
}

/// What is known of the delivery being settled.
pub(crate) struct Settle<'a> {
    pub delivery: &'a Delivery,
    pub job_id: Option<&'a str>,
    pub attribution: &'a Attribution,
}

/// Publishes the event `outcome` calls for, then acknowledges accordingly.
pub(crate) async fn settle(shared: &Shared, channels: &Channels, s: Settle<'_>, outcome: Outcome) {
    let (d, job_id) = (s.delivery, s.job_id);
    let event = |kind| Event::new(kind, job_id, s.attribution);
    let result = match outcome {
        Outcome::Done {
            manifest,
            duplicate,
        } => {
            info!(job_id, duplicate, "job completed");
            let e = Event {
                manifest: Some(&manifest),
                ..event(Kind::Completed)
            };
            confirm_then_ack(channels, d, &e).await
        }
        Outcome::Purged { prefix, report } => {
            info!(
                job_id,
                objects = report.objects,
                uploads = report.uploads,
                versions = report.versions,
                "purge completed"
            );
            let e = Event {
                prefix: Some(&prefix),
                objects_deleted: Some(report.objects),
                uploads_aborted: Some(report.uploads),
                versions_deleted: report.versions,
                ..event(Kind::Purged)
            };
            confirm_then_ack(channels, d, &e).await
        }
        Outcome::CancelRecorded => session::ack(d).await,
        Outcome::Lifted { prefix } => {
            let e = Event {
                prefix: Some(&prefix),
                ..event(Kind::Lifted)
            };
            confirm_then_ack(channels, d, &e).await
        }
        Outcome::Cancelled => {
            info!(job_id, "job cancelled");
            confirm_then_ack(channels, d, &event(Kind::Cancelled)).await
        }
        Outcome::Refused { reason, detail } => {
            warn!(job_id, reason = reason.code(), "job refused");
            shared
                .metrics
                .dead_letters
                .with_label_values(&[reason.code()])
                .inc();
            let e = Event {
                reason: Some(reason.code()),
                ..event(Kind::Failed)
            };
            let _ = channels.event(&e).await;
            match channels.dead_letter(d, reason.code(), &detail).await {
                Ok(()) => session::ack(d).await,
                // Could not park it with a reason: let the broker dead-letter it.
                Err(_) => session::nack(d, false).await,
            }
        }
        Outcome::Retry { detail } => {
            let attempts = session::delivery_count(d);
            let pause = session::retry_pause(attempts);
            warn!(
                job_id,
                attempts,
                pause_s = pause.as_secs_f64(),
                error = detail.as_str(),
                "retryable failure"
            );
            tokio::time::sleep(pause).await;
            session::nack(d, true).await
        }
        Outcome::HandBack => {
            info!(job_id, "job handed back to the queue");
            session::nack(d, true).await
        }
    };
    if let Err(e) = result {
        warn!(error = %e, "acknowledgement failed; the broker will redeliver");
    }
}

/// Publishes a job's final event and acknowledges the job once the broker
/// has confirmed the event; otherwise hands the job back.
async fn confirm_then_ack(
    channels: &Channels,
    d: &Delivery,
    event: &Event<'_>,
) -> Result<(), lapin::Error> {
    match channels.event(event).await {
        Ok(()) => session::ack(d).await,
        Err(e) => {
            warn!(
                error = e.as_str(),
                "final event not confirmed; retrying the job"
            );
            session::nack(d, true).await
        }
    }
}
