//! The producer's side, so no producer hand-rolls the crypto: signing keys
//! (`monteur keys generate`), signed, stamped messages (`monteur sign`) and
//! their publication with confirms, optionally waiting for the job's final
//! event (`monteur submit`).

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::Value;
use thiserror::Error;

use crate::crypto::Signer;
use crate::job;

#[derive(Debug, Error)]
pub enum ProducerError {
    #[error("the job is not a JSON object: {0}")]
    NotAnObject(String),
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker did not take the message ({0})")]
    NotConfirmed(&'static str),
    #[error("no final event for the job within {0:?}")]
    NoEvent(Duration),
}

/// Which message a job document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Job,
    Purge,
    Cancel,
    Lift,
}

impl Kind {
    pub fn schema(self) -> &'static str {
        match self {
            Kind::Job => job::JOB_SCHEMA,
            Kind::Purge => job::PURGE_SCHEMA,
            Kind::Cancel => job::CANCEL_SCHEMA,
            Kind::Lift => job::LIFT_SCHEMA,
        }
    }
}

/// `job` (a JSON object) with `issued_at` now, `expires_at` `lifetime`
/// later and a fresh random `nonce`, as compact JSON: the exact bytes that
/// will be signed and sent. Fields already there are replaced.
pub fn stamp(job: &str, lifetime: Duration) -> Result<String, ProducerError> {
    let mut value: Value =
        serde_json::from_str(job).map_err(|e| ProducerError::NotAnObject(e.to_string()))?;
    let map = value
        .as_object_mut()
        .ok_or_else(|| ProducerError::NotAnObject("not an object".into()))?;
    let s = job::Stamp::fresh(lifetime.as_secs());
    map.insert("issued_at".into(), s.issued_at.into());
    map.insert("expires_at".into(), s.expires_at.into());
    map.insert("nonce".into(), s.nonce.into());
    serde_json::to_string(&value).map_err(|e| ProducerError::NotAnObject(e.to_string()))
}

/// The signed envelope of a stamped job.
pub fn sign(kind: Kind, stamped: &str, signer: &Signer) -> String {
    job::signed(kind.schema(), stamped, signer)
}

/// Where a message goes and where its events come from.
#[derive(Debug, Clone)]
pub struct Route {
    pub amqp_url: String,
    /// The queue to publish to (default exchange).
    pub queue: String,
    pub events_exchange: String,
}

/// Publishes `envelope` to `route.queue` with confirms (and the AMQP
/// timestamp and a message id); with `wait`, waits that long for the job's
/// final event (`completed`, `failed`, `cancelled`, `purged`, `lifted`) and
/// returns it.
pub async fn submit(
    route: &Route,
    envelope: &str,
    job_id: &str,
    wait: Option<Duration>,
) -> Result<Option<Value>, ProducerError> {
    let conn = Connection::connect(&route.amqp_url, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    // Listening before publishing: a fast job's event is not missed.
    let mut events = match wait {
        Some(_) => {
            let q = ch
                .queue_declare(
                    "".into(),
                    QueueDeclareOptions {
                        exclusive: true,
                        auto_delete: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            ch.queue_bind(
                q.name().as_str().into(),
                route.events_exchange.as_str().into(),
                "job.#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
            Some(
                ch.basic_consume(
                    q.name().as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?,
            )
        }
        None => None,
    };
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let now = job::now_s();
    let confirm = ch
        .basic_publish(
            "".into(),
            route.queue.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            envelope.as_bytes(),
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_timestamp(now)
                .with_message_id(job_id.into()),
        )
        .await?
        .await?;
    if confirm.is_nack() {
        return Err(ProducerError::NotConfirmed("nack"));
    }
    if confirm.take_message().is_some() {
        return Err(ProducerError::NotConfirmed("no such queue"));
    }
    let (Some(limit), Some(events)) = (wait, events.as_mut()) else {
        return Ok(None);
    };
    let finals = ["completed", "failed", "cancelled", "purged", "lifted"];
    let found = tokio::time::timeout(limit, async {
        while let Some(Ok(d)) = events.next().await {
            let _ = d.ack(BasicAckOptions::default()).await;
            let Ok(e) = serde_json::from_slice::<Value>(&d.data) else {
                continue;
            };
            if e["job_id"] == job_id && finals.iter().any(|f| e["event"] == *f) {
                return Some(e);
            }
        }
        None
    })
    .await;
    let _ = conn.close(200, "done".into()).await;
    match found {
        Ok(Some(e)) => Ok(Some(e)),
        _ => Err(ProducerError::NoEvent(limit)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stamping_adds_fresh_fields_and_keeps_the_rest() {
        let a = stamp(
            r#"{"job_id":"j1","tenant":"acme"}"#,
            Duration::from_secs(600),
        )
        .unwrap();
        let b = stamp(
            r#"{"job_id":"j1","tenant":"acme"}"#,
            Duration::from_secs(600),
        )
        .unwrap();
        let v: Value = serde_json::from_str(&a).unwrap();
        assert_eq!(v["job_id"], "j1");
        assert_eq!(
            v["expires_at"].as_u64().unwrap() - v["issued_at"].as_u64().unwrap(),
            600
        );
        assert_ne!(a, b, "nonces differ");
        assert!(stamp("[1]", Duration::from_secs(1)).is_err());
    }
}
