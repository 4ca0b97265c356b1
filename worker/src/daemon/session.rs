//! One connection to the broker: the consumers (two job lanes on standby,
//! cancels, this worker's control queue) and the publishing channels (events, dead
//! letters, audit), every publish confirmed.

use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use tracing::warn;

use super::topology;
use super::wire::Event;
use crate::audit::AuditEvent;
use crate::config::WorkerConfig;

/// The publishing channels of one connection (all with confirms).
pub(crate) struct Channels {
    events: Channel,
    /// Publishes to the dead-letter exchange.
    dead: Channel,
    audit: Channel,
    /// Broadcasts recorded cancels to every worker.
    control: Channel,
    config: WorkerConfig,
    /// Signalled when one of them was closed by the broker (a channel
    /// error, such as a deleted exchange): the session is rebuilt, which
    /// declares the topology again.
    pub broken: tokio::sync::Notify,
}

/// One connection, consuming.
pub(crate) struct Session {
    pub conn: Connection,
    pub consume: Channel,
    pub channels: std::sync::Arc<Channels>,
    /// The lanes.
    pub interactive: Standby,
    pub batch: Standby,
    pub cancels: Consumer,
    pub control: Consumer,
    /// Tags of the cancel and control consumers.
    tags: Vec<String>,
}

/// A job lane's consumer, with room for one delivery only: the one job of
/// that lane that waits here for a slot. When it starts, the consumer is
/// replaced by a fresh one (its delivery stays ours to acknowledge), so the
/// lane can hand over the next while the first runs. A worker thus holds its
/// running jobs plus at most one waiting job per lane, and jobs queued behind
/// a full worker stay in the broker for an idle one; yet a waiting
/// interactive job is already here when a slot frees, whatever the batch
/// lane holds.
pub(crate) struct Standby {
    pub consumer: Consumer,
    queue: String,
    tag: String,
    base: String,
    next: u32,
}

impl Standby {
    async fn open(channel: &Channel, queue: &str, base: String) -> Result<Self, lapin::Error> {
        let tag = format!("{base}-0");
        Ok(Self {
            consumer: consume(channel, queue, &tag).await?,
            queue: queue.to_string(),
            tag,
            base,
            next: 1,
        })
    }

    /// Its delivery started: a new consumer takes the lane's waiting place.
    pub async fn replace(&mut self, channel: &Channel) -> Result<(), lapin::Error> {
        channel
            .basic_cancel(self.tag.as_str().into(), Default::default())
            .await?;
        self.tag = format!("{}-{}", self.base, self.next);
        self.next += 1;
        self.consumer = consume(channel, &self.queue, &self.tag).await?;
        Ok(())
    }

    async fn cancel(&self, channel: &Channel) {
        let _ = channel
            .basic_cancel(self.tag.as_str().into(), Default::default())
            .await;
    }
}

async fn consume(channel: &Channel, queue: &str, tag: &str) -> Result<Consumer, lapin::Error> {
    channel
        .basic_consume(
            queue.into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
}

pub(crate) async fn connect(w: &WorkerConfig, tag: &str) -> Result<Session, lapin::Error> {
    let conn = Connection::connect(&w.amqp_url, ConnectionProperties::default()).await?;
    let consume_ch = conn.create_channel().await?;
    topology::declare(&conn, &consume_ch, w).await?;
    // Per consumer (not global), one unacknowledged delivery each (see
    // `Standby`). Set on every new channel: it holds after a reconnect too.
    consume_ch.basic_qos(1, BasicQosOptions::default()).await?;
    let publisher = || async {
        let c = conn.create_channel().await?;
        c.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok::<Channel, lapin::Error>(c)
    };
    let (events, dead, audit, broadcast) = (
        publisher().await?,
        publisher().await?,
        publisher().await?,
        publisher().await?,
    );
    let control_queue = topology::control_queue(&consume_ch, w).await?;
    let interactive = Standby::open(
        &consume_ch,
        &w.interactive_queue,
        format!("{tag}-interactive"),
    )
    .await?;
    let batch = Standby::open(&consume_ch, &w.queue, format!("{tag}-batch")).await?;
    let tags = vec![format!("{tag}-cancels"), format!("{tag}-control")];
    let cancels = consume(&consume_ch, &w.cancel_queue, &tags[0]).await?;
    let control = consume(&consume_ch, &control_queue, &tags[1]).await?;
    Ok(Session {
        conn,
        consume: consume_ch,
        channels: std::sync::Arc::new(Channels {
            events,
            dead,
            audit,
            control: broadcast,
            config: w.clone(),
            broken: tokio::sync::Notify::new(),
        }),
        interactive,
        batch,
        cancels,
        control,
        tags,
    })
}

impl Session {
    /// Stops every consumer: no new deliveries (those held stay unacked).
    pub async fn stop_consuming(&self) {
        self.interactive.cancel(&self.consume).await;
        self.batch.cancel(&self.consume).await;
        for tag in &self.tags {
            let _ = self
                .consume
                .basic_cancel(tag.as_str().into(), Default::default())
                .await;
        }
    }
}

fn json_properties() -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
}

/// Publishes `body` and waits for the broker's confirmation. A mandatory
/// message that no queue took comes back, and counts as not published.
async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
    mandatory: bool,
) -> Result<(), String> {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory,
                ..BasicPublishOptions::default()
            },
            body,
            properties,
        )
        .await
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    if confirm.is_nack() {
        return Err(format!("the broker refused the message ({exchange})"));
    }
    if confirm.take_message().is_some() {
        return Err(format!("no queue took the message ({exchange})"));
    }
    Ok(())
}

impl Channels {
    pub fn all_open(&self) -> bool {
        [&self.events, &self.dead, &self.audit, &self.control]
            .iter()
            .all(|c| c.status().connected())
    }

    /// Publishes a job event (routing key `job.<event>`), confirmed.
    pub async fn event(&self, event: &Event<'_>) -> Result<(), String> {
        let body = serde_json::to_vec(event).map_err(|e| e.to_string())?;
        publish_confirmed(
            &self.events,
            &self.config.events_exchange,
            &format!("job.{}", event.event.name()),
            &body,
            json_properties(),
            false,
        )
        .await
    }

    /// Publishes an audit record, confirmed and mandatory: a record no
    /// queue takes (the audit queue deleted or unbound) counts as not
    /// recorded.
    pub async fn audit(&self, record: &AuditEvent<'_>) -> Result<(), String> {
        let body = serde_json::to_vec(record).map_err(|e| e.to_string())?;
        publish_confirmed(
            &self.audit,
            &self.config.audit_exchange,
            record.action.name(),
            &body,
            json_properties(),
            true,
        )
        .await
    }

    /// Broadcasts a recorded cancel (the producer's signed message, as
    /// sent) to every worker's control queue.
    pub async fn broadcast(&self, body: &[u8]) -> Result<(), String> {
        publish_confirmed(
            &self.control,
            &self.config.control_exchange,
            "",
            body,
            json_properties(),
            false,
        )
        .await
    }

    /// Parks a refused message in the dead-letter queue with its reason
    /// and a detail for the operator. The detail (a storage or parser
    /// error, which may echo what the message carried) passes the scrubber
    /// first, like any text that leaves the process.
    pub async fn dead_letter(&self, d: &Delivery, code: &str, detail: &str) -> Result<(), String> {
        let mut headers = FieldTable::default();
        headers.insert(
            ShortString::from("x-monteur-reason"),
            AMQPValue::LongString(LongString::from(code)),
        );
        let detail: String = crate::scrub::scrub_text(detail).chars().take(300).collect();
        headers.insert(
            ShortString::from("x-monteur-detail"),
            AMQPValue::LongString(LongString::from(detail.as_str())),
        );
        let mut properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_headers(headers);
        if let Some(id) = d.properties.correlation_id() {
            properties = properties.with_correlation_id(id.clone());
        }
        if let Some(id) = d.properties.message_id() {
            properties = properties.with_message_id(id.clone());
        }
        publish_confirmed(
            &self.dead,
            &self.config.dead_letter_exchange,
            &self.config.queue,
            &d.data,
            properties,
            false,
        )
        .await
    }
}

/// Acknowledges `d`; lapin reports a vanished channel as `Ok(false)`: the
/// broker redelivers then.
pub(crate) async fn ack(d: &Delivery) -> Result<(), lapin::Error> {
    if !d.ack(BasicAckOptions::default()).await? {
        warn!("ack not sent: channel closed; the job will be redelivered");
    }
    Ok(())
}

/// Hands `d` back (`requeue`) or lets the broker dead-letter it.
pub(crate) async fn nack(d: &Delivery, requeue: bool) -> Result<(), lapin::Error> {
    let sent = d
        .nack(BasicNackOptions {
            requeue,
            ..BasicNackOptions::default()
        })
        .await?;
    if !sent {
        warn!("nack not sent: channel closed; the job will be redelivered");
    }
    Ok(())
}

/// How many times the broker has delivered `d` before (quorum queues count).
pub(crate) fn delivery_count(d: &Delivery) -> u32 {
    d.properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-delivery-count").cloned())
        .and_then(|v| match v {
            AMQPValue::LongLongInt(n) => Some(n as u32),
            AMQPValue::LongInt(n) => Some(n as u32),
            _ => None,
        })
        .unwrap_or(0)
}

/// The pause before a retried job goes back: exponential in the attempts,
/// capped at a minute, with "equal jitter" (half fixed, half random) so a
/// burst of jobs failing together does not come back together.
pub(crate) fn retry_pause(attempts: u32) -> Duration {
    let cap = (1u64 << attempts.min(6)).min(60) as f64;
    let mut byte = [0u8; 2];
    let random = match aws_lc_rs::rand::fill(&mut byte) {
        Ok(()) => f64::from(u16::from_le_bytes(byte)) / f64::from(u16::MAX),
        Err(_) => 0.5,
    };
    Duration::from_secs_f64(cap * (0.5 + 0.5 * random))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_pauses_grow_are_capped_and_jittered() {
        let pauses: Vec<Duration> = (0..200).map(|_| retry_pause(3)).collect();
        assert!(
            pauses
                .iter()
                .all(|p| (4.0..=8.0).contains(&p.as_secs_f64()))
        );
        let distinct: std::collections::HashSet<u128> =
            pauses.iter().map(|p| p.as_millis()).collect();
        assert!(distinct.len() > 20, "jittered: {}", distinct.len());
        assert!(retry_pause(30).as_secs_f64() <= 60.0);
        assert!(retry_pause(0).as_secs_f64() >= 0.5);
    }
}
